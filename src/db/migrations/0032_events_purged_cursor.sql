-- Where each tenant's purged (or, after a restore, undone) events end in the global cursor
-- order that event ids and the WorkOS-compatible feed page by: a cursor before it has
-- missed events and must list again. `events_purged_seq` says the same in the tenant's own
-- numbering, which a cursor of every tenant cannot be compared with.
ALTER TABLE tenants ADD COLUMN events_purged_cursor INTEGER NOT NULL DEFAULT 0;
-- Purges before this migration: everything before the tenant's oldest kept event (read from
-- events_tenant), or, with none kept, every cursor handed out.
UPDATE tenants SET events_purged_cursor = coalesce(
    (SELECT min(cursor) - 1 FROM events WHERE events.tenant_id = tenants.id),
    (SELECT seq FROM sqlite_sequence WHERE name = 'events'),
    0)
 WHERE events_purged_seq > 0;

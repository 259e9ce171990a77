-- A tenant is deleted in two steps (db::tenants): marked first (`deleting_at`; its slug
-- freed and replaced by one no admin can type, its credentials and webhook endpoints
-- deleted, so that it disappears at once), then emptied a few thousand rows a transaction
-- in the background, its row last, so that no one transaction holds the writer for long.
ALTER TABLE tenants ADD COLUMN deleting_at TEXT;

-- The audit log keeps a deleted tenant's entries (it has no foreign key to tenants: the
-- history outlives what it describes), so a tenant id is never used again: a new tenant
-- takes the highest id ever used, plus one.
CREATE TABLE tenant_ids (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    highest INTEGER NOT NULL
);
INSERT INTO tenant_ids (id, highest) VALUES (1, max(
    coalesce((SELECT max(id) FROM tenants), 0),
    coalesce((SELECT max(tenant_id) FROM audit_log), 0),
    coalesce((SELECT max(tenant_id) FROM events), 0)));
CREATE TRIGGER tenant_ids_highest AFTER INSERT ON tenants
BEGIN
    UPDATE tenant_ids SET highest = max(highest, NEW.id);
END;

-- Mends tenants whose event counter fell behind their events: a members CSV import that
-- failed on a later row used to commit its earlier rows and their events without moving
-- `last_event_seq`, after which every event of the tenant failed on its `seq`. The counter
-- moves to the newest event; nothing else changes (a restore numbers past it already).
UPDATE tenants SET last_event_seq = (SELECT max(seq) FROM events WHERE events.tenant_id = tenants.id)
 WHERE last_event_seq < (SELECT max(seq) FROM events WHERE events.tenant_id = tenants.id);

-- Safety for deprovisioning (#13): a grace period before deletions, retention of archived
-- members and of the audit log, and the guard that holds a burst of deprovisionings.

-- A member the grace period suspended instead of deleting: deleted by the daily job at
-- this time unless reactivated first. Any status change clears it.
ALTER TABLE members ADD COLUMN delete_after TEXT;
-- When the member's status last changed (archived members are purged by its age).
ALTER TABLE members ADD COLUMN status_at TEXT;
UPDATE members SET status_at = updated_at;
CREATE INDEX members_delete_after ON members(delete_after) WHERE delete_after IS NOT NULL;
CREATE INDEX members_archived ON members(tenant_id, status_at) WHERE status = 'archived';

-- NULL: off / never.
ALTER TABLE tenant_settings ADD COLUMN delete_grace_days INTEGER;
ALTER TABLE tenant_settings ADD COLUMN archived_retention_days INTEGER;
ALTER TABLE tenant_settings ADD COLUMN audit_retention_days INTEGER;
-- The guard trips when more than max(guard_percent % of active members, guard_minimum)
-- deprovisionings would be applied within an hour. guard_percent 0 and guard_minimum 0
-- together are not allowed; guard_enabled 0 turns it off.
ALTER TABLE tenant_settings ADD COLUMN guard_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tenant_settings ADD COLUMN guard_percent INTEGER NOT NULL DEFAULT 10;
ALTER TABLE tenant_settings ADD COLUMN guard_minimum INTEGER NOT NULL DEFAULT 50;

-- Deprovisionings (suspend, archive, delete) applied, for the guard's one-hour window;
-- rows older than the window are pruned as new ones are written.
CREATE TABLE deprovisionings (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    at        TEXT NOT NULL
);
CREATE INDEX deprovisionings_window ON deprovisionings(tenant_id, at);

-- A tripped guard. At most one open (closed_at NULL) per tenant: 'held' waits for an
-- admin; 'rejected' keeps members as they are and holds on until the directory changes
-- back; closed as 'approved' (applied) or 'cleared' (nothing left to hold).
CREATE TABLE deprovision_holds (
    id             INTEGER PRIMARY KEY,
    tenant_id      INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    state          TEXT NOT NULL CHECK (state IN ('held', 'rejected', 'approved', 'cleared')),
    opened_at      TEXT NOT NULL,
    -- The threshold that was passed, and the active members it was computed from.
    threshold      INTEGER NOT NULL,
    active_members INTEGER NOT NULL,
    decided_by     TEXT,
    decided_at     TEXT,
    closed_at      TEXT
);
CREATE UNIQUE INDEX deprovision_holds_open ON deprovision_holds(tenant_id) WHERE closed_at IS NULL;

-- The member deprovisionings a hold keeps back, one row per member.
CREATE TABLE held_changes (
    hold_id   INTEGER NOT NULL REFERENCES deprovision_holds(id) ON DELETE CASCADE,
    member_pk INTEGER NOT NULL REFERENCES members(pk) ON DELETE CASCADE,
    -- suspend, archive or delete, and the reason sync gave.
    action    TEXT NOT NULL,
    reason    TEXT,
    held_at   TEXT NOT NULL,
    PRIMARY KEY (hold_id, member_pk)
);
CREATE INDEX held_changes_member ON held_changes(member_pk);

-- Audit retention: rows may be deleted only up to the id a purge in progress names, and
-- each chain remembers the hash of its last purged entry so it still verifies.
CREATE TABLE audit_purging (upto_id INTEGER NOT NULL);
DROP TRIGGER audit_log_no_delete;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.id > coalesce((SELECT max(upto_id) FROM audit_purging), 0)
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TABLE audit_anchors (
    -- The chain (NULL: entries outside any tenant), its last purged entry and its hash.
    tenant_id INTEGER,
    upto_id   INTEGER NOT NULL,
    hash      TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_anchors_chain ON audit_anchors(coalesce(tenant_id, 0));

-- The checks on members' status and source were `IN` lists of three values. SQLite codes an
-- `IN` list of more than two constants as a temporary b-tree, built and torn down on every
-- insert or update that checks it: ~8 % of a whole-tenant sync, and part of every SCIM
-- create's write. The same checks written as comparisons cost nothing.
--
-- A check cannot be altered in place, so the table is rebuilt the way SQLite's ALTER TABLE
-- page lays out (the runner turns foreign keys off around this migration, so dropping the
-- old table cascades nothing into held_changes, and checks them before it commits).
-- Column order, rows and pks stay as they were.

CREATE TABLE members_rebuilt (
    pk             INTEGER PRIMARY KEY,
    tenant_id      INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- Public id for apps, events and the UI; never reused.
    id             TEXT NOT NULL UNIQUE,
    email          TEXT,
    email_fold     TEXT,
    user_name      TEXT,
    user_name_fold TEXT,
    given_name     TEXT,
    family_name    TEXT,
    display_name   TEXT,
    role           TEXT NOT NULL,
    -- The sentence beside the role: "admin, from group Eng-Admins".
    role_reason    TEXT NOT NULL,
    status         TEXT NOT NULL
                   CHECK (status = 'active' OR status = 'suspended' OR status = 'archived'),
    -- 0: provisioning never touches this member.
    managed        INTEGER NOT NULL DEFAULT 1,
    source         TEXT NOT NULL CHECK (source = 'scim' OR source = 'manual' OR source = 'csv'),
    -- SCIM id of the linked directory user. Not a foreign key on purpose: when the IdP
    -- deletes the user the link stays as history, so a full sync still knows the IdP
    -- deleted this person, and SCIM ids (UUIDs) are never reused, unlike row numbers.
    user_id        TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    -- When a deprovisioned member is due to be deleted, if it is.
    delete_after   TEXT,
    -- When the member's status last changed (archived members are purged by its age).
    status_at      TEXT
);
INSERT INTO members_rebuilt (pk, tenant_id, id, email, email_fold, user_name, user_name_fold,
                             given_name, family_name, display_name, role, role_reason, status,
                             managed, source, user_id, created_at, updated_at, delete_after,
                             status_at)
SELECT pk, tenant_id, id, email, email_fold, user_name, user_name_fold, given_name, family_name,
       display_name, role, role_reason, status, managed, source, user_id, created_at,
       updated_at, delete_after, status_at
  FROM members;
DROP TABLE members;
ALTER TABLE members_rebuilt RENAME TO members;

-- Dropping the table dropped its indexes and triggers: the same again.
CREATE UNIQUE INDEX members_email ON members(tenant_id, email_fold) WHERE email_fold IS NOT NULL;
CREATE UNIQUE INDEX members_user_name ON members(tenant_id, user_name_fold) WHERE user_name_fold IS NOT NULL;
CREATE UNIQUE INDEX members_user ON members(tenant_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX members_tenant ON members(tenant_id);
CREATE INDEX members_status ON members(tenant_id, status);
CREATE INDEX members_role ON members(tenant_id, role);
CREATE INDEX members_managed ON members(tenant_id, managed);
CREATE INDEX members_delete_after ON members(delete_after) WHERE delete_after IS NOT NULL;
CREATE INDEX members_archived ON members(tenant_id, status_at) WHERE status = 'archived';

CREATE TRIGGER plan_members_insert AFTER INSERT ON members BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = NEW.tenant_id;
END;
CREATE TRIGGER plan_members_update AFTER UPDATE ON members BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id IN (OLD.tenant_id, NEW.tenant_id);
END;
CREATE TRIGGER plan_members_delete AFTER DELETE ON members BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = OLD.tenant_id;
END;

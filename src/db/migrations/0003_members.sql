-- The members layer: the organisation's people as apps consume them, the tenant settings
-- that drive directory sync, the audit log, the events outbox, and the record of sync runs.

-- One row per tenant that changed a default; a tenant without a row has the defaults.
CREATE TABLE tenant_settings (
    tenant_id      INTEGER PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    test_mode      INTEGER NOT NULL DEFAULT 0,
    on_deactivate  TEXT NOT NULL DEFAULT 'suspend' CHECK (on_deactivate IN ('suspend', 'delete')),
    on_delete      TEXT NOT NULL DEFAULT 'archive' CHECK (on_delete IN ('archive', 'delete')),
    absent         TEXT NOT NULL DEFAULT 'retain' CHECK (absent IN ('retain', 'archive')),
    match_by       TEXT NOT NULL DEFAULT 'email' CHECK (match_by IN ('email', 'username')),
    default_role   TEXT NOT NULL DEFAULT 'viewer',
    role_prefix    TEXT NOT NULL DEFAULT 'scimd-role-',
    updated_at     TEXT NOT NULL
);

-- A tenant's roles, rank 0 highest. No rows: the default owner > admin > member > viewer.
CREATE TABLE roles (
    tenant_id  INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    rank       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name),
    UNIQUE (tenant_id, rank)
);

-- Custom group-to-role mappings, by group displayName (case-insensitive).
CREATE TABLE role_mappings (
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    group_name  TEXT NOT NULL,
    group_fold  TEXT NOT NULL,
    role        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_fold)
);

CREATE TABLE members (
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
    status         TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'archived')),
    -- 0: provisioning never touches this member.
    managed        INTEGER NOT NULL DEFAULT 1,
    source         TEXT NOT NULL CHECK (source IN ('scim', 'manual', 'csv')),
    -- SCIM id of the linked directory user. Not a foreign key on purpose: when the IdP
    -- deletes the user the link stays as history, so a full sync still knows the IdP
    -- deleted this person, and SCIM ids (UUIDs) are never reused, unlike row numbers.
    user_id        TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE UNIQUE INDEX members_email ON members(tenant_id, email_fold) WHERE email_fold IS NOT NULL;
CREATE UNIQUE INDEX members_user_name ON members(tenant_id, user_name_fold) WHERE user_name_fold IS NOT NULL;
CREATE UNIQUE INDEX members_user ON members(tenant_id, user_id) WHERE user_id IS NOT NULL;

-- Append-only: the triggers refuse any UPDATE or DELETE. No foreign key to tenants, so
-- that the history outlives what it describes. Nothing secret is ever written here.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER,
    at          TEXT NOT NULL,
    -- "token:<id>", "admin:<name>", "cli".
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    -- What was acted on: "Users/<id>", "member/<id>", "tenant", …
    target      TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    -- The HTTP status of a SCIM or admin request.
    status      INTEGER,
    request_id  TEXT,
    -- JSON with the specifics (fields before/after, counts, error detail).
    detail      TEXT
);
CREATE INDEX audit_log_tenant ON audit_log(tenant_id, id);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- The outbox the events feed and webhooks read. AUTOINCREMENT: a cursor is never reused,
-- even after the newest rows are pruned, so a reader resuming after cursor N misses nothing.
CREATE TABLE events (
    cursor      INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL,
    type        TEXT NOT NULL,
    -- The member or group id the event is about.
    subject     TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX events_tenant ON events(tenant_id, cursor);

-- Force syncs, `scimd sync` and re-evaluations after a settings change, applied or not.
CREATE TABLE sync_runs (
    id           INTEGER PRIMARY KEY,
    tenant_id    INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    actor        TEXT NOT NULL,
    -- 'full' (force sync) or 'roles' (re-evaluation after a role setting changed).
    scope        TEXT NOT NULL CHECK (scope IN ('full', 'roles')),
    dry_run      INTEGER NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    duration_ms  INTEGER NOT NULL,
    -- JSON object: change kind → count.
    counts       TEXT NOT NULL
);
CREATE INDEX sync_runs_tenant ON sync_runs(tenant_id, id);

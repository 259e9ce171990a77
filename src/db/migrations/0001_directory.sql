-- Tenants, SCIM bearer tokens, and the directory: what the IdP pushed.

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE scim_tokens (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- The first characters of the token, shown so an admin can recognise it.
    prefix        TEXT NOT NULL,
    -- SHA-256 of the whole token; the token itself is never stored.
    hash          BLOB NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    expires_at    TEXT,
    revoked_at    TEXT
);
CREATE INDEX scim_tokens_tenant ON scim_tokens(tenant_id);

-- One row per SCIM User. `data` is the canonical JSON of every client-writable attribute
-- (core at the top level, extensions under their URN); the other columns are copies of what
-- lookups, uniqueness and sorting need indexed. Timestamps are UTC RFC 3339 with a fixed
-- width ("2026-11-23T03:21:24.123456Z") so text order is time order.
CREATE TABLE users (
    pk                 INTEGER PRIMARY KEY,
    tenant_id          INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id                 TEXT NOT NULL UNIQUE,
    user_name          TEXT NOT NULL,
    -- userName is caseExact=false: Unicode-lowercased copy for uniqueness and lookups.
    user_name_fold     TEXT NOT NULL,
    external_id        TEXT,
    display_name       TEXT,
    display_name_fold  TEXT,
    active             INTEGER,
    data               TEXT NOT NULL,
    created            TEXT NOT NULL,
    last_modified      TEXT NOT NULL,
    version            INTEGER NOT NULL,
    -- 'idp': pushed by the IdP. 'seed': stands in for a member that existed before
    -- provisioning (manual or CSV), so the IdP's lookups and imports find and link it; the
    -- IdP's first write to it adopts it ('idp'). Sync only ever reads 'idp' rows.
    origin             TEXT NOT NULL DEFAULT 'idp' CHECK (origin IN ('idp', 'seed'))
);
CREATE INDEX users_seeds ON users(tenant_id) WHERE origin = 'seed';
CREATE UNIQUE INDEX users_user_name ON users(tenant_id, user_name_fold);
CREATE INDEX users_external_id ON users(tenant_id, external_id);
CREATE INDEX users_display_name ON users(tenant_id, display_name_fold);

-- Every email of every user, folded, so `emails.value eq` and
-- `emails[type eq "work"].value eq` lookups use an index.
CREATE TABLE user_emails (
    user_pk     INTEGER NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    tenant_id   INTEGER NOT NULL,
    value_fold  TEXT NOT NULL,
    type_fold   TEXT,
    is_primary  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX user_emails_value ON user_emails(value_fold);
CREATE INDEX user_emails_user ON user_emails(user_pk);

CREATE TABLE groups (
    pk                 INTEGER PRIMARY KEY,
    tenant_id          INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id                 TEXT NOT NULL UNIQUE,
    display_name       TEXT NOT NULL,
    display_name_fold  TEXT NOT NULL,
    external_id        TEXT,
    data               TEXT NOT NULL,
    created            TEXT NOT NULL,
    last_modified      TEXT NOT NULL,
    version            INTEGER NOT NULL
);
CREATE INDEX groups_display_name ON groups(tenant_id, display_name_fold);
CREATE INDEX groups_external_id ON groups(tenant_id, external_id);

-- Memberships live here, one row each, never inside a JSON blob: adding or removing one
-- member of a huge group touches one row. A member is a user or a nested group.
CREATE TABLE group_members (
    group_pk        INTEGER NOT NULL REFERENCES groups(pk) ON DELETE CASCADE,
    member_user_pk  INTEGER REFERENCES users(pk) ON DELETE CASCADE,
    member_group_pk INTEGER REFERENCES groups(pk) ON DELETE CASCADE,
    -- What the IdP sent as `display`, returned as sent.
    display         TEXT,
    CHECK ((member_user_pk IS NULL) <> (member_group_pk IS NULL))
);
CREATE UNIQUE INDEX group_members_user ON group_members(group_pk, member_user_pk) WHERE member_user_pk IS NOT NULL;
CREATE UNIQUE INDEX group_members_group ON group_members(group_pk, member_group_pk) WHERE member_group_pk IS NOT NULL;
-- A group's members in insertion (rowid) order, for reading a whole group without a sort.
CREATE INDEX group_members_in_order ON group_members(group_pk);
CREATE INDEX group_members_by_user ON group_members(member_user_pk) WHERE member_user_pk IS NOT NULL;
CREATE INDEX group_members_by_group ON group_members(member_group_pk) WHERE member_group_pk IS NOT NULL;

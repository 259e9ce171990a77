-- Deleting a tenant deletes its SCIM tokens, API keys and OAuth apps, and an `INTEGER
-- PRIMARY KEY` without AUTOINCREMENT hands the highest id freed that way to the next one
-- made: `token:5` in a deleted tenant's kept audit log would name another tenant's newer
-- token. AUTOINCREMENT never hands an id out twice, as for webhook endpoints (0022).
--
-- Rebuilt as 0022 rebuilds, with foreign keys off (nothing cascades from dropping the old
-- tables into OAuth grants, codes and redirect URIs; the keys are checked before the
-- migration commits). Columns, rows, ids, indexes and triggers stay as they were.

CREATE TABLE scim_tokens_rebuilt (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
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
INSERT INTO scim_tokens_rebuilt SELECT * FROM scim_tokens;
DROP TABLE scim_tokens;
ALTER TABLE scim_tokens_rebuilt RENAME TO scim_tokens;
CREATE INDEX scim_tokens_tenant ON scim_tokens(tenant_id);
CREATE TRIGGER scim_tokens_changed AFTER UPDATE OF hash, tenant_id, expires_at, revoked_at ON scim_tokens
BEGIN UPDATE credential_generation SET n = n + 1; END;
CREATE TRIGGER scim_tokens_deleted AFTER DELETE ON scim_tokens
BEGIN UPDATE credential_generation SET n = n + 1; END;

CREATE TABLE api_keys_rebuilt (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     INTEGER REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    -- SHA-256 of the whole key; the key itself is never stored.
    hash          BLOB NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    expires_at    TEXT,
    revoked_at    TEXT
);
INSERT INTO api_keys_rebuilt SELECT * FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_rebuilt RENAME TO api_keys;
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

CREATE TABLE oauth_clients_rebuilt (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id          INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- The public identifier the IdP sends (`client_id`).
    client_id          TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    -- SHA-256 of the client secret (256 random bits, so a fast hash is enough).
    secret_hash        BLOB NOT NULL,
    -- Space-separated grants this client may use: authorization_code, client_credentials.
    grant_types        TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    secret_rotated_at  TEXT,
    revoked_at         TEXT
);
INSERT INTO oauth_clients_rebuilt SELECT * FROM oauth_clients;
DROP TABLE oauth_clients;
ALTER TABLE oauth_clients_rebuilt RENAME TO oauth_clients;
CREATE INDEX oauth_clients_tenant ON oauth_clients(tenant_id);
CREATE TRIGGER oauth_clients_changed AFTER UPDATE OF client_id, tenant_id, revoked_at ON oauth_clients
BEGIN UPDATE credential_generation SET n = n + 1; END;
CREATE TRIGGER oauth_clients_deleted AFTER DELETE ON oauth_clients
BEGIN UPDATE credential_generation SET n = n + 1; END;

-- A number that moves whenever a bearer token that worked may stop working: what the
-- server's in-memory token cache (db::credentials) checks, so that it needs no query per
-- request and still honours a revocation at once. Triggers, so no write can forget it.
-- Inserts never bump it (a new token breaks nothing), nor does noting a token's last use.

CREATE TABLE credential_generation (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    n   INTEGER NOT NULL
);
INSERT INTO credential_generation (id, n) VALUES (1, 0);

CREATE TRIGGER scim_tokens_changed AFTER UPDATE OF hash, tenant_id, expires_at, revoked_at ON scim_tokens
BEGIN UPDATE credential_generation SET n = n + 1; END;
CREATE TRIGGER scim_tokens_deleted AFTER DELETE ON scim_tokens
BEGIN UPDATE credential_generation SET n = n + 1; END;

CREATE TRIGGER oauth_tokens_changed AFTER UPDATE OF hash, grant_id, kind, expires_at, revoked_at ON oauth_tokens
BEGIN UPDATE credential_generation SET n = n + 1; END;
CREATE TRIGGER oauth_tokens_deleted AFTER DELETE ON oauth_tokens
BEGIN UPDATE credential_generation SET n = n + 1; END;

CREATE TRIGGER oauth_grants_changed AFTER UPDATE OF client_id, revoked_at ON oauth_grants
BEGIN UPDATE credential_generation SET n = n + 1; END;
CREATE TRIGGER oauth_grants_deleted AFTER DELETE ON oauth_grants
BEGIN UPDATE credential_generation SET n = n + 1; END;

CREATE TRIGGER oauth_clients_changed AFTER UPDATE OF client_id, tenant_id, revoked_at ON oauth_clients
BEGIN UPDATE credential_generation SET n = n + 1; END;
CREATE TRIGGER oauth_clients_deleted AFTER DELETE ON oauth_clients
BEGIN UPDATE credential_generation SET n = n + 1; END;

CREATE TRIGGER tenants_deleted AFTER DELETE ON tenants
BEGIN UPDATE credential_generation SET n = n + 1; END;

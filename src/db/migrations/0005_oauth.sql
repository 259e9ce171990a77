-- OAuth 2.0: scimd is the authorization server of its own SCIM API. An admin registers a
-- client per IdP connection; the IdP obtains bearer tokens for that client's tenant through
-- the authorization-code grant (an admin approves it in the UI) or client credentials.
-- Secrets, codes and tokens are stored only as SHA-256 hashes.

CREATE TABLE oauth_clients (
    id                 INTEGER PRIMARY KEY,
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
CREATE INDEX oauth_clients_tenant ON oauth_clients(tenant_id);

-- Registered redirect URIs, compared by exact string match.
CREATE TABLE oauth_redirect_uris (
    client_id  INTEGER NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    uri        TEXT NOT NULL,
    PRIMARY KEY (client_id, uri)
);

-- One approval of an authorization request, or one client-credentials request: the family
-- of tokens descending from it, revoked together.
CREATE TABLE oauth_grants (
    id           INTEGER PRIMARY KEY,
    client_id    INTEGER NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    grant_type   TEXT NOT NULL,
    scope        TEXT NOT NULL,
    -- The admin who approved an authorization-code grant.
    approved_by  TEXT,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX oauth_grants_client ON oauth_grants(client_id);

-- Authorization codes: single use, minutes long, bound to client, redirect URI and PKCE.
CREATE TABLE oauth_codes (
    hash                BLOB PRIMARY KEY,
    client_id           INTEGER NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    redirect_uri        TEXT NOT NULL,
    -- Whether the authorization request named the redirect URI (then the token request must).
    redirect_uri_given  INTEGER NOT NULL,
    -- The S256 code challenge (RFC 7636), when the client sent one.
    code_challenge      TEXT,
    scope               TEXT NOT NULL,
    approved_by         TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    expires_at          TEXT NOT NULL,
    used_at             TEXT,
    -- The grant the code was exchanged for: revoked if the code is presented again.
    grant_id            INTEGER REFERENCES oauth_grants(id) ON DELETE SET NULL
);

CREATE TABLE oauth_tokens (
    id            INTEGER PRIMARY KEY,
    grant_id      INTEGER NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    -- SHA-256 of the token; the token itself is never stored.
    hash          BLOB NOT NULL UNIQUE,
    -- The first characters, so an admin can recognise a token.
    prefix        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    last_used_at  TEXT,
    -- Refresh tokens: when it was exchanged (rotated). Presenting it again revokes the grant.
    used_at       TEXT,
    revoked_at    TEXT
);
CREATE INDEX oauth_tokens_grant ON oauth_tokens(grant_id);

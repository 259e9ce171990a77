-- Admin accounts, their sessions, the one-time setup link, and login throttling.

CREATE TABLE admins (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    -- argon2id PHC string; the password itself is never stored.
    password_hash  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    last_login_at  TEXT
);

CREATE TABLE admin_sessions (
    -- SHA-256 of the session cookie value.
    id_hash     BLOB PRIMARY KEY,
    admin_id    INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
    -- Sent back in every form; compared in constant time on every POST.
    csrf        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX admin_sessions_admin ON admin_sessions(admin_id);

-- The one-time link that creates the first admin; stored hashed, valid for an hour.
CREATE TABLE setup_tokens (
    hash        BLOB PRIMARY KEY,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);

-- Failed logins per key (`user:<name>` and `ip:<address>`), for throttling.
CREATE TABLE login_failures (
    key           TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    first_at      TEXT NOT NULL,
    locked_until  TEXT
);

-- The apps side: API keys, a gap-free event sequence per tenant, webhook endpoints and
-- their delivery attempts.

-- App API keys. `tenant_id` NULL: a key that reads every tenant (a WorkOS environment key).
CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY,
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
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

-- Each tenant numbers its events 1, 2, 3… with no gap: `last_event_seq` is the counter
-- (it survives the purge of old events), `events_purged_seq` the last number purged.
ALTER TABLE tenants ADD COLUMN last_event_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN events_purged_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN seq INTEGER;
UPDATE events SET seq = numbered.n FROM (
    SELECT cursor, row_number() OVER (PARTITION BY tenant_id ORDER BY cursor) AS n FROM events
) AS numbered WHERE numbered.cursor = events.cursor;
UPDATE tenants SET last_event_seq = coalesce(
    (SELECT max(seq) FROM events WHERE events.tenant_id = tenants.id), 0
);
CREATE UNIQUE INDEX events_tenant_seq ON events(tenant_id, seq);
CREATE INDEX events_created ON events(created_at);

-- How long events are kept for the feed and for replays (days).
ALTER TABLE tenant_settings ADD COLUMN event_retention_days INTEGER NOT NULL DEFAULT 90;

-- Webhook endpoints: each follows its tenant's events in `seq` order from `cursor`.
CREATE TABLE webhook_endpoints (
    id                INTEGER PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url               TEXT NOT NULL,
    -- Comma-separated event types; NULL for every type.
    types             TEXT,
    -- `standard` (Standard Webhooks 1.0) or `workos`.
    format            TEXT NOT NULL DEFAULT 'standard',
    -- The signing secret (`whsec_…`): needed in clear to sign, never shown twice.
    secret            TEXT NOT NULL,
    -- After a rotation the old secret signs too, until `previous_until`.
    previous_secret   TEXT,
    previous_until    TEXT,
    enabled           INTEGER NOT NULL DEFAULT 1,
    disabled_at       TEXT,
    disabled_reason   TEXT,
    -- The last `seq` delivered (or skipped by the type filter).
    cursor            INTEGER NOT NULL DEFAULT 0,
    -- The first failed attempt of the event now being retried, and how many so far.
    failing_since     TEXT,
    failures          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TEXT,
    created_at        TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints(tenant_id);

-- Every delivery attempt, kept for the admin UI (the oldest are pruned).
CREATE TABLE webhook_attempts (
    id            INTEGER PRIMARY KEY,
    endpoint_id   INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    event_id      TEXT NOT NULL,
    at            TEXT NOT NULL,
    -- The HTTP status, or NULL when no answer came (refused, timed out).
    status        INTEGER,
    duration_ms   INTEGER NOT NULL,
    error         TEXT,
    -- The first bytes of the receiver's answer.
    response      TEXT
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts(endpoint_id, id);

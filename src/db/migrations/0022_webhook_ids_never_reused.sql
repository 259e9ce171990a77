-- A removed webhook endpoint's id went to the next endpoint added when it was the highest
-- (an `INTEGER PRIMARY KEY` without AUTOINCREMENT takes the largest id + 1), so a script
-- or a runbook naming endpoint 3, an old audit entry or a metrics series would name a
-- different receiver. AUTOINCREMENT never hands an id out twice.
--
-- It cannot be added in place: the table is rebuilt as SQLite's ALTER TABLE page lays out
-- (the runner turns foreign keys off around this migration, so dropping the old table
-- cascades nothing into webhook_attempts, and checks them before it commits). Columns,
-- rows and ids stay as they were.

CREATE TABLE webhook_endpoints_rebuilt (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
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
INSERT INTO webhook_endpoints_rebuilt SELECT * FROM webhook_endpoints;
DROP TABLE webhook_endpoints;
ALTER TABLE webhook_endpoints_rebuilt RENAME TO webhook_endpoints;
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints(tenant_id);

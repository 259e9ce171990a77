-- The request inspector: each tenant's last SCIM requests as they arrived, for "why did my
-- IdP's push fail?". Bodies are redacted before they get here (no password, secret or
-- Authorization header is ever written) and cut at 64 KiB. Pruned per tenant by count and
-- age, failures kept apart from (and longer than) successes; gone with the tenant.
CREATE TABLE scim_requests (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- The id in the service log, the X-Request-Id header, audit entries and events.
    request_id    TEXT NOT NULL,
    at            TEXT NOT NULL,
    method        TEXT NOT NULL,
    -- Path and query, secret query parameters redacted.
    path          TEXT NOT NULL,
    -- 'Users', 'Groups' or 'other': the list's filter.
    resource      TEXT NOT NULL,
    status        INTEGER NOT NULL,
    failed        INTEGER NOT NULL CHECK (failed IN (0, 1)),
    duration_us   INTEGER NOT NULL,
    -- Who called: 'token:<id>' or 'oauth-client:<client_id>' (never the secret).
    actor         TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    -- The detected client ('okta', 'entra', …, 'generic'), Entra's dialect, and why.
    client        TEXT NOT NULL,
    dialect       TEXT,
    evidence      TEXT NOT NULL,
    request_body  TEXT,
    response_body TEXT,
    -- Bit 1: the request body was cut; bit 2: the response body was.
    truncated     INTEGER NOT NULL DEFAULT 0,
    -- The SCIM Error of a failure.
    error         TEXT,
    scim_type     TEXT
);
CREATE INDEX scim_requests_tenant ON scim_requests(tenant_id, id);
CREATE INDEX scim_requests_kind ON scim_requests(tenant_id, failed, id);
CREATE INDEX scim_requests_request ON scim_requests(tenant_id, request_id);

-- "The changes it caused": the inspector finds a request's events and audit entries by
-- its request id.
CREATE INDEX events_request ON events(tenant_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX audit_log_request ON audit_log(tenant_id, request_id) WHERE request_id IS NOT NULL;

-- The guard's one-hour window kept a row per deprovisioning and counted them on every
-- deprovisioning write: a cost growing with the hour's deprovisionings, up to the
-- threshold (10 000 rows counted per write at 100 000 members), just when an IdP is
-- switching many people off. A row per tenant and second, with how many were applied in
-- it, bounds the count at 3 600 rows and makes a burst one row. The window now starts at
-- the whole second (a deprovisioning up to a second older may count: the guard holds no
-- later for it).
CREATE TABLE deprovisioned_per_second (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- 'YYYY-MM-DDTHH:MM:SS', UTC: a stored time cut to its second.
    second    TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, second)
) WITHOUT ROWID;

INSERT INTO deprovisioned_per_second (tenant_id, second, n)
SELECT tenant_id, substr(at, 1, 19), count(*) FROM deprovisionings GROUP BY 1, 2;

DROP TABLE deprovisionings;

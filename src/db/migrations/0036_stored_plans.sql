-- The last whole-tenant plan report of each tenant whose test mode & sync page was looked
-- at (ops::reconcile::Plans), kept so that a restart does not make the first load of the
-- page plan the whole tenant again. A cache, not a record: a row is served only while its
-- tenant's plan version (0014) and the build that planned it are the current ones, and
-- losing it costs one plan.
CREATE TABLE stored_plans (
    tenant_id    INTEGER PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    -- The tenant's `created_at` and `plan_version` when it was planned.
    created_at   TEXT NOT NULL,
    plan_version INTEGER NOT NULL,
    -- Which build of scimd planned it: another build may plan differently.
    planner      TEXT NOT NULL,
    -- The report's entries, as JSON.
    report       TEXT NOT NULL,
    -- When the tenant's page was last loaded (Unix seconds), as far as the server that
    -- stored the plan knew: a server keeps the plans of tenants looked at lately current.
    looked_at    INTEGER NOT NULL
);

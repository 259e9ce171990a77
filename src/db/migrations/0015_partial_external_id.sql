-- externalId lookups index only the rows that have one. Many IdPs send no externalId
-- (Okta's groups, for one): a full index then holds one key, NULL, for nearly every row,
-- and its statistics (`PRAGMA optimize`, without STAT4's samples: see .cargo/config.toml)
-- tell the planner an `externalId eq` lookup matches the whole tenant, so it scans. An
-- equality never matches NULL, so the partial index still answers every such lookup.

DROP INDEX users_external_id;
CREATE INDEX users_external_id ON users(tenant_id, external_id) WHERE external_id IS NOT NULL;
DROP INDEX groups_external_id;
CREATE INDEX groups_external_id ON groups(tenant_id, external_id) WHERE external_id IS NOT NULL;

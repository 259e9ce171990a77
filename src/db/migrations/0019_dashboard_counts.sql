-- The dashboard counts a tenant's members by status and role, and its users by whether they
-- are active, on every load. The first read each member's row behind members_status and
-- sorted them into groups (52 ms at 100 000 members); the second read every user row
-- (20 ms). With the role in the status index, the index answers the grouping by itself, in
-- its own order; the users the IdP deactivated get an index of their own (holding `active`
-- so that it answers its own condition), so the active ones are the stored count less those. Neither adds an index entry for an ordinary write:
-- members_status keeps its entries (a few bytes longer) and an active user has none.
DROP INDEX members_status;
CREATE INDEX members_status ON members(tenant_id, status, role);
CREATE INDEX users_inactive ON users(tenant_id, active) WHERE coalesce(active, 1) <> 1;
ANALYZE members;
ANALYZE users;

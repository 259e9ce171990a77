-- Every member a POST /Users creates is active and managed, and every member's entry in
-- `members_status` and `members_managed` was written by that POST and read by nobody: the
-- admin's filters that need an index are the rare values (the suspended, the archived,
-- the members provisioning does not manage), which a page of the common ones finds by
-- walking the tenant in pk order. The two indexes now hold the rare values only, two
-- b-tree entries fewer for each member created (of nine), and for each sync that creates
-- a directory's worth of them.
DROP INDEX members_status;
CREATE INDEX members_status ON members(tenant_id, status) WHERE status <> 'active';
DROP INDEX members_managed;
CREATE INDEX members_unmanaged ON members(tenant_id) WHERE managed = 0;

-- Indexes for the admin UI's lists, so a page of a 100 000-member tenant or group costs a
-- page of index entries, never a scan or a sort of everything.

-- People: a tenant's members in row order (keyset on pk), and the same filtered by status,
-- role or managed. The rowid is the last key of every index, so each of these walks
-- `pk > ?` in order and stops after one page.
CREATE INDEX members_tenant ON members(tenant_id);
CREATE INDEX members_status ON members(tenant_id, status);
CREATE INDEX members_role ON members(tenant_id, role);
CREATE INDEX members_managed ON members(tenant_id, managed);
-- (A group's memberships in insertion order: group_members_in_order, in 0001.)

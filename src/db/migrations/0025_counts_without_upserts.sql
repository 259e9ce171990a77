-- The count triggers upserted (`INSERT … ON CONFLICT DO UPDATE`), and SQLite codes an
-- upsert's update with the ABORT policy whatever policy its statement carries: every
-- insert of a user, group or member (and every status or role change of a member) could
-- abort half-way, so SQLite kept a statement journal for it although its keys are
-- deferred and it is written `OR FAIL` (migration 0024). The same counts, kept by an
-- insert of a missing row and a plain update, which follow their statement's policy.
DROP TRIGGER users_counted;
CREATE TRIGGER users_counted AFTER INSERT ON users BEGIN
    INSERT INTO resource_counts (tenant_id) SELECT new.tenant_id
     WHERE NOT EXISTS (SELECT 1 FROM resource_counts WHERE tenant_id = new.tenant_id);
    UPDATE resource_counts SET users = users + 1 WHERE tenant_id = new.tenant_id;
END;
DROP TRIGGER groups_counted;
CREATE TRIGGER groups_counted AFTER INSERT ON groups BEGIN
    INSERT INTO resource_counts (tenant_id) SELECT new.tenant_id
     WHERE NOT EXISTS (SELECT 1 FROM resource_counts WHERE tenant_id = new.tenant_id);
    UPDATE resource_counts SET groups = groups + 1 WHERE tenant_id = new.tenant_id;
END;
DROP TRIGGER member_counted;
CREATE TRIGGER member_counted AFTER INSERT ON members BEGIN
    INSERT INTO member_counts (tenant_id, status, role, n)
    SELECT new.tenant_id, new.status, new.role, 0
     WHERE NOT EXISTS (SELECT 1 FROM member_counts
                        WHERE tenant_id = new.tenant_id AND status = new.status AND role = new.role);
    UPDATE member_counts SET n = n + 1
     WHERE tenant_id = new.tenant_id AND status = new.status AND role = new.role;
END;
DROP TRIGGER member_recounted;
-- A member's tenant never changes.
CREATE TRIGGER member_recounted AFTER UPDATE OF status, role ON members
WHEN old.status IS NOT new.status OR old.role IS NOT new.role BEGIN
    UPDATE member_counts SET n = n - 1
     WHERE tenant_id = old.tenant_id AND status = old.status AND role = old.role;
    INSERT INTO member_counts (tenant_id, status, role, n)
    SELECT new.tenant_id, new.status, new.role, 0
     WHERE NOT EXISTS (SELECT 1 FROM member_counts
                        WHERE tenant_id = new.tenant_id AND status = new.status AND role = new.role);
    UPDATE member_counts SET n = n + 1
     WHERE tenant_id = new.tenant_id AND status = new.status AND role = new.role;
END;

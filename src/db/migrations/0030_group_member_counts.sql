-- How many direct members (users and groups) each group has, kept as memberships come and
-- go, a group's own deletion and a member's cascading ones included. A one-member PATCH of a
-- 100 000-member group asks whether its answer can list the members, and the admin pages
-- show each group's size: both read this instead of counting memberships (up to 1 001
-- index entries a PATCH, every membership of every group on a page).
ALTER TABLE groups ADD COLUMN member_count INTEGER NOT NULL DEFAULT 0;
UPDATE groups SET member_count = (SELECT count(*) FROM group_members WHERE group_pk = groups.pk);

-- Plain updates: they follow the policy of the statement that fired them (memberships are
-- inserted `OR IGNORE`, and an ignored insert fires nothing).
CREATE TRIGGER group_members_counted AFTER INSERT ON group_members BEGIN
    UPDATE groups SET member_count = member_count + 1 WHERE pk = NEW.group_pk;
END;
CREATE TRIGGER group_members_uncounted AFTER DELETE ON group_members BEGIN
    UPDATE groups SET member_count = member_count - 1 WHERE pk = OLD.group_pk;
END;
CREATE TRIGGER group_members_recounted AFTER UPDATE OF group_pk ON group_members
WHEN OLD.group_pk IS NOT NEW.group_pk BEGIN
    UPDATE groups SET member_count = member_count - 1 WHERE pk = OLD.group_pk;
    UPDATE groups SET member_count = member_count + 1 WHERE pk = NEW.group_pk;
END;

-- A group's count moving is a membership change, which its own trigger already counts for
-- the plan: the group's update trigger leaves the count alone.
DROP TRIGGER plan_groups_update;
CREATE TRIGGER plan_groups_update
AFTER UPDATE OF pk, tenant_id, id, display_name, display_name_fold, external_id, data,
                created, last_modified, version, name_clash ON groups BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id IN (OLD.tenant_id, NEW.tenant_id);
END;

-- A per-tenant counter of everything directory sync's plan reads: directory users (seeds
-- too: a member's link is live while its user row exists), groups, memberships, members,
-- settings, roles and role mappings. Every write to those tables bumps it in the writing
-- transaction, whichever code path (or process: the CLI) made it, so "same counter" means
-- "same plan" and `ops::reconcile` can keep the last plan per tenant in memory.
-- Triggers rather than calls in Rust: a write path that forgot the call would show admins
-- a stale plan, and nothing would notice.

ALTER TABLE tenants ADD COLUMN plan_version INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER plan_users_insert AFTER INSERT ON users BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = NEW.tenant_id;
END;
CREATE TRIGGER plan_users_update AFTER UPDATE ON users BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id IN (OLD.tenant_id, NEW.tenant_id);
END;
CREATE TRIGGER plan_users_delete AFTER DELETE ON users BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = OLD.tenant_id;
END;

CREATE TRIGGER plan_groups_insert AFTER INSERT ON groups BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = NEW.tenant_id;
END;
CREATE TRIGGER plan_groups_update AFTER UPDATE ON groups BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id IN (OLD.tenant_id, NEW.tenant_id);
END;
CREATE TRIGGER plan_groups_delete AFTER DELETE ON groups BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = OLD.tenant_id;
END;

-- Memberships carry no tenant: their group says it. A membership removed by its group's
-- deletion finds no group any more, but the group's own trigger counted that write.
CREATE TRIGGER plan_group_members_insert AFTER INSERT ON group_members BEGIN
    UPDATE tenants SET plan_version = plan_version + 1
     WHERE id = (SELECT tenant_id FROM groups WHERE pk = NEW.group_pk);
END;
CREATE TRIGGER plan_group_members_update AFTER UPDATE ON group_members BEGIN
    UPDATE tenants SET plan_version = plan_version + 1
     WHERE id IN (SELECT tenant_id FROM groups WHERE pk IN (OLD.group_pk, NEW.group_pk));
END;
CREATE TRIGGER plan_group_members_delete AFTER DELETE ON group_members BEGIN
    UPDATE tenants SET plan_version = plan_version + 1
     WHERE id = (SELECT tenant_id FROM groups WHERE pk = OLD.group_pk);
END;

CREATE TRIGGER plan_members_insert AFTER INSERT ON members BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = NEW.tenant_id;
END;
CREATE TRIGGER plan_members_update AFTER UPDATE ON members BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id IN (OLD.tenant_id, NEW.tenant_id);
END;
CREATE TRIGGER plan_members_delete AFTER DELETE ON members BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = OLD.tenant_id;
END;

CREATE TRIGGER plan_settings_insert AFTER INSERT ON tenant_settings BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = NEW.tenant_id;
END;
CREATE TRIGGER plan_settings_update AFTER UPDATE ON tenant_settings BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id IN (OLD.tenant_id, NEW.tenant_id);
END;
CREATE TRIGGER plan_settings_delete AFTER DELETE ON tenant_settings BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = OLD.tenant_id;
END;

CREATE TRIGGER plan_roles_insert AFTER INSERT ON roles BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = NEW.tenant_id;
END;
CREATE TRIGGER plan_roles_update AFTER UPDATE ON roles BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id IN (OLD.tenant_id, NEW.tenant_id);
END;
CREATE TRIGGER plan_roles_delete AFTER DELETE ON roles BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = OLD.tenant_id;
END;

CREATE TRIGGER plan_role_mappings_insert AFTER INSERT ON role_mappings BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = NEW.tenant_id;
END;
CREATE TRIGGER plan_role_mappings_update AFTER UPDATE ON role_mappings BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id IN (OLD.tenant_id, NEW.tenant_id);
END;
CREATE TRIGGER plan_role_mappings_delete AFTER DELETE ON role_mappings BEGIN
    UPDATE tenants SET plan_version = plan_version + 1 WHERE id = OLD.tenant_id;
END;

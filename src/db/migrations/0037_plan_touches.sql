-- What changed since a plan, so that `ops::reconcile::Plans` plans again only the people
-- a change can move (and those whose keys they share) instead of the whole tenant: one
-- row per directory user, member or matching key written since, kept once however often
-- it was written (a write replaces its row, which takes a later `seq`). Kind 0 says
-- "anything may have moved" (settings, roles, role mappings, a bulk member write); 1 a
-- directory user by SCIM id; 2 a member by id; 3 a key a user or member no longer holds
-- (folded, as stored), which people still holding it may now match or be free of.
-- Since this migration every tenant's plan is made and stored, whether its page was
-- looked at or not (`stored_plans.looked_at` 0: never), so that the first look finds it.
-- Triggers rather than calls in Rust, as for the plan version (0014): a write path that
-- forgot the call would show admins a stale plan. A touch is written again as a delete
-- and an insert, not `INSERT OR REPLACE`: the writing statement's own conflict clause
-- (`UPDATE OR FAIL`) would override the trigger's. Rows up to a stored plan's `seq` are
-- dropped when it is stored; a tenant never planned keeps at most one row per person and
-- key.
CREATE TABLE plan_touches (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL,
    kind      INTEGER NOT NULL CHECK (kind IN (0, 1, 2, 3)),
    key       TEXT NOT NULL,
    UNIQUE (tenant_id, kind, key)
);
CREATE INDEX plan_touches_since ON plan_touches(tenant_id, seq);

-- Up to which `seq` a tenant's touches were dropped: a plan made before it cannot be
-- brought up to date from them.
ALTER TABLE stored_plans ADD COLUMN touched_to INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER touch_users_insert AFTER INSERT ON users BEGIN
    DELETE FROM plan_touches WHERE tenant_id = NEW.tenant_id AND kind = 1 AND key = NEW.id;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT NEW.tenant_id, 1, NEW.id;
END;
CREATE TRIGGER touch_users_update AFTER UPDATE ON users BEGIN
    DELETE FROM plan_touches WHERE tenant_id = NEW.tenant_id AND kind = 1 AND key = NEW.id;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT NEW.tenant_id, 1, NEW.id;
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 3 AND key = OLD.user_name_fold AND OLD.user_name_fold IS NOT NEW.user_name_fold;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 3, OLD.user_name_fold WHERE OLD.user_name_fold IS NOT NEW.user_name_fold;
END;
CREATE TRIGGER touch_users_delete AFTER DELETE ON users BEGIN
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 1 AND key = OLD.id;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 1, OLD.id;
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 3 AND key = OLD.user_name_fold;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 3, OLD.user_name_fold;
END;
-- A user's emails are written again with it; the ones it had are keys it may have left.
CREATE TRIGGER touch_user_emails_delete AFTER DELETE ON user_emails BEGIN
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 3 AND key = OLD.value_fold;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 3, OLD.value_fold;
END;

-- A membership moves its user's role. One removed with its user finds no user any more;
-- the user's own trigger touched it. Nested groups give no role.
CREATE TRIGGER touch_group_members_insert AFTER INSERT ON group_members BEGIN
    DELETE FROM plan_touches WHERE kind = 1 AND (tenant_id, key) IN (SELECT tenant_id, id FROM users WHERE pk = NEW.member_user_pk);
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT tenant_id, 1, id FROM users WHERE pk = NEW.member_user_pk;
END;
CREATE TRIGGER touch_group_members_update AFTER UPDATE ON group_members BEGIN
    DELETE FROM plan_touches WHERE kind = 1 AND (tenant_id, key) IN (SELECT tenant_id, id FROM users WHERE pk IN (OLD.member_user_pk, NEW.member_user_pk));
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT tenant_id, 1, id FROM users WHERE pk IN (OLD.member_user_pk, NEW.member_user_pk);
END;
CREATE TRIGGER touch_group_members_delete AFTER DELETE ON group_members BEGIN
    DELETE FROM plan_touches WHERE kind = 1 AND (tenant_id, key) IN (SELECT tenant_id, id FROM users WHERE pk = OLD.member_user_pk);
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT tenant_id, 1, id FROM users WHERE pk = OLD.member_user_pk;
END;
-- A renamed group moves its members' roles (a deleted one takes its memberships, above).
CREATE TRIGGER touch_groups_update AFTER UPDATE ON groups
WHEN OLD.display_name IS NOT NEW.display_name OR OLD.id IS NOT NEW.id BEGIN
    DELETE FROM plan_touches WHERE kind = 1 AND (tenant_id, key) IN (SELECT tenant_id, id FROM users WHERE pk IN (SELECT member_user_pk FROM group_members WHERE group_pk = NEW.pk));
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT tenant_id, 1, id FROM users WHERE pk IN (SELECT member_user_pk FROM group_members WHERE group_pk = NEW.pk);
END;

CREATE TRIGGER touch_members_insert AFTER INSERT ON members BEGIN
    DELETE FROM plan_touches WHERE tenant_id = NEW.tenant_id AND kind = 2 AND key = NEW.id;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT NEW.tenant_id, 2, NEW.id;
END;
CREATE TRIGGER touch_members_update AFTER UPDATE ON members BEGIN
    DELETE FROM plan_touches WHERE tenant_id = NEW.tenant_id AND kind = 2 AND key = NEW.id;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT NEW.tenant_id, 2, NEW.id;
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 3 AND key = OLD.email_fold AND OLD.email_fold IS NOT NULL AND OLD.email_fold IS NOT NEW.email_fold;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 3, OLD.email_fold WHERE OLD.email_fold IS NOT NULL AND OLD.email_fold IS NOT NEW.email_fold;
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 3 AND key = OLD.user_name_fold AND OLD.user_name_fold IS NOT NULL AND OLD.user_name_fold IS NOT NEW.user_name_fold;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 3, OLD.user_name_fold WHERE OLD.user_name_fold IS NOT NULL AND OLD.user_name_fold IS NOT NEW.user_name_fold;
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 1 AND key = OLD.user_id AND OLD.user_id IS NOT NULL AND OLD.user_id IS NOT NEW.user_id;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 1, OLD.user_id WHERE OLD.user_id IS NOT NULL AND OLD.user_id IS NOT NEW.user_id;
END;
CREATE TRIGGER touch_members_delete AFTER DELETE ON members BEGIN
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 2 AND key = OLD.id;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 2, OLD.id;
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 3 AND key = OLD.email_fold AND OLD.email_fold IS NOT NULL;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 3, OLD.email_fold WHERE OLD.email_fold IS NOT NULL;
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 3 AND key = OLD.user_name_fold AND OLD.user_name_fold IS NOT NULL;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 3, OLD.user_name_fold WHERE OLD.user_name_fold IS NOT NULL;
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 1 AND key = OLD.user_id AND OLD.user_id IS NOT NULL;
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 1, OLD.user_id WHERE OLD.user_id IS NOT NULL;
END;

CREATE TRIGGER touch_settings_insert AFTER INSERT ON tenant_settings BEGIN
    DELETE FROM plan_touches WHERE tenant_id = NEW.tenant_id AND kind = 0 AND key = '';
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT NEW.tenant_id, 0, '';
END;
CREATE TRIGGER touch_settings_update AFTER UPDATE ON tenant_settings BEGIN
    DELETE FROM plan_touches WHERE tenant_id = NEW.tenant_id AND kind = 0 AND key = '';
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT NEW.tenant_id, 0, '';
END;
CREATE TRIGGER touch_settings_delete AFTER DELETE ON tenant_settings BEGIN
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 0 AND key = '';
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 0, '';
END;
CREATE TRIGGER touch_roles_insert AFTER INSERT ON roles BEGIN
    DELETE FROM plan_touches WHERE tenant_id = NEW.tenant_id AND kind = 0 AND key = '';
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT NEW.tenant_id, 0, '';
END;
CREATE TRIGGER touch_roles_update AFTER UPDATE ON roles BEGIN
    DELETE FROM plan_touches WHERE tenant_id = NEW.tenant_id AND kind = 0 AND key = '';
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT NEW.tenant_id, 0, '';
END;
CREATE TRIGGER touch_roles_delete AFTER DELETE ON roles BEGIN
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 0 AND key = '';
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 0, '';
END;
CREATE TRIGGER touch_role_mappings_insert AFTER INSERT ON role_mappings BEGIN
    DELETE FROM plan_touches WHERE tenant_id = NEW.tenant_id AND kind = 0 AND key = '';
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT NEW.tenant_id, 0, '';
END;
CREATE TRIGGER touch_role_mappings_update AFTER UPDATE ON role_mappings BEGIN
    DELETE FROM plan_touches WHERE tenant_id = NEW.tenant_id AND kind = 0 AND key = '';
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT NEW.tenant_id, 0, '';
END;
CREATE TRIGGER touch_role_mappings_delete AFTER DELETE ON role_mappings BEGIN
    DELETE FROM plan_touches WHERE tenant_id = OLD.tenant_id AND kind = 0 AND key = '';
    INSERT INTO plan_touches (tenant_id, kind, key) SELECT OLD.tenant_id, 0, '';
END;

-- Users' keys as the plan reads them, trimmed of the white space Rust's `str::trim`
-- trims, so that the people holding a key are found by index.
CREATE INDEX users_plan_key ON users(tenant_id, trim(user_name_fold, char(9, 10, 11, 12, 13, 32, 133, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198, 8199, 8200, 8201, 8202, 8232, 8233, 8239, 8287, 12288)));
CREATE INDEX user_emails_plan_key ON user_emails(tenant_id, trim(value_fold, char(9, 10, 11, 12, 13, 32, 133, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198, 8199, 8200, 8201, 8202, 8232, 8233, 8239, 8287, 12288)));

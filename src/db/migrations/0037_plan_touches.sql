-- What changed since a plan, so that `ops::reconcile::Plans` plans again only the people
-- a change can move (and those whose keys they share) instead of the whole tenant: one
-- row per directory user, member or matching key written since, kept once however often
-- it was written (a later write moves its `version`). Kind 0 says "anything may have
-- moved" (settings, roles, role mappings, a bulk member write); 1 a directory user by SCIM
-- id; 2 a member by id; 3 a key a user or member no longer holds (folded, as stored),
-- which people still holding it may now match or be free of. Touches older than a
-- tenant's stored plan are dropped when it is stored; a tenant keeps at most one row per
-- person and key.
-- Since this migration every tenant's plan is made and stored, whether its page was
-- looked at or not (`stored_plans.looked_at` 0: never), so that the first look finds it.
-- Triggers rather than calls in Rust, as for the plan version (0014): a write path that
-- forgot the call would show admins a stale plan. A touch is an upsert, which the writing
-- statement's own conflict clause (`UPDATE OR FAIL`) does not override as it would an
-- `INSERT OR REPLACE`.
CREATE TABLE plan_touches (
    tenant_id INTEGER NOT NULL,
    kind      INTEGER NOT NULL CHECK (kind IN (0, 1, 2, 3)),
    key       TEXT NOT NULL,
    -- The tenant's plan version (0014) when it was last written, before or after that
    -- write's own bump (triggers fire in no set order): so a plan made at version v misses
    -- exactly the touches at v or later, and may plan again the last write it saw.
    version   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, kind, key)
) WITHOUT ROWID;

CREATE TRIGGER touch_users_insert AFTER INSERT ON users BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT NEW.tenant_id, 1, NEW.id, plan_version FROM tenants WHERE id = NEW.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_users_update AFTER UPDATE ON users BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT NEW.tenant_id, 1, NEW.id, plan_version FROM tenants WHERE id = NEW.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
-- Apart, so that the many writes that leave a key alone do not pay for it.
CREATE TRIGGER touch_users_renamed AFTER UPDATE OF user_name_fold ON users
WHEN OLD.user_name_fold IS NOT NEW.user_name_fold BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 3, OLD.user_name_fold, plan_version FROM tenants WHERE id = OLD.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_users_delete AFTER DELETE ON users BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 1, OLD.id, plan_version FROM tenants WHERE id = OLD.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 3, OLD.user_name_fold, plan_version FROM tenants WHERE id = OLD.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
-- A user's emails are written again with it; the ones it had are keys it may have left.
CREATE TRIGGER touch_user_emails_delete AFTER DELETE ON user_emails BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 3, OLD.value_fold, plan_version FROM tenants WHERE id = OLD.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;

-- A membership moves its user's role. One removed with its user finds no user any more;
-- the user's own trigger touched it. Nested groups give no role.
CREATE TRIGGER touch_group_members_insert AFTER INSERT ON group_members BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT u.tenant_id, 1, u.id, t.plan_version FROM users u JOIN tenants t ON t.id = u.tenant_id
     WHERE u.pk = NEW.member_user_pk
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_group_members_update AFTER UPDATE ON group_members BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT u.tenant_id, 1, u.id, t.plan_version FROM users u JOIN tenants t ON t.id = u.tenant_id
     WHERE u.pk IN (OLD.member_user_pk, NEW.member_user_pk)
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_group_members_delete AFTER DELETE ON group_members BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT u.tenant_id, 1, u.id, t.plan_version FROM users u JOIN tenants t ON t.id = u.tenant_id
     WHERE u.pk = OLD.member_user_pk
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
-- A renamed group moves its members' roles (a deleted one takes its memberships, above).
CREATE TRIGGER touch_groups_update AFTER UPDATE ON groups
WHEN OLD.display_name IS NOT NEW.display_name OR OLD.id IS NOT NEW.id BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT u.tenant_id, 1, u.id, t.plan_version FROM users u JOIN tenants t ON t.id = u.tenant_id
     WHERE u.pk IN (SELECT member_user_pk FROM group_members WHERE group_pk = NEW.pk)
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;

CREATE TRIGGER touch_members_insert AFTER INSERT ON members BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT NEW.tenant_id, 2, NEW.id, plan_version FROM tenants WHERE id = NEW.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
-- Of what the plan reads (`db::members::for_plan`): a write of `updated_at` or
-- `last_directory` alone moves nobody's plan.
CREATE TRIGGER touch_members_update AFTER UPDATE OF id, email, user_name, given_name,
    family_name, display_name, role, role_reason, status, managed, source, user_id,
    delete_after ON members BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT NEW.tenant_id, 2, NEW.id, plan_version FROM tenants WHERE id = NEW.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_members_rekeyed AFTER UPDATE OF email_fold, user_name_fold, user_id ON members
WHEN OLD.email_fold IS NOT NEW.email_fold OR OLD.user_name_fold IS NOT NEW.user_name_fold
  OR OLD.user_id IS NOT NEW.user_id BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 3, OLD.email_fold, plan_version FROM tenants WHERE id = OLD.tenant_id AND OLD.email_fold IS NOT NULL AND OLD.email_fold IS NOT NEW.email_fold
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 3, OLD.user_name_fold, plan_version FROM tenants WHERE id = OLD.tenant_id AND OLD.user_name_fold IS NOT NULL AND OLD.user_name_fold IS NOT NEW.user_name_fold
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 1, OLD.user_id, plan_version FROM tenants WHERE id = OLD.tenant_id AND OLD.user_id IS NOT NULL AND OLD.user_id IS NOT NEW.user_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_members_delete AFTER DELETE ON members BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 2, OLD.id, plan_version FROM tenants WHERE id = OLD.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 3, OLD.email_fold, plan_version FROM tenants WHERE id = OLD.tenant_id AND OLD.email_fold IS NOT NULL
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 3, OLD.user_name_fold, plan_version FROM tenants WHERE id = OLD.tenant_id AND OLD.user_name_fold IS NOT NULL
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 1, OLD.user_id, plan_version FROM tenants WHERE id = OLD.tenant_id AND OLD.user_id IS NOT NULL
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;

CREATE TRIGGER touch_settings_insert AFTER INSERT ON tenant_settings BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT NEW.tenant_id, 0, '', plan_version FROM tenants WHERE id = NEW.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_settings_update AFTER UPDATE ON tenant_settings BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT NEW.tenant_id, 0, '', plan_version FROM tenants WHERE id = NEW.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_settings_delete AFTER DELETE ON tenant_settings BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 0, '', plan_version FROM tenants WHERE id = OLD.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_roles_insert AFTER INSERT ON roles BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT NEW.tenant_id, 0, '', plan_version FROM tenants WHERE id = NEW.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_roles_update AFTER UPDATE ON roles BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT NEW.tenant_id, 0, '', plan_version FROM tenants WHERE id = NEW.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_roles_delete AFTER DELETE ON roles BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 0, '', plan_version FROM tenants WHERE id = OLD.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_role_mappings_insert AFTER INSERT ON role_mappings BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT NEW.tenant_id, 0, '', plan_version FROM tenants WHERE id = NEW.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_role_mappings_update AFTER UPDATE ON role_mappings BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT NEW.tenant_id, 0, '', plan_version FROM tenants WHERE id = NEW.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;
CREATE TRIGGER touch_role_mappings_delete AFTER DELETE ON role_mappings BEGIN
    INSERT INTO plan_touches (tenant_id, kind, key, version)
    SELECT OLD.tenant_id, 0, '', plan_version FROM tenants WHERE id = OLD.tenant_id
    ON CONFLICT (tenant_id, kind, key) DO UPDATE SET version = excluded.version;
END;

-- The few users whose userName or email has white space at its edges, which the plan trims
-- (as Rust's `str::trim` does): the others are found by the plain indexes on the folds.
CREATE INDEX users_padded ON users(tenant_id)
 WHERE user_name_fold <> trim(user_name_fold, char(9, 10, 11, 12, 13, 32, 133, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198, 8199, 8200, 8201, 8202, 8232, 8233, 8239, 8287, 12288));
CREATE INDEX user_emails_padded ON user_emails(tenant_id)
 WHERE value_fold <> trim(value_fold, char(9, 10, 11, 12, 13, 32, 133, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198, 8199, 8200, 8201, 8202, 8232, 8233, 8239, 8287, 12288));

-- `scim_fold` now composes text (NFC) before lowercasing it (`scim::filter::fold`), so that
-- canonically equivalent spellings of a name are one: `José` with a precomposed `é` and
-- with `e` and a combining accent. The stored folds are brought to the new fold; only text
-- that is not already composed changes (ASCII never does). Where two rows now fold alike
-- under a unique index (a duplicate the old fold let in), the one that would take a used
-- fold keeps its old one (OR IGNORE) rather than failing the upgrade: both stay, nothing
-- is merged, and each is still reached by its id; a lookup by name, in either spelling,
-- now finds the one whose fold is composed. Emails keep no unfolded copy; their folds are
-- folded again.
UPDATE OR IGNORE users SET user_name_fold = scim_fold(user_name)
 WHERE user_name_fold IS NOT scim_fold(user_name);
UPDATE users SET display_name_fold = scim_fold(display_name)
 WHERE display_name IS NOT NULL AND display_name_fold IS NOT scim_fold(display_name);
UPDATE user_emails SET value_fold = scim_fold(value_fold), type_fold = scim_fold(type_fold)
 WHERE value_fold IS NOT scim_fold(value_fold) OR type_fold IS NOT scim_fold(type_fold);
UPDATE OR IGNORE groups SET display_name_fold = scim_fold(display_name)
 WHERE display_name_fold IS NOT scim_fold(display_name);
UPDATE OR IGNORE members SET email_fold = scim_fold(email)
 WHERE email IS NOT NULL AND email_fold IS NOT scim_fold(email);
UPDATE OR IGNORE members SET user_name_fold = scim_fold(user_name)
 WHERE user_name IS NOT NULL AND user_name_fold IS NOT scim_fold(user_name);
UPDATE OR IGNORE role_mappings SET group_fold = scim_fold(group_name)
 WHERE group_fold IS NOT scim_fold(group_name);

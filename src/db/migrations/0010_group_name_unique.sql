-- A group's displayName is unique per tenant, case-insensitively (compared folded, as
-- display_name_fold stores it). Microsoft Entra requires it, and authentik adopts an
-- existing group only when its POST gets 409 uniqueness.
--
-- Groups already stored under the same name are kept as they are, never merged or
-- renamed: merging would move memberships and roles the IdP did not ask to move. The
-- first of each name (lowest pk) keeps name_clash = 0; each later one is marked with its
-- own pk, which keeps the unique index below creatable on any existing database. Every
-- new name and every rename writes name_clash = 0, so from now on the index refuses a
-- second group of a name, and `serve` warns about (and the admin Groups page lists) the
-- duplicates that predate it until an admin or the IdP renames or deletes them.
ALTER TABLE groups ADD COLUMN name_clash INTEGER NOT NULL DEFAULT 0;

UPDATE groups SET name_clash = pk
WHERE EXISTS (
    SELECT 1 FROM groups AS earlier
    WHERE earlier.tenant_id = groups.tenant_id
      AND earlier.display_name_fold = groups.display_name_fold
      AND earlier.pk < groups.pk
);

CREATE UNIQUE INDEX groups_name_unique ON groups(tenant_id, display_name_fold, name_clash);

-- A user's `manager` is shown with its `$ref` only while the manager is one of the tenant's
-- users (ops::users), so deleting a user changes what the users it manages show: their
-- versions and `lastModified` must move (db::users::delete). This index finds them without
-- reading every user of the tenant; only users with a manager have an entry.
CREATE INDEX users_manager ON users(
    tenant_id,
    json_extract(data, '$."urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".manager.value')
) WHERE json_extract(data, '$."urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".manager.value') IS NOT NULL;

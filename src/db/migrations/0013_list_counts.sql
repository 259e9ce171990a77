-- Unfiltered SCIM lists (`GET /Users?startIndex=…`, how Okta and Entra walk a directory)
-- answer `totalResults` on every page. Counting walked one index entry per user of the
-- tenant (~4 ms at 100 000 users, on every page); these counts, kept by triggers in the
-- same transaction as every insert and delete whoever writes (SCIM, sync, the CLI, seeds),
-- make it one row read.
--
-- The deletion counters tell a remembered `startIndex` position (where the next page of a
-- walk starts) from a stale one: new rows get a pk above every existing one, so only a
-- deletion moves the rows after it to a lower position.
CREATE TABLE resource_counts (
    tenant_id       INTEGER PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    users           INTEGER NOT NULL DEFAULT 0,
    groups          INTEGER NOT NULL DEFAULT 0,
    users_deleted   INTEGER NOT NULL DEFAULT 0,
    groups_deleted  INTEGER NOT NULL DEFAULT 0
);

INSERT INTO resource_counts (tenant_id, users, groups)
SELECT t.id,
       (SELECT count(*) FROM users u WHERE u.tenant_id = t.id),
       (SELECT count(*) FROM groups g WHERE g.tenant_id = t.id)
  FROM tenants t;

CREATE TRIGGER users_counted AFTER INSERT ON users BEGIN
    INSERT INTO resource_counts (tenant_id, users) VALUES (new.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET users = users + 1;
END;
CREATE TRIGGER users_uncounted AFTER DELETE ON users BEGIN
    UPDATE resource_counts SET users = users - 1, users_deleted = users_deleted + 1
     WHERE tenant_id = old.tenant_id;
END;
CREATE TRIGGER groups_counted AFTER INSERT ON groups BEGIN
    INSERT INTO resource_counts (tenant_id, groups) VALUES (new.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET groups = groups + 1;
END;
CREATE TRIGGER groups_uncounted AFTER DELETE ON groups BEGIN
    UPDATE resource_counts SET groups = groups - 1, groups_deleted = groups_deleted + 1
     WHERE tenant_id = old.tenant_id;
END;

-- A tenant's rows in pk order (every index holds the pk): a `startIndex` page finds its
-- first pk by stepping over index entries of a few bytes each instead of whole rows, then
-- reads its rows by primary key.
CREATE INDEX users_tenant ON users(tenant_id);
CREATE INDEX groups_tenant ON groups(tenant_id);

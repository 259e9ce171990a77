-- The guard against mass deprovisioning weighs every deprovisioning write against the
-- tenant's active members: it counted them in the writer, once per write that suspends,
-- archives or deletes someone (3.5 ms at 100 000 members, so a directory being switched
-- off at the IdP ran at ~300 deactivations a second). The count is now kept beside the
-- tenant's other counts, by triggers in the transaction of every write to members whoever
-- writes, and read in one row.
ALTER TABLE resource_counts ADD COLUMN members_active INTEGER NOT NULL DEFAULT 0;

INSERT INTO resource_counts (tenant_id, members_active)
SELECT t.id, (SELECT count(*) FROM members m WHERE m.tenant_id = t.id AND m.status = 'active')
  FROM tenants t WHERE true
    ON CONFLICT (tenant_id) DO UPDATE SET members_active = excluded.members_active;

CREATE TRIGGER members_active_counted AFTER INSERT ON members WHEN new.status = 'active' BEGIN
    INSERT INTO resource_counts (tenant_id, members_active) VALUES (new.tenant_id, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET members_active = members_active + 1;
END;
CREATE TRIGGER members_active_uncounted AFTER DELETE ON members WHEN old.status = 'active' BEGIN
    UPDATE resource_counts SET members_active = members_active - 1
     WHERE tenant_id = old.tenant_id;
END;
-- A member's tenant never changes; its status going to or from active moves the count.
CREATE TRIGGER members_active_moved AFTER UPDATE OF status ON members
WHEN (old.status = 'active') <> (new.status = 'active') BEGIN
    INSERT INTO resource_counts (tenant_id, members_active)
    VALUES (new.tenant_id, new.status = 'active')
        ON CONFLICT (tenant_id)
        DO UPDATE SET members_active = members_active + (new.status = 'active') - (old.status = 'active');
END;

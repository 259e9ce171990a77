-- The audit log becomes a hash chain per tenant (auth::chain): each entry stores the hash
-- of the entry before it in its chain and its own. Entries written before this migration
-- are sealed once, in id order, when the database is next opened (db::audit::seal_pending),
-- which is the one time an entry's hash may be written after the entry.
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;

DROP TRIGGER audit_log_no_update;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN OLD.hash IS NOT NULL
    OR NEW.id IS NOT OLD.id OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.at IS NOT OLD.at
    OR NEW.actor IS NOT OLD.actor OR NEW.action IS NOT OLD.action
    OR NEW.target IS NOT OLD.target OR NEW.outcome IS NOT OLD.outcome
    OR NEW.status IS NOT OLD.status OR NEW.request_id IS NOT OLD.request_id
    OR NEW.detail IS NOT OLD.detail
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- The newest entry written before the chain existed; the row is removed once they are sealed.
CREATE TABLE audit_chain_pending (upto_id INTEGER NOT NULL);
INSERT INTO audit_chain_pending SELECT max(id) FROM audit_log HAVING count(*) > 0;

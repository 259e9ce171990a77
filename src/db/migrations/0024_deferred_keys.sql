-- The directory's tables carry triggers (plan version, counts), and SQLite keeps a
-- statement journal for every insert or update of a table with triggers that may abort
-- half-way: a copy of each page the statement touches, so that it can undo the statement
-- alone. An immediate foreign key (of the row, or of a row a trigger inserts) is such a
-- possible abort, and so is a constraint with the default ABORT policy. scimd never needs
-- that undo: a write that fails is undone whole (its savepoint or its transaction), never
-- one statement of it. Deferred keys are checked at commit instead, where a dangling one
-- still fails the commit; the db layer writes these tables `OR FAIL`, which for a
-- one-row statement undoes what ABORT undoes, as the row's checks run before it is
-- written. Together they take the statement journal (~10 % of a POST's writer time) off
-- every write of users, groups, memberships and members.
--
-- A foreign key's deferral changes nothing stored, so the tables' definitions are edited
-- in place (SQLite's "other kinds of table schema changes", through writable_schema), not
-- rebuilt: no copy of a large directory at upgrade. `migrations::apply` bumps the schema
-- version and checks the edited schema before it commits.
UPDATE sqlite_schema
   SET sql = replace(sql, 'ON DELETE CASCADE', 'ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED')
 WHERE type = 'table'
   AND name IN ('users', 'groups', 'group_members', 'members', 'resource_counts', 'member_counts');

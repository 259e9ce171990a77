-- `emails.value eq` (how Entra and others find a user before creating it) is answered by
-- user_emails_value, which held the folded value alone: each match then cost a read of its
-- user_emails row for the user and the type, a random page of its own (4.4 pread calls per
-- lookup against 3.2 for `userName eq`). With the type and the user in the index, the index
-- answers `value eq` and `type eq … and value eq …` by itself. Same name, so plans keep
-- naming it; the statistics the dropped index took along are counted again.
DROP INDEX user_emails_value;
CREATE INDEX user_emails_value ON user_emails(value_fold, type_fold, user_pk);
ANALYZE user_emails;

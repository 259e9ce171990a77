-- What a member's directory user last said of the person (its `externalId` and profile
-- attributes, as JSON), kept when the IdP deletes that user: the member, archived, goes on
-- showing apps what its `member.archived` event showed, and a member relinked to a user
-- created anew names what it had before. NULL while the user exists (it is read live).
ALTER TABLE members ADD COLUMN last_directory TEXT;

-- A user's groups (`User.groups`, rendered on every read of a user) are found through
-- group_members_by_user, which held the user alone: each membership then cost a read of the
-- group_members row for its group, a random page of its own (~3 % of a `userName eq`
-- lookup, and one page per user of a 100-user list page). With the group in the index, the
-- index answers by itself. Same name, so plans keep naming it.
DROP INDEX group_members_by_user;
CREATE INDEX group_members_by_user ON group_members(member_user_pk, group_pk)
    WHERE member_user_pk IS NOT NULL;
-- The dropped index took its statistics along; without them the planner may walk every
-- group for each user. The table's are counted again (tens of milliseconds per 100 000
-- memberships).
ANALYZE group_members;

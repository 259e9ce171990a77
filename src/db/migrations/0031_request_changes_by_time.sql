-- The request inspector found a request's events and audit entries through an index of
-- their request ids: two index entries more for every change of every SCIM write, read
-- only when an admin opens one request. Those rows are stamped while the request is
-- answered, so the inspector now looks for them in that span through the time indexes
-- the feed and the audit log keep anyway (`requests::Entry::while_answered`).
DROP INDEX events_request;
DROP INDEX audit_log_request;

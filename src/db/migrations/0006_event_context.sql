-- Who caused each event, and in which request: the feed and webhooks say it to apps.
-- Events written before this migration have neither.
ALTER TABLE events ADD COLUMN actor TEXT;
ALTER TABLE events ADD COLUMN request_id TEXT;

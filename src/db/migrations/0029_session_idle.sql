-- When each admin session was last used (at most a minute behind): a session unused for
-- `ops::admins::SESSION_IDLE_MINUTES` ends, however long its login had left. Sessions
-- from before this migration count from when they began.
ALTER TABLE admin_sessions ADD COLUMN last_seen_at TEXT;

-- The same index as SQLite's (migrations/sqlite): PostgreSQL stamps nothing
-- yet and computes the feed, but both schemas stay alike.
CREATE INDEX feed_stamps_by_backordered ON feed_stamps (backordered);

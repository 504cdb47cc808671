-- The tables of the SQLite feed stamps (migrations/sqlite, same version),
-- without the triggers: PostgreSQL has no per-SKU pool versions (see
-- *_pool_versions.sql), so its recalculations stamp nothing and the feed
-- is always computed from the stored state. The tables exist so that
-- both schemas stay alike.
CREATE TABLE feed_stamps (
    sku            TEXT PRIMARY KEY,
    epoch          BIGINT NOT NULL,
    version        BIGINT NOT NULL,
    backordered    BIGINT NOT NULL,
    waiting_orders BIGINT NOT NULL,
    oldest_waiting TEXT
);

CREATE TABLE feed_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO feed_epoch (id, epoch) VALUES (1, 0);

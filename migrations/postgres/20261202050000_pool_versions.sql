-- The pool cache's version tables (src/store/recalculate/pool_cache.rs),
-- the same as on SQLite, without the triggers that fill them: on PostgreSQL
-- the cache is off for now. Per-SKU version rows bumped by triggers made
-- two recalculations of groups that share an order lock each other's
-- version rows (a deadlock under several workers); a log stamped with the
-- writing transaction's id and read against the cache's snapshot
-- (pg_visible_in_snapshot) would need no such row lock. The tables exist
-- so that the shared sequence's statements (pruning, the import's pause)
-- run alike on both databases.

CREATE TABLE pool_versions (
    sku     TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);

CREATE TABLE pool_log (
    sku      TEXT NOT NULL,
    version  BIGINT NOT NULL,
    order_id TEXT,                    -- NULL: the SKU's stock changed
    PRIMARY KEY (sku, version)
);

CREATE TABLE pool_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO pool_epoch (id, epoch) VALUES (1, 0);

CREATE TABLE pool_log_paused (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);

-- The console's charts; see the SQLite migration of the same name.
CREATE TABLE backorder_samples (
    minute BIGINT PRIMARY KEY,
    backordered_units BIGINT NOT NULL,
    backordered_orders BIGINT NOT NULL,
    lag_max_ms BIGINT,
    lag_count BIGINT NOT NULL
);

-- The console's charts; see the SQLite migration of the same name.
CREATE TABLE backorder_samples (
    minute BIGINT PRIMARY KEY,
    backordered_units BIGINT NOT NULL,
    backordered_orders BIGINT NOT NULL,
    lag_max_ms BIGINT,
    lag_count BIGINT NOT NULL
);

-- The sample's totals read this index alone (an index-only scan).
CREATE INDEX orders_backordered_qty ON orders (backorder_qty)
    WHERE backorder_status IN ('full', 'partial');

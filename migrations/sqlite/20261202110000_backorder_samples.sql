-- The console's charts (src/console/charts.rs): one row per minute with
-- the backordered units and orders as stored at that minute, and the
-- event-to-result lags measured in it. Written by every `serve` (the
-- latest figures and the longest lag win), pruned after 7 days.
CREATE TABLE backorder_samples (
    minute INTEGER PRIMARY KEY,
    backordered_units INTEGER NOT NULL,
    backordered_orders INTEGER NOT NULL,
    lag_max_ms INTEGER,
    lag_count INTEGER NOT NULL
);

-- The sample's totals (store/samples.rs) read this index alone: a sum
-- over the backordered orders without visiting the table (0.35 s of CPU
-- on the 1M-line book without it, 0.09 s with it).
CREATE INDEX orders_backordered_qty ON orders (backorder_qty)
    WHERE backorder_status IN ('full', 'partial');

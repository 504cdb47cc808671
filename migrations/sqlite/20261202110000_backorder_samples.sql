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

-- A search of the availability feed by backordered units (the console's
-- product search, GET /v1/availability?backordered_min=) reads only the
-- current stamps within its bounds (this index) and the SKUs whose stamp
-- is not current, found from pool_versions (src/store/sqlite/feed_stamps.rs).
CREATE INDEX feed_stamps_by_backordered ON feed_stamps (backordered);

-- For that, every SKU with lines has a version row: the triggers add one
-- on any change of a line, an import adds them for the lines it loads, and
-- this adds them for the lines stored now. Version 0 is what a SKU without
-- a row is read as, so no pool or stamp changes meaning.
INSERT INTO pool_versions (sku, version)
SELECT DISTINCT sku, 0 FROM order_lines WHERE true
ON CONFLICT (sku) DO NOTHING;

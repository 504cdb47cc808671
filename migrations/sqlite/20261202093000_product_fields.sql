-- What a product adds for channels and purchasing (docs/reference/snapshot.md):
-- its vendor, whether it may be sold beyond free stock, and per-warehouse
-- backorder thresholds as a JSON object (NULL: none). None of them changes
-- an allocation; the availability feed and the purchasing report read them.
ALTER TABLE products ADD COLUMN vendor TEXT;
ALTER TABLE products ADD COLUMN allow_backorders INTEGER NOT NULL DEFAULT 1;
ALTER TABLE products ADD COLUMN backorder_thresholds TEXT;

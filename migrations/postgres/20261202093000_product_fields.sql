-- What a product adds for channels and purchasing; see the SQLite
-- migration of the same name.
ALTER TABLE products ADD COLUMN vendor TEXT;
ALTER TABLE products ADD COLUMN allow_backorders BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE products ADD COLUMN backorder_thresholds TEXT;

-- What lets the availability feed be read from the entries recalculations
-- stored (availability_figures) instead of being computed from every line
-- (src/store/feed_stamps.rs). Each recalculation's write-back stamps every
-- SKU of its group with the SKU's pool version after the write
-- (pool_versions, bumped by the triggers of *_pool_versions.sql on any
-- change of its lines, their orders, its stock or purchase orders) and
-- with the feed epoch below. A stamp whose version and epoch are still
-- the current ones says that nothing the SKU's entry is computed from has
-- changed since, so the stored entry is the one the stored state gives.
-- waiting_orders and oldest_waiting are the purchasing report's figures of
-- the SKU that its entry does not hold; backordered is the entry's, so that
-- a search by backordered units reads only the entries it can list.
CREATE TABLE feed_stamps (
    sku            TEXT PRIMARY KEY NOT NULL,
    epoch          INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    backordered    INTEGER NOT NULL,
    waiting_orders INTEGER NOT NULL,
    oldest_waiting TEXT
) WITHOUT ROWID;

-- Moves on every change of what every SKU's entry depends on: the
-- settings, the warehouses, the products (replacement groups, vendors,
-- allowances), a stock or purchase-order row moved to another SKU, and an
-- import (which always writes client_settings). pool_epoch is not used for
-- this because every batch of a full run moves it.
CREATE TABLE feed_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO feed_epoch (id, epoch) VALUES (1, 0);

-- Settings: not gated by the pool log's pause, so an import moves it.
CREATE TRIGGER feed_settings_inserted AFTER INSERT ON client_settings
BEGIN UPDATE feed_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER feed_settings_updated AFTER UPDATE ON client_settings
BEGIN UPDATE feed_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER feed_settings_deleted AFTER DELETE ON client_settings
BEGIN UPDATE feed_epoch SET epoch = epoch + 1; END;

-- Products and warehouses: an import rewrites every row with the log
-- paused (it moves the epoch through client_settings once instead).
CREATE TRIGGER feed_products_inserted AFTER INSERT ON products
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE feed_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER feed_products_updated AFTER UPDATE ON products
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE feed_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER feed_products_deleted AFTER DELETE ON products
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE feed_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER feed_warehouses_inserted AFTER INSERT ON warehouses
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE feed_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER feed_warehouses_updated AFTER UPDATE ON warehouses
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE feed_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER feed_warehouses_deleted AFTER DELETE ON warehouses
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE feed_epoch SET epoch = epoch + 1; END;

-- A row moved to another SKU bumps only the new SKU's version.
CREATE TRIGGER feed_inventory_moved AFTER UPDATE OF sku ON inventory
WHEN OLD.sku IS NOT NEW.sku
BEGIN UPDATE feed_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER feed_purchase_order_moved AFTER UPDATE OF sku ON purchase_orders
WHEN OLD.sku IS NOT NEW.sku
BEGIN UPDATE feed_epoch SET epoch = epoch + 1; END;

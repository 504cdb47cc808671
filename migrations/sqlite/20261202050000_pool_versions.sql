-- What a cached pool depends on, versioned (src/store/recalculate/pool_cache.rs).
-- Every change to a row a pool is computed from bumps its SKU's version and
-- logs what changed, in the same transaction, whoever makes it: the daemon,
-- another process, a hand-written UPDATE. Settings, warehouses and products
-- (which decide replacement groups) bump the global epoch instead.
-- An import pauses the log (a row in pool_log_paused, in its own
-- transaction only) and bumps the epoch once at the end.

CREATE TABLE pool_versions (
    sku     TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE pool_log (
    sku      TEXT NOT NULL,
    version  INTEGER NOT NULL,
    order_id TEXT,                    -- NULL: the SKU's stock changed
    PRIMARY KEY (sku, version)
) WITHOUT ROWID;

CREATE TABLE pool_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO pool_epoch (id, epoch) VALUES (1, 0);

CREATE TABLE pool_log_paused (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);

CREATE TRIGGER pool_line_inserted AFTER INSERT ON order_lines
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN
    INSERT INTO pool_versions (sku, version) VALUES (NEW.sku, 1)
        ON CONFLICT (sku) DO UPDATE SET version = version + 1;
    INSERT INTO pool_log (sku, version, order_id)
        SELECT sku, version, NEW.order_id FROM pool_versions WHERE sku = NEW.sku;
END;

CREATE TRIGGER pool_line_updated AFTER UPDATE ON order_lines
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN
    INSERT INTO pool_versions (sku, version) VALUES (NEW.sku, 1)
        ON CONFLICT (sku) DO UPDATE SET version = version + 1;
    INSERT INTO pool_log (sku, version, order_id)
        SELECT sku, version, NEW.order_id FROM pool_versions WHERE sku = NEW.sku;
END;

-- A line moved to another order or SKU leaves its old pool too.
CREATE TRIGGER pool_line_moved AFTER UPDATE ON order_lines
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
    AND (OLD.sku IS NOT NEW.sku OR OLD.order_id IS NOT NEW.order_id)
BEGIN
    INSERT INTO pool_versions (sku, version) VALUES (OLD.sku, 1)
        ON CONFLICT (sku) DO UPDATE SET version = version + 1;
    INSERT INTO pool_log (sku, version, order_id)
        SELECT sku, version, OLD.order_id FROM pool_versions WHERE sku = OLD.sku;
END;

CREATE TRIGGER pool_line_deleted AFTER DELETE ON order_lines
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN
    INSERT INTO pool_versions (sku, version) VALUES (OLD.sku, 1)
        ON CONFLICT (sku) DO UPDATE SET version = version + 1;
    INSERT INTO pool_log (sku, version, order_id)
        SELECT sku, version, OLD.order_id FROM pool_versions WHERE sku = OLD.sku;
END;

-- A header, status, payment or stored total: every pool the order has a line in.
CREATE TRIGGER pool_order_updated AFTER UPDATE ON orders
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN
    INSERT INTO pool_versions (sku, version)
        SELECT DISTINCT sku, 1 FROM order_lines WHERE order_id = NEW.id
        ON CONFLICT (sku) DO UPDATE SET version = version + 1;
    INSERT INTO pool_log (sku, version, order_id)
        SELECT v.sku, v.version, NEW.id FROM pool_versions v
        WHERE v.sku IN (SELECT sku FROM order_lines WHERE order_id = NEW.id);
END;

CREATE TRIGGER pool_inventory_inserted AFTER INSERT ON inventory
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN
    INSERT INTO pool_versions (sku, version) VALUES (NEW.sku, 1)
        ON CONFLICT (sku) DO UPDATE SET version = version + 1;
    INSERT INTO pool_log (sku, version, order_id)
        SELECT sku, version, NULL FROM pool_versions WHERE sku = NEW.sku;
END;

CREATE TRIGGER pool_inventory_updated AFTER UPDATE ON inventory
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN
    INSERT INTO pool_versions (sku, version) VALUES (NEW.sku, 1)
        ON CONFLICT (sku) DO UPDATE SET version = version + 1;
    INSERT INTO pool_log (sku, version, order_id)
        SELECT sku, version, NULL FROM pool_versions WHERE sku = NEW.sku;
    UPDATE pool_epoch SET epoch = epoch + 1 WHERE OLD.sku IS NOT NEW.sku;
END;

CREATE TRIGGER pool_inventory_deleted AFTER DELETE ON inventory
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN
    INSERT INTO pool_versions (sku, version) VALUES (OLD.sku, 1)
        ON CONFLICT (sku) DO UPDATE SET version = version + 1;
    INSERT INTO pool_log (sku, version, order_id)
        SELECT sku, version, NULL FROM pool_versions WHERE sku = OLD.sku;
END;

CREATE TRIGGER pool_purchase_order_inserted AFTER INSERT ON purchase_orders
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN
    INSERT INTO pool_versions (sku, version) VALUES (NEW.sku, 1)
        ON CONFLICT (sku) DO UPDATE SET version = version + 1;
    INSERT INTO pool_log (sku, version, order_id)
        SELECT sku, version, NULL FROM pool_versions WHERE sku = NEW.sku;
END;

CREATE TRIGGER pool_purchase_order_updated AFTER UPDATE ON purchase_orders
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN
    INSERT INTO pool_versions (sku, version) VALUES (NEW.sku, 1)
        ON CONFLICT (sku) DO UPDATE SET version = version + 1;
    INSERT INTO pool_log (sku, version, order_id)
        SELECT sku, version, NULL FROM pool_versions WHERE sku = NEW.sku;
    -- A purchase order moved to another SKU leaves that pool too.
    UPDATE pool_epoch SET epoch = epoch + 1 WHERE OLD.sku IS NOT NEW.sku;
END;

CREATE TRIGGER pool_purchase_order_deleted AFTER DELETE ON purchase_orders
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN
    INSERT INTO pool_versions (sku, version) VALUES (OLD.sku, 1)
        ON CONFLICT (sku) DO UPDATE SET version = version + 1;
    INSERT INTO pool_log (sku, version, order_id)
        SELECT sku, version, NULL FROM pool_versions WHERE sku = OLD.sku;
END;

CREATE TRIGGER pool_products_inserted AFTER INSERT ON products
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE pool_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER pool_products_updated AFTER UPDATE ON products
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE pool_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER pool_products_deleted AFTER DELETE ON products
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE pool_epoch SET epoch = epoch + 1; END;

CREATE TRIGGER pool_warehouses_inserted AFTER INSERT ON warehouses
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE pool_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER pool_warehouses_updated AFTER UPDATE ON warehouses
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE pool_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER pool_warehouses_deleted AFTER DELETE ON warehouses
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE pool_epoch SET epoch = epoch + 1; END;

CREATE TRIGGER pool_settings_inserted AFTER INSERT ON client_settings
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE pool_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER pool_settings_updated AFTER UPDATE ON client_settings
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE pool_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER pool_settings_deleted AFTER DELETE ON client_settings
WHEN NOT EXISTS (SELECT 1 FROM pool_log_paused)
BEGIN UPDATE pool_epoch SET epoch = epoch + 1; END;

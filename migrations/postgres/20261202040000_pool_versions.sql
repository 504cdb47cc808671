-- What a cached pool depends on, versioned (src/store/recalculate/pool_cache.rs);
-- the same tables as on SQLite. Every change to a row a pool is computed from
-- bumps its SKU's version and logs what changed, in the same transaction,
-- whoever makes it. The version row stays locked to the commit, so a SKU's
-- versions commit in order and a version read implies every log row up to it.
-- Settings, warehouses and products bump the global epoch instead. An import
-- pauses the log (a row in pool_log_paused, seen by its own transaction only)
-- and bumps the epoch once at the end.

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

CREATE FUNCTION pool_bump(p_sku TEXT, p_order TEXT) RETURNS void AS $$
DECLARE
    v BIGINT;
BEGIN
    INSERT INTO pool_versions (sku, version) VALUES (p_sku, 1)
        ON CONFLICT (sku) DO UPDATE SET version = pool_versions.version + 1
        RETURNING version INTO v;
    INSERT INTO pool_log (sku, version, order_id) VALUES (p_sku, v, p_order);
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION pool_line_changed() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pool_log_paused) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM pool_bump(NEW.sku, NEW.order_id);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pool_bump(OLD.sku, OLD.order_id);
    ELSE
        PERFORM pool_bump(NEW.sku, NEW.order_id);
        IF OLD.sku IS DISTINCT FROM NEW.sku OR OLD.order_id IS DISTINCT FROM NEW.order_id THEN
            PERFORM pool_bump(OLD.sku, OLD.order_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER pool_line_changed AFTER INSERT OR UPDATE OR DELETE ON order_lines
    FOR EACH ROW EXECUTE FUNCTION pool_line_changed();

-- A header, status, payment or stored total: every pool the order has a
-- line in, in key order (two writers bump alike).
CREATE FUNCTION pool_order_changed() RETURNS trigger AS $$
DECLARE
    s TEXT;
BEGIN
    IF EXISTS (SELECT 1 FROM pool_log_paused) THEN
        RETURN NULL;
    END IF;
    FOR s IN SELECT DISTINCT sku FROM order_lines WHERE order_id = NEW.id ORDER BY sku LOOP
        PERFORM pool_bump(s, NEW.id);
    END LOOP;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER pool_order_changed AFTER UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION pool_order_changed();

CREATE FUNCTION pool_stock_changed() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pool_log_paused) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM pool_bump(OLD.sku, NULL);
    ELSE
        PERFORM pool_bump(NEW.sku, NULL);
        IF TG_OP = 'UPDATE' AND OLD.sku IS DISTINCT FROM NEW.sku THEN
            PERFORM pool_bump(OLD.sku, NULL);
        END IF;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER pool_inventory_changed AFTER INSERT OR UPDATE OR DELETE ON inventory
    FOR EACH ROW EXECUTE FUNCTION pool_stock_changed();
CREATE TRIGGER pool_purchase_order_changed AFTER INSERT OR UPDATE OR DELETE ON purchase_orders
    FOR EACH ROW EXECUTE FUNCTION pool_stock_changed();

CREATE FUNCTION pool_epoch_changed() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pool_log_paused) THEN
        UPDATE pool_epoch SET epoch = epoch + 1;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER pool_products_changed AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION pool_epoch_changed();
CREATE TRIGGER pool_warehouses_changed AFTER INSERT OR UPDATE OR DELETE ON warehouses
    FOR EACH STATEMENT EXECUTE FUNCTION pool_epoch_changed();
CREATE TRIGGER pool_settings_changed AFTER INSERT OR UPDATE OR DELETE ON client_settings
    FOR EACH STATEMENT EXECUTE FUNCTION pool_epoch_changed();

-- The stored state on PostgreSQL: the same tables and columns as the SQLite
-- schema (migrations/sqlite), with the same value formats (timestamps as
-- RFC 3339 UTC text, dates as YYYY-MM-DD, flags as 0/1), so that one codec
-- reads both backends and a database can move between them via export.

CREATE TABLE client_settings (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    settings TEXT NOT NULL            -- JSON, the snapshot's `settings`
);

CREATE TABLE warehouses (
    id       TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    kind     TEXT NOT NULL
);

CREATE TABLE products (
    sku             TEXT PRIMARY KEY,
    position        BIGINT NOT NULL,
    replacement_sku TEXT
);
CREATE INDEX products_by_replacement ON products (replacement_sku);

CREATE TABLE inventory (
    sku       TEXT NOT NULL,
    warehouse TEXT NOT NULL REFERENCES warehouses (id),
    on_hand   BIGINT NOT NULL,
    PRIMARY KEY (sku, warehouse)
);

CREATE TABLE purchase_orders (
    id            TEXT PRIMARY KEY,
    position      BIGINT NOT NULL,
    sku           TEXT NOT NULL,
    warehouse     TEXT NOT NULL REFERENCES warehouses (id),
    qty_ordered   BIGINT NOT NULL,
    qty_received  BIGINT NOT NULL,
    expected_date TEXT
);
CREATE INDEX purchase_orders_by_sku ON purchase_orders (sku);

-- Room on each page for the rewritten row: write-back updates only
-- unindexed columns, so PostgreSQL can update in place (HOT).
CREATE TABLE orders (
    id               TEXT PRIMARY KEY,
    position         BIGINT NOT NULL,
    order_date       TEXT NOT NULL,
    payment_date     TEXT,
    payment_status   TEXT NOT NULL,
    status           TEXT NOT NULL,
    rush             BIGINT NOT NULL,
    picked           BIGINT NOT NULL,
    ship_from        TEXT REFERENCES warehouses (id),
    backorder_status  TEXT NOT NULL DEFAULT 'none',
    backorder_qty     BIGINT NOT NULL DEFAULT 0,
    lines_open        BIGINT NOT NULL DEFAULT 0,
    lines_backordered BIGINT NOT NULL DEFAULT 0,
    lines_whole       BIGINT NOT NULL DEFAULT 0
) WITH (fillfactor = 80);
CREATE INDEX orders_by_position ON orders (position);

CREATE TABLE order_lines (
    id            TEXT PRIMARY KEY,
    sku           TEXT NOT NULL,
    order_id      TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    qty           BIGINT NOT NULL,
    backorder_qty BIGINT NOT NULL DEFAULT 0,
    eta           TEXT
) WITH (fillfactor = 80);
CREATE INDEX order_lines_by_sku ON order_lines (sku);
CREATE INDEX order_lines_by_order ON order_lines (order_id, position);

CREATE TABLE service_options (
    id                           INTEGER PRIMARY KEY CHECK (id = 1),
    recalculate_on_status_change BOOLEAN NOT NULL,
    defer_new_orders             BOOLEAN NOT NULL
);

CREATE TABLE received_events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    received_at TEXT NOT NULL
);

CREATE TABLE dirty_skus (
    sku        TEXT PRIMARY KEY,
    marked_seq BIGINT NOT NULL,
    cause      TEXT NOT NULL,
    marked_at  BIGINT NOT NULL DEFAULT (floor(extract(epoch FROM clock_timestamp()) * 1000))
);

CREATE TABLE history (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                TEXT NOT NULL,
    order_id          TEXT NOT NULL,
    line_id           TEXT,
    old_backorder_qty BIGINT NOT NULL,
    new_backorder_qty BIGINT NOT NULL,
    old_status        TEXT,
    new_status        TEXT,
    cause             TEXT NOT NULL
);

CREATE TABLE outbox (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('backordered', 'no_longer_backordered')),
    old_status TEXT NOT NULL,
    new_status TEXT NOT NULL,
    delivered  BIGINT NOT NULL DEFAULT 0
);

-- Every running `serve`, for `status`: a row is written at start, touched
-- every heartbeat and removed at an orderly stop; a killed process's row
-- goes stale and is no longer shown as alive.
CREATE TABLE daemons (
    name           TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            BIGINT NOT NULL,
    started_at     TEXT NOT NULL,
    heartbeat_secs BIGINT NOT NULL,
    last_seen_ms   BIGINT NOT NULL,
    doing          TEXT NOT NULL DEFAULT 'idle',
    doing_since_ms BIGINT NOT NULL
);

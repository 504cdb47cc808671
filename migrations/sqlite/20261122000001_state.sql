-- The stored state: what a snapshot holds, plus the results written back.
-- `position` columns keep the snapshot's order so that export round-trips.

CREATE TABLE client_settings (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    settings TEXT NOT NULL            -- JSON, the snapshot's `settings`
);

CREATE TABLE warehouses (
    id       TEXT PRIMARY KEY NOT NULL,
    position INTEGER NOT NULL,
    kind     TEXT NOT NULL
);

CREATE TABLE products (
    sku             TEXT PRIMARY KEY NOT NULL,
    position        INTEGER NOT NULL,
    replacement_sku TEXT
);
CREATE INDEX products_by_replacement ON products (replacement_sku);

CREATE TABLE inventory (
    sku       TEXT NOT NULL,
    warehouse TEXT NOT NULL REFERENCES warehouses (id),
    on_hand   INTEGER NOT NULL,
    PRIMARY KEY (sku, warehouse)
);

CREATE TABLE purchase_orders (
    id            TEXT PRIMARY KEY NOT NULL,
    position      INTEGER NOT NULL,
    sku           TEXT NOT NULL,
    warehouse     TEXT NOT NULL REFERENCES warehouses (id),
    qty_ordered   INTEGER NOT NULL,
    qty_received  INTEGER NOT NULL,
    expected_date TEXT                -- YYYY-MM-DD
);
CREATE INDEX purchase_orders_by_sku ON purchase_orders (sku);

CREATE TABLE orders (
    id               TEXT PRIMARY KEY NOT NULL,
    position         INTEGER NOT NULL,
    order_date       TEXT NOT NULL,   -- RFC 3339, UTC
    payment_date     TEXT,
    payment_status   TEXT NOT NULL,
    status           TEXT NOT NULL,
    rush             INTEGER NOT NULL,
    picked           INTEGER NOT NULL,
    ship_from        TEXT REFERENCES warehouses (id),
    -- written back by recalculation: the status and total of the lines, and
    -- the counts the status follows from (engine::LineCounts), so that a
    -- changed line moves them without reading the order's other lines
    backorder_status  TEXT NOT NULL DEFAULT 'none',
    backorder_qty     INTEGER NOT NULL DEFAULT 0,
    lines_open        INTEGER NOT NULL DEFAULT 0,
    lines_backordered INTEGER NOT NULL DEFAULT 0,
    lines_whole       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX orders_by_position ON orders (position);

-- Clustered by SKU: a recalculation reads a group's lines as a few ranges.
CREATE TABLE order_lines (
    sku           TEXT NOT NULL,
    order_id      TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,   -- within the order
    id            TEXT NOT NULL UNIQUE,
    qty           INTEGER NOT NULL,
    -- the stored backorder quantity (input to frozen/excluded orders, output of recalculation)
    backorder_qty INTEGER NOT NULL DEFAULT 0,
    eta           TEXT,               -- YYYY-MM-DD
    PRIMARY KEY (sku, order_id, position)
) WITHOUT ROWID;
CREATE INDEX order_lines_by_order ON order_lines (order_id, position);

-- The options of the daemon that started last (service.recalculate_on_status_change,
-- service.defer_new_orders): every process that ingests events follows them.
CREATE TABLE service_options (
    id                           INTEGER PRIMARY KEY CHECK (id = 1),
    recalculate_on_status_change INTEGER NOT NULL,
    defer_new_orders             INTEGER NOT NULL
);

-- Every accepted event id, so that a repeat is acknowledged and ignored.
CREATE TABLE received_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    received_at TEXT NOT NULL
);

-- SKUs whose allocation may have changed; drained by the worker. A newer
-- mark raises marked_seq, so a claim only clears what it actually computed.
CREATE TABLE dirty_skus (
    sku        TEXT PRIMARY KEY NOT NULL,
    marked_seq INTEGER NOT NULL,
    cause      TEXT NOT NULL,         -- the event id, `import`, `recalc`...
    -- when the SKU became dirty (Unix milliseconds); a later mark keeps it,
    -- so the oldest mark says how long the queue has waited
    marked_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);

-- One row per written-back change.
CREATE TABLE history (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    at                TEXT NOT NULL,
    order_id          TEXT NOT NULL,
    line_id           TEXT,           -- NULL for an order-level change
    old_backorder_qty INTEGER NOT NULL,
    new_backorder_qty INTEGER NOT NULL,
    old_status        TEXT,
    new_status        TEXT,
    cause             TEXT NOT NULL
);

-- Notifications for customer messages and channel feeds: an order became
-- backordered, or stopped being backordered.
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('backordered', 'no_longer_backordered')),
    old_status TEXT NOT NULL,
    new_status TEXT NOT NULL,
    delivered  INTEGER NOT NULL DEFAULT 0
);

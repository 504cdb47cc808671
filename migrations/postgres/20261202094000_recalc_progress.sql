-- What a recalculation leaves for later, and how far each SKU got
-- (src/store/recalculate/); the same tables as on SQLite.
--
-- stale_orders: orders whose lines a full run's batch rewrote without
-- touching their totals; the run's end, or the next drain after a crash,
-- sets them from their stored lines in id order.
CREATE TABLE stale_orders (
    seq      BIGSERIAL PRIMARY KEY,
    order_id TEXT NOT NULL,
    cause    TEXT NOT NULL
);

-- recalc_clock: one value per recalculation batch, drawn as it begins
-- (a sequence: no row lock shared by the workers); recalc_ticks: per SKU,
-- the value of the last batch that recalculated it. A `?wait=true` reads
-- the sequence's last value after its events commit: a SKU whose tick is
-- above it was recalculated by a batch that began after them (its reads,
-- at READ COMMITTED, see them).
CREATE SEQUENCE recalc_clock;

CREATE TABLE recalc_ticks (
    sku  TEXT PRIMARY KEY,
    tick BIGINT NOT NULL
);

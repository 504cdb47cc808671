-- How far each SKU's recalculation got
-- (src/store/recalculate/); the same tables as on SQLite.
--
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

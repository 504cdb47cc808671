-- What a recalculation leaves for later, and how far each SKU got
-- (src/store/recalculate/).
--
-- stale_orders: orders whose lines a full run's batch rewrote without
-- touching their totals (a batch writing the totals of every order it
-- saw rewrote pages all over the orders table in every one of its bounded
-- transactions); the run's end, or the next drain after a crash, sets
-- them from their stored lines in id order. Appended by rowid, so a
-- batch's rows land on the table's last pages.
CREATE TABLE stale_orders (
    seq      INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    cause    TEXT NOT NULL
);

-- recalc_clock: one tick per recalculation batch, taken as it begins;
-- recalc_ticks: per SKU, the tick of the last batch that recalculated it.
-- A `?wait=true` reads the clock after its events commit: a SKU whose
-- tick is above that value was recalculated by a batch that began after
-- them, so with them, however often newer events marked it again.
CREATE TABLE recalc_clock (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    tick INTEGER NOT NULL
);
INSERT INTO recalc_clock (id, tick) VALUES (1, 0);

CREATE TABLE recalc_ticks (
    sku  TEXT PRIMARY KEY NOT NULL,
    tick INTEGER NOT NULL
) WITHOUT ROWID;

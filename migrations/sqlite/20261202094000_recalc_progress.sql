-- How far each SKU's recalculation got
-- (src/store/recalculate/).
--
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

-- The availability feed entry each SKU's last product.availability_changed
-- message carried (JSON text, as serialized): a recalculation compares the
-- SKU's new entry with it and emits only on a change. A quiet import's
-- recalculation stores entries without emitting.
CREATE TABLE availability_figures (
    sku TEXT PRIMARY KEY NOT NULL,
    entry TEXT NOT NULL
) WITHOUT ROWID;

-- One row per purchasing.digest slot (its scheduled instant, RFC 3339):
-- the serve process that inserts it sends that slot's digest, so several
-- processes on one database send one digest per slot.
CREATE TABLE digest_slots (
    slot TEXT PRIMARY KEY NOT NULL,
    claimed_at TEXT NOT NULL,
    claimed_by TEXT NOT NULL
) WITHOUT ROWID;

-- See the SQLite migration of the same name.
CREATE TABLE availability_figures (
    sku TEXT PRIMARY KEY NOT NULL,
    entry TEXT NOT NULL
);

CREATE TABLE digest_slots (
    slot TEXT PRIMARY KEY NOT NULL,
    claimed_at TEXT NOT NULL,
    claimed_by TEXT NOT NULL
);

-- SKUs whose recalculation failed on their own (a batch of that SKU alone
-- failed while the database answered): their dirty mark is moved here with
-- the error, so the other SKUs go on being recalculated, and moved back to
-- dirty_skus at retry_at (Unix ms; the delay doubles with each attempt). A
-- successful recalculation of the SKU deletes its row.
CREATE TABLE set_aside_skus (
    sku       TEXT PRIMARY KEY NOT NULL,
    cause     TEXT NOT NULL,
    error     TEXT NOT NULL,
    failed_at INTEGER NOT NULL,
    attempts  INTEGER NOT NULL,
    retry_at  INTEGER NOT NULL
);

-- SKUs whose recalculation failed on their own; see the SQLite migration.
CREATE TABLE set_aside_skus (
    sku       TEXT PRIMARY KEY,
    cause     TEXT NOT NULL,
    error     TEXT NOT NULL,
    failed_at BIGINT NOT NULL,
    attempts  BIGINT NOT NULL,
    retry_at  BIGINT NOT NULL
);

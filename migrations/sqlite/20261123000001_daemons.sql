-- Every running `serve`, for `status`: a row is written at start, touched
-- every heartbeat and removed at an orderly stop; a killed process's row
-- goes stale and is no longer shown as alive.
CREATE TABLE daemons (
    name           TEXT PRIMARY KEY NOT NULL,
    host           TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    started_at     TEXT NOT NULL,
    heartbeat_secs INTEGER NOT NULL,
    last_seen_ms   INTEGER NOT NULL,
    doing          TEXT NOT NULL DEFAULT 'idle',
    doing_since_ms INTEGER NOT NULL
);

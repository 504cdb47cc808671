-- Delivery state per destination (docs/delivery.md, "How delivery works").
-- A destination is a `[[webhooks]]` endpoint (`webhook:<url>`) or `email`.
--
-- `cursor`: every message at or before this position has been looked at
-- for the destination (copied to `delivery_pending` when it subscribes to
-- it, else skipped). A destination seen for the first time starts at the
-- newest message. `disabled_at_ms`: the endpoint answered 410 Gone; it
-- stays disabled until re-enabled by hand.
CREATE TABLE delivery_destinations (
    name            TEXT PRIMARY KEY,
    cursor          BIGINT NOT NULL,
    added_at_ms     BIGINT NOT NULL,
    disabled_at_ms  BIGINT,
    disabled_reason TEXT
);

-- Messages a destination has yet to take. Per key only the oldest row
-- (the head) has a `next_at_ms`; the rows behind it wait with NULL and
-- the head's successor gets one when the head is delivered or dead, so
-- the due rows are always the heads and a claim is one index range.
-- A claim moves `next_at_ms` to the end of its lease and sets `claim`:
-- a killed process's claim runs out and the row is due again.
CREATE TABLE delivery_pending (
    destination TEXT NOT NULL,
    position    BIGINT NOT NULL,
    key         TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    next_at_ms  BIGINT,
    claim       TEXT,
    last_error  TEXT,
    PRIMARY KEY (destination, position)
);
CREATE INDEX delivery_pending_due ON delivery_pending (destination, next_at_ms);
CREATE INDEX delivery_pending_key ON delivery_pending (destination, key, position);

-- Messages given up on after their retry window, until redelivered by hand.
CREATE TABLE delivery_dead (
    destination TEXT NOT NULL,
    position    BIGINT NOT NULL,
    message_id  TEXT NOT NULL,
    key         TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    last_error  TEXT NOT NULL,
    dead_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (destination, position)
);
CREATE INDEX delivery_dead_id ON delivery_dead (message_id);

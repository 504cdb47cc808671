-- Change messages (docs/delivery.md): one row per message, written in the
-- transaction of the change that causes it, so a message exists if and only
-- if its change committed. `body` is the message's JSON exactly as every
-- destination receives it.
--
-- `position` is the commit order the pull feed's cursor and every
-- destination follow. A sequence alone would not give it with several
-- writers (a lower position may commit after a higher one, and a reader
-- past it would skip it), so a transaction that writes messages first takes
-- the transaction-level advisory lock of the message log, held until its
-- commit: positions are then handed out in commit order. It is taken last,
-- just before the messages are inserted, so that it serializes only the
-- tail of those transactions.
CREATE TABLE messages (
    position   BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    key        TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    body       TEXT NOT NULL,
    UNIQUE (key, seq)
);

-- The last `seq` given per key, so that the next message of a key gets the
-- next number without scanning its earlier ones.
CREATE TABLE message_keys (
    key      TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

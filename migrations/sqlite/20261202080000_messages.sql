-- Change messages (docs/delivery.md): one row per message, written in the
-- transaction of the change that causes it, so a message exists if and only
-- if its change committed. `position` is the commit order the pull feed's
-- cursor and every destination follow: SQLite has one writer, so the order
-- of allocation is the order of commit. `body` is the message's JSON
-- exactly as every destination receives it.
CREATE TABLE messages (
    position   INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    key        TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    body       TEXT NOT NULL,
    UNIQUE (key, seq)
);

-- The last `seq` given per key, so that the next message of a key gets the
-- next number without scanning its earlier ones.
CREATE TABLE message_keys (
    key      TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;

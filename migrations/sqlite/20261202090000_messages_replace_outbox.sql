-- Change messages (table `messages`) replace the outbox: nothing ever read
-- or delivered its rows.
DROP TABLE outbox;

-- Who placed the order (snapshots' and `order_upserted`'s `customer`),
-- carried in the order's change messages.
ALTER TABLE orders ADD COLUMN customer_email TEXT;
ALTER TABLE orders ADD COLUMN customer_name TEXT;

-- Retention prunes the oldest messages by creation time.
CREATE INDEX messages_by_created_at ON messages (created_at);

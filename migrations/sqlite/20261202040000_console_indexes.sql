-- The admin console's reads (src/console/).
--
-- The backorder list walks backordered orders oldest first: a partial
-- index over exactly those orders, keyed as the query sorts (the order
-- date without its final `Z`, then the id), so a page reads its rows in
-- order and stops at its limit instead of scanning and sorting the book.
-- The query repeats this WHERE term word for word, which is what lets
-- SQLite use a partial index.
CREATE INDEX orders_backordered_by_date ON orders (rtrim(order_date, 'Z'), id)
    WHERE backorder_status IN ('full', 'partial');

-- An order's history timeline.
CREATE INDEX history_by_order ON history (order_id, seq);

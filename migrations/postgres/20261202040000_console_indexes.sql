-- The admin console's reads (src/console/); see the SQLite migration of
-- the same name. The keys carry the "C" collation the query sorts by.
CREATE INDEX orders_backordered_by_date
    ON orders ((rtrim(order_date, 'Z') COLLATE "C"), (id COLLATE "C"))
    WHERE backorder_status IN ('full', 'partial');

CREATE INDEX history_by_order ON history (order_id, seq);

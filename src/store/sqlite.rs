//! The embedded default: one SQLite file, created on first use, in WAL mode.

use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;

use super::{ImportSummary, Store, StoreError, codec};
use crate::engine::snapshot::*;
use crate::engine::time_format::{format_date, format_timestamp};

/// How long a writer waits for another process's transaction to finish
/// before reporting the database as locked.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://PATH`,
    /// `sqlite:PATH` or a plain path).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else {
            format!("sqlite://{url}")
        };
        // WAL, NORMAL sync and a busy timeout on every pooled connection: apalis
        // sets its own PRAGMAs on one connection only (shared/notes/apalis-1.0.md).
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    async fn import(&self, snapshot: &Snapshot) -> Result<ImportSummary, StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "order_lines",
            "orders",
            "purchase_orders",
            "inventory",
            "products",
            "warehouses",
            "client_settings",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await?;
        }
        insert_state(&mut tx, snapshot).await?;
        let marked = sqlx::query(
            "INSERT INTO dirty_skus (sku, marked_seq)
             SELECT DISTINCT sku, (SELECT COALESCE(MAX(seq), 0) FROM received_events) FROM order_lines WHERE true
             ON CONFLICT (sku) DO UPDATE SET marked_seq = excluded.marked_seq",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(ImportSummary {
            orders: snapshot.orders.len(),
            lines: snapshot.orders.iter().map(|o| o.lines.len()).sum(),
            skus_marked_dirty: marked as usize,
        })
    }

    async fn export(&self) -> Result<Snapshot, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let settings = match sqlx::query("SELECT settings FROM client_settings WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await?
        {
            Some(row) => {
                serde_json::from_str(row.get::<&str, _>(0)).map_err(|e| StoreError::Corrupt {
                    record: "client settings".into(),
                    problem: e.to_string(),
                })?
            }
            None => Settings::default(),
        };

        let mut warehouses = Vec::new();
        let mut rows =
            sqlx::query("SELECT id, kind FROM warehouses ORDER BY position").fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let id: String = row.get(0);
            let kind = codec::warehouse_kind(row.get(1), &format!("warehouse {id:?}"))?;
            warehouses.push(Warehouse { id, kind });
        }
        drop(rows);

        let products = sqlx::query("SELECT sku, replacement_sku FROM products ORDER BY position")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|row| Product {
                sku: row.get(0),
                replacement_sku: row.get(1),
            })
            .collect();

        let inventory =
            sqlx::query("SELECT sku, warehouse, on_hand FROM inventory ORDER BY sku, warehouse")
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(|row| InventoryRow {
                    sku: row.get(0),
                    warehouse: row.get(1),
                    on_hand: row.get(2),
                })
                .collect();

        let mut purchase_orders = Vec::new();
        let mut rows = sqlx::query(
            "SELECT id, sku, warehouse, qty_ordered, qty_received, expected_date FROM purchase_orders ORDER BY position",
        )
        .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let id: String = row.get(0);
            let expected_date = match row.get::<Option<&str>, _>(5) {
                Some(text) => Some(codec::date(text, &format!("purchase order {id:?}"))?),
                None => None,
            };
            purchase_orders.push(PurchaseOrder {
                sku: row.get(1),
                warehouse: row.get(2),
                qty_ordered: row.get(3),
                qty_received: row.get(4),
                expected_date,
                id,
            });
        }
        drop(rows);

        let mut orders: Vec<Order> = Vec::new();
        let mut rows = sqlx::query(
            "SELECT id, order_date, payment_date, payment_status, status, rush, picked, ship_from FROM orders ORDER BY position",
        )
        .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let id: String = row.get(0);
            let record = format!("order {id:?}");
            let payment_date = match row.get::<Option<&str>, _>(2) {
                Some(text) => Some(codec::timestamp(text, &record)?),
                None => None,
            };
            orders.push(Order {
                order_date: codec::timestamp(row.get(1), &record)?,
                payment_date,
                payment_status: codec::payment_status(row.get(3), &record)?,
                status: codec::order_status(row.get(4), &record)?,
                rush: row.get(5),
                picked: row.get(6),
                ship_from: row.get(7),
                lines: Vec::new(),
                id,
            });
        }
        drop(rows);

        // Lines come in the orders' order, so one merge pass attaches them.
        let mut next = 0;
        let mut rows = sqlx::query(
            "SELECT l.order_id, l.id, l.sku, l.qty, l.backorder_qty
             FROM order_lines l JOIN orders o ON o.id = l.order_id
             ORDER BY o.position, l.position",
        )
        .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let order_id: &str = row.get(0);
            while next < orders.len() && orders[next].id != order_id {
                next += 1;
            }
            let Some(order) = orders.get_mut(next) else {
                return Err(StoreError::Corrupt {
                    record: format!("line {:?}", row.get::<&str, _>(1)),
                    problem: "its order is out of sequence".into(),
                });
            };
            order.lines.push(Line {
                id: row.get(1),
                sku: row.get(2),
                qty: row.get(3),
                backorder_qty: row.get(4),
            });
        }
        drop(rows);

        Ok(Snapshot {
            as_of: None,
            settings,
            warehouses,
            products,
            inventory,
            purchase_orders,
            orders,
        })
    }
}

async fn insert_state(tx: &mut Transaction<'_, Sqlite>, s: &Snapshot) -> Result<(), StoreError> {
    let settings = serde_json::to_string(&s.settings).expect("settings serialize");
    sqlx::query("INSERT INTO client_settings (id, settings) VALUES (1, ?)")
        .bind(settings)
        .execute(&mut **tx)
        .await?;
    for (position, w) in s.warehouses.iter().enumerate() {
        sqlx::query("INSERT INTO warehouses (id, position, kind) VALUES (?, ?, ?)")
            .bind(&w.id)
            .bind(position as i64)
            .bind(w.kind.as_str())
            .execute(&mut **tx)
            .await?;
    }
    for (position, p) in s.products.iter().enumerate() {
        sqlx::query("INSERT INTO products (sku, position, replacement_sku) VALUES (?, ?, ?)")
            .bind(&p.sku)
            .bind(position as i64)
            .bind(&p.replacement_sku)
            .execute(&mut **tx)
            .await?;
    }
    for row in &s.inventory {
        // Rows repeating a (sku, warehouse) are summed, as section 3 sums them.
        sqlx::query(
            "INSERT INTO inventory (sku, warehouse, on_hand) VALUES (?, ?, ?)
             ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = on_hand + excluded.on_hand",
        )
        .bind(&row.sku)
        .bind(&row.warehouse)
        .bind(row.on_hand)
        .execute(&mut **tx)
        .await?;
    }
    for (position, po) in s.purchase_orders.iter().enumerate() {
        sqlx::query(
            "INSERT INTO purchase_orders (id, position, sku, warehouse, qty_ordered, qty_received, expected_date)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&po.id)
        .bind(position as i64)
        .bind(&po.sku)
        .bind(&po.warehouse)
        .bind(po.qty_ordered)
        .bind(po.qty_received)
        .bind(po.expected_date.as_ref().map(format_date))
        .execute(&mut **tx)
        .await?;
    }
    for (position, o) in s.orders.iter().enumerate() {
        sqlx::query(
            "INSERT INTO orders (id, position, order_date, payment_date, payment_status, status, rush, picked, ship_from)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&o.id)
        .bind(position as i64)
        .bind(format_timestamp(&o.order_date))
        .bind(o.payment_date.as_ref().map(format_timestamp))
        .bind(o.payment_status.as_str())
        .bind(o.status.as_str())
        .bind(o.rush)
        .bind(o.picked)
        .bind(&o.ship_from)
        .execute(&mut **tx)
        .await?;
        for (k, l) in o.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO order_lines (id, order_id, position, sku, qty, backorder_qty) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&l.id)
            .bind(&o.id)
            .bind(k as i64)
            .bind(&l.sku)
            .bind(l.qty)
            .bind(l.backorder_qty)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

//! The message log's statements on SQLite, stepped through rusqlite (see
//! `direct.rs`): a full run may write a message for most orders.

use rusqlite::params;
use sqlx::SqliteConnection;

use super::direct::{db_error, with_rusqlite};
use crate::store::StoreError;
use crate::store::messages::{HeaderRow, LineRow, MessageLog, MessageRow};

impl MessageLog for SqliteConnection {
    async fn order_rows(
        &mut self,
        ids: &[String],
    ) -> Result<(Vec<HeaderRow>, Vec<LineRow>), StoreError> {
        let list = serde_json::to_string(ids).expect("ids serialize");
        with_rusqlite(self, |db| {
            let mut headers = Vec::with_capacity(ids.len());
            let mut lines = Vec::new();
            let mut read = || -> rusqlite::Result<()> {
                let mut statement = db.prepare(
                    "SELECT o.id, o.backorder_status, o.backorder_qty, o.status, o.customer_email, o.customer_name
                     FROM json_each(?1) j CROSS JOIN orders o ON o.id = j.value",
                )?;
                let mut rows = statement.query([&list])?;
                while let Some(row) = rows.next()? {
                    headers.push(HeaderRow {
                        id: row.get(0)?,
                        backorder_status: row.get(1)?,
                        backorder_qty: row.get(2)?,
                        status: row.get(3)?,
                        customer_email: row.get(4)?,
                        customer_name: row.get(5)?,
                    });
                }
                let mut statement = db.prepare(
                    "SELECT l.order_id, l.id, l.sku, l.qty, l.backorder_qty, l.eta
                     FROM json_each(?1) j CROSS JOIN order_lines l ON l.order_id = j.value
                     ORDER BY l.order_id, l.position",
                )?;
                let mut rows = statement.query([&list])?;
                while let Some(row) = rows.next()? {
                    lines.push(LineRow {
                        order_id: row.get(0)?,
                        line_id: row.get(1)?,
                        sku: row.get(2)?,
                        qty: row.get(3)?,
                        backorder_qty: row.get(4)?,
                        eta: row.get(5)?,
                    });
                }
                Ok(())
            };
            read().map_err(db_error)?;
            Ok((headers, lines))
        })
        .await
    }

    /// SQLite has one writer: positions are handed out in commit order.
    async fn lock_log(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn next_seqs(&mut self, keys: &[(String, i64)]) -> Result<Vec<i64>, StoreError> {
        with_rusqlite(self, |db| {
            let mut upsert = db
                .prepare(
                    "INSERT INTO message_keys (key, last_seq) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET last_seq = last_seq + excluded.last_seq
                     RETURNING last_seq",
                )
                .map_err(db_error)?;
            keys.iter()
                .map(|(key, count)| {
                    upsert
                        .query_row(params![key, count], |row| row.get(0))
                        .map_err(db_error)
                })
                .collect()
        })
        .await
    }

    async fn insert_messages(&mut self, rows: &[MessageRow]) -> Result<(), StoreError> {
        with_rusqlite(self, |db| {
            let mut insert = db
                .prepare(
                    "INSERT INTO messages (id, type, key, seq, created_at, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(db_error)?;
            for r in rows {
                let at = r
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                insert
                    .execute(params![r.id, r.kind, r.key, r.seq, at, r.body])
                    .map_err(db_error)?;
            }
            Ok(())
        })
        .await
    }
}

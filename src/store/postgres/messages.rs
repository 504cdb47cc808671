//! The message log's statements on PostgreSQL, one set-based statement each.

use sqlx::PgConnection;

use super::LOCK_SPACE;
use crate::store::StoreError;
use crate::store::messages::{HeaderRow, LineRow, MessageLog, MessageRow};

/// The second key of the message log's advisory lock (migration
/// 20261202080000_messages.sql): held from just before a transaction's
/// messages are numbered to its commit, so positions follow commit order.
const MESSAGE_LOG_KEY: i32 = -2;

impl MessageLog for PgConnection {
    async fn order_rows(
        &mut self,
        ids: &[String],
    ) -> Result<(Vec<HeaderRow>, Vec<LineRow>), StoreError> {
        type Header = (String, String, i64, String, Option<String>, Option<String>);
        let headers: Vec<Header> = sqlx::query_as(
            "SELECT id, backorder_status, backorder_qty, status, customer_email, customer_name
             FROM orders WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&mut *self)
        .await?;
        type Line = (String, String, String, i64, i64, Option<String>);
        let lines: Vec<Line> = sqlx::query_as(
            "SELECT order_id, id, sku, qty, backorder_qty, eta FROM order_lines
             WHERE order_id = ANY($1) ORDER BY order_id, position",
        )
        .bind(ids)
        .fetch_all(&mut *self)
        .await?;
        Ok((
            headers
                .into_iter()
                .map(
                    |(
                        id,
                        backorder_status,
                        backorder_qty,
                        status,
                        customer_email,
                        customer_name,
                    )| {
                        HeaderRow {
                            id,
                            backorder_status,
                            backorder_qty,
                            status,
                            customer_email,
                            customer_name,
                        }
                    },
                )
                .collect(),
            lines
                .into_iter()
                .map(
                    |(order_id, line_id, sku, qty, backorder_qty, eta)| LineRow {
                        order_id,
                        line_id,
                        sku,
                        qty,
                        backorder_qty,
                        eta,
                    },
                )
                .collect(),
        ))
    }

    async fn lock_log(&mut self) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(LOCK_SPACE)
            .bind(MESSAGE_LOG_KEY)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn next_seqs(&mut self, keys: &[(String, i64)]) -> Result<Vec<i64>, StoreError> {
        let names: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let counts: Vec<i64> = keys.iter().map(|k| k.1).collect();
        // Key order: two transactions numbering the same keys lock them alike.
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "INSERT INTO message_keys (key, last_seq)
             SELECT k, n FROM unnest($1::text[], $2::int8[]) AS c(k, n) ORDER BY k
             ON CONFLICT (key) DO UPDATE SET last_seq = message_keys.last_seq + excluded.last_seq
             RETURNING key, last_seq",
        )
        .bind(&names)
        .bind(&counts)
        .fetch_all(&mut *self)
        .await?;
        let by_key: std::collections::HashMap<String, i64> = rows.into_iter().collect();
        Ok(keys.iter().map(|(k, _)| by_key[k]).collect())
    }

    async fn insert_messages(&mut self, rows: &[MessageRow]) -> Result<(), StoreError> {
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind).collect();
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        let ats: Vec<chrono::DateTime<chrono::Utc>> = rows.iter().map(|r| r.created_at).collect();
        let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
        // WITH ORDINALITY: the positions follow the rows' order.
        sqlx::query(
            "INSERT INTO messages (id, type, key, seq, created_at, body)
             SELECT id, type, key, seq, created_at, body
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::timestamptz[], $6::text[])
                  WITH ORDINALITY AS m(id, type, key, seq, created_at, body, n)
             ORDER BY n",
        )
        .bind(&ids)
        .bind(&kinds)
        .bind(&keys)
        .bind(&seqs)
        .bind(&ats)
        .bind(&bodies)
        .execute(&mut *self)
        .await?;
        Ok(())
    }
}

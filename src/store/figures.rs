//! `product.availability_changed` (notifications.md sections 1 and 3): the
//! feed entry each SKU's last message carried is kept per SKU
//! (`availability_figures`); after a recalculation's write-back, each SKU of
//! the group's new entry (computed by `recalc` from the group it had in
//! hand) is compared with it, and a message is made only when they differ,
//! in the write-back's transaction.
//!
//! Every event that can change a SKU's figures (stock, purchase orders, a
//! product's allowance, thresholds or vendor, settings, warehouses) marks
//! the SKU for recalculation, so this one comparison after the write-back
//! sees every change, and each change gives one message whose figures are
//! the allocation's, never a half-updated entry. Written once for both
//! databases: a backend supplies the statements of [`FiguresLog`].
//!
//! The same step stamps every SKU of the group (`feed_stamps`, where the
//! backend keeps pool versions): the feed's reads then take a SKU's stored
//! entry instead of computing it while nothing it depends on has changed
//! (`store::feed_stamps`).

use std::future::Future;

use rustc_hash::FxHashMap;

use super::StoreError;
use super::messages::{PendingMessage, QUIET_IMPORT_CAUSE};
use crate::delivery::message::{Data, Draft, MessageType};
use crate::engine::time_format::format_timestamp;
use crate::feed::{FeedEntry, SkuFigures};

/// The key of a SKU's messages.
pub fn product_key(sku: &str) -> String {
    format!("product:{sku}")
}

/// The statements a database supplies, run in the caller's transaction.
pub(in crate::store) trait FiguresLog: Send {
    /// The stored entries (JSON text) of those of `skus` that have one.
    fn last_figures(
        &mut self,
        skus: &[&str],
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;
    /// Inserts or replaces each `(sku, entry)`.
    fn save_figures(
        &mut self,
        rows: &[(&str, String)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Stamps each SKU of `figures` (whose entries are stored) with its
    /// pool version and the feed epoch as they are now, in this
    /// transaction, and keeps its waiting orders; nothing where the
    /// database keeps no pool versions.
    fn save_stamps(
        &mut self,
        figures: &[&SkuFigures],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The messages of the SKUs whose entry in `feed` differs from the stored
/// one, which it replaces. A quiet import's recalculation stores its
/// entries and emits nothing (like its order messages).
pub(in crate::store) async fn for_feed<B: FiguresLog>(
    db: &mut B,
    feed: &[(SkuFigures, String)],
) -> Result<Vec<PendingMessage>, StoreError> {
    if feed.is_empty() {
        return Ok(Vec::new());
    }
    let skus: Vec<&str> = feed.iter().map(|(f, _)| f.entry.sku.as_str()).collect();
    let stored: FxHashMap<String, String> = db.last_figures(&skus).await?.into_iter().collect();
    let mut changed: Vec<(&str, String)> = Vec::new();
    let mut out = Vec::new();
    for (figures, cause) in feed {
        let entry = &figures.entry;
        // Serialization is deterministic: equal text is an equal entry.
        let text = serde_json::to_string(entry).expect("a feed entry serializes");
        let previous = stored.get(&entry.sku);
        if previous == Some(&text) {
            continue;
        }
        if cause != QUIET_IMPORT_CAUSE {
            out.push(message(entry, previous.map(String::as_str), cause)?);
        }
        changed.push((entry.sku.as_str(), text));
    }
    if !changed.is_empty() {
        db.save_figures(&changed).await?;
    }
    // Last, after the write-back and the entries: the versions read now
    // are those of the state the entries describe.
    let all: Vec<&SkuFigures> = feed.iter().map(|(f, _)| f).collect();
    db.save_stamps(&all).await?;
    Ok(out)
}

/// [`for_feed`], the messages appended (last in the write-back's
/// transaction, after its order messages).
pub(in crate::store) async fn append<B: FiguresLog + super::messages::MessageLog>(
    db: &mut B,
    feed: &[(SkuFigures, String)],
) -> Result<(), StoreError> {
    let pending = for_feed(db, feed).await?;
    super::messages::append(db, pending, chrono::Utc::now()).await?;
    Ok(())
}

/// `data`: the entry after, with `previous` the entry before (null in the
/// SKU's first message).
fn message(
    entry: &FeedEntry,
    previous: Option<&str>,
    cause: &str,
) -> Result<PendingMessage, StoreError> {
    let previous = match previous {
        Some(text) => serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
            record: format!("the stored availability figures of sku {:?}", entry.sku),
            problem: e.to_string(),
        })?,
        None => serde_json::Value::Null,
    };
    let mut data = serde_json::to_value(entry).expect("a feed entry serializes");
    if let Some(object) = data.as_object_mut() {
        object.insert("previous".to_owned(), previous);
    }
    Ok(PendingMessage {
        draft: Draft {
            kind: MessageType::ProductAvailabilityChanged,
            key: product_key(&entry.sku),
            data: Data::Other(data),
        },
        // A SKU recalculated only for its replacement group has no cause
        // of its own (as for order messages).
        causes: if cause.is_empty() {
            Vec::new()
        } else {
            vec![cause.to_owned()]
        },
    })
}

/// Writes a batch's feed stamps (SQLite; `$1`: a JSON array of `[sku,
/// backordered, waiting orders, oldest waiting]`). A SKU without a version
/// row is at version 0 (as the pool cache reads it): its first change
/// inserts version 1. Public for the feed bench, which stamps the same way.
pub const STAMPS_UPSERT: &str = "INSERT INTO feed_stamps
                 (sku, epoch, version, backordered, waiting_orders, oldest_waiting)
             SELECT s.sku, (SELECT epoch FROM feed_epoch WHERE id = 1),
                    coalesce((SELECT version FROM pool_versions v WHERE v.sku = s.sku), 0),
                    s.backordered, s.waiting, s.oldest
             FROM (SELECT json_extract(j.value, '$[0]') AS sku,
                          json_extract(j.value, '$[1]') AS backordered,
                          json_extract(j.value, '$[2]') AS waiting,
                          json_extract(j.value, '$[3]') AS oldest
                   FROM json_each($1) j) s
             WHERE true
             ON CONFLICT (sku) DO UPDATE SET epoch = excluded.epoch,
                 version = excluded.version, backordered = excluded.backordered,
                 waiting_orders = excluded.waiting_orders,
                 oldest_waiting = excluded.oldest_waiting";

impl FiguresLog for sqlx::SqliteConnection {
    async fn last_figures(&mut self, skus: &[&str]) -> Result<Vec<(String, String)>, StoreError> {
        let list = serde_json::to_string(skus).expect("skus serialize");
        Ok(sqlx::query_as(
            "SELECT f.sku, f.entry FROM json_each($1) j
             CROSS JOIN availability_figures f ON f.sku = j.value",
        )
        .bind(list)
        .fetch_all(&mut *self)
        .await?)
    }

    async fn save_figures(&mut self, rows: &[(&str, String)]) -> Result<(), StoreError> {
        let list = serde_json::to_string(rows).expect("rows serialize");
        sqlx::query(
            "INSERT INTO availability_figures (sku, entry)
             SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]')
             FROM json_each($1) j WHERE true
             ON CONFLICT (sku) DO UPDATE SET entry = excluded.entry",
        )
        .bind(list)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn save_stamps(&mut self, figures: &[&SkuFigures]) -> Result<(), StoreError> {
        let rows: Vec<(&str, i64, i64, Option<String>)> = figures
            .iter()
            .map(|f| {
                (
                    f.entry.sku.as_str(),
                    f.entry.backordered,
                    f.waiting.orders,
                    f.waiting.oldest.as_ref().map(format_timestamp),
                )
            })
            .collect();
        let list = serde_json::to_string(&rows).expect("rows serialize");
        sqlx::query(STAMPS_UPSERT)
            .bind(list)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}

impl FiguresLog for sqlx::PgConnection {
    async fn last_figures(&mut self, skus: &[&str]) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT sku, entry FROM availability_figures WHERE sku = ANY($1)")
                .bind(skus)
                .fetch_all(&mut *self)
                .await?,
        )
    }

    async fn save_figures(&mut self, rows: &[(&str, String)]) -> Result<(), StoreError> {
        let skus: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let entries: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        sqlx::query(
            "INSERT INTO availability_figures (sku, entry)
             SELECT * FROM UNNEST($1::text[], $2::text[])
             ON CONFLICT (sku) DO UPDATE SET entry = excluded.entry",
        )
        .bind(skus)
        .bind(entries)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    /// No pool versions on PostgreSQL (migrations/postgres/*_pool_versions.sql):
    /// its feed is always computed from the stored state.
    async fn save_stamps(&mut self, _figures: &[&SkuFigures]) -> Result<(), StoreError> {
        Ok(())
    }
}

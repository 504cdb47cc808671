//! SQLite's statements for the recalculation sequence
//! (`store::recalculate`). The caller's `BEGIN IMMEDIATE` holds the write
//! lock from the first read, so what is read stays true to the commit; the
//! large reads and writes step through rusqlite (`direct.rs`).

use rusqlite::params;
use rustc_hash::FxHashMap;
use sqlx::SqliteConnection;

use super::direct::{self, db_error, with_rusqlite};
use super::writeback::write_changes;
use crate::engine::snapshot::Settings;
use crate::recalc::{Changes, GroupState, StoredOrder};
use crate::store::StoreError;
use crate::store::group::{HeaderWithTotals, LinesByOrder};
use crate::store::recalculate::pool_cache::{LogEntry, Versions};
use crate::store::recalculate::portable;
use crate::store::recalculate::{Mark, RecalcDialect, Stock, Written};

fn json_list<T: serde::Serialize + ?Sized>(items: &T) -> String {
    serde_json::to_string(items).expect("a list serializes")
}

impl RecalcDialect for SqliteConnection {
    async fn claim(
        &mut self,
        max_skus: usize,
        line_budget: usize,
        after: Option<&str>,
    ) -> Result<Vec<Mark>, StoreError> {
        direct::claim(self, max_skus, line_budget, after).await
    }

    async fn begin_tick(&mut self) -> Result<i64, StoreError> {
        // The caller's BEGIN IMMEDIATE holds the write lock: no waiter's
        // events commit between this tick and what the batch reads.
        Ok(sqlx::query_scalar(
            "UPDATE recalc_clock SET tick = tick + 1 WHERE id = 1 RETURNING tick",
        )
        .fetch_one(&mut *self)
        .await?)
    }

    async fn record_tick(&mut self, skus: &[String], tick: i64) -> Result<(), StoreError> {
        with_rusqlite(self, |db| {
            let record = || -> rusqlite::Result<()> {
                let mut upsert = db.prepare(
                    "INSERT INTO recalc_ticks (sku, tick) VALUES (?1, ?2)
                     ON CONFLICT (sku) DO UPDATE SET tick = excluded.tick",
                )?;
                for sku in skus {
                    upsert.execute(params![sku, tick])?;
                }
                Ok(())
            };
            record().map_err(db_error)
        })
        .await
    }

    async fn take(&mut self, skus: &[String]) -> Result<Option<Vec<Mark>>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT d.sku, d.cause, d.marked_seq FROM json_each(?) j CROSS JOIN dirty_skus d ON d.sku = j.value",
        )
        .bind(json_list(skus))
        .fetch_all(&mut *self)
        .await?;
        Ok(Some(
            rows.into_iter()
                .map(|(sku, cause, seq)| Mark {
                    sku,
                    cause,
                    seq,
                    lines: 0,
                })
                .collect(),
        ))
    }

    async fn settings(&mut self) -> Result<Settings, StoreError> {
        super::load_settings(self).await
    }

    async fn replacement_edges(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        portable::replacement_edges::<sqlx::Sqlite>(self).await
    }

    async fn load_group(
        &mut self,
        skus: &[String],
        expected_lines: usize,
        settings: Settings,
        causes: FxHashMap<String, String>,
    ) -> Result<GroupState, StoreError> {
        let sku_list = json_list(skus);
        let warehouses = super::load_warehouses(self).await?;
        let (products, inventory, purchase_orders) = direct::group_stock(self, &sku_list).await?;
        // The group's lines come as ranges of the SKU-clustered table.
        let lines = direct::group_lines(self, &sku_list, expected_lines).await?;
        let orders = into_orders(self, lines).await?;
        Ok(GroupState {
            settings,
            warehouses,
            products,
            inventory,
            purchase_orders,
            orders,
            causes,
        })
    }

    async fn write_changes(&mut self, changes: &Changes, at: &str) -> Result<Written, StoreError> {
        // One writer: every line is written as read.
        write_changes(self, changes, at).await?;
        Ok(Written {
            lines: changes.lines.clone(),
            orders: changes.orders.clone(),
        })
    }

    async fn clear_marks(&mut self, marks: &[Mark]) -> Result<(), StoreError> {
        with_rusqlite(self, |db| {
            let clear = || -> rusqlite::Result<()> {
                let mut delete =
                    db.prepare("DELETE FROM dirty_skus WHERE sku = ?1 AND marked_seq <= ?2")?;
                // A mark an event raised since the batch read goes to the
                // back of the drain's queue: it has waited since about now.
                let mut requeue = db.prepare(
                    "UPDATE dirty_skus SET marked_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
                     WHERE sku = ?1 AND marked_seq > ?2",
                )?;
                for mark in marks {
                    if delete.execute(params![mark.sku, mark.seq])? == 0 {
                        requeue.execute(params![mark.sku, mark.seq])?;
                    }
                }
                Ok(())
            };
            clear().map_err(db_error)
        })
        .await
    }

    async fn load_orders(
        &mut self,
        skus: &[String],
        ids: &[String],
    ) -> Result<Vec<StoredOrder>, StoreError> {
        let lines = direct::order_lines_in(self, &json_list(ids), &json_list(skus)).await?;
        into_orders(self, lines).await
    }

    async fn load_stock(&mut self, skus: &[String]) -> Result<Stock, StoreError> {
        direct::group_stock(self, &json_list(skus)).await
    }

    async fn prune_pool_log(
        &mut self,
        skus: &[String],
        upto: Option<&Versions>,
    ) -> Result<(), StoreError> {
        with_rusqlite(self, |db| {
            let prune = || -> rusqlite::Result<()> {
                let mut delete =
                    db.prepare("DELETE FROM pool_log WHERE sku = ?1 AND version <= ?2")?;
                for (at, sku) in skus.iter().enumerate() {
                    let upto = upto.map_or(i64::MAX, |v| v.skus[at]);
                    delete.execute(params![sku, upto])?;
                }
                Ok(())
            };
            prune().map_err(db_error)
        })
        .await
    }

    async fn pause_pool_log(&mut self) -> Result<(), StoreError> {
        crate::store::recalculate::pool_cache::pause_log::<sqlx::Sqlite>(self).await
    }

    async fn end_pool_log_pause(&mut self) -> Result<(), StoreError> {
        crate::store::recalculate::pool_cache::end_pause::<sqlx::Sqlite>(self).await
    }

    async fn log_written(&mut self, order_ids: &[String]) -> Result<(), StoreError> {
        let ids = "(SELECT value AS id FROM json_each(?1))";
        crate::store::recalculate::pool_cache::log_written::<sqlx::Sqlite, _>(
            self,
            ids,
            json_list(order_ids),
        )
        .await
    }

    async fn pool_versions(&mut self, skus: &[String]) -> Result<Versions, StoreError> {
        with_rusqlite(self, |db| {
            let read = || -> rusqlite::Result<Versions> {
                let epoch = db.query_row("SELECT epoch FROM pool_epoch", [], |r| r.get(0))?;
                let mut version = db.prepare("SELECT version FROM pool_versions WHERE sku = ?1")?;
                let mut out = Vec::with_capacity(skus.len());
                for sku in skus {
                    let mut rows = version.query([sku])?;
                    out.push(match rows.next()? {
                        Some(r) => r.get(0)?,
                        None => 0,
                    });
                }
                Ok(Versions { epoch, skus: out })
            };
            read().map_err(db_error)
        })
        .await
    }

    async fn pool_log(
        &mut self,
        skus: &[String],
        since: &Versions,
    ) -> Result<Vec<LogEntry>, StoreError> {
        with_rusqlite(self, |db| {
            let read = || -> rusqlite::Result<Vec<LogEntry>> {
                let mut log = db.prepare(
                    "SELECT sku, version, order_id FROM pool_log WHERE sku = ?1 AND version > ?2",
                )?;
                let mut out = Vec::new();
                for (at, sku) in skus.iter().enumerate() {
                    let mut rows = log.query(params![sku, since.skus[at]])?;
                    while let Some(r) = rows.next()? {
                        out.push(LogEntry {
                            sku: r.get(0)?,
                            version: r.get(1)?,
                            order_id: r.get(2)?,
                        });
                    }
                }
                Ok(out)
            };
            read().map_err(db_error)
        })
        .await
    }
}

/// The orders of `lines`, each with those lines, headers read by id.
async fn into_orders(
    conn: &mut SqliteConnection,
    lines: Vec<crate::store::group::LineRow>,
) -> Result<Vec<StoredOrder>, StoreError> {
    let lines = LinesByOrder::new(lines);
    let sorted_ids = lines.order_ids();
    let mut headers: Vec<HeaderWithTotals> = direct::headers(conn, &json_list(&sorted_ids)).await?;
    headers.sort_unstable_by(|a, b| a.0.id.cmp(&b.0.id));
    drop(sorted_ids);
    lines.into_orders(headers)
}

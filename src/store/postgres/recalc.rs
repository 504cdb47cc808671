//! One recalculation transaction on PostgreSQL: claim dirty SKUs whose lock
//! stripes are free, load their group, run the engine through
//! [`crate::recalc`], write back what changed (see `writeback.rs`), clear
//! the marks no newer event raised. Several workers run this at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use sqlx::{PgConnection, PgPool};

use super::{LOCK_SPACE, SKU_LOCK_STRIPES, load_settings, writeback};
use crate::engine::time_format::format_timestamp;
use crate::recalc::{self, replacement_closure};
use crate::store::{BatchReport, StoreError};

/// How often a batch is tried again after a deadlock, a serialization
/// failure or a replacement group another worker holds part of.
const ATTEMPTS: u32 = 20;

/// The dirty SKUs a batch took, with why and the mark it read.
struct Claimed {
    sku: String,
    cause: String,
    marked_seq: i64,
}

impl From<(String, String, i64)> for Claimed {
    fn from((sku, cause, marked_seq): (String, String, i64)) -> Self {
        Claimed {
            sku,
            cause,
            marked_seq,
        }
    }
}

enum Attempt {
    Done(Option<BatchReport>),
    /// Part of the replacement group is another worker's: try again later.
    Busy,
}

pub(super) async fn recalculate_dirty(
    pool: &PgPool,
    max_skus: usize,
    as_of: DateTime<Utc>,
) -> Result<Option<BatchReport>, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = pool.begin().await?;
        match batch(&mut tx, max_skus, as_of).await {
            Ok(Attempt::Done(report)) => {
                tx.commit().await?;
                return Ok(report);
            }
            // The worker holding the rest of the group drains it too.
            Ok(Attempt::Busy) if attempt >= ATTEMPTS => return Ok(None),
            Ok(Attempt::Busy) => {}
            Err(e) if is_transient(&e) && attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "recalculation meets another writer; trying again");
            }
            Err(e) => return Err(e),
        }
        drop(tx);
        tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
    }
}

/// Every dirty SKU in one transaction that holds every lock stripe: the
/// lines and order headers are read in whole-table passes instead of
/// looked up batch by batch. Events go on meanwhile (they take no stripe);
/// their marks stay for the next run.
pub(super) async fn recalculate_bulk(
    pool: &PgPool,
    as_of: DateTime<Utc>,
    mut on_batch: impl FnMut(&BatchReport) + Send,
) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = pool.begin().await?;
        match bulk(&mut tx, as_of).await {
            Ok(report) => {
                tx.commit().await?;
                if let Some(report) = report {
                    on_batch(&report);
                }
                return Ok(());
            }
            Err(e) if is_transient(&e) && attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "bulk recalculation meets another writer; trying again");
            }
            Err(e) => return Err(e),
        }
    }
}

async fn bulk(
    conn: &mut PgConnection,
    as_of: DateTime<Utc>,
) -> Result<Option<BatchReport>, StoreError> {
    // In ascending order, as nobody else waits for a stripe: no deadlock.
    sqlx::query("SELECT pg_advisory_xact_lock($1, s) FROM generate_series(0, $2 - 1) s")
        .bind(LOCK_SPACE)
        .bind(SKU_LOCK_STRIPES)
        .execute(&mut *conn)
        .await?;
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT sku, cause, marked_seq FROM dirty_skus")
            .fetch_all(&mut *conn)
            .await?;
    let claimed = rows.into_iter().map(Claimed::from).collect();
    match recalculate_claimed(conn, claimed, as_of, Stripes::AllHeld).await? {
        Attempt::Done(report) => Ok(report),
        Attempt::Busy => unreachable!("every stripe is held"),
    }
}

/// A deadlock or serialization failure: the transaction did nothing and
/// may simply be run again.
pub(super) fn is_transient(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

/// Which lock stripes a transaction holds.
enum Stripes {
    /// Those of the claimed SKUs: the rest of their groups must be taken.
    OfClaimed,
    AllHeld,
}

async fn batch(
    conn: &mut PgConnection,
    max_skus: usize,
    as_of: DateTime<Utc>,
) -> Result<Attempt, StoreError> {
    let claimed = claim(conn, max_skus).await?;
    recalculate_claimed(conn, claimed, as_of, Stripes::OfClaimed).await
}

async fn recalculate_claimed(
    conn: &mut PgConnection,
    mut claimed: Vec<Claimed>,
    as_of: DateTime<Utc>,
    stripes: Stripes,
) -> Result<Attempt, StoreError> {
    if claimed.is_empty() {
        return Ok(Attempt::Done(None));
    }
    let settings = load_settings(conn).await?;
    let mut skus: Vec<String> = claimed.iter().map(|c| c.sku.clone()).collect();
    if settings.consider_replacement_sku {
        let edges: Vec<(String, String)> = sqlx::query_as(
            "SELECT sku, replacement_sku FROM products WHERE replacement_sku IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await?;
        let group = replacement_closure(skus.iter().map(String::as_str), &edges);
        let extra: Vec<String> = group
            .iter()
            .filter(|sku| !skus.contains(sku))
            .cloned()
            .collect();
        if !extra.is_empty() {
            if matches!(stripes, Stripes::OfClaimed) && !try_lock_stripes(conn, &extra).await? {
                return Ok(Attempt::Busy);
            }
            // Their marks, read now, are cleared too: what is loaded next
            // includes every event up to them.
            claimed.extend(dirty_marks(conn, &extra).await?);
        }
        skus = group;
    }
    skus.sort_unstable();
    skus.dedup();

    let mut causes: FxHashMap<String, String> = claimed
        .iter()
        .map(|c| (c.sku.clone(), c.cause.clone()))
        .collect();
    for sku in &skus {
        causes
            .entry(sku.clone())
            .or_insert_with(|| "replacement group".to_owned());
    }
    let group = super::queries::load_group(conn, &skus, settings, causes).await?;
    let changes = recalc::changes(group, as_of);
    let lines_seen = changes.lines_seen;
    let written = writeback::write_changes(conn, changes, &format_timestamp(&as_of)).await?;
    clear_marks(conn, &claimed).await?;
    // Last: the message log's lock is held from here to the commit.
    crate::store::messages::append(&mut *conn, written.messages, Utc::now()).await?;

    let mut cause_list: Vec<String> = claimed.into_iter().map(|c| c.cause).collect();
    cause_list.sort_unstable();
    cause_list.dedup();
    Ok(Attempt::Done(Some(BatchReport {
        skus,
        causes: cause_list,
        lines_seen,
        lines_changed: written.lines,
        orders_changed: written.orders,
    })))
}

/// Up to `max_skus` dirty SKUs, in key order, whose lock stripe this
/// transaction could take without waiting. Only a window of the next SKUs
/// is tried, so that one worker does not take every stripe of a large
/// dirty set and leave the others idle.
async fn claim(conn: &mut PgConnection, max_skus: usize) -> Result<Vec<Claimed>, StoreError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT sku, cause, marked_seq
         FROM (SELECT sku, cause, marked_seq FROM dirty_skus ORDER BY sku LIMIT $3) next_dirty
         WHERE pg_try_advisory_xact_lock($1, hashtext(sku) & ($2 - 1))
         LIMIT $4",
    )
    .bind(LOCK_SPACE)
    .bind(SKU_LOCK_STRIPES)
    .bind(4 * max_skus as i64)
    .bind(max_skus as i64)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(Claimed::from).collect())
}

/// Takes the lock stripes of `skus` if all are free now.
async fn try_lock_stripes(conn: &mut PgConnection, skus: &[String]) -> Result<bool, StoreError> {
    let all: Option<bool> = sqlx::query_scalar(
        "SELECT bool_and(pg_try_advisory_xact_lock($1, hashtext(s) & ($2 - 1))) FROM unnest($3::text[]) s",
    )
    .bind(LOCK_SPACE)
    .bind(SKU_LOCK_STRIPES)
    .bind(skus)
    .fetch_one(&mut *conn)
    .await?;
    Ok(all.unwrap_or(true))
}

async fn dirty_marks(conn: &mut PgConnection, skus: &[String]) -> Result<Vec<Claimed>, StoreError> {
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT sku, cause, marked_seq FROM dirty_skus WHERE sku = ANY($1)")
            .bind(skus)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(Claimed::from).collect())
}

/// Clears the marks as read: a mark an event raised since stays for the
/// next batch, as the event may not be in what this one read.
async fn clear_marks(conn: &mut PgConnection, claimed: &[Claimed]) -> Result<(), StoreError> {
    let mut marks: Vec<(&str, i64)> = claimed
        .iter()
        .map(|c| (c.sku.as_str(), c.marked_seq))
        .collect();
    marks.sort_unstable();
    let (skus, seqs): (Vec<&str>, Vec<i64>) = marks.into_iter().unzip();
    sqlx::query(
        "DELETE FROM dirty_skus d USING unnest($1::text[], $2::int8[]) AS c(sku, seq)
         WHERE d.sku = c.sku AND d.marked_seq <= c.seq",
    )
    .bind(&skus)
    .bind(&seqs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every SKU through the engine in one transaction holding every lock
/// stripe (so no recalculation writes meanwhile), each order compared
/// whole; with `repair` the answer is written (cause `audit`) and the
/// marks of what was recalculated are cleared, else the transaction is
/// rolled back.
pub(super) async fn audit(
    pool: &PgPool,
    repair: bool,
    as_of: DateTime<Utc>,
) -> Result<crate::audit::AuditReport, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = pool.begin().await?;
        match audit_in(&mut tx, repair, as_of).await {
            Ok(findings) => {
                if repair {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                return Ok(crate::audit::AuditReport::new(findings, as_of, repair));
            }
            Err(e) if is_transient(&e) && attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "audit meets another writer; trying again");
            }
            Err(e) => return Err(e),
        }
    }
}

async fn audit_in(
    conn: &mut PgConnection,
    repair: bool,
    as_of: DateTime<Utc>,
) -> Result<crate::audit::Findings, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, s) FROM generate_series(0, $2 - 1) s")
        .bind(LOCK_SPACE)
        .bind(SKU_LOCK_STRIPES)
        .execute(&mut *conn)
        .await?;
    let dirty_skus: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dirty_skus")
        .fetch_one(&mut *conn)
        .await?;
    let orders_checked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&mut *conn)
        .await?;
    // A SKU without a mark gets one that no event can have raised (-1):
    // clearing it after a repair clears nothing.
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT l.sku, $1, COALESCE(d.marked_seq, -1)
         FROM (SELECT DISTINCT sku FROM order_lines) l LEFT JOIN dirty_skus d USING (sku)",
    )
    .bind(crate::audit::CAUSE)
    .fetch_all(&mut *conn)
    .await?;
    let claimed: Vec<Claimed> = rows.into_iter().map(Claimed::from).collect();
    let settings = load_settings(conn).await?;
    let mut skus: Vec<String> = claimed.iter().map(|c| c.sku.clone()).collect();
    if settings.consider_replacement_sku {
        // Replacement SKUs without lines of their own still lend stock.
        let edges: Vec<(String, String)> = sqlx::query_as(
            "SELECT sku, replacement_sku FROM products WHERE replacement_sku IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await?;
        skus = replacement_closure(skus.iter().map(String::as_str), &edges);
    }
    skus.sort_unstable();
    skus.dedup();
    let causes: FxHashMap<String, String> = skus
        .iter()
        .map(|sku| (sku.clone(), crate::audit::CAUSE.to_owned()))
        .collect();
    let group = super::queries::load_group(conn, &skus, settings, causes).await?;
    let compare = recalc::Compare {
        whole_orders: true,
        totals: false,
    };
    let changes = recalc::changes_with(group, as_of, compare);
    let findings = crate::audit::Findings {
        dirty_skus,
        lines_checked: changes.lines_seen,
        orders_checked: orders_checked as usize,
        lines: changes.lines.clone(),
        orders: changes.orders.clone(),
    };
    if repair {
        let written = writeback::write_changes(conn, changes, &format_timestamp(&as_of)).await?;
        clear_marks(conn, &claimed).await?;
        crate::store::messages::append(&mut *conn, written.messages, Utc::now()).await?;
    }
    Ok(findings)
}

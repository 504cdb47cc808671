//! SQLite's reads of the feed stamps (store/feed_stamps.rs): every SKU of
//! the book with its stored figures when its stamp is current, and one
//! SKU's stored entry when it and the SKUs tied to it are current.

use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqliteConnection};

use super::direct::{db_error, with_rusqlite};
use super::{feed_lines, load_settings, load_warehouses};
use crate::engine::snapshot::{Settings, Warehouse};
use crate::feed::{FeedEntry, FeedSource};
use crate::store::feed_rows::{self, OnlySkus};
use crate::store::feed_stamps::{self, BookSku, FeedParts, MOST_STALE, Prefilter, Stamp};
use crate::store::{StoreError, assemble};

/// The expression of an order's date that sorts as the instant.
const DATE_KEY: &str = "rtrim(o.order_date, 'Z')";

/// The elements of the JSON array bound as `$1`.
const LIST: &str = "SELECT value FROM json_each($1)";

/// Whether a stamp (alias `s`, of the SKU `s.sku`) is current: the feed
/// epoch and the SKU's pool version are those it was written at (a SKU
/// without a version row is at 0, as the pool cache reads it).
const CURRENT: &str = "s.epoch = (SELECT epoch FROM feed_epoch WHERE id = 1)
    AND s.version = coalesce((SELECT version FROM pool_versions v WHERE v.sku = s.sku), 0)";

/// Every SKU the feed lists (a product row, stock, an open purchase
/// order, a line: `feed_rows`' source), by SKU, each with whether its
/// stamp is current, whether its stored backordered units lie within the
/// bounds `?1` and `?2`, and its entry, waiting orders and oldest waiting
/// date (read only for the rows kept). The
/// lines' SKUs are found by skipping from one SKU to the next on the
/// table's key, not by reading every line.
fn book_statement() -> String {
    format!(
        "WITH RECURSIVE line_skus(sku) AS (
             SELECT (SELECT min(sku) FROM order_lines)
             UNION ALL
             SELECT (SELECT l.sku FROM order_lines l WHERE l.sku > line_skus.sku
                     ORDER BY l.sku LIMIT 1)
             FROM line_skus WHERE line_skus.sku IS NOT NULL
         ),
         book(sku) AS (
             SELECT sku FROM line_skus WHERE sku IS NOT NULL
             UNION SELECT sku FROM products
             UNION SELECT sku FROM inventory
             UNION SELECT sku FROM purchase_orders WHERE qty_ordered > qty_received
         )
         SELECT b.sku, s.sku IS NOT NULL,
                (?1 IS NULL OR s.backordered >= ?1) AND (?2 IS NULL OR s.backordered <= ?2),
                f.entry, s.waiting_orders, s.oldest_waiting
         FROM book b
         LEFT JOIN feed_stamps s ON s.sku = b.sku AND {CURRENT}
         LEFT JOIN availability_figures f ON f.sku = s.sku
             AND (?1 IS NULL OR s.backordered >= ?1) AND (?2 IS NULL OR s.backordered <= ?2)
         ORDER BY b.sku"
    )
}

fn book(db: &rusqlite::Connection, prefilter: Prefilter) -> rusqlite::Result<Vec<BookSku>> {
    let mut statement = db.prepare(&book_statement())?;
    let mut rows = statement.query(rusqlite::params![prefilter.min, prefilter.max])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let sku: String = row.get(0)?;
        let stamp = match (row.get::<_, bool>(1)?, row.get::<_, Option<bool>>(2)?) {
            (false, _) => Stamp::Stale,
            (true, Some(true)) => match (row.get(3)?, row.get(4)?) {
                (Some(entry), Some(orders)) => Stamp::Stored(entry, orders, row.get(5)?),
                // A stamp without its entry cannot be written; compute it.
                _ => Stamp::Stale,
            },
            (true, _) => Stamp::Skipped,
        };
        out.push(BookSku { sku, stamp });
    }
    Ok(out)
}

/// The current stamps whose stored backordered units lie within `?1` and
/// `?2`, with their entries: a range of `feed_stamps_by_backordered`.
const IN_RANGE: &str = "SELECT s.sku, f.entry, s.waiting_orders, s.oldest_waiting
     FROM feed_stamps s LEFT JOIN availability_figures f ON f.sku = s.sku
     WHERE s.backordered >= ?1 AND (?2 IS NULL OR s.backordered <= ?2)
       AND s.epoch = (SELECT epoch FROM feed_epoch WHERE id = 1)
       AND s.version = coalesce((SELECT version FROM pool_versions v WHERE v.sku = s.sku), 0)";

/// Every SKU with a pool version row (every SKU with lines has one: the
/// triggers add it, an import and the migration add it for the lines they
/// load) whose stamp is missing or not current; at most `?1`.
const STALE_WITH_LINES: &str = "SELECT v.sku FROM pool_versions v
     WHERE NOT EXISTS (SELECT 1 FROM feed_stamps s WHERE s.sku = v.sku
         AND s.epoch = (SELECT epoch FROM feed_epoch WHERE id = 1) AND s.version = v.version)
     LIMIT ?1";

/// Adds a version row (0: as if none) for every SKU with lines that lacks
/// one, after a load that ran without the triggers (an import).
pub(super) const REGISTER_LINE_SKUS: &str = "WITH RECURSIVE line_skus(sku) AS (
         SELECT (SELECT min(sku) FROM order_lines)
         UNION ALL
         SELECT (SELECT l.sku FROM order_lines l WHERE l.sku > line_skus.sku
                 ORDER BY l.sku LIMIT 1)
         FROM line_skus WHERE line_skus.sku IS NOT NULL
     )
     INSERT INTO pool_versions (sku, version)
     SELECT sku, 0 FROM line_skus WHERE sku IS NOT NULL
     ON CONFLICT (sku) DO NOTHING";

/// The stamps a search with a minimum of at least 1 reads
/// ([`feed_stamps::split_ranged`]): those within the bounds, and the
/// stale SKUs with lines (at most `MOST_STALE` + 1 of them).
fn ranged(
    db: &rusqlite::Connection,
    prefilter: Prefilter,
) -> rusqlite::Result<(Vec<BookSku>, Vec<String>)> {
    let mut statement = db.prepare(IN_RANGE)?;
    let mut rows = statement.query(rusqlite::params![prefilter.min, prefilter.max])?;
    let mut in_range = Vec::new();
    let mut stale = Vec::new();
    while let Some(row) = rows.next()? {
        let sku: String = row.get(0)?;
        match row.get::<_, Option<String>>(1)? {
            Some(entry) => in_range.push(BookSku {
                stamp: Stamp::Stored(entry, row.get(2)?, row.get(3)?),
                sku,
            }),
            // A stamp without its entry cannot be written; compute it.
            None => stale.push(sku),
        }
    }
    let mut statement = db.prepare(STALE_WITH_LINES)?;
    let mut rows = statement.query([MOST_STALE as i64 + 1])?;
    while let Some(row) = rows.next()? {
        stale.push(row.get(0)?);
    }
    Ok((in_range, stale))
}

/// The whole source, as the feed was always computed.
async fn whole_source(
    conn: &mut SqliteConnection,
    settings: Settings,
    warehouses: Vec<Warehouse>,
    as_of: DateTime<Utc>,
) -> Result<FeedSource, StoreError> {
    let cutoff = feed_rows::cutoff_key(&settings, as_of);
    let tallied = feed_lines::tally_rows(conn, cutoff).await?;
    feed_rows::feed_source::<Sqlite>(
        conn,
        settings,
        warehouses,
        DATE_KEY,
        as_of,
        Some(tallied),
        None,
    )
    .await
}

/// The feed's parts on `conn` (one read transaction).
pub(super) async fn feed_parts(
    conn: &mut SqliteConnection,
    as_of: DateTime<Utc>,
    prefilter: Prefilter,
) -> Result<FeedParts, StoreError> {
    let settings = load_settings(conn).await?;
    let warehouses = load_warehouses(conn).await?;
    // With `max_days_back` an order's scope moves with the clock.
    if settings.max_days_back.is_some() {
        return Ok(FeedParts {
            stored: Vec::new(),
            source: whole_source(conn, settings, warehouses, as_of).await?,
        });
    }
    let edges = if settings.consider_replacement_sku {
        Some(crate::store::recalculate::portable::replacement_edges::<Sqlite>(conn).await?)
    } else {
        None
    };
    // A search that needs backordered units reads only the stamps within
    // its bounds and the stale SKUs, not every SKU of the book.
    let (stored, stale) = if feed_stamps::needs_backordered(prefilter) {
        let (in_range, stale) =
            with_rusqlite(conn, |db| ranged(db, prefilter).map_err(db_error)).await?;
        match stale.len() > MOST_STALE {
            true => (Vec::new(), stale),
            false => feed_stamps::split_ranged(in_range, stale, edges.as_deref())?,
        }
    } else {
        let rows = with_rusqlite(conn, |db| book(db, prefilter).map_err(db_error)).await?;
        feed_stamps::split(rows, edges.as_deref())?
    };
    if stale.len() > MOST_STALE {
        return Ok(FeedParts {
            stored: Vec::new(),
            source: whole_source(conn, settings, warehouses, as_of).await?,
        });
    }
    let source = if stale.is_empty() {
        FeedSource {
            settings,
            warehouses,
            ..FeedSource::default()
        }
    } else {
        let list = serde_json::to_string(&stale).expect("skus serialize");
        feed_rows::feed_source::<Sqlite>(
            conn,
            settings,
            warehouses,
            DATE_KEY,
            as_of,
            None,
            Some(OnlySkus {
                skus: &list,
                list: LIST,
            }),
        )
        .await?
    };
    Ok(FeedParts { stored, source })
}

/// `sku`'s stored entry when it is current, with every SKU tied to it;
/// `None`: compute it.
pub(super) async fn stored_entry(
    conn: &mut SqliteConnection,
    sku: &str,
) -> Result<Option<FeedEntry>, StoreError> {
    let settings = load_settings(conn).await?;
    if settings.max_days_back.is_some() {
        return Ok(None);
    }
    let group = assemble::group_skus::<Sqlite>(conn, &settings, vec![sku.to_owned()]).await?;
    let list = serde_json::to_string(&group).expect("skus serialize");
    let current: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM json_each($1) j JOIN feed_stamps s ON s.sku = j.value
         WHERE {CURRENT}"
    )))
    .bind(&list)
    .fetch_one(&mut *conn)
    .await?;
    if current != group.len() as i64 {
        return Ok(None);
    }
    let entry: Option<String> =
        sqlx::query_scalar("SELECT entry FROM availability_figures WHERE sku = $1")
            .bind(sku)
            .fetch_optional(&mut *conn)
            .await?;
    entry
        .map(|text| feed_stamps::parse_entry(sku, &text))
        .transpose()
}

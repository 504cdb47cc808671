//! `/products/{sku}`: a SKU's stock per warehouse, its availability-feed
//! figures, its open purchase orders and the queue of its waiting lines in
//! the engine's priority order with their ETAs; `/products`: the search by
//! backordered-quantity range (the feed's own filter).
//!
//! One read of the SKU's stored state (with its replacement closure, as
//! `GET /v1/availability/{sku}` reads it) feeds all three pure functions:
//! `explain::product_summary`, `availability::entry_of` and
//! `waiting::product_queue`, so nothing is computed a second way here.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleStore;
use super::backorders::urlencode;
use super::layout::{self, PageError, yes_no};
use super::session::Current;
use crate::api::{ApiError, AppState};
use crate::engine::time_format::format_timestamp;
use crate::explain::ProductSummary;
use crate::feed::{FeedEntry, FeedFilter};
use crate::waiting::PoolQueue;

/// Waiting lines listed per pool on a page of the queue.
pub const QUEUE_ROWS: usize = 100;
/// SKUs per page of the search.
const PAGE: usize = 50;

fn date(d: Option<chrono::NaiveDate>) -> String {
    d.map_or("none".to_owned(), |d| d.to_string())
}

#[derive(Deserialize, Default)]
pub struct ProductQuery {
    /// The page of the queue (1 first), `QUEUE_ROWS` waiting lines a pool.
    #[serde(default)]
    queue_page: String,
}

/// `GET /products/{sku}?queue_page=N`.
pub async fn page<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Extension(current): Extension<Current>,
    Path(sku): Path<String>,
    Query(query): Query<ProductQuery>,
) -> Result<Response, PageError> {
    let queue_page = match query.queue_page.trim() {
        "" => 1,
        t => t.parse::<usize>().ok().filter(|&p| p >= 1).ok_or_else(|| {
            PageError::bad_request(format!(
                "Queue page: {t:?} is not a page number (1 or more)."
            ))
        })?,
    };
    let skip = (queue_page - 1).saturating_mul(QUEUE_ROWS);
    let pools = state
        .store
        .pool_state(std::slice::from_ref(&sku), true)
        .await?;
    let asked = sku.clone();
    // The engine runs on whole pools: off the async threads.
    let (summary, entry, queue) = tokio::task::spawn_blocking(move || {
        let now = Utc::now();
        (
            crate::explain::product_summary(&asked, &pools, now),
            crate::availability::entry_of(&pools, &asked, now),
            crate::waiting::product_queue(&asked, &pools, now, skip, QUEUE_ROWS),
        )
    })
    .await
    .map_err(|e| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let Some(summary) = summary else {
        return Err(PageError::not_found(format!(
            "Nothing is stored about SKU {sku:?}."
        )));
    };
    let body = html! {
        h1 { "Product " (sku) }
        @if summary.recalculation_pending {
            p.warning role="status" { "A recalculation of this SKU is pending: the stored values may change." }
        }
        dl.facts {
            dt { "Replacement SKU" } dd { (summary.replacement_sku.as_deref().unwrap_or("none")) }
            dt { "Pools" } dd { (if summary.warehouse_based { "one per warehouse" } else { "one for the SKU" }) }
            dt { "Backorder list" } dd { a href={ "/backorders?sku=" (urlencode(&sku)) } { "Orders waiting for " (sku) } }
        }
        @if let Some(e) = &entry { (feed_figures(e)) }
        (stock_table(&summary, entry.as_ref()))
        (purchase_orders(&summary))
        h2 #queue-title { "Queue of waiting lines" }
        p.help { "The active lines of each pool in the order the engine serves them; "
            "\"backordered now\" and the ETA are the engine's answer on the stored state now." }
        @if queue.iter().all(|q| q.waiting.is_empty() && q.before == 0 && q.more == 0) {
            p #no-queue role="status" { "No line of this SKU waits." }
        } @else if queue.iter().all(|q| q.waiting.is_empty()) {
            p #no-queue-page role="status" { "No waiting line on this page." }
        }
        @for (i, q) in queue.iter().enumerate() {
            @if !q.waiting.is_empty() || q.before > 0 { (queue_table(i, q)) }
        }
        (queue_pager(&sku, queue_page, &queue))
    };
    let title = format!("Product {sku}");
    Ok(layout::page(&title, Some(&current), body).into_response())
}

fn feed_figures(e: &FeedEntry) -> Markup {
    html! {
        section aria-labelledby="feed-title" {
            h2 #feed-title { "Availability" }
            ul.figures #feed {
                li { span.value #feed-on-hand { (e.on_hand) } "on hand (eligible)" }
                li { span.value #feed-allocated { (e.allocated) } "allocated" }
                li { span.value #feed-backordered { (e.backordered) } "backordered" }
                li { span.value #feed-free { (e.free) } "free" }
                li { span.value #feed-on-order { (e.on_order) } "on order" }
                li { span.value { (date(e.next_eta)) } "next ETA" }
                li { span.value #feed-sellable { (e.sellable.map_or("unlimited".to_owned(), |s| s.to_string())) } "sellable" }
                li { span.value { (yes_no(e.over_threshold)) } "over a backorder threshold" }
            }
        }
    }
}

fn stock_table(summary: &ProductSummary, entry: Option<&FeedEntry>) -> Markup {
    let feed_of = |w: Option<&str>| {
        entry.and_then(|e| {
            e.warehouses
                .iter()
                .find(|f| Some(f.warehouse.as_str()) == w)
        })
    };
    html! {
        h2 { "Stock per warehouse" }
        table #stock {
            caption { "Stored stock and what active lines hold, per warehouse (orders without a ship-from warehouse last)" }
            thead { tr {
                th scope="col" { "Warehouse" } th scope="col" { "Eligible" }
                th scope="col" class="num" { "On hand" } th scope="col" class="num" { "Held by frozen" }
                th scope="col" class="num" { "Allocated" } th scope="col" class="num" { "Backordered" }
                th scope="col" class="num" { "On order" } th scope="col" { "Next ETA" }
                th scope="col" class="num" { "Threshold" }
            } }
            tbody {
                @for w in &summary.warehouses {
                    @let feed = feed_of(w.warehouse.as_deref());
                    tr data-warehouse=(w.warehouse.as_deref().unwrap_or("")) {
                        th scope="row" { (w.warehouse.as_deref().unwrap_or("no ship-from")) }
                        td { (yes_no(w.eligible)) }
                        td.num { (w.figures.on_hand) }
                        td.num { (w.figures.held_by_frozen) }
                        td.num { (w.figures.allocated) }
                        td.num { (w.figures.backordered) }
                        td.num { (feed.map_or(0, |f| f.on_order)) }
                        td { (date(feed.and_then(|f| f.next_eta))) }
                        td.num { (feed.and_then(|f| f.threshold).map_or("none".to_owned(), |t| t.to_string())) }
                    }
                }
            }
        }
    }
}

fn purchase_orders(summary: &ProductSummary) -> Markup {
    html! {
        h2 { "Open purchase orders" }
        @if summary.open_purchase_orders.is_empty() {
            p #no-purchase-orders { "None open." }
        } @else {
            table #purchase-orders {
                caption { "By expected date (undated last)" }
                thead { tr {
                    th scope="col" { "Purchase order" } th scope="col" { "Warehouse" } th scope="col" { "Eligible" }
                    th scope="col" class="num" { "Ordered" } th scope="col" class="num" { "Received" }
                    th scope="col" class="num" { "Open" } th scope="col" { "Expected" }
                } }
                tbody {
                    @for p in &summary.open_purchase_orders {
                        tr { th scope="row" { (p.id) } td { (p.warehouse) } td { (yes_no(p.eligible)) }
                            td.num { (p.qty_ordered) } td.num { (p.qty_received) } td.num { (p.open_qty) }
                            td { (date(p.expected_date)) } }
                    }
                }
            }
        }
    }
}

/// Previous / next page of the queue, when there is one.
fn queue_pager(sku: &str, page: usize, queue: &[PoolQueue]) -> Markup {
    let link = |page: usize| format!("/products/{}?queue_page={page}#queue-title", urlencode(sku));
    let previous = page > 1;
    let next = queue.iter().any(|q| q.more > 0);
    html! {
        @if previous || next {
            nav.pager #queue-pages aria-label="Pages of the queue" {
                @if previous { a href=(link(page - 1)) rel="prev" { "Previous " (QUEUE_ROWS) " lines" } }
                " Page " (page) " "
                @if next { a href=(link(page + 1)) rel="next" { "Next " (QUEUE_ROWS) " lines" } }
            }
        }
    }
}

fn queue_table(i: usize, q: &PoolQueue) -> Markup {
    let pool = match &q.pool.warehouse {
        Some(w) => format!("Pool {} at {w}", q.pool.sku),
        None => format!("Pool {}", q.pool.sku),
    };
    let waiting = q.before + q.waiting.len() + q.more;
    html! {
        table.queue id={ "queue-" (i) } {
            caption { (pool) ": " (waiting) " of " (q.active_lines) " active lines wait"
                @if q.waiting.is_empty() { " (none on this page)" }
                @else if waiting > q.waiting.len() {
                    " (waiting lines " (q.before + 1) " to " (q.before + q.waiting.len()) " listed)"
                } }
            thead { tr {
                th scope="col" class="num" { "Place" } th scope="col" { "Order" } th scope="col" { "Line" }
                th scope="col" { "Ordered" } th scope="col" { "Rush" } th scope="col" class="num" { "Qty" }
                th scope="col" class="num" { "Backordered now" } th scope="col" class="num" { "Stored" }
                th scope="col" { "ETA" }
            } }
            tbody {
                @for w in &q.waiting {
                    tr data-line=(w.line_id) {
                        td.num { (w.position) }
                        th scope="row" { a href={ "/orders/" (urlencode(&w.order_id)) } { (w.order_id) } }
                        td { (w.line_id) }
                        td { (format_timestamp(&w.order_date)) }
                        td { (yes_no(w.rush)) }
                        td.num { (w.qty) }
                        td.num.backordered { (w.backorder_qty) }
                        td.num { (w.stored_backorder_qty) }
                        td.eta { (date(w.eta)) }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct Search {
    #[serde(default)]
    min_backordered: String,
    #[serde(default)]
    max_backordered: String,
    #[serde(default)]
    warehouse: String,
    #[serde(default)]
    after: String,
}

impl Search {
    fn link(&self, after: &str) -> String {
        let pairs = [
            ("min_backordered", self.min_backordered.as_str()),
            ("max_backordered", self.max_backordered.as_str()),
            ("warehouse", self.warehouse.as_str()),
            ("after", after),
        ];
        let kept: Vec<(&str, &str)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        format!(
            "/products?{}",
            serde_urlencoded::to_string(kept).expect("pairs of strings encode")
        )
    }
}

fn bound(name: &str, text: &str) -> Result<Option<i64>, PageError> {
    match text.trim() {
        "" => Ok(None),
        t => t
            .parse()
            .map(Some)
            .map_err(|_| PageError::bad_request(format!("{name}: {t:?} is not a whole number."))),
    }
}

/// `GET /products?min_backordered=&max_backordered=&warehouse=&after=`.
pub async fn search<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Extension(current): Extension<Current>,
    Query(search): Query<Search>,
) -> Result<Response, PageError> {
    let filter = FeedFilter {
        backordered_min: bound("Backordered from", &search.min_backordered)?,
        backordered_max: bound("Backordered up to", &search.max_backordered)?,
        warehouse: Some(search.warehouse.trim().to_owned()).filter(|w| !w.is_empty()),
    };
    let in_warehouse = filter.warehouse.clone();
    // The feed is computed over the whole book: only for a search asked for.
    let asked = !filter.is_empty();
    let mut entries = match asked {
        true => crate::availability::whole(&*state.store, filter)
            .await
            .map_err(|e| PageError::from(ApiError::from(e)))?,
        false => Vec::new(),
    };
    if !search.after.is_empty() {
        let start = entries.partition_point(|e| e.sku.as_str() <= search.after.as_str());
        entries.drain(..start);
    }
    let matched = entries.len();
    let next = (entries.len() > PAGE).then(|| entries[PAGE - 1].sku.clone());
    entries.truncate(PAGE);
    let backordered_in = |e: &FeedEntry| match &in_warehouse {
        None => e.backordered,
        Some(w) => e
            .warehouses
            .iter()
            .find(|f| &f.warehouse == w)
            .map_or(0, |f| f.backordered),
    };
    let body = html! {
        h1 { "Products" }
        form.filters method="get" action="/products" role="search" aria-label="Search products by backordered quantity" {
            p { label for="min_backordered" { "Backordered from" }
                input #min_backordered type="number" min="0" name="min_backordered" value=(search.min_backordered); }
            p { label for="max_backordered" { "Backordered up to" }
                input #max_backordered type="number" min="0" name="max_backordered" value=(search.max_backordered); }
            p { label for="product-warehouse" { "In warehouse (blank: all)" }
                input #product-warehouse name="warehouse" value=(search.warehouse); }
            p { button type="submit" { "Search" } }
        }
        @if !asked {
            p #search-help .help { "Give a range of backordered units (either bound may stay blank) to list the products in it." }
        } @else if entries.is_empty() {
            p #no-products role="status" { "No product matches." }
        } @else {
            table #products {
                caption { (matched) " products match" @if !search.after.is_empty() { " from here on" } ", by SKU" }
                thead { tr {
                    th scope="col" { "SKU" }
                    th scope="col" class="num" { "Backordered" @if let Some(w) = &in_warehouse { " in " (w) } }
                    th scope="col" class="num" { "On hand" } th scope="col" class="num" { "Free" }
                    th scope="col" class="num" { "On order" } th scope="col" { "Next ETA" }
                    th scope="col" class="num" { "Sellable" }
                } }
                tbody {
                    @for e in &entries {
                        tr {
                            th scope="row" { a href={ "/products/" (urlencode(&e.sku)) } { (e.sku) } }
                            td.num { (backordered_in(e)) }
                            td.num { (e.on_hand) } td.num { (e.free) } td.num { (e.on_order) }
                            td { (date(e.next_eta)) }
                            td.num { (e.sellable.map_or("unlimited".to_owned(), |s| s.to_string())) }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if !search.after.is_empty() { a href=(search.link("")) { "First page" } }
            @if let Some(next) = &next { a href=(search.link(next)) rel="next" { "Next page" } }
        }
    };
    Ok(layout::page("Products", Some(&current), body).into_response())
}

//! `/backorders`: the backordered orders, oldest first, filtered by status
//! (Full / Partial / Any), SKU, ship-from warehouse and order date range,
//! page by page (the same store query as `GET /v1/backorders`).
//! Customer: orders carry no customer yet (issue 11 adds it); its filter
//! joins this form then.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::ConsoleStore;
use super::layout::{self, PageError, label, yes_no};
use super::session::Current;
use crate::api::AppState;
use crate::engine::time_format::format_timestamp;
use crate::store::{BackorderCursor, BackorderQuery, StatusFilter};

/// Orders per page.
const PAGE: usize = 50;

#[derive(Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    sku: String,
    #[serde(default)]
    warehouse: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    after: String,
}

impl Filters {
    /// The query string of these filters, starting after `after`.
    fn link(&self, after: Option<&str>) -> String {
        let pairs = [
            ("status", self.status.as_str()),
            ("sku", self.sku.as_str()),
            ("warehouse", self.warehouse.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("after", after.unwrap_or("")),
        ];
        let kept: Vec<(&str, &str)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        format!(
            "/backorders?{}",
            serde_urlencoded::to_string(kept).expect("pairs of strings encode")
        )
    }
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// `GET /backorders`.
pub async fn page<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Extension(current): Extension<Current>,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    let status = match filters.status.as_str() {
        "full" => StatusFilter::Full,
        "partial" => StatusFilter::Partial,
        "" | "any" => StatusFilter::Any,
        other => return Err(PageError::bad_request(format!("Unknown status {other:?}."))),
    };
    let after = match filters.after.as_str() {
        "" => None,
        token => Some(
            BackorderCursor::decode(token)
                .ok_or_else(|| PageError::bad_request("That page link is damaged."))?,
        ),
    };
    let query = BackorderQuery {
        status,
        sku: non_empty(&filters.sku),
        warehouse: non_empty(&filters.warehouse),
        from: crate::api::date_bound("From", Some(&filters.from), false)?,
        until: crate::api::date_bound("To", Some(&filters.to), true)?,
        limit: PAGE + 1,
        after,
    };
    let mut orders = state.store.backorders(&query).await?;
    let next = (orders.len() > PAGE).then(|| {
        orders.truncate(PAGE);
        orders.last().map(|o| o.cursor.encode())
    });
    let next = next.flatten();
    let selected = |value: &str| match (value, filters.status.as_str()) {
        ("any", "") => true,
        (v, s) => v == s,
    };
    let body = html! {
        h1 { "Backorders" }
        form.filters method="get" action="/backorders" role="search" aria-label="Filter the backorders" {
            p {
                label for="status" { "Backorder status" }
                select #status name="status" {
                    option value="any" selected[selected("any")] { "Any" }
                    option value="full" selected[selected("full")] { "Full" }
                    option value="partial" selected[selected("partial")] { "Partial" }
                }
            }
            p { label for="sku" { "SKU" } input #sku name="sku" value=(filters.sku); }
            p { label for="warehouse" { "Ships from" } input #warehouse name="warehouse" value=(filters.warehouse); }
            p { label for="from" { "Ordered from" } input #from type="date" name="from" value=(filters.from); }
            p { label for="to" { "Ordered until" } input #to type="date" name="to" value=(filters.to); }
            p { button type="submit" { "Filter" } }
        }
        @if let Some(sku) = non_empty(&filters.sku) {
            p #product-link { a href={ "/products/" (urlencode(&sku)) } { "Product page of " (sku) ": stock, purchase orders and its queue" } }
        }
        @if orders.is_empty() {
            p #no-orders role="status" { "No backordered order matches." }
        } @else {
            table #backorders {
                caption { "Backordered orders, oldest first" @if !filters.after.is_empty() { " (a later page)" } }
                thead {
                    tr {
                        th scope="col" { "Order" }
                        th scope="col" { "Ordered" }
                        th scope="col" { "Backorder" }
                        th scope="col" class="num" { "Units short" }
                        th scope="col" { "Status" }
                        th scope="col" { "Payment" }
                        th scope="col" { "Ships from" }
                        th scope="col" { "Rush" }
                    }
                }
                tbody {
                    @for o in &orders {
                        tr {
                            th scope="row" { a href={ "/orders/" (urlencode(&o.order_id)) } { (o.order_id) } }
                            td { (format_timestamp(&o.order_date)) }
                            td { (label(&o.backorder_status)) }
                            td.num { (o.backorder_qty) }
                            td { (label(&o.status)) }
                            td { (label(&o.payment_status)) }
                            td { (o.ship_from.as_deref().unwrap_or("any")) }
                            td { (yes_no(o.rush)) }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if !filters.after.is_empty() { a href=(filters.link(None)) { "First page" } }
            @if let Some(next) = &next { a href=(filters.link(Some(next))) rel="next" { "Next page" } }
        }
    };
    Ok(layout::page("Backorders", Some(&current), body).into_response())
}

/// A path segment: every byte but unreserved ones percent-encoded.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

//! `/orders/{id}`: an order's header, scope and status; each line with its
//! quantities, ETA and why it is short (`explain`); the Manage Backorder
//! forms (a `backorder_override` event); "Recalculate this order's SKUs
//! now" (a `recalculate` event) and its progress; the history timeline.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleStore;
use super::backorders::urlencode;
use super::layout::{self, PageError, arrow, label, yes_no};
use super::session::{Current, Posted};
use crate::api::AppState;
use crate::engine::Scope;
use crate::engine::time_format::format_timestamp;
use crate::events::EventKind;
use crate::explain::{LineExplanation, Reason};

/// History rows shown.
const HISTORY_ROWS: i64 = 50;

#[derive(Deserialize)]
pub struct OrderQuery {
    /// Set after "Recalculate this order's SKUs now".
    recalc: Option<String>,
    /// The line just overridden.
    changed: Option<String>,
}

/// `GET /orders/{id}`.
pub async fn page<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Extension(current): Extension<Current>,
    Path(id): Path<String>,
    Query(query): Query<OrderQuery>,
) -> Result<Response, PageError> {
    let Some(view) = state.store.order_view(&id).await? else {
        return Err(PageError::not_found(format!("There is no order {id:?}.")));
    };
    let skus = order_skus(&view.order);
    // Progress first: once nothing is pending, every read below sees the
    // written-back values (read before, a write-back landing in between
    // would show "done" beside the old values).
    let pending = match query.recalc {
        Some(_) => state.store.dirty_count(Some(&skus)).await?,
        None => 0,
    };
    let view = match pending {
        0 if query.recalc.is_some() => state
            .store
            .order_view(&id)
            .await?
            .ok_or_else(|| PageError::not_found(format!("There is no order {id:?}.")))?,
        _ => view,
    };
    let (first, others) = crate::store::order_groups(&*state.store, &skus).await?;
    let history = state.store.order_history(&id, HISTORY_ROWS).await?;
    // The engine runs on whole pools: off the async threads.
    let order = tokio::task::spawn_blocking(move || {
        crate::explain::explain_order_by_group(&view, &first, &others, Utc::now())
    })
    .await
    .map_err(|e| PageError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let action = format!("/orders/{}", urlencode(&order.order_id));
    let body = html! {
        h1 { "Order " (order.order_id) }
        @if query.recalc.is_some() {
            p #progress role="status" aria-live="polite" .(if pending > 0 { "warning" } else { "notice" }) {
                @if pending > 0 {
                    "Recalculating this order's SKUs: " (pending) " still to write back. This page refreshes itself."
                } @else {
                    "Recalculated: this order's SKUs are written back."
                }
            }
        }
        @if let Some(line) = &query.changed {
            p.notice role="status" { "Line " (line) ": backorder quantity saved." }
        }
        dl.facts {
            dt { "Ordered" } dd { (format_timestamp(&order.order_date)) }
            dt { "Paid" } dd { (order.payment_date.as_ref().map_or("not yet".to_owned(), format_timestamp)) }
            dt { "Status" } dd { (label(&order.status)) }
            dt { "Payment" } dd { (label(&order.payment_status)) }
            dt { "Rush" } dd { (yes_no(order.rush)) }
            dt { "Picked" } dd { (yes_no(order.picked)) }
            dt { "Ships from" } dd { (order.ship_from.as_deref().unwrap_or("any warehouse")) }
            dt { "Scope" } dd #scope { (label(&order.scope)) }
            dt { "Backorder" } dd #backorder-status { (label(&order.backorder_status)) ", " (order.backorder_qty) " units short" }
        }
        h2 { "Lines" }
        table #lines {
            caption { "Each line, its stored backorder and why" }
            thead {
                tr {
                    th scope="col" { "Line" }
                    th scope="col" { "SKU" }
                    th scope="col" class="num" { "Qty" }
                    th scope="col" class="num" { "Backordered" }
                    th scope="col" { "ETA" }
                    th scope="col" { "Why" }
                }
            }
            tbody {
                @for line in &order.lines {
                    tr data-line=(line.line_id) {
                        th scope="row" { (line.line_id) }
                        td { a href={ "/products/" (urlencode(&line.sku)) } { (line.sku) } }
                        td.num { (line.qty) }
                        td.num.backordered { (line.backorder_qty) }
                        td { (line.eta.map_or("none".to_owned(), |d| d.to_string())) }
                        td { (why(&line.reason)) }
                    }
                }
            }
        }
        section aria-labelledby="manage-title" {
            h2 #manage-title { "Manage Backorder" }
            p.warning #override-warning {
                @if order.scope == Scope::Active {
                    "A value set here stands only until the next recalculation of the line's SKU, which \
                     overwrites it with the engine's answer (an event touching the SKU, \"Recalculate\" below, \
                     or the periodic full run)."
                } @else {
                    "This order is " (label(&order.scope)) ": the engine keeps its stored values, so a value \
                     set here stays until the order is allocated again."
                }
            }
            @for line in &order.lines {
                (manage_form(&current, &action, line))
            }
        }
        section aria-labelledby="recalc-title" {
            h2 #recalc-title { "Recalculate" }
            form method="post" action={ (action) "/recalculate" } {
                (layout::csrf_field(&current))
                button type="submit" { "Recalculate this order's SKUs now" }
            }
        }
        section aria-labelledby="history-title" {
            h2 #history-title { "History" }
            @if history.is_empty() {
                p { "No change recorded yet." }
            } @else {
                table #history {
                    caption { "Newest first, at most " (HISTORY_ROWS) " changes" }
                    thead { tr { th scope="col" { "At" } th scope="col" { "Line" } th scope="col" { "Backordered" }
                        th scope="col" { "Order status" } th scope="col" { "Cause" } } }
                    tbody {
                        @for h in &history {
                            tr {
                                td { (h.at) }
                                td { (h.line_id.as_deref().unwrap_or("whole order")) }
                                td { (h.old_backorder_qty) " " (arrow()) " " (h.new_backorder_qty) }
                                td { @if let (Some(old), Some(new)) = (&h.old_status, &h.new_status) { (old) " " (arrow()) " " (new) } }
                                td { (h.cause) }
                            }
                        }
                    }
                }
            }
        }
    };
    let refresh = (pending > 0).then_some(1);
    let title = format!("Order {}", order.order_id);
    Ok(layout::page_with(&title, Some(&current), refresh, body).into_response())
}

/// One line's Manage Backorder controls: a quantity to save, and the
/// Mark BackOrder / Mark Not BackOrder shortcuts (all of it, none of it).
fn manage_form(current: &Current, action: &str, line: &LineExplanation) -> Markup {
    let field = format!("qty-{}", line.line_id);
    html! {
        form.manage method="post" action={ (action) "/lines" } aria-label={ "Manage line " (line.line_id) } {
            (layout::csrf_field(current))
            input type="hidden" name="line_id" value=(line.line_id);
            label for=(field) { "Line " (line.line_id) " (" (line.sku) "): backorder qty" }
            input id=(field) type="number" name="backorder_qty" min="0" max=(line.qty) value=(line.backorder_qty);
            button type="submit" name="action" value="set" { "Save" }
            button.secondary type="submit" name="action" value="mark" { "Mark BackOrder" }
            button.secondary type="submit" name="action" value="unmark" { "Mark Not BackOrder" }
        }
    }
}

/// The reason in words.
fn why(reason: &Reason) -> Markup {
    let pool = match &reason.pool.warehouse {
        Some(w) => format!("{} at {w}", reason.pool.sku),
        None => reason.pool.sku.clone(),
    };
    html! {
        @if reason.scope != Scope::Active {
            "The order is " (label(&reason.scope)) ": it is not allocated; its stored value stands."
        } @else {
            "Pool " (pool) ": " (reason.eligible_on_hand) " on hand in eligible warehouses"
            @if reason.held_by_frozen > 0 { ", " (reason.held_by_frozen) " held by frozen orders" }
            ", " (reason.available) " to share; "
            (reason.promised_ahead.unwrap_or(0)) " promised to lines ahead, "
            (reason.allocated.unwrap_or(0)) " to this line"
            @if let Some(behind) = reason.promised_behind.filter(|b| *b > 0) { ", " (behind) " to lines behind" }
            "."
            @if let Some(cover) = &reason.replacement { " " (cover.units) " covered by replacement " (cover.sku) "." }
        }
        @if reason.recalculation_pending { " (A recalculation is pending: the stored values may change.)" }
    }
}

fn order_skus(order: &crate::engine::snapshot::Order) -> Vec<String> {
    let mut skus: Vec<String> = order.lines.iter().map(|l| l.sku.clone()).collect();
    skus.sort_unstable();
    skus.dedup();
    skus
}

#[derive(Deserialize)]
pub struct OverrideForm {
    line_id: String,
    action: String,
    #[serde(default)]
    backorder_qty: String,
}

/// `POST /orders/{id}/lines`: a `backorder_override` event for one line.
pub async fn override_line<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Path(id): Path<String>,
    Posted(form): Posted<OverrideForm>,
) -> Result<Response, PageError> {
    let Some(view) = state.store.order_view(&id).await? else {
        return Err(PageError::not_found(format!("There is no order {id:?}.")));
    };
    let Some(line) = view.order.lines.iter().find(|l| l.id == form.line_id) else {
        return Err(PageError::not_found(format!(
            "Order {id:?} has no line {:?}.",
            form.line_id
        )));
    };
    let backorder_qty = match form.action.as_str() {
        "mark" => line.qty,
        "unmark" => 0,
        "set" => form.backorder_qty.trim().parse::<i64>().map_err(|_| {
            PageError::refused(format!(
                "Line {}: the backorder qty {:?} is not a whole number.",
                line.id, form.backorder_qty
            ))
        })?,
        other => return Err(PageError::bad_request(format!("Unknown action {other:?}."))),
    };
    if !(0..=line.qty).contains(&backorder_qty) {
        return Err(PageError::refused(format!(
            "Line {}: the backorder qty must be from 0 to the line's qty {}.",
            line.id, line.qty
        )));
    }
    super::send(
        &state,
        "override",
        EventKind::BackorderOverride {
            line_id: line.id.clone(),
            backorder_qty,
        },
    )
    .await?;
    Ok(Redirect::to(&format!(
        "/orders/{}?changed={}",
        urlencode(&id),
        urlencode(&line.id)
    ))
    .into_response())
}

/// `POST /orders/{id}/recalculate`: a `recalculate` event of the order's
/// SKUs, then the order showing its progress.
pub async fn recalculate<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Path(id): Path<String>,
    Posted(_): Posted<super::session::NoFields>,
) -> Result<Response, PageError> {
    let Some(view) = state.store.order_view(&id).await? else {
        return Err(PageError::not_found(format!("There is no order {id:?}.")));
    };
    let skus = order_skus(&view.order);
    super::send(
        &state,
        "recalc",
        EventKind::Recalculate { skus, all: false },
    )
    .await?;
    Ok(Redirect::to(&format!("/orders/{}?recalc=1", urlencode(&id))).into_response())
}

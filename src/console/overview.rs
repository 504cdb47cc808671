//! `/`: what the daemon is doing: the queue, the dirty and set-aside SKUs,
//! the live workers; "Recalculate everything now" and its progress.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use super::ConsoleStore;
use super::layout::{self, PageError, age};
use super::session::{Current, NoFields, Posted};
use crate::api::AppState;
use crate::events::EventKind;
use crate::store::daemons::ms_to_rfc3339;

#[derive(Deserialize)]
pub struct OverviewQuery {
    /// Set after "Recalculate everything now": show its progress.
    recalc: Option<String>,
}

/// `GET /`.
pub async fn page<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Extension(current): Extension<Current>,
    Query(query): Query<OverviewQuery>,
) -> Result<Response, PageError> {
    let queue = state.store.queue_status().await?;
    let oldest = state.store.oldest_dirty_mark().await?;
    let daemons = state.store.live_daemons().await?;
    let set_aside = state.store.set_aside_list().await?;
    let now = Utc::now();
    let samples = state
        .store
        .samples_since(now.timestamp().div_euclid(60) - super::charts::SHOWN_MINUTES)
        .await?;
    let waiting_secs = oldest.map(|t| (now - t).num_seconds());
    let tracking = query.recalc.is_some();
    // Every SKU was marked: the run is written back once none is dirty
    // (a set-aside SKU stays marked and is listed below).
    let pending = queue.dirty_skus - queue.set_aside_skus;
    let running = tracking && pending > 0;
    let body = html! {
        h1 { "Overview" }
        @if tracking {
            section aria-labelledby="progress-title" {
                h2 #progress-title { "Recalculate everything" }
                p #progress role="status" aria-live="polite" .(if running { "warning" } else { "notice" }) {
                    @if running {
                        "Recalculating: " (pending) " SKUs still to write back. This page refreshes itself."
                    } @else {
                        "Written back: every SKU is recalculated."
                    }
                }
            }
        }
        section aria-labelledby="queue-title" {
            h2 #queue-title { "Queue" }
            ul.figures {
                li { span.value #dirty-skus { (queue.dirty_skus) } "SKUs waiting for a recalculation" }
                li { span.value { (waiting_secs.map_or("none waiting".to_owned(), age)) } "oldest waiting mark" }
                li { span.value { (queue.pending) } "jobs pending" }
                li { span.value { (queue.running) } "jobs running" }
                li { span.value { (queue.failed) } "jobs failed" }
                li { span.value { (queue.set_aside_skus) } "SKUs set aside" }
            }
            form method="post" action="/recalculate" {
                (layout::csrf_field(&current))
                button type="submit" { "Recalculate everything now" }
            }
        }
        (super::charts::charts(&samples))
        section aria-labelledby="workers-title" {
            h2 #workers-title { "Workers" }
            @if daemons.is_empty() {
                p { "No live " code { "serve" } " process." }
            } @else {
                table {
                    caption { "The live serve processes on this database" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Host" } th scope="col" class="num" { "PID" }
                        th scope="col" { "Doing" } th scope="col" { "For" } th scope="col" { "Last heard" } } }
                    tbody {
                        @for d in &daemons {
                            tr {
                                td { (d.name) } td { (d.host) } td.num { (d.pid) } td { (d.doing) }
                                td { (age((now.timestamp_millis() - d.doing_since_ms) / 1000)) }
                                td { (ms_to_rfc3339(d.last_seen_ms)) }
                            }
                        }
                    }
                }
            }
        }
        @if !set_aside.is_empty() {
            section aria-labelledby="aside-title" {
                h2 #aside-title { "SKUs set aside" }
                table {
                    caption { "SKUs whose recalculation failed on its own, retried later" }
                    thead { tr { th scope="col" { "SKU" } th scope="col" { "Error" } th scope="col" class="num" { "Attempts" } th scope="col" { "Next try" } } }
                    tbody {
                        @for s in &set_aside {
                            tr { td { (s.sku) } td { (s.error) } td.num { (s.attempts) } td { (ms_to_rfc3339(s.retry_at_ms)) } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page_with("Overview", Some(&current), running.then_some(1), body).into_response())
}

/// `POST /recalculate`: a `recalculate` event of every SKU, then the
/// overview showing its progress.
pub async fn recalculate_all<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Posted(_): Posted<NoFields>,
) -> Result<Response, PageError> {
    super::send(
        &state,
        "recalc",
        EventKind::Recalculate {
            skus: Vec::new(),
            all: true,
        },
    )
    .await?;
    Ok(Redirect::to("/?recalc=all").into_response())
}

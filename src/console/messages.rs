//! `/messages`: per destination its backlog, the age of its oldest
//! undelivered message and whether a 410 Gone disabled it ("Enable"); the
//! dead messages with their last error, each with "Redeliver". The same
//! store calls as `GET /v1/status`, `GET /v1/dead`,
//! `POST /v1/dead/{id}/redeliver` and `POST /v1/destinations/enable`.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::ConsoleStore;
use super::layout::{self, PageError, age};
use super::session::{Current, Posted};
use crate::api::{AppState, DeadEntry, DestinationEntry};
use crate::store::DeliveryStore;

/// Dead messages listed at most.
const DEAD_ROWS: i64 = 500;

#[derive(Deserialize)]
pub struct MessagesQuery {
    /// Set after a redelivery: the message put back.
    redelivered: Option<String>,
    /// Set after "Enable": the destination enabled.
    enabled: Option<String>,
}

/// `GET /messages`.
pub async fn page<S: ConsoleStore + DeliveryStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Extension(current): Extension<Current>,
    Query(query): Query<MessagesQuery>,
) -> Result<Response, PageError> {
    let now = crate::store::daemons::now_ms();
    let destinations: Vec<DestinationEntry> = state
        .store
        .destinations_status()
        .await?
        .into_iter()
        .map(|d| DestinationEntry::of(d, now))
        .collect();
    let dead: Vec<DeadEntry> = state
        .store
        .dead_messages(None, DEAD_ROWS)
        .await?
        .into_iter()
        .map(DeadEntry::from)
        .collect();
    let body = html! {
        h1 { "Messages" }
        @if let Some(id) = &query.redelivered {
            p.notice #redelivered role="status" { "Message " (id) " is queued again: it is sent after the message of its key in hand, if any." }
        }
        @if let Some(name) = &query.enabled {
            p.notice #enabled role="status" { (name) " is enabled again: its waiting messages are sent." }
        }
        h2 { "Destinations" }
        @if destinations.is_empty() {
            p #no-destinations { "No destination is configured (webhooks or email), or none has started yet." }
        } @else {
            table #destinations {
                caption { "What each destination has yet to take" }
                thead { tr {
                    th scope="col" { "Destination" } th scope="col" class="num" { "Backlog" }
                    th scope="col" { "Oldest undelivered" } th scope="col" class="num" { "Dead" }
                    th scope="col" { "Disabled" } th scope="col" { "Action" }
                } }
                tbody {
                    @for d in &destinations {
                        tr data-destination=(d.destination) {
                            th scope="row" { (d.destination) }
                            td.num.backlog { (d.backlog) }
                            td { (d.oldest_undelivered_age_secs.map_or("none waiting".to_owned(), |s| age(s as i64))) }
                            td.num.dead { (d.dead) }
                            td.disabled {
                                @if let Some(at) = &d.disabled_at {
                                    "since " (at) @if let Some(why) = &d.disabled_reason { ": " (why) }
                                } @else { "no" }
                            }
                            td {
                                @if d.disabled_at.is_some() {
                                    form method="post" action="/messages/enable" aria-label={ "Enable " (d.destination) } {
                                        (layout::csrf_field(&current))
                                        input type="hidden" name="destination" value=(d.destination);
                                        button type="submit" { "Enable" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Dead messages" }
        @if dead.is_empty() {
            p #no-dead role="status" { "No dead message." }
        } @else {
            table #dead {
                caption { "Given up on after their retry window, oldest first per destination (at most " (DEAD_ROWS) ")" }
                thead { tr {
                    th scope="col" { "Message" } th scope="col" { "Destination" } th scope="col" { "Key" }
                    th scope="col" { "Created" } th scope="col" class="num" { "Attempts" }
                    th scope="col" { "Last error" } th scope="col" { "Dead since" } th scope="col" { "Action" }
                } }
                tbody {
                    @for m in &dead {
                        tr data-message=(m.id) {
                            th scope="row" { (m.id) }
                            td { (m.destination) } td { (m.key) } td { (m.created_at) }
                            td.num { (m.attempts) } td.last-error { (m.last_error) } td { (m.dead_at) }
                            td {
                                form method="post" action="/messages/redeliver" aria-label={ "Redeliver " (m.id) " to " (m.destination) } {
                                    (layout::csrf_field(&current))
                                    input type="hidden" name="id" value=(m.id);
                                    input type="hidden" name="destination" value=(m.destination);
                                    button type="submit" { "Redeliver" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Messages", Some(&current), body).into_response())
}

#[derive(Deserialize)]
pub struct RedeliverForm {
    id: String,
    destination: String,
}

/// `POST /messages/redeliver`: the dead message back in its destination's queue.
pub async fn redeliver<S: ConsoleStore + DeliveryStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Posted(form): Posted<RedeliverForm>,
) -> Result<Response, PageError> {
    let put_back = state
        .store
        .redeliver(Some(&form.id), Some(&form.destination))
        .await?;
    if put_back == 0 {
        return Err(PageError::not_found(format!(
            "Message {:?} is not dead for {}.",
            form.id, form.destination
        )));
    }
    let query = serde_urlencoded::to_string([("redelivered", form.id.as_str())])
        .expect("a pair of strings encodes");
    Ok(Redirect::to(&format!("/messages?{query}")).into_response())
}

#[derive(Deserialize)]
pub struct EnableForm {
    destination: String,
}

/// `POST /messages/enable`: clears a destination's 410-disabled flag.
pub async fn enable<S: ConsoleStore + DeliveryStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Posted(form): Posted<EnableForm>,
) -> Result<Response, PageError> {
    if !state.store.enable_destination(&form.destination).await? {
        return Err(PageError::not_found(format!(
            "There is no destination {:?}.",
            form.destination
        )));
    }
    let query = serde_urlencoded::to_string([("enabled", form.destination.as_str())])
        .expect("a pair of strings encodes");
    Ok(Redirect::to(&format!("/messages?{query}")).into_response())
}

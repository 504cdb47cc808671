//! The admin console: server-rendered HTML pages for the people who manage
//! backorders, served by `serve` at `/` beside the API under `/v1`.
//! Everything is inside the binary: the pages are maud templates (checked
//! when the crate compiles), the style sheet is embedded, and no page needs
//! JavaScript (progress is shown by a meta refresh).
//!
//! The console is a thin layer like the API: it reads through the store's
//! read-only queries and `explain`, and changes state only by sending
//! events through `Store::ingest`, exactly as `POST /v1/events` does.
//!
//! - `session`: sign-in, session cookies, the CSRF token of every form;
//! - `layout`: the page shell, the style sheet, error pages, small helpers;
//! - `overview`: `/`, the queue, workers, "Recalculate everything now",
//!   and the charts of `charts` (backordered units, lag, the last day);
//! - `backorders`: `/backorders`, the filtered list, page by page;
//! - `order`: `/orders/{id}`, lines with their why, Manage Backorder, history;
//! - `product`: `/products/{sku}`, stock, feed figures, purchase orders and
//!   the queue of waiting lines; `/products`, the search by backordered range;
//! - `messages`: `/messages`, deliveries per destination, dead messages,
//!   Redeliver and Enable;
//! - `settings`: `/settings`, the settings, the what-if preview, Apply.

mod backorders;
mod charts;
mod layout;
mod messages;
mod order;
mod overview;
mod product;
mod session;
mod settings;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::routing::{get, post};
use chrono::Utc;

use crate::api::AppState;
use crate::events::{Event, EventKind};
use crate::store::daemons::DaemonInfo;
use crate::store::history::HistoryRow;
use crate::store::set_aside::SetAsideSku;
use crate::store::{AnyStore, IngestReport, Store, StoreError};

pub use session::{SESSION_COOKIE, SESSION_LIFETIME};

/// The reads the console needs beyond the [`Store`] trait's.
pub trait ConsoleStore: Store {
    /// The `serve` processes heard from lately.
    fn live_daemons(&self) -> impl Future<Output = Result<Vec<DaemonInfo>, StoreError>> + Send;
    /// The SKUs set aside after a failed recalculation.
    fn set_aside_list(&self) -> impl Future<Output = Result<Vec<SetAsideSku>, StoreError>> + Send;
    /// An order's newest history rows, newest first.
    fn order_history(
        &self,
        order_id: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<HistoryRow>, StoreError>> + Send;
    /// The chart samples from `since_minute` (Unix minutes) on, oldest first.
    fn samples_since(
        &self,
        since_minute: i64,
    ) -> impl Future<Output = Result<Vec<crate::store::samples::Sample>, StoreError>> + Send;
    /// What a settings change would change, computed without writing.
    fn what_if(
        &self,
        request: &crate::whatif::WhatIfRequest,
        options: crate::store::IngestOptions,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<crate::whatif::WhatIfReport, StoreError>> + Send;
}

impl ConsoleStore for AnyStore {
    async fn live_daemons(&self) -> Result<Vec<DaemonInfo>, StoreError> {
        AnyStore::live_daemons(self).await
    }
    async fn set_aside_list(&self) -> Result<Vec<SetAsideSku>, StoreError> {
        AnyStore::set_aside_list(self).await
    }
    async fn order_history(
        &self,
        order_id: &str,
        limit: i64,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        AnyStore::order_history(self, order_id, limit).await
    }
    async fn samples_since(
        &self,
        since_minute: i64,
    ) -> Result<Vec<crate::store::samples::Sample>, StoreError> {
        AnyStore::samples_since(self, since_minute).await
    }
    async fn what_if(
        &self,
        request: &crate::whatif::WhatIfRequest,
        options: crate::store::IngestOptions,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::whatif::WhatIfReport, StoreError> {
        AnyStore::what_if(self, request, options, as_of).await
    }
}

/// The console's routes, guarded by the session check (sign-in and the
/// style sheet excepted).
pub fn router<S: ConsoleStore + crate::store::DeliveryStore + Send + Sync + 'static>(
    state: Arc<AppState<S>>,
) -> Router<Arc<AppState<S>>> {
    let sessions = Arc::new(session::Sessions::default());
    let guarded = Router::new()
        .route("/", get(overview::page::<S>))
        .route("/recalculate", post(overview::recalculate_all::<S>))
        .route("/backorders", get(backorders::page::<S>))
        .route("/orders/{id}", get(order::page::<S>))
        .route("/orders/{id}/lines", post(order::override_line::<S>))
        .route("/orders/{id}/recalculate", post(order::recalculate::<S>))
        .route("/products", get(product::search::<S>))
        .route("/products/{sku}", get(product::page::<S>))
        .route("/messages", get(messages::page::<S>))
        .route("/messages/redeliver", post(messages::redeliver::<S>))
        .route("/messages/enable", post(messages::enable::<S>))
        .route("/settings", get(settings::page::<S>))
        .route("/settings/preview", post(settings::preview::<S>))
        .route("/settings/apply", post(settings::apply::<S>))
        .route("/sign-out", post(session::sign_out::<S>))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            session::require_session::<S>,
        ));
    Router::new()
        .route(
            "/sign-in",
            get(session::sign_in_form::<S>).post(session::sign_in::<S>),
        )
        .route("/assets/console.css", get(layout::style_sheet))
        .merge(guarded)
        .layer(axum::Extension(sessions))
}

/// Sends one event built here through the store, as `POST /v1/events`
/// would; its id names the console, the time and this process.
async fn send<S: Store>(
    state: &AppState<S>,
    what: &str,
    kind: EventKind,
) -> Result<IngestReport, layout::PageError> {
    let event = Event {
        id: format!(
            "console-{what}-{}-{}-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.9fZ"),
            std::process::id(),
            state.recalc_seq.fetch_add(1, Ordering::Relaxed)
        ),
        kind,
    };
    crate::events::check(&event).map_err(layout::PageError::refused)?;
    Ok(state
        .store
        .ingest(std::slice::from_ref(&event), state.ingest_options)
        .await?)
}

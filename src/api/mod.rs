//! The HTTP API of `serve` (axum): a thin layer over the library, like the
//! command line. Events go through `events::parse_batch` and
//! `Store::ingest` exactly as the `event` command's; reads go through the
//! store's read-only queries and the pure `explain` module.
//!
//! - `handlers`: one function per endpoint;
//! - `audit`: `GET /v1/audit`;
//! - `what_if`: `POST /v1/what-if`;
//! - `feed`: `GET /v1/availability[/{sku}]`, `GET /v1/purchasing`;
//! - `auth`: the bearer token;
//! - `error`: every error answered as JSON;
//! - `bodies`: the JSON answers no other module owns;
//! - `openapi`: the OpenAPI 3.1 description, derived from the handlers.
//! - `limits`: what a request may take (URI length, time to send its body);
//! - `server`: the connection loop (head deadline, connection cap, hyper's
//!   own error answers made JSON).

mod audit;
mod auth;
mod bodies;
mod changes;
mod delivery;
mod error;
mod feed;
mod handlers;
mod limits;
pub mod openapi;
mod server;
mod what_if;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::config::HttpSettings;
use crate::store::IngestOptions;

pub(crate) use auth::same as same_secret;
pub use changes::FeedStore;
pub(crate) use delivery::{DeadEntry, DestinationEntry};
pub use error::ApiError;
pub(crate) use handlers::date_bound;
pub use limits::MAX_URI_BYTES;

/// What every handler shares.
pub struct AppState<S> {
    pub store: Arc<S>,
    pub ingest_options: IngestOptions,
    /// `None`: no token configured (loopback only).
    pub token: Option<String>,
    /// How long `?wait=true` waits at most.
    pub wait_timeout: Duration,
    /// The queue worker's progress (`/readyz`).
    pub worker: Arc<crate::health::WorkerHealth>,
    /// Turns true when the daemon stops: waiting requests answer at once.
    pub shutdown: watch::Receiver<bool>,
    pub metrics: &'static PrometheusHandle,
    /// Numbers the recalculation events of this process.
    pub recalc_seq: AtomicU64,
    /// How long a request's head and body may take to arrive, and how
    /// many connections may be open at once.
    pub connections: server::ConnectionLimits,
    pub body_timeout: Duration,
}

impl<S> AppState<S> {
    pub fn new(
        store: Arc<S>,
        http: &HttpSettings,
        ingest_options: IngestOptions,
        worker: Arc<crate::health::WorkerHealth>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        AppState {
            store,
            ingest_options,
            token: http.token().map(str::to_owned),
            wait_timeout: http.wait_timeout,
            worker,
            shutdown,
            metrics: crate::meter::handle(),
            recalc_seq: AtomicU64::new(0),
            connections: server::ConnectionLimits {
                header_timeout: http.header_timeout,
                max_connections: http.max_connections.get(),
            },
            body_timeout: http.body_timeout,
        }
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }
}

/// Every route; `/healthz`, `/readyz` and `/v1/openapi.json` need no
/// token; the admin console (src/console/) answers outside `/v1` with its
/// own sign-in and sessions. Each API route has a `#[utoipa::path]` on its handler, listed in
/// `openapi::ApiDoc` (the test `openapi_lists_every_route` checks).
pub fn router<
    S: crate::console::ConsoleStore + crate::store::DeliveryStore + FeedStore + Send + Sync + 'static,
>(
    state: Arc<AppState<S>>,
    body_limit_bytes: usize,
) -> Router {
    let guarded = Router::new()
        .route("/v1/events", post(handlers::events::<S>))
        .route("/v1/recalculate", post(handlers::recalculate::<S>))
        .route("/v1/orders/{id}", get(handlers::order::<S>))
        .route("/v1/orders/{id}/history", get(changes::history::<S>))
        .route("/v1/changes", get(changes::changes::<S>))
        .route("/v1/backorders", get(handlers::backorders::<S>))
        .route("/v1/products/{sku}", get(handlers::product::<S>))
        .route("/v1/audit", get(audit::audit::<S>))
        .route("/v1/what-if", post(what_if::what_if::<S>))
        .route("/v1/status", get(delivery::status::<S>))
        .route("/v1/dead", get(delivery::dead::<S>))
        .route("/v1/dead/{id}/redeliver", post(delivery::redeliver::<S>))
        .route("/v1/destinations/enable", post(delivery::enable::<S>))
        .route("/v1/availability", get(feed::availability::<S>))
        .route("/v1/availability/{sku}", get(feed::availability_of::<S>))
        .route("/v1/purchasing", get(feed::purchasing_report::<S>))
        .route("/metrics", get(handlers::metrics::<S>))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token::<S>,
        ));
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz::<S>))
        // The description holds nothing secret, and clients need it before
        // they have a token.
        .route("/v1/openapi.json", get(handlers::openapi))
        .merge(guarded)
        .merge(crate::console::router(state.clone()))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(
            limits::BodyLimits {
                max_bytes: body_limit_bytes,
                timeout: state.body_timeout,
            },
            limits::read_body,
        ))
        .layer(axum::middleware::from_fn(limits::check_uri))
        .with_state(state)
}

/// Binds the listening socket (before the daemon says it is ready, so that
/// an address in use fails the start).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for HTTP on {addr}"))
}

/// Serves until `shutdown` turns true, then lets the requests in hand
/// finish (the caller bounds that with the grace period).
pub async fn serve<
    S: crate::console::ConsoleStore + crate::store::DeliveryStore + FeedStore + Send + Sync + 'static,
>(
    listener: tokio::net::TcpListener,
    state: Arc<AppState<S>>,
    body_limit_bytes: usize,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let metrics = state.metrics;
    let connections = state.connections;
    // Histograms are folded at each scrape; this bounds them without one.
    let upkeep = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            metrics.run_upkeep();
        }
    });
    let app = router(state, body_limit_bytes);
    let served = server::run(listener, app, connections, shutdown).await;
    upkeep.abort();
    served
}

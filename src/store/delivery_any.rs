//! The delivery state on whichever database this is (store/delivery.rs
//! holds the SQL): the loop's steps, and what the CLI and the HTTP API
//! read and change.

use std::future::Future;

use super::delivery::{
    self, Claimed, DeadMessage, DestinationRow, DestinationStatus, Scanned, Settlement,
};
use super::{AnyStore, StoreError};

/// What the dead list, redelivery, re-enabling and `status` need: the HTTP
/// handlers are written against it.
pub trait DeliveryStore {
    fn dead_messages(
        &self,
        destination: Option<&str>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<DeadMessage>, StoreError>> + Send;
    /// Puts dead messages back: `id`, or every one when `None`.
    fn redeliver(
        &self,
        id: Option<&str>,
        destination: Option<&str>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Clears a 410-disabled flag; `false` for an unknown destination.
    fn enable_destination(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn destinations_status(
        &self,
    ) -> impl Future<Output = Result<Vec<DestinationStatus>, StoreError>> + Send;
    /// Messages committed after `position`, per type: (type, count,
    /// newest position), for the messages-created counter.
    fn messages_created_since(
        &self,
        position: i64,
    ) -> impl Future<Output = Result<Vec<(String, i64, i64)>, StoreError>> + Send;
}

/// Calls the same function of store/delivery.rs on this backend, `$read`
/// on the read pool or `$write` on the pool writes go through.
macro_rules! on_backend {
    ($self:ident, read, $f:ident($($arg:expr),*)) => {
        match $self {
            AnyStore::Sqlite(s) => delivery::sqlite::$f(s.pool() $(, $arg)*).await,
            AnyStore::Postgres(s) => delivery::postgres::$f(s.pool() $(, $arg)*).await,
        }
    };
    ($self:ident, write, $f:ident($($arg:expr),*)) => {
        match $self {
            AnyStore::Sqlite(s) => delivery::sqlite::$f(s.write_pool() $(, $arg)*).await,
            AnyStore::Postgres(s) => delivery::postgres::$f(s.pool() $(, $arg)*).await,
        }
    };
}

fn now_ms() -> i64 {
    super::daemons::now_ms()
}

impl AnyStore {
    pub async fn delivery_ensure(&self, name: &str) -> Result<(), StoreError> {
        on_backend!(self, write, ensure(name, now_ms()))
    }

    /// See [`delivery::sqlite::touch`].
    pub async fn delivery_touch(&self, name: &str) -> Result<(), StoreError> {
        on_backend!(self, write, touch(name, now_ms()))
    }

    /// See [`delivery::sqlite::oldest_needed`].
    pub async fn delivery_oldest_needed(
        &self,
        live_since_ms: i64,
        configured: &[String],
    ) -> Result<Option<(i64, String)>, StoreError> {
        on_backend!(self, read, oldest_needed(live_since_ms, configured))
    }

    pub async fn delivery_destination(
        &self,
        name: &str,
    ) -> Result<Option<DestinationRow>, StoreError> {
        on_backend!(self, read, destination(name))
    }

    pub async fn newest_message_position(&self) -> Result<i64, StoreError> {
        on_backend!(self, read, newest_position())
    }

    pub async fn delivery_scan(
        &self,
        name: &str,
        batch: i64,
        wanted: &(dyn Fn(&Scanned) -> bool + Sync),
    ) -> Result<usize, StoreError> {
        on_backend!(self, write, scan(name, batch, now_ms(), wanted))
    }

    pub async fn delivery_any_due(&self, name: &str) -> Result<bool, StoreError> {
        on_backend!(self, read, any_due(name, now_ms()))
    }

    pub async fn delivery_claim(
        &self,
        name: &str,
        lease: std::time::Duration,
        token: &str,
        limit: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let now = now_ms();
        let until = now + lease.as_millis() as i64;
        on_backend!(self, write, claim(name, now, until, token, limit))
    }

    /// A message's id and body by position.
    pub async fn delivery_message(
        &self,
        position: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        on_backend!(self, read, message(position))
    }

    pub async fn delivery_settle(
        &self,
        name: &str,
        settlements: &[Settlement],
    ) -> Result<(), StoreError> {
        on_backend!(self, write, settle(name, settlements, now_ms()))
    }
}

impl DeliveryStore for AnyStore {
    async fn dead_messages(
        &self,
        destination: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeadMessage>, StoreError> {
        on_backend!(self, read, dead(destination, limit))
    }

    async fn redeliver(
        &self,
        id: Option<&str>,
        destination: Option<&str>,
    ) -> Result<u64, StoreError> {
        on_backend!(self, write, redeliver(id, destination, now_ms()))
    }

    async fn enable_destination(&self, name: &str) -> Result<bool, StoreError> {
        on_backend!(self, write, enable(name))
    }

    async fn destinations_status(&self) -> Result<Vec<DestinationStatus>, StoreError> {
        on_backend!(self, read, status())
    }

    async fn messages_created_since(
        &self,
        position: i64,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        on_backend!(self, read, created_since(position))
    }
}

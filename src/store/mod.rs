//! Storage: the stored state, events, the dirty set and the write-back.
//! One module per database behind the [`Store`] trait.

mod codec;
pub mod sqlite;

use std::future::Future;

use crate::engine::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot bring the schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value that the contract's types cannot hold: the database
    /// was edited by hand or by an incompatible version.
    #[error("stored {record} is unreadable: {problem}")]
    Corrupt { record: String, problem: String },
    #[error(
        "unsupported database URL {0:?}: use sqlite://PATH (PostgreSQL arrives with its own backend)"
    )]
    UnsupportedUrl(String),
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    pub orders: usize,
    pub lines: usize,
    pub skus_marked_dirty: usize,
}

pub trait Store {
    /// Creates or upgrades the schema.
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replaces the stored state with `snapshot` (stored backorder
    /// quantities included) and marks every SKU for recalculation, in one
    /// transaction. The snapshot must have passed `engine::validate`.
    fn import(
        &self,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<ImportSummary, StoreError>> + Send;
    /// The stored state as a snapshot, `as_of` left for the caller.
    fn export(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;
}

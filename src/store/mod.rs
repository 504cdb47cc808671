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
    #[error("unsupported database URL {}: use sqlite://PATH (PostgreSQL arrives with its own backend)", redact_url(.0))]
    UnsupportedUrl(String),
}

/// The URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return url.to_owned();
    };
    match url[scheme_end..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..scheme_end + colon], &url[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_appear_in_redacted_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cr:et@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(
            redact_url("sqlite://backorderd.db"),
            "sqlite://backorderd.db"
        );
        assert_eq!(
            redact_url("postgres://u:p@h/db?x=a@b"),
            "postgres://u:***@h/db?x=a@b"
        );
    }
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

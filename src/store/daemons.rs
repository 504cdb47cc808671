//! The `daemons` table: which `serve` processes are alive and what each is
//! doing, for `status`. A daemon writes its row at start, refreshes it
//! every heartbeat and deletes it on an orderly stop; a killed daemon's
//! row goes stale and stops counting as alive after three heartbeats.
//!
//! The SQL is the same on both backends (`$N` placeholders work in
//! SQLite too), so it is written once and instantiated per pool type.

use chrono::{DateTime, Utc};

use super::StoreError;

/// One daemon's row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DaemonInfo {
    pub name: String,
    pub host: String,
    pub pid: i64,
    pub started_at: String,
    pub heartbeat_secs: i64,
    /// When it last reported (Unix milliseconds, its own clock).
    pub last_seen_ms: i64,
    /// `idle`, or the recalculation in hand.
    pub doing: String,
    pub doing_since_ms: i64,
}

/// Heartbeats a daemon may miss before it counts as gone.
const MISSED_HEARTBEATS: i64 = 3;

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A row's time as RFC 3339, for people.
pub fn ms_to_rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| crate::engine::time_format::format_timestamp(&t))
        .unwrap_or_default()
}

macro_rules! daemon_registry {
    ($pool:ty) => {
        pub async fn register(pool: &$pool, d: &DaemonInfo) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO daemons (name, host, pid, started_at, heartbeat_secs, last_seen_ms, doing, doing_since_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                     started_at = excluded.started_at, heartbeat_secs = excluded.heartbeat_secs,
                     last_seen_ms = excluded.last_seen_ms, doing = excluded.doing,
                     doing_since_ms = excluded.doing_since_ms",
            )
            .bind(&d.name)
            .bind(&d.host)
            .bind(d.pid)
            .bind(&d.started_at)
            .bind(d.heartbeat_secs)
            .bind(d.last_seen_ms)
            .bind(&d.doing)
            .bind(d.doing_since_ms)
            .execute(pool)
            .await?;
            Ok(())
        }

        /// Refreshes the row; `false` when it is gone (someone deleted it).
        pub async fn heartbeat(
            pool: &$pool,
            name: &str,
            doing: &str,
            doing_since_ms: i64,
        ) -> Result<bool, StoreError> {
            let updated = sqlx::query(
                "UPDATE daemons SET last_seen_ms = $2, doing = $3, doing_since_ms = $4 WHERE name = $1",
            )
            .bind(name)
            .bind(super::now_ms())
            .bind(doing)
            .bind(doing_since_ms)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(updated > 0)
        }

        pub async fn remove(pool: &$pool, name: &str) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM daemons WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await?;
            Ok(())
        }

        /// The daemons heard from within their last few heartbeats, by name.
        pub async fn alive(pool: &$pool) -> Result<Vec<DaemonInfo>, StoreError> {
            let rows: Vec<(String, String, i64, String, i64, i64, String, i64)> = sqlx::query_as(
                "SELECT name, host, pid, started_at, heartbeat_secs, last_seen_ms, doing, doing_since_ms
                 FROM daemons WHERE last_seen_ms >= $1 - $2 * heartbeat_secs * 1000 ORDER BY name",
            )
            .bind(super::now_ms())
            .bind(super::MISSED_HEARTBEATS)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(name, host, pid, started_at, heartbeat_secs, last_seen_ms, doing, doing_since_ms)| {
                        DaemonInfo {
                            name,
                            host,
                            pid,
                            started_at,
                            heartbeat_secs,
                            last_seen_ms,
                            doing,
                            doing_since_ms,
                        }
                    },
                )
                .collect())
        }
    };
}

pub mod sqlite {
    use super::{DaemonInfo, StoreError};
    daemon_registry!(sqlx::SqlitePool);
}

pub mod postgres {
    use super::{DaemonInfo, StoreError};
    daemon_registry!(sqlx::PgPool);
}

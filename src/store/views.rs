//! What the read-only queries of the HTTP API return, the same for every
//! backend: plain data, no database types.

use chrono::{DateTime, NaiveDate, Utc};

use crate::engine::BackorderStatus;
use crate::engine::snapshot::{Order, OrderStatus, PaymentStatus, Snapshot};

/// An order as stored, with what the recalculations wrote back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    /// Header and every line, `backorder_qty` as stored, in position order.
    pub order: Order,
    /// The stored ETA of each line, aligned with `order.lines`.
    pub etas: Vec<Option<NaiveDate>>,
    pub backorder_status: BackorderStatus,
    pub backorder_qty: i64,
}

/// The stored state of some SKUs' pools: what the engine needs to answer
/// for exactly those SKUs (docs/architecture.md).
#[derive(Debug, Clone)]
pub struct PoolState {
    /// Settings, every warehouse, and the products, inventory and purchase
    /// orders of the SKUs; `orders` holds every order with a line of one of
    /// them, with only those lines (stored values), in position order.
    /// Shared: a large pool's state is kept for later reads
    /// (store/pool_reads.rs) and handed out without a copy.
    pub snapshot: std::sync::Arc<Snapshot>,
    /// The SKUs of the state (the replacement closure when asked for).
    pub skus: Vec<String>,
    /// Those of `skus` waiting for a recalculation.
    pub dirty_skus: Vec<String>,
}

/// Which stored backorder statuses `GET /v1/backorders` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Full,
    Partial,
    /// Full or partial.
    Any,
}

impl StatusFilter {
    pub fn statuses(self) -> &'static [&'static str] {
        match self {
            StatusFilter::Full => &["full"],
            StatusFilter::Partial => &["partial"],
            StatusFilter::Any => &["full", "partial"],
        }
    }
}

/// A page of backordered orders, oldest first (order date, then id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackorderQuery {
    pub status: StatusFilter,
    /// Only orders with a backordered line of this SKU.
    pub sku: Option<String>,
    /// Only orders shipping from this warehouse (`ship_from`).
    pub warehouse: Option<String>,
    /// Only orders dated at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only orders dated before this instant.
    pub until: Option<DateTime<Utc>>,
    pub limit: usize,
    /// Start after this order (the `next` of the previous page).
    pub after: Option<BackorderCursor>,
}

/// Where a page of backorders stopped: the last order's sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackorderCursor {
    /// The order date as stored, which sorts as the instant it names once
    /// the final `Z` is left out (UTC, 0, 3, 6 or 9 fractional digits).
    pub date_key: String,
    pub order_id: String,
}

/// An instant as the date key of a stored order date (see
/// [`BackorderCursor::date_key`]), for range filters.
pub fn date_key(at: &DateTime<Utc>) -> String {
    crate::engine::time_format::format_timestamp(at)
        .trim_end_matches('Z')
        .to_owned()
}

impl BackorderCursor {
    /// An opaque, URL-safe token (hex of a JSON pair).
    pub fn encode(&self) -> String {
        let json = serde_json::json!([self.date_key, self.order_id]).to_string();
        json.bytes().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(token: &str) -> Option<BackorderCursor> {
        if !token.len().is_multiple_of(2) || !token.is_ascii() {
            return None;
        }
        let bytes: Vec<u8> = (0..token.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
            .collect::<Option<_>>()?;
        let (date_key, order_id): (String, String) = serde_json::from_slice(&bytes).ok()?;
        Some(BackorderCursor { date_key, order_id })
    }
}

/// One order of a backorders page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackorderedOrder {
    pub order_id: String,
    pub order_date: DateTime<Utc>,
    pub payment_date: Option<DateTime<Utc>>,
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    pub rush: bool,
    pub picked: bool,
    pub ship_from: Option<String>,
    pub backorder_status: BackorderStatus,
    pub backorder_qty: i64,
    pub cursor: BackorderCursor,
}

/// What `/readyz` learns from the database (an error: it did not answer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Migrations this binary has that the database lacks.
    pub missing_migrations: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_encoding_and_garbage_is_refused() {
        let cursor = BackorderCursor {
            date_key: "2026-11-20T09:30:00.500".into(),
            order_id: "SO-1/\"é&x".into(),
        };
        let token = cursor.encode();
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(BackorderCursor::decode(&token), Some(cursor));
        for bad in ["", "zz", "abc", "5b5d", "7b7d", "é1"] {
            assert_eq!(BackorderCursor::decode(bad), None, "{bad}");
        }
    }
}

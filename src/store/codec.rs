//! How the contract's values are written in columns, shared by backends:
//! enums by their contract names, timestamps as RFC 3339 in UTC, dates as
//! YYYY-MM-DD.

use chrono::{DateTime, NaiveDate, Utc};

use super::StoreError;
use crate::engine::BackorderStatus;
use crate::engine::snapshot::{Order, OrderStatus, PaymentStatus, WarehouseKind};
use crate::engine::time_format::{parse_date, parse_timestamp};

/// Names the record in an error; only called when there is one, so that
/// reading a million good rows formats nothing.
pub type Record<'a> = &'a dyn Fn() -> String;

fn corrupt(record: Record, problem: String) -> StoreError {
    StoreError::Corrupt {
        record: record(),
        problem,
    }
}

fn parse_named<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    text: &str,
    record: Record,
    field: &str,
) -> Result<T, StoreError> {
    all.iter()
        .copied()
        .find(|v| name(*v) == text)
        .ok_or_else(|| corrupt(record, format!("{field} {text:?} is not a known value")))
}

pub fn warehouse_kind(text: &str, record: Record) -> Result<WarehouseKind, StoreError> {
    parse_named(
        &WarehouseKind::ALL,
        WarehouseKind::as_str,
        text,
        record,
        "kind",
    )
}

pub fn order_status(text: &str, record: Record) -> Result<OrderStatus, StoreError> {
    parse_named(
        &OrderStatus::ALL,
        OrderStatus::as_str,
        text,
        record,
        "status",
    )
}

pub fn payment_status(text: &str, record: Record) -> Result<PaymentStatus, StoreError> {
    parse_named(
        &PaymentStatus::ALL,
        PaymentStatus::as_str,
        text,
        record,
        "payment_status",
    )
}

pub fn timestamp(text: &str, record: Record) -> Result<DateTime<Utc>, StoreError> {
    parse_timestamp(text).map_err(|e| corrupt(record, e))
}

pub fn date(text: &str, record: Record) -> Result<NaiveDate, StoreError> {
    parse_date(text).map_err(|e| corrupt(record, e))
}

pub fn optional_date(text: Option<&str>, record: Record) -> Result<Option<NaiveDate>, StoreError> {
    text.map(|t| date(t, record)).transpose()
}

pub fn backorder_status(text: &str, record: Record) -> Result<BackorderStatus, StoreError> {
    parse_named(
        &[
            BackorderStatus::None,
            BackorderStatus::Partial,
            BackorderStatus::Full,
        ],
        BackorderStatus::as_str,
        text,
        record,
        "backorder_status",
    )
}

/// An order header's columns (id, order_date, payment_date, payment_status,
/// status, rush, picked, ship_from); the text ones owned (from JSON) or
/// borrowed (from a row being stepped).
#[derive(serde::Deserialize)]
pub struct HeaderRow<S = String>(
    pub String,
    pub S,
    pub Option<S>,
    pub S,
    pub S,
    pub i64,
    pub i64,
    pub Option<String>,
);

impl<S> HeaderRow<S> {
    /// The header columns at the start of `row`, in the order above (the
    /// queries select them first).
    pub fn from_row<'r, R>(row: &'r R) -> Result<Self, sqlx::Error>
    where
        R: sqlx::Row,
        usize: sqlx::ColumnIndex<R>,
        S: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(HeaderRow(
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
            row.try_get(5)?,
            row.try_get(6)?,
            row.try_get(7)?,
        ))
    }
}

impl<S: AsRef<str>> HeaderRow<S> {
    /// The order, without its lines.
    pub fn into_order(self) -> Result<Order, StoreError> {
        let HeaderRow(
            id,
            order_date,
            payment_date,
            payment_status,
            status,
            rush,
            picked,
            ship_from,
        ) = self;
        let record = || format!("order {id:?}");
        let payment_date = match payment_date {
            Some(text) => Some(timestamp(text.as_ref(), &record)?),
            None => None,
        };
        Ok(Order {
            order_date: timestamp(order_date.as_ref(), &record)?,
            payment_date,
            payment_status: self::payment_status(payment_status.as_ref(), &record)?,
            status: order_status(status.as_ref(), &record)?,
            rush: rush != 0,
            picked: picked != 0,
            ship_from,
            customer: None,
            lines: Vec::new(),
            id,
        })
    }
}

/// Decodes what `json_array` or `json_group_array` built in SQL.
pub fn from_json_text<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        record: what.to_owned(),
        problem: e.to_string(),
    })
}

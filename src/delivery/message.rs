//! The change messages of the contract (notifications.md section 1): their
//! JSON form, and the pure rule that says which message, if any, one change
//! of an order's stored values produces.
//!
//! `id`, `seq` and `created_at` are given by whoever stores the message (the
//! write-back, in the transaction of the change); [`order_message`] decides
//! the type and builds `key` and `data` from the order before and after.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::BackorderStatus;

/// The message types of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    OrderBackordered,
    OrderBackorderCleared,
    OrderBackorderChanged,
    ProductAvailabilityChanged,
    PurchasingDigest,
}

impl MessageType {
    pub const ALL: [MessageType; 5] = [
        MessageType::OrderBackordered,
        MessageType::OrderBackorderCleared,
        MessageType::OrderBackorderChanged,
        MessageType::ProductAvailabilityChanged,
        MessageType::PurchasingDigest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::OrderBackordered => "order.backordered",
            MessageType::OrderBackorderCleared => "order.backorder_cleared",
            MessageType::OrderBackorderChanged => "order.backorder_changed",
            MessageType::ProductAvailabilityChanged => "product.availability_changed",
            MessageType::PurchasingDigest => "purchasing.digest",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`MessageType::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown message type {name:?}; known: {}", known_types())]
pub struct UnknownType {
    pub name: String,
}

fn known_types() -> String {
    MessageType::ALL.map(MessageType::as_str).join(", ")
}

impl FromStr for MessageType {
    type Err = UnknownType;
    fn from_str(name: &str) -> Result<Self, UnknownType> {
        MessageType::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| UnknownType {
                name: name.to_owned(),
            })
    }
}

impl Serialize for MessageType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One message as it is stored, sent and pulled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `msg_` + an opaque string, the same at every redelivery.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    #[serde(with = "rfc3339_utc")]
    pub created_at: DateTime<Utc>,
    /// `order:<order id>` or `product:<sku>`.
    pub key: String,
    /// Per key: 1, 2, 3, ... without gaps.
    pub seq: u64,
    pub data: Data,
    /// Event ids, or `import`, `periodic`, `manual`.
    pub causes: Vec<String>,
}

/// A message's body: the order types' are typed; the product and
/// purchasing bodies (sections 3 and 4) are carried as they come.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Data {
    Order(OrderData),
    Other(serde_json::Value),
}

/// The `data` of an order message: the order after the change, with the
/// values before beside them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderData {
    pub order_id: String,
    pub status: BackorderStatus,
    pub previous_status: BackorderStatus,
    pub backorder_qty: i64,
    pub previous_backorder_qty: i64,
    pub customer: Option<Customer>,
    /// True when the order left the backorders by being shipped or
    /// cancelled (so no "back in stock" mail goes out); always present.
    pub closed: bool,
    pub lines: Vec<LineData>,
}

/// Who placed the order (snapshots' and `order_upserted`'s `customer`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineData {
    pub line_id: String,
    pub sku: String,
    pub qty: i64,
    pub backorder_qty: i64,
    pub previous_backorder_qty: i64,
    pub eta: Option<NaiveDate>,
    pub previous_eta: Option<NaiveDate>,
}

/// An order's stored values, before or after a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderState {
    pub status: BackorderStatus,
    pub backorder_qty: i64,
    pub customer: Option<Customer>,
    /// Shipped or cancelled.
    pub closed: bool,
    pub lines: Vec<LineState>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineState {
    pub line_id: String,
    pub sku: String,
    pub qty: i64,
    pub backorder_qty: i64,
    pub eta: Option<NaiveDate>,
}

/// A message before the store numbers it: what [`order_message`] decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    pub kind: MessageType,
    pub key: String,
    pub data: Data,
}

impl Draft {
    /// The message once the store has given it its place.
    pub fn into_message(
        self,
        id: String,
        seq: u64,
        created_at: DateTime<Utc>,
        causes: Vec<String>,
    ) -> Message {
        Message {
            id,
            kind: self.kind,
            created_at,
            key: self.key,
            seq,
            data: self.data,
            causes,
        }
    }
}

/// The key of an order's messages.
pub fn order_key(order_id: &str) -> String {
    format!("order:{order_id}")
}

/// A new message id: `msg_`, the creation time in milliseconds (so ids of
/// one process sort by creation) and 80 random bits, in hex.
pub fn new_message_id(now: DateTime<Utc>) -> String {
    let millis = now.timestamp_millis().max(0) as u64;
    let random: u128 = rand::rng().random::<u128>() >> 48;
    format!("msg_{millis:012x}{random:020x}")
}

/// The message one change of an order produces, or `None` (the table of
/// section 1). `before` is `None` for an order the change created: it
/// starts from status `none`, backorder qty 0, each line 0 and no ETA.
pub fn order_message(
    order_id: &str,
    before: Option<&OrderState>,
    after: &OrderState,
) -> Option<Draft> {
    use BackorderStatus::None as NotBackordered;
    let previous_status = before.map_or(NotBackordered, |b| b.status);
    let old_lines: HashMap<&str, &LineState> = before
        .map(|b| b.lines.iter().map(|l| (l.line_id.as_str(), l)).collect())
        .unwrap_or_default();
    let lines: Vec<LineData> = after
        .lines
        .iter()
        .map(|line| {
            let old = old_lines.get(line.line_id.as_str());
            LineData {
                line_id: line.line_id.clone(),
                sku: line.sku.clone(),
                qty: line.qty,
                backorder_qty: line.backorder_qty,
                previous_backorder_qty: old.map_or(0, |l| l.backorder_qty),
                eta: line.eta,
                previous_eta: old.and_then(|l| l.eta),
            }
        })
        .collect();
    let kind = match (previous_status, after.status) {
        (NotBackordered, NotBackordered) => return None,
        (NotBackordered, _) => MessageType::OrderBackordered,
        (_, NotBackordered) => MessageType::OrderBackorderCleared,
        (old, new) => {
            let lines_changed = lines
                .iter()
                .any(|l| l.backorder_qty != l.previous_backorder_qty || l.eta != l.previous_eta);
            // A line that joined or left the order (a split) changes it too.
            let set_changed = old_lines.len() != after.lines.len()
                || after
                    .lines
                    .iter()
                    .any(|l| !old_lines.contains_key(l.line_id.as_str()));
            if old == new && !lines_changed && !set_changed {
                return None;
            }
            MessageType::OrderBackorderChanged
        }
    };
    Some(Draft {
        kind,
        key: order_key(order_id),
        data: Data::Order(OrderData {
            order_id: order_id.to_owned(),
            status: after.status,
            previous_status,
            backorder_qty: after.backorder_qty,
            previous_backorder_qty: before.map_or(0, |b| b.backorder_qty),
            customer: after.customer.clone(),
            closed: kind == MessageType::OrderBackorderCleared && after.closed,
            lines,
        }),
    })
}

/// `created_at` as RFC 3339 in UTC with a `Z`, to the microsecond.
mod rfc3339_utc {
    use super::*;

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;

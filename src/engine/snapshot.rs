//! The contract's data types (`snapshot.md`): what a recalculation reads.
//!
//! Unknown fields are refused everywhere so that a misspelt setting or field
//! never silently falls back to a default.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::time_format::{date_opt, timestamp, timestamp_opt};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The moment of the calculation; `None` means "now", supplied by the caller.
    #[serde(
        default,
        with = "timestamp_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub as_of: Option<DateTime<Utc>>,
    #[serde(default)]
    pub settings: Settings,
    pub warehouses: Vec<Warehouse>,
    #[serde(default)]
    pub products: Vec<Product>,
    #[serde(default)]
    pub inventory: Vec<InventoryRow>,
    #[serde(default)]
    pub purchase_orders: Vec<PurchaseOrder>,
    pub orders: Vec<Order>,
}

/// The client's allocation settings (allocation.md section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub use_payment_date: bool,
    pub warehouse_based: bool,
    pub exclude_dropship: bool,
    pub exclude_unsellable: bool,
    pub consider_replacement_sku: bool,
    pub include_authorized: bool,
    pub include_on_hold: bool,
    pub include_unpaid: bool,
    pub prioritize_fully_shippable: bool,
    pub prioritize_rush: bool,
    pub prioritize_picked: bool,
    pub max_days_back: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            use_payment_date: false,
            warehouse_based: false,
            exclude_dropship: true,
            exclude_unsellable: true,
            consider_replacement_sku: false,
            include_authorized: true,
            include_on_hold: false,
            include_unpaid: true,
            prioritize_fully_shippable: false,
            prioritize_rush: false,
            prioritize_picked: false,
            max_days_back: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarehouseKind {
    Normal,
    Dropship,
    Unsellable,
    Fba,
    Interim,
    Untested,
}

impl WarehouseKind {
    pub const ALL: [WarehouseKind; 6] = [
        WarehouseKind::Normal,
        WarehouseKind::Dropship,
        WarehouseKind::Unsellable,
        WarehouseKind::Fba,
        WarehouseKind::Interim,
        WarehouseKind::Untested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WarehouseKind::Normal => "normal",
            WarehouseKind::Dropship => "dropship",
            WarehouseKind::Unsellable => "unsellable",
            WarehouseKind::Fba => "fba",
            WarehouseKind::Interim => "interim",
            WarehouseKind::Untested => "untested",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    #[default]
    InProcess,
    OnHold,
    Quote,
    Shipped,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::InProcess,
        OrderStatus::OnHold,
        OrderStatus::Quote,
        OrderStatus::Shipped,
        OrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::InProcess => "in_process",
            OrderStatus::OnHold => "on_hold",
            OrderStatus::Quote => "quote",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    #[default]
    Paid,
    Authorized,
    PartiallyPaid,
    Unpaid,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 4] = [
        PaymentStatus::Paid,
        PaymentStatus::Authorized,
        PaymentStatus::PartiallyPaid,
        PaymentStatus::Unpaid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Paid => "paid",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::PartiallyPaid => "partially_paid",
            PaymentStatus::Unpaid => "unpaid",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warehouse {
    pub id: String,
    pub kind: WarehouseKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub sku: String,
    #[serde(default)]
    pub replacement_sku: Option<String>,
    /// Who supplies it (the purchasing report groups by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Whether channels may sell it beyond its free stock (the feed's
    /// `sellable`); never changes the allocation.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub allow_backorders: bool,
    /// Warehouse id to the most units that may be backordered there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backorder_thresholds: BTreeMap<String, i64>,
}

impl Product {
    /// A product row that only names its replacement (the other fields at
    /// their defaults).
    pub fn new(sku: String, replacement_sku: Option<String>) -> Self {
        Product {
            sku,
            replacement_sku,
            vendor: None,
            allow_backorders: true,
            backorder_thresholds: BTreeMap::new(),
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryRow {
    pub sku: String,
    pub warehouse: String,
    pub on_hand: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseOrder {
    pub id: String,
    pub sku: String,
    pub warehouse: String,
    pub qty_ordered: i64,
    pub qty_received: i64,
    #[serde(default, with = "date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub expected_date: Option<NaiveDate>,
}

impl PurchaseOrder {
    /// Units still to arrive; zero or less means the PO supplies nothing.
    pub fn open_qty(&self) -> i64 {
        self.qty_ordered.saturating_sub(self.qty_received)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub id: String,
    #[serde(with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub order_date: DateTime<Utc>,
    #[serde(default, with = "timestamp_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub payment_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub payment_status: PaymentStatus,
    #[serde(default)]
    pub status: OrderStatus,
    #[serde(default)]
    pub rush: bool,
    #[serde(default)]
    pub picked: bool,
    #[serde(default)]
    pub ship_from: Option<String>,
    /// Who placed the order: carried in its change messages (and the
    /// address their e-mails go to). No part of the allocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
    pub lines: Vec<Line>,
}

/// An order's `customer`: both fields optional strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub id: String,
    pub sku: String,
    pub qty: i64,
    /// The value currently stored: kept as is by excluded and frozen orders.
    #[serde(default)]
    pub backorder_qty: i64,
}

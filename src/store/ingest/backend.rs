//! The statements a database supplies to the batch driver.

use std::future::Future;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::{DirtyMark, LineHistory, OrderLines, StoredLine};
use crate::engine::snapshot::{
    Order, OrderStatus, PaymentStatus, PurchaseOrder, Settings, Warehouse,
};
use crate::queue::RecalcJob;
use crate::recalc::OrderChange;
use crate::store::{IngestOptions, StoreError};

/// The statements of one backend, each run in the batch's transaction.
/// Checks against the state (unknown order...) are the caller's: these
/// report what they find.
pub(in crate::store) trait IngestBackend:
    Send + crate::store::messages::MessageLog
{
    /// The options the running daemon recorded, if one ever did.
    fn stored_options(
        &mut self,
    ) -> impl Future<Output = Result<Option<IngestOptions>, StoreError>> + Send;
    /// Records an event id: its sequence number, `None` when seen before.
    fn record_event(
        &mut self,
        id: &str,
        type_name: &str,
        received_at: &str,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
    fn known_warehouse(
        &mut self,
        warehouse: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Moves on hand by `delta`, creating the inventory row if missing:
    /// the new on hand.
    fn add_on_hand(
        &mut self,
        sku: &str,
        warehouse: &str,
        delta: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    fn set_on_hand(
        &mut self,
        sku: &str,
        warehouse: &str,
        on_hand: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds to a PO's received qty: the PO's SKU and new received qty,
    /// `None` for an unknown PO.
    fn receive_po(
        &mut self,
        po_id: &str,
        qty: i64,
    ) -> impl Future<Output = Result<Option<(String, i64)>, StoreError>> + Send;
    /// The stored SKU of a PO, `None` for an unknown one.
    fn purchase_order_sku(
        &mut self,
        po_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Replaces a PO, or adds it after every stored one.
    fn upsert_purchase_order(
        &mut self,
        po: &PurchaseOrder,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The stored replacement SKU of a product (`None`: no product row or
    /// no replacement).
    fn replacement_sku(
        &mut self,
        sku: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Replaces a product row whole, or adds it after every stored one.
    fn upsert_product(
        &mut self,
        product: &crate::engine::snapshot::Product,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The distinct SKUs of an order's lines; `None` for an unknown order.
    fn order_skus(
        &mut self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, StoreError>> + Send;
    /// Those of `line_ids` that are stored, by id.
    fn stored_lines(
        &mut self,
        line_ids: &[String],
    ) -> impl Future<Output = Result<FxHashMap<String, StoredLine>, StoreError>> + Send;
    /// Writes a stored order's header (its totals are the refresh's).
    fn update_order_header(
        &mut self,
        order: &Order,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replaces a stored order's lines with `order`'s.
    fn replace_lines(
        &mut self,
        order: &Order,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Stores the order's `customer` (none: clears it).
    fn set_customer(
        &mut self,
        order: &Order,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds a new order after every stored one, with the totals of its lines.
    fn insert_order(
        &mut self,
        order: &Order,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn update_status(
        &mut self,
        order_id: &str,
        status: OrderStatus,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn update_payment(
        &mut self,
        order_id: &str,
        payment_status: PaymentStatus,
        payment_date: Option<&DateTime<Utc>>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds `new_order_id` after every stored order, with `order_id`'s
    /// header and zero totals (for the refresh to set).
    fn copy_order_header(
        &mut self,
        order_id: &str,
        new_order_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Moves lines to `new_order_id`, each to its position.
    fn move_lines(
        &mut self,
        new_order_id: &str,
        moves: &[(String, i64)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn load_settings(&mut self) -> impl Future<Output = Result<Settings, StoreError>> + Send;
    fn save_settings(
        &mut self,
        settings: &Settings,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sets a line's stored backorder qty: its `(order_id, sku, old
    /// backorder_qty)`, `None` for an unknown line.
    fn override_line(
        &mut self,
        line_id: &str,
        backorder_qty: i64,
    ) -> impl Future<Output = Result<Option<(String, String, i64)>, StoreError>> + Send;
    /// A history row for a line whose stored backorder qty an event set.
    fn line_history(
        &mut self,
        row: &LineHistory,
        at: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A stored order's header, without its lines.
    fn order_header(
        &mut self,
        order_id: &str,
    ) -> impl Future<Output = Result<Order, StoreError>> + Send;
    fn load_warehouses(
        &mut self,
    ) -> impl Future<Output = Result<Vec<Warehouse>, StoreError>> + Send;
    /// The stored orders among `order_ids`, each with its lines, held
    /// until the end of the transaction for the status writes that follow.
    fn orders_with_lines(
        &mut self,
        order_ids: &[String],
    ) -> impl Future<Output = Result<Vec<OrderLines>, StoreError>> + Send;
    /// Writes orders' new totals and a history row each.
    fn write_order_changes(
        &mut self,
        changes: &[OrderChange],
        at: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Upserts the marks (sorted by SKU), a newer event replacing the cause.
    fn mark_dirty(
        &mut self,
        marks: &[DirtyMark],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Marks every SKU of the stored lines.
    fn mark_all_dirty(
        &mut self,
        seq: i64,
        cause: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn push_job(&mut self, job: &RecalcJob) -> impl Future<Output = Result<(), StoreError>> + Send;
}

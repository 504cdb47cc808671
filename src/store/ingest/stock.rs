//! Stock events: received goods and inventory counts.

use super::{Effect, IngestBackend};
use crate::engine::limits::{MAX_QUANTITY, signed_quantity_in_bounds};
use crate::store::StoreError;

fn one(sku: &str) -> Effect {
    Effect {
        skus: vec![sku.to_owned()],
        ..Effect::default()
    }
}

pub(super) async fn po_received<B: IngestBackend>(
    db: &mut B,
    sku: &str,
    warehouse: &str,
    qty: i64,
    po_id: Option<&str>,
) -> Result<Effect, StoreError> {
    require_warehouse(db, warehouse, "warehouse").await?;
    let on_hand = db.add_on_hand(sku, warehouse, qty).await?;
    require_on_hand_in_bounds(sku, warehouse, on_hand)?;
    let mut effect = one(sku);
    if let Some(po_id) = po_id {
        // An unknown PO id is not an error: the stock still arrived.
        // The PO may be of another SKU, whose ETAs then move too.
        if let Some((po_sku, received)) = db.receive_po(po_id, qty).await? {
            if received > MAX_QUANTITY {
                return Err(StoreError::Refused(format!(
                    "purchase order \"{po_id}\" would have qty_received {received}, \
                     above the largest quantity {MAX_QUANTITY}"
                )));
            }
            effect.skus.extend((po_sku != sku).then_some(po_sku));
        }
    }
    Ok(effect)
}

pub(super) async fn inventory_adjusted<B: IngestBackend>(
    db: &mut B,
    sku: &str,
    warehouse: &str,
    delta: i64,
) -> Result<Effect, StoreError> {
    require_warehouse(db, warehouse, "warehouse").await?;
    let on_hand = db.add_on_hand(sku, warehouse, delta).await?;
    require_on_hand_in_bounds(sku, warehouse, on_hand)?;
    Ok(one(sku))
}

pub(super) async fn inventory_set<B: IngestBackend>(
    db: &mut B,
    sku: &str,
    warehouse: &str,
    on_hand: i64,
) -> Result<Effect, StoreError> {
    require_warehouse(db, warehouse, "warehouse").await?;
    db.set_on_hand(sku, warehouse, on_hand).await?;
    Ok(one(sku))
}

/// Refuses an event that would leave an on-hand beyond the quantity
/// bounds: the batch's transaction is then rolled back, nothing applied.
pub(super) fn require_on_hand_in_bounds(
    sku: &str,
    warehouse: &str,
    on_hand: i64,
) -> Result<(), StoreError> {
    if signed_quantity_in_bounds(on_hand) {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "on_hand of sku \"{sku}\" in warehouse \"{warehouse}\" would become {on_hand}, \
             beyond the bounds -{MAX_QUANTITY} to {MAX_QUANTITY}"
        )))
    }
}

pub(super) async fn require_warehouse<B: IngestBackend>(
    db: &mut B,
    warehouse: &str,
    field: &str,
) -> Result<(), StoreError> {
    if db.known_warehouse(warehouse).await? {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "{field} names unknown warehouse \"{warehouse}\""
        )))
    }
}

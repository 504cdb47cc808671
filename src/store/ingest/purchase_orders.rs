//! Purchase order events.

use super::stock::require_warehouse;
use super::{Effect, IngestBackend};
use crate::engine::snapshot::PurchaseOrder;
use crate::store::StoreError;

pub(super) async fn upsert_purchase_order<B: IngestBackend>(
    db: &mut B,
    po: &PurchaseOrder,
) -> Result<Effect, StoreError> {
    require_warehouse(db, &po.warehouse, "purchase_order.warehouse").await?;
    let old_sku = db.purchase_order_sku(&po.id).await?;
    db.upsert_purchase_order(po).await?;
    let mut skus = vec![po.sku.clone()];
    skus.extend(old_sku.filter(|old| *old != po.sku));
    Ok(Effect {
        skus,
        ..Effect::default()
    })
}

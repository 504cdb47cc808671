//! Product events: a product row replaced whole (replacement SKU, vendor,
//! backorder allowance).

use super::stock::require_warehouse;
use super::{Effect, IngestBackend};
use crate::engine::snapshot::Product;
use crate::store::StoreError;

pub(super) async fn upsert_product<B: IngestBackend>(
    db: &mut B,
    product: &Product,
) -> Result<Effect, StoreError> {
    for warehouse in product.backorder_thresholds.keys() {
        let field = format!("product \"{}\": backorder_thresholds", product.sku);
        require_warehouse(db, warehouse, &field).await?;
    }
    let old_replacement = db.replacement_sku(&product.sku).await?;
    db.upsert_product(product).await?;
    // The SKU itself is always marked, so that its recalculation (and what
    // follows one, such as its feed entry's change) sees the new row; a
    // changed replacement also changes the SKUs it tied and now ties.
    let mut skus = vec![product.sku.clone()];
    if old_replacement != product.replacement_sku {
        skus.extend(old_replacement);
        skus.extend(product.replacement_sku.clone());
    }
    Ok(Effect {
        skus,
        ..Effect::default()
    })
}

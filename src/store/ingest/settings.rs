//! Settings changes and overrides of a line's stored backorder qty.

use chrono::Utc;

use super::{Effect, IngestBackend};
use crate::events::SettingsPatch;
use crate::store::StoreError;

pub(super) async fn settings_changed<B: IngestBackend>(
    db: &mut B,
    settings: &SettingsPatch,
) -> Result<Effect, StoreError> {
    let mut stored = db.load_settings().await?;
    settings.apply(&mut stored);
    db.save_settings(&stored).await?;
    Ok(Effect {
        all: true,
        ..Effect::default()
    })
}

pub(super) async fn backorder_override<B: IngestBackend>(
    db: &mut B,
    line_id: &str,
    backorder_qty: i64,
) -> Result<Effect, StoreError> {
    let (order_id, sku, old_backorder_qty) = db
        .override_line(line_id, backorder_qty)
        .await?
        .ok_or_else(|| StoreError::Refused(format!("unknown line \"{line_id}\"")))?;
    // An active line's override stands until the next recalculation
    // of its SKU (events.md), so it marks nothing; a frozen line's
    // value decides what it holds of the pool, so the others move.
    let frozen = order_scope(db, &order_id).await? == crate::engine::Scope::Frozen;
    Ok(Effect {
        skus: if frozen { vec![sku] } else { Vec::new() },
        overridden: vec![(
            order_id.clone(),
            line_id.to_owned(),
            old_backorder_qty,
            backorder_qty,
        )],
        orders: vec![order_id],
        ..Effect::default()
    })
}

/// Section 2's class of a stored order, as of now.
async fn order_scope<B: IngestBackend>(
    db: &mut B,
    order_id: &str,
) -> Result<crate::engine::Scope, StoreError> {
    let order = db.order_header(order_id).await?;
    let settings = db.load_settings().await?;
    let warehouses = db.load_warehouses().await?;
    Ok(crate::engine::scope_of(
        &order,
        &settings,
        &warehouses,
        Utc::now(),
    ))
}

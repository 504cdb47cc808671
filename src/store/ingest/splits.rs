//! Splitting an order, and what status and payment changes mark.

use super::orders::require_order;
use super::{Effect, IngestBackend};
use crate::store::{IngestOptions, StoreError};

pub(super) fn status_effect(skus: Vec<String>, options: IngestOptions) -> Effect {
    if options.recalculate_on_status_change {
        Effect {
            skus,
            ..Effect::default()
        }
    } else {
        Effect::default()
    }
}

pub(super) async fn split_order<B: IngestBackend>(
    db: &mut B,
    order_id: &str,
    new_order_id: &str,
    line_ids: &[String],
) -> Result<Effect, StoreError> {
    require_order(db, order_id).await?;
    if db.order_skus(new_order_id).await?.is_some() {
        return Err(StoreError::Refused(format!(
            "new_order_id \"{new_order_id}\" names an existing order"
        )));
    }
    let stored = db.stored_lines(line_ids).await?;
    let mut moved = Vec::with_capacity(line_ids.len());
    for line_id in line_ids {
        match stored.get(line_id) {
            Some(line) if line.order_id == order_id => {
                moved.push((line.position, line_id.clone(), line.sku.clone()));
            }
            _ => {
                return Err(StoreError::Refused(format!(
                    "line \"{line_id}\" is not a line of order \"{order_id}\""
                )));
            }
        }
    }
    moved.sort_unstable();
    db.copy_order_header(order_id, new_order_id).await?;
    db.move_lines(new_order_id, &split_positions(&moved))
        .await?;
    // The new order's id breaks priority ties differently: its SKUs are
    // recalculated; both orders' statuses follow their lines at once.
    let mut skus: Vec<String> = moved.into_iter().map(|(_, _, sku)| sku).collect();
    skus.sort_unstable();
    skus.dedup();
    Ok(Effect {
        skus,
        orders: vec![order_id.to_owned(), new_order_id.to_owned()],
        ..Effect::default()
    })
}

/// Each moved line's position in the new order: the lines keep their
/// relative order. `moved` is `(old position, line id, sku)`, sorted; a
/// line named twice takes the later of its places, as if moved twice.
fn split_positions(moved: &[(i64, String, String)]) -> Vec<(String, i64)> {
    let mut positions: Vec<(String, i64)> = Vec::with_capacity(moved.len());
    for (position, (_, line_id, _)) in moved.iter().enumerate() {
        match positions.last_mut() {
            Some(last) if last.0 == *line_id => last.1 = position as i64,
            _ => positions.push((line_id.clone(), position as i64)),
        }
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines_keep_their_relative_order() {
        let moved = |rows: &[(i64, &str)]| -> Vec<(i64, String, String)> {
            rows.iter()
                .map(|(p, id)| (*p, (*id).to_owned(), "SKU".to_owned()))
                .collect()
        };
        assert_eq!(
            split_positions(&moved(&[(1, "b"), (4, "d")])),
            vec![("b".to_owned(), 0), ("d".to_owned(), 1)]
        );
        // A line named twice ends where a second move would put it.
        assert_eq!(
            split_positions(&moved(&[(1, "b"), (1, "b"), (4, "d")])),
            vec![("b".to_owned(), 1), ("d".to_owned(), 2)]
        );
    }
}

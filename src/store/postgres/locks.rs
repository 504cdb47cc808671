//! The event locks on PostgreSQL: batches of events that touch the same
//! keys apply one after the other, in the order they took the locks;
//! batches on other keys apply beside them.
//!
//! A batch's keys are what its events name: SKUs, orders, lines and
//! purchase orders (an event whose SKUs are stored, a status change, is
//! covered by its order's key, which every event that changes that order's
//! lines takes too). Events that add orders or purchase orders take the
//! append key of their table, since the new row's position is the
//! table's largest plus one. Events that touch everything (a settings
//! change, a recalculation of every SKU) take the global key exclusively;
//! every other batch takes it shared.
//!
//! Every key is a transaction-scoped advisory lock taken at the start of the
//! transaction, the global key first, then the others in ascending order, and
//! nothing else waits on an advisory lock meanwhile (recalculations only
//! try theirs): two batches can then never wait for each other in a cycle.

use sqlx::PgConnection;

use super::LOCK_SPACE;
use crate::events::{Event, EventKind};
use crate::store::StoreError;

/// The second key of the global event lock (the one lock every batch
/// took before these finer ones).
const GLOBAL_KEY: i32 = -1;
/// The first key of the per-key event locks: `LOCK_SPACE` holds the
/// recalculation stripes and the global key.
const KEY_SPACE: i32 = LOCK_SPACE + 1;

/// The locks a set of batches needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct EventLocks {
    /// The global key exclusively (else shared).
    pub exclusive: bool,
    /// Hashed keys, ascending, each once.
    pub keys: Vec<i32>,
}

impl EventLocks {
    pub(super) fn of(batches: &[&[Event]]) -> Self {
        let mut locks = EventLocks::default();
        for event in batches.iter().flat_map(|batch| batch.iter()) {
            locks.add(&event.kind);
        }
        locks.keys.sort_unstable();
        locks.keys.dedup();
        locks
    }

    /// The global key exclusively: what an import takes.
    pub(super) fn everything() -> Self {
        EventLocks {
            exclusive: true,
            keys: Vec::new(),
        }
    }

    fn key(&mut self, family: &str, name: &str) {
        self.keys.push(key_hash(family, name));
    }

    fn add(&mut self, event: &EventKind) {
        match event {
            EventKind::PoReceived { sku, po_id, .. } => {
                self.key("sku", sku);
                if let Some(po_id) = po_id {
                    self.key("po", po_id);
                }
            }
            EventKind::InventoryAdjusted { sku, .. } | EventKind::InventorySet { sku, .. } => {
                self.key("sku", sku)
            }
            EventKind::PurchaseOrderUpserted { purchase_order } => {
                self.key("po", &purchase_order.id);
                self.key("sku", &purchase_order.sku);
                self.key("append", "purchase_orders");
            }
            EventKind::OrderUpserted { order } => {
                self.key("order", &order.id);
                self.key("append", "orders");
                for line in &order.lines {
                    self.key("sku", &line.sku);
                    self.key("line", &line.id);
                }
            }
            EventKind::OrderStatusChanged { order_id, .. }
            | EventKind::OrderPaymentChanged { order_id, .. } => self.key("order", order_id),
            EventKind::OrderSplit {
                order_id,
                new_order_id,
                line_ids,
            } => {
                self.key("order", order_id);
                self.key("order", new_order_id);
                self.key("append", "orders");
                for line_id in line_ids {
                    self.key("line", line_id);
                }
            }
            EventKind::BackorderOverride { line_id, .. } => self.key("line", line_id),
            EventKind::Recalculate { skus, all } => {
                self.exclusive |= *all;
                for sku in skus {
                    self.key("sku", sku);
                }
            }
            // A product may change the replacement relation that groups SKUs
            // for a recalculation, as settings may: rare, so exclusive.
            EventKind::SettingsChanged { .. } | EventKind::ProductUpserted { .. } => {
                self.exclusive = true
            }
        }
    }
}

/// A stable 32-bit hash (FNV-1a) of a key: the same in every process and
/// every version, as two processes must agree on it.
fn key_hash(family: &str, name: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in family.bytes().chain([0]).chain(name.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// Takes `locks` in the transaction on `conn`, in their fixed order.
pub(super) async fn take(conn: &mut PgConnection, locks: &EventLocks) -> Result<(), StoreError> {
    let global = if locks.exclusive {
        "SELECT pg_advisory_xact_lock($1, $2)"
    } else {
        "SELECT pg_advisory_xact_lock_shared($1, $2)"
    };
    sqlx::query(global)
        .bind(LOCK_SPACE)
        .bind(GLOBAL_KEY)
        .execute(&mut *conn)
        .await?;
    if locks.exclusive || locks.keys.is_empty() {
        // The global key alone excludes every other batch.
        return Ok(());
    }
    // One statement: a function scan of `unnest` yields the (sorted) array
    // in its order, and the locks are taken row by row as it goes.
    sqlx::query("SELECT pg_advisory_xact_lock($1, k.key) FROM unnest($2::int4[]) AS k(key)")
        .bind(KEY_SPACE)
        .bind(&locks.keys)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Event {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn keys_are_sorted_once_and_settings_take_everything() {
        let a =
            event(r#"{"type":"inventory_set","id":"e1","sku":"A","warehouse":"W","on_hand":1}"#);
        let b =
            event(r#"{"type":"inventory_adjusted","id":"e2","sku":"A","warehouse":"W","delta":1}"#);
        let locks = EventLocks::of(&[std::slice::from_ref(&a), &[b]]);
        assert!(!locks.exclusive);
        assert_eq!(locks.keys, vec![key_hash("sku", "A")]);
        let settings = event(r#"{"type":"settings_changed","id":"e3","settings":{}}"#);
        assert!(EventLocks::of(&[&[a], &[settings]]).exclusive);
    }

    #[test]
    fn the_hash_is_stable() {
        // Two processes, maybe of two versions, must agree on every key.
        assert_eq!(key_hash("sku", "A"), key_hash("sku", "A"));
        assert_ne!(key_hash("sku", "A"), key_hash("order", "A"));
        assert_eq!(
            key_hash("", ""),
            i32::from_ne_bytes(0x050c_5d1fu32.to_ne_bytes())
        );
    }
}

//! Section 4: the order in which active orders are served.

use chrono::{DateTime, Utc};
use std::cmp::Ordering;

use super::snapshot::{Order, Settings};

/// Keys 1-3 of section 4; key 4 (the order id) breaks ties in [`rank`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PriorityKey {
    /// Keys 1 and 2 together: orders with equal `tier` form one tier.
    pub tier: u8,
    /// With `use_payment_date`, orders without a payment date come after.
    undated_payment: bool,
    date: DateTime<Utc>,
}

impl PriorityKey {
    pub fn of(order: &Order, settings: &Settings) -> PriorityKey {
        let not_picked = settings.prioritize_picked && !order.picked;
        let not_rush = settings.prioritize_rush && !order.rush;
        let (undated_payment, date) = match (settings.use_payment_date, order.payment_date) {
            (true, Some(paid)) => (false, paid),
            (true, None) => (true, order.order_date),
            (false, _) => (false, order.order_date),
        };
        PriorityKey {
            tier: (u8::from(not_picked) << 1) | u8::from(not_rush),
            undated_payment,
            date,
        }
    }
}

/// A served order: its index in the snapshot and its key.
#[derive(Debug, Clone, Copy)]
pub struct Ranked {
    pub order: u32,
    pub key: PriorityKey,
}

/// Sorts the given orders into priority order (keys 1-4).
pub fn rank(orders: &[Order], selected: impl Iterator<Item = u32>, settings: &Settings) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = selected
        .map(|order| Ranked {
            order,
            key: PriorityKey::of(&orders[order as usize], settings),
        })
        .collect();
    ranked.sort_unstable_by(|a, b| compare(orders, a, b));
    ranked
}

fn compare(orders: &[Order], a: &Ranked, b: &Ranked) -> Ordering {
    a.key.cmp(&b.key).then_with(|| {
        let (a, b) = (&orders[a.order as usize].id, &orders[b.order as usize].id);
        a.as_bytes().cmp(b.as_bytes())
    })
}

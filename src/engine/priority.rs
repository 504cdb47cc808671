//! Section 4: the order in which active orders are served.

use chrono::{DateTime, Utc};

use super::snapshot::{Order, Settings};

/// An active order with keys 1-3 of section 4 packed for a fast sort; key
/// 4 (the order id) breaks the rare ties.
#[derive(Debug, Clone, Copy)]
pub struct Ranked {
    /// Bits 62-63: tier (keys 1 and 2); bit 61: no payment date while
    /// dating by payment; bits 0-60: seconds of the priority date, biased.
    major: u64,
    nanos: u32,
    pub order: u32,
}

const SECONDS_BIAS: i64 = 1 << 60;

impl Ranked {
    pub fn of(order_index: u32, order: &Order, settings: &Settings) -> Ranked {
        let not_picked = settings.prioritize_picked && !order.picked;
        let not_rush = settings.prioritize_rush && !order.rush;
        let (undated_payment, date) = match (settings.use_payment_date, order.payment_date) {
            (true, Some(paid)) => (false, paid),
            (true, None) => (true, order.order_date),
            (false, _) => (false, order.order_date),
        };
        let tier = (u64::from(not_picked) << 1) | u64::from(not_rush);
        Ranked {
            major: (tier << 62) | (u64::from(undated_payment) << 61) | seconds(date),
            nanos: date.timestamp_subsec_nanos(),
            order: order_index,
        }
    }

    /// Orders with equal tier values form one tier (section 4).
    pub fn tier(&self) -> u8 {
        (self.major >> 62) as u8
    }
}

fn seconds(date: DateTime<Utc>) -> u64 {
    // chrono's range (about ±262,000 years) fits well inside ±2^60 seconds.
    (date.timestamp() + SECONDS_BIAS) as u64
}

/// Section 4 for two orders: `Less` when `a` is served before `b`.
pub fn compare(a: &Order, b: &Order, settings: &Settings) -> std::cmp::Ordering {
    let (ra, rb) = (Ranked::of(0, a, settings), Ranked::of(0, b, settings));
    (ra.major, ra.nanos)
        .cmp(&(rb.major, rb.nanos))
        .then_with(|| a.id.as_bytes().cmp(b.id.as_bytes()))
}

/// Sorts the given orders into priority order (keys 1-4).
pub fn rank(
    orders: &[Order],
    selected: impl Iterator<Item = u32>,
    settings: &Settings,
) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = selected
        .map(|o| Ranked::of(o, &orders[o as usize], settings))
        .collect();
    // Keys 1-3 are integers: sort by them alone, then order each run of
    // equal keys (rare) by id, so that few comparisons chase an id string.
    ranked.sort_unstable_by_key(|r| (r.major, r.nanos));
    for run in ranked.chunk_by_mut(|a, b| (a.major, a.nanos) == (b.major, b.nanos)) {
        if run.len() > 1 {
            run.sort_unstable_by(|a, b| {
                let (a, b) = (&orders[a.order as usize].id, &orders[b.order as usize].id);
                a.as_bytes().cmp(b.as_bytes())
            });
        }
    }
    ranked
}

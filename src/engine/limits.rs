//! The bounds every quantity and setting must keep (README, "Limits").
//!
//! Why these numbers: with every quantity within ±10^12, a sum of them can
//! reach i64's limit (about 9.2 × 10^18) only past 9 million terms at the
//! bound (lines of one order, inventory rows of one pool), so no total the
//! engine, the ingest, the order totals or the SQL computes overflows for
//! any book a business can have; the arithmetic is checked or saturating
//! anyway. 10^12 units is more than any stock or order count we can
//! imagine, with a margin of millions below i64. A hundred years back
//! freezes everything a real book holds; the cutoff's date arithmetic is
//! checked all the same, so no setting can make the engine panic.

use chrono::{DateTime, Duration, Utc};

/// The largest quantity accepted anywhere, and the most negative on-hand
/// is its negation.
pub const MAX_QUANTITY: i64 = 1_000_000_000_000;

/// The largest `max_days_back`: 100 years of 365 days.
pub const MAX_DAYS_BACK: u32 = 36_500;

/// Whether a quantity that may be negative (an on-hand, a delta) is within
/// ±[`MAX_QUANTITY`].
pub fn signed_quantity_in_bounds(value: i64) -> bool {
    (-MAX_QUANTITY..=MAX_QUANTITY).contains(&value)
}

/// The freezing cutoff: `as_of` less `days`, or `None` when that lies
/// before the earliest instant chrono can represent (then nothing is old
/// enough to be frozen). Never panics, whatever the input.
pub fn cutoff(as_of: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    as_of.checked_sub_signed(Duration::try_days(i64::from(days))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cutoff_beyond_the_calendar_freezes_nothing_and_does_not_panic() {
        let as_of: DateTime<Utc> = "2026-11-30T00:00:00Z".parse().unwrap();
        assert_eq!(
            cutoff(as_of, 1),
            Some("2026-11-29T00:00:00Z".parse().unwrap())
        );
        assert!(cutoff(as_of, MAX_DAYS_BACK).is_some());
        assert_eq!(cutoff(as_of, u32::MAX), None);
        assert_eq!(cutoff(DateTime::<Utc>::MIN_UTC, 1), None);
    }
}

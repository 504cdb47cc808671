//! The allocation engine: plain data in, plain data out. No IO, no async, no
//! clock (the caller supplies "now" for snapshots without `as_of`). One
//! engine serves `simulate`, the worker and the full recompute.

mod allocate;
mod eta;
pub mod outcome;
mod pools;
mod priority;
pub mod result;
mod scope;
pub mod snapshot;
pub mod time_format;
pub mod validate;

use chrono::{DateTime, Utc};

pub use allocate::allocate;
pub use outcome::{Allocation, BackorderStatus, LineOutcome, OrderOutcome, Scope};
pub use result::ResultView;
pub use snapshot::Snapshot;
pub use validate::{Refusal, validate};

/// Validates, then allocates as of the snapshot's `as_of` or else `now`.
pub fn recalculate(snapshot: &Snapshot, now: DateTime<Utc>) -> Result<Allocation, Refusal> {
    validate(snapshot)?;
    Ok(allocate(snapshot, snapshot.as_of.unwrap_or(now)))
}

//! Pacing of a drain's recalculations of a hot SKU.
//!
//! On SQLite the recalculation and the ingest of events share the one
//! write connection (store/writer.rs). A sender waits for its answer
//! before it sends again, so with a few senders only a few requests wait
//! while a recalculation runs; if the worker recalculated the hot SKU again
//! as soon as each group of events committed, every group would pay one
//! hot-SKU recalculation and the rate would be a few requests per
//! recalculation. So after a batch of one hot SKU (one SKU of at least
//! [`HOT_LINES`] lines: the pool recalculated again and again), the next
//! batch waits until that one has been over for [`FACTOR`] times its own
//! length, at most [`MAX_WAIT`]: the hot SKU's recalculations then take at
//! most about a quarter of the connection's time under a steady stream of
//! events, and every event is still recalculated within `MAX_WAIT` plus one
//! batch of being accepted. Batches of other SKUs (new work each time) are
//! never paced: pacing them let the drain fall seconds behind.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The pause after a batch, in multiples of the batch's own length.
pub const FACTOR: u32 = 3;
/// The longest pause: what it may add to an event's time to its result.
pub const MAX_WAIT: Duration = Duration::from_millis(25);

/// A batch of one SKU with this many lines or more is a hot pool's.
pub const HOT_LINES: usize = 1_000;

/// Whether a batch of `skus` SKUs and `lines` lines is a hot pool's, after
/// which the next batch is paced.
pub fn is_hot(skus: usize, lines: usize) -> bool {
    skus == 1 && lines >= HOT_LINES
}

/// When the last batch ended and how long it took.
#[derive(Debug, Default)]
pub struct Pacer {
    last: Mutex<Option<(Instant, Duration)>>,
}

impl Pacer {
    /// Records a batch that began at `started` and has just ended.
    pub fn record(&self, started: Instant) {
        let now = Instant::now();
        if let Ok(mut last) = self.last.lock() {
            *last = Some((now, now - started));
        }
    }

    /// Waits until the next batch may begin.
    pub async fn wait(&self) {
        let last = self.last.lock().map(|l| *l).unwrap_or(None);
        if let Some(until) = next_start(last) {
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

/// When the batch after one that ended at `last.0` and took `last.1` may
/// begin (`None`: at once).
pub fn next_start(last: Option<(Instant, Duration)>) -> Option<Instant> {
    let (ended, took) = last?;
    let pause = (took * FACTOR).min(MAX_WAIT);
    let until = ended + pause;
    (until > Instant::now()).then_some(until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_followed_by_three_times_its_length_at_most_the_cap() {
        let now = Instant::now();
        let short = next_start(Some((now, Duration::from_millis(4)))).unwrap();
        let pause = short - now;
        assert!(pause == Duration::from_millis(12), "{pause:?}");
        let long = next_start(Some((now, Duration::from_millis(400)))).unwrap();
        assert_eq!(long - now, MAX_WAIT);
    }

    #[test]
    fn only_a_batch_of_one_large_pool_is_hot() {
        assert!(is_hot(1, 22_000));
        assert!(!is_hot(1, 40), "a small SKU alone");
        assert!(!is_hot(300, 22_000), "a batch of many SKUs");
    }

    #[test]
    fn nothing_waits_without_a_recent_batch() {
        assert_eq!(next_start(None), None);
        let long_ago = Instant::now() - Duration::from_secs(1);
        assert_eq!(next_start(Some((long_ago, Duration::from_millis(5)))), None);
    }
}

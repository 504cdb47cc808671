//! When a failed delivery is tried again, and when it is given up (dead).
//!
//! The schedule of notifications.md section 2: about 5 s, 30 s, 2 min,
//! 10 min, 30 min, 1 h, then hourly, each pause scaled by a jitter factor
//! so that the retries of many messages that failed together spread out;
//! until the retry window (24 h by default) from the message's creation has
//! passed. The last retry is moved to the window's end, so a message is
//! tried once more at 24 h before it is dead.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The pauses after the 1st, 2nd, ... failure; the last repeats.
pub const SCHEDULE: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
];

/// Each pause is scaled by a factor from `1 - JITTER` to `1 + JITTER`.
pub const JITTER: f64 = 0.2;

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again at this instant.
    RetryAt(DateTime<Utc>),
    /// The retry window is over: the message is dead for this destination.
    Dead,
}

/// The pause after the `failures`-th failure (1 for the first), with
/// `jitter` in `[0, 1)` (a uniform random draw) spread over ±[`JITTER`].
pub fn pause(failures: u32, jitter: f64) -> Duration {
    let index = (failures.max(1) as usize - 1).min(SCHEDULE.len() - 1);
    let factor = 1.0 - JITTER + 2.0 * JITTER * jitter.clamp(0.0, 1.0);
    SCHEDULE[index].mul_f64(factor)
}

/// After the `failures`-th failed attempt at `now` of a message created at
/// `created_at`: when to try again, or dead once `window` has passed.
pub fn next(
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    failures: u32,
    window: Duration,
    jitter: f64,
) -> Next {
    next_scaled(created_at, now, failures, window, jitter, SCHEDULE[0])
}

/// [`next`] with the whole schedule scaled so that its first pause is
/// `first_pause` instead of 5 s (`notify.retry_base_ms`: short pauses for
/// tests and trials).
pub fn next_scaled(
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    failures: u32,
    window: Duration,
    jitter: f64,
    first_pause: Duration,
) -> Next {
    let deadline = created_at + window;
    if now >= deadline {
        return Next::Dead;
    }
    let scale = first_pause.as_secs_f64() / SCHEDULE[0].as_secs_f64();
    let at = now + pause(failures, jitter).mul_f64(scale);
    Next::RetryAt(at.min(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_pauses_follow_the_schedule_then_stay_hourly() {
        let middle: Vec<u64> = (1..=9).map(|n| pause(n, 0.5).as_secs()).collect();
        assert_eq!(middle, [5, 30, 120, 600, 1800, 3600, 3600, 3600, 3600]);
        assert_eq!(pause(u32::MAX, 0.5), secs(3600));
        assert_eq!(pause(0, 0.5), secs(5), "no failure counts as the first");
    }

    #[test]
    fn jitter_spreads_each_pause_by_a_fifth_either_way() {
        assert_eq!(pause(1, 0.0), secs(4));
        assert_eq!(pause(1, 1.0), secs(6));
        assert_eq!(pause(6, 0.0), secs(2880));
        assert_eq!(
            pause(6, 0.999_999),
            Duration::from_secs_f64(3600.0 * (0.8 + 0.4 * 0.999_999))
        );
        // Out-of-range draws are held to the range.
        assert_eq!(pause(2, -3.0), secs(24));
        assert_eq!(pause(2, 7.0), secs(36));
    }

    #[test]
    fn retries_end_at_the_window_with_a_last_try_there_then_dead() {
        let created: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        let day = secs(86_400);
        let after = |s: i64| created + chrono::Duration::seconds(s);
        assert_eq!(
            next(created, after(1), 1, day, 0.5),
            Next::RetryAt(after(6))
        );
        assert_eq!(
            next(created, after(100), 3, day, 0.5),
            Next::RetryAt(after(220))
        );
        // Half an hour before the end an hourly pause is cut to the end.
        assert_eq!(
            next(created, after(84_600), 20, day, 0.5),
            Next::RetryAt(after(86_400))
        );
        assert_eq!(next(created, after(86_400), 21, day, 0.5), Next::Dead);
        assert_eq!(next(created, after(90_000), 2, day, 0.5), Next::Dead);
        // A shorter window is honoured the same way.
        assert_eq!(
            next(created, after(50), 2, secs(60), 0.5),
            Next::RetryAt(after(60))
        );
    }

    #[test]
    fn a_scaled_schedule_keeps_its_proportions_and_the_window() {
        let created: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        let at = |ms: i64| created + chrono::Duration::milliseconds(ms);
        let base = Duration::from_millis(50);
        assert_eq!(
            next_scaled(created, at(0), 1, secs(60), 0.5, base),
            Next::RetryAt(at(50))
        );
        assert_eq!(
            next_scaled(created, at(1000), 3, secs(60), 0.5, base),
            Next::RetryAt(at(2200))
        );
        assert_eq!(
            next_scaled(created, at(59_990), 9, secs(60), 0.5, base),
            Next::RetryAt(at(60_000))
        );
        assert_eq!(
            next_scaled(created, at(60_000), 9, secs(60), 0.5, base),
            Next::Dead
        );
    }

    #[test]
    fn a_day_of_failures_takes_about_thirty_attempts() {
        let created: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        let (mut now, mut failures) = (created, 0);
        while let Next::RetryAt(at) = next(created, now, failures + 1, secs(86_400), 0.5) {
            assert!(at > now);
            now = at;
            failures += 1;
        }
        // 6 scheduled pauses reach ~1 h 13 min, then hourly to 24 h, plus the last at the end.
        assert!((27..=30).contains(&failures), "{failures}");
    }
}

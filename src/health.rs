//! Is the queue worker making progress? `/readyz` and the systemd watchdog
//! ask here, so that a worker that died, hangs in a job or stopped fetching
//! while work waits shows, not merely a runtime that still answers.
//!
//! The worker reports as it goes: when a job starts, after each batch it
//! writes back, when the job ends. The verdict is a pure function of those
//! times, the apalis worker's running flag and the age of the oldest dirty
//! mark ([`judge`]).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::store::daemons::now_ms;

/// What the worker last reported.
#[derive(Debug)]
pub struct WorkerHealth {
    /// apalis's worker fetches jobs (its start and stop events).
    running: AtomicBool,
    /// When the job in hand started (Unix ms); 0 when idle.
    busy_since_ms: AtomicI64,
    /// When the worker last made progress: a job started, a batch was
    /// written back, a job ended.
    last_progress_ms: AtomicI64,
    /// No progress for this long while work waits is a stall.
    stall_after: Duration,
}

/// A copy of the reports at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub running: bool,
    pub busy_since_ms: Option<i64>,
    pub last_progress_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The apalis worker does not run (it is being started again).
    NotRunning,
    /// A job has made no progress for this many seconds.
    Stuck {
        secs: i64,
    },
    /// Work has waited this many seconds and no job ran meanwhile.
    NotFetching {
        secs: i64,
    },
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        *self == Verdict::Ok
    }

    /// For `/readyz` and the logs.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Ok => "ok".to_owned(),
            Verdict::NotRunning => "not running".to_owned(),
            Verdict::Stuck { secs } => {
                format!("stuck: the job in hand made no progress for {secs} s")
            }
            Verdict::NotFetching { secs } => {
                format!("stalled: work has waited {secs} s and no job ran")
            }
        }
    }
}

/// The verdict on `progress` at `now_ms`, with the oldest dirty mark made
/// at `oldest_mark_ms` (`None`: nothing waits).
pub fn judge(
    progress: Progress,
    oldest_mark_ms: Option<i64>,
    now_ms: i64,
    stall_after: Duration,
) -> Verdict {
    let stall_ms = stall_after.as_millis() as i64;
    let silent_ms = now_ms.saturating_sub(progress.last_progress_ms);
    if !progress.running {
        return Verdict::NotRunning;
    }
    if progress.busy_since_ms.is_some() {
        return if silent_ms > stall_ms {
            Verdict::Stuck {
                secs: silent_ms / 1000,
            }
        } else {
            Verdict::Ok
        };
    }
    match oldest_mark_ms {
        Some(marked) if now_ms.saturating_sub(marked) > stall_ms && silent_ms > stall_ms => {
            Verdict::NotFetching {
                secs: now_ms.saturating_sub(marked) / 1000,
            }
        }
        _ => Verdict::Ok,
    }
}

impl WorkerHealth {
    pub fn new(stall_after: Duration) -> Self {
        WorkerHealth {
            running: AtomicBool::new(false),
            busy_since_ms: AtomicI64::new(0),
            last_progress_ms: AtomicI64::new(now_ms()),
            stall_after,
        }
    }

    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Relaxed);
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    pub fn job_started(&self) {
        let now = now_ms();
        self.busy_since_ms.store(now, Ordering::Relaxed);
        self.last_progress_ms.store(now, Ordering::Relaxed);
    }

    pub fn progressed(&self) {
        self.last_progress_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn job_ended(&self) {
        self.busy_since_ms.store(0, Ordering::Relaxed);
        self.last_progress_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn progress(&self) -> Progress {
        let busy = self.busy_since_ms.load(Ordering::Relaxed);
        Progress {
            running: self.running.load(Ordering::Relaxed),
            busy_since_ms: (busy != 0).then_some(busy),
            last_progress_ms: self.last_progress_ms.load(Ordering::Relaxed),
        }
    }

    /// The verdict now, given when the oldest waiting dirty mark was made.
    pub fn verdict(&self, oldest_mark_ms: Option<i64>) -> Verdict {
        judge(self.progress(), oldest_mark_ms, now_ms(), self.stall_after)
    }

    pub fn stall_after(&self) -> Duration {
        self.stall_after
    }
}

/// How long the worker may go without progress while work waits: twelve
/// heartbeats, at least a minute (a batch is bounded to 50,000 lines and
/// reports after each).
pub fn stall_after(heartbeat: Duration) -> Duration {
    heartbeat.saturating_mul(12).max(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(60);
    const NOW: i64 = 1_000_000_000;

    fn progress(running: bool, busy_since_ms: Option<i64>, last_progress_ms: i64) -> Progress {
        Progress {
            running,
            busy_since_ms,
            last_progress_ms,
        }
    }

    #[test]
    fn an_idle_worker_with_nothing_waiting_is_ok_however_long_it_idles() {
        let idle = progress(true, None, NOW - 3_600_000);
        assert_eq!(judge(idle, None, NOW, STALL), Verdict::Ok);
    }

    #[test]
    fn a_worker_that_does_not_run_is_not_ok() {
        let stopped = progress(false, None, NOW);
        assert_eq!(judge(stopped, None, NOW, STALL), Verdict::NotRunning);
    }

    #[test]
    fn a_job_without_progress_for_the_stall_time_is_stuck() {
        let working = progress(true, Some(NOW - 300_000), NOW - 10_000);
        assert_eq!(judge(working, Some(NOW - 300_000), NOW, STALL), Verdict::Ok);
        let stuck = progress(true, Some(NOW - 300_000), NOW - 61_000);
        assert_eq!(
            judge(stuck, Some(NOW - 300_000), NOW, STALL),
            Verdict::Stuck { secs: 61 }
        );
    }

    #[test]
    fn work_waiting_past_the_stall_time_with_no_job_run_is_a_stall() {
        // Fresh work: the wake-up is on its way.
        let idle = progress(true, None, NOW - 3_600_000);
        assert_eq!(judge(idle, Some(NOW - 50), NOW, STALL), Verdict::Ok);
        assert_eq!(
            judge(idle, Some(NOW - 90_000), NOW, STALL),
            Verdict::NotFetching { secs: 90 }
        );
        // Old marks but a job just ended (others may hold those SKUs'
        // locks on PostgreSQL): not a stall.
        let just_worked = progress(true, None, NOW - 1_000);
        assert_eq!(
            judge(just_worked, Some(NOW - 90_000), NOW, STALL),
            Verdict::Ok
        );
    }

    #[test]
    fn the_stall_time_is_twelve_heartbeats_or_a_minute() {
        assert_eq!(stall_after(Duration::from_secs(1)), STALL);
        assert_eq!(
            stall_after(Duration::from_secs(10)),
            Duration::from_secs(120)
        );
    }
}

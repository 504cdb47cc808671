//! The service manager's notification protocol (`sd_notify`): READY=1 once
//! `serve` runs, WATCHDOG=1 pings, STOPPING=1 on the stop signal.
//!
//! Every function is a no-op when `NOTIFY_SOCKET` is unset (not started by
//! systemd with `Type=notify`), and a failure to notify is logged, never
//! fatal: the daemon works the same without a service manager.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, warn};

fn send(state: NotifyState<'_>) {
    // Empty counts as unset, as for the configuration's variables.
    if std::env::var_os("NOTIFY_SOCKET").is_none_or(|socket| socket.is_empty()) {
        return;
    }
    if let Err(e) = sd_notify::notify(std::slice::from_ref(&state)) {
        warn!(error = %e, state = %state, "cannot notify the service manager");
    }
}

/// READY=1: the schema is current and the queue worker runs.
pub fn ready() {
    send(NotifyState::Ready);
}

/// STOPPING=1: the stop signal arrived; the daemon finishes the job in hand.
pub fn stopping() {
    send(NotifyState::Stopping);
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, when the service
/// manager asks for pings from this process (`WATCHDOG_PID` unset or equal
/// to this pid, as `sd_watchdog_enabled(3)` says).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|usec| !usec.is_zero())
        .map(|usec| (usec / 2).max(Duration::from_millis(1)))
}

/// Starts the WATCHDOG=1 pings on the runtime, if the service manager asks
/// for them. The pings come from a task on the daemon's own runtime, so they
/// stop when the runtime hangs; and they are withheld while the queue worker
/// is not making progress (`health`: dead, stuck in a job, or not fetching
/// while work waits), so systemd restarts a daemon whose worker is stuck
/// too. A database that does not answer does not withhold them: the daemon
/// reconnects by itself, and a restart would not help. They go on through
/// the stop, until the runtime ends.
pub fn spawn_watchdog(
    health: std::sync::Arc<crate::health::WorkerHealth>,
    store: std::sync::Arc<crate::store::AnyStore>,
) {
    use crate::store::Store;
    let Some(every) = watchdog_interval() else {
        return;
    };
    debug!(interval_ms = every.as_millis() as u64, "watchdog pings on");
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut withheld = false;
        loop {
            ticks.tick().await;
            let oldest = tokio::time::timeout(every, store.oldest_dirty_mark())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            let verdict = health.verdict(oldest.map(|t| t.timestamp_millis()));
            if verdict.is_ok() {
                if withheld {
                    warn!("the queue worker makes progress again; watchdog pings resume");
                    withheld = false;
                }
                send(NotifyState::Watchdog);
            } else if !withheld {
                tracing::error!(worker = %verdict.describe(), "the queue worker is not making progress; watchdog pings withheld, so the service manager restarts the daemon");
                withheld = true;
            }
        }
    });
}

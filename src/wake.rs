//! Waking the queue worker as soon as there is work.
//!
//! apalis 1.0 parks its worker after a fetch that found nothing, and
//! relies on its poll strategy to wake it. The interval strategy of
//! `poll_with_interval` (apalis-core 1.0.0,
//! `backend/ext/poll_strategy/strategies/interval.rs`) replaces its timer
//! when it fires but does not poll the new one, so the new timer has no
//! waker until the worker happens to be polled again. When the timer fires
//! while a fetch is in flight, the worker is polled once for both; the
//! fetch comes back empty, the worker parks, and nothing is armed but its
//! heartbeat timer (every `service.heartbeat_secs`). With a fetch of a few
//! milliseconds and a 50 ms interval that happens within seconds.
//! An accepted event could wait a whole heartbeat. So the daemon drives the
//! worker's polling itself, through `poll_with_stream` and this module:
//!
//! - an ingest in this process (HTTP, the periodic run) wakes it at once
//!   ([`wake`], called by the store after a commit that queued work);
//! - on PostgreSQL, a `LISTEN` on apalis's own insert notification
//!   (`apalis::job::insert`, sent by its trigger on `apalis.jobs`) wakes it
//!   when another process queues a job;
//! - a ticker at `service.poll_interval_ms` wakes it anyway, for work queued
//!   by other processes on SQLite (and on PostgreSQL when a notification is
//!   missed while its connection reconnects).
//!
//! Every wake-up makes the worker fetch once; extra wake-ups while it is
//! busy or fetching coalesce into one.

use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use futures_util::stream::BoxStream;
use tokio::sync::watch;
use tracing::{debug, warn};

/// The channel apalis-postgres's trigger notifies when a job is inserted.
const PG_INSERT_CHANNEL: &str = "apalis::job::insert";

/// A counter bumped by every wake-up; each worker incarnation watches it.
static WAKE: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Asks this process's queue worker (if it runs one) to fetch now.
pub fn wake() {
    WAKE.send_modify(|n| *n = n.wrapping_add(1));
}

/// The wake-ups as a stream for apalis's `poll_with_stream`: one item per
/// burst of wake-ups since the worker last looked.
pub fn stream() -> WakeStream {
    let watched = futures_util::stream::unfold(WAKE.subscribe(), |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    });
    WakeStream {
        inner: Box::pin(watched),
        ended: false,
    }
}

/// A stream that, having yielded, polls its source again until it is
/// pending, so that a waker is always registered for the next wake-up.
/// (apalis polls its strategy's stream once per fetch attempt and ignores
/// what it yields; a stream left un-polled after yielding would register no
/// waker and never wake the worker again: the interval strategy's bug.)
pub struct WakeStream {
    inner: BoxStream<'static, ()>,
    ended: bool,
}

impl Stream for WakeStream {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(())) => {
                // Coalesce what is already there and leave a waker behind.
                loop {
                    match self.inner.as_mut().poll_next(cx) {
                        Poll::Ready(Some(())) => continue,
                        Poll::Ready(None) => {
                            self.ended = true;
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
                Poll::Ready(Some(()))
            }
        }
    }
}

/// Wakes the worker every `every`, until the runtime ends.
pub async fn tick(every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        wake();
    }
}

/// PostgreSQL: wakes the worker whenever any process inserts a job. A lost
/// connection is re-established (by sqlx, on the next receive, or here
/// after a pause); the ticker covers the gap.
pub async fn listen_postgres(pool: sqlx::PgPool, retry: Duration) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                warn!(error = %e, "cannot LISTEN for new jobs; polling meanwhile");
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(PG_INSERT_CHANNEL).await {
            warn!(error = %e, "cannot LISTEN for new jobs; polling meanwhile");
            tokio::time::sleep(retry).await;
            continue;
        }
        debug!(channel = PG_INSERT_CHANNEL, "listening for new jobs");
        loop {
            match listener.recv().await {
                Ok(_) => wake(),
                Err(e) => {
                    warn!(error = %e, "the LISTEN connection failed; polling meanwhile");
                    // Whatever came in meanwhile may have been missed.
                    wake();
                    tokio::time::sleep(retry).await;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// A yielded item leaves a waker behind: a later wake-up is seen
    /// without the stream being polled in between by anyone else.
    #[tokio::test]
    async fn a_wake_after_a_yield_wakes_the_task() {
        let mut stream = stream();
        wake();
        wake();
        // Both wake-ups coalesce into one item.
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), stream.next()).await,
            Ok(Some(()))
        );
        let waiter = tokio::spawn(async move { stream.next().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        wake();
        let woke = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert!(matches!(woke, Ok(Ok(Some(())))), "{woke:?}");
    }
}

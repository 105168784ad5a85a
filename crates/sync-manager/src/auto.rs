//! Background sync: [`SyncManager::start_auto_sync`] and its [`AutoSync`] handle.

use std::time::Duration;

use sync_core::{EventStore, Transport};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::SyncManager;

/// A running auto-sync or live-sync task. Dropping the handle leaves the
/// task running; call [`AutoSync::stop`] to end it.
pub struct AutoSync {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AutoSync {
    pub(crate) fn new(stop: watch::Sender<bool>, task: JoinHandle<()>) -> Self {
        AutoSync { stop, task }
    }

    /// Asks the task to stop and waits until it has (a sync in flight finishes first).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The delay before retry `failures` (1-based): `min * 2^(failures-1)`,
/// capped at `max`, then scaled by a jitter factor in [0.5, 1.0).
pub(crate) fn backoff_delay(failures: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = min.saturating_mul(1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX));
    exp.min(max).mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

impl<S: EventStore, T: Transport> SyncManager<S, T> {
    /// Syncs now and then every [`sync_interval`](crate::Builder::sync_interval)
    /// in a background task; after a failure it retries with exponential
    /// backoff and jitter, and returns to the interval after a success.
    /// Each result reaches [`SyncManager::subscribe`] as usual.
    pub fn start_auto_sync(&self) -> AutoSync {
        let (stop, mut stopped) = watch::channel(false);
        let manager = self.clone();
        let task = tokio::spawn(async move {
            let o = &manager.inner.options;
            let mut failures = 0u32;
            loop {
                let delay = match manager.sync().await {
                    Ok(_) => {
                        failures = 0;
                        o.interval
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let delay = backoff_delay(failures, o.backoff.0, o.backoff.1, fastrand::f64());
                        warn!(error = %e, failures, retry_ms = delay.as_millis() as u64, "auto-sync failed");
                        delay
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        AutoSync { stop, task }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        let full = |n| backoff_delay(n, min, max, 1.0);
        assert_eq!([full(1), full(2), full(3), full(7), full(40)].map(|d| d.as_secs()), [1, 2, 4, 60, 60]);
        assert_eq!(backoff_delay(3, min, max, 0.0), Duration::from_secs(2), "jitter halves at most");
    }
}

//! Live sync: [`SyncManager::start_live_sync`], for transports that can
//! [`Subscribe`] to the peer's feed.

use futures_util::StreamExt as _;
use sync_core::{Error, EventStore, Live, Subscribe};
use tokio::sync::watch;
use tracing::warn;

use crate::SyncManager;
use crate::auto::{AutoSync, backoff_delay};
use crate::manager::SyncMode;

impl<S: EventStore, T: Subscribe> SyncManager<S, T> {
    /// Keeps the store in sync as things happen, in a background task. It
    /// syncs once to catch up, then follows the peer's feed from the pull
    /// checkpoint: each live item is pulled (or applied) at once, and local
    /// events are pushed right after they are appended, through this
    /// manager or any other handle of the store, once
    /// [`push_debounce`](crate::Builder::push_debounce) has passed without
    /// a new one. A full sync still runs every
    /// [`sync_interval`](crate::Builder::sync_interval). When the
    /// subscription or a sync fails, it reconnects with the auto-sync
    /// backoff and catches up again, so nothing is lost. After
    /// [`push_only`](crate::Builder::push_only) it does not subscribe; after
    /// [`pull_only`](crate::Builder::pull_only) it does not push. Each
    /// result reaches [`SyncManager::subscribe`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use sync_core::{EventStore, NewEvent};
    /// use sync_manager::SyncManager;
    /// use sync_server::SyncService;
    /// use sync_store_memory::MemoryStore;
    /// use sync_testkit::InProcessTransport;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let server = Arc::new(SyncService::new(MemoryStore::new()));
    /// let client = |store| SyncManager::builder(store).transport(InProcessTransport::new(server.clone(), "server"));
    /// let alice = client(MemoryStore::new()).build()?;
    /// let bob = client(MemoryStore::new()).sync_interval(Duration::from_secs(3600)).build()?;
    /// let mut results = bob.subscribe();
    /// let live = bob.start_live_sync();
    /// results.recv().await?; // bob caught up
    /// alice.append(vec![NewEvent::new("note.added", "note-1", "hi")]).await?;
    /// alice.sync().await?;
    /// // No polling: bob pulls as soon as the server's feed moves.
    /// while results.recv().await?.pulled == 0 {}
    /// assert_eq!(bob.store().load_aggregate("note-1", &sync_core::Cursor::START).await?.len(), 1);
    /// live.stop().await;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn start_live_sync(&self) -> AutoSync {
        let (stop, mut stopped) = watch::channel(false);
        let manager = self.clone();
        let task = tokio::spawn(async move {
            let (min, max) = manager.inner.options.backoff;
            let mut failures = 0u32;
            loop {
                let Some(e) = manager.follow(&mut stopped, &mut failures).await else { return };
                failures = failures.saturating_add(1);
                let delay = backoff_delay(failures, min, max, fastrand::f64());
                warn!(error = %e, failures, retry_ms = delay.as_millis() as u64, "live sync failed; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        AutoSync::new(stop, task)
    }

    /// One connection: a sync to catch up, then the subscription, until
    /// something fails (the error) or the task is stopped (`None`).
    async fn follow(&self, stopped: &mut watch::Receiver<bool>, failures: &mut u32) -> Option<Error> {
        let Some(transport) = &self.inner.transport else { return None };
        let (store, o) = (&self.inner.store, &self.inner.options);
        let (pushes, pulls) = (o.mode != SyncMode::PullOnly, o.mode != SyncMode::PushOnly);
        let connect = async {
            self.sync().await?;
            let keys = self.peer_keys(transport).await?;
            let checkpoint = store.checkpoint(&keys.checkpoint).await?;
            let live = match pulls {
                true => Some(transport.subscribe(&checkpoint.pulled, &self.pull_filter()).await?),
                false => None,
            };
            Ok::<_, Error>((keys, live))
        };
        let (keys, mut live) = match connect.await {
            Ok(connected) => connected,
            Err(e) => return Some(e),
        };
        *failures = 0;
        loop {
            let pushed = match store.checkpoint(&keys.checkpoint).await {
                Ok(checkpoint) => checkpoint.pushed,
                Err(e) => return Some(e),
            };
            let step = tokio::select! {
                item = async { live.as_mut().expect("enabled only with a subscription").next().await }, if live.is_some() => match item {
                    Some(Ok(Live::Events { after, page })) => self.pull_from(after, page).await.map(drop),
                    // `Moved`, or an item this version does not know: pull.
                    Some(Ok(_)) => self.pull().await.map(drop),
                    Some(Err(e)) => Err(e),
                    None => Err(Error::Unavailable { message: format!("the live feed of {} ended", transport.peer()) }),
                },
                moved = store.wait_past(&pushed), if pushes => match moved {
                    Ok(()) => {
                        tokio::time::sleep(o.push_debounce).await;
                        self.push().await.map(drop)
                    }
                    Err(e) => Err(e),
                },
                _ = tokio::time::sleep(o.interval) => self.sync().await.map(drop),
                _ = stopped.changed() => return None,
            };
            if let Err(e) = step {
                return Some(e);
            }
        }
    }
}

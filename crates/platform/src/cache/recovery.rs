//! Invalidations Redis did not take, remembered and replayed when it answers again (in
//! the manner of FusionCache's auto-recovery).
//!
//! While a key's invalidation is pending, this replica reads it from neither Redis nor
//! writes it back there: Redis may still hold the value from before the write. Once
//! Redis answers, the replay deletes the keys, bumps their versions and tells the other
//! replicas, within one replay period.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::l2::{Mode, RedisL2};

/// How often pending invalidations are retried.
pub(crate) const REPLAY_PERIOD: Duration = Duration::from_millis(200);
/// Keys remembered at most; beyond that an outage's writes are logged as lost.
const MAX_PENDING: usize = 100_000;
/// Keys per replayed invalidation (one script call each).
const REPLAY_BATCH: usize = 500;

#[derive(Default)]
pub(crate) struct Pending {
    keys: Mutex<HashSet<String>>,
}

impl Pending {
    pub(crate) fn add(&self, keys: &[String]) {
        let mut pending = self.keys.lock().expect("pending lock");
        for key in keys {
            if pending.len() >= MAX_PENDING {
                tracing::error!(
                    "too many cache invalidations pending while redis is down; some are dropped"
                );
                metrics::counter!("cache_invalidations_dropped_total").increment(1);
                break;
            }
            pending.insert(key.clone());
        }
        metrics::gauge!("cache_invalidations_pending").set(pending.len() as f64);
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        let pending = self.keys.lock().expect("pending lock");
        !pending.is_empty() && pending.contains(key)
    }

    fn take_batch(&self) -> Vec<String> {
        let pending = self.keys.lock().expect("pending lock");
        pending.iter().take(REPLAY_BATCH).cloned().collect()
    }

    fn done(&self, keys: &[String]) {
        let mut pending = self.keys.lock().expect("pending lock");
        for key in keys {
            pending.remove(key);
        }
        metrics::gauge!("cache_invalidations_pending").set(pending.len() as f64);
    }
}

/// Replays pending invalidations until `stop`.
pub(crate) fn spawn_replay(
    pending: Arc<Pending>,
    l2: RedisL2,
    channel: String,
    origin: String,
    stop: CancellationToken,
) {
    super::spawn_periodic(REPLAY_PERIOD, stop, move || {
        let (pending, l2) = (pending.clone(), l2.clone());
        let (channel, origin) = (channel.clone(), origin.clone());
        async move { replay(&pending, &l2, &channel, &origin).await }
    });
}

/// Replays every pending invalidation Redis takes now, in batches.
async fn replay(pending: &Pending, l2: &RedisL2, channel: &str, origin: &str) {
    loop {
        let batch = pending.take_batch();
        if batch.is_empty() {
            return;
        }
        let message = super::broadcast::message(origin, &batch);
        if !l2
            .invalidate("replay", &batch, channel, &message, Mode::Probe)
            .await
        {
            return;
        }
        pending.done(&batch);
        tracing::info!(keys = batch.len(), "replayed cache invalidations");
    }
}

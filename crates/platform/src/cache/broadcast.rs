//! Cross-replica L1 invalidation over Redis pub/sub.
//!
//! Every write's invalidation is published on `<prefix>:invalidations` as the origin and
//! the keys, one per line (keys never hold a newline); every replica listens and drops the
//! keys from its in-process level.
//! A replica that (re)subscribes clears its whole L1, because it may have missed messages
//! while it was not listening.
//!
//! A connection that is open but silent (Redis stopped, a network partition) is caught by
//! heartbeats: every replica publishes its origin alone a few times a second and expects
//! to hear itself. While it has not for a while, the channel is unhealthy: the replica's
//! L1 is not trusted (reads go to Redis or the database), and when it hears itself again
//! it starts a new L1 epoch: what L1 held before is no longer fresh (it is reloaded), but
//! stays at hand as the fail-safe fallback when the database fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::L1;

/// Wait between attempts to (re)subscribe.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);
/// How often a replica publishes its heartbeat.
const HEARTBEAT_PERIOD: Duration = Duration::from_millis(200);
/// Without hearing its own heartbeat this long, a replica stops trusting its L1.
pub(crate) const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(750);

/// When this replica last heard itself on the channel, as milliseconds since `start`,
/// and the L1 epoch: bumped whenever invalidations may have been missed.
pub(crate) struct ChannelHealth {
    start: Instant,
    /// 0: never heard.
    last_heard_ms: AtomicU64,
    /// Kept by the listener, so the read path checks a flag rather than the clock.
    healthy: AtomicBool,
    epoch: AtomicU64,
}

impl ChannelHealth {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            last_heard_ms: AtomicU64::new(0),
            healthy: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Starts a new L1 epoch: every slot loaded before is no longer fresh.
    fn new_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn now_ms(&self) -> u64 {
        // +1 keeps 0 free for "never heard".
        self.start.elapsed().as_millis() as u64 + 1
    }

    /// Whether invalidations are reaching this replica.
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Whether this replica's own heartbeat is overdue.
    fn overdue(&self) -> bool {
        let heard = self.last_heard_ms.load(Ordering::Relaxed);
        heard == 0 || self.now_ms().saturating_sub(heard) >= HEARTBEAT_TIMEOUT.as_millis() as u64
    }

    /// Records a heartbeat; true if the channel was unhealthy until now.
    fn heard(&self) -> bool {
        self.last_heard_ms.store(self.now_ms(), Ordering::Relaxed);
        !self.healthy.swap(true, Ordering::AcqRel)
    }

    fn lost(&self) {
        self.healthy.store(false, Ordering::Release);
        self.last_heard_ms.store(0, Ordering::Relaxed);
    }
}

pub(crate) fn channel(prefix: &str) -> String {
    format!("{prefix}:invalidations")
}

pub(crate) fn message(origin: &str, keys: &[String]) -> String {
    let mut message = String::from(origin);
    for key in keys {
        message.push('\n');
        message.push_str(key);
    }
    message
}

/// The keys of a message from another replica; none for our own echo or a malformed one.
fn foreign_keys<'a>(payload: &'a str, origin: &str) -> Vec<&'a str> {
    let mut lines = payload.split('\n');
    match lines.next() {
        Some(from) if from != origin => lines.filter(|key| !key.is_empty()).collect(),
        _ => Vec::new(),
    }
}

/// Whether `payload` is this replica's own heartbeat.
fn is_own_heartbeat(payload: &str, origin: &str) -> bool {
    payload == origin
}

/// Publishes this replica's heartbeat until `stop`.
pub(crate) fn spawn_heartbeat(
    l2: super::RedisL2,
    channel: String,
    origin: String,
    stop: CancellationToken,
) {
    super::spawn_periodic(HEARTBEAT_PERIOD, stop, move || {
        let (l2, channel, origin) = (l2.clone(), channel.clone(), origin.clone());
        async move { l2.publish("heartbeat", &channel, &origin).await }
    });
}

/// Listens until `stop` is cancelled, resubscribing after every disconnect.
pub(crate) fn spawn_listener(
    client: redis::Client,
    channel: String,
    origin: String,
    l1: L1,
    health: Arc<ChannelHealth>,
    stop: CancellationToken,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no async runtime: cross-replica cache invalidation is off");
        return;
    };
    runtime.spawn(async move {
        loop {
            let subscribed = tokio::select! {
                () = stop.cancelled() => return,
                subscribed = subscribe(&client, &channel) => subscribed,
            };
            match subscribed {
                Ok(pubsub) => {
                    // Anything cached before now may have missed its invalidation.
                    health.new_epoch();
                    let mut messages = pubsub.into_on_message();
                    loop {
                        let next = tokio::select! {
                            () = stop.cancelled() => return,
                            next = tokio::time::timeout(HEARTBEAT_TIMEOUT, messages.next()) => next,
                        };
                        let next = match next {
                            Ok(next) => next,
                            // Silent: the replica's L1 is untrusted until it hears itself.
                            Err(_) => {
                                health.lost();
                                continue;
                            }
                        };
                        let Some(msg) = next else { break };
                        // Other replicas' messages keep arriving even if our own stop.
                        if health.overdue() {
                            health.lost();
                        }
                        let payload = String::from_utf8_lossy(msg.get_payload_bytes());
                        if is_own_heartbeat(&payload, &origin) {
                            if health.heard() {
                                // Whatever L1 holds may have missed an invalidation.
                                health.new_epoch();
                                tracing::info!("cache invalidation channel healthy");
                            }
                            continue;
                        }
                        for key in foreign_keys(&payload, &origin) {
                            super::remove_from_l1(&l1, key).await;
                        }
                    }
                    health.lost();
                    tracing::warn!("cache invalidation channel lost, resubscribing");
                }
                Err(error) => tracing::debug!(%error, "cannot subscribe to cache invalidations"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            }
        }
    });
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_from_other_replicas_name_their_keys() {
        let keys = vec![
            "agentic:user:user:t:1".to_owned(),
            "agentic:user:user:t:2".to_owned(),
        ];
        let payload = message("a1", &keys);
        assert_eq!(
            foreign_keys(&payload, "b2"),
            ["agentic:user:user:t:1", "agentic:user:user:t:2"]
        );
        assert!(
            foreign_keys(&payload, "a1").is_empty(),
            "our own echo is ignored"
        );
        assert!(foreign_keys("garbage", "b2").is_empty());
    }
}

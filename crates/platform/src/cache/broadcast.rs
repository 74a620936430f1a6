//! Cross-replica L1 invalidation over Redis pub/sub.
//!
//! Every write's invalidation is published on `<prefix>:invalidations` as the origin and
//! the keys, one per line (keys never hold a newline); every replica listens and drops the
//! keys from its in-process level.
//! A replica that (re)subscribes clears its whole L1, because it may have missed messages
//! while it was not listening. With Redis down, replicas fall back on TTLs.

use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::L1;

/// Wait between attempts to (re)subscribe.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

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

/// Listens until `stop` is cancelled, resubscribing after every disconnect.
pub(crate) fn spawn_listener(
    client: redis::Client,
    channel: String,
    origin: String,
    l1: L1,
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
                    l1.invalidate_all();
                    let mut messages = pubsub.into_on_message();
                    loop {
                        let next = tokio::select! {
                            () = stop.cancelled() => return,
                            next = messages.next() => next,
                        };
                        let Some(msg) = next else { break };
                        let payload = String::from_utf8_lossy(msg.get_payload_bytes());
                        for key in foreign_keys(&payload, &origin) {
                            super::remove_from_l1(&l1, key).await;
                        }
                    }
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

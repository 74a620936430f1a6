//! The shared Redis level. Fail-open: every call is bounded by a timeout, and after a
//! failure Redis is skipped for a short while instead of slowing every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long Redis is skipped after a failure.
const BACKOFF: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct RedisL2 {
    client: redis::Client,
    timeout: Duration,
    conn: Arc<tokio::sync::Mutex<Option<ConnectionManager>>>,
    /// Unix milliseconds until which Redis is considered down.
    down_until: Arc<AtomicU64>,
}

impl RedisL2 {
    /// Validates the URL; connects lazily on first use.
    pub fn new(url: &str, timeout: Duration) -> redis::RedisResult<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            timeout,
            conn: Arc::new(tokio::sync::Mutex::new(None)),
            down_until: Arc::new(AtomicU64::new(0)),
        })
    }

    pub(crate) async fn get(&self, kind: &'static str, key: &str) -> Option<Bytes> {
        let mut conn = self.connection(kind).await?;
        let reply: Option<Vec<u8>> = self.bounded(kind, conn.get(key)).await.flatten()?;
        let found = reply.map(Bytes::from);
        super::record_kind(kind, "l2", if found.is_some() { "hit" } else { "miss" });
        found
    }

    pub(crate) async fn set(&self, kind: &'static str, key: &str, value: &[u8], ttl: Duration) {
        let Some(mut conn) = self.connection(kind).await else {
            return;
        };
        let millis = ttl.as_millis().max(1) as u64;
        let _: Option<()> = self
            .bounded(kind, conn.pset_ex(key, value, millis))
            .await
            .flatten();
    }

    /// Deletes `keys` with one DEL.
    pub(crate) async fn delete(&self, kind: &'static str, keys: &[String]) {
        let Some(mut conn) = self.connection(kind).await else {
            tracing::warn!(
                kind,
                "could not invalidate redis entries: redis unavailable"
            );
            return;
        };
        let _: Option<()> = self.bounded(kind, conn.del(keys)).await.flatten();
    }

    /// Tells the other replicas that `message`'s key changed.
    pub(crate) async fn publish(&self, kind: &'static str, channel: &str, message: &str) {
        let Some(mut conn) = self.connection(kind).await else {
            return;
        };
        let _: Option<()> = self
            .bounded(kind, conn.publish(channel, message))
            .await
            .flatten();
    }

    pub(crate) fn client(&self) -> redis::Client {
        self.client.clone()
    }

    /// A connection, unless Redis failed within the backoff window.
    async fn connection(&self, kind: &'static str) -> Option<ConnectionManager> {
        if now_millis() < self.down_until.load(Ordering::Relaxed) {
            super::record_kind(kind, "l2", "skipped");
            return None;
        }
        let mut held = self.conn.lock().await;
        if let Some(conn) = held.as_ref() {
            return Some(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        match tokio::time::timeout(
            self.timeout,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(conn)) => {
                tracing::info!("connected to redis");
                *held = Some(conn.clone());
                Some(conn)
            }
            Ok(Err(error)) => {
                self.mark_down(kind, &error.to_string());
                None
            }
            Err(_) => {
                self.mark_down(kind, "connect timed out");
                None
            }
        }
    }

    /// Runs one Redis command within the timeout; errors mark Redis down and yield `None`.
    async fn bounded<T>(
        &self,
        kind: &'static str,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Option<Option<T>> {
        match tokio::time::timeout(self.timeout, command).await {
            Ok(Ok(value)) => Some(Some(value)),
            Ok(Err(error)) => {
                self.mark_down(kind, &error.to_string());
                None
            }
            Err(_) => {
                self.mark_down(kind, "command timed out");
                None
            }
        }
    }

    fn mark_down(&self, kind: &'static str, cause: &str) {
        super::record_kind(kind, "l2", "error");
        let previous = self
            .down_until
            .swap(now_millis() + BACKOFF.as_millis() as u64, Ordering::Relaxed);
        if previous < now_millis() {
            tracing::warn!(%cause, "redis unavailable, caching in-process only for now");
        }
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

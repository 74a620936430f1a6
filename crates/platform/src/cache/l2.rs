//! The shared Redis level. Fail-open: every call is bounded by a timeout, and after a
//! failure Redis is skipped for a short while instead of slowing every request.
//!
//! Every entry has a version key beside it (`<key>#v`), bumped by each invalidation. A
//! loader reads the version with the (missing) value, and writes its result back only if
//! the version is unchanged, so a load that read the old row before a write cannot store
//! it after the write's invalidation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// How long Redis is skipped after a failure.
const BACKOFF: Duration = Duration::from_secs(1);
/// How long a version key outlives its last bump: longer than any load may take.
const VERSION_TTL: Duration = Duration::from_secs(3600);

/// Deletes each value, bumps its version and tells the other replicas, atomically.
/// KEYS: value key, version key, value key, version key, …
/// ARGV: version TTL (ms), channel, message.
const INVALIDATE: &str = r"
for i = 1, #KEYS, 2 do
  redis.call('DEL', KEYS[i])
  redis.call('INCR', KEYS[i + 1])
  redis.call('PEXPIRE', KEYS[i + 1], ARGV[1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

/// Stores a value only if its version is still the one the loader saw ('' for none).
/// KEYS: value key, version key. ARGV: expected version, value, TTL (ms).
const SET_IF_VERSION: &str = r"
if (redis.call('GET', KEYS[2]) or '') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Whether a call serves a request (skips Redis during the backoff after a failure) or
/// probes from the background (heartbeats, replays: they find out when Redis is back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Request,
    Probe,
}

/// The version of an entry as a loader saw it: '' when it was never invalidated.
pub(crate) type Version = String;

fn version_key(key: &str) -> String {
    format!("{key}#v")
}

/// The Redis level: every operation bounded by `REDIS_TIMEOUT`, failing open.
#[derive(Clone)]
pub struct RedisL2 {
    client: redis::Client,
    timeout: Duration,
    conn: Arc<tokio::sync::Mutex<Option<ConnectionManager>>>,
    /// Unix milliseconds until which Redis is considered down.
    down_until: Arc<AtomicU64>,
    invalidate: Arc<redis::Script>,
    set_if_version: Arc<redis::Script>,
}

impl RedisL2 {
    /// Validates the URL; connects lazily on first use.
    pub fn new(url: &str, timeout: Duration) -> redis::RedisResult<Self> {
        Ok(Self {
            client: crate::redis_client::open(url)?,
            timeout,
            conn: Arc::new(tokio::sync::Mutex::new(None)),
            down_until: Arc::new(AtomicU64::new(0)),
            invalidate: Arc::new(redis::Script::new(INVALIDATE)),
            set_if_version: Arc::new(redis::Script::new(SET_IF_VERSION)),
        })
    }

    /// The value of `key` and, when it is missing, the version a write-back must match;
    /// `None` when Redis does not answer (then nothing may be written back).
    pub(crate) async fn get(
        &self,
        kind: &'static str,
        key: &str,
    ) -> Option<(Option<Bytes>, Version)> {
        let mut conn = self.connection(kind).await?;
        let keys = [key.to_owned(), version_key(key)];
        let (value, version): (Option<Vec<u8>>, Option<String>) =
            self.bounded(kind, conn.mget(&keys)).await.flatten()?;
        let found = value.map(Bytes::from);
        super::metrics::record_kind(kind, "l2", if found.is_some() { "hit" } else { "miss" });
        Some((found, version.unwrap_or_default()))
    }

    /// The values of `keys` in one MGET; `None` when Redis does not answer.
    pub(crate) async fn get_many(
        &self,
        kind: &'static str,
        keys: &[String],
    ) -> Option<Vec<Option<Bytes>>> {
        let mut conn = self.connection(kind).await?;
        let values: Vec<Option<Vec<u8>>> = self
            .bounded(kind, redis::cmd("MGET").arg(keys).query_async(&mut conn))
            .await
            .flatten()?;
        let found = values.iter().filter(|v| v.is_some()).count();
        super::metrics::record_many(kind, "l2", "hit", found as u64);
        super::metrics::record_many(kind, "l2", "miss", (values.len() - found) as u64);
        Some(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    /// Stores every entry for `ttl`, in one pipelined round trip.
    pub(crate) async fn set_many(
        &self,
        kind: &'static str,
        entries: &[(String, Bytes)],
        ttl: Duration,
    ) {
        let Some(mut conn) = self.connection(kind).await else {
            return;
        };
        let millis = ttl.as_millis().max(1) as u64;
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.cmd("SET")
                .arg(key)
                .arg(value.as_ref())
                .arg("PX")
                .arg(millis)
                .ignore();
        }
        let _: Option<Option<()>> = self.bounded(kind, pipe.query_async(&mut conn)).await;
    }

    /// Stores `value` unless an invalidation bumped the entry's version since `seen`.
    pub(crate) async fn set_if_version(
        &self,
        kind: &'static str,
        key: &str,
        seen: &str,
        value: &[u8],
        ttl: Duration,
    ) {
        let Some(mut conn) = self.connection(kind).await else {
            return;
        };
        let millis = ttl.as_millis().max(1) as u64;
        let mut invocation = self.set_if_version.key(key);
        invocation
            .key(version_key(key))
            .arg(seen)
            .arg(value)
            .arg(millis);
        let stored: Option<i64> = self
            .bounded(kind, invocation.invoke_async(&mut conn))
            .await
            .flatten();
        if stored == Some(0) {
            super::metrics::record_kind(kind, "l2", "stale_write_refused");
        }
    }

    /// Deletes `keys`, bumps their versions and publishes `message` on `channel`, in one
    /// round trip. False when Redis did not take it: the caller must try again later.
    pub(crate) async fn invalidate(
        &self,
        kind: &'static str,
        keys: &[String],
        channel: &str,
        message: &str,
        mode: Mode,
    ) -> bool {
        let Some(mut conn) = self.connection_for(kind, mode).await else {
            return false;
        };
        let mut invocation = self.invalidate.prepare_invoke();
        for key in keys {
            invocation.key(key).key(version_key(key));
        }
        invocation
            .arg(VERSION_TTL.as_millis() as u64)
            .arg(channel)
            .arg(message);
        let done: Option<i64> = self
            .bounded(kind, invocation.invoke_async(&mut conn))
            .await
            .flatten();
        done.is_some()
    }

    /// Publishes `message` on `channel` (heartbeats, which probe).
    pub(crate) async fn publish(&self, kind: &'static str, channel: &str, message: &str) {
        let Some(mut conn) = self.connection_for(kind, Mode::Probe).await else {
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
        self.connection_for(kind, Mode::Request).await
    }

    async fn connection_for(&self, kind: &'static str, mode: Mode) -> Option<ConnectionManager> {
        if mode == Mode::Request && now_millis() < self.down_until.load(Ordering::Relaxed) {
            super::metrics::record_kind(kind, "l2", "skipped");
            return None;
        }
        let mut held = self.conn.lock().await;
        if let Some(conn) = held.as_ref() {
            return Some(conn.clone());
        }
        match tokio::time::timeout(
            self.timeout,
            crate::redis_client::manager(&self.client, self.timeout),
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
            Ok(Ok(value)) => {
                // Redis answers again: requests stop skipping it at once.
                if self.down_until.load(Ordering::Relaxed) != 0 {
                    self.down_until.store(0, Ordering::Relaxed);
                }
                Some(Some(value))
            }
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
        super::metrics::record_kind(kind, "l2", "error");
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

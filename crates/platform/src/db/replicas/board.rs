//! Where writes announce their WAL position, per scope (a tenant), so that every replica
//! of every service reads that scope only from a database that has replayed the write:
//! one Redis key per scope holding the highest position announced, which expires once
//! every replica must have passed it.
//!
//! Fail-safe rather than fail-open: when Redis does not answer, a lookup says so and the
//! read goes to the primary; after a failure Redis is skipped for a moment instead of
//! slowing every read by its timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::lsn::Lsn;

/// How long Redis is skipped after a failure.
const BACKOFF: Duration = Duration::from_secs(1);

/// Raises the scope's position to ARGV[1] unless it is higher already, and keeps it for
/// ARGV[2] ms. Positions are fixed-width hexadecimal, so string order is position order.
const RAISE: &str = r"
local held = redis.call('GET', KEYS[1])
if (not held) or held < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
";

/// The scopes' announced positions of one service's database, in Redis.
pub(crate) struct LsnBoard {
    client: redis::Client,
    /// `<cache prefix>lsn:<pool>:`; the tenant id follows.
    prefix: String,
    timeout: Duration,
    /// How long an announcement is kept: longer than any replica may lag unquarantined.
    keep: Duration,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    /// Unix milliseconds until which Redis is skipped.
    down_until: AtomicU64,
    raise: redis::Script,
}

impl LsnBoard {
    /// Validates the URL; connects on first use.
    pub(crate) fn new(
        url: &str,
        prefix: String,
        timeout: Duration,
        keep: Duration,
    ) -> redis::RedisResult<Self> {
        Ok(Self {
            client: crate::redis_client::open(url)?,
            prefix,
            timeout,
            keep,
            conn: tokio::sync::Mutex::new(None),
            down_until: AtomicU64::new(0),
            raise: redis::Script::new(RAISE),
        })
    }

    fn key(&self, scope: Uuid) -> String {
        format!("{}{}", self.prefix, scope.simple())
    }

    /// Records that `scope` has a write at `lsn`; false when Redis did not take it.
    pub(crate) async fn announce(&self, scope: Uuid, lsn: Lsn) -> bool {
        let Some(mut conn) = self.connection().await else {
            return false;
        };
        let mut invocation = self.raise.key(self.key(scope));
        invocation
            .arg(lsn.sortable())
            .arg(self.keep.as_millis() as u64);
        self.bounded(invocation.invoke_async::<i64>(&mut conn))
            .await
            .is_some()
    }

    /// The highest position announced for `scope` (`Lsn(0)` for none); `None` when Redis
    /// does not answer, so nothing is known.
    pub(crate) async fn lookup(&self, scope: Uuid) -> Option<Lsn> {
        let mut conn = self.connection().await?;
        let held: Option<String> = self
            .bounded(
                redis::cmd("GET")
                    .arg(self.key(scope))
                    .query_async(&mut conn),
            )
            .await?;
        Some(
            held.and_then(|text| Lsn::from_sortable(&text))
                .unwrap_or_default(),
        )
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        if now_millis() < self.down_until.load(Ordering::Relaxed) {
            return None;
        }
        let mut held = self.conn.lock().await;
        if let Some(conn) = held.as_ref() {
            return Some(conn.clone());
        }
        let connected = tokio::time::timeout(
            self.timeout,
            crate::redis_client::manager(&self.client, self.timeout),
        )
        .await;
        match connected {
            Ok(Ok(conn)) => {
                *held = Some(conn.clone());
                Some(conn)
            }
            _ => {
                self.mark_down();
                None
            }
        }
    }

    async fn bounded<T>(&self, command: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(self.timeout, command).await {
            Ok(Ok(value)) => Some(value),
            _ => {
                self.mark_down();
                None
            }
        }
    }

    fn mark_down(&self) {
        metrics::counter!("db_replica_board_errors_total").increment(1);
        self.down_until
            .store(now_millis() + BACKOFF.as_millis() as u64, Ordering::Relaxed);
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

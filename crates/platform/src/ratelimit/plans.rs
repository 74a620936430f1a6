//! Tenants' plans: rules a platform operator sets for one tenant at run time (the user
//! service's `SetTenantRateLimits`), applied by every replica of every service within
//! seconds, without a restart.
//!
//! The user service keeps plans in its database and announces them in Redis: a hash of
//! tenant id → rules (JSON) and a version number bumped by every change. Every replica
//! reads the version every `RATE_LIMIT_PLAN_REFRESH` and the hash when it moved.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Table;
use super::rules::RuleSpec;
use super::store::Store;

/// A tenant's rules, per method.
pub(crate) struct Plan {
    pub(crate) table: Table,
}

/// The plans a replica applies.
pub(crate) struct Plans {
    current: RwLock<Arc<HashMap<Uuid, Arc<Plan>>>>,
    /// Whether any tenant has a plan: while none has, calls take no lock.
    any: AtomicBool,
    refresh: Duration,
}

/// Longest wait for Redis when reading plans (off the request path).
const READ_TIMEOUT: Duration = Duration::from_secs(1);

fn hash_key(prefix: &str) -> String {
    format!("{prefix}:rl:plans")
}

fn version_key(prefix: &str) -> String {
    format!("{prefix}:rl:plans:version")
}

impl Plans {
    pub(crate) fn new(refresh: Duration) -> Self {
        Self {
            current: RwLock::default(),
            any: AtomicBool::new(false),
            refresh: refresh.max(Duration::from_millis(100)),
        }
    }

    /// `tenant`'s plan, if it has one.
    pub(crate) fn of(&self, tenant: Uuid) -> Option<Arc<Plan>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current.get(&tenant).cloned()
    }

    /// Reads the announced plans whenever their version moves, until `stop`.
    pub(crate) async fn follow(
        &self,
        store: &Store,
        stop: CancellationToken,
        compile: impl Fn(&[RuleSpec]) -> Option<Plan>,
    ) {
        let mut seen: Option<i64> = None;
        let mut ticks = tokio::time::interval(self.refresh);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let Some(version) = store
                .read(READ_TIMEOUT, |mut conn, prefix| async move {
                    conn.get::<_, Option<i64>>(version_key(&prefix)).await
                })
                .await
            else {
                continue;
            };
            if Some(version.unwrap_or(0)) == seen {
                continue;
            }
            let Some(all) = store
                .read(READ_TIMEOUT, |mut conn, prefix| async move {
                    conn.hgetall::<_, HashMap<String, String>>(hash_key(&prefix))
                        .await
                })
                .await
            else {
                continue;
            };
            let mut plans = HashMap::with_capacity(all.len());
            for (tenant, rules) in all {
                let (Ok(tenant), Ok(specs)) = (
                    Uuid::try_parse(&tenant),
                    serde_json::from_str::<Vec<RuleSpec>>(&rules),
                ) else {
                    tracing::warn!(%tenant, "an announced plan does not parse; ignored");
                    continue;
                };
                if let Some(plan) = compile(&specs) {
                    plans.insert(tenant, Arc::new(plan));
                }
            }
            tracing::info!(plans = plans.len(), "tenant rate limit plans applied");
            let any = !plans.is_empty();
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(plans);
            self.any.store(any, Ordering::Release);
            seen = Some(version.unwrap_or(0));
        }
    }
}

/// Announces plans to every replica (the user service, which stores them).
#[derive(Clone)]
pub struct Announcer {
    client: redis::Client,
    prefix: String,
    /// One connection, kept: the user service checks Redis every few seconds.
    conn: Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
}

impl Announcer {
    /// Announces through the Redis at `url`, under the key prefix `prefix`.
    pub fn new(url: &str, prefix: &str) -> redis::RedisResult<Self> {
        Ok(Self {
            client: crate::redis_client::open(url)?,
            prefix: prefix.to_owned(),
            conn: Arc::default(),
        })
    }

    /// Announces `tenant`'s rules; none removes its plan.
    pub async fn announce(&self, tenant: Uuid, rules: &[RuleSpec]) -> redis::RedisResult<()> {
        let mut conn = self.connect().await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        if rules.is_empty() {
            pipe.hdel(hash_key(&self.prefix), tenant.to_string());
        } else {
            let json = serde_json::to_string(rules).unwrap_or_default();
            pipe.hset(hash_key(&self.prefix), tenant.to_string(), json);
        }
        pipe.incr(version_key(&self.prefix), 1);
        self.checked(bounded(pipe.query_async::<()>(&mut conn)).await)
            .await
    }

    /// Replaces every announced plan with `plans` (at start: the database is the truth).
    pub async fn announce_all(&self, plans: &[(Uuid, Vec<RuleSpec>)]) -> redis::RedisResult<()> {
        let mut conn = self.connect().await?;
        let mut pipe = redis::pipe();
        pipe.atomic().del(hash_key(&self.prefix));
        for (tenant, rules) in plans {
            let json = serde_json::to_string(rules).unwrap_or_default();
            pipe.hset(hash_key(&self.prefix), tenant.to_string(), json);
        }
        pipe.incr(version_key(&self.prefix), 1);
        self.checked(bounded(pipe.query_async::<()>(&mut conn)).await)
            .await
    }

    /// Whether Redis holds announced plans at all (false after it lost its data): then
    /// every stored plan must be announced again.
    pub async fn holds_plans(&self) -> redis::RedisResult<bool> {
        let mut conn = self.connect().await?;
        self.checked(bounded(conn.exists(version_key(&self.prefix))).await)
            .await
    }

    /// The kept connection, opened when there is none (or the last one failed).
    async fn connect(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let mut held = self.conn.lock().await;
        if let Some(conn) = held.as_ref() {
            return Ok(conn.clone());
        }
        let conn = bounded(self.client.get_multiplexed_async_connection()).await?;
        *held = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the kept connection after `result` failed, so the next call opens another.
    async fn checked<T>(&self, result: redis::RedisResult<T>) -> redis::RedisResult<T> {
        if result.is_err() {
            *self.conn.lock().await = None;
        }
        result
    }
}

async fn bounded<T>(command: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    tokio::time::timeout(READ_TIMEOUT, command)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "redis did not answer in time",
            )))
        })
}

//! Cache-aside in two levels: an in-process L1 (moka) in front of a shared Redis L2.
//!
//! Values are protobuf bytes. Reads go L1 → L2 → loader (the database). What this gives:
//!
//! - **TTL with jitter** per kind, so entries written together do not expire together;
//! - **single-flight**: loads of one key are serialised through moka's per-key compute,
//!   so a herd of concurrent misses makes one database query;
//! - **negative caching**: "not found" is cached briefly;
//! - **fail-safe**: an expired value is kept for `CACHE_STALE_TTL` and served if the
//!   loader fails;
//! - **fail-open**: Redis errors and timeouts are counted and skipped, never returned;
//! - **invalidation on write**, serialised behind any in-flight load of the same key so a
//!   load that read the old row cannot re-insert it afterwards, and broadcast to the other
//!   replicas' L1 through Redis pub/sub;
//! - **versioned write-back**: a load stores its result in Redis only if no invalidation
//!   bumped the entry's version since the load began;
//! - **auto-recovery**: invalidations Redis did not take are replayed when it answers, and
//!   until then this replica keeps those keys away from Redis;
//! - **a trusted L1 only while invalidations arrive**: heartbeats on the channel tell a
//!   replica when it may be missing invalidations; it then reads past its L1, and when it
//!   hears itself again starts a new L1 epoch (older entries are reloaded, and kept only
//!   as fail-safe copies);
//! - **strong reads** (`x-read-consistency: strong`) skip both levels;
//! - **scope-wide invalidation in O(1)**: kinds declared in a namespace carry the
//!   namespace's generation for the key's scope (a tenant, a collection) in their keys;
//!   bumping it orphans every entry of the scope at once, with no KEYS or SCAN (see
//!   `generation.rs`).

//!
//! This file is the façade ([`Cache`]); `kind.rs` holds the vocabulary (kinds, keys,
//! TTLs), `read.rs` the read and fill protocol, `metrics.rs` the counters, and the other
//! files one mechanism each (Redis, pub/sub, generations, recovery, batch reads).

mod broadcast;
mod generation;
pub mod kind;
mod l2;
mod many;
mod metrics;
mod read;
mod recovery;
mod slot;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache as MokaCache;
use moka::ops::compute::Op;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use kind::{CacheKey, CacheKind, KindSpec, ScopedKey};
pub use l2::RedisL2;
pub use slot::CachedMessage;
use slot::{Slot, SlotExpiry};

use self::metrics::record;
use self::read::EntryName;
use crate::config::CacheArgs;
use crate::error::Result;

/// The two-level cache of one service; cheap to clone. See the module's doc.
#[derive(Clone)]
pub struct Cache {
    inner: Option<Arc<Inner>>,
    args: Arc<CacheArgs>,
}

/// The in-process level: full key → slot.
/// Keys are hashed with foldhash, seeded per process: several times faster than SipHash
/// on keys this long, on every read.
type L1 = MokaCache<String, Arc<Slot>, foldhash::fast::RandomState>;

struct Inner {
    l1: L1,
    l2: Option<RedisL2>,
    prefix: String,
    negative_ttl: Duration,
    stale_ttl: Duration,
    /// This replica's id in invalidation messages, and the channel they travel on.
    origin: String,
    channel: String,
    /// Whether invalidations reach this replica (always, without Redis).
    health: Option<Arc<broadcast::ChannelHealth>>,
    /// Invalidations Redis has not taken yet.
    pending: Arc<recovery::Pending>,
    /// Stops the invalidation listener when the cache goes away.
    _listener: DropGuard,
}

impl Cache {
    /// A cache for one service; `namespace` (the service name) keeps services' keys apart.
    /// Disabled by `CACHE_ENABLED=false`: every read then goes to the loader.
    pub fn new(args: &CacheArgs, namespace: &str) -> Self {
        let inner = args.cache_enabled.then(|| {
            let redis_url = args.redis_url.as_deref().filter(|url| !url.is_empty());
            let l2 = redis_url.and_then(|url| {
                RedisL2::new(url, Duration::from_millis(args.redis_timeout))
                    .inspect_err(|error| tracing::warn!(%error, "invalid REDIS_URL, cache is in-process only"))
                    .ok()
            });
            let l1: L1 = MokaCache::builder()
                .max_capacity(args.cache_l1_max_mb.max(1) * 1024 * 1024)
                .weigher(|key: &String, slot: &Arc<Slot>| slot::weight(key, slot))
                .expire_after(SlotExpiry)
                .build_with_hasher(foldhash::fast::RandomState::default());
            let prefix = format!("{}:{namespace}", args.cache_key_prefix);
            let origin = uuid::Uuid::new_v4().simple().to_string();
            let channel = broadcast::channel(&prefix);
            let listener = CancellationToken::new();
            let pending = Arc::new(recovery::Pending::default());
            let health = l2.as_ref().map(|l2| {
                let health = Arc::new(broadcast::ChannelHealth::new());
                broadcast::spawn_listener(
                    l2.client(),
                    channel.clone(),
                    origin.clone(),
                    l1.clone(),
                    health.clone(),
                    listener.clone(),
                );
                broadcast::spawn_heartbeat(
                    l2.clone(),
                    channel.clone(),
                    origin.clone(),
                    listener.clone(),
                );
                recovery::spawn_replay(
                    pending.clone(),
                    l2.clone(),
                    channel.clone(),
                    origin.clone(),
                    listener.clone(),
                );
                health
            });
            Arc::new(Inner {
                l1,
                l2,
                prefix,
                negative_ttl: Duration::from_secs(args.cache_negative_ttl),
                stale_ttl: Duration::from_secs(args.cache_stale_ttl),
                origin,
                channel,
                health,
                pending,
                _listener: listener.drop_guard(),
            })
        });
        Self {
            inner,
            args: Arc::new(args.clone()),
        }
    }

    /// The declared kind `spec` with its TTL from configuration.
    pub fn kind(&self, spec: &KindSpec) -> CacheKind {
        let name = spec.name;
        let mut ttl = spec.fresh_for(&self.args);
        if spec.namespace.is_some() && ttl > generation::MAX_TTL {
            // A generation is forgotten after this long; entries must not outlive it.
            tracing::warn!(
                kind = name,
                "TTL capped at {:?} for a kind in a namespace",
                generation::MAX_TTL
            );
            ttl = generation::MAX_TTL;
        }
        CacheKind {
            name,
            ttl,
            namespace: spec.namespace,
            l1_hits: self::metrics::register_kind(name),
        }
    }

    /// Returns the cached value of `key`, or loads, caches and returns it. The key is any
    /// [`CacheKey`] (such as [`ScopedKey`]), so the entry's name is built in one allocation.
    ///
    /// `load` returns `Ok(None)` for a missing value (cached briefly as absent). If it
    /// fails and an expired value is still held, that value is served instead.
    pub fn get_or_load<'a, M, F, Fut>(
        &'a self,
        kind: &'a CacheKind,
        key: impl CacheKey,
        load: F,
    ) -> impl Future<Output = Result<Option<M>>> + 'a
    where
        M: CachedMessage,
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = Result<Option<M>>> + 'a,
    {
        // Formatted now: the future holds one String, not the caller's key.
        let name = self.inner.as_ref().map(|inner| match kind.scope(&key) {
            Some(namespace) => EntryName::InGeneration(namespace, key.to_string()),
            None => EntryName::Full(inner.full_key(kind, key)),
        });
        async move {
            // The loader is boxed wherever it runs, so its state is no part of a hit's.
            let (Some(inner), Some(name)) = (&self.inner, name) else {
                return Box::pin(load()).await;
            };
            // Before naming the entry: a strong read needs no generation either.
            if crate::request::is_strong() {
                record(kind, "strong", "bypass");
                return Box::pin(load()).await;
            }
            let full_key = match name {
                // Without a known generation the entry cannot be named: read through.
                EntryName::InGeneration(namespace, key) => inner
                    .generation(&namespace, kind.ttl)
                    .await
                    .map(|generation| inner.generation_key(kind, generation, &key)),
                EntryName::Full(full_key) => Some(full_key),
            };
            match full_key {
                Some(full_key) => inner.get_or_load_entry(kind, full_key, load).await,
                None => Box::pin(load()).await,
            }
        }
    }

    /// Drops entries from both levels and from the other replicas' L1; call after every
    /// write, with every key the write changed. Duplicates are dropped once, and Redis
    /// sees one DEL and one PUBLISH however many keys there are.
    pub async fn invalidate<K: CacheKey>(&self, entries: &[(&CacheKind, K)]) {
        let Some(inner) = &self.inner else { return };
        let Some((first_kind, _)) = entries.first() else {
            return;
        };
        let mut full_keys = Vec::with_capacity(entries.len());
        for (kind, key) in entries {
            match kind.scope(key) {
                Some(namespace) => {
                    inner
                        .generation_keys(kind, &namespace, key, &mut full_keys)
                        .await
                }
                None => full_keys.push(inner.full_key(kind, key)),
            }
        }
        inner.invalidate_keys(first_kind.name, full_keys).await;
    }

    /// Drops every entry of `scope` in `namespace` (every kind declared in it), on every
    /// replica, in O(1): the namespace's generation for the scope moves on, so no old
    /// entry is named again. For writes that change many rows at once.
    pub async fn invalidate_scope(&self, namespace: &'static str, scope: uuid::Uuid) {
        let Some(inner) = &self.inner else { return };
        let key = inner.namespace_key(&generation::Namespace::new(namespace, scope));
        inner.invalidate_keys("generation", vec![key]).await;
    }
}

impl Inner {
    /// Drops `full_keys` from L1 (after any in-flight load of each), then from Redis and
    /// the other replicas; what Redis does not take is replayed when it answers.
    async fn invalidate_keys(&self, kind: &'static str, mut full_keys: Vec<String>) {
        full_keys.sort_unstable();
        full_keys.dedup();
        for full_key in &full_keys {
            remove_from_l1(&self.l1, full_key).await;
        }
        if let Some(l2) = &self.l2 {
            let message = broadcast::message(&self.origin, &full_keys);
            let taken = l2
                .invalidate(kind, &full_keys, &self.channel, &message, l2::Mode::Request)
                .await;
            if !taken {
                tracing::warn!(
                    kind,
                    keys = full_keys.len(),
                    "redis did not take an invalidation; replaying it when it answers"
                );
                self.pending.add(&full_keys);
            }
        }
    }

    /// Whether L1 may answer: without Redis always; with it, only while this replica
    /// hears its own heartbeats (so it is not missing other replicas' invalidations).
    fn l1_trusted(&self) -> bool {
        self.health
            .as_ref()
            .is_none_or(|health| health.is_healthy())
    }

    /// The current L1 epoch (always 0 without Redis).
    fn l1_epoch(&self) -> u64 {
        self.health.as_ref().map_or(0, |health| health.epoch())
    }

    /// `<prefix>:<service>:<kind>:<key>`, the name of an entry in both levels.
    fn full_key(&self, kind: &CacheKind, key: impl std::fmt::Display) -> String {
        format!("{}:{}:{key}", self.prefix, kind.name)
    }
}

/// Runs `tick` every `period` on the current runtime until `stop`; a missed tick is not
/// made up. Without a runtime (a cache built outside one) nothing runs.
fn spawn_periodic<F, Fut>(period: Duration, stop: CancellationToken, mut tick: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => tick().await,
            }
        }
    });
}

/// Removes `key` from L1 after any in-flight load of it, which may have read the old row.
async fn remove_from_l1(l1: &L1, key: &str) {
    l1.entry(key.to_owned())
        .and_compute_with(|_| async { Op::Remove })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many large values are loaded, L1 holds at most `CACHE_L1_MAX_MB`.
    #[tokio::test]
    async fn the_in_process_level_is_bounded_by_bytes_not_entries() {
        let mut args = CacheArgs::with_redis(None);
        args.cache_l1_max_mb = 1;
        let cache = Cache::new(&args, "bounded");
        let kind = cache.kind(&KindSpec::new("blob"));
        for i in 0..64 {
            let loaded = cache
                .get_or_load(&kind, format!("k{i}"), || async {
                    // prost encodes a `Vec<u8>` as google.protobuf.BytesValue.
                    Ok(Some(vec![7u8; 64 * 1024]))
                })
                .await
                .expect("load");
            assert_eq!(loaded.map(|v: Vec<u8>| v.len()), Some(64 * 1024));
        }
        let l1 = &cache.inner.as_ref().expect("enabled").l1;
        l1.run_pending_tasks().await;
        assert!(
            l1.weighted_size() <= 1024 * 1024,
            "{} bytes held",
            l1.weighted_size()
        );
        assert!(l1.entry_count() < 64, "{} entries held", l1.entry_count());
        assert!(l1.entry_count() >= 8, "it still holds what fits");
    }
}

//! The read and fill protocol: how a named entry is answered from L1, else filled once
//! (however many callers miss it together) from Redis, else from the loader, with
//! fail-safe stale values and versioned write-back to Redis.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use moka::ops::compute::{CompResult, Op};
use tracing::Instrument;

use super::kind::CacheKind;
use super::metrics::record;
use super::slot::{CachedMessage, Slot};
use super::{Inner, generation};
use crate::error::{Error, Result};

/// How an entry is named: in full already, or within its namespace's generation, which
/// is known only once read.
pub(super) enum EntryName {
    Full(String),
    InGeneration(generation::Namespace, String),
}

impl Inner {
    /// The cached value of the entry `full_key`, loaded on a miss (the body of
    /// [`Cache::get_or_load`] once the entry has a name).
    pub(super) async fn get_or_load_entry<M, F, Fut>(
        &self,
        kind: &CacheKind,
        full_key: String,
        load: F,
    ) -> Result<Option<M>>
    where
        M: CachedMessage,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<M>>>,
    {
        let l1_trusted = self.l1_trusted();
        let epoch = self.l1_epoch();
        let span = lookup_span(kind);

        if l1_trusted
            && let Some(slot) = self.l1.get(&full_key).await
            && slot.is_fresh_in(epoch)
        {
            kind.record_l1_hits(1);
            span.record(LEVEL, "l1");
            return slot.decode();
        }
        // Boxed: the miss path nests moka's compute, Redis and the loader, and its state
        // would otherwise be part of (and copied with) every hit's future.
        Box::pin(
            self.load_entry(kind, full_key, l1_trusted, epoch, load)
                .instrument(span),
        )
        .await
    }

    /// The miss path of [`Inner::get_or_load_entry`]: fills the entry once, however many
    /// callers miss it at once.
    async fn load_entry<M, F, Fut>(
        &self,
        kind: &CacheKind,
        full_key: String,
        l1_trusted: bool,
        epoch: u64,
        load: F,
    ) -> Result<Option<M>>
    where
        M: CachedMessage,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<M>>>,
    {
        let entry = self
            .l1
            .entry(full_key.clone())
            .and_try_compute_with(|held| async {
                let held = held.map(|entry| entry.into_value());
                if l1_trusted
                    && let Some(slot) = &held
                    && slot.is_fresh_in(epoch)
                {
                    // Another caller loaded it while this one waited for the key.
                    kind.record_l1_hits(1);
                    tracing::Span::current().record(LEVEL, "l1");
                    return Ok(Op::Nop);
                }
                record(kind, "l1", "miss");
                self.fill(kind, &full_key, held.as_deref(), epoch, load)
                    .await
            })
            .await?;

        match entry {
            CompResult::Inserted(entry)
            | CompResult::ReplacedWith(entry)
            | CompResult::Unchanged(entry) => entry.value().decode(),
            CompResult::StillNone(_) | CompResult::Removed(_) => Ok(None),
        }
    }

    /// Fills a missing or expired L1 slot from L2, else from the loader.
    async fn fill<M, F, Fut>(
        &self,
        kind: &CacheKind,
        full_key: &str,
        stale: Option<&Slot>,
        epoch: u64,
        load: F,
    ) -> Result<Op<Arc<Slot>>>
    where
        M: CachedMessage,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<M>>>,
    {
        // A key whose invalidation Redis has not taken yet stays away from Redis.
        let l2 = self
            .l2
            .as_ref()
            .filter(|_| !self.pending.contains(full_key));
        // The version a write-back must match; unknown when Redis did not answer.
        let mut seen_version = None;
        if let Some(l2) = l2
            && let Some((value, version)) = l2.get(kind.name, full_key).await
        {
            if let Some(encoded) = value {
                if let Some(slot) =
                    Slot::from_l2(&encoded, kind.ttl, self.negative_ttl, self.stale_ttl)
                {
                    tracing::Span::current().record(LEVEL, "l2");
                    return Ok(Op::Put(Arc::new(slot.in_epoch(epoch))));
                }
                tracing::warn!(
                    kind = kind.name,
                    "undecodable cache entry in redis, reloading"
                );
            }
            seen_version = Some(version);
        }

        metrics::counter!("cache_loads_total", "kind" => kind.name).increment(1);
        super::metrics::record_misses(kind.name, 1);
        tracing::Span::current().record(LEVEL, "source");
        let loaded = match load().await {
            Ok(loaded) => loaded,
            Err(error) => {
                // Fail-safe: keep (and return) the expired slot when the store is failing.
                return if stale.is_some() && is_store_failure(&error) {
                    tracing::warn!(kind = kind.name, %error, "serving a stale cached value");
                    metrics::counter!("cache_stale_served_total", "kind" => kind.name).increment(1);
                    Ok(Op::Nop)
                } else {
                    Err(error)
                };
            }
        };

        let value: Option<Bytes> = loaded
            .as_ref()
            .map(|message| Bytes::from(message.encode_to_vec()));
        let mut slot =
            Slot::new(value, kind.ttl, self.negative_ttl, self.stale_ttl).in_epoch(epoch);
        if let Some(message) = loaded {
            slot = slot.with_decoded(message);
        }
        if let (Some(l2), Some(version)) = (l2, seen_version) {
            l2.set_if_version(
                kind.name,
                full_key,
                &version,
                &slot.to_l2(),
                slot.fresh_for(),
            )
            .await;
        }
        Ok(Op::Put(Arc::new(slot)))
    }
}

/// The lookup span's field naming the level that answered: `l1`, `l2`, or `source` (the
/// loader, whose database spans are the lookup's children).
const LEVEL: &str = "cache.level";

/// A span per lookup within a call, with the cache kind, where spans are exported.
fn lookup_span(kind: &CacheKind) -> tracing::Span {
    if !crate::telemetry::exporting() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "cache",
        otel.name = %format_args!("cache {}", kind.name),
        cache.kind = kind.name,
        cache.level = tracing::field::Empty,
    )
}

/// Failures of the store itself, as opposed to answers such as NOT_FOUND.
fn is_store_failure(error: &Error) -> bool {
    matches!(
        error,
        Error::Unavailable(_) | Error::DeadlineExceeded(_) | Error::Internal(_)
    )
}

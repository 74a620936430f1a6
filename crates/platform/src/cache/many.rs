//! Batches of content-addressed values (a key that names its content, such as an
//! embedding by model and text hash): they never change once computed, so they need no
//! invalidation, versions or epochs. A whole batch is looked up in L1, then the misses in
//! Redis with one MGET, and what was computed is stored with one pipelined round trip.

use std::sync::Arc;

use bytes::Bytes;

use super::metrics::{record_many, record_misses};
use super::slot::Slot;
use super::{Cache, CacheKind};

impl Cache {
    /// The cached value of each key (`None` for a miss). A disabled cache misses all.
    pub async fn get_many(&self, kind: &CacheKind, keys: &[String]) -> Vec<Option<Bytes>> {
        let Some(inner) = &self.inner else {
            return vec![None; keys.len()];
        };
        // One span for the batch, with how many keys each level answered, where spans
        // are exported.
        let span = if !crate::telemetry::exporting() {
            tracing::Span::none()
        } else {
            tracing::info_span!(
                "cache",
                otel.name = %format_args!("cache {} batch", kind.name),
                cache.kind = kind.name,
                cache.keys = keys.len(),
                cache.l1_hits = tracing::field::Empty,
                cache.l2_hits = tracing::field::Empty,
                cache.misses = tracing::field::Empty,
            )
        };
        let full_keys: Vec<String> = keys.iter().map(|key| inner.full_key(kind, key)).collect();
        let mut values = Vec::with_capacity(keys.len());
        for full_key in &full_keys {
            let hit = inner
                .l1
                .get(full_key)
                .await
                .filter(|slot| slot.is_fresh())
                .and_then(|slot| slot.value().cloned());
            values.push(hit);
        }
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| values[i].is_none()).collect();
        kind.record_l1_hits((keys.len() - missing.len()) as u64);
        span.record("cache.l1_hits", keys.len() - missing.len());
        record_many(kind.name, "l1", "miss", missing.len() as u64);
        if let (Some(l2), false) = (&inner.l2, missing.is_empty()) {
            let wanted: Vec<String> = missing.iter().map(|&i| full_keys[i].clone()).collect();
            if let Some(found) = l2.get_many(kind.name, &wanted).await {
                for (&i, value) in missing.iter().zip(found) {
                    if let Some(value) = value {
                        inner
                            .l1
                            .insert(
                                full_keys[i].clone(),
                                Arc::new(self.slot(kind, value.clone())),
                            )
                            .await;
                        values[i] = Some(value);
                    }
                }
            }
        }
        let misses = values.iter().filter(|v| v.is_none()).count();
        record_misses(kind.name, misses as u64);
        span.record("cache.l2_hits", missing.len() - misses);
        span.record("cache.misses", misses);
        values
    }

    /// Stores values computed for their keys, in both levels.
    pub async fn put_many(&self, kind: &CacheKind, entries: Vec<(String, Bytes)>) {
        let Some(inner) = &self.inner else { return };
        let entries: Vec<(String, Bytes)> = entries
            .into_iter()
            .map(|(key, value)| (inner.full_key(kind, key), value))
            .collect();
        for (full_key, value) in &entries {
            inner
                .l1
                .insert(full_key.clone(), Arc::new(self.slot(kind, value.clone())))
                .await;
        }
        if let Some(l2) = &inner.l2 {
            l2.set_many(kind.name, &entries, kind.ttl).await;
        }
    }

    fn slot(&self, kind: &CacheKind, value: Bytes) -> Slot {
        Slot::new(
            Some(value),
            kind.ttl,
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
        )
    }
}

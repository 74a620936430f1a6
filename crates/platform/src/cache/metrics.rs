//! The cache's counters: lookups by kind, layer and result (`cache_requests_total`), and
//! the seeds' names: `cache_hits_total{kind,layer}` (a lookup a level answered) and
//! `cache_misses_total{kind}` (a lookup that reached the source), so hits / (hits +
//! misses) is the hit rate per lookup.

use super::kind::CacheKind;

pub(super) fn record(kind: &CacheKind, layer: &'static str, result: &'static str) {
    record_kind(kind.name, layer, result);
}

/// Counts one cache lookup by kind, layer (l1, l2) and result (hit, miss, error, skipped).
pub(super) fn record_kind(kind: &'static str, layer: &'static str, result: &'static str) {
    record_many(kind, layer, result, 1);
}

/// Counts `count` lookups of one kind, layer and result (a batch's).
pub(super) fn record_many(
    kind: &'static str,
    layer: &'static str,
    result: &'static str,
    count: u64,
) {
    if count == 0 {
        return;
    }
    metrics::counter!(
        "cache_requests_total",
        "kind" => kind,
        "layer" => layer,
        "result" => result
    )
    .increment(count);
    if layer == "l2" && result == "hit" {
        metrics::counter!("cache_hits_total", "kind" => kind, "layer" => layer).increment(count);
    }
}

/// Counts `count` lookups of `kind` that neither level answered.
pub(super) fn record_misses(kind: &'static str, count: u64) {
    if count > 0 {
        metrics::counter!("cache_misses_total", "kind" => kind).increment(count);
    }
}

/// Registers `kind`'s series at zero, so they are in `/metrics` before the first lookup;
/// returns the L1 hit counters of the hot path.
pub(super) fn register_kind(kind: &'static str) -> [metrics::Counter; 2] {
    metrics::counter!("cache_hits_total", "kind" => kind, "layer" => "l2").increment(0);
    metrics::counter!("cache_misses_total", "kind" => kind).increment(0);
    let hits = [
        metrics::counter!("cache_requests_total", "kind" => kind, "layer" => "l1", "result" => "hit"),
        metrics::counter!("cache_hits_total", "kind" => kind, "layer" => "l1"),
    ];
    for counter in &hits {
        counter.increment(0);
    }
    hits
}

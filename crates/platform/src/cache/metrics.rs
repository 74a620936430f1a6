//! The cache's counters: lookups by kind, layer and result.

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
}

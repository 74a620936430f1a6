//! The limiter's metrics: decisions by service, method, rule and result, errors of its
//! Redis, and whether it decides alone.

use metrics::{Counter, counter, gauge};

/// The results a decision is counted under.
const RESULTS: [&str; 3] = ["allowed", "rejected", "shadow_rejected"];

/// The counters of `rule` on `method`, one per result, registered at zero so they are
/// in `/metrics` before the first call.
pub(super) fn decision_counters(
    service: &'static str,
    method: &'static str,
    rule: &str,
) -> [Counter; 3] {
    RESULTS.map(|result| {
        let counter = counter!(
            "ratelimit_decisions_total",
            "service" => service,
            "method" => method,
            "rule" => rule.to_owned(),
            "result" => result,
        );
        counter.increment(0);
        counter
    })
}

/// Counts one decision (for calls decided outside the server's layer).
pub(super) fn decision(service: &'static str, method: &str, rule: &str, result: &'static str) {
    counter!(
        "ratelimit_decisions_total",
        "service" => service,
        "method" => method.to_owned(),
        "rule" => rule.to_owned(),
        "result" => result,
    )
    .increment(1);
}

/// `Method` of `/package.Service/Method`.
pub(super) fn short_method(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether the replica limits alone (1) or shares the budget through Redis (0).
pub(super) fn fallback(service: &'static str, active: bool) {
    gauge!("ratelimit_fallback_active", "service" => service).set(if active { 1.0 } else { 0.0 });
    counter!("ratelimit_backend_errors_total", "service" => service).increment(0);
}

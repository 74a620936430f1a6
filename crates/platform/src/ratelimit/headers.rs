//! The limit state on every response (a rejection's status is
//! [`crate::error::rate_limited_status`]).
//!
//! Fields, in the response's initial metadata (or the trailers-only block of a
//! rejection):
//! - `ratelimit-policy` and `ratelimit` (draft-ietf-httpapi-ratelimit-headers): one
//!   list member per rule window, `"<rule>-<window>";q=<limit>;w=<seconds>` and
//!   `"<rule>-<window>";r=<remaining>;t=<seconds until the whole limit is free>`;
//! - `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset` (epoch seconds,
//!   as GitHub's) of the window with the least remaining.

use std::fmt::Write;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::Decision;

/// Whole seconds, rounded up (a client that waits that long finds the limit free).
fn seconds(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000) as u64
}

/// Adds `decision`'s fields to `headers`.
pub(crate) fn insert(decision: &Decision, headers: &mut HeaderMap) {
    if decision.report.is_empty() {
        return;
    }
    let mut policy = String::with_capacity(48 * decision.report.len());
    let mut state = String::with_capacity(48 * decision.report.len());
    for (i, reported) in decision.report.iter().enumerate() {
        if i > 0 {
            policy.push_str(", ");
            state.push_str(", ");
        }
        policy.push_str(&reported.rule.policies[reported.window]);
        let name = reported.rule.policies[reported.window]
            .split(';')
            .next()
            .unwrap_or_default();
        let _ = write!(
            state,
            "{name};r={};t={}",
            reported.remaining,
            seconds(reported.reset)
        );
    }
    let least = decision
        .report
        .iter()
        .min_by_key(|r| (r.remaining, std::cmp::Reverse(r.reset)))
        .expect("the report is not empty");
    let limit = least.rule.windows[least.window].limit;
    let reset = decision.unix_now.as_secs() + seconds(least.reset);
    for (name, value) in [
        ("ratelimit-policy", policy),
        ("ratelimit", state),
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", least.remaining.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
    ] {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    }
}

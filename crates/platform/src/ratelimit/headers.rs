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
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::Decision;

/// Whole seconds, rounded up (a client that waits that long finds the limit free).
fn seconds(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000) as u64
}

static POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static STATE: HeaderName = HeaderName::from_static("ratelimit");
static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// A value that changes from call to call, marked so HPACK sends it as a literal instead
/// of filling the connection's header table with values never seen again.
fn changing(value: impl Into<HeaderValue>) -> HeaderValue {
    let mut value = value.into();
    value.set_sensitive(true);
    value
}

/// Adds `decision`'s fields to `headers`.
pub(crate) fn insert(decision: &Decision, headers: &mut HeaderMap) {
    let Some(first) = decision.report.first() else {
        return;
    };
    // One rule with every window reported (the usual case): its policy field is built
    // once, when the rule is compiled, and HPACK sends it as an index after the first.
    let one_rule = decision.report.len() == first.rule.windows.len()
        && decision
            .report
            .iter()
            .enumerate()
            .all(|(i, r)| Arc::ptr_eq(&r.rule, &first.rule) && r.window == i);
    let policy = if one_rule {
        first.rule.policy_header.clone()
    } else {
        let joined: Vec<&str> = decision
            .report
            .iter()
            .map(|r| r.rule.policies[r.window].as_str())
            .collect();
        match HeaderValue::try_from(joined.join(", ")) {
            Ok(value) => value,
            Err(_) => return,
        }
    };
    let mut state = String::with_capacity(48 * decision.report.len());
    for (i, reported) in decision.report.iter().enumerate() {
        if i > 0 {
            state.push_str(", ");
        }
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
    headers.insert(POLICY.clone(), policy);
    if let Ok(state) = HeaderValue::try_from(state) {
        headers.insert(STATE.clone(), changing(state));
    }
    headers.insert(LIMIT.clone(), HeaderValue::from(limit));
    headers.insert(REMAINING.clone(), changing(least.remaining));
    // The reset moves once a second: repeated values are worth indexing.
    headers.insert(RESET.clone(), HeaderValue::from(reset));
}

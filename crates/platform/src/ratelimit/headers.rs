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
//!
//! Remaining counts are exact up to [`EXACT_UP_TO`]. Above it they are rounded down to
//! three significant digits (a client is never told it has more than it has): a count
//! that large changes on every call but matters to nobody to the unit, and rounded it
//! repeats, so HPACK sends the fields as an index of a byte or two instead of some
//! ninety bytes of Huffman-coded text each response, on both sides of the connection.

use std::cell::RefCell;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

use super::{Decision, Report, Reported};

/// Whole seconds, rounded up at millisecond precision (a client that waits that long finds
/// the limit free). Runs several times a call: no 128-bit division.
fn seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_millis() > 0)
}

static POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static STATE: HeaderName = HeaderName::from_static("ratelimit");
static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Remaining counts up to this are reported exactly.
pub(crate) const EXACT_UP_TO: u64 = 100_000;

/// Whether `window`'s remaining count is reported exactly (and changes on every call).
fn exact(window: &Reported) -> bool {
    window.remaining <= EXACT_UP_TO
}

/// `remaining` as reported: exact up to [`EXACT_UP_TO`], else rounded down to three
/// significant digits.
pub(crate) fn reported(remaining: u64) -> u64 {
    if remaining <= EXACT_UP_TO {
        return remaining;
    }
    // Runs several times a call: one division, not one per digit.
    let step = 10u64.pow(remaining.ilog10() - 2);
    remaining / step * step
}

/// A value that changes from call to call is marked so HPACK sends it as a literal
/// instead of filling the connection's header table with values never seen again; a
/// value that repeats is left to be indexed.
fn field(mut value: HeaderValue, changes: bool) -> HeaderValue {
    value.set_sensitive(changes);
    value
}

/// Adds `decision`'s fields, if it has them, to `headers`.
pub(crate) fn insert(decision: &Decision, headers: &mut HeaderMap) {
    if let Some(fields) = &decision.fields {
        fields.insert_into(headers);
    }
}

/// The fields of a call's `report`. Runs on every call.
///
/// Far from every limit the rounded values repeat from call to call, so each worker
/// thread keeps the fields it built last and reuses them while the report says the
/// same: a comparison of a few numbers instead of building five values, and copies of
/// this thread's own instead of reference counts every core shares.
pub(crate) fn fields(report: &Report<'_>) -> Option<Fields> {
    if report.windows.is_empty() {
        return None;
    }
    if report.windows.iter().any(exact) {
        return render(report);
    }
    let signature = Signature::of(report);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((seen, fields)) = last.as_ref()
            && *seen == signature
        {
            return Some(fields.clone());
        }
        let fields = render(report)?.owned();
        *last = Some((signature, fields.clone()));
        Some(fields)
    })
}

thread_local! {
    /// The fields this thread built last, for reports far from every limit.
    static LAST: RefCell<Option<(Signature, Fields)>> = const { RefCell::new(None) };
}

/// What a report's fields are made of: each reported window's rule, index, reported
/// remaining and seconds to reset, and the reset's epoch second.
#[derive(PartialEq, Eq)]
struct Signature {
    windows: SmallVec<[(u32, usize, u64, u64); 4]>,
    reset_at: u64,
}

impl Signature {
    fn of(report: &Report<'_>) -> Self {
        let windows = report
            .windows
            .iter()
            .map(|r| {
                let rule = report.rule(r);
                (rule.id, r.window, reported(r.remaining), seconds(r.reset))
            })
            .collect();
        Self {
            windows,
            reset_at: reset_at(report, least(report)),
        }
    }
}

/// The five fields of one call.
#[derive(Clone)]
pub(crate) struct Fields {
    policy: HeaderValue,
    state: HeaderValue,
    limit: HeaderValue,
    remaining: HeaderValue,
    reset: HeaderValue,
}

impl Fields {
    pub(crate) fn insert_into(&self, headers: &mut HeaderMap) {
        headers.reserve(5);
        headers.insert(POLICY.clone(), self.policy.clone());
        headers.insert(STATE.clone(), self.state.clone());
        headers.insert(LIMIT.clone(), self.limit.clone());
        headers.insert(REMAINING.clone(), self.remaining.clone());
        headers.insert(RESET.clone(), self.reset.clone());
    }

    /// The fields with values of their own (those built with a rule are shared by every
    /// thread).
    fn owned(self) -> Self {
        let own = |value: HeaderValue| HeaderValue::from_bytes(value.as_bytes()).unwrap_or(value);
        Self {
            policy: own(self.policy),
            limit: own(self.limit),
            ..self
        }
    }
}

/// The window the `x-ratelimit-*` fields report: the least remaining (as reported), the
/// latest reset among equals.
fn least<'r>(report: &'r Report<'_>) -> &'r Reported {
    report
        .windows
        .iter()
        .min_by_key(|r| (reported(r.remaining), std::cmp::Reverse(seconds(r.reset))))
        .expect("the report is not empty")
}

fn reset_at(report: &Report<'_>, least: &Reported) -> u64 {
    report.unix_now.as_secs() + seconds(least.reset)
}

/// Builds the fields of `report`, which is not empty.
fn render(report: &Report<'_>) -> Option<Fields> {
    let first = report.windows.first()?;
    let first_rule = report.rule(first);
    // One rule with every window reported (the usual case): its policy field is built
    // once, when the rule is compiled, and HPACK sends it as an index after the first.
    let one_rule = report.windows.len() == first_rule.windows.len()
        && report
            .windows
            .iter()
            .enumerate()
            .all(|(i, r)| r.applied == first.applied && r.window == i);
    let policy = if one_rule {
        first_rule.policy_header.clone()
    } else {
        let joined: Vec<&str> = report
            .windows
            .iter()
            .map(|r| report.rule(r).policies[r.window].as_str())
            .collect();
        HeaderValue::try_from(joined.join(", ")).ok()?
    };
    let mut state = Scratch::new();
    let mut digits = itoa::Buffer::new();
    for (i, window) in report.windows.iter().enumerate() {
        if i > 0 {
            state.extend_from_slice(b", ");
        }
        let rule = report.rule(window);
        state.extend_from_slice(rule.quoted_names[window.window].as_bytes());
        state.extend_from_slice(b";r=");
        state.extend_from_slice(digits.format(reported(window.remaining)).as_bytes());
        state.extend_from_slice(b";t=");
        state.extend_from_slice(digits.format(seconds(window.reset)).as_bytes());
    }
    let least = least(report);
    let state = HeaderValue::from_bytes(&state).ok()?;
    let remaining = HeaderValue::from_bytes(digits.format(reported(least.remaining)).as_bytes())
        .expect("digits are a valid value");
    // The reset moves once a second: repeated values are worth indexing.
    let reset = HeaderValue::from_bytes(digits.format(reset_at(report, least)).as_bytes())
        .expect("digits are a valid value");
    Some(Fields {
        policy,
        state: field(state, report.windows.iter().any(exact)),
        limit: report.rule(least).limit_headers[least.window].clone(),
        remaining: field(remaining, exact(least)),
        reset,
    })
}

/// Room for the `ratelimit` field of up to four windows without a heap allocation.
type Scratch = smallvec::SmallVec<[u8; 256]>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_is_exact_near_the_limit_and_rounded_down_far_from_it() {
        assert_eq!(reported(0), 0);
        assert_eq!(reported(59), 59);
        assert_eq!(reported(EXACT_UP_TO), EXACT_UP_TO);
        assert_eq!(reported(100_001), 100_000);
        assert_eq!(reported(123_456), 123_000);
        assert_eq!(reported(999_999_999_876), 999_000_000_000);
        assert_eq!(reported(u64::MAX), 18_400_000_000_000_000_000);
        assert_eq!(reported(1_000_000), 1_000_000);
        assert_eq!(reported(999_999), 999_000);
    }

    #[test]
    fn seconds_round_up_at_millisecond_precision() {
        assert_eq!(seconds(Duration::ZERO), 0);
        assert_eq!(seconds(Duration::from_micros(999)), 0);
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::from_millis(1000)), 1);
        assert_eq!(seconds(Duration::from_micros(1_000_999)), 1);
        assert_eq!(seconds(Duration::from_millis(1001)), 2);
        assert_eq!(
            seconds(Duration::from_secs(59) + Duration::from_nanos(1_500_000)),
            60
        );
    }
}

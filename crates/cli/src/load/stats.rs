//! What a run measured: per step and overall latency histograms (successful calls, in
//! microseconds), answers by gRPC code, and a time series a plot is drawn from.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies up to a minute, three significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// The series' histograms: two digits are enough for a plot's line.
fn coarse_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("histogram bounds")
}

/// How one call ended.
pub(crate) enum Outcome {
    Ok,
    /// Answered with this code (or timed out: `DEADLINE_EXCEEDED`).
    Failed(tonic::Code),
}

pub(crate) struct StepTotals {
    pub(crate) latency: Histogram<u64>,
    /// Every answer that was not OK, by code (RESOURCE_EXHAUSTED included).
    pub(crate) codes: BTreeMap<String, u64>,
    /// The `ratelimit-policy` the service answered the step with, if any.
    pub(crate) policy: Option<String>,
}

impl StepTotals {
    fn new() -> Self {
        Self {
            latency: histogram(),
            codes: BTreeMap::new(),
            policy: None,
        }
    }
}

/// One slice of the run's time.
pub(crate) struct Slice {
    pub(crate) latency: Histogram<u64>,
    pub(crate) failed: u64,
    pub(crate) users: usize,
}

pub(crate) struct Totals {
    pub(crate) steps: Vec<StepTotals>,
    pub(crate) series: Vec<Slice>,
}

pub(crate) struct Stats {
    started: Instant,
    pub(crate) slice: Duration,
    users: AtomicUsize,
    totals: Mutex<Totals>,
}

impl Stats {
    /// Stats of `steps` steps over a run of about `length`, sliced into at most ~300
    /// slices of a second or more.
    pub(crate) fn new(steps: usize, length: Duration) -> Self {
        let slice = Duration::from_secs((length.as_secs() / 300).max(1));
        Self {
            started: Instant::now(),
            slice,
            users: AtomicUsize::new(0),
            totals: Mutex::new(Totals {
                steps: (0..steps).map(|_| StepTotals::new()).collect(),
                series: Vec::new(),
            }),
        }
    }

    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// The virtual users running now (the series keeps the most seen in a slice).
    pub(crate) fn set_users(&self, users: usize) {
        self.users.store(users, Ordering::Relaxed);
    }

    /// Records a call of `step` that began at `began` (for the open model: when it was
    /// meant to begin) and ended now.
    pub(crate) fn record(&self, step: usize, began: Instant, outcome: Outcome) {
        let now = Instant::now();
        let micros = now.duration_since(began).as_micros().max(1) as u64;
        let index =
            (now.duration_since(self.started).as_secs_f64() / self.slice.as_secs_f64()) as usize;
        let users = self.users.load(Ordering::Relaxed);
        let mut totals = self.totals.lock().expect("stats lock");
        while totals.series.len() <= index {
            totals.series.push(Slice {
                latency: coarse_histogram(),
                failed: 0,
                users: 0,
            });
        }
        let slice = &mut totals.series[index];
        slice.users = slice.users.max(users);
        match &outcome {
            Outcome::Ok => {
                slice.latency.saturating_record(micros);
            }
            Outcome::Failed(_) => slice.failed += 1,
        }
        let totals_of_step = &mut totals.steps[step];
        match outcome {
            Outcome::Ok => totals_of_step.latency.saturating_record(micros),
            Outcome::Failed(code) => {
                *totals_of_step
                    .codes
                    .entry(code_name(code).to_owned())
                    .or_default() += 1;
            }
        }
    }

    /// Keeps the first `ratelimit-policy` seen for `step`.
    pub(crate) fn note_policy(&self, step: usize, policy: &str) {
        let mut totals = self.totals.lock().expect("stats lock");
        totals.steps[step]
            .policy
            .get_or_insert_with(|| policy.to_owned());
    }

    /// Whether `step` still lacks a policy (so callers skip reading the header).
    pub(crate) fn wants_policy(&self, step: usize) -> bool {
        self.totals.lock().expect("stats lock").steps[step]
            .policy
            .is_none()
    }

    /// Calls, failures and p95 (ms) of the slices since `from`, for the progress line.
    pub(crate) fn recent(&self, from: usize) -> (u64, u64, f64, usize) {
        let totals = self.totals.lock().expect("stats lock");
        let mut latency = coarse_histogram();
        let mut failed = 0;
        for slice in totals.series.iter().skip(from) {
            latency.add(&slice.latency).ok();
            failed += slice.failed;
        }
        (
            latency.len(),
            failed,
            latency.value_at_quantile(0.95) as f64 / 1000.0,
            totals.series.len(),
        )
    }

    pub(crate) fn into_totals(self) -> Totals {
        self.totals.into_inner().expect("stats lock")
    }
}

/// The code's name as gRPC spells it (`RESOURCE_EXHAUSTED`).
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

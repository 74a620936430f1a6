//! The run's report: JSON (schema `agentic-load/1`, documented in docs/loadtest.md), a
//! Markdown summary and the SVG plot, and the thresholds that decide the exit code.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::memory::Series;
use super::plan::Stage;
use super::scenario::Scenario;
use super::stats::{StepTotals, Totals};
use super::svg::{COLOURS, Chart, Line};

/// Figures of one step, or of all.
#[derive(Debug, Serialize)]
pub(crate) struct Figures {
    /// Calls that ended (OK or not).
    pub(crate) count: u64,
    pub(crate) ok: u64,
    pub(crate) requests_per_second: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
    /// Answers other than OK, by gRPC code (RESOURCE_EXHAUSTED included).
    pub(crate) errors: BTreeMap<String, u64>,
    /// RESOURCE_EXHAUSTED answers (rate limits, full queues).
    pub(crate) rate_limited: u64,
    /// Percent of calls that failed with a code other than RESOURCE_EXHAUSTED.
    pub(crate) error_percent: f64,
    /// Percent of calls answered RESOURCE_EXHAUSTED.
    pub(crate) rate_limited_percent: f64,
}

impl Figures {
    fn of(latency: &Histogram<u64>, errors: BTreeMap<String, u64>, seconds: f64) -> Self {
        let failed: u64 = errors.values().sum();
        let rate_limited = errors.get("RESOURCE_EXHAUSTED").copied().unwrap_or(0);
        let count = latency.len() + failed;
        let ms = |quantile: f64| latency.value_at_quantile(quantile) as f64 / 1000.0;
        let percent = |part: u64| {
            if count == 0 {
                0.0
            } else {
                part as f64 * 100.0 / count as f64
            }
        };
        Self {
            count,
            ok: latency.len(),
            requests_per_second: count as f64 / seconds.max(1e-9),
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: latency.max() as f64 / 1000.0,
            errors,
            rate_limited,
            error_percent: percent(failed - rate_limited),
            rate_limited_percent: percent(rate_limited),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct StepReport {
    pub(crate) name: String,
    pub(crate) service: String,
    pub(crate) method: String,
    pub(crate) weight: u32,
    #[serde(flatten)]
    pub(crate) figures: Figures,
}

/// One point of the time series.
#[derive(Debug, Serialize)]
pub(crate) struct Point {
    pub(crate) t_s: f64,
    pub(crate) users: usize,
    pub(crate) requests_per_second: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) not_ok: u64,
}

/// Whether a service's memory stayed flat: the mean of the second minute against the
/// mean of the last.
#[derive(Debug, Serialize)]
pub(crate) struct Flatness {
    pub(crate) name: String,
    pub(crate) second_minute_mib: f64,
    pub(crate) last_minute_mib: f64,
    pub(crate) change_percent: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct ThresholdResult {
    pub(crate) threshold: String,
    pub(crate) value: f64,
    pub(crate) passed: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct Baseline {
    pub(crate) profile: String,
    pub(crate) p95_ms: f64,
    pub(crate) error_percent: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) schema: &'static str,
    pub(crate) scenario: String,
    pub(crate) profile: Option<String>,
    /// `closed` (virtual users) or `open` (arrival rate).
    pub(crate) model: &'static str,
    pub(crate) plan: Vec<Stage>,
    pub(crate) rate: Option<f64>,
    pub(crate) started_at: String,
    pub(crate) seconds: f64,
    pub(crate) timeout_ms: u64,
    /// The `ratelimit-policy` each step was answered with; empty when the suite limits
    /// nothing.
    pub(crate) rate_limits: BTreeMap<String, String>,
    pub(crate) overall: Figures,
    pub(crate) steps: Vec<StepReport>,
    pub(crate) series: Vec<Point>,
    pub(crate) memory: Vec<Series>,
    pub(crate) memory_flatness: Vec<Flatness>,
    pub(crate) baseline: Option<Baseline>,
    pub(crate) thresholds: Vec<ThresholdResult>,
}

/// What the report is built from besides the stats.
pub(crate) struct RunFacts {
    pub(crate) profile: Option<super::plan::Profile>,
    pub(crate) model: &'static str,
    pub(crate) plan: Vec<Stage>,
    pub(crate) rate: Option<f64>,
    pub(crate) started_at: String,
    pub(crate) seconds: f64,
    pub(crate) timeout_ms: u64,
    pub(crate) slice_s: f64,
}

impl Report {
    pub(crate) fn build(
        scenario: &Scenario,
        facts: RunFacts,
        totals: Totals,
        memory: Vec<Series>,
        thresholds: &[Threshold],
    ) -> Self {
        let mut overall_latency =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
        let mut overall_errors = BTreeMap::new();
        let mut rate_limits = BTreeMap::new();
        let mut steps = Vec::new();
        for (step, totals) in scenario.steps.iter().zip(totals.steps) {
            let StepTotals {
                latency,
                codes,
                policy,
            } = totals;
            overall_latency.add(&latency).ok();
            for (code, count) in &codes {
                *overall_errors.entry(code.clone()).or_default() += count;
            }
            if let Some(policy) = policy {
                rate_limits.insert(step.name.clone(), policy);
            }
            let (service, method) = step.call.rpc();
            steps.push(StepReport {
                name: step.name.clone(),
                service: service.to_owned(),
                method: method.to_owned(),
                weight: step.weight,
                figures: Figures::of(&latency, codes, facts.seconds),
            });
        }
        let overall = Figures::of(&overall_latency, overall_errors, facts.seconds);
        let series = totals
            .series
            .iter()
            .enumerate()
            .map(|(index, slice)| {
                let ms = |q: f64| slice.latency.value_at_quantile(q) as f64 / 1000.0;
                Point {
                    t_s: (index as f64 + 0.5) * facts.slice_s,
                    users: slice.users,
                    requests_per_second: (slice.latency.len() + slice.failed) as f64
                        / facts.slice_s,
                    p50_ms: ms(0.50),
                    p95_ms: ms(0.95),
                    p99_ms: ms(0.99),
                    not_ok: slice.failed,
                }
            })
            .collect();
        let memory_flatness = memory
            .iter()
            .filter_map(|series| {
                let end = series.samples.last()?.0;
                let second = series.mean_between(60.0, 120.0)?;
                let last = series.mean_between(end - 60.0, end + 1.0)?;
                Some(Flatness {
                    name: series.name.clone(),
                    second_minute_mib: second,
                    last_minute_mib: last,
                    change_percent: (last - second) * 100.0 / second,
                })
            })
            .collect();
        let mut report = Self {
            schema: "agentic-load/1",
            scenario: scenario.name.clone(),
            profile: facts.profile.map(|p| p.name().to_owned()),
            model: facts.model,
            plan: facts.plan,
            rate: facts.rate,
            started_at: facts.started_at,
            seconds: facts.seconds,
            timeout_ms: facts.timeout_ms,
            rate_limits,
            overall,
            steps,
            series,
            memory,
            memory_flatness,
            baseline: facts.profile.map(|profile| {
                let (p95_ms, error_percent) = profile.baseline();
                Baseline {
                    profile: profile.name().to_owned(),
                    p95_ms,
                    error_percent,
                }
            }),
            thresholds: Vec::new(),
        };
        report.thresholds = thresholds
            .iter()
            .map(|threshold| threshold.judge(&report))
            .collect();
        report
    }

    pub(crate) fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }

    /// The Markdown summary.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let profile = self
            .profile
            .as_deref()
            .map(|p| format!(", profile {p}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "### Scenario `{}`{profile} ({} model, {:.0} s, peak {} users{})\n\n",
            self.scenario,
            self.model,
            self.seconds,
            self.plan.iter().map(|s| s.users).max().unwrap_or(0),
            self.rate
                .map(|r| format!(", {r} calls/s"))
                .unwrap_or_default()
        ));
        out.push_str("| step | calls | calls/s | p50 ms | p90 ms | p95 ms | p99 ms | p99.9 ms | max ms | errors | RESOURCE_EXHAUSTED |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
        let row = |name: &str, f: &Figures| {
            let errors: Vec<String> = f
                .errors
                .iter()
                .filter(|(code, _)| code.as_str() != "RESOURCE_EXHAUSTED")
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            format!(
                "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |\n",
                f.count,
                f.requests_per_second,
                f.p50_ms,
                f.p90_ms,
                f.p95_ms,
                f.p99_ms,
                f.p999_ms,
                f.max_ms,
                if errors.is_empty() {
                    "0".to_owned()
                } else {
                    errors.join(", ")
                },
                f.rate_limited
            )
        };
        for step in &self.steps {
            out.push_str(&row(&step.name, &step.figures));
        }
        out.push_str(&row("**all**", &self.overall));
        out.push('\n');
        if let Some(baseline) = &self.baseline {
            let p95_ok = self.overall.p95_ms < baseline.p95_ms;
            let errors_ok = self.overall.error_percent < baseline.error_percent;
            out.push_str(&format!(
                "Seeds' baseline ({}): p95 < {} ms: {:.1} ms ({}); errors < {} %: {:.3} % ({}).\n\n",
                baseline.profile,
                baseline.p95_ms,
                self.overall.p95_ms,
                if p95_ok { "met" } else { "not met" },
                baseline.error_percent,
                self.overall.error_percent,
                if errors_ok { "met" } else { "not met" },
            ));
        }
        if self.rate_limits.is_empty() {
            out.push_str("Rate limits in force: none announced (`ratelimit-policy` absent).\n\n");
        } else {
            let mut policies: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (step, policy) in &self.rate_limits {
                policies.entry(policy).or_default().push(step);
            }
            out.push_str("Rate limits in force (`ratelimit-policy` as answered):\n\n");
            for (policy, steps) in policies {
                out.push_str(&format!("- `{policy}`: {}\n", steps.join(", ")));
            }
            out.push('\n');
        }
        for flat in &self.memory_flatness {
            out.push_str(&format!(
                "Resident memory of {}: {:.1} MiB in the second minute, {:.1} MiB in the last ({:+.1} %).\n",
                flat.name, flat.second_minute_mib, flat.last_minute_mib, flat.change_percent
            ));
        }
        if !self.memory_flatness.is_empty() {
            out.push('\n');
        }
        for threshold in &self.thresholds {
            out.push_str(&format!(
                "Threshold `{}`: {:.3} ({}).\n",
                threshold.threshold,
                threshold.value,
                if threshold.passed { "passed" } else { "FAILED" }
            ));
        }
        out
    }

    /// The plot: throughput and users, latency, and memory when watched.
    pub(crate) fn svg(&self) -> String {
        let along = |value: fn(&Point) -> f64| -> Vec<(f64, f64)> {
            self.series.iter().map(|p| (p.t_s, value(p))).collect()
        };
        let mut charts = vec![
            Chart {
                title: format!("Throughput ({} scenario)", self.scenario),
                unit: "calls/s",
                lines: vec![
                    Line {
                        name: "calls/s".into(),
                        colour: COLOURS[0],
                        points: along(|p| p.requests_per_second),
                    },
                    Line {
                        name: "not OK/s".into(),
                        colour: COLOURS[1],
                        points: self
                            .series
                            .iter()
                            .map(|p| (p.t_s, p.not_ok as f64))
                            .collect(),
                    },
                ],
            },
            Chart {
                title: "Virtual users".into(),
                unit: "users",
                lines: vec![Line {
                    name: "users".into(),
                    colour: COLOURS[2],
                    points: along(|p| p.users as f64),
                }],
            },
            Chart {
                title: "Latency of successful calls".into(),
                unit: "ms",
                lines: vec![
                    Line {
                        name: "p50".into(),
                        colour: COLOURS[0],
                        points: along(|p| p.p50_ms),
                    },
                    Line {
                        name: "p95".into(),
                        colour: COLOURS[3],
                        points: along(|p| p.p95_ms),
                    },
                    Line {
                        name: "p99".into(),
                        colour: COLOURS[1],
                        points: along(|p| p.p99_ms),
                    },
                ],
            },
        ];
        if !self.memory.is_empty() {
            charts.push(Chart {
                title: "Resident memory".into(),
                unit: "MiB",
                lines: self
                    .memory
                    .iter()
                    .enumerate()
                    .map(|(index, series)| Line {
                        name: series.name.clone(),
                        colour: COLOURS[index % COLOURS.len()],
                        points: series.samples.clone(),
                    })
                    .collect(),
            });
        }
        super::svg::render(&charts)
    }
}

/// A limit on one figure, e.g. `p95<500ms`, `errors<1%`, `rag/Search:p99<=1s`.
#[derive(Debug, Clone)]
pub(crate) struct Threshold {
    text: String,
    step: Option<String>,
    metric: Metric,
    op: Op,
    bound: f64,
}

#[derive(Debug, Clone, Copy)]
enum Metric {
    /// A latency quantile (0.5 … 0.999) or the maximum (1.0), in ms.
    Latency(f64),
    ErrorPercent,
    RateLimitedPercent,
    RequestsPerSecond,
    /// The largest change of a watched service's memory, last minute against the second,
    /// in percent either way (`--watch`; a run of under two minutes has none).
    MemoryChangePercent,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Threshold {
    /// Parses one `--threshold`; `scenario` checks a step name it may start with.
    pub(crate) fn parse(text: &str, scenario: &Scenario) -> anyhow::Result<Self> {
        let context = || format!("--threshold {text:?}");
        let split = text
            .find(['<', '>'])
            .with_context(|| format!("{}: no < or >", context()))?;
        let (left, right) = text.split_at(split);
        let (op, bound) = if let Some(rest) = right.strip_prefix("<=") {
            (Op::LessOrEqual, rest)
        } else if let Some(rest) = right.strip_prefix(">=") {
            (Op::GreaterOrEqual, rest)
        } else if let Some(rest) = right.strip_prefix('<') {
            (Op::Less, rest)
        } else {
            (Op::Greater, &right[1..])
        };
        let (step, metric) = match left.rsplit_once(':') {
            Some((step, metric)) => {
                if !scenario.steps.iter().any(|s| s.name == step) {
                    bail!("{}: the scenario has no step {step:?}", context());
                }
                (Some(step.to_owned()), metric)
            }
            None => (None, left),
        };
        let metric = match metric.trim() {
            "p50" => Metric::Latency(0.50),
            "p90" => Metric::Latency(0.90),
            "p95" => Metric::Latency(0.95),
            "p99" => Metric::Latency(0.99),
            "p99.9" => Metric::Latency(0.999),
            "max" => Metric::Latency(1.0),
            "errors" => Metric::ErrorPercent,
            "rate_limited" => Metric::RateLimitedPercent,
            "rps" => Metric::RequestsPerSecond,
            "memory_change" if step.is_none() => Metric::MemoryChangePercent,
            "memory_change" => bail!("{}: memory_change is not a step's figure", context()),
            other => bail!(
                "{}: unknown figure {other:?} (p50, p90, p95, p99, p99.9, max, errors, rate_limited, rps, memory_change)",
                context()
            ),
        };
        let bound = bound.trim();
        let bound = match metric {
            Metric::Latency(_) => {
                humantime::parse_duration(bound)
                    .with_context(|| format!("{}: {bound:?} is not a duration", context()))?
                    .as_secs_f64()
                    * 1000.0
            }
            Metric::ErrorPercent | Metric::RateLimitedPercent | Metric::MemoryChangePercent => {
                bound
                    .strip_suffix('%')
                    .with_context(|| format!("{}: a percentage ends in %", context()))?
                    .trim()
                    .parse()
                    .with_context(|| format!("{}: {bound:?} is not a number", context()))?
            }
            Metric::RequestsPerSecond => bound
                .parse()
                .with_context(|| format!("{}: {bound:?} is not a number", context()))?,
        };
        Ok(Self {
            text: text.to_owned(),
            step,
            metric,
            op,
            bound,
        })
    }

    fn judge(&self, report: &Report) -> ThresholdResult {
        let figures = match &self.step {
            Some(step) => {
                &report
                    .steps
                    .iter()
                    .find(|s| &s.name == step)
                    .expect("checked at parse")
                    .figures
            }
            None => &report.overall,
        };
        let value = match self.metric {
            Metric::Latency(q) if q >= 1.0 => figures.max_ms,
            Metric::Latency(q) if q >= 0.999 => figures.p999_ms,
            Metric::Latency(q) if q >= 0.99 => figures.p99_ms,
            Metric::Latency(q) if q >= 0.95 => figures.p95_ms,
            Metric::Latency(q) if q >= 0.90 => figures.p90_ms,
            Metric::Latency(_) => figures.p50_ms,
            Metric::ErrorPercent => figures.error_percent,
            Metric::RateLimitedPercent => figures.rate_limited_percent,
            Metric::RequestsPerSecond => figures.requests_per_second,
            // Nothing to judge (no --watch, or too short a run) fails rather than passes.
            Metric::MemoryChangePercent => report
                .memory_flatness
                .iter()
                .map(|flat| flat.change_percent.abs())
                .reduce(f64::max)
                .unwrap_or(f64::NAN),
        };
        let passed = match self.op {
            Op::Less => value < self.bound,
            Op::LessOrEqual => value <= self.bound,
            Op::Greater => value > self.bound,
            Op::GreaterOrEqual => value >= self.bound,
        };
        ThresholdResult {
            threshold: self.text.clone(),
            value,
            passed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::scenario::DEFAULT;
    use super::*;

    fn figures(p95_ms: f64, error_percent: f64) -> Figures {
        let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        latency.record((p95_ms * 1000.0) as u64).unwrap();
        let mut errors = BTreeMap::new();
        if error_percent > 0.0 {
            errors.insert("UNAVAILABLE".to_owned(), 1);
        }
        Figures::of(&latency, errors, 1.0)
    }

    fn report(overall: Figures) -> Report {
        Report {
            schema: "agentic-load/1",
            scenario: "x".into(),
            profile: None,
            model: "closed",
            plan: Vec::new(),
            rate: None,
            started_at: String::new(),
            seconds: 1.0,
            timeout_ms: 0,
            rate_limits: BTreeMap::new(),
            overall,
            steps: Vec::new(),
            series: Vec::new(),
            memory: Vec::new(),
            memory_flatness: Vec::new(),
            baseline: None,
            thresholds: Vec::new(),
        }
    }

    #[test]
    fn thresholds_judge_the_overall_figures() {
        let scenario = Scenario::parse(DEFAULT, "default").unwrap();
        let fast = report(figures(120.0, 0.0));
        let slow = report(figures(900.0, 50.0));
        for text in ["p95<500ms", "errors<1%", "rps>=1", "max<=1s"] {
            let threshold = Threshold::parse(text, &scenario).unwrap();
            assert!(threshold.judge(&fast).passed, "{text}");
        }
        for text in ["p95<500ms", "errors<1%"] {
            let threshold = Threshold::parse(text, &scenario).unwrap();
            assert!(!threshold.judge(&slow).passed, "{text}");
        }
    }

    #[test]
    fn memory_change_judges_the_service_that_moved_most_and_fails_without_samples() {
        let scenario = Scenario::parse(DEFAULT, "default").unwrap();
        let threshold = Threshold::parse("memory_change<10%", &scenario).unwrap();
        assert!(
            !threshold.judge(&report(figures(1.0, 0.0))).passed,
            "no samples"
        );
        let flat = |name: &str, second: f64, last: f64| Flatness {
            name: name.into(),
            second_minute_mib: second,
            last_minute_mib: last,
            change_percent: (last - second) * 100.0 / second,
        };
        let mut watched = report(figures(1.0, 0.0));
        watched.memory_flatness = vec![flat("user", 100.0, 104.0), flat("rag", 100.0, 91.0)];
        let judged = threshold.judge(&watched);
        assert!(
            judged.passed && (judged.value - 9.0).abs() < 1e-9,
            "{judged:?}"
        );
        watched.memory_flatness.push(flat("agent", 100.0, 115.0));
        assert!(!threshold.judge(&watched).passed, "agent grew 15%");
    }

    #[test]
    fn malformed_thresholds_are_refused() {
        let scenario = Scenario::parse(DEFAULT, "default").unwrap();
        for (text, wanted) in [
            ("p95", "no < or >"),
            ("p42<1s", "unknown figure"),
            ("p95<fast", "not a duration"),
            ("errors<1", "ends in %"),
            ("nosuch:p95<1s", "no step"),
            ("rag/Search:memory_change<10%", "not a step's figure"),
        ] {
            let error = format!("{:#}", Threshold::parse(text, &scenario).unwrap_err());
            assert!(error.contains(wanted), "{text}: {error}");
        }
        assert!(Threshold::parse("rag/Search:p99<1s", &scenario).is_ok());
    }
}

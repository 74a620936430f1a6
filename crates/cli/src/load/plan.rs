//! How many virtual users run when: a plan of stages (goose's `"10,30s;50,2m;0,0s"`: go to
//! 10 users over 30 s, then to 50 over 2 minutes, then to 0 at once) and the seeds'
//! profiles as plans.

use std::time::Duration;

use anyhow::{Context, bail};

/// One stage: move linearly from the previous stage's users to `users` over `over`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Stage {
    pub(crate) users: usize,
    #[serde(serialize_with = "seconds")]
    pub(crate) over: Duration,
}

fn seconds<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(value.as_secs_f64())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) stages: Vec<Stage>,
}

/// The seeds' load profiles (Locust `--users`, `--spawn-rate`, `--run-time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Profile {
    /// 10 users, spawned 1 a second, for 2 minutes (p95 < 200 ms, errors < 0.1 %).
    Light,
    /// 50 users, spawned 5 a second, for 10 minutes (p95 < 300 ms, errors < 0.5 %).
    Medium,
    /// 200 users, spawned 10 a second, for 30 minutes (p95 < 500 ms, errors < 1 %).
    Heavy,
}

impl Profile {
    /// The profile as a plan: ramp at the spawn rate, then hold for the rest of the run
    /// time.
    pub(crate) fn plan(self) -> Plan {
        let (users, spawn_rate, run_time) = self.figures();
        let ramp = Duration::from_secs((users / spawn_rate) as u64);
        Plan {
            stages: vec![
                Stage { users, over: ramp },
                Stage {
                    users,
                    over: run_time - ramp,
                },
            ],
        }
    }

    /// Users, spawn rate (users a second) and run time, as the seeds give them.
    fn figures(self) -> (usize, usize, Duration) {
        match self {
            Self::Light => (10, 1, Duration::from_secs(120)),
            Self::Medium => (50, 5, Duration::from_secs(600)),
            Self::Heavy => (200, 10, Duration::from_secs(1800)),
        }
    }

    /// The seeds' baseline: p95 in milliseconds and error rate in percent.
    pub(crate) fn baseline(self) -> (f64, f64) {
        match self {
            Self::Light => (200.0, 0.1),
            Self::Medium => (300.0, 0.5),
            Self::Heavy => (500.0, 1.0),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Light => "light",
            Self::Medium => "medium",
            Self::Heavy => "heavy",
        }
    }
}

impl Plan {
    /// Parses `"users,duration;users,duration;…"`.
    pub(crate) fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut stages = Vec::new();
        for (index, stage) in spec.split(';').enumerate() {
            let stage = stage.trim();
            if stage.is_empty() {
                continue;
            }
            let context = || format!("--plan stage {} ({stage:?})", index + 1);
            let Some((users, over)) = stage.split_once(',') else {
                bail!("{}: want users,duration (e.g. 10,30s)", context());
            };
            let users: usize = users
                .trim()
                .parse()
                .with_context(|| format!("{}: users", context()))?;
            let over = humantime::parse_duration(over.trim())
                .with_context(|| format!("{}: duration", context()))?;
            stages.push(Stage { users, over });
        }
        if stages.is_empty() {
            bail!("--plan {spec:?}: no stage");
        }
        if stages.iter().all(|stage| stage.users == 0) {
            bail!("--plan {spec:?}: no stage has users");
        }
        Ok(Self { stages })
    }

    /// The plan cut off after `limit`.
    pub(crate) fn cut(mut self, limit: Duration) -> Self {
        let mut kept = Vec::new();
        let mut left = limit;
        for stage in self.stages {
            if left.is_zero() {
                break;
            }
            let over = stage.over.min(left);
            let users = if stage.over.is_zero() || over == stage.over {
                stage.users
            } else {
                // A ramp cut short stops where it got to.
                let from = kept.last().map_or(0, |s: &Stage| s.users) as f64;
                let share = over.as_secs_f64() / stage.over.as_secs_f64();
                (from + (stage.users as f64 - from) * share).round() as usize
            };
            left -= over;
            kept.push(Stage { users, over });
        }
        self.stages = kept;
        self
    }

    pub(crate) fn total(&self) -> Duration {
        self.stages.iter().map(|stage| stage.over).sum()
    }

    pub(crate) fn peak(&self) -> usize {
        self.stages
            .iter()
            .map(|stage| stage.users)
            .max()
            .unwrap_or(0)
    }

    /// The users that should be running `elapsed` into the plan.
    pub(crate) fn users_at(&self, elapsed: Duration) -> usize {
        let mut from = 0usize;
        let mut start = Duration::ZERO;
        for stage in &self.stages {
            let end = start + stage.over;
            if elapsed < end {
                let share = (elapsed - start).as_secs_f64() / stage.over.as_secs_f64();
                return (from as f64 + (stage.users as f64 - from as f64) * share).floor() as usize;
            }
            from = stage.users;
            start = end;
        }
        from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goose_plans_parse_and_ramp() {
        let plan = Plan::parse("10,10s;50,20s;0,0s").unwrap();
        assert_eq!(plan.stages.len(), 3);
        assert_eq!(plan.total(), Duration::from_secs(30));
        assert_eq!(plan.peak(), 50);
        assert_eq!(plan.users_at(Duration::from_secs(5)), 5);
        assert_eq!(plan.users_at(Duration::from_secs(20)), 30);
        assert_eq!(plan.users_at(Duration::from_secs(31)), 0);
    }

    #[test]
    fn malformed_plans_name_the_stage() {
        for (spec, wanted) in [
            ("10", "stage 1"),
            ("10,30s;x,1m", "stage 2"),
            ("10,30s;5,soon", "stage 2"),
            ("0,10s", "no stage has users"),
            ("", "no stage"),
        ] {
            let error = format!("{:#}", Plan::parse(spec).unwrap_err());
            assert!(error.contains(wanted), "{spec}: {error}");
        }
    }

    #[test]
    fn profiles_ramp_at_the_seeds_spawn_rate_and_can_be_shortened() {
        let heavy = Profile::Heavy.plan();
        assert_eq!(heavy.peak(), 200);
        assert_eq!(heavy.total(), Duration::from_secs(1800));
        assert_eq!(heavy.users_at(Duration::from_secs(10)), 100);
        let short = heavy.cut(Duration::from_secs(60));
        assert_eq!(short.total(), Duration::from_secs(60));
        assert_eq!(short.peak(), 200);
        let shorter = Profile::Heavy.plan().cut(Duration::from_secs(10));
        assert_eq!(shorter.peak(), 100);
    }
}

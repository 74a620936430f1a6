//! Resident memory of the services under load, read from `/proc/<pid>/status` (`VmRSS`)
//! at a fixed interval, to show whether it stays flat.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

/// A process to watch: `name=pid`.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    pub(crate) name: String,
    pub(crate) pid: u32,
}

impl std::str::FromStr for Watched {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> anyhow::Result<Self> {
        let Some((name, pid)) = spec.split_once('=') else {
            bail!("{spec:?}: want name=pid (e.g. user=4242)");
        };
        let pid = pid.parse().with_context(|| format!("{spec:?}: pid"))?;
        Ok(Self {
            name: name.to_owned(),
            pid,
        })
    }
}

/// One process's samples: seconds into the run and resident MiB.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) pid: u32,
    pub(crate) samples: Vec<(f64, f64)>,
}

impl Series {
    /// The mean of the samples in `[from, to)` seconds, if any.
    pub(crate) fn mean_between(&self, from: f64, to: f64) -> Option<f64> {
        let inside: Vec<f64> = self
            .samples
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, mib)| *mib)
            .collect();
        (!inside.is_empty()).then(|| inside.iter().sum::<f64>() / inside.len() as f64)
    }
}

/// Resident memory of `pid` in MiB.
fn resident_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid}"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?;
    Ok(kib / 1024.0)
}

/// Checks the processes exist (before any load is sent).
pub(crate) fn check(watched: &[Watched]) -> anyhow::Result<()> {
    for process in watched {
        resident_mib(process.pid).with_context(|| format!("--watch {}", process.name))?;
    }
    Ok(())
}

/// Samples every `every` from `started` until `stop`.
pub(crate) async fn sample(
    watched: Vec<Watched>,
    every: Duration,
    started: Instant,
    stop: CancellationToken,
) -> Vec<Series> {
    let mut series: Vec<Series> = watched
        .iter()
        .map(|process| Series {
            name: process.name.clone(),
            pid: process.pid,
            samples: Vec::new(),
        })
        .collect();
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let at = started.elapsed().as_secs_f64();
        for (process, series) in watched.iter().zip(series.iter_mut()) {
            if let Ok(mib) = resident_mib(process.pid) {
                series.samples.push((at, mib));
            }
        }
    }
    series
}

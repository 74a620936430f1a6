//! How far a replica is behind: in bytes, the primary's latest WAL position minus the
//! replica's replay position; in time, how long ago the primary first reached a position
//! the replica has not replayed (from the poller's own samples of the primary, so an idle
//! primary does not make an idle replica look behind, as `now() -
//! pg_last_xact_replay_timestamp()` would).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::lsn::Lsn;

/// The primary's WAL position as sampled over the last while.
pub(crate) struct PrimaryHistory {
    /// (when sampled, position), oldest first, positions rising.
    samples: VecDeque<(Instant, Lsn)>,
    /// Samples older than this are dropped: a replica that far behind is quarantined
    /// anyway, and its lag reads as at least this.
    keep: Duration,
}

/// A replica's distance behind the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lag {
    pub(crate) bytes: u64,
    pub(crate) time: Duration,
}

impl PrimaryHistory {
    pub(crate) fn new(keep: Duration) -> Self {
        Self {
            samples: VecDeque::new(),
            keep,
        }
    }

    /// Records the primary at `lsn` at `now` (only positions that moved are kept).
    pub(crate) fn record(&mut self, now: Instant, lsn: Lsn) {
        if self.samples.back().is_none_or(|(_, last)| lsn > *last) {
            self.samples.push_back((now, lsn));
        }
        // The newest sample stays: it is the primary's current position.
        while self.samples.len() > 1
            && self
                .samples
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.keep)
        {
            self.samples.pop_front();
        }
    }

    /// The primary's latest known position.
    pub(crate) fn latest(&self) -> Option<Lsn> {
        self.samples.back().map(|(_, lsn)| *lsn)
    }

    /// How far behind a replica that has replayed up to `replayed` is at `now`.
    pub(crate) fn lag(&self, now: Instant, replayed: Lsn) -> Lag {
        let Some(latest) = self.latest() else {
            return Lag {
                bytes: 0,
                time: Duration::ZERO,
            };
        };
        let bytes = latest.0.saturating_sub(replayed.0);
        // The first position the replica lacks, and so how long it has lacked it.
        let time = self
            .samples
            .iter()
            .find(|(_, lsn)| *lsn > replayed)
            .map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(*at));
        Lag { bytes, time }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_up_replica_has_no_lag_however_long_the_primary_idles() {
        let start = Instant::now();
        let mut history = PrimaryHistory::new(Duration::from_secs(60));
        history.record(start, Lsn(100));
        history.record(start + Duration::from_secs(30), Lsn(100));
        let lag = history.lag(start + Duration::from_secs(30), Lsn(100));
        assert_eq!(lag.bytes, 0);
        assert_eq!(lag.time, Duration::ZERO);
    }

    #[test]
    fn lag_counts_from_the_first_position_the_replica_lacks() {
        let start = Instant::now();
        let mut history = PrimaryHistory::new(Duration::from_secs(60));
        history.record(start, Lsn(100));
        history.record(start + Duration::from_secs(2), Lsn(200));
        history.record(start + Duration::from_secs(5), Lsn(300));
        let now = start + Duration::from_secs(6);
        assert_eq!(
            history.lag(now, Lsn(150)),
            Lag {
                bytes: 150,
                time: Duration::from_secs(4)
            }
        );
        assert_eq!(history.lag(now, Lsn(250)).time, Duration::from_secs(1));
        assert_eq!(history.lag(now, Lsn(300)).time, Duration::ZERO);
    }

    #[test]
    fn old_samples_go_but_the_lag_of_a_stuck_replica_keeps_growing() {
        let start = Instant::now();
        let mut history = PrimaryHistory::new(Duration::from_secs(10));
        for second in 0..30 {
            history.record(start + Duration::from_secs(second), Lsn(100 + second));
        }
        let now = start + Duration::from_secs(29);
        assert!(
            history.samples.len() <= 12,
            "kept {}",
            history.samples.len()
        );
        // Stuck before every kept sample: at least the kept window.
        assert!(history.lag(now, Lsn(0)).time >= Duration::from_secs(10));
        assert_eq!(history.latest(), Some(Lsn(129)));
    }
}

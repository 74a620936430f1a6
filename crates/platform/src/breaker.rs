//! A circuit breaker per dependency: after `threshold` consecutive failures it opens, and
//! calls fail at once (microseconds, not a timeout each) until `cooldown` has passed; then
//! one call at a time probes (half-open), and the first success closes it again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One dependency's breaker (a chat provider's, a service's).
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    start: Instant,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `start` until which the breaker is open; 0 when closed.
    open_until_ms: AtomicU64,
    /// Whether a half-open probe is in flight.
    probing: AtomicBool,
}

/// What the breaker allows a call to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Closed: go ahead.
    Call,
    /// Half-open: this call is the probe.
    Probe,
    /// Open: fail now.
    Refuse,
}

impl Breaker {
    /// Opens after `threshold` consecutive failures, for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            start: Instant::now(),
            consecutive_failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    /// Whether a call may go ahead now; hand the permit back with the outcome.
    pub fn permit(&self) -> Permit {
        let open_until = self.open_until_ms.load(Ordering::Acquire);
        if open_until == 0 {
            return Permit::Call;
        }
        if self.now_ms() < open_until {
            return Permit::Refuse;
        }
        // Cooldown over: one caller probes, the rest keep failing fast.
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Permit::Probe
        } else {
            Permit::Refuse
        }
    }

    /// The call got an answer: closes the breaker.
    pub fn succeeded(&self, permit: Permit) {
        self.consecutive_failures.store(0, Ordering::Release);
        if permit == Permit::Probe || self.open_until_ms.load(Ordering::Acquire) != 0 {
            self.open_until_ms.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
        }
    }

    /// Records a failure of the dependency itself; true if the breaker opened now.
    pub fn failed(&self, permit: Permit) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        if permit == Permit::Probe || failures >= self.threshold {
            let was = self.open_until_ms.swap(
                self.now_ms() + self.cooldown.as_millis() as u64,
                Ordering::AcqRel,
            );
            self.probing.store(false, Ordering::Release);
            return was == 0 || permit == Permit::Probe;
        }
        false
    }

    /// Whether calls fail at once for now.
    pub fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_half_opens_for_one_probe() {
        let breaker = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert_eq!(breaker.permit(), Permit::Call);
            assert!(!breaker.failed(Permit::Call));
        }
        breaker.succeeded(Permit::Call);
        for _ in 0..2 {
            breaker.failed(Permit::Call);
        }
        assert_eq!(breaker.permit(), Permit::Call, "a success reset the count");
        assert!(breaker.failed(Permit::Call), "third in a row opens it");
        assert_eq!(breaker.permit(), Permit::Refuse);

        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.permit(), Permit::Probe);
        assert_eq!(breaker.permit(), Permit::Refuse, "one probe at a time");
        assert!(breaker.failed(Permit::Probe), "a failed probe reopens it");
        assert_eq!(breaker.permit(), Permit::Refuse);

        std::thread::sleep(Duration::from_millis(40));
        let probe = breaker.permit();
        assert_eq!(probe, Permit::Probe);
        breaker.succeeded(probe);
        assert!(!breaker.is_open());
        assert_eq!(breaker.permit(), Permit::Call);
    }
}

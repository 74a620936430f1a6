//! What a replica keeps between trips to Redis, per rule and subject: the tokens of its
//! last grant (spent here, without Redis, until its lease ends), and a rejection until its
//! retry time. While Redis is out of reach, [`Fallback`] limits alone.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smallvec::SmallVec;
use tokio::sync::Notify;
use uuid::Uuid;

use super::rules::{MAX_WINDOWS, Window};
use super::store::WindowState;

/// Each window of a rule as it now stands: (calls remaining, time until the whole limit
/// is free). Held inline: a rule has at most [`MAX_WINDOWS`].
pub(crate) type Views = SmallVec<[(u64, Duration); MAX_WINDOWS]>;

/// Who a rule counts: a user or tenant id, an address, or a name (a platform token's
/// subject, a hashed account).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    Id(Uuid),
    Address(IpAddr),
    Name(Arc<str>),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Id(id) => write!(f, "{id}"),
            Subject::Address(address) => write!(f, "{address}"),
            Subject::Name(name) => f.write_str(name),
        }
    }
}

/// Local state is kept per compiled rule (its id) and subject.
pub(crate) type LocalKey = (u32, Subject);

/// One window as the last answer from Redis left it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    /// Calls left in Redis after the last grant (this replica's unspent tokens not
    /// included).
    pub remaining: u64,
    /// When the whole limit is free again.
    pub reset_at: Instant,
}

/// A grant's tokens, spendable here until the lease ends.
#[derive(Debug)]
pub(crate) struct Grant {
    /// Its id in Redis, for giving back what is left.
    pub id: Arc<str>,
    /// Its Redis keys (one per window).
    pub keys: Arc<[String]>,
    /// Tokens it carried.
    pub granted: u64,
    /// Tokens not yet spent.
    pub tokens: u64,
    /// After this, what is left goes back to Redis.
    pub lease_until: Instant,
}

/// What a replica knows of one rule and subject.
#[derive(Debug, Default)]
pub(crate) struct Allotment {
    /// Grants whose tokens may still be spent here, oldest first.
    pub grants: VecDeque<Grant>,
    pub windows: SmallVec<[Seen; MAX_WINDOWS]>,
    /// Rejected until then (remembered so a flood costs no trips to Redis).
    pub blocked_until: Option<Instant>,
    /// A trip to Redis for more tokens is under way: other calls spend what is left, or
    /// wait for it, instead of all asking at once.
    pub refilling: bool,
    /// Woken when a refill lands.
    pub refilled: Arc<Notify>,
}

impl Allotment {
    /// Tokens spendable now.
    fn tokens(&self, now: Instant) -> u64 {
        self.grants
            .iter()
            .filter(|g| g.lease_until > now)
            .map(|g| g.tokens)
            .sum()
    }
}

/// What the local state says about a call.
pub(crate) enum Local {
    /// A token was spent here; the windows as they now stand.
    Spent(Views),
    /// Rejected until the retry time; the windows as they stand.
    Blocked(Duration, Views),
    /// Another call is fetching tokens: wait for it, then spend again.
    Wait(Arc<Notify>),
    /// Only Redis can tell (and this call is the one to ask).
    Ask,
}

/// Shards of local state, so concurrent requests rarely share a lock.
pub(crate) struct Allotments {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::FixedState,
}

type Shard = HashMap<LocalKey, Allotment, foldhash::fast::FixedState>;

const SHARDS: usize = 16;

/// A refill is started ahead when a grant's tokens fall to this share of it, so calls
/// rarely find none left.
const REFILL_AT: u64 = 4;

/// What [`Allotments::spend`] found, and whether this call should fetch more tokens in
/// the background.
pub(crate) struct Spend {
    pub local: Local,
    pub refill_ahead: bool,
}

impl Allotments {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    fn shard(&self, key: &LocalKey) -> &Mutex<Shard> {
        let hash = self.hasher.hash_one(key);
        &self.shards[(hash as usize) % SHARDS]
    }

    /// Spends a token of `key` here if it has one, or reports a remembered rejection; a
    /// call that finds no token and no refill under way is the one to ask Redis.
    pub(crate) fn spend(&self, key: &LocalKey, now: Instant) -> Spend {
        let mut shard = lock(self.shard(key));
        // One look-up for a key seen before; the key is cloned only the first time.
        if let Some(allotment) = shard.get_mut(key) {
            return Self::spend_from(allotment, now);
        }
        Self::spend_from(shard.entry(key.clone()).or_default(), now)
    }

    fn spend_from(allotment: &mut Allotment, now: Instant) -> Spend {
        let view = |allotment: &Allotment, extra: u64| -> Views {
            allotment
                .windows
                .iter()
                .map(|w| {
                    (
                        w.remaining + extra,
                        w.reset_at.saturating_duration_since(now),
                    )
                })
                .collect()
        };
        let done = |local| Spend {
            local,
            refill_ahead: false,
        };
        if let Some(until) = allotment.blocked_until {
            if until > now {
                return done(Local::Blocked(until - now, view(allotment, 0)));
            }
            allotment.blocked_until = None;
        }
        let live = allotment
            .grants
            .iter_mut()
            .find(|g| g.tokens > 0 && g.lease_until > now);
        match live {
            Some(grant) => {
                grant.tokens -= 1;
                let batch = grant.granted;
                let left = allotment.tokens(now);
                let refill_ahead = !allotment.refilling && left * REFILL_AT <= batch;
                if refill_ahead {
                    allotment.refilling = true;
                }
                Spend {
                    local: Local::Spent(view(allotment, left)),
                    refill_ahead,
                }
            }
            None if allotment.refilling => done(Local::Wait(allotment.refilled.clone())),
            None => {
                allotment.refilling = true;
                done(Local::Ask)
            }
        }
    }

    /// Gives back a token spent on a call that was then rejected by another rule.
    pub(crate) fn unspend(&self, key: &LocalKey) {
        if let Some(allotment) = lock(self.shard(key)).get_mut(key)
            && let Some(grant) = allotment.grants.back_mut()
        {
            grant.tokens = (grant.tokens + 1).min(grant.granted);
        }
    }

    /// Records Redis's answer for `key` (a grant of tokens to spend here, the windows,
    /// a rejection's retry time) and wakes the calls waiting for it.
    pub(crate) fn record(
        &self,
        key: LocalKey,
        grant: Option<Grant>,
        windows: &[WindowState],
        blocked: Option<Duration>,
        now: Instant,
    ) {
        let mut shard = lock(self.shard(&key));
        let allotment = shard.entry(key).or_default();
        allotment.windows = windows
            .iter()
            .map(|w| Seen {
                remaining: w.remaining,
                reset_at: now + w.reset,
            })
            .collect();
        allotment.blocked_until = blocked.map(|retry| now + retry);
        allotment.grants.extend(grant);
        allotment.refilling = false;
        allotment.refilled.notify_waiters();
    }

    /// A trip to Redis for `key` gave no answer: the next call may try again.
    pub(crate) fn unanswered(&self, key: &LocalKey) {
        if let Some(allotment) = lock(self.shard(key)).get_mut(key) {
            allotment.refilling = false;
            allotment.refilled.notify_waiters();
        }
    }

    /// Drops what is no longer of use and hands back the grants whose lease ended with
    /// tokens unspent, to be given back to Redis.
    pub(crate) fn sweep(&self, now: Instant) -> Vec<Grant> {
        let mut unspent = Vec::new();
        for shard in self.shards.iter() {
            lock(shard).retain(|_, allotment| {
                while let Some(grant) = allotment.grants.front() {
                    let spent = grant.tokens == 0;
                    if !spent && grant.lease_until > now {
                        break;
                    }
                    let grant = allotment.grants.pop_front().expect("a front grant");
                    if !spent {
                        unspent.push(grant);
                    }
                }
                let blocked = allotment.blocked_until.is_some_and(|until| until > now);
                let known = allotment.windows.iter().any(|w| w.reset_at > now);
                !allotment.grants.is_empty() || blocked || known || allotment.refilling
            });
        }
        unspent
    }

    /// Entries held, for tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding it left plain counters behind: still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The in-process limiter used while Redis is out of reach: per window, a sliding
/// window counter (this window's count plus the last one's, weighted by how much of it
/// is still inside), each limit divided by `RATE_LIMIT_FALLBACK_REPLICAS`.
pub(crate) struct Fallback {
    counters: Mutex<HashMap<(LocalKey, u64), Counter>>,
    replicas: u64,
    start: Instant,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    /// Which window (`elapsed / period`) `current` counts.
    window: u64,
    current: u64,
    previous: u64,
}

impl Fallback {
    pub(crate) fn new(replicas: u64) -> Self {
        Self {
            counters: Mutex::default(),
            replicas: replicas.max(1),
            start: Instant::now(),
        }
    }

    /// Counts a call against every window of `key` if all allow it; the windows'
    /// (remaining, reset) and, when rejected, the retry time.
    pub(crate) fn spend(
        &self,
        key: &LocalKey,
        windows: &[Window],
        cost: u64,
        now: Instant,
    ) -> (Views, Option<Duration>) {
        let elapsed = now.saturating_duration_since(self.start);
        let mut counters = lock(&self.counters);
        if counters.len() > 100_000 {
            counters.clear(); // a bound on memory during a long outage
        }
        let mut views = Views::new();
        let mut retry = None;
        let mut entries = Vec::with_capacity(windows.len());
        for window in windows {
            let limit = window.limit.div_ceil(self.replicas);
            let period = window.period.as_millis().max(1) as u64;
            let at = elapsed.as_millis() as u64;
            let index = at / period;
            let counter = counters
                .entry((key.clone(), period))
                .or_default()
                .rolled(index);
            let inside = 1.0 - (at % period) as f64 / period as f64;
            let used = (counter.previous as f64 * inside).ceil() as u64 + counter.current;
            let reset = Duration::from_millis(period - at % period);
            if used + cost.max(1) > limit {
                retry = Some(retry.map_or(reset, |r: Duration| r.max(reset)));
            }
            views.push((limit.saturating_sub(used + cost), reset));
            entries.push(((key.clone(), period), counter));
        }
        if retry.is_none() {
            for (entry, mut counter) in entries {
                counter.current += cost;
                counters.insert(entry, counter);
            }
        }
        (views, retry)
    }
}

impl Counter {
    fn rolled(mut self, index: u64) -> Self {
        if index != self.window {
            self.previous = if index == self.window + 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.window = index;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LocalKey {
        (1, Subject::Name("a".into()))
    }

    #[test]
    fn tokens_are_spent_locally_until_the_lease_ends() {
        let allotments = Allotments::new();
        let now = Instant::now();
        assert!(matches!(allotments.spend(&key(), now).local, Local::Ask));
        assert!(
            matches!(allotments.spend(&key(), now).local, Local::Wait(_)),
            "one call asks Redis, the others wait for it"
        );
        let grant = Grant {
            id: "g".into(),
            keys: Arc::from(vec!["k".to_owned()]),
            granted: 3,
            tokens: 2,
            lease_until: now + Duration::from_secs(1),
        };
        let state = WindowState {
            remaining: 7,
            reset: Duration::from_secs(60),
            retry: Duration::ZERO,
        };
        allotments.record(key(), Some(grant), &[state], None, now);
        let first = allotments.spend(&key(), now);
        let Local::Spent(windows) = first.local else {
            panic!("not spent locally");
        };
        assert_eq!(windows[0].0, 8, "Redis's 7 and one token left here");
        assert!(!first.refill_ahead, "a third of the grant is left");
        let second = allotments.spend(&key(), now);
        assert!(matches!(second.local, Local::Spent(_)));
        assert!(second.refill_ahead, "the last token: fetch more ahead");
        assert!(matches!(
            allotments.spend(&key(), now).local,
            Local::Wait(_)
        ));

        let later = now + Duration::from_secs(2);
        assert!(allotments.sweep(later).is_empty(), "nothing was left");
    }

    #[test]
    fn unspent_tokens_are_handed_back_when_the_lease_ends() {
        let allotments = Allotments::new();
        let now = Instant::now();
        let grant = Grant {
            id: "g".into(),
            keys: Arc::from(vec![]),
            granted: 5,
            tokens: 4,
            lease_until: now + Duration::from_millis(10),
        };
        allotments.record(key(), Some(grant), &[], None, now);
        let back = allotments.sweep(now + Duration::from_millis(20));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].tokens, 4);
        assert_eq!(allotments.len(), 0, "nothing else was worth keeping");
    }

    #[test]
    fn rejections_are_remembered_until_their_retry_time() {
        let allotments = Allotments::new();
        let now = Instant::now();
        allotments.record(key(), None, &[], Some(Duration::from_secs(2)), now);
        assert!(matches!(
            allotments.spend(&key(), now).local,
            Local::Blocked(..)
        ));
        let later = now + Duration::from_secs(3);
        assert!(matches!(allotments.spend(&key(), later).local, Local::Ask));
    }

    #[test]
    fn the_fallback_divides_the_limit_among_replicas() {
        let fallback = Fallback::new(2);
        let windows = [Window {
            limit: 10,
            period: Duration::from_secs(3600),
        }];
        let now = Instant::now();
        let allowed = (0..20)
            .filter(|_| fallback.spend(&key(), &windows, 1, now).1.is_none())
            .count();
        assert_eq!(allowed, 5);
    }
}

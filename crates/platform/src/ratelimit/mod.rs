//! Rate limits, one budget per key across every replica of every service.
//!
//! Rules ([`rules`]) say who is counted (a token's user or tenant, a caller's address, a
//! sign-in account), for which methods and in which windows. The budget lives in Redis
//! ([`store`]): a log of grants per key and window that one script evaluates for all of a
//! request's windows at once, with Redis's clock, so a limit of N lets exactly N through
//! in any window-long stretch, however the calls spread over replicas.
//!
//! Far from a limit a grant carries a batch of tokens (an eighth of what is left), which
//! the replica spends in memory ([`local`]) for a short lease and gives back unspent; near
//! the limit every call asks Redis. A rejection is remembered until its retry time. So a
//! request far from its limits costs a lock and a map lookup per rule, and a flood over a
//! limit costs Redis one trip per retry period. `docs/rate-limits.md` has the design and
//! its measured cost.
//!
//! Redis out of reach (its own short timeout, then a breaker) switches the replica to
//! an in-process limiter ([`local::Fallback`]) until Redis answers: requests never wait
//! on the limiter longer than `RATE_LIMIT_TIMEOUT`, and never fail because of it.
//!
//! Tenants' plans ([`plans`]) add or replace rules for a tenant at run time. A call that
//! one service makes to another on a caller's behalf carries a proof ([`hop`]) that the
//! caller was counted at the edge, so it is not counted again.

mod args;
pub(crate) mod headers;
mod local;
mod metrics;
pub mod plans;
pub mod rules;
mod store;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::metrics::Counter;
use smallvec::SmallVec;
use tokio_util::sync::CancellationToken;

use self::local::{Allotments, Fallback, Grant, Local, LocalKey, Subject};
use self::plans::Plans;
use self::store::{RuleQuery, Store, Unanswered};
use crate::auth::{Caller, SubjectKey};
use crate::config::CacheArgs;
use crate::error::{Error, Result};

pub use self::args::RateLimitArgs;
pub use self::rules::{DEFAULT_RULES_HELP, Key, Mode, Rule, RuleSpec, WindowSpec};
pub use crate::error::{RETRY_PUSHBACK, Rejection, rate_limited_status};

/// Most tokens one grant carries: far from a limit of millions, one trip to Redis per ten
/// thousand calls. At 100,000 calls a second a grant lasts 100 ms and the next is fetched
/// with 25 ms to spare, so calls rarely find the grant empty and wait for a trip (with a
/// thousand they did, whenever Redis took more than 2.5 ms on a busy machine).
const MAX_BATCH: u64 = 10_000;
/// The longest lease of a batch; shorter for short windows (a twentieth of the window).
const MAX_LEASE: Duration = Duration::from_secs(1);
/// How often leases that ended are swept and their unspent tokens given back.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// A rule as applied to one method, with its decision counters registered up front.
pub(crate) struct Applied {
    pub rule: Arc<Rule>,
    /// allowed, rejected, shadow_rejected.
    counters: [Counter; 3],
}

/// The rules that apply to each method, for one set of rules (the defaults, or a plan's).
pub(crate) struct Table {
    by_method: Vec<Arc<[Applied]>>,
}

impl Table {
    fn new(service: &'static str, rules: &[Arc<Rule>], methods: &Methods) -> Self {
        let by_method = methods
            .names
            .iter()
            .map(|(path, name)| {
                rules
                    .iter()
                    .filter(|rule| rule.key != Key::Account && rule.matches(path))
                    .map(|rule| Applied {
                        rule: rule.clone(),
                        counters: metrics::decision_counters(service, name, &rule.name),
                    })
                    .collect()
            })
            .collect();
        Self { by_method }
    }
}

/// The methods a server serves, numbered.
pub(crate) struct Methods {
    index: HashMap<&'static str, usize, foldhash::fast::FixedState>,
    /// (`package.Service/Method`, `Method`).
    names: Vec<(&'static str, &'static str)>,
}

/// Limits calls; cheap to clone. `None` of it where `RATE_LIMIT_ENABLED=false`.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    service: &'static str,
    defaults: Vec<Arc<Rule>>,
    mode: Mode,
    /// Set once the server knows its methods.
    bound: OnceLock<(Methods, Table)>,
    plans: Plans,
    store: Option<Arc<Store>>,
    allotments: Allotments,
    fallback: Fallback,
    /// Longest a call waits for another's trip to Redis (`RATE_LIMIT_TIMEOUT`).
    wait: Duration,
    /// Whether every response carries the limit state (`RATE_LIMIT_HEADERS`).
    headers: bool,
    hops: crate::hop::HopKey,
    grant_prefix: String,
    grants: AtomicU64,
    epoch: Instant,
    epoch_unix: Duration,
}

impl RateLimiter {
    /// The limiter of `service`, from its settings; a bad rule or setting is an error
    /// naming it. `None` when limits are off.
    pub fn new(
        service: &'static str,
        args: &RateLimitArgs,
        cache: &CacheArgs,
        hops: crate::hop::HopKey,
    ) -> Result<Option<Self>> {
        if !args.rate_limit_enabled {
            return Ok(None);
        }
        let defaults = rules::configured(args)?;
        let store = match &cache.redis_url {
            Some(url) => Some(
                Store::new(
                    url,
                    &cache.cache_key_prefix,
                    args.rate_limit_timeout,
                    service,
                )
                .map_err(|e| Error::internal(format!("REDIS_URL: {e}")))?
                .shared(),
            ),
            None => None,
        };
        metrics::fallback(service, store.is_none());
        Ok(Some(Self {
            inner: Arc::new(Inner {
                service,
                defaults,
                mode: args.rate_limit_mode,
                bound: OnceLock::new(),
                plans: Plans::new(args.rate_limit_plan_refresh),
                store,
                allotments: Allotments::new(),
                fallback: Fallback::new(args.rate_limit_fallback_replicas),
                wait: args.rate_limit_timeout,
                headers: args.rate_limit_headers,
                hops,
                grant_prefix: format!("{:016x}", rand::random::<u64>()),
                grants: AtomicU64::new(0),
                epoch: Instant::now(),
                epoch_unix: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default(),
            }),
        }))
    }

    /// The rules a process started with.
    pub fn defaults(&self) -> &[Arc<Rule>] {
        &self.inner.defaults
    }

    /// Fixes the methods the server serves (`/package.Service/Method`, service, method)
    /// and registers every counter a rule may need. Called once by the server.
    pub(crate) fn bind(&self, methods: &[(&'static str, &'static str, &'static str)]) {
        let methods = Methods {
            index: methods
                .iter()
                .enumerate()
                .map(|(i, (path, _, _))| (*path, i))
                .collect(),
            names: methods
                .iter()
                .map(|(path, _, name)| (&path[1..], *name))
                .collect(),
        };
        let table = Table::new(self.inner.service, &self.inner.defaults, &methods);
        let _ = self.inner.bound.set((methods, table));
    }

    /// Follows tenants' plans and gives back unspent tokens, until `stop`.
    pub(crate) async fn run_upkeep(self, stop: CancellationToken) {
        let plans = {
            let this = self.clone();
            let stop = stop.clone();
            async move {
                let Some(store) = this.inner.store.clone() else {
                    return;
                };
                this.inner
                    .plans
                    .follow(&store, stop, |specs| this.plan_table(specs))
                    .await;
            }
        };
        let sweep = async {
            let mut ticks = tokio::time::interval(SWEEP_EVERY);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                let unspent = self.inner.allotments.sweep(Instant::now());
                if let Some(store) = &self.inner.store {
                    for grant in unspent {
                        store
                            .refund(&grant.keys, &grant.id, grant.tokens, grant.granted)
                            .await;
                    }
                }
            }
        };
        tokio::join!(plans, sweep);
    }

    /// A tenant's plan as rules and a table of them per method: the plan's rules, and
    /// the defaults it does not replace by name.
    fn plan_table(&self, specs: &[RuleSpec]) -> Option<plans::Plan> {
        let (methods, _) = self.inner.bound.get()?;
        let own = match rules::compile(specs, "rules", self.inner.mode) {
            Ok(own) => own,
            Err(error) => {
                tracing::warn!(%error, "a stored plan does not compile; ignored");
                return None;
            }
        };
        let mut all: Vec<Arc<Rule>> = self
            .inner
            .defaults
            .iter()
            .filter(|rule| !own.iter().any(|o| o.name == rule.name))
            .cloned()
            .collect();
        all.extend(own);
        Some(plans::Plan {
            table: Table::new(self.inner.service, &all, methods),
        })
    }

    /// A grant id no other grant of any replica has.
    fn next_grant_id(&self) -> String {
        let n = self.inner.grants.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.inner.grant_prefix)
    }

    /// The proof that a call was counted here, for the calls it makes to other services.
    pub(crate) fn hop_key(&self) -> &crate::hop::HopKey {
        &self.inner.hops
    }

    /// Decides a call of `path` by `caller` (none: no token) from `address`. Resolved in
    /// memory when it can be (`Ok`), else the rest is for [`Self::finish`].
    pub(crate) fn begin(
        &self,
        path: &str,
        caller: Option<&Caller>,
        address: Option<IpAddr>,
    ) -> Option<Result<Decision, Pending>> {
        let (methods, defaults) = self.inner.bound.get()?;
        let method = *methods.index.get(path)?;
        let plan = caller
            .and_then(|caller| caller.tenant)
            .and_then(|tenant| self.inner.plans.of(tenant));
        // Borrowed: only a call that must wait for Redis takes a reference of its own.
        let applied = match &plan {
            Some(plan) => &plan.table.by_method[method],
            None => &defaults.by_method[method],
        };
        if applied.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut checks = Checks::new();
        for (index, applied) in applied.iter().enumerate() {
            let Some(subject) = subject_of(applied.rule.key, caller, address) else {
                continue;
            };
            let key = (applied.rule.id, subject);
            let spend = self.inner.allotments.spend(&key, now);
            if spend.refill_ahead {
                self.refill(applied.rule.clone(), key.clone());
            }
            checks.push(Check {
                index,
                key,
                state: spend.local,
            });
        }
        if checks
            .iter()
            .any(|check| matches!(check.state, Local::Ask | Local::Wait(_)))
        {
            Some(Err(Pending {
                applied: applied.clone(),
                checks,
                now,
            }))
        } else {
            Some(Ok(self.decide(applied, &checks, now)))
        }
    }

    /// Asks Redis (or, while it is out of reach, the in-process limiter) what memory
    /// could not tell, and decides.
    pub(crate) async fn finish(&self, mut pending: Pending) -> Decision {
        // Calls that found another fetching tokens wait for it (at most the limiter's
        // own timeout), then spend again; only if there is still none do they ask.
        for check in &mut pending.checks {
            let Local::Wait(refilled) = &check.state else {
                continue;
            };
            let _ = tokio::time::timeout(self.inner.wait, refilled.notified()).await;
            check.state = match self
                .inner
                .allotments
                .spend(&check.key, Instant::now())
                .local
            {
                Local::Wait(_) => Local::Ask,
                other => other,
            };
        }
        let asked: SmallVec<[usize; INLINE_CHECKS]> = (0..pending.checks.len())
            .filter(|&i| matches!(pending.checks[i].state, Local::Ask))
            .collect();
        let answered = match &self.inner.store {
            Some(store) => self.ask_store(store, &mut pending, &asked).await,
            None => false,
        };
        if !answered {
            for &i in &asked {
                let check = &mut pending.checks[i];
                self.inner.allotments.unanswered(&check.key);
                let rule = &pending.applied[check.index].rule;
                let (views, retry) =
                    self.inner
                        .fallback
                        .spend(&check.key, &rule.windows, 1, pending.now);
                check.state = match retry {
                    Some(retry) => Local::Blocked(retry, views),
                    None => Local::Spent(views),
                };
            }
        }
        self.decide(&pending.applied, &pending.checks, pending.now)
    }

    /// One trip to Redis for every check memory could not decide; false when Redis did
    /// not answer.
    async fn ask_store(&self, store: &Store, pending: &mut Pending, asked: &[usize]) -> bool {
        let queries: Vec<RuleQuery> = asked
            .iter()
            .map(|&i| {
                let check = &pending.checks[i];
                let rule = &pending.applied[check.index].rule;
                store.query(rule, &check.key.1)
            })
            .collect();
        let lease = lease_for(queries.iter().flat_map(|q| q.windows.iter()));
        let grant_id = self.next_grant_id();
        let evaluation = match store
            .evaluate(&queries, 1, MAX_BATCH, lease, &grant_id)
            .await
        {
            Ok(evaluation) => evaluation,
            Err(Unanswered::Skipped | Unanswered::Failed) => return false,
        };
        let now = Instant::now();
        let grant_id: Arc<str> = grant_id.into();
        for ((&i, outcome), query) in asked.iter().zip(&evaluation.rules).zip(queries) {
            let check = &mut pending.checks[i];
            let retry = outcome.windows.iter().map(|w| w.retry).max();
            let blocked = (!outcome.passed).then(|| retry.unwrap_or_default());
            let grant = (outcome.granted > 1).then(|| Grant {
                id: grant_id.clone(),
                keys: query.keys.into(),
                granted: outcome.granted,
                tokens: outcome.granted - 1,
                lease_until: now + lease,
            });
            let spare = grant.as_ref().map_or(0, |g| g.tokens);
            self.inner
                .allotments
                .record(check.key.clone(), grant, &outcome.windows, blocked, now);
            let views = outcome
                .windows
                .iter()
                .map(|w| (w.remaining + spare, w.reset))
                .collect();
            check.state = match blocked {
                Some(retry) => Local::Blocked(retry, views),
                None => Local::Spent(views),
            };
        }
        true
    }

    /// Fetches more tokens of `rule` for `key` in the background, before calls run out
    /// (a call that spent a grant down to a quarter asked for it).
    fn refill(&self, rule: Arc<Rule>, key: LocalKey) {
        let this = self.clone();
        tokio::spawn(async move {
            let Some(store) = &this.inner.store else {
                this.inner.allotments.unanswered(&key);
                return;
            };
            let query = store.query(&rule, &key.1);
            let lease = lease_for(&query.windows);
            let grant_id = this.next_grant_id();
            let evaluation = store
                .evaluate(std::slice::from_ref(&query), 1, MAX_BATCH, lease, &grant_id)
                .await;
            let Ok(evaluation) = evaluation else {
                this.inner.allotments.unanswered(&key);
                return;
            };
            let outcome = &evaluation.rules[0];
            let now = Instant::now();
            // Every token is for later calls; a refused refill blocks nothing here (the
            // next call that finds no token asks, and learns its retry time).
            let grant = (outcome.granted > 0).then(|| Grant {
                id: grant_id.into(),
                keys: query.keys.into(),
                granted: outcome.granted,
                tokens: outcome.granted,
                lease_until: now + lease,
            });
            this.inner
                .allotments
                .record(key, grant, &outcome.windows, None, now);
        });
    }

    /// The decision once every check is known: counted, and undone locally when rejected;
    /// with the limit state's fields when responses carry them (rejections always do).
    fn decide(&self, applied: &[Applied], checks: &[Check], now: Instant) -> Decision {
        let mut allowed = true;
        let mut windows = SmallVec::new();
        let mut rejections = Vec::new();
        for check in checks {
            let rule_applied = &applied[check.index];
            let rule = &rule_applied.rule;
            let (views, retry) = match &check.state {
                Local::Spent(views) => (views, None),
                Local::Blocked(retry, views) => (views, Some(*retry)),
                Local::Ask | Local::Wait(_) => continue,
            };
            for (window, view) in views.iter().enumerate() {
                windows.push(Reported {
                    applied: check.index,
                    window,
                    remaining: if retry.is_some() { 0 } else { view.0 },
                    reset: view.1,
                });
            }
            match (retry, rule.mode) {
                (None, _) => {}
                (Some(_), Mode::Shadow) => rule_applied.counters[2].increment(1),
                (Some(retry), Mode::Enforce) => {
                    allowed = false;
                    rejections.push(Rejection {
                        rule: rule.name.clone(),
                        subject: format!("{}:{}", rule.key.name(), check.key.1),
                        retry,
                    });
                }
            }
        }
        for check in checks {
            let rule_applied = &applied[check.index];
            match &check.state {
                Local::Spent(_) if allowed => rule_applied.counters[0].increment(1),
                Local::Spent(_) => {
                    self.inner.allotments.unspend(&check.key);
                    rule_applied.counters[1].increment(1);
                }
                Local::Blocked(..) if rule_applied.rule.mode == Mode::Enforce => {
                    rule_applied.counters[1].increment(1)
                }
                _ => {}
            }
        }
        let report = Report {
            applied,
            windows,
            unix_now: self.inner.epoch_unix + now.duration_since(self.inner.epoch),
        };
        let fields = (self.inner.headers || !allowed)
            .then(|| headers::fields(&report))
            .flatten();
        Decision {
            allowed,
            rejections,
            fields,
        }
    }

    /// A sign-in attempt on `account` (tenant slug and email) through `method`
    /// (`/package.Service/Method`): counted against the `account` rules before the
    /// password is checked, so concurrent guesses cannot slip past the limit, and given
    /// back when it succeeds. `RESOURCE_EXHAUSTED` when the account's failures are spent.
    pub async fn attempt(&self, method: &str, tenant: &str, email: &str) -> Result<Attempt> {
        let rules: Vec<&Arc<Rule>> = self
            .inner
            .defaults
            .iter()
            .filter(|rule| rule.key == Key::Account && rule.matches(&method[1..]))
            .collect();
        let subject = Subject::Name(account_digest(tenant, email).into());
        let mut spent = Vec::new();
        for rule in rules {
            let key = (rule.id, subject.clone());
            let grant_id = self.next_grant_id();
            let verdict = self.spend_exactly(rule, &key, &grant_id).await;
            let name = metrics::short_method(method);
            let result = match (&verdict, rule.mode) {
                (None, _) => "allowed",
                (Some(_), Mode::Shadow) => "shadow_rejected",
                (Some(_), Mode::Enforce) => "rejected",
            };
            metrics::decision(self.inner.service, name, &rule.name, result);
            match (verdict, rule.mode) {
                (Some(retry), Mode::Enforce) => {
                    return Err(Error::RateLimited(vec![Rejection {
                        rule: rule.name.clone(),
                        subject: "account".to_owned(),
                        retry,
                    }]));
                }
                (None, _) => spent.push((rule.clone(), key, grant_id)),
                _ => {}
            }
        }
        Ok(Attempt {
            limiter: self.clone(),
            spent,
        })
    }

    /// One token of `rule` for `key`, straight from Redis (no batch, no lease), else the
    /// in-process limiter; the retry time when there is none.
    async fn spend_exactly(&self, rule: &Rule, key: &LocalKey, grant_id: &str) -> Option<Duration> {
        if let Some(store) = &self.inner.store {
            let mut query = store.query(rule, &key.1);
            query.enforce = true;
            if let Ok(evaluation) = store
                .evaluate(&[query], 1, 1, Duration::ZERO, grant_id)
                .await
            {
                let outcome = &evaluation.rules[0];
                return (!outcome.passed)
                    .then(|| outcome.windows.iter().map(|w| w.retry).max())
                    .flatten();
            }
        }
        self.inner
            .fallback
            .spend(key, &rule.windows, 1, Instant::now())
            .1
    }

    /// Gives back the token of grant `grant_id` of `rule` for `key` (a sign-in that
    /// succeeded).
    async fn give_back(&self, rule: &Rule, key: &LocalKey, grant_id: &str) {
        if let Some(store) = &self.inner.store {
            let query = store.query(rule, &key.1);
            store.refund(&query.keys, grant_id, 1, 1).await;
        }
    }
}

/// A sign-in attempt, counted as failed unless [`Attempt::succeeded`] says otherwise.
pub struct Attempt {
    limiter: RateLimiter,
    spent: Vec<(Arc<Rule>, LocalKey, String)>,
}

impl Attempt {
    /// The sign-in succeeded: the attempt does not count against the account.
    pub async fn succeeded(self) {
        for (rule, key, grant_id) in &self.spent {
            self.limiter.give_back(rule, key, grant_id).await;
        }
    }
}

/// How long tokens of a grant over `windows` may be spent: a twentieth of the shortest
/// window, at most [`MAX_LEASE`].
fn lease_for<'a>(windows: impl IntoIterator<Item = &'a (u64, Duration)>) -> Duration {
    let shortest = windows.into_iter().map(|w| w.1).min().unwrap_or(MAX_LEASE);
    (shortest / 20).min(MAX_LEASE)
}

/// What a caller is counted as under a rule of `key`, if the rule applies to it.
fn subject_of(key: Key, caller: Option<&Caller>, address: Option<IpAddr>) -> Option<Subject> {
    match (key, caller) {
        (Key::User, Some(caller)) => Some(match caller.subject_key() {
            SubjectKey::Id(id) => Subject::Id(*id),
            SubjectKey::Name(name) => Subject::Name(name.clone()),
        }),
        (Key::Tenant, Some(caller)) => caller.tenant.map(Subject::Id),
        (Key::Address, None) => address.map(Subject::Address),
        _ => None,
    }
}

/// An account's name in keys: a digest, so no email is stored in Redis.
fn account_digest(tenant: &str, email: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(tenant.as_bytes());
    hash.update([0]);
    hash.update(email.trim().to_lowercase().as_bytes());
    let digest = hash.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Rules one call is checked against, held inline (a method rarely has more).
const INLINE_CHECKS: usize = 4;
type Checks = SmallVec<[Check; INLINE_CHECKS]>;

/// One rule's check within a call.
pub(crate) struct Check {
    index: usize,
    key: LocalKey,
    state: Local,
}

/// A call that memory alone could not decide.
pub(crate) struct Pending {
    applied: Arc<[Applied]>,
    checks: Checks,
    now: Instant,
}

/// One window's state, for the response's metadata.
pub(crate) struct Reported {
    /// Which of the report's rules ([`Report::rule`]).
    pub applied: usize,
    pub window: usize,
    pub remaining: u64,
    pub reset: Duration,
}

/// Every window of every rule that counted a call, as the call left them.
pub(crate) struct Report<'a> {
    /// The rules of the call's method.
    applied: &'a [Applied],
    /// Inline for up to two rules of two windows each.
    pub windows: SmallVec<[Reported; 4]>,
    pub unix_now: Duration,
}

impl Report<'_> {
    /// The rule `reported` is a window of.
    pub(crate) fn rule(&self, reported: &Reported) -> &Rule {
        &self.applied[reported.applied].rule
    }
}

/// A call decided.
pub(crate) struct Decision {
    pub allowed: bool,
    pub rejections: Vec<Rejection>,
    /// The limit state's fields, for the response.
    pub fields: Option<headers::Fields>,
}

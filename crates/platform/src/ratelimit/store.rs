//! The shared budget in Redis: a log of grants per key and window, kept by one script
//! that evaluates every window of a request at once, with Redis's own clock.
//!
//! A grant is one member `<count>:<id>` of a sorted set scored by when it stops counting
//! (granted + window, plus the lease when it carries tokens for later calls); a string
//! beside the set holds the sum of live counts. A window allows a call while that sum
//! plus the call stays within the limit: any window-long interval holds at most `limit`
//! calls, with no edge where two windows' worth get through.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::local::Subject;
use super::rules::{Key, Mode, Rule};
use crate::breaker::{Breaker, Permit};

/// Evaluates and, when every enforced rule allows, grants.
///
/// KEYS: per window of every rule: log key, sum key.
/// ARGV: cost (0 only checks), lease (ms), most tokens one grant may carry, grant id,
/// rule count; then per rule: window count, enforce (1/0); then per window: limit, period
/// (ms).
/// Returns: now (ms), allowed (1/0), then per rule: passed (1/0), granted, then per
/// window: remaining after the grant, ms until the whole limit is free again, ms until
/// the call would fit (0 when it fits).
const EVALUATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local most = tonumber(ARGV[3])
local gid = ARGV[4]
local a, k = 6, 1
local rules = {}
local allowed = true
for r = 1, tonumber(ARGV[5]) do
  local rule = { wins = {}, passed = true, batch = most }
  local count = tonumber(ARGV[a]); rule.enforce = ARGV[a + 1] == '1'; a = a + 2
  for w = 1, count do
    local limit, period = tonumber(ARGV[a]), tonumber(ARGV[a + 1]); a = a + 2
    local log, sum = KEYS[k], KEYS[k + 1]; k = k + 2
    local gone = redis.call('ZRANGEBYSCORE', log, '-inf', now)
    if #gone > 0 then
      local freed = 0
      for _, member in ipairs(gone) do freed = freed + tonumber(string.match(member, '^(%d+):')) end
      redis.call('ZREMRANGEBYSCORE', log, '-inf', now)
      redis.call('DECRBY', sum, freed)
    end
    local used = tonumber(redis.call('GET', sum) or '0')
    local need = math.max(cost, 1)
    local win = { log = log, sum = sum, limit = limit, period = period, used = used, retry = 0 }
    if used + need > limit then
      rule.passed = false
      local excess, freed = used + need - limit, 0
      local live = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
      for i = 1, #live, 2 do
        freed = freed + tonumber(string.match(live[i], '^(%d+):'))
        if freed >= excess then win.retry = tonumber(live[i + 1]) - now; break end
      end
      if win.retry <= 0 then win.retry = period end
    else
      rule.batch = math.min(rule.batch, math.max(cost, math.floor((limit - used) / 8)))
    end
    rule.wins[w] = win
  end
  if rule.enforce and not rule.passed then allowed = false end
  rules[r] = rule
end
local out = { now, allowed and 1 or 0 }
for _, rule in ipairs(rules) do
  local granted = 0
  if allowed and rule.passed and cost > 0 then granted = rule.batch end
  out[#out + 1] = rule.passed and 1 or 0
  out[#out + 1] = granted
  for _, win in ipairs(rule.wins) do
    local reset = 0
    if granted > 0 then
      local until_ms = now + win.period
      if granted > cost then until_ms = until_ms + lease end
      redis.call('ZADD', win.log, until_ms, granted .. ':' .. gid)
      redis.call('INCRBY', win.sum, granted)
      redis.call('PEXPIRE', win.log, win.period + lease + 1000)
      redis.call('PEXPIRE', win.sum, win.period + lease + 1000)
      win.used = win.used + granted
    end
    local last = redis.call('ZRANGE', win.log, -1, -1, 'WITHSCORES')
    if #last > 0 then reset = tonumber(last[2]) - now end
    out[#out + 1] = math.max(win.limit - win.used, 0)
    out[#out + 1] = math.max(reset, 0)
    out[#out + 1] = win.retry
  end
end
return out
";

/// Gives back the unspent tokens of a grant: its count drops by ARGV[2].
/// KEYS: log key, sum key per window. ARGV: grant id, tokens returned, tokens granted.
const REFUND: &str = r"
local member = ARGV[3] .. ':' .. ARGV[1]
local left = tonumber(ARGV[3]) - tonumber(ARGV[2])
for i = 1, #KEYS, 2 do
  local score = redis.call('ZSCORE', KEYS[i], member)
  if score then
    redis.call('ZREM', KEYS[i], member)
    if left > 0 then redis.call('ZADD', KEYS[i], score, left .. ':' .. ARGV[1]) end
    redis.call('DECRBY', KEYS[i + 1], ARGV[2])
  end
end
return 1
";

/// One rule of a request, as the script sees it.
pub(crate) struct RuleQuery {
    /// Redis key base per window (`…:log` and `…:sum` are added).
    pub keys: Vec<String>,
    /// (limit, period) per window.
    pub windows: Vec<(u64, Duration)>,
    /// Whether a failure rejects the call.
    pub enforce: bool,
}

/// One window's state after an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowState {
    /// Calls left in the window after this grant.
    pub remaining: u64,
    /// Until the whole limit is free again.
    pub reset: Duration,
    /// Until the call would fit; zero when it fits.
    pub retry: Duration,
}

/// One rule's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleOutcome {
    /// Whether every window allowed the call.
    pub passed: bool,
    /// Tokens granted (the call's and the batch spent locally after it).
    pub granted: u64,
    /// Per window.
    pub windows: Vec<WindowState>,
}

/// What the script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Evaluation {
    /// Whether every enforced rule allowed the call.
    pub allowed: bool,
    /// Per rule, in the order asked.
    pub rules: Vec<RuleOutcome>,
}

/// Why Redis gave no answer.
#[derive(Debug)]
pub(crate) enum Unanswered {
    /// The breaker is open: not even tried.
    Skipped,
    /// It failed or timed out (counted, and fed to the breaker).
    Failed,
}

/// The Redis side of the limiter: bounded by its own timeout and breaker.
pub(crate) struct Store {
    client: redis::Client,
    timeout: Duration,
    prefix: String,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    /// For reads off the request path (plans), with a longer timeout.
    background: tokio::sync::Mutex<Option<ConnectionManager>>,
    breaker: Breaker,
    evaluate: redis::Script,
    refund: redis::Script,
    service: &'static str,
}

/// Consecutive failures that switch the limiter to deciding alone.
const BREAKER_THRESHOLD: u32 = 3;
/// How long it then decides alone before trying Redis again.
const BREAKER_COOLDOWN: Duration = Duration::from_secs(1);

impl Store {
    pub(crate) fn new(
        url: &str,
        prefix: &str,
        timeout: Duration,
        service: &'static str,
    ) -> redis::RedisResult<Self> {
        Ok(Self {
            client: crate::redis_client::open(url)?,
            timeout,
            prefix: prefix.to_owned(),
            conn: tokio::sync::Mutex::new(None),
            background: tokio::sync::Mutex::new(None),
            breaker: Breaker::new(BREAKER_THRESHOLD, BREAKER_COOLDOWN),
            evaluate: redis::Script::new(EVALUATE),
            refund: redis::Script::new(REFUND),
            service,
        })
    }

    /// The query of `rule`'s windows for `subject`.
    pub(crate) fn query(&self, rule: &Rule, subject: &Subject) -> RuleQuery {
        let subject = redis_subject(rule.key, subject);
        RuleQuery {
            keys: rule
                .windows
                .iter()
                .map(|w| {
                    format!(
                        "{}:rl:{}:{}:{subject}",
                        self.prefix,
                        rule.name,
                        w.period.as_secs()
                    )
                })
                .collect(),
            windows: rule.windows.iter().map(|w| (w.limit, w.period)).collect(),
            enforce: rule.mode == Mode::Enforce,
        }
    }

    /// Evaluates `rules` for a call of `cost` (0 checks without spending); grants carry
    /// up to `most` tokens usable for `lease`.
    pub(crate) async fn evaluate(
        &self,
        rules: &[RuleQuery],
        cost: u64,
        most: u64,
        lease: Duration,
        grant_id: &str,
    ) -> Result<Evaluation, Unanswered> {
        let mut invocation = self.evaluate.prepare_invoke();
        invocation
            .arg(cost)
            .arg(lease.as_millis() as u64)
            .arg(most.max(cost))
            .arg(grant_id)
            .arg(rules.len());
        for rule in rules {
            invocation
                .arg(rule.windows.len())
                .arg(if rule.enforce { 1 } else { 0 });
            for (key, (limit, period)) in rule.keys.iter().zip(&rule.windows) {
                invocation
                    .key(format!("{key}:log"))
                    .key(format!("{key}:sum"))
                    .arg(*limit)
                    .arg(period.as_millis() as u64);
            }
        }
        let raw: Vec<i64> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        parse(&raw, rules).ok_or_else(|| {
            tracing::error!("the rate limit script answered in an unknown shape");
            Unanswered::Failed
        })
    }

    /// Returns `unspent` of the `granted` tokens of grant `grant_id` under `keys`.
    pub(crate) async fn refund(&self, keys: &[String], grant_id: &str, unspent: u64, granted: u64) {
        let mut invocation = self.refund.prepare_invoke();
        for key in keys {
            invocation
                .key(format!("{key}:log"))
                .key(format!("{key}:sum"));
        }
        invocation.arg(grant_id).arg(unspent).arg(granted);
        let _: Result<i64, _> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
    }

    /// Runs one command through the breaker, bounded by the timeout.
    async fn run<T, F, Fut>(&self, command: F) -> Result<T, Unanswered>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let permit = self.breaker.permit();
        if permit == Permit::Refuse {
            return Err(Unanswered::Skipped);
        }
        let outcome = tokio::time::timeout(self.timeout, async {
            let conn = self.connection().await?;
            command(conn).await
        })
        .await;
        match outcome {
            Ok(Ok(value)) => {
                // Only a change of state is logged and shown, not every answer.
                if self.breaker.is_open() || permit == Permit::Probe {
                    tracing::info!("rate limits are shared through redis again");
                    super::metrics::fallback(self.service, false);
                }
                self.breaker.succeeded(permit);
                Ok(value)
            }
            failed => {
                let cause = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => "no answer within RATE_LIMIT_TIMEOUT".to_owned(),
                };
                metrics::counter!("ratelimit_backend_errors_total", "service" => self.service)
                    .increment(1);
                if self.breaker.failed(permit) && permit != Permit::Probe {
                    tracing::warn!(%cause, "redis is out of reach: each replica limits alone");
                    super::metrics::fallback(self.service, true);
                }
                Err(Unanswered::Failed)
            }
        }
    }

    /// Runs `command` off the request path (the breaker is not consulted), bounded by
    /// `timeout`; `None` when Redis does not answer. The command gets the key prefix of
    /// the limiter's keys' owner (`CACHE_KEY_PREFIX`).
    pub(crate) async fn read<T, F, Fut>(&self, timeout: Duration, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager, String) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let prefix = self.prefix.clone();
        let outcome = tokio::time::timeout(timeout, async {
            let conn = Self::connect(&self.client, &self.background, timeout).await?;
            command(conn, prefix).await
        })
        .await;
        match outcome {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                tracing::debug!(%error, "rate limit plans not read");
                None
            }
            Err(_) => None,
        }
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        Self::connect(&self.client, &self.conn, self.timeout).await
    }

    async fn connect(
        client: &redis::Client,
        slot: &tokio::sync::Mutex<Option<ConnectionManager>>,
        timeout: Duration,
    ) -> redis::RedisResult<ConnectionManager> {
        let mut held = slot.lock().await;
        if let Some(conn) = held.as_ref() {
            return Ok(conn.clone());
        }
        let conn = crate::redis_client::manager(client, timeout).await?;
        *held = Some(conn.clone());
        Ok(conn)
    }

    /// A shared handle for tasks (refunds) that outlive a request.
    pub(crate) fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}

/// The subject's part of a Redis key.
fn redis_subject(key: Key, subject: &Subject) -> String {
    let prefix = match key {
        Key::User => "u",
        Key::Tenant => "t",
        Key::Address => "a",
        Key::Account => "acct",
    };
    format!("{prefix}:{subject}")
}

fn parse(raw: &[i64], rules: &[RuleQuery]) -> Option<Evaluation> {
    let ms = |value: i64| Duration::from_millis(u64::try_from(value).unwrap_or(0));
    let mut at = 2;
    let allowed = *raw.get(1)? == 1;
    let mut outcomes = Vec::with_capacity(rules.len());
    for rule in rules {
        let passed = *raw.get(at)? == 1;
        let granted = u64::try_from(*raw.get(at + 1)?).ok()?;
        at += 2;
        let mut windows = Vec::with_capacity(rule.windows.len());
        for _ in &rule.windows {
            windows.push(WindowState {
                remaining: u64::try_from(*raw.get(at)?).unwrap_or(0),
                reset: ms(*raw.get(at + 1)?),
                retry: ms(*raw.get(at + 2)?),
            });
            at += 3;
        }
        outcomes.push(RuleOutcome {
            passed,
            granted,
            windows,
        });
    }
    Some(Evaluation {
        allowed,
        rules: outcomes,
    })
}

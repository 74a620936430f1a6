//! The two load models. Closed: virtual users, as many as the plan says at each moment,
//! each calling, then thinking (what Locust and the seeds measure). Open: calls arrive at
//! a constant rate whatever the answers take, and each call's latency counts from when it
//! was meant to start, so a stalled server cannot hide behind a slowed client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::plan::Plan;
use super::scenario::Scenario;
use super::stats::Stats;
use super::virtual_user::VirtualUser;
use super::world::{Channels, World};

/// What both models need.
pub(crate) struct Load {
    pub(crate) scenario: Arc<Scenario>,
    pub(crate) world: Arc<World>,
    pub(crate) channels: Channels,
    pub(crate) stats: Arc<Stats>,
    pub(crate) timeout: Duration,
    pub(crate) progress_every: Duration,
}

/// Makes one call of a step picked by weight, and records it.
async fn one_call(load: &Load, user: &VirtualUser, rng: &mut StdRng, began: Option<Instant>) {
    let index = load
        .scenario
        .pick(rng.random_range(0..load.scenario.total_weight()));
    let step = &load.scenario.steps[index];
    user.prepare(step, rng).await;
    let began = began.unwrap_or_else(Instant::now);
    let answer = user.call(step, load.stats.wants_policy(index), rng).await;
    if let Some(policy) = &answer.policy {
        load.stats.note_policy(index, policy);
    }
    load.stats.record(index, began, answer.outcome);
}

/// Runs the plan's virtual users (the closed model) until the plan ends.
pub(crate) async fn closed(load: Arc<Load>, plan: &Plan) {
    let started = load.stats.started();
    let end = started + plan.total();
    let mut running: Vec<CancellationToken> = Vec::new();
    let mut tasks = JoinSet::new();
    let mut next_index = 0usize;
    let mut progress = Progress::new(load.progress_every);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let wanted = plan.users_at(now - started);
        while running.len() < wanted {
            let stop = CancellationToken::new();
            running.push(stop.clone());
            tasks.spawn(virtual_user(load.clone(), next_index, stop));
            next_index += 1;
        }
        while running.len() > wanted {
            running.pop().expect("a running user").cancel();
        }
        load.stats.set_users(running.len());
        progress.tick(&load.stats, running.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for stop in running.drain(..) {
        stop.cancel();
    }
    // Calls in flight finish (within their deadline) and count.
    while tasks.join_next().await.is_some() {}
}

/// One virtual user's life: start, then call and think until stopped.
async fn virtual_user(load: Arc<Load>, index: usize, stop: CancellationToken) {
    let mut rng = StdRng::seed_from_u64(0x5eed ^ index as u64);
    let user = loop {
        match VirtualUser::start(index, load.world.clone(), &load.channels, load.timeout).await {
            Ok(user) => break user,
            Err(error) => {
                eprintln!("agentic load: virtual user {index} cannot start: {error:#}");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    // Users do not arrive in step: each first thinks for a while.
    let think = &load.scenario.think_time;
    let mut pause = random_between(&mut rng, think.start..think.end);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        one_call(&load, &user, &mut rng, None).await;
        pause = random_between(&mut rng, think.start..think.end);
    }
}

fn random_between(rng: &mut StdRng, range: std::ops::Range<Duration>) -> Duration {
    if range.is_empty() {
        range.start
    } else {
        rng.random_range(range)
    }
}

/// Sends `rate` calls a second for `length` over `users` virtual users (the open model),
/// at most `max_in_flight` at once: beyond that an arrival waits, and its wait counts.
pub(crate) async fn open(
    load: Arc<Load>,
    rate: f64,
    length: Duration,
    users: usize,
    max_in_flight: usize,
) -> anyhow::Result<()> {
    let mut pool = Vec::with_capacity(users);
    for index in 0..users {
        pool.push(Arc::new(
            VirtualUser::start(index, load.world.clone(), &load.channels, load.timeout).await?,
        ));
    }
    load.stats.set_users(users);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut progress = Progress::new(load.progress_every);
    let mut arrival = 0u64;
    loop {
        let due = started + interval.mul_f64(arrival as f64);
        if due >= started + length {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let user = pool[arrival as usize % pool.len()].clone();
        let (task_load, slots) = (load.clone(), slots.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore open");
            let mut rng = StdRng::from_rng(&mut rand::rng());
            one_call(&task_load, &user, &mut rng, Some(due)).await;
        });
        while tasks.try_join_next().is_some() {}
        progress.tick(&load.stats, users);
        arrival += 1;
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// A line on stderr every few seconds: users, calls a second, p95, failures.
struct Progress {
    every: Duration,
    last: Instant,
    from_slice: usize,
}

impl Progress {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: Instant::now(),
            from_slice: 0,
        }
    }

    fn tick(&mut self, stats: &Stats, users: usize) {
        if self.every.is_zero() || self.last.elapsed() < self.every {
            return;
        }
        let window = self.last.elapsed().as_secs_f64();
        let (calls, failed, p95_ms, slices) = stats.recent(self.from_slice);
        eprintln!(
            "[{:>5.0}s] users {users:>4} | {:>8.1} calls/s | p95 {p95_ms:>8.1} ms | not OK {failed}",
            stats.started().elapsed().as_secs_f64(),
            (calls + failed) as f64 / window,
        );
        self.last = Instant::now();
        self.from_slice = slices;
    }
}

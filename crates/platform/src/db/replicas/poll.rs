//! The background poller: the primary's WAL position and each replica's replay position,
//! every `DB_REPLICA_POLL_INTERVAL`, on connections of their own; from them each
//! replica's standing (up, down, quarantined) and its lag, exported as gauges.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::lag::PrimaryHistory;
use super::lsn::Lsn;
use super::route::Standing;
use super::{Member, Replicas};
use crate::config::DatabaseArgs;
use crate::db::probe::Probe;

/// The primary's WAL position (as far as written: what replicas can have received).
const PRIMARY_POSITION: &str = "(pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint";
/// How far a replica has replayed; a server that is not in recovery (a promoted
/// replica, or the primary itself) has everything it wrote.
const REPLAY_POSITION: &str = "(CASE WHEN pg_is_in_recovery() \
     THEN COALESCE(pg_last_wal_replay_lsn(), '0/0'::pg_lsn) \
     ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint";
/// Longest wait for one poll's answer.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// The lag bounds past which a replica is quarantined.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    time: Duration,
    bytes: u64,
}

/// Starts polling `replicas` (when a runtime runs; until then every replica counts as
/// down, so reads go to the primary). Stops once `replicas` is dropped.
pub(super) fn spawn(replicas: &Arc<Replicas>, args: &DatabaseArgs) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for member in &replicas.members {
        register(replicas.pool, member.name);
    }
    let primary = Probe::new(args.database_url.clone());
    let bounds = Bounds {
        time: args.db_replica_max_lag,
        bytes: args.db_replica_max_lag_bytes,
    };
    let period = args.db_replica_poll_interval.max(Duration::from_millis(10));
    let weak = Arc::downgrade(replicas);
    runtime.spawn(run(weak, primary, bounds, period));
}

fn register(pool: &'static str, replica: &'static str) {
    metrics::gauge!("db_replica_up", "pool" => pool, "replica" => replica).set(0.0);
    metrics::gauge!("db_replica_quarantined", "pool" => pool, "replica" => replica).set(0.0);
    metrics::gauge!("db_replica_lag_seconds", "pool" => pool, "replica" => replica).set(0.0);
    metrics::gauge!("db_replica_lag_bytes", "pool" => pool, "replica" => replica).set(0.0);
}

async fn run(replicas: Weak<Replicas>, primary: Probe, bounds: Bounds, period: Duration) {
    // Kept a little longer than the time bound, so a stuck replica's lag exceeds it.
    let mut history = PrimaryHistory::new(bounds.time + bounds.time / 2 + period);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(replicas) = replicas.upgrade() else {
            return;
        };
        if let Some(position) = primary.scalar(PRIMARY_POSITION, POLL_TIMEOUT).await {
            history.record(Instant::now(), Lsn(position as u64));
        }
        let answers = futures::future::join_all(replicas.members.iter().map(|member| {
            member
                .pool
                .shared
                .probe
                .scalar(REPLAY_POSITION, POLL_TIMEOUT)
        }))
        .await;
        for (member, answer) in replicas.members.iter().zip(answers) {
            observe(replicas.pool, member, answer, &history, bounds);
        }
    }
}

/// Updates `member`'s standing, position and gauges from one poll's `answer`.
fn observe(
    pool: &'static str,
    member: &Member,
    answer: Option<i64>,
    history: &PrimaryHistory,
    bounds: Bounds,
) {
    let replica = member.name;
    member.pool.observe(answer.is_some());
    let Some(position) = answer else {
        if member.set_standing(Standing::Down) {
            tracing::warn!(
                replica,
                "replica does not answer; its reads go to the primary"
            );
        }
        metrics::gauge!("db_replica_up", "pool" => pool, "replica" => replica).set(0.0);
        return;
    };
    let replayed = Lsn(position as u64);
    // Stored as is, never raised only: a replica restarted after a crash replays again
    // from its last restartpoint, and shows only what it has replayed so far.
    member
        .replayed
        .store(replayed.0, std::sync::atomic::Ordering::Relaxed);
    let lag = history.lag(Instant::now(), replayed);
    let standing = if lag.time > bounds.time || lag.bytes > bounds.bytes {
        Standing::Quarantined
    } else {
        Standing::Up
    };
    if member.set_standing(standing) {
        match standing {
            Standing::Quarantined => tracing::warn!(
                replica,
                lag_seconds = lag.time.as_secs_f64(),
                lag_bytes = lag.bytes,
                "replica lags past its bound; out of reads until it catches up"
            ),
            _ => tracing::info!(replica, "replica serves reads"),
        }
    }
    let up = f64::from(u8::from(standing == Standing::Up));
    let quarantined = f64::from(u8::from(standing == Standing::Quarantined));
    metrics::gauge!("db_replica_up", "pool" => pool, "replica" => replica).set(up);
    metrics::gauge!("db_replica_quarantined", "pool" => pool, "replica" => replica)
        .set(quarantined);
    metrics::gauge!("db_replica_lag_seconds", "pool" => pool, "replica" => replica)
        .set(lag.time.as_secs_f64());
    metrics::gauge!("db_replica_lag_bytes", "pool" => pool, "replica" => replica)
        .set(lag.bytes as f64);
}

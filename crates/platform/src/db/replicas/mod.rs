//! Streaming read replicas with read-your-writes by scope.
//!
//! A write that commits on the primary announces the primary's WAL position for its
//! scope (the tenant): in this process, in Redis for every replica of every service
//! ([`board`]), and to the caller in `x-min-lsn` ([`crate::request`]). A routed read in
//! a scope goes to a replica only if that replica has replayed past every position it
//! must see (announced for the scope, or sent by the caller); else to the primary, at
//! once, never waiting for a replica. Replicas' replay positions and lag are polled in
//! the background ([`poll`]), so the request path asks PostgreSQL nothing extra; a
//! replica past a lag bound is quarantined until it catches up, and one that fails a
//! read is taken out and the read is served by the primary.

mod board;
mod lag;
mod lsn;
mod poll;
mod route;

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use uuid::Uuid;

pub use lsn::{BadLsn, Lsn};
pub(crate) use route::Route;
use route::{Fallback, Standing, choose};

/// Why a read of a database without replicas goes to the primary.
pub(crate) const NO_REPLICA: Fallback = Fallback::NoReplica;

use super::{PgConn, Pool};
use crate::config::DatabaseArgs;
use crate::error::Error;

/// The write's WAL position: where its commit record ends at the latest.
const WRITE_POSITION: &str = "(pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint";

/// One replica: its own pool (and pool metrics), and its standing as last polled.
pub(crate) struct Member {
    /// `<service>-replica-<n>`: labels its pool's and its lag's metrics.
    pub(crate) name: &'static str,
    pub(crate) pool: Pool,
    standing: AtomicU8,
    replayed: AtomicU64,
}

impl Member {
    fn standing(&self) -> Standing {
        Standing::from_u8(self.standing.load(Ordering::Relaxed))
    }

    /// Sets the standing; says whether it changed.
    fn set_standing(&self, standing: Standing) -> bool {
        self.standing.swap(standing as u8, Ordering::Relaxed) != standing as u8
    }
}

/// The replicas of one service's database and what the service's writes announced.
pub(crate) struct Replicas {
    pool: &'static str,
    members: Vec<Member>,
    /// Where positions are shared with other processes; unset without Redis.
    board: OnceLock<board::LsnBoard>,
    /// This process's own writes' positions per scope, so its reads stay safe while
    /// Redis does not answer.
    own: moka::sync::Cache<Uuid, u64>,
    /// How long an announced position is kept.
    keep: Duration,
    /// Round-robin start of the next read.
    next: AtomicUsize,
}

/// Reads by target and fallbacks by reason, registered when the pool is built.
pub(crate) struct ReadCounters {
    primary: metrics::Counter,
    replica: metrics::Counter,
    fallbacks: [metrics::Counter; Fallback::ALL.len()],
}

impl ReadCounters {
    pub(crate) fn new(pool: &'static str) -> Self {
        let reads = |target: &'static str| metrics::counter!("db_reads_total", "pool" => pool, "target" => target);
        Self {
            primary: reads("primary"),
            replica: reads("replica"),
            fallbacks: Fallback::ALL.map(|reason| {
                metrics::counter!(
                    "db_replica_fallbacks_total", "pool" => pool, "reason" => reason.label()
                )
            }),
        }
    }

    pub(crate) fn count(&self, route: Route) {
        match route {
            Route::Replica(_) => self.replica.increment(1),
            Route::Primary(why) => {
                self.primary.increment(1);
                self.fallback(why);
            }
        }
    }

    /// A read the replica failed, served again by the primary.
    pub(crate) fn replica_failed(&self) {
        self.primary.increment(1);
        self.fallback(Fallback::Down);
    }

    fn fallback(&self, why: Fallback) {
        let index = Fallback::ALL.iter().position(|f| *f == why).unwrap_or(0);
        self.fallbacks[index].increment(1);
    }
}

impl Replicas {
    /// The replicas `args` names for the pool `pool` (`None` for none), polled from now
    /// on while the returned value lives; their pools connect lazily.
    pub(crate) fn new(pool: &'static str, args: &DatabaseArgs) -> Option<Arc<Self>> {
        let urls: Vec<&str> = args.replica_urls().collect();
        if urls.is_empty() {
            return None;
        }
        let size = args.db_replica_pool_size;
        let members = urls
            .iter()
            .enumerate()
            .map(|(index, url)| {
                // Named once per process start, for metric labels.
                let name: &'static str =
                    Box::leak(format!("{pool}-replica-{}", index + 1).into_boxed_str());
                Member {
                    name,
                    pool: Pool::connect(name, url, (size, size), args, (None, None)),
                    standing: AtomicU8::new(Standing::Down as u8),
                    replayed: AtomicU64::new(0),
                }
            })
            .collect();
        let keep = (args.db_replica_max_lag * 3).max(Duration::from_secs(60));
        let replicas = Arc::new(Self {
            pool,
            members,
            board: OnceLock::new(),
            own: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(keep)
                .build(),
            keep,
            next: AtomicUsize::new(0),
        });
        poll::spawn(&replicas, args);
        Some(replicas)
    }

    /// Shares announced positions through Redis at `redis_url`, with keys under
    /// `key_prefix`; each Redis call bounded by `timeout`.
    pub(crate) fn share_through(
        &self,
        redis_url: &str,
        key_prefix: &str,
        timeout: Duration,
    ) -> redis::RedisResult<()> {
        let prefix = format!("{key_prefix}lsn:{}:", self.pool);
        let board = board::LsnBoard::new(redis_url, prefix, timeout, self.keep)?;
        let _ = self.board.set(board);
        Ok(())
    }

    /// How many replicas serve reads now.
    pub(crate) fn serving(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.standing() == Standing::Up)
            .count()
    }

    /// Application queries the replicas ran.
    pub(crate) fn queries(&self) -> u64 {
        self.members.iter().map(|m| m.pool.queries()).sum()
    }

    pub(crate) fn member(&self, index: usize) -> &Member {
        &self.members[index]
    }

    /// Where a read in `scope` goes now.
    pub(crate) async fn route(&self, scope: Uuid) -> Route {
        if crate::request::is_strong() {
            return Route::Primary(Fallback::Strong);
        }
        let standings: Vec<(Standing, Lsn)> = self
            .members
            .iter()
            .map(|m| (m.standing(), Lsn(m.replayed.load(Ordering::Relaxed))))
            .collect();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // No replica could serve even a read that must see nothing: nothing to look up.
        if let Route::Primary(why) = choose(&standings, Lsn(0), start) {
            return Route::Primary(why);
        }
        let asked = crate::request::min_lsn();
        let own = self.own.get(&scope).unwrap_or(0);
        let mut needed = Lsn(asked.max(own));
        if let Some(board) = self.board.get() {
            match board.lookup(scope).await {
                Some(announced) => needed = needed.max(announced),
                None => return Route::Primary(Fallback::Unknown),
            }
        }
        choose(&standings, needed, start)
    }

    /// Takes the replica at `index` out of reads after `error`, until the poller sees it
    /// answer again.
    pub(crate) fn failed(&self, index: usize, error: &Error) {
        let member = &self.members[index];
        if member.set_standing(Standing::Down) {
            tracing::warn!(replica = member.name, %error, "replica failed a read; reads go to the primary");
        }
    }

    /// Announces that each of `scopes` has a write that `conn` (on the primary) just
    /// committed: to this process, to Redis, and to the current request's answer.
    pub(crate) async fn announce_write(&self, scopes: &[Uuid], conn: &mut PgConn) {
        let lsn = write_position(conn).await;
        crate::request::wrote_at(lsn.0);
        for scope in scopes {
            self.own
                .entry(*scope)
                .and_upsert_with(|held| held.map_or(lsn.0, |held| held.into_value().max(lsn.0)));
            if let Some(board) = self.board.get()
                && !board.announce(*scope, lsn).await
            {
                tracing::warn!(
                    pool = self.pool,
                    "redis did not take a write's WAL position; until it does, other processes may read older rows of that tenant"
                );
            }
        }
    }
}

/// The WAL position of the write `conn` just committed, asked on the same connection
/// (not counted as an application query). When the server does not say, a position no
/// replica reaches: the scope's reads stay on the primary for a while.
async fn write_position(conn: &mut PgConn) -> Lsn {
    use diesel_async::RunQueryDsl;
    conn.count_queries(false);
    let asked = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        WRITE_POSITION,
    ))
    .get_result::<i64>(&mut **conn)
    .await;
    conn.count_queries(true);
    match asked {
        Ok(position) => Lsn(position as u64),
        Err(error) => {
            tracing::warn!(%error, "cannot read the write's WAL position");
            Lsn(u64::MAX)
        }
    }
}

/// Whether a read's failure on a replica is the replica's (down, hung, cancelled by a
/// recovery conflict), so the primary should serve it, rather than the read's own.
pub(crate) fn replica_failed(error: &Error) -> bool {
    match error {
        Error::Unavailable(_) => true,
        Error::DeadlineExceeded(_) => {
            crate::request::remaining().is_none_or(|left| !left.is_zero())
        }
        _ => false,
    }
}

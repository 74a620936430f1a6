//! PostgreSQL through a tuned bb8 pool of diesel-async connections.
//!
//! - base size plus overflow: `min_idle` connections stay open, up to `max_overflow` more
//!   open under load and close again once idle;
//! - checkout waits are capped by `DB_POOL_TIMEOUT` and by the request's gRPC deadline;
//! - each failed connect fails one waiting caller at once with `UNAVAILABLE`;
//! - every connection has a `statement_timeout`, lowered to the request's remaining
//!   deadline when that is shorter; a server that hangs (and so cannot enforce it) is
//!   caught client-side a moment later, and the connection is discarded;
//! - readiness pings on a connection of its own, never waiting behind the load;
//! - application queries are counted (tests assert query counts; `/metrics` exports them),
//!   the pool's own pings are not;
//! - optional streaming replicas (`DATABASE_REPLICA_URL`): routed reads
//!   ([`Pool::read_in`], [`Pool::query_in`]) go to one that has replayed the scope's
//!   writes ([`Pool::write_in`]), else to the primary (see [`replicas`]).

mod connection;
mod failures;
mod migrate;
mod pipeline;
mod probe;
mod replicas;
mod status;
mod timing;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diesel_async::AsyncPgConnection;

pub use connection::{Manager, PgConn};
use failures::ConnectFailures;
pub use migrate::run_migrations;
use pipeline::Lanes;
use probe::Probe;
pub use replicas::{BadLsn, Lsn};
use replicas::{ReadCounters, Replicas, Route, replica_failed};
pub use status::PoolStatus;
use uuid::Uuid;

use crate::config::DatabaseArgs;
use crate::error::{Error, Result};
use crate::request;

/// Rounds a deadline-derived timeout down to a coarse step, so requests with similar
/// deadlines share one value and connections are not re-`SET` on every checkout.
fn round_down(left: Duration) -> Duration {
    let step = if left >= Duration::from_secs(2) {
        Duration::from_secs(1)
    } else if left >= Duration::from_millis(200) {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(1)
    };
    let steps = (left.as_nanos() / step.as_nanos()).max(1);
    step * steps as u32
}

/// What a point read ([`Pool::read`]) queries through: a connection other reads may
/// share, so diesel-async takes it by `&`. Store functions that read one row take
/// `&mut SharedConn<'_>`; a checked-out connection passes `&mut &*conn`.
pub type SharedConn<'a> = &'a AsyncPgConnection;

/// A checked-out connection; it goes back to the pool when dropped.
pub type Conn<'a> = bb8::PooledConnection<'a, Manager>;

/// How much longer than its statement timeout a query may take before the client gives
/// up on the server: PostgreSQL enforces the timeout itself unless it is hung.
const HUNG_SERVER_MARGIN: Duration = Duration::from_secs(1);
/// Overflow connections close after sitting idle this long.
const OVERFLOW_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The PostgreSQL pool of one service: base size plus overflow, checkout timeout, recycling
/// and pre-ping, statement timeouts capped by the request's deadline, and pipelined point
/// reads (`Pool::read`). Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: bb8::Pool<Manager>,
    shared: Arc<Shared>,
}

struct Shared {
    name: &'static str,
    base_size: u32,
    checkout_timeout: Duration,
    statement_timeout: Option<Duration>,
    queries: Arc<AtomicU64>,
    failures: Arc<ConnectFailures>,
    probe: Probe,
    /// The last readiness probe's answer: while it failed, checkouts fail at once
    /// instead of each discovering the hung database for itself.
    answering: AtomicBool,
    /// Outages readiness has seen; connections from before the last one are re-checked.
    outages: Arc<AtomicU64>,
    /// The connections point reads share; `None` when reads use pool connections.
    lanes: Option<Lanes>,
    /// `db_pool_checkout_seconds`, registered on first use (after the recorder is).
    checkout_seconds: OnceLock<metrics::Histogram>,
    /// The database's streaming replicas, when it has any.
    replicas: Option<Arc<Replicas>>,
    /// Routed reads by target; `None` in a replica's own pool.
    reads: Option<ReadCounters>,
}

impl Pool {
    /// Builds the pool without connecting: the service starts, and reports not ready,
    /// while the database is down. `name` labels the pool's metrics. The replicas
    /// `DATABASE_REPLICA_URL` names get pools of their own, polled in the background.
    pub fn new(name: &'static str, args: &DatabaseArgs) -> Self {
        Self::connect(
            name,
            &args.database_url,
            (args.db_pool_size, args.db_max_overflow),
            args,
            (Replicas::new(name, args), Some(ReadCounters::new(name))),
        )
    }

    /// The pool of the database at `url`: `base_size` connections kept open,
    /// `max_overflow` more under load, the rest of its settings from `args`; with the
    /// database's replicas and the counters of its routed reads (none for a replica's
    /// own pool).
    fn connect(
        name: &'static str,
        url: &str,
        (base_size, max_overflow): (u32, u32),
        args: &DatabaseArgs,
        (replicas, reads): (Option<Arc<Replicas>>, Option<ReadCounters>),
    ) -> Self {
        let queries = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(ConnectFailures::default());
        let outages = Arc::new(AtomicU64::new(0));
        let statement_timeout =
            (args.db_query_timeout > 0).then(|| Duration::from_millis(args.db_query_timeout));
        let manager = Manager {
            pool: name,
            url: url.to_owned(),
            connect_timeout: args.db_connect_timeout,
            statement_timeout,
            pre_ping: args.db_pool_pre_ping,
            queries: queries.clone(),
            failures: failures.clone(),
            outages: outages.clone(),
        };
        let lanes = (args.db_pipelined_connections > 0)
            .then(|| Lanes::new(manager.clone(), args.db_pipelined_connections as usize));
        let checkout_timeout = Duration::from_secs(args.db_pool_timeout.max(1));
        // The seeds' names, registered now so they are scraped before the first report.
        metrics::gauge!("db_connection_pool_size", "pool" => name).set(f64::from(base_size));
        metrics::gauge!("db_connection_pool_overflow", "pool" => name).set(0.0);
        for state in ["total", "idle", "in_use", "overflow"] {
            metrics::gauge!("db_pool_connections", "pool" => name, "state" => state).set(0.0);
        }
        metrics::gauge!("db_pool_waiting", "pool" => name).set(0.0);
        metrics::counter!("db_pool_timeouts_total", "pool" => name).increment(0);
        let inner = bb8::Pool::builder()
            .max_size((base_size + max_overflow).max(1))
            .min_idle(Some(base_size))
            .idle_timeout(Some(OVERFLOW_IDLE_TIMEOUT))
            .max_lifetime(Some(Duration::from_secs(args.db_pool_recycle.max(1))))
            .connection_timeout(checkout_timeout)
            .test_on_check_out(args.db_pool_pre_ping)
            .retry_connection(false)
            .error_sink(Box::new(connection::LogErrors { pool: name }))
            .build_unchecked(manager);
        Self {
            inner,
            shared: Arc::new(Shared {
                name,
                base_size,
                checkout_timeout,
                statement_timeout,
                queries,
                failures,
                probe: Probe::new(url.to_owned()),
                answering: AtomicBool::new(true),
                outages,
                lanes,
                checkout_seconds: OnceLock::new(),
                replicas,
                reads,
            }),
        }
    }

    /// Checks out a connection whose statement timeout fits the current request.
    ///
    /// `DEADLINE_EXCEEDED` when no connection frees up in time, `UNAVAILABLE` when
    /// PostgreSQL refuses new connections.
    pub async fn get(&self) -> Result<Conn<'_>> {
        let remaining = self.may_query()?;
        let wait = remaining.map_or(self.shared.checkout_timeout, |left| {
            left.min(self.shared.checkout_timeout)
        });

        let started = tokio::time::Instant::now();
        let give_up = started + wait;
        let waiting = self.shared.failures.wait();
        let checkout = loop {
            let failure = self.shared.failures.next();
            tokio::pin!(failure);
            failure.as_mut().enable();
            tokio::select! {
                checkout = tokio::time::timeout_at(give_up, self.inner.get()) => break Some(checkout),
                () = &mut failure => {
                    if self.shared.failures.claim() {
                        break None;
                    }
                    // Another waiter took that failure; ask bb8 again, which starts a
                    // connection attempt for this caller.
                }
            }
        };
        drop(waiting);
        self.shared
            .checkout_seconds
            .get_or_init(
                || metrics::histogram!("db_pool_checkout_seconds", "pool" => self.shared.name),
            )
            .record(started.elapsed().as_secs_f64());

        let mut conn = match checkout {
            Some(Ok(Ok(conn))) => conn,
            Some(Ok(Err(bb8::RunError::User(error)))) => {
                return Err(Error::Unavailable(format!(
                    "database connection failed: {error}"
                )));
            }
            None => {
                return Err(Error::Unavailable(
                    "database refused a new connection".into(),
                ));
            }
            Some(Err(_)) | Some(Ok(Err(bb8::RunError::TimedOut))) => {
                metrics::counter!("db_pool_timeouts_total", "pool" => self.shared.name)
                    .increment(1);
                return Err(Error::DeadlineExceeded(
                    "timed out waiting for a database connection",
                ));
            }
        };
        conn.fit_statement_timeout(self.statement_timeout_now())
            .await?;
        Ok(conn)
    }

    /// Runs `work` on a checked-out connection and returns it to the pool afterwards:
    /// `pool.run(async |conn| store::find(conn, id).await)`.
    ///
    /// If the server stops answering (hung, not closed), `work` is abandoned a moment
    /// after its statement timeout with `UNAVAILABLE`, and the connection is discarded.
    pub async fn run<T>(&self, work: impl AsyncFnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
        let mut conn = self.get().await?;
        let limit = conn.statement_timeout();
        match unless_hung(limit, work(&mut conn)).await {
            Some(result) => result,
            None => {
                conn.abandon();
                Err(self.hung())
            }
        }
    }

    /// Runs the service's own upkeep (work no request asked for, such as re-announcing
    /// stored state), like [`Pool::run`] but not counted in [`Pool::queries`], which
    /// counts what requests cost.
    pub async fn run_upkeep<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConn) -> Result<T>,
    ) -> Result<T> {
        self.run(async |conn| {
            conn.count_queries(false);
            let result = work(conn).await;
            conn.count_queries(true);
            result
        })
        .await
    }

    /// Runs a point read, one statement outside any transaction (a row by key, a short
    /// lookup), on a connection it shares with other reads:
    /// `pool.read(async |conn| store::find(conn, id).await)`.
    ///
    /// The queries of concurrent reads are pipelined down a few connections
    /// (`DB_PIPELINED_CONNECTIONS`), so a read neither waits for nor holds a connection
    /// of its own. The statement timeout is the configured one (a shared session cannot
    /// take one caller's deadline); the caller's deadline still ends its wait. A
    /// connection that fails or stops answering is replaced. With no pipelined
    /// connections, the read runs on a pool connection like [`Pool::run`].
    pub async fn read<T>(
        &self,
        work: impl AsyncFnOnce(&mut SharedConn<'_>) -> Result<T>,
    ) -> Result<T> {
        let Some(lanes) = &self.shared.lanes else {
            return self
                .run(async |conn| {
                    let mut shared: SharedConn<'_> = conn;
                    work(&mut shared).await
                })
                .await;
        };
        self.may_query()?;
        let lent = lanes.lend().await?;
        let limit = self.shared.statement_timeout;
        match unless_hung(limit, work(&mut lent.connection())).await {
            Some(result) => {
                // The connection failed under the read: later reads get a new one.
                if matches!(result, Err(Error::Unavailable(_))) {
                    lent.discard();
                }
                result
            }
            None => {
                lent.discard();
                Err(self.hung())
            }
        }
    }

    /// A point read in `scope` (the tenant it reads in), like [`Pool::read`], served by
    /// a replica that has replayed every write announced for the scope and every
    /// position the request must see (`x-min-lsn`), else by the primary. A replica that
    /// fails the read is taken out, and the primary serves it. Cache-miss loads read
    /// through this: a replica's row is never older than an announced write.
    pub async fn read_in<T>(
        &self,
        scope: Uuid,
        work: impl AsyncFnOnce(&mut SharedConn<'_>) -> Result<T> + Clone,
    ) -> Result<T> {
        if let Some((replicas, index)) = self.route(scope).await {
            // A copy of `work` (its captures are borrows or small values): the primary
            // may have to run it again.
            match replicas.member(index).pool.read(work.clone()).await {
                Err(error) if replica_failed(&error) => {
                    self.replica_failed(replicas, index, &error)
                }
                result => return result,
            }
        }
        self.read(work).await
    }

    /// A read in `scope` (a list, a search, a lookup) on a connection of its own, like
    /// [`Pool::run`] but routed as [`Pool::read_in`] is. Not for reads that a write
    /// depends on: those belong in the write's transaction, on the primary.
    pub async fn query_in<T>(
        &self,
        scope: Uuid,
        work: impl AsyncFnOnce(&mut PgConn) -> Result<T> + Clone,
    ) -> Result<T> {
        if let Some((replicas, index)) = self.route(scope).await {
            match replicas.member(index).pool.run(work.clone()).await {
                Err(error) if replica_failed(&error) => {
                    self.replica_failed(replicas, index, &error)
                }
                result => return result,
            }
        }
        self.run(work).await
    }

    /// A write in `scope`, like [`Pool::run`] on the primary; once it has committed (when
    /// the database has replicas), its WAL position is announced for the scope, so reads
    /// in the scope, in every process, see it ([`Pool::read_in`]).
    pub async fn write_in<T>(
        &self,
        scope: Uuid,
        work: impl AsyncFnOnce(&mut PgConn) -> Result<T>,
    ) -> Result<T> {
        let Some(replicas) = &self.shared.replicas else {
            return self.run(work).await;
        };
        self.run(async |conn| {
            let done = work(conn).await?;
            replicas.announce_write(&[scope], conn).await;
            Ok(done)
        })
        .await
    }

    /// Announces a write in `scopes` that `conn` committed outside [`Pool::write_in`]
    /// (a connection the caller checked out itself); nothing without replicas.
    pub async fn announce_write(&self, scopes: &[Uuid], conn: &mut PgConn) {
        if let Some(replicas) = &self.shared.replicas {
            replicas.announce_write(scopes, conn).await;
        }
    }

    /// Whether the database has replicas (so writes announce their positions).
    pub fn has_replicas(&self) -> bool {
        self.shared.replicas.is_some()
    }

    /// How many replicas serve reads now (answering, within their lag bounds).
    pub fn replicas_serving(&self) -> usize {
        self.shared
            .replicas
            .as_ref()
            .map_or(0, |replicas| replicas.serving())
    }

    /// Application queries run on the replicas since the pool was built.
    pub fn replica_queries(&self) -> u64 {
        self.shared
            .replicas
            .as_ref()
            .map_or(0, |replicas| replicas.queries())
    }

    /// Shares the positions writes announce with every other process through Redis at
    /// `redis_url` (keys under `key_prefix`, calls bounded by `timeout`). Without it,
    /// only this process's own writes and what callers send in `x-min-lsn` are seen.
    pub fn share_writes_through(
        &self,
        redis_url: &str,
        key_prefix: &str,
        timeout: Duration,
    ) -> Result<()> {
        match &self.shared.replicas {
            Some(replicas) => replicas
                .share_through(redis_url, key_prefix, timeout)
                .map_err(|e| Error::internal(format!("REDIS_URL: {e}"))),
            None => Ok(()),
        }
    }

    /// The replica a read in `scope` goes to, counted; `None` for the primary.
    async fn route(&self, scope: Uuid) -> Option<(&Replicas, usize)> {
        let route = match &self.shared.replicas {
            Some(replicas) => replicas.route(scope).await,
            None => Route::Primary(replicas::NO_REPLICA),
        };
        if let Some(reads) = &self.shared.reads {
            reads.count(route);
        }
        match (route, &self.shared.replicas) {
            (Route::Replica(index), Some(replicas)) => Some((replicas, index)),
            _ => None,
        }
    }

    /// Takes a replica that failed a read out; the primary serves the read again.
    fn replica_failed(&self, replicas: &Replicas, index: usize, error: &Error) {
        replicas.failed(index, error);
        if let Some(reads) = &self.shared.reads {
            reads.replica_failed();
        }
    }

    /// Fails at once when no query can succeed now: the database stopped answering
    /// readiness, or the caller's deadline has passed. Returns the time left.
    fn may_query(&self) -> Result<Option<Duration>> {
        if !self.shared.answering.load(Ordering::Relaxed) {
            return Err(Error::Unavailable("the database is not answering".into()));
        }
        let remaining = request::remaining();
        if remaining.is_some_and(|left| left.is_zero()) {
            return Err(Error::DeadlineExceeded("request deadline exceeded"));
        }
        Ok(remaining)
    }

    /// Counts a query abandoned because the server did not answer; the error for it.
    fn hung(&self) -> Error {
        metrics::counter!("db_hung_queries_total", "pool" => self.shared.name).increment(1);
        Error::Unavailable("the database did not answer in time".into())
    }

    /// The statement timeout a query started now may have: the configured one, lowered
    /// to the caller's remaining deadline.
    fn statement_timeout_now(&self) -> Option<Duration> {
        let configured = self.shared.statement_timeout;
        match request::remaining() {
            Some(left) if configured.is_none_or(|c| left < c) => Some(round_down(left)),
            _ => configured,
        }
    }

    /// Whether PostgreSQL answers within `timeout`, asked on the probe's own connection
    /// (so a saturated pool does not look like a dead database); not counted as an
    /// application query.
    ///
    /// Until a ping succeeds again, checkouts fail at once with `UNAVAILABLE`.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let answering = self.shared.probe.ping(timeout).await;
        self.observe(answering);
        answering
    }

    /// Records whether the database answered its probe just now: while it does not,
    /// checkouts fail at once; when it stops, shared connections are closed.
    fn observe(&self, answering: bool) {
        let was_answering = self.shared.answering.swap(answering, Ordering::Relaxed);
        if was_answering && !answering {
            self.shared.outages.fetch_add(1, Ordering::Relaxed);
            if let Some(lanes) = &self.shared.lanes {
                lanes.close_all();
            }
        }
    }

    /// Application queries run through this pool since it was built.
    pub fn queries(&self) -> u64 {
        self.shared.queries.load(Ordering::Relaxed)
    }

    /// How many connections the pool holds, idle and in use, and how many callers wait.
    pub fn status(&self) -> PoolStatus {
        self.shared.status(&self.inner)
    }

    /// Publishes the pool status as gauges every `period`, until every handle to the pool
    /// is gone.
    pub fn spawn_status_reporter(&self, period: Duration) {
        let inner = self.inner.clone();
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                let Some(shared) = shared.upgrade() else {
                    break;
                };
                shared.status(&inner).publish(shared.name);
            }
        });
    }
}

/// `work`'s outcome, or `None` when the server has not answered a moment after the
/// statement timeout `limit` (it enforces the timeout itself unless it is hung).
async fn unless_hung<T>(
    limit: Option<Duration>,
    work: impl Future<Output = Result<T>>,
) -> Option<Result<T>> {
    match limit {
        Some(limit) => tokio::time::timeout(limit + HUNG_SERVER_MARGIN, work)
            .await
            .ok(),
        None => Some(work.await),
    }
}

impl Shared {
    fn status(&self, pool: &bb8::Pool<Manager>) -> PoolStatus {
        let state = pool.state();
        PoolStatus::new(
            state.connections,
            state.idle_connections,
            self.base_size,
            self.failures.waiters() as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_timeouts_round_down_to_shared_steps() {
        assert_eq!(
            round_down(Duration::from_millis(29_990)),
            Duration::from_secs(29)
        );
        assert_eq!(
            round_down(Duration::from_millis(29_010)),
            Duration::from_secs(29)
        );
        assert_eq!(
            round_down(Duration::from_millis(1_234)),
            Duration::from_millis(1_200)
        );
        assert_eq!(
            round_down(Duration::from_micros(150_700)),
            Duration::from_millis(150)
        );
        // Never zero: PostgreSQL reads 0 as "no limit".
        assert_eq!(
            round_down(Duration::from_micros(10)),
            Duration::from_millis(1)
        );
    }
}

//! The pool's connections: diesel-async connections that count their queries and know
//! their current statement timeout.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use diesel::ConnectionError;
use diesel::connection::InstrumentationEvent;
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tokio::time::Instant;

use super::failures::ConnectFailures;
use super::timing::QueryTimer;
use crate::error::{Error, Result};

/// Connections used within this window skip the pre-ping: they were just proven alive.
const PRE_PING_SKIP_WINDOW: Duration = Duration::from_millis(500);
/// A pre-ping slower than this means a hung server: the connection is dropped.
const PRE_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// A pooled PostgreSQL connection, with the session settings it was last given.
pub struct PgConn {
    conn: AsyncPgConnection,
    statement_timeout: Option<Duration>,
    last_checked: Instant,
    /// Off while the pool runs its own statements (pings, SET), so they are not counted.
    counting: Arc<AtomicBool>,
    /// Set when a query was abandoned mid-flight: the protocol state is unknown, so the
    /// pool must not hand this connection out again.
    abandoned: bool,
    /// The pool's outage count when this connection was last proven alive.
    checked_in_outage: u64,
    /// Session settings a service asked for with [`PgConn::set_session`], as they are now.
    settings: Vec<(&'static str, String)>,
}

impl Deref for PgConn {
    type Target = AsyncPgConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl PgConn {
    /// Marks the connection unusable; the pool closes it when it comes back.
    pub(crate) fn abandon(&mut self) {
        self.abandoned = true;
    }

    /// Whether the connection's queries count as application queries.
    pub(crate) fn count_queries(&self, counting: bool) {
        self.counting.store(counting, Ordering::Relaxed);
    }

    /// Runs pool housekeeping SQL without counting it as application queries.
    pub(crate) async fn execute_uncounted(&mut self, sql: &str) -> diesel::QueryResult<()> {
        self.counting.store(false, Ordering::Relaxed);
        let result = self.conn.batch_execute(sql).await;
        self.counting.store(true, Ordering::Relaxed);
        result
    }

    /// Makes the session's `settings` (`SET name = value`) what they are asked to be,
    /// sending only those that differ, in one round trip; not counted as application
    /// queries. For settings a service's queries depend on (pgvector's
    /// `hnsw.ef_search`), so that such a query needs no transaction of its own to
    /// `SET LOCAL` them. Values are plain words or numbers.
    pub async fn set_session(&mut self, settings: &[(&'static str, &str)]) -> Result<()> {
        let plain = |text: &str| {
            !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        };
        let mut sql = String::new();
        for (name, value) in settings {
            if !plain(name) || !plain(value) {
                return Err(Error::internal(format!(
                    "session setting {name:?} = {value:?} is not a plain word"
                )));
            }
            let current = self.settings.iter().find(|(n, _)| n == name);
            if current.is_none_or(|(_, v)| v != value) {
                sql.push_str(&format!("SET {name} = '{value}'; "));
            }
        }
        if sql.is_empty() {
            return Ok(());
        }
        self.execute_uncounted(&sql).await.map_err(Error::from)?;
        for (name, value) in settings {
            match self.settings.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => *v = (*value).to_owned(),
                None => self.settings.push((name, (*value).to_owned())),
            }
        }
        Ok(())
    }

    /// The `statement_timeout` the server enforces on this connection.
    pub(crate) fn statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// Sets `statement_timeout` when it differs from what the connection has.
    pub(crate) async fn fit_statement_timeout(&mut self, wanted: Option<Duration>) -> Result<()> {
        // Whole milliseconds: what PostgreSQL stores, and what keeps equal values equal.
        let wanted = wanted.map(|d| Duration::from_millis(d.as_millis().max(1) as u64));
        if wanted == self.statement_timeout {
            return Ok(());
        }
        let sql = set_statement_timeout_sql(wanted);
        self.execute_uncounted(&sql).await.map_err(Error::from)?;
        self.statement_timeout = wanted;
        self.last_checked = Instant::now();
        Ok(())
    }
}

fn set_statement_timeout_sql(timeout: Option<Duration>) -> String {
    format!(
        "SET statement_timeout = {}",
        timeout.map_or(0, |d| d.as_millis())
    )
}

/// Opens, validates and recycles [`PgConn`]s for bb8.
#[derive(Clone)]
pub struct Manager {
    pub(crate) pool: &'static str,
    pub(crate) url: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) pre_ping: bool,
    pub(crate) queries: Arc<AtomicU64>,
    pub(crate) failures: Arc<ConnectFailures>,
    /// Database outages seen by readiness: a connection older than the last one is
    /// pre-pinged whenever it was last used.
    pub(crate) outages: Arc<AtomicU64>,
}

impl Manager {
    async fn open(&self) -> Result<PgConn, ConnectionError> {
        let mut conn = tokio::time::timeout(
            self.connect_timeout,
            AsyncPgConnection::establish(&self.url),
        )
        .await
        .map_err(|_| {
            ConnectionError::BadConnection("timed out connecting to the database".into())
        })??;
        conn.batch_execute(&set_statement_timeout_sql(self.statement_timeout))
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;

        let counting = Arc::new(AtomicBool::new(true));
        let (queries, flag) = (self.queries.clone(), counting.clone());
        let exported = metrics::counter!("db_queries_total", "pool" => self.pool);
        let mut timer = QueryTimer::new(self.pool);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                timer.start(query);
                if flag.load(Ordering::Relaxed) {
                    queries.fetch_add(1, Ordering::Relaxed);
                    exported.increment(1);
                }
            }
            InstrumentationEvent::FinishQuery { .. } => timer.finish(),
            _ => {}
        });
        Ok(PgConn {
            conn,
            statement_timeout: self.statement_timeout,
            last_checked: Instant::now(),
            counting,
            abandoned: false,
            checked_in_outage: self.outages.load(Ordering::Relaxed),
            settings: Vec::new(),
        })
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = ConnectionError;

    async fn connect(&self) -> Result<PgConn, ConnectionError> {
        let opened = self.open().await;
        match &opened {
            Ok(_) => {
                metrics::counter!("db_connections_opened_total", "pool" => self.pool).increment(1);
                self.failures.connected();
            }
            Err(_) => {
                metrics::counter!("db_connect_errors_total", "pool" => self.pool).increment(1);
                self.failures.failed();
            }
        }
        opened
    }

    async fn is_valid(&self, conn: &mut PgConn) -> Result<(), ConnectionError> {
        let outages = self.outages.load(Ordering::Relaxed);
        let recently_proven =
            conn.last_checked.elapsed() < PRE_PING_SKIP_WINDOW && conn.checked_in_outage == outages;
        if !self.pre_ping || recently_proven {
            return Ok(());
        }
        tokio::time::timeout(PRE_PING_TIMEOUT, conn.execute_uncounted("SELECT 1"))
            .await
            .map_err(|_| ConnectionError::BadConnection("pre-ping timed out".into()))?
            .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
        conn.last_checked = Instant::now();
        conn.checked_in_outage = outages;
        Ok(())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.abandoned || conn.conn.is_broken()
    }
}

/// Sends the pool's background connection errors to the log instead of dropping them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogErrors {
    pub(crate) pool: &'static str,
}

impl bb8::ErrorSink<ConnectionError> for LogErrors {
    fn sink(&self, error: ConnectionError) {
        tracing::warn!(pool = self.pool, %error, "database connection error");
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<ConnectionError>> {
        Box::new(*self)
    }
}

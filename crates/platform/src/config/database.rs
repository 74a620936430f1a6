//! The PostgreSQL pool of one service (`DATABASE_URL`, `DB_POOL_*`, ...).

use std::time::Duration;

use clap::{ArgAction, Args};

/// The PostgreSQL pool of one service.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL of this service's database (never logged).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Connections kept open in the pool.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 20)]
    pub db_pool_size: u32,

    /// Extra connections opened under load; they close again once idle for a minute.
    #[arg(long, env = "DB_MAX_OVERFLOW", default_value_t = 10)]
    pub db_max_overflow: u32,

    /// Seconds to wait for a free connection before failing with DEADLINE_EXCEEDED.
    #[arg(long, env = "DB_POOL_TIMEOUT", default_value_t = 30)]
    pub db_pool_timeout: u64,

    /// Seconds after which a connection is closed and replaced.
    #[arg(long, env = "DB_POOL_RECYCLE", default_value_t = 3600)]
    pub db_pool_recycle: u64,

    /// Longest wait for PostgreSQL to accept a new connection (e.g. 3s).
    #[arg(long, env = "DB_CONNECT_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub db_connect_timeout: Duration,

    /// Check a connection that sat idle before handing it out.
    #[arg(long, env = "DB_POOL_PRE_PING", default_value_t = true, action = ArgAction::Set)]
    pub db_pool_pre_ping: bool,

    /// Milliseconds a statement may run (PostgreSQL statement_timeout); 0 for no limit.
    /// A request's remaining gRPC deadline lowers it further.
    #[arg(long, env = "DB_QUERY_TIMEOUT", default_value_t = 5_000)]
    pub db_query_timeout: u64,

    /// Connections that point reads share, their queries pipelined (see `Pool::read`);
    /// 0 gives each read a pool connection of its own.
    #[arg(long, env = "DB_PIPELINED_CONNECTIONS", default_value_t = 4)]
    pub db_pipelined_connections: u32,

    /// PostgreSQL URLs of streaming replicas of this database, comma-separated (never
    /// logged). Lists, searches and cache-miss loads go to one that has replayed the
    /// caller's writes, else to the primary; writes and transactions always go to the
    /// primary. Empty: every query goes to DATABASE_URL.
    #[arg(
        long,
        env = "DATABASE_REPLICA_URL",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub database_replica_url: Vec<String>,

    /// Connections kept open to each replica (as many more open under load).
    #[arg(long, env = "DB_REPLICA_POOL_SIZE", default_value_t = 10)]
    pub db_replica_pool_size: u32,

    /// A replica further behind the primary than this is taken out of reads until it
    /// catches up (e.g. 10s).
    #[arg(long, env = "DB_REPLICA_MAX_LAG", default_value = "10s", value_parser = humantime::parse_duration)]
    pub db_replica_max_lag: Duration,

    /// A replica more WAL bytes behind the primary than this is taken out of reads until
    /// it catches up.
    #[arg(long, env = "DB_REPLICA_MAX_LAG_BYTES", default_value_t = 64 << 20)]
    pub db_replica_max_lag_bytes: u64,

    /// How often each replica's replay position (and the primary's WAL position) is
    /// polled, in the background (e.g. 100ms).
    #[arg(long, env = "DB_REPLICA_POLL_INTERVAL", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub db_replica_poll_interval: Duration,
}

impl DatabaseArgs {
    /// The replica URLs given, blanks dropped.
    pub fn replica_urls(&self) -> impl Iterator<Item = &str> {
        self.database_replica_url
            .iter()
            .map(|url| url.trim())
            .filter(|url| !url.is_empty())
    }

    /// Settings for a given URL with the declared defaults, for tools and tests.
    pub fn with_url(database_url: impl Into<String>) -> Self {
        let url = database_url.into();
        super::from_flags(&["--database-url", &url])
    }
}

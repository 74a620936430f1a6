//! Command-line and environment configuration, as clap blocks that binaries flatten.
//!
//! Every flag also reads an environment variable; names and defaults follow the seeds
//! (`DB_POOL_SIZE=20`, `CACHE_DEFAULT_TTL=300`, ...). Integer durations keep the seeds'
//! units, named in each flag's help.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, ArgMatches, Args, ValueEnum};

use crate::cache::KindSpec;

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
}

impl DatabaseArgs {
    /// Settings for a given URL with the seed defaults, for tools and tests.
    pub fn with_url(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            db_pool_size: 20,
            db_max_overflow: 10,
            db_pool_timeout: 30,
            db_pool_recycle: 3600,
            db_connect_timeout: Duration::from_secs(3),
            db_pool_pre_ping: true,
            db_query_timeout: 5_000,
            db_pipelined_connections: 4,
        }
    }
}

/// The two-level cache and its Redis.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Redis URL for the shared cache level; without it the cache is in-process only.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Cache single-resource reads. When false every read goes to the database.
    #[arg(long, env = "CACHE_ENABLED", default_value_t = true, action = ArgAction::Set)]
    pub cache_enabled: bool,

    /// Seconds a cached value stays fresh, for kinds without their own TTL.
    #[arg(long, env = "CACHE_DEFAULT_TTL", default_value_t = 300)]
    pub cache_default_ttl: u64,

    /// Seconds per TTL setting, from the `CACHE_TTL_<SETTING>` flags a service declares
    /// through its cache kinds (see [`cache_ttl_args`]); unset settings are absent.
    #[arg(skip)]
    pub cache_ttls: BTreeMap<&'static str, u64>,

    /// Seconds a "not found" answer is cached.
    #[arg(long, env = "CACHE_NEGATIVE_TTL", default_value_t = 5)]
    pub cache_negative_ttl: u64,

    /// Seconds an expired value is kept to be served when the database fails.
    #[arg(long, env = "CACHE_STALE_TTL", default_value_t = 300)]
    pub cache_stale_ttl: u64,

    /// MiB the in-process level may hold (keys and values weighed by their size, so a
    /// few large values, such as documents, cannot take the process's memory).
    #[arg(long, env = "CACHE_L1_MAX_MB", default_value_t = 128)]
    pub cache_l1_max_mb: u64,

    /// Milliseconds to wait for Redis before carrying on without it.
    #[arg(long, env = "REDIS_TIMEOUT", default_value_t = 250)]
    pub redis_timeout: u64,

    /// Prefix of every Redis key, so environments can share one Redis.
    #[arg(long, env = "CACHE_KEY_PREFIX", default_value = "agentic")]
    pub cache_key_prefix: String,
}

impl CacheArgs {
    /// The cache settings with seed defaults, for tools and tests.
    pub fn with_redis(redis_url: Option<String>) -> Self {
        Self {
            redis_url,
            cache_enabled: true,
            cache_default_ttl: 300,
            cache_ttls: BTreeMap::new(),
            cache_negative_ttl: 5,
            cache_stale_ttl: 300,
            cache_l1_max_mb: 128,
            redis_timeout: 250,
            cache_key_prefix: "agentic".into(),
        }
    }

    /// The fresh TTL of a cache kind: its setting, else the kind's own default, else
    /// `CACHE_DEFAULT_TTL`.
    pub fn ttl_for(&self, kind: &KindSpec) -> Duration {
        let seconds = self
            .cache_ttls
            .get(kind.ttl_setting)
            .copied()
            .or(kind.default_ttl)
            .unwrap_or(self.cache_default_ttl);
        Duration::from_secs(seconds)
    }
}

/// The distinct TTL settings of `kinds`, in declaration order.
fn ttl_settings(kinds: &[KindSpec]) -> Vec<&KindSpec> {
    let mut seen = Vec::<&KindSpec>::new();
    for kind in kinds {
        if !seen.iter().any(|s| s.ttl_setting == kind.ttl_setting) {
            seen.push(kind);
        }
    }
    seen
}

fn ttl_arg_id(setting: &str) -> String {
    format!("cache_ttl_{setting}")
}

/// Adds one `--cache-ttl-<setting>` / `CACHE_TTL_<SETTING>` flag per TTL setting of `kinds`.
pub fn cache_ttl_args(cmd: clap::Command, kinds: &[KindSpec]) -> clap::Command {
    ttl_settings(kinds).into_iter().fold(cmd, |cmd, kind| {
        let setting = kind.ttl_setting;
        let default = kind
            .default_ttl
            .map_or_else(|| "CACHE_DEFAULT_TTL".to_owned(), |s| s.to_string());
        cmd.arg(
            clap::Arg::new(ttl_arg_id(setting))
                .long(format!("cache-ttl-{}", setting.replace('_', "-")))
                .env(format!("CACHE_TTL_{}", setting.to_uppercase()))
                .value_parser(clap::value_parser!(u64))
                .value_name("SECONDS")
                .help(format!(
                    "Seconds a cached {} stays fresh (defaults to {default})",
                    setting.replace('_', " ")
                )),
        )
    })
}

/// The TTL settings given on the command line or in the environment.
pub fn cache_ttls_from(matches: &ArgMatches, kinds: &[KindSpec]) -> BTreeMap<&'static str, u64> {
    ttl_settings(kinds)
        .into_iter()
        .filter_map(|kind| {
            let seconds = matches.get_one::<u64>(&ttl_arg_id(kind.ttl_setting))?;
            Some((kind.ttl_setting, *seconds))
        })
        .collect()
}

/// The embedding model of services that embed text (the RAG service), and the workers
/// that ingest documents with it.
#[derive(Debug, Clone, Args)]
pub struct EmbeddingArgs {
    /// `local` (the WordLlama model in EMBEDDING_MODEL_DIR) or `openai` (any server with an
    /// OpenAI-compatible `POST /v1/embeddings` at EMBEDDING_URL).
    #[arg(long, env = "EMBEDDING_PROVIDER", default_value = "local")]
    pub embedding_provider: EmbeddingProvider,
    /// Folder holding the local model's files (`scripts/models.sh` fills `.local/models`).
    #[arg(long, env = "EMBEDDING_MODEL_DIR", default_value = ".local/models")]
    pub embedding_model_dir: std::path::PathBuf,
    /// Base URL of the OpenAI-compatible server (`http://host:port`; `/v1/embeddings` is
    /// appended).
    #[arg(long, env = "EMBEDDING_URL")]
    pub embedding_url: Option<String>,
    /// The model to ask the OpenAI-compatible server for.
    #[arg(long, env = "EMBEDDING_MODEL")]
    pub embedding_model: Option<String>,
    /// Dimensions of the OpenAI-compatible model's vectors.
    #[arg(long, env = "EMBEDDING_DIMENSIONS", default_value_t = 256)]
    pub embedding_dimensions: usize,
    /// Bearer key sent to the OpenAI-compatible server, if it wants one.
    #[arg(long, env = "EMBEDDING_API_KEY", hide_env_values = true)]
    pub embedding_api_key: Option<String>,
    /// How long one call to the embedding server may take.
    #[arg(long, env = "EMBEDDING_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub embedding_timeout: Duration,
    /// Retries of a call the server answered with 429 or 5xx, or did not answer.
    #[arg(long, env = "EMBEDDING_RETRIES", default_value_t = 3)]
    pub embedding_retries: u32,
    /// Texts per call to the model.
    #[arg(long, env = "EMBEDDING_BATCH_SIZE", default_value_t = 50)]
    pub embedding_batch_size: usize,
    /// Calls to the model in flight at once, across the whole process.
    #[arg(long, env = "EMBEDDING_MAX_CONCURRENCY", default_value_t = 3)]
    pub embedding_max_concurrency: usize,
    /// Ingestion workers per process (each works through one batch of documents at a time).
    #[arg(long, env = "INGEST_WORKERS", default_value_t = 2)]
    pub ingest_workers: usize,
    /// Documents a worker takes from the queue at once.
    #[arg(long, env = "INGEST_BATCH_DOCUMENTS", default_value_t = 32)]
    pub ingest_batch_documents: usize,
    /// Tries a document gets before it is marked failed (a process that dies while
    /// working on it uses one up).
    #[arg(long, env = "INGEST_MAX_ATTEMPTS", default_value_t = 3)]
    pub ingest_max_attempts: u32,
    /// How often idle workers look for documents queued by other replicas.
    #[arg(long, env = "INGEST_POLL_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub ingest_poll_interval: Duration,
}

/// Where embeddings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmbeddingProvider {
    Local,
    Openai,
}

impl Default for EmbeddingArgs {
    fn default() -> Self {
        Self {
            embedding_provider: EmbeddingProvider::Local,
            embedding_model_dir: ".local/models".into(),
            embedding_url: None,
            embedding_model: None,
            embedding_dimensions: 256,
            embedding_api_key: None,
            embedding_timeout: Duration::from_secs(30),
            embedding_retries: 3,
            embedding_batch_size: 50,
            embedding_max_concurrency: 3,
            ingest_workers: 2,
            ingest_batch_documents: 32,
            ingest_max_attempts: 3,
            ingest_poll_interval: Duration::from_millis(500),
        }
    }
}

/// Secrets a service stores (MCP server headers), sealed at rest.
#[derive(Debug, Clone, Default, Args)]
pub struct SecretsArgs {
    /// Key that seals stored secrets; at least 32 bytes (e.g. 32 random bytes in hex).
    /// Required by services that store secrets; keep it when rotating JWT_SECRET.
    #[arg(long, env = "SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<String>,
}

/// Bearer tokens.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// HMAC secret that signs and verifies access tokens (HS256); at least 32 bytes.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,

    /// Issuer written into and required of every token.
    #[arg(long, env = "JWT_ISSUER", default_value = "agentic")]
    pub jwt_issuer: String,

    /// Seconds an issued access token stays valid.
    #[arg(long, env = "JWT_TTL", default_value_t = 3600)]
    pub jwt_ttl: u64,
}

/// gRPC's customary largest message: 4 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// The gRPC listener, its limits and the admin HTTP port.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// gRPC listen address (defaults to the service's port on 0.0.0.0).
    #[arg(long, env = "GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,

    /// Admin HTTP address for /metrics and /health/* (defaults to the service's admin port).
    #[arg(long, env = "ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,

    /// Longest a request may run when the caller sets no shorter deadline (e.g. 10s); it
    /// also bounds the request's waits for, and queries on, the database.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Largest request message accepted, in bytes (compressed or not); larger ones get
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "GRPC_MAX_MESSAGE_SIZE", default_value_t = DEFAULT_MAX_MESSAGE_SIZE)]
    pub grpc_max_message_size: usize,

    /// Concurrent requests (HTTP/2 streams) per client connection. Announced to clients
    /// in the HTTP/2 settings, so they wait for a free stream rather than being refused.
    #[arg(long, env = "CONCURRENCY_LIMIT_PER_CONNECTION", default_value_t = 256)]
    pub concurrency_limit_per_connection: usize,

    /// Longest in-flight requests may take to finish after SIGTERM (e.g. 30s).
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// How often readiness checks the database (e.g. 1s).
    #[arg(long, env = "READINESS_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub readiness_interval: Duration,

    /// A readiness check slower than this counts as "the database does not answer" (e.g. 1s).
    #[arg(long, env = "READINESS_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub readiness_timeout: Duration,

    /// Requests slower than this are logged as warnings, with method and code (e.g. 500ms).
    #[arg(long, env = "SLOW_REQUEST_THRESHOLD", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub slow_request_threshold: Duration,
}

impl Default for ServerArgs {
    fn default() -> Self {
        Self {
            grpc_addr: None,
            admin_addr: None,
            request_timeout: Duration::from_secs(10),
            grpc_max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            concurrency_limit_per_connection: 256,
            shutdown_grace: Duration::from_secs(30),
            readiness_interval: Duration::from_secs(1),
            readiness_timeout: Duration::from_secs(1),
            slow_request_threshold: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logs and traces.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,

    /// OTLP gRPC endpoint for traces (e.g. http://jaeger:4317); no export when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,
}

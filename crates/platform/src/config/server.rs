//! The gRPC listener, its limits and the admin HTTP port.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

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

    /// The same for server-streaming calls (an agent's answer), which run as long as the
    /// model writes.
    #[arg(long, env = "STREAM_TIMEOUT", default_value = "300s", value_parser = humantime::parse_duration)]
    pub stream_timeout: Duration,

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
        super::from_flags(&[])
    }
}

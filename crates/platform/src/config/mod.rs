//! Command-line and environment configuration, as clap blocks that binaries flatten, one
//! block per file (the shape of influxdb3_core's `clap_blocks`).
//!
//! Every flag also reads an environment variable; names and defaults follow the seeds
//! (`DB_POOL_SIZE=20`, `CACHE_DEFAULT_TTL=300`, ...). Integer durations keep the seeds'
//! units, named in each flag's help. Defaults are declared once, on the flags: code that
//! needs a block without a command line (tools, tests) gets it from clap through
//! [`from_flags`], never from a second copy of the numbers.
//!
//! Blocks only one service reads live in that service's crate (its `ServiceType::Args`).

mod auth;
mod cache;
mod database;
mod server;
mod telemetry;

use clap::{Args, FromArgMatches};

pub use auth::AuthArgs;
pub use cache::CacheArgs;
pub use database::DatabaseArgs;
pub use server::{DEFAULT_MAX_MESSAGE_SIZE, ServerArgs};
pub use telemetry::{LogFormat, TelemetryArgs};

/// The block `A` as clap parses `flags` alone: every other field takes the default its
/// flag declares. The environment is not read, so the result is the same on every
/// machine. Panics if `flags` do not parse, which is a mistake in the calling code.
pub fn from_flags<A: Args + FromArgMatches>(flags: &[&str]) -> A {
    let command = A::augment_args(clap::Command::new("defaults").no_binary_name(true))
        .mut_args(|arg| arg.env(None::<&str>));
    let matches = command
        .try_get_matches_from(flags)
        .unwrap_or_else(|error| panic!("{flags:?} do not configure this block: {error}"));
    A::from_arg_matches(&matches)
        .unwrap_or_else(|error| panic!("{flags:?} do not configure this block: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_flags_declarations() {
        let database = DatabaseArgs::with_url("postgres://db/x");
        assert_eq!(database.database_url, "postgres://db/x");
        assert_eq!(database.db_pool_size, 20);
        assert_eq!(database.db_max_overflow, 10);
        assert_eq!(database.db_pool_timeout, 30);
        assert_eq!(database.db_pool_recycle, 3600);
        assert!(database.db_pool_pre_ping);

        let cache = CacheArgs::with_redis(None);
        assert_eq!(cache.cache_default_ttl, 300);
        assert!(cache.cache_enabled);
        assert_eq!(cache.cache_key_prefix, "agentic");

        let server = ServerArgs::default();
        assert_eq!(server.request_timeout, std::time::Duration::from_secs(10));
        assert_eq!(server.grpc_max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
    }
}

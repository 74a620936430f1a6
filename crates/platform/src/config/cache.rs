//! The two-level cache and its Redis (`REDIS_URL`, `CACHE_*`). The per-kind
//! `CACHE_TTL_<SETTING>` flags are added by [`crate::cache::kind::cache_ttl_args`], from
//! the kinds a service declares.

use std::collections::BTreeMap;

use clap::{ArgAction, Args};

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
    /// The cache settings with the declared defaults, for tools and tests.
    pub fn with_redis(redis_url: Option<String>) -> Self {
        Self {
            redis_url,
            ..super::from_flags(&[])
        }
    }
}

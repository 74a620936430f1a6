//! Rate limits (`RATE_LIMIT_*`): the rules, their mode, and how the shared budget in
//! Redis is reached. See [`crate::ratelimit`] for what they do.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use super::rules::{DEFAULT_RULES_HELP, Mode};

/// Rate limits of every service.
#[derive(Debug, Clone, Args)]
pub struct RateLimitArgs {
    /// Limit calls. Turn off for load tests that mean to exceed the limits.
    #[arg(long, env = "RATE_LIMIT_ENABLED", default_value_t = true, action = ArgAction::Set)]
    pub rate_limit_enabled: bool,

    /// Calls per minute per authenticated user (the default rules' `per-user` rule).
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_limit_per_minute: u64,

    /// Calls per hour per authenticated user (the default rules' `per-user` rule).
    #[arg(long, env = "RATE_LIMIT_PER_HOUR", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_limit_per_hour: u64,

    /// A rules file (TOML, or YAML by its `.yaml`/`.yml` name) that replaces the default
    /// rules.
    #[arg(long, env = "RATE_LIMIT_RULES", long_help = DEFAULT_RULES_HELP)]
    pub rate_limit_rules: Option<PathBuf>,

    /// `enforce` rejects calls over a limit; `shadow` only counts what it would reject.
    /// A rule's own `mode` wins.
    #[arg(long, env = "RATE_LIMIT_MODE", default_value = "enforce")]
    pub rate_limit_mode: Mode,

    /// Longest wait for the shared budget in Redis before this replica decides alone.
    /// Independent of the cache's `REDIS_TIMEOUT`.
    #[arg(long, env = "RATE_LIMIT_TIMEOUT", default_value = "25ms", value_parser = humantime::parse_duration)]
    pub rate_limit_timeout: Duration,

    /// While Redis is out of reach each replica limits alone, allowing each limit divided
    /// by this number (1: each replica allows the full limit).
    #[arg(long, env = "RATE_LIMIT_FALLBACK_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_limit_fallback_replicas: u64,

    /// Send the limit state on every response. `false` sends it only with rejections,
    /// for traffic that never reads it (it costs about 100 bytes per response).
    #[arg(long, env = "RATE_LIMIT_HEADERS", default_value_t = true, action = ArgAction::Set)]
    pub rate_limit_headers: bool,

    /// How often each replica looks for changed tenant plans.
    #[arg(long, env = "RATE_LIMIT_PLAN_REFRESH", default_value = "1s", value_parser = humantime::parse_duration)]
    pub rate_limit_plan_refresh: Duration,
}

impl Default for RateLimitArgs {
    fn default() -> Self {
        crate::config::from_flags(&[])
    }
}

//! Bearer tokens (`JWT_SECRET`, `JWT_ISSUER`, `JWT_TTL`).

use clap::Args;

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

//! The agent service's own settings.

use agentic_platform::principal::UserServiceArgs;
use clap::Args;

/// Everything only the agent service reads.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Key that seals stored secrets (MCP server headers); at least 32 bytes (e.g. 32
    /// random bytes in hex). Keep it when rotating JWT_SECRET: stored headers open only
    /// with the key that sealed them.
    #[arg(long, env = "SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: String,
    /// The user service, which the principal check asks.
    #[command(flatten)]
    pub users: UserServiceArgs,
}

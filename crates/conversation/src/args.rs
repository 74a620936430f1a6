//! The conversation service's own settings: the services it calls, and how.

use agentic_platform::principal::UserServiceArgs;
use clap::Args;

/// Everything only the conversation service reads.
#[derive(Debug, Clone, Args)]
pub struct ConversationArgs {
    /// The user service (and how calls to other services behave).
    #[command(flatten)]
    pub users: UserServiceArgs,
    /// The agent service: one URL, several comma-separated, or a DNS name of many pods.
    #[arg(
        long,
        env = "AGENT_SERVICE_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub agent_service_url: String,
}

//! The conversation service's own settings: the services it calls, and how.

use agentic_platform::client::ClientArgs;
use clap::Args;

/// Everything only the conversation service reads.
#[derive(Debug, Clone, Args)]
pub struct ConversationArgs {
    /// The user service: one URL, several comma-separated, or a DNS name of many pods.
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub user_service_url: String,
    /// The agent service, in the same forms.
    #[arg(
        long,
        env = "AGENT_SERVICE_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub agent_service_url: String,
    /// How calls to them behave.
    #[command(flatten)]
    pub client: ClientArgs,
}

//! The agent service's own settings.

use std::path::PathBuf;
use std::time::Duration;

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
    /// The chat models agents run on.
    #[command(flatten)]
    pub models: ModelArgs,
    /// The RAG service, which holds agents' knowledge: one URL, several comma-separated,
    /// or a DNS name of many pods.
    #[arg(
        long,
        env = "RAG_SERVICE_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub rag_service_url: String,
}

/// The chat models agents run on.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// The local model's GGUF file (`local/smollm2-135m-instruct`; `scripts/models.sh`
    /// puts it in `.local/models`).
    #[arg(
        long,
        env = "LOCAL_MODEL_PATH",
        default_value = ".local/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub local_model_path: PathBuf,
    /// Load the local model at start (else at its first answer).
    #[arg(long, env = "LOCAL_MODEL_PRELOAD", default_value_t = true, action = clap::ArgAction::Set)]
    pub local_model_preload: bool,
    /// Answers the local model generates at once, each on a thread of its own.
    #[arg(long, env = "LOCAL_MODEL_CONCURRENCY", default_value_t = 1)]
    pub local_model_concurrency: usize,
    /// Answers that may wait for the local model beyond those; more are refused at once
    /// (RESOURCE_EXHAUSTED with RetryInfo).
    #[arg(long, env = "LOCAL_MODEL_QUEUE", default_value_t = 16)]
    pub local_model_queue: usize,
    /// OpenAI-compatible chat servers by model-name prefix, comma-separated
    /// `prefix=base-url` (`ollama/=http://ollama:11434,*=https://api.openai.com`): a model
    /// goes to the longest prefix it starts with (`*` matches every model), without the
    /// prefix; `/v1/chat/completions` is appended to the URL.
    #[arg(long, env = "CHAT_PROVIDERS", default_value = "")]
    pub chat_providers: String,
    /// Bearer keys of those servers, comma-separated `prefix=key`.
    #[arg(
        long,
        env = "CHAT_API_KEYS",
        default_value = "",
        hide_env_values = true
    )]
    pub chat_api_keys: String,
    /// How long connecting to a chat server may take.
    #[arg(long, env = "CHAT_CONNECT_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub chat_connect_timeout: Duration,
    /// The context window assumed for a chat server's models (prompt and answer, in
    /// tokens estimated at four bytes each).
    #[arg(long, env = "CHAT_CONTEXT_TOKENS", default_value_t = 8192)]
    pub chat_context_tokens: usize,
    /// Consecutive failures that open a chat server's circuit breaker.
    #[arg(long, env = "CHAT_BREAKER_THRESHOLD", default_value_t = 5)]
    pub chat_breaker_threshold: u32,
    /// How long an open breaker fails calls at once before one probes again.
    #[arg(long, env = "CHAT_BREAKER_COOLDOWN", default_value = "10s", value_parser = humantime::parse_duration)]
    pub chat_breaker_cooldown: Duration,
}

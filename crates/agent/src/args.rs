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
    /// How MCP tool servers are reached.
    #[command(flatten)]
    pub mcp: McpArgs,
    /// Workflow runs.
    #[command(flatten)]
    pub workflow_runs: WorkflowRunArgs,
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

/// How workflow runs are run.
#[derive(Debug, Clone, Args)]
pub struct WorkflowRunArgs {
    /// How long a run may take in all, steps and tool rounds included; past it the run
    /// fails.
    #[arg(long, env = "WORKFLOW_RUN_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub workflow_run_timeout: Duration,
    /// How long a run's lease lasts: a run whose process died is taken up by another
    /// replica within about this long. Renewed every third of it.
    #[arg(long, env = "WORKFLOW_RUN_LEASE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub workflow_run_lease: Duration,
}

/// How MCP servers are reached.
#[derive(Debug, Clone, Args)]
pub struct McpArgs {
    /// Run stdio MCP servers (a local command per server). Off: such servers are stored but
    /// never started, since their command would run inside this service's container.
    #[arg(long, env = "MCP_ALLOW_COMMANDS", default_value_t = false, action = clap::ArgAction::Set)]
    pub mcp_allow_commands: bool,
    /// How long connecting to an MCP server and its handshake may take.
    #[arg(long, env = "MCP_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub mcp_connect_timeout: Duration,
    /// How long one tool call may take; past it the model is told the tool timed out.
    #[arg(long, env = "MCP_TOOL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub mcp_tool_timeout: Duration,
    /// Rounds of tool calls in one answer at most; the round after the last offers no
    /// tools, so the model answers.
    #[arg(long, env = "MCP_MAX_TOOL_ROUNDS", default_value_t = 8)]
    pub mcp_max_tool_rounds: u32,
}

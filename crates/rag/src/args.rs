//! The RAG service's own settings: the embedding model and the ingestion workers.

use std::path::PathBuf;
use std::time::Duration;

use agentic_platform::principal::UserServiceArgs;
use clap::Args;

/// Everything only the RAG service reads.
#[derive(Debug, Clone, Args)]
pub struct RagArgs {
    /// The embedding model.
    #[command(flatten)]
    pub embedding: EmbeddingArgs,
    /// The ingestion workers.
    #[command(flatten)]
    pub ingest: IngestArgs,
    /// The user service, which the principal check asks.
    #[command(flatten)]
    pub users: UserServiceArgs,
}

/// The embedding model.
#[derive(Debug, Clone, Args)]
pub struct EmbeddingArgs {
    /// `local` (the WordLlama model in EMBEDDING_MODEL_DIR) or `openai` (any server with an
    /// OpenAI-compatible `POST /v1/embeddings` at EMBEDDING_URL).
    #[arg(long, env = "EMBEDDING_PROVIDER", default_value = "local")]
    pub embedding_provider: EmbeddingProvider,
    /// Folder holding the local model's files (`scripts/models.sh` fills `.local/models`).
    #[arg(long, env = "EMBEDDING_MODEL_DIR", default_value = ".local/models")]
    pub embedding_model_dir: PathBuf,
    /// Base URL of the OpenAI-compatible server (`http://host:port`; `/v1/embeddings` is
    /// appended).
    #[arg(long, env = "EMBEDDING_URL")]
    pub embedding_url: Option<String>,
    /// The model to ask the OpenAI-compatible server for.
    #[arg(long, env = "EMBEDDING_MODEL")]
    pub embedding_model: Option<String>,
    /// Dimensions of the OpenAI-compatible model's vectors.
    #[arg(long, env = "EMBEDDING_DIMENSIONS", default_value_t = 256)]
    pub embedding_dimensions: usize,
    /// Bearer key sent to the OpenAI-compatible server, if it wants one.
    #[arg(long, env = "EMBEDDING_API_KEY", hide_env_values = true)]
    pub embedding_api_key: Option<String>,
    /// How long one call to the embedding server may take.
    #[arg(long, env = "EMBEDDING_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub embedding_timeout: Duration,
    /// Retries of a call the server answered with 429 or 5xx, or did not answer.
    #[arg(long, env = "EMBEDDING_RETRIES", default_value_t = 3)]
    pub embedding_retries: u32,
    /// Texts per call to the model.
    #[arg(long, env = "EMBEDDING_BATCH_SIZE", default_value_t = 50)]
    pub embedding_batch_size: usize,
    /// Calls to the model in flight at once, across the whole process.
    #[arg(long, env = "EMBEDDING_MAX_CONCURRENCY", default_value_t = 3)]
    pub embedding_max_concurrency: usize,
}

/// Where embeddings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmbeddingProvider {
    Local,
    Openai,
}

/// The workers that ingest queued documents.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Ingestion workers per process (each works through one batch of documents at a time).
    #[arg(long, env = "INGEST_WORKERS", default_value_t = 2)]
    pub ingest_workers: usize,
    /// Documents a worker takes from the queue at once.
    #[arg(long, env = "INGEST_BATCH_DOCUMENTS", default_value_t = 32)]
    pub ingest_batch_documents: usize,
    /// Tries a document gets before it is marked failed (a process that dies while
    /// working on it uses one up).
    #[arg(long, env = "INGEST_MAX_ATTEMPTS", default_value_t = 3)]
    pub ingest_max_attempts: u32,
    /// How often idle workers look for documents queued by other replicas.
    #[arg(long, env = "INGEST_POLL_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub ingest_poll_interval: Duration,
}

//! `agentic-llm-bench`: what answering costs, for `make bench`.
//!
//! - `local`: the local chat model's speed in-process (release build), to set beside
//!   llama.cpp on the same GGUF file: one JSON line per run with prompt tokens, time to
//!   first token and decode tokens per second (tokens after the first over the time after
//!   the first).
//! - `fake-provider`: an OpenAI-compatible server that answers at once (eight chunks).
//! - `overhead`: the suite's own time to first token over that provider: Respond, and
//!   RunAgent alone, beside the provider called directly, at several concurrencies; one
//!   JSON line per target and concurrency (p50 and p99 in ms).
//! - `workflow`: the suite's overhead per step of five-step workflow runs over that
//!   provider, at 1 and 64 concurrent runs.
//! - `health-under-load`: Health/Check latency of the agent service idle, then while the
//!   local model answers at full capacity.

mod llm_overhead;
mod llm_workflow;

use std::path::PathBuf;
use std::time::Instant;

use agentic_agent::run::chat::{ChatMessage, Piece, Role, Settings};
use agentic_agent::run::local::LocalModel;
use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Serves an OpenAI-compatible chat server that answers at once.
    FakeProvider {
        #[arg(long, default_value = "127.0.0.1:27080")]
        addr: std::net::SocketAddr,
    },
    /// The suite's overhead over the instant provider.
    Overhead(llm_overhead::OverheadArgs),
    /// The overhead per workflow step over the instant provider.
    Workflow(llm_workflow::WorkflowArgs),
    /// Health/Check idle and while the local model answers at full capacity.
    HealthUnderLoad(llm_overhead::HealthArgs),
    /// Generates `tokens` tokens at temperature 0, `runs` times, after one warm-up.
    Local {
        #[arg(long, default_value = ".local/models/SmolLM2-135M-Instruct.Q4_1.gguf")]
        model: PathBuf,
        /// The user's message.
        #[arg(
            long,
            default_value = "Write a long story about a dragon who learns to cook."
        )]
        prompt: String,
        #[arg(long, default_value_t = 128)]
        tokens: u32,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().mode {
        Mode::FakeProvider { addr } => llm_overhead::fake_provider(addr).await?,
        Mode::Overhead(args) => llm_overhead::overhead(args).await?,
        Mode::Workflow(args) => llm_workflow::workflow(args).await?,
        Mode::HealthUnderLoad(args) => llm_overhead::health_under_load(args).await?,
        Mode::Local {
            model,
            prompt,
            tokens,
            runs,
        } => {
            agentic_agent::run::local::settle_math_threads();
            let model = LocalModel::load(&model, 1, 4)?;
            let messages = [
                ChatMessage::new(Role::System, "You are a helpful assistant."),
                ChatMessage::new(Role::User, prompt),
            ];
            for run in 0..=runs {
                let settings = Settings {
                    max_tokens: tokens,
                    temperature: 0.0,
                    stop: Vec::new(),
                    tools: Vec::new(),
                };
                let started = Instant::now();
                let mut generation = model.start(&messages, settings).await?;
                let mut first = None;
                let mut usage = None;
                while let Some(piece) = generation.pieces.recv().await {
                    match piece? {
                        Piece::Text(_) => {
                            first.get_or_insert_with(|| started.elapsed());
                        }
                        Piece::Finished(done) => {
                            usage = Some(done);
                            break;
                        }
                        Piece::ToolCalls(_) => {}
                    }
                }
                let total = started.elapsed();
                let (Some(first), Some(usage)) = (first, usage) else {
                    anyhow::bail!("the model wrote nothing");
                };
                if run == 0 {
                    continue; // warm-up
                }
                let decode = (total - first).as_secs_f64();
                println!(
                    "{}",
                    serde_json::json!({
                        "engine": "agentic",
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "ttft_ms": first.as_secs_f64() * 1e3,
                        "decode_tokens_per_s": f64::from(usage.completion_tokens - 1) / decode,
                    })
                );
            }
        }
    }
    Ok(())
}

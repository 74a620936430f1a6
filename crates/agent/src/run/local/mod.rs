//! The local chat model (SmolLM2-135M-Instruct by default): a GGUF file run on the CPU
//! inside the service, on threads of its own.
//!
//! A fixed number of generations run at once (`LOCAL_MODEL_CONCURRENCY`), each on a
//! worker thread niced below the async runtime (never on the runtime's threads), so
//! health checks and other calls go first. Callers beyond that wait in a bounded queue
//! (`LOCAL_MODEL_QUEUE`) within their deadline, then get `RESOURCE_EXHAUSTED` with
//! `RetryInfo`.

mod attend;
mod decode;
mod generate;
mod gguf;
mod linear;
mod llama;
mod threads;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentic_platform::error::{Error, Result};
use agentic_platform::request;
use tokenizers::Tokenizer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::chat::{ChatMessage, Generation, Settings};
use super::prompt::Measure;
use generate::Job;
pub use threads::settle_math_threads;

/// The model's threads' nice value: below the runtime's threads (as the platform's CPU
/// pool), so health checks and other calls go first.
const WORKER_NICENESS: i32 = 10;

/// Puts the calling thread, and the threads it starts from now on (candle's math
/// threads), at [`WORKER_NICENESS`]. Per thread on Linux; failing is harmless.
fn lower_priority() {
    let _ = rustix::process::setpriority_process(None, WORKER_NICENESS);
}

/// Pieces a generation may have produced ahead of its reader.
const PIECES_AHEAD: usize = 64;

/// A caller still queued this long before its deadline gives up, so it hears why.
const GIVE_UP_MARGIN: Duration = Duration::from_millis(100);

/// How long a refused caller is told to wait: about one short answer.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The model, its tokenizer and its workers.
pub struct LocalModel {
    shared: Arc<generate::Shared>,
    /// One per generation that may run at once.
    slots: Arc<Semaphore>,
    /// Callers waiting for a slot.
    waiting: AtomicUsize,
    queue_limit: usize,
    jobs: crossbeam_channel::Sender<(Job, OwnedSemaphorePermit)>,
}

impl LocalModel {
    /// Loads the model at `path` and starts `concurrency` workers.
    pub fn load(path: &Path, concurrency: usize, queue_limit: usize) -> Result<Self> {
        let started = Instant::now();
        // On a thread at the workers' priority: the math threads candle starts while it
        // re-quantises the weights inherit it, and live on for every answer.
        let loaded = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    lower_priority();
                    gguf::load(path)
                })
                .join()
        })
        .map_err(|_| Error::internal("loading the local model panicked"))??;
        tracing::info!(
            path = %path.display(),
            context_window = loaded.context_window,
            seconds = started.elapsed().as_secs_f64(),
            "local chat model loaded"
        );
        let shared = Arc::new(generate::Shared::from(loaded));
        let concurrency = concurrency.max(1);
        let (jobs, queue) = crossbeam_channel::unbounded::<(Job, OwnedSemaphorePermit)>();
        for index in 0..concurrency {
            let queue = queue.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("agentic-model-{index}"))
                .spawn(move || {
                    lower_priority();
                    for (job, slot) in queue {
                        shared.generate(job);
                        drop(slot);
                    }
                })
                .map_err(|e| Error::internal(format!("spawn a model worker: {e}")))?;
        }
        Ok(Self {
            shared,
            slots: Arc::new(Semaphore::new(concurrency)),
            waiting: AtomicUsize::new(0),
            queue_limit,
            jobs,
        })
    }

    /// The token ids of `messages` in the model's chat template, ready for the answer.
    fn encode(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        let mut text = String::new();
        for message in messages {
            chat_ml(&mut text, message);
        }
        text.push_str("<|im_start|>assistant\n");
        self.shared.encode(&text)
    }

    /// Starts generating the answer to `messages`, after waiting for a free slot.
    pub async fn start(&self, messages: &[ChatMessage], settings: Settings) -> Result<Generation> {
        let prompt = self.encode(messages)?;
        let queued_at = Instant::now();
        let slot = self.slot().await?;
        let queued = queued_at.elapsed();
        let (out, pieces) = mpsc::channel(PIECES_AHEAD);
        self.jobs
            .send((
                Job {
                    prompt,
                    settings,
                    out,
                },
                slot,
            ))
            .map_err(|_| Error::internal("the model workers are gone"))?;
        Ok(Generation { pieces, queued })
    }

    /// A slot to generate in: at once, or after waiting in the queue within the deadline.
    async fn slot(&self) -> Result<OwnedSemaphorePermit> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(busy());
        }
        metrics::gauge!("llm_local_queued").increment(1.0);
        let acquire = self.slots.clone().acquire_owned();
        let slot = match request::remaining() {
            Some(left) => tokio::time::timeout(left.saturating_sub(GIVE_UP_MARGIN), acquire)
                .await
                .ok(),
            None => Some(acquire.await),
        };
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("llm_local_queued").decrement(1.0);
        slot.and_then(|slot| slot.ok()).ok_or_else(busy)
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.shared.tokenizer
    }
}

fn busy() -> Error {
    metrics::counter!("llm_local_rejected_total").increment(1);
    Error::Overloaded("the local model is busy; retry later".into(), RETRY_AFTER)
}

/// `message` in ChatML, as SmolLM2 was trained on it.
fn chat_ml(out: &mut String, message: &ChatMessage) {
    out.push_str("<|im_start|>");
    out.push_str(message.role.as_str());
    out.push('\n');
    out.push_str(&message.content);
    out.push_str("<|im_end|>\n");
}

impl Measure for LocalModel {
    fn context_window(&self) -> usize {
        self.shared.context_window
    }

    fn message_tokens(&self, message: &ChatMessage) -> usize {
        let mut text = String::with_capacity(message.content.len() + 32);
        chat_ml(&mut text, message);
        self.shared
            .encode(&text)
            .map_or(usize::MAX / 4, |ids| ids.len())
    }

    fn prompt_overhead(&self) -> usize {
        // "<|im_start|>assistant\n"
        3
    }
}

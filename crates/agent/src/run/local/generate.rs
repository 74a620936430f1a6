//! One generation on a worker thread: the prompt in chunks, then a token at a time until
//! the model ends its answer, a stop sequence, `max_tokens`, or the reader goes away
//! (a cancelled call, a passed deadline): checked before every step, so the CPU is free
//! again within one token's time.

use agentic_platform::error::{Error, Result};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use tokenizers::Tokenizer;
use tokio::sync::mpsc;

use super::decode::TextDecoder;
use super::gguf::Loaded;
use super::llama::Llama;
use crate::run::chat::{Finish, Piece, Settings, Usage};
use crate::run::stop::StopScanner;

/// Prompt tokens run through the model in one step: small enough that a cancel is seen
/// quickly, large enough to keep the matrix kernels busy.
const PREFILL_CHUNK: usize = 128;

/// What every worker reads.
pub(super) struct Shared {
    weights: Llama,
    pub(super) tokenizer: Tokenizer,
    end_tokens: Vec<u32>,
    pub(super) context_window: usize,
}

impl From<Loaded> for Shared {
    fn from(loaded: Loaded) -> Self {
        Self {
            weights: loaded.weights,
            tokenizer: loaded.tokenizer,
            end_tokens: loaded.end_tokens,
            context_window: loaded.context_window,
        }
    }
}

/// A generation to run.
pub(super) struct Job {
    pub prompt: Vec<u32>,
    pub settings: Settings,
    pub out: mpsc::Sender<Result<Piece>>,
}

/// The reader went away: stop without a word.
struct Gone;

impl Shared {
    pub(super) fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| Error::internal(format!("tokenize a prompt: {e}")))?
            .get_ids()
            .to_vec())
    }

    /// Runs `job`; a failure of the model reaches the reader as `UNAVAILABLE`.
    pub(super) fn generate(&self, job: Job) {
        match self.run(&job) {
            Ok(Ok(())) | Ok(Err(Gone)) => {}
            Err(error) => {
                tracing::error!(%error, "the local model failed");
                let _ = job.out.blocking_send(Err(Error::Unavailable(format!(
                    "the local model failed: {error}"
                ))));
            }
        }
    }

    fn run(&self, job: &Job) -> candle_core::Result<Result<(), Gone>> {
        let send = |piece: Piece| job.out.blocking_send(Ok(piece)).map_err(|_| Gone);
        let mut sampler =
            LogitsProcessor::from_sampling(rand::random(), sampling(job.settings.temperature));
        let room = self.context_window.saturating_sub(job.prompt.len());
        let max_tokens = (job.settings.max_tokens as usize).min(room);
        let mut cache = self.weights.cache(job.prompt.len() + max_tokens)?;
        let mut logits = None;
        for chunk in job.prompt.chunks(PREFILL_CHUNK) {
            if job.out.is_closed() {
                return Ok(Err(Gone));
            }
            logits = Some(self.weights.forward(&mut cache, chunk)?);
        }
        let Some(mut logits) = logits else {
            candle_core::bail!("an empty prompt");
        };
        let mut decoder = TextDecoder::new(&self.tokenizer);
        let mut stops = StopScanner::new(&job.settings.stop);
        let mut produced = 0u32;
        let finish = loop {
            if produced as usize >= max_tokens {
                break Finish::Length;
            }
            let token = sampler.sample(&logits)?;
            if self.end_tokens.contains(&token) {
                break Finish::Stop;
            }
            produced += 1;
            if let Some(text) = decoder.push(token) {
                let scanned = stops.push(&text);
                if !scanned.text.is_empty()
                    && let Err(gone) = send(Piece::Text(scanned.text))
                {
                    return Ok(Err(gone));
                }
                if scanned.stopped {
                    return Ok(self.finished(job, Finish::Stop, produced));
                }
            }
            if job.out.is_closed() {
                return Ok(Err(Gone));
            }
            logits = self.weights.forward(&mut cache, &[token])?;
        };
        let rest = decoder.finish().map(|text| stops.push(&text));
        let mut tail = rest.as_ref().map(|s| s.text.clone()).unwrap_or_default();
        if !rest.as_ref().is_some_and(|s| s.stopped) {
            tail.push_str(&stops.finish());
        }
        if !tail.is_empty()
            && let Err(gone) = send(Piece::Text(tail))
        {
            return Ok(Err(gone));
        }
        Ok(self.finished(job, finish, produced))
    }

    fn finished(&self, job: &Job, finish: Finish, produced: u32) -> Result<(), Gone> {
        job.out
            .blocking_send(Ok(Piece::Finished(Usage {
                finish,
                prompt_tokens: job.prompt.len() as u32,
                completion_tokens: produced,
            })))
            .map_err(|_| Gone)
    }
}

/// Temperature 0 (or near it) always takes the likeliest token: the same answer every run.
fn sampling(temperature: f32) -> Sampling {
    if temperature < 1e-3 {
        Sampling::ArgMax
    } else {
        Sampling::All {
            temperature: f64::from(temperature),
        }
    }
}

//! Embedders: texts in, one unit-length vector per text out, behind one trait so the
//! service does not care whether the model runs here or behind an HTTP API.

mod batched;
mod cached;
mod openai;
mod wordllama;

use std::sync::Arc;

use futures::future::BoxFuture;

use agentic_platform::error::{Error, Result};

use crate::args::{EmbeddingArgs, EmbeddingProvider};

pub use batched::Batched;
pub use cached::{CachedEmbedder, truncate};
pub use openai::OpenAi;
pub use wordllama::WordLlama;

/// The local model's files in `EMBEDDING_MODEL_DIR`.
pub const WORDLLAMA_WEIGHTS: &str = "l2_supercat_256.safetensors";
pub const WORDLLAMA_TOKENIZER: &str = "l2_supercat_tokenizer_config.json";

/// The configured embedder, in batches of `EMBEDDING_BATCH_SIZE` with at most
/// `EMBEDDING_MAX_CONCURRENCY` calls in flight.
pub fn from_args(args: &EmbeddingArgs) -> Result<Arc<dyn Embedder>> {
    let (size, concurrency) = (args.embedding_batch_size, args.embedding_max_concurrency);
    Ok(match args.embedding_provider {
        EmbeddingProvider::Local => {
            let dir = &args.embedding_model_dir;
            let model = WordLlama::load(
                &dir.join(WORDLLAMA_WEIGHTS),
                &dir.join(WORDLLAMA_TOKENIZER),
                256,
            )?;
            Arc::new(Batched::new(model, size, concurrency))
        }
        EmbeddingProvider::Openai => {
            let url = args
                .embedding_url
                .as_deref()
                .ok_or_else(|| Error::internal("EMBEDDING_PROVIDER=openai needs EMBEDDING_URL"))?;
            let model = OpenAi::new(
                url,
                args.embedding_model.as_deref().unwrap_or_default(),
                args.embedding_dimensions,
                args.embedding_api_key.clone(),
                args.embedding_timeout,
                args.embedding_retries,
            )?;
            Arc::new(Batched::new(model, size, concurrency))
        }
    })
}

/// A text embedding model.
pub trait Embedder: Send + Sync {
    /// The model's name, as caches and collections record it.
    fn model(&self) -> &str;

    /// Dimensions of every vector it returns.
    fn dimensions(&self) -> usize;

    /// How many leading columns of its vectors a collection may keep, smallest first:
    /// only models trained for truncation allow fewer than their own.
    fn dimension_choices(&self) -> Vec<usize> {
        vec![self.dimensions()]
    }

    /// Whether `dimensions` is one of [`Embedder::dimension_choices`].
    fn supports_dimensions(&self, dimensions: usize) -> bool {
        self.dimension_choices().contains(&dimensions)
    }

    /// The length of `text` in the model's tokens (what chunk sizes are measured in).
    fn count_tokens(&self, text: &str) -> usize;

    /// One vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>>;
}

/// Scales `vector` to unit length (a zero vector stays zero).
pub fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

//! The local default model: WordLlama `l2_supercat`, a static embedding table (32,000
//! tokens × 256 dimensions, f16) with its Hugging Face tokenizer, both from the
//! `wordllama` wheel (`scripts/models.sh` puts them in `.local/models`).
//!
//! As WordLlama computes it: token ids without special tokens → their rows of the table
//! → the mean over tokens → L2-normalised. A smaller `dimensions` (64, 128) keeps the
//! leading columns (the model is trained for that truncation) before normalising.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use safetensors::{Dtype, SafeTensors};
use tokenizers::Tokenizer;

use agentic_platform::blocking;
use agentic_platform::error::{Error, Result};

use super::{Embedder, normalize};

/// The tensor holding the table.
const TABLE: &str = "embedding.weight";
/// The dimensions the model is trained to be truncated to.
const DIMENSIONS: [usize; 3] = [64, 128, 256];

pub struct WordLlama {
    name: String,
    inner: Arc<Model>,
}

struct Model {
    tokenizer: Tokenizer,
    /// Row-major, `vocabulary × dimensions`, already truncated.
    table: Vec<f32>,
    dimensions: usize,
    vocabulary: usize,
}

impl WordLlama {
    /// Loads the weights and tokenizer, keeping the first `dimensions` columns.
    pub fn load(weights: &Path, tokenizer: &Path, dimensions: usize) -> Result<Self> {
        if !DIMENSIONS.contains(&dimensions) {
            return Err(Error::invalid(
                "dimensions",
                "the local model has 64, 128 or 256 dimensions",
            ));
        }
        let unreadable = |what: &str, e: &dyn std::fmt::Display| {
            Error::internal(format!(
                "cannot load the local embedding model's {what}: {e}"
            ))
        };
        let tokenizer = Tokenizer::from_file(tokenizer).map_err(|e| unreadable("tokenizer", &e))?;
        let bytes = std::fs::read(weights).map_err(|e| unreadable("weights", &e))?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| unreadable("weights", &e))?;
        let table = tensors
            .tensor(TABLE)
            .map_err(|e| unreadable("weights", &e))?;
        let [vocabulary, full] = table.shape() else {
            return Err(unreadable("weights", &"the table is not two-dimensional"));
        };
        if table.dtype() != Dtype::F16 || dimensions > *full {
            return Err(unreadable(
                "weights",
                &"expected an f16 table of 256 columns",
            ));
        }
        let (vocabulary, full) = (*vocabulary, *full);
        let mut rows = Vec::with_capacity(vocabulary * dimensions);
        for row in table.data().chunks_exact(full * 2) {
            rows.extend(
                row.chunks_exact(2)
                    .take(dimensions)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
            );
        }
        Ok(Self {
            name: format!("wordllama-l2-supercat-{dimensions}"),
            inner: Arc::new(Model {
                tokenizer,
                table: rows,
                dimensions,
                vocabulary,
            }),
        })
    }
}

impl Model {
    fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| Error::internal(format!("tokenizing failed: {e}")))?;
        let mut sum = vec![0f32; self.dimensions];
        let ids = encoding.get_ids();
        for &id in ids {
            // As WordLlama does: ids past the table are clamped to its last row.
            let row = (id as usize).min(self.vocabulary - 1) * self.dimensions;
            for (acc, x) in sum.iter_mut().zip(&self.table[row..row + self.dimensions]) {
                *acc += x;
            }
        }
        let count = ids.len().max(1) as f32;
        sum.iter_mut().for_each(|x| *x /= count);
        normalize(&mut sum);
        Ok(sum)
    }
}

impl Embedder for WordLlama {
    fn model(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions
    }

    fn dimension_choices(&self) -> Vec<usize> {
        DIMENSIONS
            .into_iter()
            .filter(|d| *d <= self.inner.dimensions)
            .collect()
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.inner
            .tokenizer
            .encode_fast(text, false)
            .map_or(0, |encoding| encoding.len())
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        let model = self.inner.clone();
        let texts = texts.to_vec();
        // Tokenizing and summing rows is CPU work: off the async threads, one per core.
        Box::pin(async move {
            blocking::cpu_bound(move || {
                texts
                    .iter()
                    .map(|text| model.embed_one(text))
                    .collect::<Result<Vec<_>>>()
            })
            .await?
        })
    }
}

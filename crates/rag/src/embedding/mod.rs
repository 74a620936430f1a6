//! Embedders: texts in, one unit-length vector per text out, behind one trait so the
//! service does not care whether the model runs here or behind an HTTP API.

mod batched;
mod wordllama;

use futures::future::BoxFuture;

use agentic_platform::error::Result;

pub use batched::Batched;
pub use wordllama::{DIMENSIONS as WORDLLAMA_DIMENSIONS, WordLlama};

/// A text embedding model.
pub trait Embedder: Send + Sync {
    /// The model's name, as caches and collections record it.
    fn model(&self) -> &str;

    /// Dimensions of every vector it returns.
    fn dimensions(&self) -> usize;

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

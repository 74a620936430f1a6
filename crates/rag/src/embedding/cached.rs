//! An embedder behind the embedding cache. Entries are content-addressed
//! (`embedding:{model}:{sha-256 of the text}`), looked up for a whole call with one MGET;
//! only the misses go to the model, in its batches.

use std::sync::Arc;

use agentic_platform::cache::{Cache, CacheKind};
use agentic_platform::error::{Error, Result};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::Embedder;

#[derive(Clone)]
pub struct CachedEmbedder {
    embedder: Arc<dyn Embedder>,
    cache: Cache,
    kind: CacheKind,
}

/// The cache key of `text` embedded by `model`.
fn key(model: &str, text: &str) -> String {
    format!("{model}:{}", crate::hex(&Sha256::digest(text.as_bytes())))
}

fn to_bytes(vector: &[f32]) -> Bytes {
    vector
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect::<Vec<u8>>()
        .into()
}

fn from_bytes(bytes: &[u8], dimensions: usize) -> Option<Vec<f32>> {
    (bytes.len() == dimensions * 4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
}

impl CachedEmbedder {
    pub fn new(embedder: Arc<dyn Embedder>, cache: Cache, kind: CacheKind) -> Self {
        Self {
            embedder,
            cache,
            kind,
        }
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// One vector per text at the model's full dimensions, and how many the cache had.
    pub async fn embed(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, usize)> {
        let model = self.embedder.model();
        let dimensions = self.embedder.dimensions();
        let keys: Vec<String> = texts.iter().map(|text| key(model, text)).collect();
        let cached = self.cache.get_many(&self.kind, &keys).await;
        let mut vectors: Vec<Option<Vec<f32>>> = cached
            .iter()
            .map(|bytes| bytes.as_deref().and_then(|b| from_bytes(b, dimensions)))
            .collect();
        let hits = vectors.iter().filter(|v| v.is_some()).count();
        // Each distinct missing text once, however often it repeats.
        let mut wanted: Vec<String> = Vec::new();
        let mut slot_of: std::collections::HashMap<&str, usize> = Default::default();
        let mut missing: Vec<(usize, usize)> = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            if vectors[i].is_none() {
                let slot = *slot_of.entry(text.as_str()).or_insert_with(|| {
                    wanted.push(text.clone());
                    wanted.len() - 1
                });
                missing.push((i, slot));
            }
        }
        if !wanted.is_empty() {
            let computed = self.embedder.embed(&wanted).await?;
            if computed.len() != wanted.len() {
                return Err(Error::internal("the embedder returned too few vectors"));
            }
            let mut entries = Vec::with_capacity(wanted.len());
            let mut stored = vec![false; wanted.len()];
            for &(i, slot) in &missing {
                if !stored[slot] {
                    entries.push((keys[i].clone(), to_bytes(&computed[slot])));
                    stored[slot] = true;
                }
                vectors[i] = Some(computed[slot].clone());
            }
            self.cache.put_many(&self.kind, entries).await;
        }
        let vectors = vectors
            .into_iter()
            .map(|v| v.ok_or_else(|| Error::internal("an embedding went missing")))
            .collect::<Result<_>>()?;
        Ok((vectors, hits))
    }
}

/// `vector` cut to its leading `dimensions` columns and made unit-length again (models
/// trained for truncation keep their meaning in the leading columns).
pub fn truncate(mut vector: Vec<f32>, dimensions: usize) -> Vec<f32> {
    if dimensions < vector.len() {
        vector.truncate(dimensions);
        super::normalize(&mut vector);
    }
    vector
}

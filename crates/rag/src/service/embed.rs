//! Embed: texts to vectors through the embedding cache. Entries are content-addressed
//! (`embedding:{model}:{sha-256 of the text}`), looked up for the whole request with one
//! MGET; only the misses go to the model, in batches.

use agentic_platform::auth::Caller;
use agentic_platform::error::{Error, Result};
use agentic_platform::validate::{self, Violations};
use agentic_proto::rag::v1 as pb;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::RagService;
use crate::embedding::{WORDLLAMA_DIMENSIONS, normalize};

const MAX_TEXTS: usize = 100;
const MAX_TEXT_LEN: usize = 20_000;

/// The cache key of `text` embedded by `model`.
fn key(model: &str, text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{model}:{hex}")
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

impl RagService {
    /// One vector per text at the model's full dimensions, and how many the cache had.
    pub(crate) async fn embed_cached(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, usize)> {
        let model = self.embedder.model();
        let dimensions = self.embedder.dimensions();
        let keys: Vec<String> = texts.iter().map(|text| key(model, text)).collect();
        let cached = self.cache.get_many(&self.embedding_kind, &keys).await;
        let mut vectors: Vec<Option<Vec<f32>>> = cached
            .iter()
            .map(|bytes| bytes.as_deref().and_then(|b| from_bytes(b, dimensions)))
            .collect();
        let hits = vectors.iter().filter(|v| v.is_some()).count();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| vectors[i].is_none()).collect();
        if !missing.is_empty() {
            let wanted: Vec<String> = missing.iter().map(|&i| texts[i].clone()).collect();
            let computed = self.embedder.embed(&wanted).await?;
            let mut entries = Vec::with_capacity(missing.len());
            for (&i, vector) in missing.iter().zip(computed) {
                entries.push((keys[i].clone(), to_bytes(&vector)));
                vectors[i] = Some(vector);
            }
            self.cache.put_many(&self.embedding_kind, entries).await;
        }
        let vectors = vectors
            .into_iter()
            .map(|v| v.ok_or_else(|| Error::internal("an embedding went missing")))
            .collect::<Result<_>>()?;
        Ok((vectors, hits))
    }
}

pub(super) async fn embed(
    service: &RagService,
    request: Request<pb::EmbedRequest>,
) -> Result<Response<pb::EmbedResponse>, Status> {
    Caller::of(&request)?.tenant()?;
    let message = request.into_inner();
    if message.texts.is_empty() || message.texts.len() > MAX_TEXTS {
        return Err(Error::invalid("texts", format!("must hold 1 to {MAX_TEXTS} texts")).into());
    }
    let mut v = Violations::new();
    for (index, text) in message.texts.iter().enumerate() {
        let field = format!("texts[{index}]");
        if text.trim().is_empty() {
            v.add(field, "is required");
        } else {
            v.check(validate::multiline(&field, text, MAX_TEXT_LEN));
        }
    }
    let full = service.embedder.dimensions();
    let dimensions = match message.dimensions {
        0 => full,
        d if d > 0 && WORDLLAMA_DIMENSIONS.contains(&(d as usize)) && d as usize <= full => {
            d as usize
        }
        _ => {
            v.add("dimensions", "must be 0 (the model's), 64, 128 or 256");
            full
        }
    };
    v.into_result()?;

    let (vectors, cached) = service.embed_cached(&message.texts).await?;
    let vectors = vectors
        .into_iter()
        .map(|mut vector| {
            // The model is trained for truncation: keep the leading columns, renormalise.
            if dimensions < vector.len() {
                vector.truncate(dimensions);
                normalize(&mut vector);
            }
            pb::Vector { values: vector }
        })
        .collect();
    Ok(Response::new(pb::EmbedResponse {
        model: service.embedder.model().to_owned(),
        vectors,
        cached: cached as i32,
    }))
}

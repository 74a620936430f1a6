//! Embed: texts to vectors through the embedding cache (see `embedding::CachedEmbedder`).

use agentic_platform::auth::Caller;
use agentic_platform::error::{Error, Result};
use agentic_platform::validate::{self, Violations};
use agentic_proto::rag::v1 as pb;
use tonic::{Request, Response, Status};

use super::RagService;
use crate::embedding::truncate;

const MAX_TEXTS: usize = 100;
const MAX_TEXT_LEN: usize = 20_000;

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
        d if d > 0 && service.embedder.supports_dimensions(d as usize) => d as usize,
        _ => {
            v.add(
                "dimensions",
                format!("must be 0 (the model's {full}) or a size the model supports"),
            );
            full
        }
    };
    v.into_result()?;

    let (vectors, cached) = service.embeddings.embed(&message.texts).await?;
    let vectors = vectors
        .into_iter()
        .map(|vector| pb::Vector {
            values: truncate(vector, dimensions),
        })
        .collect();
    Ok(Response::new(pb::EmbedResponse {
        model: service.embedder.model().to_owned(),
        vectors,
        cached: cached as i32,
    }))
}

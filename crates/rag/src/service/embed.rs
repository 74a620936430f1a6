//! Embed: texts to vectors through the embedding cache (see `embedding::CachedEmbedder`).

use agentic_platform::auth::Caller;
use agentic_platform::error::Result;
use agentic_proto::rag::v1 as pb;
use tonic::{Request, Response, Status};

use super::RagService;
use crate::embedding::truncate;
use crate::input;

pub(super) async fn embed(
    service: &RagService,
    request: Request<pb::EmbedRequest>,
) -> Result<Response<pb::EmbedResponse>, Status> {
    Caller::of(&request)?.tenant()?;
    let message = request.into_inner();
    let dimensions = input::embed(&message, service.embedder.as_ref())?;

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

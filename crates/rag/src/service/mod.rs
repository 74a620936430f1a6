//! The `agentic.rag.v1.RagService` implementation: collections (`collections.rs`) and
//! the Embed RPC through the embedding cache (`embed.rs`).

mod collections;
mod embed;

use std::sync::Arc;

use agentic_platform::cache::{Cache, CacheKind};
use agentic_platform::db::Pool;
use agentic_platform::error::Result;
use agentic_platform::paging::PageTokens;
use agentic_platform::service::Context;
use agentic_proto::rag::v1 as pb;
use agentic_proto::rag::v1::rag_service_server::RagService as Api;
use tonic::{Request, Response, Status};

use crate::embedding::{Batched, Embedder, WordLlama};
use crate::kinds;

/// The local model's files in `EMBEDDING_MODEL_DIR`.
const WEIGHTS: &str = "l2_supercat_256.safetensors";
const TOKENIZER: &str = "l2_supercat_tokenizer_config.json";

pub struct RagService {
    pool: Pool,
    cache: Cache,
    pages: PageTokens,
    collection_kind: CacheKind,
    embedding_kind: CacheKind,
    embedder: Arc<dyn Embedder>,
}

impl RagService {
    /// Loads the local model (256 dimensions; smaller ones are truncations of it).
    pub fn new(context: &Context) -> Result<Self> {
        let args = &context.embedding;
        let dir = &args.embedding_model_dir;
        let model = WordLlama::load(&dir.join(WEIGHTS), &dir.join(TOKENIZER), 256)?;
        Ok(Self {
            pool: context.pool.clone(),
            cache: context.cache.clone(),
            pages: context.pages.clone(),
            collection_kind: context.cache.kind(&kinds::COLLECTION),
            embedding_kind: context.cache.kind(&kinds::EMBEDDING),
            embedder: Arc::new(Batched::new(
                model,
                args.embedding_batch_size,
                args.embedding_max_concurrency,
            )),
        })
    }
}

#[tonic::async_trait]
impl Api for RagService {
    async fn create_collection(
        &self,
        request: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CreateCollectionResponse>, Status> {
        collections::create(self, request).await
    }

    async fn get_collection(
        &self,
        request: Request<pb::GetCollectionRequest>,
    ) -> Result<Response<pb::GetCollectionResponse>, Status> {
        collections::get(self, request).await
    }

    async fn list_collections(
        &self,
        request: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        collections::list(self, request).await
    }

    async fn delete_collection(
        &self,
        request: Request<pb::DeleteCollectionRequest>,
    ) -> Result<Response<pb::DeleteCollectionResponse>, Status> {
        collections::delete(self, request).await
    }

    async fn embed(
        &self,
        request: Request<pb::EmbedRequest>,
    ) -> Result<Response<pb::EmbedResponse>, Status> {
        embed::embed(self, request).await
    }
}

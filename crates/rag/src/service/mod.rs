//! The `agentic.rag.v1.RagService` implementation: collections (`collections.rs`),
//! documents and ingestion (`documents.rs`), search (`search.rs`) and the Embed RPC
//! (`embed.rs`).

mod collections;
mod documents;
mod embed;
mod search;

use std::sync::Arc;

use agentic_platform::cache::{Cache, CacheKind, ScopedKey};
use agentic_platform::db::Pool;
use agentic_platform::error::{Error, Result};
use agentic_platform::idempotency::RequestIds;
use agentic_platform::paging::PageTokens;
use agentic_platform::service::Context;
use agentic_platform::validate;
use agentic_proto::rag::v1 as pb;
use agentic_proto::rag::v1::rag_service_server::RagService as Api;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::args::RagArgs;
use crate::embedding::{CachedEmbedder, Embedder};
use crate::ingest::Ingestor;
use crate::{kinds, store};

/// Cached kinds: collections and documents by id, search results by query.
struct Kinds {
    collection: CacheKind,
    document: CacheKind,
    search: CacheKind,
}

pub struct RagService {
    pool: Pool,
    cache: Cache,
    pages: PageTokens,
    kinds: Kinds,
    embedder: Arc<dyn Embedder>,
    embeddings: CachedEmbedder,
    ingestor: Arc<Ingestor>,
    /// Idempotent creates' request ids.
    request_ids: RequestIds,
}

/// Where the service keeps idempotent creates' request ids.
pub const REQUEST_IDS: &str = "rag.request_ids";

impl RagService {
    /// The service on the configured embedder; its ingestion workers are `ingestor()`'s.
    pub fn new(context: &Context, args: &RagArgs) -> Result<Self> {
        let embedder = crate::embedding::from_args(&args.embedding)?;
        let embeddings = CachedEmbedder::new(
            embedder.clone(),
            context.cache.clone(),
            context.cache.kind(&kinds::EMBEDDING),
        );
        let ingestor = Arc::new(Ingestor::new(
            context.pool.clone(),
            context.cache.clone(),
            context.cache.kind(&kinds::DOCUMENT),
            embeddings.clone(),
            &args.ingest,
        ));
        Ok(Self {
            pool: context.pool.clone(),
            cache: context.cache.clone(),
            pages: context.pages.clone(),
            kinds: Kinds {
                collection: context.cache.kind(&kinds::COLLECTION),
                document: context.cache.kind(&kinds::DOCUMENT),
                search: context.cache.kind(&kinds::SEARCH),
            },
            embedder,
            embeddings,
            ingestor,
            request_ids: context.request_ids(REQUEST_IDS),
        })
    }

    pub fn ingestor(&self) -> Arc<Ingestor> {
        self.ingestor.clone()
    }

    /// The caller's collection a request names in `collection_id`: INVALID_ARGUMENT when
    /// that is no id, NOT_FOUND when it is not the tenant's.
    async fn requested_collection(&self, tenant: Uuid, id: &str) -> Result<(Uuid, pb::Collection)> {
        let id = validate::id("collection_id", id)?;
        Ok((id, self.collection(tenant, id).await?))
    }

    /// The tenant's collection `id` (cached), or NOT_FOUND.
    async fn collection(&self, tenant: Uuid, id: Uuid) -> Result<pb::Collection> {
        self.cache
            .get_or_load(&self.kinds.collection, ScopedKey(tenant, id), || {
                self.pool.read_in(tenant, async |conn| {
                    Ok(store::find_collection(conn, tenant, id)
                        .await?
                        .map(pb::Collection::from))
                })
            })
            .await?
            .ok_or(Error::NotFound("collection"))
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

    async fn ingest_documents(
        &self,
        request: Request<pb::IngestDocumentsRequest>,
    ) -> Result<Response<pb::IngestDocumentsResponse>, Status> {
        documents::ingest(self, request).await
    }

    async fn stream_ingest_documents(
        &self,
        request: Request<Streaming<pb::IngestDocumentsRequest>>,
    ) -> Result<Response<pb::IngestDocumentsResponse>, Status> {
        documents::ingest_stream(self, request).await
    }

    async fn get_document(
        &self,
        request: Request<pb::GetDocumentRequest>,
    ) -> Result<Response<pb::GetDocumentResponse>, Status> {
        documents::get(self, request).await
    }

    async fn list_documents(
        &self,
        request: Request<pb::ListDocumentsRequest>,
    ) -> Result<Response<pb::ListDocumentsResponse>, Status> {
        documents::list(self, request).await
    }

    async fn delete_document(
        &self,
        request: Request<pb::DeleteDocumentRequest>,
    ) -> Result<Response<pb::DeleteDocumentResponse>, Status> {
        documents::delete(self, request).await
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        search::search(self, request).await
    }
}

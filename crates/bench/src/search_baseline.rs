//! `agentic-baseline search`: RagService/Search with a query vector, running the RAG
//! service's own dense statement through the platform's pool, and nothing else: the gRPC
//! hop plus the SQL, the floor of the service's uncached dense search. No auth (the
//! tenant comes in the `x-tenant-id` header), no collection lookup, no cache.

use agentic_platform::config::DatabaseArgs;
use agentic_platform::db::Pool;
use agentic_proto::rag::v1 as pb;
use agentic_proto::rag::v1::rag_service_server::RagService;
use agentic_rag::store::{self, Queries, Scope};
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

pub(crate) struct SearchOnly {
    pool: Pool,
}

impl SearchOnly {
    pub(crate) fn new(database_url: &str) -> Self {
        Self {
            pool: Pool::new("baseline", &DatabaseArgs::with_url(database_url)),
        }
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not part of the baseline"))
}

#[tonic::async_trait]
impl RagService for SearchOnly {
    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let tenant: Uuid = request
            .metadata()
            .get("x-tenant-id")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| Status::invalid_argument("x-tenant-id"))?;
        let request = request.into_inner();
        let collection: Uuid = request
            .collection_id
            .parse()
            .map_err(|_| Status::invalid_argument("collection_id"))?;
        let top_k = request.top_k.unwrap_or(10);
        let scope = Scope {
            tenant,
            collection,
            metadata: None,
            documents: None,
            limit: i64::from(top_k),
        };
        let queries = Queries {
            dense: Some(&request.query_vector),
            lexical: None,
            ef_search: request
                .ef_search
                .unwrap_or(agentic_rag::DEFAULT_EF_SEARCH.max(top_k)),
        };
        let (hits, _) = self
            .pool
            .run(async |conn| store::search(conn, &scope, queries).await)
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        let results = hits
            .into_iter()
            .map(|hit| pb::SearchResult {
                chunk_id: hit.id.to_string(),
                document_id: hit.document_id.to_string(),
                title: hit.title,
                text: hit.content,
                score: (1.0 - hit.score) as f32,
                ordinal: hit.ordinal,
                metadata: Some(agentic_platform::json::to_struct(&hit.metadata)),
            })
            .collect();
        Ok(Response::new(pb::SearchResponse { results }))
    }

    async fn create_collection(
        &self,
        _: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CreateCollectionResponse>, Status> {
        unimplemented()
    }

    async fn get_collection(
        &self,
        _: Request<pb::GetCollectionRequest>,
    ) -> Result<Response<pb::GetCollectionResponse>, Status> {
        unimplemented()
    }

    async fn list_collections(
        &self,
        _: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        unimplemented()
    }

    async fn delete_collection(
        &self,
        _: Request<pb::DeleteCollectionRequest>,
    ) -> Result<Response<pb::DeleteCollectionResponse>, Status> {
        unimplemented()
    }

    async fn embed(
        &self,
        _: Request<pb::EmbedRequest>,
    ) -> Result<Response<pb::EmbedResponse>, Status> {
        unimplemented()
    }

    async fn ingest_documents(
        &self,
        _: Request<pb::IngestDocumentsRequest>,
    ) -> Result<Response<pb::IngestDocumentsResponse>, Status> {
        unimplemented()
    }

    async fn stream_ingest_documents(
        &self,
        _: Request<Streaming<pb::IngestDocumentsRequest>>,
    ) -> Result<Response<pb::IngestDocumentsResponse>, Status> {
        unimplemented()
    }

    async fn get_document(
        &self,
        _: Request<pb::GetDocumentRequest>,
    ) -> Result<Response<pb::GetDocumentResponse>, Status> {
        unimplemented()
    }

    async fn list_documents(
        &self,
        _: Request<pb::ListDocumentsRequest>,
    ) -> Result<Response<pb::ListDocumentsResponse>, Status> {
        unimplemented()
    }

    async fn delete_document(
        &self,
        _: Request<pb::DeleteDocumentRequest>,
    ) -> Result<Response<pb::DeleteDocumentResponse>, Status> {
        unimplemented()
    }
}

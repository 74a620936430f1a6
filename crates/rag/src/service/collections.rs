//! Collections: a tenant's sets of documents, each with its embedding model, dimensions,
//! distance and chunking fixed at creation.

use agentic_platform::auth::Caller;
use agentic_platform::cache::ScopedKey;
use agentic_platform::error::{Error, Result};
use agentic_platform::idempotency;
use agentic_platform::paging;
use agentic_platform::validate;
use agentic_proto::rag::v1 as pb;
use chrono::Utc;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::RagService;
use crate::input;
use crate::model::CollectionRow;
use crate::{kinds, store};

pub(super) async fn create(
    service: &RagService,
    request: Request<pb::CreateCollectionRequest>,
) -> Result<Response<pb::CreateCollectionResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let message = request.get_ref();
    let collection = message
        .collection
        .as_ref()
        .ok_or_else(|| Error::invalid("collection", "is required"))?;
    let (input, request_id) = validate::all((
        input::new_collection(collection, service.embedder.as_ref()),
        idempotency::request_id(&message.request_id),
    ))?;
    let row = CollectionRow {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        name: input.name,
        slug: input.slug,
        embedding_model: service.embedder.model().to_owned(),
        dimensions: input.dimensions,
        distance: input.distance.to_owned(),
        chunk_size: input.chunk_size,
        chunk_overlap: input.chunk_overlap,
        created_at: Utc::now(),
    };
    let response = service
        .request_ids
        .once(
            &service.pool,
            tenant,
            request_id,
            "CreateCollection",
            message,
            async |conn| {
                store::ensure_vector_index(conn, row.dimensions).await?;
                let row = store::insert_collection(conn, &row).await?;
                Ok(pb::CreateCollectionResponse {
                    collection: Some(row.into()),
                })
            },
        )
        .await?;
    Ok(Response::new(response))
}

pub(super) async fn get(
    service: &RagService,
    request: Request<pb::GetCollectionRequest>,
) -> Result<Response<pb::GetCollectionResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let collection = service.collection(tenant, id).await?;
    Ok(Response::new(pb::GetCollectionResponse {
        collection: Some(collection),
    }))
}

pub(super) async fn list(
    service: &RagService,
    request: Request<pb::ListCollectionsRequest>,
) -> Result<Response<pb::ListCollectionsResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let page_size = paging::page_size(message.page_size)?;
    let fingerprint = format!("collections|{tenant}");
    let (rows, next_page_token) = service
        .pages
        .uuid_page(
            &message.page_token,
            &fingerprint,
            page_size,
            |row: &CollectionRow| row.id,
            |after, limit| {
                service.pool.query_in(tenant, async move |conn| {
                    store::list_collections(conn, tenant, after, limit).await
                })
            },
        )
        .await?;
    Ok(Response::new(pb::ListCollectionsResponse {
        collections: rows.into_iter().map(pb::Collection::from).collect(),
        next_page_token,
    }))
}

pub(super) async fn delete(
    service: &RagService,
    request: Request<pb::DeleteCollectionRequest>,
) -> Result<Response<pb::DeleteCollectionResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    service
        .pool
        .write_in(tenant, async |conn| {
            store::delete_collection(conn, tenant, id).await
        })
        .await?;
    service
        .cache
        .invalidate(&[(&service.kinds.collection, ScopedKey(tenant, id.to_string()))])
        .await;
    // Its search results and documents went with it, each dropped in O(1).
    service.cache.invalidate_scope(kinds::SEARCHES, id).await;
    service
        .cache
        .invalidate_scope(kinds::DOCUMENTS, tenant)
        .await;
    Ok(Response::new(pb::DeleteCollectionResponse {}))
}

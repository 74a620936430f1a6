//! Collections: a tenant's sets of documents, each with its embedding model, dimensions,
//! distance and chunking fixed at creation.

use agentic_platform::auth::Caller;
use agentic_platform::cache::ScopedKey;
use agentic_platform::error::{Error, Result};
use agentic_platform::paging;
use agentic_platform::validate::{self, Violations};
use agentic_proto::rag::v1 as pb;
use chrono::Utc;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::RagService;
use crate::model::{CollectionRow, distance_name};
use crate::{kinds, store};

const DEFAULT_CHUNK_SIZE: i32 = 256;
const DEFAULT_CHUNK_OVERLAP: i32 = 32;
const MIN_CHUNK_SIZE: i32 = 32;
const MAX_CHUNK_SIZE: i32 = 2048;

/// `[64, 128, 256]` as "64, 128, 256".
fn choices(dimensions: &[usize]) -> String {
    let names: Vec<String> = dimensions.iter().map(usize::to_string).collect();
    names.join(", ")
}

fn new_collection(service: &RagService, tenant: Uuid, c: &pb::Collection) -> Result<CollectionRow> {
    let mut v = Violations::new();
    let name = v.check(validate::text("collection.name", &c.name, 1, 200));
    let slug = v.check(validate::identifier(
        "collection.slug",
        &c.slug,
        3,
        63,
        &['-'],
    ));
    let model = service.embedder.model();
    if !c.embedding_model.is_empty() && c.embedding_model != model {
        v.add(
            "collection.embedding_model",
            format!("is not a model of this service; it has {model}"),
        );
    }
    let dimensions = if c.dimensions == 0 {
        service.embedder.dimensions() as i32
    } else {
        c.dimensions
    };
    if dimensions <= 0 || !service.embedder.supports_dimensions(dimensions as usize) {
        v.add(
            "collection.dimensions",
            format!(
                "is not available from {model} (it has {})",
                choices(&service.embedder.dimension_choices())
            ),
        );
    }
    let distance = match pb::Distance::try_from(c.distance) {
        Ok(pb::Distance::Unspecified) => Some("cosine"),
        Ok(other) => distance_name(other),
        Err(_) => None,
    };
    if distance.is_none() {
        v.add("collection.distance", "is not a known distance");
    }
    let chunk_size = if c.chunk_size == 0 {
        DEFAULT_CHUNK_SIZE
    } else {
        c.chunk_size
    };
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        v.add(
            "collection.chunk_size",
            format!("must be {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} tokens"),
        );
    }
    let chunk_overlap = if c.chunk_overlap == 0 && c.chunk_size == 0 {
        DEFAULT_CHUNK_OVERLAP
    } else {
        c.chunk_overlap
    };
    if chunk_overlap < 0 || chunk_overlap >= chunk_size {
        v.add(
            "collection.chunk_overlap",
            "must be at least 0 and less than the chunk size",
        );
    }
    v.into_result()?;
    let (Some(name), Some(slug), Some(distance)) = (name, slug, distance) else {
        return Err(Error::internal("collection validation lost a field"));
    };
    Ok(CollectionRow {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        name,
        slug,
        embedding_model: model.to_owned(),
        dimensions,
        distance: distance.to_owned(),
        chunk_size,
        chunk_overlap,
        created_at: Utc::now(),
    })
}

pub(super) async fn create(
    service: &RagService,
    request: Request<pb::CreateCollectionRequest>,
) -> Result<Response<pb::CreateCollectionResponse>, Status> {
    let tenant = Caller::of(&request)?.admin_tenant()?;
    let collection = request
        .get_ref()
        .collection
        .as_ref()
        .ok_or_else(|| Error::invalid("collection", "is required"))?;
    let row = new_collection(service, tenant, collection)?;
    let row = service
        .pool
        .run(async |conn| {
            store::ensure_vector_index(conn, row.dimensions).await?;
            store::insert_collection(conn, &row).await
        })
        .await?;
    Ok(Response::new(pb::CreateCollectionResponse {
        collection: Some(row.into()),
    }))
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
                service.pool.run(async move |conn| {
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
        .run(async |conn| store::delete_collection(conn, tenant, id).await)
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

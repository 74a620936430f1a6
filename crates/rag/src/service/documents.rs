//! Documents: ingestion (unary and client-streaming), Get, List and Delete.
//!
//! Ingestion stores documents as pending in one transaction per message and wakes the
//! workers (`ingest.rs`); with `wait`, it then follows the documents until they are done
//! or the call's deadline nears.

use std::time::Duration;

use agentic_platform::auth::Caller;
use agentic_platform::cache::ScopedKey;
use agentic_platform::error::{Error, Result};
use agentic_platform::idempotency;
use agentic_platform::paging;
use agentic_platform::validate::{self};
use agentic_proto::rag::v1 as pb;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::RagService;
use crate::model::{DocumentSummary, Status as DocStatus};
use crate::{input, kinds, store};

/// A waiting call answers this long before its deadline, with what is done by then.
const WAIT_MARGIN: Duration = Duration::from_millis(500);
/// How often a waiting call looks again when no local worker reports (another replica
/// may be doing the work).
const WAIT_POLL: Duration = Duration::from_millis(200);

impl RagService {
    /// Stores one message's documents as pending and wakes the workers.
    async fn store_documents(
        &self,
        tenant: Uuid,
        collection: Uuid,
        inputs: &[pb::DocumentInput],
    ) -> Result<Vec<DocumentSummary>> {
        let rows = input::new_documents(tenant, collection, inputs)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let stored = self
            .pool
            .write_in(tenant, async |conn| {
                store::insert_documents(conn, collection, &rows).await
            })
            .await?;
        self.ingestor.wake(stored.len());
        Ok(stored)
    }

    /// Re-reads `documents` until none is pending, or until the deadline nears.
    async fn wait_until_done(
        &self,
        tenant: Uuid,
        mut documents: Vec<DocumentSummary>,
    ) -> Result<Vec<DocumentSummary>> {
        let pending =
            |docs: &[DocumentSummary]| docs.iter().any(|d| d.status == DocStatus::Pending.as_str());
        while pending(&documents) {
            let left = agentic_platform::request::remaining().unwrap_or(Duration::MAX);
            if left <= WAIT_MARGIN {
                break;
            }
            self.ingestor
                .next_finish(WAIT_POLL.min(left - WAIT_MARGIN))
                .await;
            let ids: Vec<Uuid> = documents.iter().map(|d| d.id).collect();
            let fresh = self
                .pool
                .run(async |conn| store::document_summaries(conn, tenant, &ids).await)
                .await?;
            for document in &mut documents {
                match fresh.iter().find(|f| f.id == document.id) {
                    Some(f) => *document = f.clone(),
                    // Deleted meanwhile: nothing left to wait for.
                    None => document.status = DocStatus::Failed.as_str().to_owned(),
                }
            }
        }
        Ok(documents)
    }
}

fn ingest_response(documents: Vec<DocumentSummary>) -> pb::IngestDocumentsResponse {
    pb::IngestDocumentsResponse {
        documents: documents.into_iter().map(pb::Document::from).collect(),
    }
}

pub(super) async fn ingest(
    service: &RagService,
    request: Request<pb::IngestDocumentsRequest>,
) -> Result<Response<pb::IngestDocumentsResponse>, Status> {
    let tenant = Caller::of(&request)?.member_tenant()?;
    let message = request.into_inner();
    let ((), request_id) = validate::all((
        input::document_count(&message.documents, 1),
        idempotency::request_id(&message.request_id),
    ))?;
    let (collection, _) = service
        .requested_collection(tenant, &message.collection_id)
        .await?;
    let rows = input::new_documents(tenant, collection, &message.documents)?;
    let response = service
        .request_ids
        .once(
            &service.pool,
            tenant,
            request_id,
            "IngestDocuments",
            &message,
            async |conn| {
                let stored = store::insert_documents(conn, collection, &rows).await?;
                Ok(ingest_response(stored))
            },
        )
        .await?;
    // A retry wakes the workers for documents stored before: harmless, as a claim that
    // finds fewer than it was counting on sets the count right.
    service.ingestor.wake(rows.len());
    if !message.wait {
        return Ok(Response::new(response));
    }
    // A retry waits as the first call did, on the documents the first call stored.
    let ids: Vec<Uuid> = response
        .documents
        .iter()
        .filter_map(|document| document.id.parse().ok())
        .collect();
    let mut current = service
        .pool
        .run(async |conn| store::document_summaries(conn, tenant, &ids).await)
        .await?;
    current.sort_by_key(|document| ids.iter().position(|id| *id == document.id));
    let done = service.wait_until_done(tenant, current).await?;
    Ok(Response::new(ingest_response(done)))
}

pub(super) async fn ingest_stream(
    service: &RagService,
    request: Request<Streaming<pb::IngestDocumentsRequest>>,
) -> Result<Response<pb::IngestDocumentsResponse>, Status> {
    let tenant = Caller::of(&request)?.member_tenant()?;
    let mut stream = request.into_inner();
    let mut collection = None;
    let mut wait = false;
    let mut stored = Vec::new();
    while let Some(message) = stream.message().await? {
        input::document_count(&message.documents, 0)?;
        let id = match collection {
            Some(id) => id,
            None => {
                let (id, _) = service
                    .requested_collection(tenant, &message.collection_id)
                    .await?;
                *collection.insert(id)
            }
        };
        if !message.collection_id.is_empty()
            && validate::id("collection_id", &message.collection_id)? != id
        {
            return Err(Error::invalid(
                "collection_id",
                "must name the stream's first collection or be empty",
            )
            .into());
        }
        wait |= message.wait;
        stored.extend(
            service
                .store_documents(tenant, id, &message.documents)
                .await?,
        );
    }
    if collection.is_none() {
        return Err(Error::invalid("collection_id", "the stream sent no message").into());
    }
    if wait {
        stored = service.wait_until_done(tenant, stored).await?;
    }
    Ok(Response::new(ingest_response(stored)))
}

pub(super) async fn get(
    service: &RagService,
    request: Request<pb::GetDocumentRequest>,
) -> Result<Response<pb::GetDocumentResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let document = service
        .cache
        .get_or_load(&service.kinds.document, ScopedKey(tenant, id), || {
            service.pool.read_in(tenant, async |conn| {
                Ok(store::find_document(conn, tenant, id)
                    .await?
                    .map(pb::Document::from))
            })
        })
        .await?
        .ok_or(Error::NotFound("document"))?;
    Ok(Response::new(pb::GetDocumentResponse {
        document: Some(document),
    }))
}

pub(super) async fn list(
    service: &RagService,
    request: Request<pb::ListDocumentsRequest>,
) -> Result<Response<pb::ListDocumentsResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    let message = request.get_ref();
    let page_size = paging::page_size(message.page_size)?;
    let status = match pb::DocumentStatus::try_from(message.status) {
        Ok(status) => DocStatus::from_proto(status),
        Err(_) => return Err(Error::invalid("status", "is not a known status").into()),
    };
    let (collection, _) = service
        .requested_collection(tenant, &message.collection_id)
        .await?;
    let fingerprint = format!(
        "documents|{collection}|{}",
        status.map_or("", DocStatus::as_str)
    );
    let (rows, next_page_token) = service
        .pages
        .uuid_page(
            &message.page_token,
            &fingerprint,
            page_size,
            |row: &DocumentSummary| row.id,
            |after, limit| {
                service.pool.query_in(tenant, async move |conn| {
                    store::list_documents(conn, tenant, collection, status, after, limit).await
                })
            },
        )
        .await?;
    Ok(Response::new(pb::ListDocumentsResponse {
        documents: rows.into_iter().map(pb::Document::from).collect(),
        next_page_token,
    }))
}

pub(super) async fn delete(
    service: &RagService,
    request: Request<pb::DeleteDocumentRequest>,
) -> Result<Response<pb::DeleteDocumentResponse>, Status> {
    let tenant = Caller::of(&request)?.member_tenant()?;
    let id = validate::id("id", &request.get_ref().id)?;
    let collection = service
        .pool
        .write_in(tenant, async |conn| {
            store::delete_document(conn, tenant, id).await
        })
        .await?;
    service
        .cache
        .invalidate(&[(&service.kinds.document, ScopedKey(tenant, id))])
        .await;
    service
        .cache
        .invalidate_scope(kinds::SEARCHES, collection)
        .await;
    Ok(Response::new(pb::DeleteDocumentResponse {}))
}

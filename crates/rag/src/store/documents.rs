//! Documents: stored in one transaction per ingest call, read, listed and deleted.

use agentic_platform::db::SharedConn;
use agentic_platform::error::{Error, Result, foreign_key_violation};
use diesel::prelude::*;
use diesel::upsert::DecoratableTarget;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::model::{DocumentRow, DocumentSummary, Status};
use crate::schema::{document_attempts, documents};

/// Stores `rows` (all of one collection) as pending, in one transaction, and returns
/// one summary per row in order: the stored row, or the one the collection already held
/// under the same client id.
pub async fn insert_documents(
    conn: &mut AsyncPgConnection,
    collection: Uuid,
    rows: &[DocumentRow],
) -> Result<Vec<DocumentSummary>> {
    let client_ids: Vec<&str> = rows.iter().filter_map(|r| r.client_id.as_deref()).collect();
    conn.transaction::<_, Error, _>(async |conn| {
        let inserted: Vec<DocumentSummary> = diesel::insert_into(documents::table)
            .values(rows)
            .on_conflict((documents::collection_id, documents::client_id))
            .filter_target(documents::client_id.is_not_null())
            .do_nothing()
            .returning(DocumentSummary::as_returning())
            .get_results(conn)
            .await
            .map_err(|error| match foreign_key_violation(&error) {
                Some(_) => Error::NotFound("collection"),
                None => Error::from(error),
            })?;
        let existing: Vec<DocumentSummary> = if inserted.len() < rows.len() {
            documents::table
                .filter(documents::collection_id.eq(collection))
                .filter(documents::client_id.eq_any(&client_ids))
                .select(DocumentSummary::as_select())
                .load(conn)
                .await?
        } else {
            Vec::new()
        };
        Ok(rows
            .iter()
            .filter_map(|row| {
                inserted
                    .iter()
                    .find(|d| d.id == row.id)
                    .or_else(|| {
                        existing
                            .iter()
                            .find(|d| d.client_id.is_some() && d.client_id == row.client_id)
                    })
                    .cloned()
            })
            .collect())
    })
    .await
}

pub async fn find_document(
    conn: &mut SharedConn<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<DocumentRow>> {
    Ok(documents::table
        .filter(documents::tenant_id.eq(tenant).and(documents::id.eq(id)))
        .select(DocumentRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The current state of the tenant's documents `ids` (those that still exist).
pub async fn document_summaries(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<DocumentSummary>> {
    Ok(documents::table
        .filter(documents::tenant_id.eq(tenant))
        .filter(documents::id.eq_any(ids))
        .select(DocumentSummary::as_select())
        .load(conn)
        .await?)
}

pub async fn list_documents(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    collection: Uuid,
    status: Option<Status>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DocumentSummary>> {
    let mut query = documents::table
        .filter(documents::collection_id.eq(collection))
        .filter(documents::tenant_id.eq(tenant))
        .select(DocumentSummary::as_select())
        .order(documents::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(documents::status.eq(status.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(documents::id.gt(after));
    }
    Ok(query.load(conn).await?)
}

/// Deletes the document and (by cascade) its chunks; returns its collection.
pub async fn delete_document(conn: &mut AsyncPgConnection, tenant: Uuid, id: Uuid) -> Result<Uuid> {
    conn.transaction::<_, Error, _>(async |conn| {
        let collection = diesel::delete(
            documents::table.filter(documents::tenant_id.eq(tenant).and(documents::id.eq(id))),
        )
        .returning(documents::collection_id)
        .get_result::<Uuid>(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound("document"))?;
        diesel::delete(document_attempts::table.filter(document_attempts::document_id.eq(id)))
            .execute(conn)
            .await?;
        Ok(collection)
    })
    .await
}

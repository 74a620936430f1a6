//! Collections.

use agentic_platform::db::SharedConn;
use agentic_platform::error::{Error, Result, unique_violation};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::model::CollectionRow;
use crate::schema::collections;

pub async fn insert_collection(
    conn: &mut AsyncPgConnection,
    collection: &CollectionRow,
) -> Result<CollectionRow> {
    diesel::insert_into(collections::table)
        .values(collection)
        .returning(CollectionRow::as_returning())
        .get_result(conn)
        .await
        .map_err(|error| match unique_violation(&error) {
            Some("collections_tenant_slug_key") => Error::AlreadyExists(
                "a collection with this slug already exists in the tenant".into(),
            ),
            _ => Error::from(error),
        })
}

pub async fn find_collection(
    conn: &mut SharedConn<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<CollectionRow>> {
    Ok(collections::table
        .filter(
            collections::tenant_id
                .eq(tenant)
                .and(collections::id.eq(id)),
        )
        .select(CollectionRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn list_collections(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CollectionRow>> {
    let mut query = collections::table
        .filter(collections::tenant_id.eq(tenant))
        .select(CollectionRow::as_select())
        .order(collections::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(collections::id.gt(after));
    }
    Ok(query.load(conn).await?)
}

pub async fn delete_collection(conn: &mut AsyncPgConnection, tenant: Uuid, id: Uuid) -> Result<()> {
    let deleted = diesel::delete(
        collections::table.filter(
            collections::tenant_id
                .eq(tenant)
                .and(collections::id.eq(id)),
        ),
    )
    .execute(conn)
    .await?;
    if deleted == 0 {
        return Err(Error::NotFound("collection"));
    }
    Ok(())
}

/// Creates the HNSW index for vectors of `dimensions` if none exists yet. The migration
/// makes those of the local model (64, 128, 256); another model's first collection makes
/// its own. Indexes are made on an empty slice of the table, so this is quick.
pub async fn ensure_vector_index(conn: &mut AsyncPgConnection, dimensions: i32) -> Result<()> {
    use diesel_async::SimpleAsyncConnection;
    if matches!(dimensions, 64 | 128 | 256) {
        return Ok(());
    }
    if !(1..=MAX_INDEXED_DIMENSIONS).contains(&dimensions) {
        return Err(Error::invalid(
            "collection.dimensions",
            format!("must be at most {MAX_INDEXED_DIMENSIONS} (the HNSW index's limit)"),
        ));
    }
    // `dimensions` is an integer, so formatting it into the statement is safe.
    conn.batch_execute(&format!(
        "CREATE INDEX IF NOT EXISTS chunks_embedding_{dimensions}_idx ON rag.chunks \
         USING hnsw ((embedding::vector({dimensions})) vector_cosine_ops) \
         WITH (m = 16, ef_construction = 64) WHERE dimensions = {dimensions}"
    ))
    .await?;
    Ok(())
}

/// pgvector's HNSW indexes hold vectors of at most this many dimensions.
pub const MAX_INDEXED_DIMENSIONS: i32 = 2000;

//! The RAG service's queries; every one filters by tenant.

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
    conn: &mut AsyncPgConnection,
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

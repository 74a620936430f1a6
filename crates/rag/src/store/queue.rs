//! The ingestion queue: pending documents, taken `FOR UPDATE SKIP LOCKED` by a worker's
//! transaction and held until that transaction writes their chunks and marks them done.
//! A worker that dies releases its rows with its connection, so another takes them again.

use agentic_platform::error::Result;
use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Jsonb, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::model::NewChunk;
use crate::schema::chunks;

/// Rows per INSERT of chunks.
pub const CHUNK_ROWS_PER_STATEMENT: usize = 1000;

/// A pending document a worker holds, with the chunking and dimensions of its collection.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub tenant_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub collection_id: Uuid,
    #[diesel(sql_type = Text)]
    pub content: String,
    #[diesel(sql_type = Jsonb)]
    pub metadata: serde_json::Value,
    #[diesel(sql_type = Int4)]
    pub chunk_size: i32,
    #[diesel(sql_type = Int4)]
    pub chunk_overlap: i32,
    #[diesel(sql_type = Int4)]
    pub dimensions: i32,
}

/// Takes up to `limit` pending documents, oldest first, that no other worker holds;
/// they stay locked until the caller's transaction ends.
pub async fn claim(conn: &mut AsyncPgConnection, limit: i64) -> Result<Vec<Claimed>> {
    Ok(diesel::sql_query(
        "SELECT d.id, d.tenant_id, d.collection_id, d.content, d.metadata, \
                c.chunk_size, c.chunk_overlap, c.dimensions \
         FROM rag.documents d JOIN rag.collections c ON c.id = d.collection_id \
         WHERE d.status = 'pending' \
         ORDER BY d.id LIMIT $1 \
         FOR UPDATE OF d SKIP LOCKED",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
    .await?)
}

#[derive(QueryableByName)]
struct Attempt {
    #[diesel(sql_type = SqlUuid)]
    document_id: Uuid,
    #[diesel(sql_type = Int4)]
    attempts: i32,
}

/// Counts one more attempt at each of `ids` and returns each one's count. Run on a
/// connection of its own, outside the claiming transaction, so it survives a crash.
pub async fn count_attempts(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, i32)>> {
    let rows: Vec<Attempt> = diesel::sql_query(
        "INSERT INTO rag.document_attempts (document_id, attempts) \
         SELECT unnest($1::uuid[]), 1 \
         ON CONFLICT (document_id) DO UPDATE SET attempts = rag.document_attempts.attempts + 1 \
         RETURNING document_id, attempts",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.document_id, row.attempts))
        .collect())
}

/// Marks held documents failed with `reason` (their chunks are never written).
pub async fn mark_failed(conn: &mut AsyncPgConnection, ids: &[Uuid], reason: &str) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "UPDATE rag.documents SET status = 'failed', error = $2, chunk_count = 0, \
                updated_at = now() \
         WHERE id = ANY($1)",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Text, _>(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks held documents ready with their chunk counts.
pub async fn mark_ready(conn: &mut AsyncPgConnection, counts: &[(Uuid, i32)]) -> Result<()> {
    if counts.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = counts.iter().map(|(id, _)| *id).collect();
    let chunk_counts: Vec<i32> = counts.iter().map(|(_, n)| *n).collect();
    diesel::sql_query(
        "UPDATE rag.documents d SET status = 'ready', error = '', chunk_count = v.n, \
                updated_at = now() \
         FROM unnest($1::uuid[], $2::int4[]) AS v(id, n) \
         WHERE d.id = v.id",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Int4>, _>(chunk_counts)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes chunks, [`CHUNK_ROWS_PER_STATEMENT`] rows per INSERT.
pub async fn insert_chunks(conn: &mut AsyncPgConnection, rows: &[NewChunk]) -> Result<()> {
    for batch in rows.chunks(CHUNK_ROWS_PER_STATEMENT) {
        diesel::insert_into(chunks::table)
            .values(batch)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Documents waiting for a worker (the partial index of pending rows answers it).
pub async fn queue_depth(conn: &mut AsyncPgConnection) -> Result<i64> {
    use crate::schema::documents;
    Ok(documents::table
        .filter(documents::status.eq("pending"))
        .count()
        .get_result(conn)
        .await?)
}

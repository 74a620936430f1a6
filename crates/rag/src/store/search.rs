//! Search queries: nearest chunks by vector (HNSW) and by full text (GIN), within one
//! collection, optionally only of some documents or of documents whose metadata contains
//! an object.
//!
//! Vectors are stored unit-length, so ordering by cosine distance also orders by inner
//! product and by L2 distance; one cosine index per dimension count serves every
//! collection. Filtered vector scans keep their recall through pgvector's iterative
//! index scans (`hnsw.iterative_scan = relaxed_order`, a session setting of the
//! connection); the outer query restores the exact order.

use agentic_platform::db::PgConn;
use agentic_platform::error::Result;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Float8, Int4, Jsonb, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// Where a search looks and what it keeps.
#[derive(Debug, Clone)]
pub struct Scope {
    pub tenant: Uuid,
    pub collection: Uuid,
    /// Only documents whose metadata contains this object.
    pub metadata: Option<serde_json::Value>,
    /// Only these documents.
    pub documents: Option<Vec<Uuid>>,
    pub limit: i64,
}

/// One chunk found, with its document's title. `score` is the query's own measure:
/// cosine distance for vectors (lower is closer), `ts_rank_cd` for text (higher is).
#[derive(Debug, Clone, QueryableByName)]
pub struct Hit {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub document_id: Uuid,
    #[diesel(sql_type = Int4)]
    pub ordinal: i32,
    #[diesel(sql_type = Text)]
    pub content: String,
    #[diesel(sql_type = Jsonb)]
    pub metadata: serde_json::Value,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Float8)]
    pub score: f64,
}

/// The filters every search shares, after `$1` (the query) and before the limit.
const FILTERS: &str = "c.collection_id = $2 AND c.tenant_id = $3 \
     AND ($4::jsonb IS NULL OR c.metadata @> $4) \
     AND ($5::uuid[] IS NULL OR c.document_id = ANY($5))";

/// The statement of a dense search over vectors of `dimensions` (an integer, formatted
/// in so that the planner matches the partial index of that dimension).
pub fn dense_sql(dimensions: i32) -> String {
    format!(
        "WITH nearest AS MATERIALIZED ( \
           SELECT c.id, c.document_id, c.ordinal, c.content, c.metadata, \
                  c.embedding::vector({dimensions}) <=> $1 AS score \
           FROM rag.chunks c \
           WHERE c.dimensions = {dimensions} AND {FILTERS} \
           ORDER BY c.embedding::vector({dimensions}) <=> $1 LIMIT $6) \
         SELECT n.id, n.document_id, n.ordinal, n.content, n.metadata, d.title, n.score \
         FROM nearest n JOIN rag.documents d ON d.id = n.document_id \
         ORDER BY n.score, n.id"
    )
}

const LEXICAL_SQL: &str = "WITH q AS (SELECT websearch_to_tsquery('english', $1) AS query), \
     ranked AS MATERIALIZED ( \
       SELECT c.id, c.document_id, c.ordinal, c.content, c.metadata, \
              ts_rank_cd(c.search_text, q.query)::float8 AS score \
       FROM rag.chunks c, q \
       WHERE c.search_text @@ q.query AND ";

fn lexical_sql() -> String {
    format!(
        "{LEXICAL_SQL}{FILTERS} ORDER BY score DESC, c.id LIMIT $6) \
         SELECT r.id, r.document_id, r.ordinal, r.content, r.metadata, d.title, r.score \
         FROM ranked r JOIN rag.documents d ON d.id = r.document_id \
         ORDER BY r.score DESC, r.id"
    )
}

/// What one search runs: a dense query, a lexical one, or both (hybrid).
#[derive(Debug, Clone, Copy)]
pub struct Queries<'a> {
    /// The query vector, of the collection's dimensions.
    pub dense: Option<&'a [f32]>,
    pub lexical: Option<&'a str>,
    /// HNSW candidate list size for the dense query.
    pub ef_search: i32,
}

/// Runs `queries` on one connection: the dense and lexical hits, in their own order.
/// The connection's HNSW settings are made this search's first; they stay with the
/// connection, so the next search with the same ones sends no SET (a dense search is one
/// round trip).
pub async fn search(
    conn: &mut PgConn,
    scope: &Scope,
    queries: Queries<'_>,
) -> Result<(Vec<Hit>, Vec<Hit>)> {
    let dense_hits = match queries.dense {
        Some(vector) => {
            conn.set_session(&[
                ("hnsw.ef_search", &queries.ef_search.to_string()),
                ("hnsw.iterative_scan", "relaxed_order"),
            ])
            .await?;
            dense(conn, scope, vector).await?
        }
        None => Vec::new(),
    };
    let lexical_hits = match queries.lexical {
        Some(text) => lexical(conn, scope, text).await?,
        None => Vec::new(),
    };
    Ok((dense_hits, lexical_hits))
}

/// The chunks nearest `vector` (of the collection's dimensions); score = cosine distance.
/// Without [`search`]'s settings, the connection's apply.
pub async fn dense(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    vector: &[f32],
) -> Result<Vec<Hit>> {
    let dimensions = vector.len() as i32;
    Ok(diesel::sql_query(dense_sql(dimensions))
        .bind::<pgvector::sql_types::Vector, _>(pgvector::Vector::from(vector.to_vec()))
        .bind::<SqlUuid, _>(scope.collection)
        .bind::<SqlUuid, _>(scope.tenant)
        .bind::<Nullable<Jsonb>, _>(scope.metadata.as_ref())
        .bind::<Nullable<Array<SqlUuid>>, _>(scope.documents.as_deref())
        .bind::<BigInt, _>(scope.limit)
        .load(conn)
        .await?)
}

/// The chunks best matching `query` as a web-search style text query (quoted phrases,
/// `or`, `-excluded`); score = `ts_rank_cd`.
pub async fn lexical(conn: &mut AsyncPgConnection, scope: &Scope, query: &str) -> Result<Vec<Hit>> {
    Ok(diesel::sql_query(lexical_sql())
        .bind::<Text, _>(query)
        .bind::<SqlUuid, _>(scope.collection)
        .bind::<SqlUuid, _>(scope.tenant)
        .bind::<Nullable<Jsonb>, _>(scope.metadata.as_ref())
        .bind::<Nullable<Array<SqlUuid>>, _>(scope.documents.as_deref())
        .bind::<BigInt, _>(scope.limit)
        .load(conn)
        .await?)
}

//! Search: validation, the result cache, and the dense, lexical and hybrid rankings.
//!
//! Results are cached per collection as `rag_search:{collection}:{query hash}:{top_k}`;
//! the collection is the cache namespace, so any ingest or delete in it drops all its
//! cached results in O(1) (the `kinds::SEARCHES` namespace).

use std::fmt;

use agentic_platform::auth::Caller;
use agentic_platform::cache::CacheKey;
use agentic_platform::error::{Error, Result};
use agentic_platform::json;
use agentic_proto::rag::v1 as pb;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::RagService;
use crate::embedding::truncate;
use crate::input::{self, Mode, SearchInput};
use crate::store::{self, Hit, Queries, Scope};

/// Reciprocal-rank fusion's constant (Cormack et al.): rank r scores 1 / (RRF_K + r).
const RRF_K: f64 = 60.0;
/// Hybrid search fuses this many of each ranking (at least top_k).
const HYBRID_CANDIDATES: i64 = 50;

/// A cached search: the collection (its namespace scope), the query's hash and top_k.
struct SearchKey {
    tenant: Uuid,
    collection: Uuid,
    hash: String,
    top_k: i32,
}

impl fmt::Display for SearchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.collection, self.tenant, self.hash, self.top_k
        )
    }
}

impl CacheKey for SearchKey {
    /// The collection scopes the generation, so one bump drops all its results.
    fn scope(&self) -> Option<Uuid> {
        Some(self.collection)
    }
}

/// A search request, checked, with its collection.
struct Plan {
    input: SearchInput,
    collection: pb::Collection,
}

impl std::ops::Deref for Plan {
    type Target = SearchInput;

    fn deref(&self) -> &SearchInput {
        &self.input
    }
}

impl Plan {
    /// Everything that decides the results, hashed (the collection and top_k are in the
    /// key beside it).
    fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(format!(
            "{:?}|{}|{:?}|",
            self.mode, self.ef_search, self.min_score
        ));
        if let Some(text) = &self.text {
            hasher.update(b"t");
            hasher.update(text.as_bytes());
        }
        if let Some(vector) = &self.vector {
            hasher.update(b"v");
            vector.iter().for_each(|x| hasher.update(x.to_le_bytes()));
        }
        if let Some(metadata) = &self.metadata {
            hasher.update(b"m");
            hasher.update(metadata.to_string());
        }
        if let Some(ids) = &self.documents {
            hasher.update(b"d");
            ids.iter().for_each(|id| hasher.update(id.as_bytes()));
        }
        crate::hex(&hasher.finalize())
    }
}

impl RagService {
    async fn run_search(&self, tenant: Uuid, plan: &Plan) -> Result<pb::SearchResponse> {
        let dimensions = plan.collection.dimensions as usize;
        // A text query of a dense or hybrid search is embedded; a vector query is used as
        // it is.
        let embedded = match (&plan.vector, &plan.text, plan.mode) {
            (None, Some(text), Mode::Dense | Mode::Hybrid) => {
                let (mut vectors, _) = self.embeddings.embed(std::slice::from_ref(text)).await?;
                let vector = vectors
                    .pop()
                    .ok_or_else(|| Error::internal("no query embedding"))?;
                Some(truncate(vector, dimensions))
            }
            _ => None,
        };
        let vector = plan.vector.as_deref().or(embedded.as_deref());
        let limit = match plan.mode {
            Mode::Hybrid => HYBRID_CANDIDATES.max(plan.top_k as i64),
            _ => plan.top_k as i64,
        };
        let scope = Scope {
            tenant,
            collection: plan.collection_id,
            metadata: plan.metadata.clone(),
            documents: plan.documents.clone(),
            limit,
        };
        let lexical_text = match plan.mode {
            Mode::Lexical | Mode::Hybrid => plan.text.as_deref(),
            Mode::Dense => None,
        };
        let queries = Queries {
            dense: vector,
            lexical: lexical_text,
            // Hybrid reads more candidates than top_k; the list must hold them.
            ef_search: plan.ef_search.max(limit as i32).min(input::MAX_EF_SEARCH),
        };
        let (dense, lexical) = self
            .pool
            .query_in(tenant, async |conn| {
                store::search(conn, &scope, queries).await
            })
            .await?;
        let query_norm = vector.map_or(1.0, |v| v.iter().map(|x| x * x).sum::<f32>().sqrt() as f64);
        let distance = pb::Distance::try_from(plan.collection.distance).unwrap_or_default();
        let scored: Vec<(Hit, f64)> = match plan.mode {
            Mode::Dense => dense
                .into_iter()
                .map(|hit| {
                    let score = similarity(distance, hit.score, query_norm);
                    (hit, score)
                })
                .collect(),
            Mode::Lexical => lexical
                .into_iter()
                .map(|hit| {
                    let score = hit.score;
                    (hit, score)
                })
                .collect(),
            Mode::Hybrid => fuse(dense, lexical),
        };
        let results = scored
            .into_iter()
            // Compared as the f32 a client sees: a min_score equal to a score this
            // service returned keeps that result (in f64 it may be a hair below).
            .filter(|(_, score)| plan.min_score.is_none_or(|min| *score as f32 >= min))
            .take(plan.top_k as usize)
            .map(|(hit, score)| pb::SearchResult {
                chunk_id: hit.id.to_string(),
                document_id: hit.document_id.to_string(),
                title: hit.title,
                text: hit.content,
                score: score as f32,
                ordinal: hit.ordinal,
                metadata: Some(json::to_struct(&hit.metadata)),
            })
            .collect();
        Ok(pb::SearchResponse { results })
    }
}

/// The collection's similarity (higher is closer) from the cosine distance to a unit
/// vector, given the query's length.
fn similarity(distance: pb::Distance, cosine_distance: f64, query_norm: f64) -> f64 {
    let cosine = 1.0 - cosine_distance;
    match distance {
        pb::Distance::InnerProduct => cosine * query_norm,
        pb::Distance::L2 => {
            let squared = query_norm * query_norm + 1.0 - 2.0 * query_norm * cosine;
            1.0 / (1.0 + squared.max(0.0).sqrt())
        }
        pb::Distance::Cosine | pb::Distance::Unspecified => cosine,
    }
}

/// Reciprocal-rank fusion: each chunk scores the sum of 1 / (RRF_K + rank) over the
/// rankings it appears in; best first.
fn fuse(dense: Vec<Hit>, lexical: Vec<Hit>) -> Vec<(Hit, f64)> {
    let mut fused: Vec<(Hit, f64)> = Vec::with_capacity(dense.len() + lexical.len());
    for ranking in [dense, lexical] {
        for (rank, hit) in ranking.into_iter().enumerate() {
            let score = 1.0 / (RRF_K + rank as f64 + 1.0);
            match fused.iter_mut().find(|(seen, _)| seen.id == hit.id) {
                Some((_, total)) => *total += score,
                None => fused.push((hit, score)),
            }
        }
    }
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.id.cmp(&b.0.id)));
    fused
}

pub(super) async fn search(
    service: &RagService,
    request: Request<pb::SearchRequest>,
) -> Result<Response<pb::SearchResponse>, Status> {
    let tenant = Caller::of(&request)?.tenant()?;
    // The request first: bad input is INVALID_ARGUMENT even for an unknown collection.
    let input = input::search(request.get_ref())?;
    let collection_id = input.collection_id;
    let collection = service.collection(tenant, collection_id).await?;
    if let Some(vector) = &input.vector {
        input::query_vector_for(vector, collection.dimensions)?;
    }
    let plan = Plan { input, collection };
    let key = SearchKey {
        tenant,
        collection: collection_id,
        hash: plan.hash(),
        top_k: plan.top_k,
    };
    let response = service
        .cache
        .get_or_load(&service.kinds.search, key, || async {
            service.run_search(tenant, &plan).await.map(Some)
        })
        .await?
        .ok_or_else(|| Error::internal("a search returned nothing"))?;
    Ok(Response::new(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(n: u128) -> Hit {
        Hit {
            id: Uuid::from_u128(n),
            document_id: Uuid::from_u128(n),
            ordinal: 0,
            content: String::new(),
            metadata: serde_json::Value::Null,
            title: String::new(),
            score: 0.0,
        }
    }

    #[test]
    fn fusion_favours_chunks_both_rankings_agree_on() {
        let fused = fuse(vec![hit(1), hit(2), hit(3)], vec![hit(3), hit(4)]);
        let order: Vec<u128> = fused.iter().map(|(h, _)| h.id.as_u128()).collect();
        // 3 is in both; 1 is first once; 2 and 4 are second once each (tie: by id).
        assert_eq!(order, vec![3, 1, 2, 4]);
        let expected = 1.0 / 63.0 + 1.0 / 61.0;
        assert!((fused[0].1 - expected).abs() < 1e-12);
    }

    #[test]
    fn similarities_follow_the_collection_metric() {
        // A unit query at cosine distance 0.2 from a unit vector.
        assert!((similarity(pb::Distance::Cosine, 0.2, 1.0) - 0.8).abs() < 1e-12);
        assert!((similarity(pb::Distance::InnerProduct, 0.2, 2.0) - 1.6).abs() < 1e-12);
        // |q - x|² = 1 + 1 - 2·0.8 = 0.4.
        let l2 = similarity(pb::Distance::L2, 0.2, 1.0);
        assert!((l2 - 1.0 / (1.0 + 0.4f64.sqrt())).abs() < 1e-12);
    }
}

//! HNSW recall: 20,000 generated 256-dimensional vectors, searched through the service's
//! Search RPC (dense, default ef_search) and compared with an exact scan of the same rows,
//! unfiltered and with a metadata filter that keeps 10% of them.
//!
//! The vectors lie near a 24-dimensional subspace, as text embeddings do (their intrinsic
//! dimension is far below their width), with noise in every direction.

use std::collections::HashSet;

use agentic_e2e::rag::{RagHarness, create_collection, rag_admin};
use agentic_proto::rag::v1 as pb;
use agentic_rag::model::NewChunk;
use prost_types::{Struct, Value, value::Kind};
use uuid::Uuid;

const ROWS: usize = 20_000;
const DIMENSIONS: usize = 256;
const LATENT: usize = 24;
const GROUPS: usize = 10;
const QUERIES: usize = 50;
const TOP_K: usize = 10;

/// splitmix64, so the data are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box–Muller).
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

struct Generator {
    rng: Rng,
    basis: Vec<Vec<f32>>,
}

impl Generator {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let basis = (0..LATENT)
            .map(|_| (0..DIMENSIONS).map(|_| rng.normal()).collect())
            .collect();
        Self { rng, basis }
    }

    /// A unit vector: a random mix of the basis plus small isotropic noise.
    fn vector(&mut self) -> Vec<f32> {
        let mut v = vec![0f32; DIMENSIONS];
        for row in &self.basis {
            let weight = self.rng.normal();
            v.iter_mut().zip(row).for_each(|(x, b)| *x += weight * b);
        }
        let scale = (LATENT as f32).sqrt() * 0.15;
        v.iter_mut().for_each(|x| *x += scale * self.rng.normal());
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

fn group_filter(group: usize) -> Struct {
    Struct {
        fields: [(
            "group".to_owned(),
            Value {
                kind: Some(Kind::StringValue(group.to_string())),
            },
        )]
        .into_iter()
        .collect(),
    }
}

/// The ids of the `TOP_K` rows nearest `query` among `rows` (an exact scan).
fn exact(rows: &[(Uuid, usize, Vec<f32>)], query: &[f32], group: Option<usize>) -> Vec<Uuid> {
    let mut scored: Vec<(f32, Uuid)> = rows
        .iter()
        .filter(|(_, g, _)| group.is_none_or(|wanted| *g == wanted))
        .map(|(id, _, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>(), *id))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(TOP_K).map(|(_, id)| id).collect()
}

#[tokio::test]
async fn hnsw_recall_at_ten_against_an_exact_scan() {
    let harness = RagHarness::start().await;
    let (tenant, mut client) = rag_admin(&harness.service).await;
    let collection = create_collection(&mut client, "recall", 256, 32).await;
    let collection_id: Uuid = collection.id.parse().expect("uuid");

    // One document per group; its chunks carry its metadata.
    let documents: Vec<Uuid> = (0..GROUPS).map(|_| Uuid::now_v7()).collect();
    let mut values = Vec::new();
    for (group, id) in documents.iter().enumerate() {
        values.push(format!(
            "('{id}', '{tenant}', '{collection_id}', 'group {group}', '{{\"group\": \"{group}\"}}', 'generated', 'ready')"
        ));
    }
    harness
        .db
        .execute(&format!(
            "INSERT INTO rag.documents (id, tenant_id, collection_id, title, metadata, content, status) VALUES {}",
            values.join(", ")
        ))
        .await;

    let mut generator = Generator::new(42);
    let rows: Vec<(Uuid, usize, Vec<f32>)> = (0..ROWS)
        .map(|i| (Uuid::now_v7(), i % GROUPS, generator.vector()))
        .collect();
    let chunks: Vec<NewChunk> = rows
        .iter()
        .enumerate()
        .map(|(i, (id, group, vector))| NewChunk {
            id: *id,
            tenant_id: tenant,
            collection_id,
            document_id: documents[*group],
            ordinal: i as i32,
            content: format!("generated chunk {i}"),
            token_count: 3,
            metadata: serde_json::json!({"group": group.to_string()}),
            dimensions: DIMENSIONS as i32,
            embedding: pgvector::Vector::from(vector.clone()),
        })
        .collect();
    let mut conn = harness.db.connect().await;
    agentic_rag::store::insert_chunks(&mut conn, &chunks)
        .await
        .expect("insert chunks");
    // Statistics, as autovacuum would gather them soon after such a load: without them
    // the planner takes the collection for a small one and scans it exactly.
    harness.db.execute("ANALYZE rag.chunks").await;

    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| generator.vector()).collect();
    for (label, group, floor) in [("unfiltered", None, 0.95), ("10% filter", Some(3), 0.90)] {
        let mut found = 0;
        for query in &queries {
            let results = client
                .search(pb::SearchRequest {
                    collection_id: collection.id.clone(),
                    query_vector: query.clone(),
                    top_k: Some(TOP_K as i32),
                    metadata_filter: group.map(group_filter),
                    ..Default::default()
                })
                .await
                .expect("search")
                .into_inner()
                .results;
            assert_eq!(results.len(), TOP_K, "{label}: a full page");
            let got: HashSet<Uuid> = results
                .iter()
                .map(|r| r.chunk_id.parse().expect("uuid"))
                .collect();
            found += exact(&rows, query, group)
                .iter()
                .filter(|id| got.contains(id))
                .count();
        }
        let recall = found as f64 / (QUERIES * TOP_K) as f64;
        println!("HNSW recall@{TOP_K} over {ROWS} vectors, {label}: {recall:.3} (goal ≥ {floor})");
        assert!(recall >= floor, "{label}: recall {recall:.3} < {floor}");
    }
    // ef_search is per request, whatever the pooled connection had before: alternating
    // a narrow and a wide candidate list, the wide one finds more of the true neighbours.
    let (mut narrow, mut wide) = (0, 0);
    for query in &queries {
        for (ef_search, found) in [(10, &mut narrow), (400, &mut wide)] {
            let results = client
                .search(pb::SearchRequest {
                    collection_id: collection.id.clone(),
                    query_vector: query.clone(),
                    top_k: Some(TOP_K as i32),
                    ef_search: Some(ef_search),
                    ..Default::default()
                })
                .await
                .expect("search")
                .into_inner()
                .results;
            let got: HashSet<Uuid> = results
                .iter()
                .map(|r| r.chunk_id.parse().expect("uuid"))
                .collect();
            *found += exact(&rows, query, None)
                .iter()
                .filter(|id| got.contains(id))
                .count();
        }
    }
    let total = (QUERIES * TOP_K) as f64;
    let (narrow, wide) = (narrow as f64 / total, wide as f64 / total);
    println!("recall@{TOP_K} with ef_search 10: {narrow:.3}, with 400: {wide:.3}");
    assert!(
        wide >= 0.98 && wide > narrow,
        "ef_search 10: {narrow:.3}, 400: {wide:.3}"
    );

    // The index served them: the plan of an unfiltered search uses it.
    let literal: Vec<String> = queries[0].iter().map(f32::to_string).collect();
    let sql = agentic_rag::store::dense_sql(256)
        .replace("$1", &format!("'[{}]'::vector", literal.join(",")))
        .replace("$2", &format!("'{collection_id}'"))
        .replace("$3", &format!("'{tenant}'"))
        .replace("$4", "NULL")
        .replace("$5", "NULL")
        .replace("$6", "10");
    let plan = harness.db.explain(&sql).await;
    assert!(plan.contains("chunks_embedding_256_idx"), "{plan}");
}

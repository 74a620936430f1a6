//! `agentic-rag-bench`: the RAG service's part of `make bench`.
//!
//! 1. Builds a fixture of `--chunks` chunks (100,000 by default) in one collection: texts
//!    generated from topic vocabularies, embedded by the local model, written straight to
//!    the database (the HNSW index is built once, after the rows).
//! 2. Measures ingestion through the service (IngestDocuments with `wait`, local model),
//!    in chunks per second.
//! 3. Measures Search (top 10, dense and hybrid) in interleaved rounds through the RAG
//!    service: uncached (every request a different result-cache key: 256 query texts,
//!    each request with its own `min_score` below any score) and cached (one request
//!    repeated); beside the same search run as raw SQL through the platform's pool in
//!    this process (the service's own store function, given the query's vector, without
//!    gRPC, auth or embedding). With `--baseline`, also dense Search by query vector
//!    through the service (uncached) and through a bare tonic server running the same
//!    statement (`agentic-baseline search`): the gRPC hop the service pays, without its
//!    auth, validation, collection lookup or cache.
//!
//! Prints one JSON object per measurement for `scripts/bench.sh` to report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentic_platform::auth::{Tokens, roles};
use agentic_platform::config::{AuthArgs, DatabaseArgs};
use agentic_platform::db::Pool;
use agentic_platform::testsuite::Bearer;
use agentic_proto::rag::v1 as pb;
use agentic_proto::rag::v1::rag_service_client::RagServiceClient;
use agentic_rag::embedding::{Embedder, WORDLLAMA_TOKENIZER, WORDLLAMA_WEIGHTS, WordLlama};
use agentic_rag::model::NewChunk;
use agentic_rag::store::{self, Queries, Scope};
use anyhow::Context;
use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "agentic-rag-bench",
    about = "The RAG service's benchmark for make bench"
)]
struct Cli {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The RAG service.
    #[arg(long)]
    service: String,
    /// A bare search server (`agentic-baseline search`) to set the service's dense search
    /// by vector beside.
    #[arg(long)]
    baseline: Option<String>,
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    #[arg(long, env = "EMBEDDING_MODEL_DIR", default_value = ".local/models")]
    models: std::path::PathBuf,
    #[arg(long, default_value_t = 100_000)]
    chunks: usize,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Searches in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

/// Words per topic: a chunk talks about one topic, so dense search has structure to find.
const TOPICS: &[&[&str]] = &[
    &[
        "river", "bank", "flood", "bridge", "current", "delta", "fishing", "canoe",
    ],
    &[
        "invoice", "payment", "refund", "customer", "receipt", "discount", "order", "tax",
    ],
    &[
        "router", "wifi", "firmware", "network", "signal", "modem", "password", "outage",
    ],
    &[
        "bread", "flour", "oven", "yeast", "dough", "butter", "pastry", "recipe",
    ],
    &[
        "planet",
        "orbit",
        "telescope",
        "galaxy",
        "comet",
        "rocket",
        "moon",
        "gravity",
    ],
    &[
        "doctor", "fever", "vaccine", "clinic", "symptom", "therapy", "nurse", "dose",
    ],
    &[
        "court", "contract", "lawyer", "verdict", "appeal", "judge", "statute", "witness",
    ],
    &[
        "guitar",
        "melody",
        "concert",
        "rhythm",
        "orchestra",
        "chord",
        "album",
        "singer",
    ],
    &[
        "football", "goal", "league", "coach", "stadium", "referee", "season", "striker",
    ],
    &[
        "database", "index", "query", "table", "replica", "backup", "schema", "latency",
    ],
];
const GLUE: &[&str] = &["the", "a", "every", "our", "their", "this"];
const VERBS: &[&str] = &[
    "improves", "delays", "needs", "explains", "changes", "protects",
];

/// splitmix64: the same fixture on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as usize
    }
    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.next() % words.len()]
    }
}

/// A sentence of a few clauses on `topic`.
fn sentence(rng: &mut Rng, topic: usize, n: usize) -> String {
    let words = TOPICS[topic];
    (0..3)
        .map(|_| {
            format!(
                "{} {} {} {} {}",
                rng.pick(GLUE),
                rng.pick(words),
                rng.pick(VERBS),
                rng.pick(GLUE),
                rng.pick(words)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
        + &format!(" (note {n}).")
}

/// Numbers the uncached searches of the whole run, so no two share a cache key.
static UNIQUE: AtomicU64 = AtomicU64::new(0);

type Client = RagServiceClient<InterceptedService<Channel, Bearer>>;

async fn client(addr: &str, token: &str) -> anyhow::Result<Client> {
    let channel = Channel::from_shared(addr.to_owned())?.connect().await?;
    Ok(RagServiceClient::new(InterceptedService::new(
        channel,
        Bearer::new(Some(token)),
    )))
}

fn report(label: &str, round: usize, value: f64, unit: &str, errors: u64) {
    println!(
        "{}",
        serde_json::json!({"label": label, "round": round, "value": value, "unit": unit, "errors": errors})
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let auth = AuthArgs {
        jwt_secret: cli.jwt_secret.clone(),
        jwt_issuer: "agentic".into(),
        jwt_ttl: 3600,
    };
    let tokens = Tokens::new(&auth)?;
    let tenant = Uuid::now_v7();
    let (token, _) = tokens.issue("agentic-rag-bench", Some(tenant), roles::ADMIN, None)?;
    let mut service = client(&cli.service, &token).await?;
    let model = WordLlama::load(
        &cli.models.join(WORDLLAMA_WEIGHTS),
        &cli.models.join(WORDLLAMA_TOKENIZER),
        256,
    )?;

    let collection = service
        .create_collection(pb::CreateCollectionRequest {
            request_id: String::new(),
            collection: Some(pb::Collection {
                name: "bench".into(),
                slug: format!("bench-{}", &tenant.simple().to_string()[..12]),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .collection
        .context("collection")?;
    let collection_id: Uuid = collection.id.parse()?;
    eprintln!("[rag-bench] writing {} chunks", cli.chunks);
    let started = Instant::now();
    fixture(&cli, &model, tenant, collection_id).await?;
    eprintln!("[rag-bench] fixture ready in {:.0?}", started.elapsed());

    let ingested = ingest_throughput(&mut service, tenant).await?;
    raw_insert_throughput(&cli.database_url, tenant, &ingested).await?;

    // Queries: each round robin over many texts, so uncached searches really are.
    let mut rng = Rng(7);
    let texts: Vec<String> = (0..256)
        .map(|i| sentence(&mut rng, i % TOPICS.len(), i))
        .collect();
    let vectors = Arc::new(model.embed(&texts).await?);
    let texts = Arc::new(texts);
    let pool = Pool::new("bench", &DatabaseArgs::with_url(&cli.database_url));
    let scope = Scope {
        tenant,
        collection: collection_id,
        metadata: None,
        documents: None,
        limit: 10,
    };
    let bare = match &cli.baseline {
        Some(addr) => Some(RagServiceClient::new(
            Channel::from_shared(addr.clone())?.connect().await?,
        )),
        None => None,
    };
    for round in 1..=cli.rounds {
        if let Some(bare) = &bare {
            by_vector(
                &cli,
                round,
                &service,
                bare,
                tenant,
                &collection.id,
                &vectors,
            )
            .await;
        }
        for (mode, name) in [
            (pb::SearchMode::Dense, "dense"),
            (pb::SearchMode::Hybrid, "hybrid"),
        ] {
            let hybrid = mode == pb::SearchMode::Hybrid;
            let raw = {
                let (pool, scope, texts, vectors) =
                    (pool.clone(), scope.clone(), texts.clone(), vectors.clone());
                closed_loop(cli.concurrency, cli.duration, move |i| {
                    let (pool, mut scope, texts, vectors) =
                        (pool.clone(), scope.clone(), texts.clone(), vectors.clone());
                    async move {
                        let k = i % texts.len();
                        if hybrid {
                            scope.limit = 50;
                        }
                        let queries = Queries {
                            dense: Some(&vectors[k]),
                            lexical: hybrid.then_some(texts[k].as_str()),
                            ef_search: agentic_rag::DEFAULT_EF_SEARCH,
                        };
                        pool.run(async |conn| store::search(conn, &scope, queries).await)
                            .await
                            .is_ok()
                    }
                })
                .await
            };
            report(
                &format!("raw SQL through the pool, {name}"),
                round,
                raw.0,
                "req/s",
                raw.1,
            );
            for (label, repeat) in [("service, uncached", false), ("service, cached", true)] {
                let (client, texts, collection) =
                    (service.clone(), texts.clone(), collection.id.clone());
                let measured = closed_loop(cli.concurrency, cli.duration, move |i| {
                    let (mut client, texts, collection) =
                        (client.clone(), texts.clone(), collection.clone());
                    async move {
                        let k = if repeat { 0 } else { i % texts.len() };
                        // Below any score (all are ≥ -1), and a cache key of its own in
                        // the whole run (f32 tells a million of them apart).
                        let min_score = (!repeat).then(|| {
                            let n = UNIQUE.fetch_add(1, Ordering::Relaxed) % 1_000_000;
                            -2.0 - n as f32 * 1e-6
                        });
                        client
                            .search(pb::SearchRequest {
                                collection_id: collection,
                                query: texts[k].clone(),
                                mode: mode as i32,
                                top_k: Some(10),
                                min_score,
                                ..Default::default()
                            })
                            .await
                            .is_ok_and(|r| r.get_ref().results.len() == 10)
                    }
                })
                .await;
                report(
                    &format!("{label} Search, {name}"),
                    round,
                    measured.0,
                    "req/s",
                    measured.1,
                );
            }
        }
    }
    Ok(())
}

/// Dense Search by query vector, uncached, through the service and through the bare
/// server, one measurement each.
async fn by_vector(
    cli: &Cli,
    round: usize,
    service: &Client,
    bare: &RagServiceClient<Channel>,
    tenant: Uuid,
    collection: &str,
    vectors: &Arc<Vec<Vec<f32>>>,
) {
    let (collection, vectors) = (collection.to_owned(), vectors.clone());
    let request = move |k: usize, min_score: Option<f32>| pb::SearchRequest {
        collection_id: collection.clone(),
        query_vector: vectors[k % vectors.len()].clone(),
        mode: pb::SearchMode::Dense as i32,
        top_k: Some(10),
        min_score,
        ..Default::default()
    };
    let request = Arc::new(request);
    let (client, make) = (service.clone(), request.clone());
    let measured = closed_loop(cli.concurrency, cli.duration, move |i| {
        let (mut client, make) = (client.clone(), make.clone());
        async move {
            let n = UNIQUE.fetch_add(1, Ordering::Relaxed) % 1_000_000;
            client
                .search(make(i, Some(-2.0 - n as f32 * 1e-6)))
                .await
                .is_ok_and(|r| r.get_ref().results.len() == 10)
        }
    })
    .await;
    report(
        "service, uncached Search by vector, dense",
        round,
        measured.0,
        "req/s",
        measured.1,
    );
    let tenant: tonic::metadata::MetadataValue<_> =
        tenant.to_string().parse().expect("a uuid is ascii");
    let (client, make) = (bare.clone(), request);
    let measured = closed_loop(cli.concurrency, cli.duration, move |i| {
        let (mut client, make, tenant) = (client.clone(), make.clone(), tenant.clone());
        async move {
            let mut request = tonic::Request::new(make(i, None));
            request.metadata_mut().insert("x-tenant-id", tenant);
            client
                .search(request)
                .await
                .is_ok_and(|r| r.get_ref().results.len() == 10)
        }
    })
    .await;
    report(
        "bare tonic server, Search by vector, dense",
        round,
        measured.0,
        "req/s",
        measured.1,
    );
}

/// Runs `call(i)` from `concurrency` workers for `duration`; requests/s and failures.
async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, call: F) -> (f64, u64)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (call, done, failed, stop) =
                (call.clone(), done.clone(), failed.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    if call(i).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    i += concurrency;
                }
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        done.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

/// Writes the documents and chunks of the search fixture, then builds the index.
async fn fixture(
    cli: &Cli,
    model: &WordLlama,
    tenant: Uuid,
    collection: Uuid,
) -> anyhow::Result<()> {
    const DOCUMENTS: usize = 100;
    let mut conn = AsyncPgConnection::establish(&cli.database_url).await?;
    let documents: Vec<Uuid> = (0..DOCUMENTS).map(|_| Uuid::now_v7()).collect();
    let values: Vec<String> = documents
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                "('{id}', '{tenant}', '{collection}', 'bench document {i}', '{{\"topic\": \"{}\"}}', 'generated', 'ready')",
                i % TOPICS.len()
            )
        })
        .collect();
    conn.batch_execute(&format!(
        "INSERT INTO rag.documents (id, tenant_id, collection_id, title, metadata, content, status) VALUES {}",
        values.join(", ")
    ))
    .await?;
    // Rows first, index after: one build is much faster than 100,000 inserts into it.
    conn.batch_execute("DROP INDEX IF EXISTS rag.chunks_embedding_256_idx")
        .await?;
    let mut rng = Rng(1);
    let per_batch = 5_000;
    for start in (0..cli.chunks).step_by(per_batch) {
        let end = (start + per_batch).min(cli.chunks);
        let texts: Vec<String> = (start..end)
            .map(|n| sentence(&mut rng, (n / DOCUMENTS) % TOPICS.len(), n))
            .collect();
        let vectors = model.embed(&texts).await?;
        let rows: Vec<NewChunk> = texts
            .into_iter()
            .zip(vectors)
            .enumerate()
            .map(|(offset, (content, vector))| {
                let n = start + offset;
                let document = (n / DOCUMENTS) % DOCUMENTS;
                NewChunk {
                    id: Uuid::now_v7(),
                    tenant_id: tenant,
                    collection_id: collection,
                    document_id: documents[document],
                    ordinal: n as i32,
                    content,
                    token_count: 20,
                    metadata: serde_json::json!({"topic": (document % TOPICS.len()).to_string()}),
                    dimensions: 256,
                    embedding: pgvector::Vector::from(vector),
                }
            })
            .collect();
        store::insert_chunks(&mut conn, &rows).await?;
    }
    eprintln!("[rag-bench] building the HNSW index");
    conn.batch_execute(
        "SET maintenance_work_mem = '1GB'; \
         CREATE INDEX chunks_embedding_256_idx ON rag.chunks \
           USING hnsw ((embedding::vector(256)) vector_cosine_ops) \
           WITH (m = 16, ef_construction = 64) WHERE dimensions = 256; \
         ANALYZE rag.chunks; ANALYZE rag.documents",
    )
    .await?;
    Ok(())
}

/// What the service ingested: its collection and the chunks each call stored.
struct Ingested {
    collection: Uuid,
    chunks_per_call: Vec<usize>,
}

/// Chunks per second ingested through the service with the local model.
async fn ingest_throughput(client: &mut Client, tenant: Uuid) -> anyhow::Result<Ingested> {
    let collection = client
        .create_collection(pb::CreateCollectionRequest {
            request_id: String::new(),
            collection: Some(pb::Collection {
                name: "ingest".into(),
                slug: format!("ingest-{}", &tenant.simple().to_string()[..12]),
                chunk_size: 64,
                chunk_overlap: 8,
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .collection
        .context("collection")?;
    let mut rng = Rng(99);
    let started = Instant::now();
    let mut chunks = 0;
    let mut chunks_per_call = Vec::new();
    for call in 0..10 {
        let documents = (0..20)
            .map(|d| {
                let text: Vec<String> = (0..40)
                    .map(|s| {
                        sentence(
                            &mut rng,
                            (call + d + s) % TOPICS.len(),
                            call * 10_000 + d * 100 + s,
                        )
                    })
                    .collect();
                pb::DocumentInput {
                    title: format!("ingested {call}-{d}"),
                    text: text.join(" "),
                    ..Default::default()
                }
            })
            .collect();
        let mut request = tonic::Request::new(pb::IngestDocumentsRequest {
            request_id: String::new(),
            collection_id: collection.id.clone(),
            documents,
            wait: true,
        });
        request.set_timeout(Duration::from_secs(10));
        let done = client
            .ingest_documents(request)
            .await?
            .into_inner()
            .documents;
        anyhow::ensure!(
            done.iter()
                .all(|d| d.status == pb::DocumentStatus::Ready as i32),
            "ingest did not finish within the call"
        );
        let stored = done.iter().map(|d| d.chunk_count as usize).sum::<usize>();
        chunks += stored;
        chunks_per_call.push(stored);
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("[rag-bench] ingested {chunks} chunks in {elapsed:.1}s");
    report(
        "IngestDocuments with wait, local model",
        1,
        chunks as f64 / elapsed,
        "chunks/s",
        0,
    );
    Ok(Ingested {
        collection: collection.id.parse()?,
        chunks_per_call,
    })
}

/// Connections the raw ingestion baseline writes on at once: the service's default
/// `INGEST_WORKERS`.
const RAW_INGEST_CONNECTIONS: usize = 2;

/// `vector` with the last bit of its first component flipped: a different vector to the
/// index, the same one to a search (a change of about one part in ten million).
fn not_a_copy(vector: pgvector::Vector) -> pgvector::Vector {
    let mut values = vector.to_vec();
    if let Some(first) = values.first_mut() {
        *first = f32::from_bits(first.to_bits() ^ 1);
    }
    pgvector::Vector::from(values)
}

/// The floor of ingestion: the chunks the service stored (their texts and vectors, read
/// back), written again into the same table and HNSW index by multi-row INSERTs, one
/// batch per service call, in chunks per second. No chunking, embedding or queue. Each
/// batch is split over [`RAW_INGEST_CONNECTIONS`] connections writing at once, as the
/// service's workers (`INGEST_WORKERS`) split a call's documents.
///
/// Each vector's last bit is flipped ([`not_a_copy`]): pgvector adds a vector equal to
/// one already in the index to that element (no graph search, no neighbours updated),
/// so exact copies would measure a shortcut the service's new chunks never take.
async fn raw_insert_throughput(url: &str, tenant: Uuid, ingested: &Ingested) -> anyhow::Result<()> {
    use agentic_rag::schema::chunks;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let mut conn = AsyncPgConnection::establish(url).await?;
    let stored: Vec<(String, i32, serde_json::Value, i32, pgvector::Vector)> = chunks::table
        .filter(chunks::collection_id.eq(ingested.collection))
        .order((chunks::document_id, chunks::ordinal))
        .select((
            chunks::content,
            chunks::token_count,
            chunks::metadata,
            chunks::dimensions,
            chunks::embedding,
        ))
        .load(&mut conn)
        .await?;
    let document = Uuid::now_v7();
    conn.batch_execute(&format!(
        "INSERT INTO rag.documents (id, tenant_id, collection_id, title, metadata, content, status) \
         VALUES ('{document}', '{tenant}', '{}', 'raw copies', '{{}}', '', 'ready')",
        ingested.collection
    ))
    .await?;
    let rows: Vec<NewChunk> = stored
        .into_iter()
        .enumerate()
        .map(
            |(ordinal, (content, token_count, metadata, dimensions, embedding))| NewChunk {
                id: Uuid::now_v7(),
                tenant_id: tenant,
                collection_id: ingested.collection,
                document_id: document,
                ordinal: ordinal as i32,
                content,
                token_count,
                metadata,
                dimensions,
                embedding: not_a_copy(embedding),
            },
        )
        .collect();
    let mut connections = vec![conn];
    while connections.len() < RAW_INGEST_CONNECTIONS {
        connections.push(AsyncPgConnection::establish(url).await?);
    }
    let started = Instant::now();
    let mut rest = rows.as_slice();
    for &count in &ingested.chunks_per_call {
        let (batch, after) = rest.split_at(count.min(rest.len()));
        let share = batch.len().div_ceil(RAW_INGEST_CONNECTIONS).max(1);
        let writes = connections
            .iter_mut()
            .zip(batch.chunks(share))
            .map(|(conn, part)| {
                conn.transaction::<_, agentic_platform::error::Error, _>(async |conn| {
                    store::insert_chunks(conn, part).await
                })
            });
        futures::future::try_join_all(writes).await?;
        rest = after;
    }
    let elapsed = started.elapsed().as_secs_f64();
    report(
        "raw multi-row INSERT of the same chunks",
        1,
        rows.len() as f64 / elapsed,
        "chunks/s",
        0,
    );
    Ok(())
}

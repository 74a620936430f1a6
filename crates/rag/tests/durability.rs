//! Ingestion survives a crash: the `agentic-rag` process is killed (SIGKILL) while its
//! workers are processing a 200-document ingest; after a restart every document ends
//! READY with its full chunk count, and no chunk is stored twice.

use std::time::Duration;

use agentic_platform::auth::{Tokens, roles};
use agentic_platform::service::ServiceType;
use agentic_platform::testsuite::{self, Bearer, ServiceProcess, TestDatabase};
use agentic_proto::rag::v1 as pb;
use agentic_proto::rag::v1::rag_service_client::RagServiceClient;
use agentic_rag::RagApp;
use agentic_rag::chunking::chunk;
use agentic_rag::embedding::{Embedder, WORDLLAMA_TOKENIZER, WORDLLAMA_WEIGHTS, WordLlama};
use diesel::sql_types::{BigInt, Int4, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use tonic::service::interceptor::InterceptedService;
use uuid::Uuid;

const DOCUMENTS: usize = 200;
const CHUNK_SIZE: usize = 32;
const CHUNK_OVERLAP: usize = 4;

fn models() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/models")
}

/// Distinct texts of a few dozen chunks each.
fn text(n: usize) -> String {
    (0..30)
        .map(|s| {
            format!(
                "Report {n}, section {s}: the committee reviewed item {} and found that \
                 measure {} improved throughput by {} percent over the quarter.",
                n * 31 + s,
                s * 7 + n,
                (n + s) % 97
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn start(db: &TestDatabase) -> ServiceProcess {
    let models = models()
        .canonicalize()
        .expect("the model is in .local/models");
    ServiceProcess::start_with_env(
        env!("CARGO_BIN_EXE_agentic-rag"),
        &db.url,
        &[
            ("EMBEDDING_MODEL_DIR", models.to_str().expect("utf-8 path")),
            // Small claims, so that many are in progress over the ingest's lifetime.
            ("INGEST_BATCH_DOCUMENTS", "4"),
        ],
    )
    .await
}

#[derive(diesel::QueryableByName)]
struct Stored {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Int4)]
    chunk_count: i32,
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = BigInt)]
    ordinals: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    content: String,
}

#[tokio::test]
async fn a_killed_worker_loses_no_document_and_duplicates_no_chunk() {
    let db = TestDatabase::create(RagApp::SPEC.name, RagApp::MIGRATIONS).await;
    let mut process = start(&db).await;
    let tokens = Tokens::new(&testsuite::auth_args()).expect("tokens");
    let token = tokens
        .issue("durability", Some(Uuid::now_v7()), roles::ADMIN, None)
        .expect("token")
        .0;
    let client = |addr| {
        let token = token.clone();
        async move {
            let channel = testsuite::grpc_channel(addr).await.expect("channel");
            RagServiceClient::new(InterceptedService::new(channel, Bearer::new(Some(&token))))
        }
    };
    let mut rag = client(process.addr).await;
    let collection = rag
        .create_collection(pb::CreateCollectionRequest {
            request_id: String::new(),
            collection: Some(pb::Collection {
                name: "Reports".into(),
                slug: "reports".into(),
                chunk_size: CHUNK_SIZE as i32,
                chunk_overlap: CHUNK_OVERLAP as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("collection")
        .into_inner()
        .collection
        .expect("collection");
    for part in 0..2 {
        let documents = (0..DOCUMENTS / 2)
            .map(|i| {
                let n = part * DOCUMENTS / 2 + i;
                pb::DocumentInput {
                    title: format!("report {n}"),
                    text: text(n),
                    ..Default::default()
                }
            })
            .collect();
        rag.ingest_documents(pb::IngestDocumentsRequest {
            request_id: String::new(),
            collection_id: collection.id.clone(),
            documents,
            wait: false,
        })
        .await
        .expect("ingest");
    }

    // Kill it once the workers are well under way, but not done, and while a claim is
    // in progress: its attempts are counted (committed apart) while its documents still
    // read pending to others. Between claims a worker only drops cached entries, and a
    // kill there would leave nothing to take again.
    let ready = "SELECT count(*) AS n FROM rag.documents WHERE status = 'ready'";
    let in_progress = "SELECT count(*) AS n FROM rag.documents d \
                       JOIN rag.document_attempts a ON a.document_id = d.id \
                       WHERE d.status = 'pending'";
    let mut done = 0;
    // However slow the machine (a busy CI runner), the workers get a minute to start.
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < give_up {
        done = db.count(ready).await;
        if done >= 8 && db.count(in_progress).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    process.kill().await;
    assert!(
        (8..DOCUMENTS as i64).contains(&done),
        "killed mid-ingest ({done} of {DOCUMENTS} ready)"
    );
    let at_kill = db.count(ready).await;
    println!("killed with {at_kill} of {DOCUMENTS} documents ready");

    let process = start(&db).await;
    let mut finished = 0;
    for _ in 0..1200 {
        finished = db
            .count("SELECT count(*) AS n FROM rag.documents WHERE status <> 'pending'")
            .await;
        if finished == DOCUMENTS as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        finished, DOCUMENTS as i64,
        "every document settled after the restart"
    );
    drop(process);

    let stored: Vec<Stored> = diesel::sql_query(
        "SELECT d.id, d.chunk_count, d.content, count(c.id) AS rows, \
                count(DISTINCT c.ordinal) AS ordinals \
         FROM rag.documents d LEFT JOIN rag.chunks c ON c.document_id = d.id \
         WHERE d.status = 'ready' GROUP BY d.id",
    )
    .load(&mut db.connect().await)
    .await
    .expect("stored documents");
    assert_eq!(stored.len(), DOCUMENTS, "every document is ready");
    let model = WordLlama::load(
        &models().join(WORDLLAMA_WEIGHTS),
        &models().join(WORDLLAMA_TOKENIZER),
        256,
    )
    .expect("model");
    let tokens = |text: &str| model.count_tokens(text);
    for document in &stored {
        let expected = chunk(&document.content, CHUNK_SIZE, CHUNK_OVERLAP, &tokens).len() as i64;
        assert!(expected > 1);
        assert_eq!(
            (
                document.chunk_count as i64,
                document.rows,
                document.ordinals
            ),
            (expected, expected, expected),
            "document {}: its full chunk count, each chunk once",
            document.id
        );
    }
    // Documents the killed process was working on were taken again, not lost.
    let retried = db
        .count("SELECT count(*) AS n FROM rag.document_attempts WHERE attempts >= 2")
        .await;
    assert!(
        retried >= 1,
        "some document was mid-work when the process died"
    );
    println!("{retried} documents were retried after the crash");
}

//! The OpenAI-compatible embedding provider against a real HTTP embedding server (the
//! local model served over `/v1/embeddings` by the test): batches and concurrency by
//! count, the embedding cache, chunk writes per statement, and provider errors.

use std::sync::atomic::Ordering;

use agentic_e2e::rag::{
    EmbeddingServer, POISON, RagClient, create_collection, document, ingest_and_wait, rag_client,
};
use agentic_platform::auth::roles;
use agentic_platform::testsuite::{Options, TestDatabase, TestService};
use agentic_proto::rag::v1 as pb;
use agentic_rag::RagApp;
use uuid::Uuid;

/// A RAG service whose embeddings come from `server`.
async fn service_on(
    server: &EmbeddingServer,
    db: &TestDatabase,
    retries: u32,
    workers: usize,
) -> TestService<RagApp> {
    let options = Options {
        service_flags: vec![
            "--embedding-provider".into(),
            "openai".into(),
            "--embedding-url".into(),
            server.url(),
            "--embedding-model".into(),
            "wordllama-over-http".into(),
            "--embedding-dimensions".into(),
            "256".into(),
            "--embedding-retries".into(),
            retries.to_string(),
            "--ingest-workers".into(),
            workers.to_string(),
        ],
        ..Options::default()
    };
    let service = TestService::<RagApp>::start_unready(&db.url, &db.name, &options).await;
    service
        .wait_for(tonic_health::pb::health_check_response::ServingStatus::Serving)
        .await;
    service
}

async fn admin(service: &TestService<RagApp>) -> RagClient {
    rag_client(service, Uuid::now_v7(), roles::ADMIN).await
}

/// Documents of `paragraphs` one-line paragraphs each, every paragraph its own chunk
/// (chunks of 32 tokens, no overlap; each paragraph is shorter, two are longer).
fn documents(prefix: &str, count: usize, paragraphs: usize) -> Vec<pb::DocumentInput> {
    (0..count)
        .map(|d| {
            let text: Vec<String> = (0..paragraphs)
                .map(|p| {
                    format!("{prefix} document {d} paragraph {p} says the river runs past mill number {p} today and the heron waits by the bank.")
                })
                .collect();
            document(&format!("{prefix} {d}"), &text.join("\n\n"))
        })
        .collect()
}

/// Counts INSERT statements on rag.chunks in the test's database (a statement trigger).
async fn count_chunk_inserts(db: &TestDatabase) {
    db.execute(
        "CREATE TABLE public.chunk_inserts (at timestamptz NOT NULL DEFAULT now(),
                                            backend integer NOT NULL DEFAULT pg_backend_pid());
         CREATE FUNCTION public.count_chunk_insert() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO public.chunk_inserts DEFAULT VALUES; RETURN NULL; END $$;
         CREATE TRIGGER count_chunk_inserts AFTER INSERT ON rag.chunks
           FOR EACH STATEMENT EXECUTE FUNCTION public.count_chunk_insert();",
    )
    .await;
}

/// A RAG service with `workers` ingestion workers over the fake provider (3 retries), its
/// database counting chunk INSERTs, an admin client and a collection named `name` (chunks
/// of 32 tokens, no overlap).
struct Counting {
    server: EmbeddingServer,
    db: TestDatabase,
    _service: TestService<RagApp>,
    client: RagClient,
    collection: pb::Collection,
}

async fn counting(workers: usize, name: &str) -> Counting {
    let server = EmbeddingServer::start().await;
    let db = TestDatabase::create(
        "rag",
        <RagApp as agentic_platform::service::ServiceType>::MIGRATIONS,
    )
    .await;
    count_chunk_inserts(&db).await;
    let service = service_on(&server, &db, 3, workers).await;
    let mut client = admin(&service).await;
    let collection = create_collection(&mut client, name, 32, 0).await;
    Counting {
        server,
        db,
        _service: service,
        client,
        collection,
    }
}

#[tokio::test]
async fn a_calls_documents_are_shared_by_the_idle_workers() {
    let Counting {
        server,
        db,
        _service,
        mut client,
        collection,
    } = counting(2, "shared").await;

    let done = ingest_and_wait(&mut client, &collection.id, documents("shared", 10, 50)).await;
    assert!(
        done.iter()
            .all(|d| d.status == pb::DocumentStatus::Ready as i32),
        "{done:?}"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM rag.chunks").await, 500);
    // Both workers wrote chunks, each in its own transaction on its own connection; one
    // worker taking all ten documents would have written them on one.
    assert_eq!(
        db.count("SELECT count(DISTINCT backend) AS n FROM public.chunk_inserts")
            .await,
        2,
        "chunks written by two workers"
    );
    // Each worker wrote a share in one statement (a worker that finished first may take
    // what is left in a third claim), never a statement per document.
    let inserts = db
        .count("SELECT count(*) AS n FROM public.chunk_inserts")
        .await;
    assert!((2..=3).contains(&inserts), "{inserts} INSERT statements");
    assert_eq!(
        server.calls(),
        10,
        "every claim's chunks in full batches of 50"
    );
}

#[tokio::test]
async fn five_hundred_chunks_take_ten_calls_three_at_most_in_flight_and_one_insert() {
    // One worker: every call's documents are one claim.
    let Counting {
        server,
        db,
        _service,
        mut client,
        collection,
    } = counting(1, "batched").await;
    assert_eq!(collection.embedding_model, "wordllama-over-http");

    // 10 documents × 50 paragraphs = 500 chunks, in one call (one claim).
    let done = ingest_and_wait(&mut client, &collection.id, documents("first", 10, 50)).await;
    assert!(
        done.iter()
            .all(|d| d.status == pb::DocumentStatus::Ready as i32),
        "{done:?}"
    );
    assert_eq!(done.iter().map(|d| d.chunk_count).sum::<i32>(), 500);
    assert_eq!(server.calls(), 10, "⌈500 / 50⌉ provider calls");
    assert_eq!(server.state.texts.load(Ordering::SeqCst), 500);
    let most = server.state.most_in_flight.load(Ordering::SeqCst);
    assert!(most <= 3, "at most 3 calls in flight, saw {most}");
    assert!(most >= 2, "calls overlap, saw {most}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM public.chunk_inserts")
            .await,
        1,
        "one INSERT for 500 rows"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM rag.chunks").await, 500);

    // The same texts again, as new documents: every vector comes from the cache.
    let again = ingest_and_wait(&mut client, &collection.id, documents("first", 10, 50)).await;
    assert!(
        again
            .iter()
            .all(|d| d.status == pb::DocumentStatus::Ready as i32)
    );
    assert_eq!(server.calls(), 10, "no provider call for cached texts");

    // 1,200 new chunks in one claim: 24 calls, and rows written 1,000 per statement.
    let inserts_before = db
        .count("SELECT count(*) AS n FROM public.chunk_inserts")
        .await;
    let big = ingest_and_wait(&mut client, &collection.id, documents("second", 24, 50)).await;
    assert!(
        big.iter()
            .all(|d| d.status == pb::DocumentStatus::Ready as i32)
    );
    assert_eq!(server.calls(), 10 + 24);
    let inserts = db
        .count("SELECT count(*) AS n FROM public.chunk_inserts")
        .await
        - inserts_before;
    assert_eq!(inserts, 2, "⌈1200 / 1000⌉ INSERT statements");
    assert!(server.state.most_in_flight.load(Ordering::SeqCst) <= 3);

    // Search embeds the query through the same server and finds the right document.
    let results = client
        .search(pb::SearchRequest {
            collection_id: collection.id.clone(),
            query: "second document 7 paragraph 3 says the river runs past mill number 3 today and the heron waits by the bank.".into(),
            top_k: Some(1),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
        .results;
    assert_eq!(results[0].title, "second 7");
    assert_eq!(results[0].ordinal, 3);
}

#[tokio::test]
async fn provider_errors_fail_their_documents_with_the_reason_and_no_chunks() {
    let server = EmbeddingServer::start().await;
    let db = TestDatabase::create(
        "rag",
        <RagApp as agentic_platform::service::ServiceType>::MIGRATIONS,
    )
    .await;
    let service = service_on(&server, &db, 1, 2).await;
    let mut client = admin(&service).await;
    let collection = create_collection(&mut client, "errors", 64, 0).await;

    // One document the server refuses (400) beside two it embeds: only that one fails.
    let mut inputs = documents("fine", 2, 3);
    inputs.insert(
        1,
        document(
            "poisoned",
            &format!("Harmless start.\n\nThen a {POISON} paragraph."),
        ),
    );
    let done = ingest_and_wait(&mut client, &collection.id, inputs).await;
    let status: Vec<(String, i32)> = done.iter().map(|d| (d.title.clone(), d.status)).collect();
    assert_eq!(
        status,
        vec![
            ("fine 0".to_owned(), pb::DocumentStatus::Ready as i32),
            ("poisoned".to_owned(), pb::DocumentStatus::Failed as i32),
            ("fine 1".to_owned(), pb::DocumentStatus::Ready as i32),
        ]
    );
    let poisoned = &done[1];
    assert!(poisoned.error.contains("400"), "{}", poisoned.error);
    assert!(
        poisoned.error.contains("input rejected by the model"),
        "{}",
        poisoned.error
    );
    assert_eq!(poisoned.chunk_count, 0);
    let left = db
        .count(&format!(
            "SELECT count(*) AS n FROM rag.chunks WHERE document_id = '{}'",
            poisoned.id
        ))
        .await;
    assert_eq!(left, 0, "no chunk left behind");

    // A server that keeps answering 503: retried, then failed with the reason.
    server.state.unavailable.store(true, Ordering::SeqCst);
    let calls = server.calls();
    let done = ingest_and_wait(&mut client, &collection.id, documents("outage", 1, 2)).await;
    assert_eq!(done[0].status, pb::DocumentStatus::Failed as i32);
    assert!(done[0].error.contains("503"), "{}", done[0].error);
    assert_eq!(server.calls() - calls, 2, "one try and one retry");
    let left = db
        .count(&format!(
            "SELECT count(*) AS n FROM rag.chunks WHERE document_id = '{}'",
            done[0].id
        ))
        .await;
    assert_eq!(left, 0);

    // Search with the provider down is UNAVAILABLE, quickly, not a hang.
    let status = client
        .search(pb::SearchRequest {
            collection_id: collection.id.clone(),
            query: "something never embedded before".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    // Lexical search needs no embedding and still works.
    let lexical = client
        .search(pb::SearchRequest {
            collection_id: collection.id.clone(),
            query: "river".into(),
            mode: pb::SearchMode::Lexical as i32,
            ..Default::default()
        })
        .await
        .expect("lexical search without the provider")
        .into_inner()
        .results;
    assert!(!lexical.is_empty());
}

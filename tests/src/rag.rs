//! Fixtures for the RAG service's tests: clients, collections, ingestion, and a real
//! OpenAI-compatible embedding server serving the local model over HTTP, which counts
//! what it is asked and can be told to fail.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use agentic_platform::auth::roles;
use agentic_platform::testsuite::{self, BearerChannel, TestService};
use agentic_proto::rag::v1 as pb;
use agentic_proto::rag::v1::rag_service_client::RagServiceClient;
use agentic_rag::RagApp;
use agentic_rag::embedding::{Embedder, WordLlama};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

pub type RagClient = RagServiceClient<BearerChannel>;
pub type RagHarness = testsuite::Harness<RagApp>;

/// A client of `service` for `tenant` with `role`.
pub async fn rag_client(service: &TestService<RagApp>, tenant: Uuid, role: &str) -> RagClient {
    let token = service.token(tenant, role);
    RagServiceClient::new(service.bearer_channel(Some(&token)).await)
}

/// An admin client of a fresh tenant.
pub async fn rag_admin(service: &TestService<RagApp>) -> (Uuid, RagClient) {
    let tenant = Uuid::now_v7();
    (tenant, rag_client(service, tenant, roles::ADMIN).await)
}

/// Creates a collection (cosine, the model's dimensions) with the given chunking.
pub async fn create_collection(
    client: &mut RagClient,
    slug: &str,
    chunk_size: i32,
    chunk_overlap: i32,
) -> pb::Collection {
    client
        .create_collection(pb::CreateCollectionRequest {
            request_id: String::new(),
            collection: Some(pb::Collection {
                name: format!("Collection {slug}"),
                slug: slug.to_owned(),
                chunk_size,
                chunk_overlap,
                ..Default::default()
            }),
        })
        .await
        .expect("create collection")
        .into_inner()
        .collection
        .expect("collection")
}

/// A document input with a title and text.
pub fn document(title: &str, text: &str) -> pb::DocumentInput {
    pb::DocumentInput {
        title: title.to_owned(),
        text: text.to_owned(),
        ..Default::default()
    }
}

/// Ingests `documents` and waits until they are done; panics unless all are READY.
pub async fn ingest_ready(
    client: &mut RagClient,
    collection: &str,
    documents: Vec<pb::DocumentInput>,
) -> Vec<pb::Document> {
    let done = ingest_and_wait(client, collection, documents).await;
    for document in &done {
        assert_eq!(
            document.status,
            pb::DocumentStatus::Ready as i32,
            "{}: {}",
            document.title,
            document.error
        );
    }
    done
}

/// Ingests `documents` with `wait` and returns them as they ended.
pub async fn ingest_and_wait(
    client: &mut RagClient,
    collection: &str,
    documents: Vec<pb::DocumentInput>,
) -> Vec<pb::Document> {
    let mut request = tonic::Request::new(pb::IngestDocumentsRequest {
        request_id: String::new(),
        collection_id: collection.to_owned(),
        documents,
        wait: true,
    });
    request.set_timeout(Duration::from_secs(10));
    let done = client
        .ingest_documents(request)
        .await
        .expect("ingest")
        .into_inner()
        .documents;
    assert!(
        done.iter()
            .all(|d| d.status != pb::DocumentStatus::Pending as i32),
        "every document is done within the wait"
    );
    done
}

/// The local model's files.
pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/models")
}

/// The local model at 256 dimensions.
pub fn local_model() -> WordLlama {
    let dir = models_dir();
    WordLlama::load(
        &dir.join(agentic_rag::embedding::WORDLLAMA_WEIGHTS),
        &dir.join(agentic_rag::embedding::WORDLLAMA_TOKENIZER),
        256,
    )
    .expect("the model is in .local/models (scripts/models.sh)")
}

/// What the embedding server has been asked, and how it misbehaves.
#[derive(Default)]
pub struct ServerState {
    /// Calls to `/v1/embeddings`, and texts in them.
    pub calls: AtomicUsize,
    pub texts: AtomicUsize,
    in_flight: AtomicUsize,
    /// The most calls it was serving at once.
    pub most_in_flight: AtomicUsize,
    /// Answer every call 503.
    pub unavailable: AtomicBool,
}

/// Any text containing this is refused with 400, as a server refuses bad input.
pub const POISON: &str = "POISON-PILL";

/// An OpenAI-compatible embedding server on loopback, serving the local model.
pub struct EmbeddingServer {
    pub addr: SocketAddr,
    pub state: Arc<ServerState>,
    _task: tokio::task::JoinHandle<()>,
}

struct Shared {
    model: WordLlama,
    state: Arc<ServerState>,
}

impl EmbeddingServer {
    pub async fn start() -> Self {
        let state = Arc::new(ServerState::default());
        let shared = Arc::new(Shared {
            model: local_model(),
            state: state.clone(),
        });
        let router = axum::Router::new()
            .route("/v1/embeddings", axum::routing::post(embeddings))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        Self {
            addr,
            state,
            _task: task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }
}

async fn embeddings(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let state = &shared.state;
    state.calls.fetch_add(1, Ordering::SeqCst);
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.most_in_flight.fetch_max(now, Ordering::SeqCst);
    // Long enough that concurrent calls overlap, as a real model server's would.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let response = answer(&shared, &body).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn answer(shared: &Shared, body: &[u8]) -> Response {
    if shared.state.unavailable.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "model server overloaded").into_response();
    }
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let texts: Vec<String> = match request["input"].as_array() {
        Some(items) => items
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        None => return (StatusCode::BAD_REQUEST, "input must be a list").into_response(),
    };
    shared.state.texts.fetch_add(texts.len(), Ordering::SeqCst);
    if texts.iter().any(|t| t.contains(POISON)) {
        return (StatusCode::BAD_REQUEST, "input rejected by the model").into_response();
    }
    let vectors = shared.model.embed(&texts).await.expect("embed");
    let data: Vec<serde_json::Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| {
            serde_json::json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let body = serde_json::json!({
        "object": "list",
        "model": request["model"],
        "data": data,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

//! The RAG service's documents and search refuse bad input naming the field, and keep
//! every tenant's collections, documents and chunks to that tenant.

use agentic_e2e::rag::{
    RagHarness, create_collection, document, ingest_ready, rag_admin, rag_client,
};
use agentic_e2e::violated_fields;
use agentic_platform::auth::roles;
use agentic_proto::rag::v1 as pb;
use prost_types::{Struct, Value, value::Kind};
use tonic::Code;
use uuid::Uuid;

fn assert_invalid(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let status = result.expect_err(field);
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(
        violated_fields(&status).iter().any(|f| f == field),
        "{field}: {status:?}"
    );
}

#[tokio::test]
async fn bad_ingests_and_searches_name_their_fields_and_store_nothing() {
    let harness = RagHarness::start().await;
    let (_, mut client) = rag_admin(&harness.service).await;
    let collection = create_collection(&mut client, "inputs", 256, 32).await;
    let id = collection.id.clone();
    let ingest = |documents: Vec<pb::DocumentInput>| pb::IngestDocumentsRequest {
        request_id: String::new(),
        collection_id: id.clone(),
        documents,
        wait: false,
    };
    let oversized = "a ".repeat(600 * 1024);
    let nested = |key: &str, value: Value| Struct {
        fields: [(key.to_owned(), value)].into_iter().collect(),
    };
    let cases: Vec<(pb::IngestDocumentsRequest, &str)> = vec![
        (ingest(vec![]), "documents"),
        (ingest(vec![document("t", "x"); 101]), "documents"),
        (
            ingest(vec![document("ok", "fine"), document("", "text")]),
            "documents[1].title",
        ),
        (ingest(vec![document("t", "   ")]), "documents[0].text"),
        (
            ingest(vec![document("t", "nul \0 here")]),
            "documents[0].text",
        ),
        (ingest(vec![document("t", &oversized)]), "documents[0].text"),
        (
            ingest(vec![pb::DocumentInput {
                client_id: "x".repeat(201),
                ..document("t", "text")
            }]),
            "documents[0].client_id",
        ),
        (
            ingest(vec![
                pb::DocumentInput {
                    client_id: "same".into(),
                    ..document("a", "text")
                },
                pb::DocumentInput {
                    client_id: "same".into(),
                    ..document("b", "text")
                },
            ]),
            "documents[1].client_id",
        ),
        (
            ingest(vec![pb::DocumentInput {
                metadata: Some(nested(
                    "k",
                    Value {
                        kind: Some(Kind::StringValue("v".repeat(17 * 1024))),
                    },
                )),
                ..document("t", "text")
            }]),
            "documents[0].metadata",
        ),
        (
            pb::IngestDocumentsRequest {
                collection_id: "not-a-uuid".into(),
                ..ingest(vec![document("t", "text")])
            },
            "collection_id",
        ),
    ];
    for (request, field) in cases {
        assert_invalid(client.ingest_documents(request).await, field);
    }
    let unknown = client
        .ingest_documents(pb::IngestDocumentsRequest {
            collection_id: Uuid::now_v7().to_string(),
            ..ingest(vec![document("t", "text")])
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let search = |edit: &dyn Fn(&mut pb::SearchRequest)| {
        let mut request = pb::SearchRequest {
            collection_id: id.clone(),
            query: "refunds".into(),
            ..Default::default()
        };
        edit(&mut request);
        request
    };
    let cases: Vec<(pb::SearchRequest, &str)> = vec![
        (search(&|r| r.top_k = Some(0)), "top_k"),
        (search(&|r| r.top_k = Some(1000)), "top_k"),
        (search(&|r| r.query = String::new()), "query"),
        (search(&|r| r.query = "   ".into()), "query"),
        (search(&|r| r.query = "q".repeat(2001)), "query"),
        (
            search(&|r| {
                r.query = String::new();
                r.query_vector = vec![0.1; 128];
            }),
            "query_vector",
        ),
        (
            search(&|r| {
                r.query = String::new();
                r.query_vector = vec![0.0; 256];
            }),
            "query_vector",
        ),
        (
            search(&|r| {
                r.query = String::new();
                r.query_vector = vec![f32::NAN; 256];
            }),
            "query_vector",
        ),
        (
            search(&|r| {
                r.query_vector = vec![0.1; 256];
                r.mode = pb::SearchMode::Hybrid as i32;
            }),
            "query_vector",
        ),
        (search(&|r| r.mode = 7), "mode"),
        (search(&|r| r.ef_search = Some(5000)), "ef_search"),
        (
            search(&|r| {
                r.top_k = Some(50);
                r.ef_search = Some(20);
            }),
            "ef_search",
        ),
        (search(&|r| r.min_score = Some(f32::INFINITY)), "min_score"),
        (
            search(&|r| r.document_ids = vec!["nope".into()]),
            "document_ids[0]",
        ),
        (
            search(&|r| r.document_ids = vec![Uuid::now_v7().to_string(); 101]),
            "document_ids",
        ),
        (search(&|r| r.collection_id = "x".into()), "collection_id"),
    ];
    for (request, field) in cases {
        assert_invalid(client.search(request).await, field);
    }
    let unknown = client
        .search(search(&|r| r.collection_id = Uuid::now_v7().to_string()))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let stored = client
        .list_documents(pb::ListDocumentsRequest {
            collection_id: id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(stored.documents.is_empty(), "no bad ingest stored anything");

    // The right dimensions and a valid top_k are fine, and the message cap is a
    // RESOURCE_EXHAUSTED or INVALID_ARGUMENT, never a crash.
    let ok = client
        .search(search(&|r| {
            r.query = String::new();
            r.query_vector = vec![0.1; 256];
            r.top_k = Some(100);
        }))
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn another_tenants_collections_documents_and_chunks_stay_invisible() {
    let harness = RagHarness::start().await;
    let (owner, mut client) = rag_admin(&harness.service).await;
    let collection = create_collection(&mut client, "private", 256, 32).await;
    let documents = ingest_ready(
        &mut client,
        &collection.id,
        vec![document(
            "Secret plan",
            "The launch code word is tangerine.",
        )],
    )
    .await;
    let (other, mut stranger) = rag_admin(&harness.service).await;
    assert_ne!(owner, other);
    let theirs = create_collection(&mut stranger, "private", 256, 32).await;
    ingest_ready(
        &mut stranger,
        &theirs.id,
        vec![document("Public note", "Tangerines are citrus fruit.")],
    )
    .await;

    fn not_found(result: Result<(), tonic::Status>, what: &str) {
        let status = result.expect_err(what);
        assert_eq!(status.code(), Code::NotFound, "{what}: {status:?}");
    }
    fn unit<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Result<(), tonic::Status> {
        result.map(|_| ())
    }
    not_found(
        unit(
            stranger
                .get_collection(pb::GetCollectionRequest {
                    id: collection.id.clone(),
                })
                .await,
        ),
        "GetCollection",
    );
    not_found(
        unit(
            stranger
                .delete_collection(pb::DeleteCollectionRequest {
                    id: collection.id.clone(),
                })
                .await,
        ),
        "DeleteCollection",
    );
    not_found(
        unit(
            stranger
                .ingest_documents(pb::IngestDocumentsRequest {
                    request_id: String::new(),
                    collection_id: collection.id.clone(),
                    documents: vec![document("Injected", "text")],
                    wait: false,
                })
                .await,
        ),
        "IngestDocuments",
    );
    not_found(
        unit(
            stranger
                .stream_ingest_documents(futures::stream::iter(vec![pb::IngestDocumentsRequest {
                    request_id: String::new(),
                    collection_id: collection.id.clone(),
                    documents: vec![document("Injected", "text")],
                    wait: false,
                }]))
                .await,
        ),
        "StreamIngestDocuments",
    );
    not_found(
        unit(
            stranger
                .get_document(pb::GetDocumentRequest {
                    id: documents[0].id.clone(),
                })
                .await,
        ),
        "GetDocument",
    );
    not_found(
        unit(
            stranger
                .list_documents(pb::ListDocumentsRequest {
                    collection_id: collection.id.clone(),
                    ..Default::default()
                })
                .await,
        ),
        "ListDocuments",
    );
    not_found(
        unit(
            stranger
                .delete_document(pb::DeleteDocumentRequest {
                    id: documents[0].id.clone(),
                })
                .await,
        ),
        "DeleteDocument",
    );
    not_found(
        unit(
            stranger
                .search(pb::SearchRequest {
                    collection_id: collection.id.clone(),
                    query: "tangerine".into(),
                    ..Default::default()
                })
                .await,
        ),
        "Search",
    );
    // Searching their own collection by the owner's document id finds nothing of it.
    for mode in [
        pb::SearchMode::Dense,
        pb::SearchMode::Lexical,
        pb::SearchMode::Hybrid,
    ] {
        let results = stranger
            .search(pb::SearchRequest {
                collection_id: theirs.id.clone(),
                query: "launch code word tangerine".into(),
                mode: mode as i32,
                top_k: Some(100),
                ..Default::default()
            })
            .await
            .expect("own search")
            .into_inner()
            .results;
        assert!(
            results.iter().all(|r| r.title == "Public note"),
            "{mode:?}: {results:?}"
        );
        let by_id = stranger
            .search(pb::SearchRequest {
                collection_id: theirs.id.clone(),
                query: "tangerine".into(),
                mode: mode as i32,
                document_ids: vec![documents[0].id.clone()],
                ..Default::default()
            })
            .await
            .expect("own search by a foreign id")
            .into_inner()
            .results;
        assert!(by_id.is_empty(), "{mode:?}");
    }
    let listed = stranger
        .list_collections(pb::ListCollectionsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .collections;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, theirs.id);

    // Roles: a viewer reads and searches but cannot ingest or delete.
    let mut viewer = rag_client(&harness.service, owner, roles::VIEWER).await;
    let found = viewer
        .search(pb::SearchRequest {
            collection_id: collection.id.clone(),
            query: "tangerine".into(),
            mode: pb::SearchMode::Lexical as i32,
            ..Default::default()
        })
        .await
        .expect("viewer search")
        .into_inner()
        .results;
    assert_eq!(found.len(), 1);
    let denied = viewer
        .ingest_documents(pb::IngestDocumentsRequest {
            request_id: String::new(),
            collection_id: collection.id.clone(),
            documents: vec![document("x", "y")],
            wait: false,
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = viewer
        .delete_document(pb::DeleteDocumentRequest {
            id: documents[0].id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Nothing of the owner's changed.
    let still = client
        .get_document(pb::GetDocumentRequest {
            id: documents[0].id.clone(),
        })
        .await
        .expect("owner reads")
        .into_inner()
        .document
        .expect("document");
    assert_eq!(still.status, pb::DocumentStatus::Ready as i32);
    let owned = client
        .list_documents(pb::ListDocumentsRequest {
            collection_id: collection.id.clone(),
            ..Default::default()
        })
        .await
        .expect("owner lists")
        .into_inner()
        .documents;
    assert_eq!(owned.len(), 1, "nothing was injected");
}

#[tokio::test]
async fn a_search_checks_its_request_before_looking_up_the_collection() {
    let harness = RagHarness::start().await;
    let (_, mut client) = rag_admin(&harness.service).await;
    let unknown = Uuid::now_v7().to_string();
    // Bad input names its field, whether or not the collection exists.
    let bad = client
        .search(pb::SearchRequest {
            collection_id: unknown.clone(),
            query: "refunds".into(),
            top_k: Some(0),
            ..Default::default()
        })
        .await;
    assert_invalid(bad, "top_k");
    let no_id = client
        .search(pb::SearchRequest {
            collection_id: "not-a-uuid".into(),
            query: "refunds".into(),
            ..Default::default()
        })
        .await;
    assert_invalid(no_id, "collection_id");
    // A good request on an unknown collection is NOT_FOUND.
    let missing = client
        .search(pb::SearchRequest {
            collection_id: unknown,
            query: "refunds".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
}

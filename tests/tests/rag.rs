//! The RAG service so far: collections and Embed over real gRPC, PostgreSQL and Redis.

use std::path::PathBuf;

use agentic_platform::auth::roles;
use agentic_platform::testsuite::{self, BearerChannel};
use agentic_proto::rag::v1 as pb;
use agentic_proto::rag::v1::rag_service_client::RagServiceClient;
use agentic_rag::RagApp;
use agentic_rag::embedding::{Embedder, WordLlama, cosine};
use tonic::Code;
use uuid::Uuid;

type Harness = testsuite::Harness<RagApp>;
type Client = RagServiceClient<BearerChannel>;

async fn client(harness: &Harness, tenant: Uuid, role: &str) -> Client {
    let token = harness.service.token(tenant, role);
    RagServiceClient::new(harness.service.bearer_channel(Some(&token)).await)
}

fn collection(slug: &str) -> pb::Collection {
    pb::Collection {
        name: format!("Docs {slug}"),
        slug: slug.to_owned(),
        ..Default::default()
    }
}

fn embed(texts: &[&str], dimensions: i32) -> pb::EmbedRequest {
    pb::EmbedRequest {
        texts: texts.iter().map(|t| (*t).to_owned()).collect(),
        dimensions,
    }
}

#[tokio::test]
async fn collections_are_created_with_defaults_read_listed_and_deleted_per_tenant() {
    let harness = Harness::start().await;
    let (tenant, other) = (Uuid::now_v7(), Uuid::now_v7());
    let mut admin = client(&harness, tenant, roles::ADMIN).await;
    let created = admin
        .create_collection(pb::CreateCollectionRequest {
            request_id: String::new(),
            collection: Some(collection("handbook")),
        })
        .await
        .expect("create")
        .into_inner()
        .collection
        .expect("collection");
    assert_eq!(created.embedding_model, "wordllama-l2-supercat-256");
    assert_eq!(
        (
            created.dimensions,
            created.chunk_size,
            created.chunk_overlap
        ),
        (256, 256, 32)
    );
    assert_eq!(created.distance, pb::Distance::Cosine as i32);
    let small = admin
        .create_collection(pb::CreateCollectionRequest {
            request_id: String::new(),
            collection: Some(pb::Collection {
                dimensions: 64,
                chunk_size: 128,
                chunk_overlap: 0,
                ..collection("small")
            }),
        })
        .await
        .expect("create small")
        .into_inner()
        .collection
        .expect("collection");
    assert_eq!((small.dimensions, small.chunk_overlap), (64, 0));

    let got = admin
        .get_collection(pb::GetCollectionRequest {
            id: created.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .collection;
    assert_eq!(got, Some(created.clone()));
    let listed = admin
        .list_collections(pb::ListCollectionsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.collections, std::slice::from_ref(&created));
    assert!(!listed.next_page_token.is_empty());
    let duplicate = admin
        .create_collection(pb::CreateCollectionRequest {
            request_id: String::new(),
            collection: Some(collection("handbook")),
        })
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);

    // Another tenant sees none of it; a viewer cannot create.
    let mut stranger = client(&harness, other, roles::ADMIN).await;
    let hidden = stranger
        .get_collection(pb::GetCollectionRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let none = stranger
        .list_collections(pb::ListCollectionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(none.collections.is_empty());
    let not_theirs = stranger
        .delete_collection(pb::DeleteCollectionRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(not_theirs.code(), Code::NotFound);
    let mut viewer = client(&harness, tenant, roles::VIEWER).await;
    let denied = viewer
        .create_collection(pb::CreateCollectionRequest {
            request_id: String::new(),
            collection: Some(collection("viewers")),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    admin
        .delete_collection(pb::DeleteCollectionRequest {
            id: created.id.clone(),
        })
        .await
        .expect("delete");
    let gone = admin
        .get_collection(pb::GetCollectionRequest { id: created.id })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "the cached copy went too");
}

#[tokio::test]
async fn bad_collections_and_embed_requests_name_their_fields() {
    let harness = Harness::start().await;
    let mut admin = client(&harness, Uuid::now_v7(), roles::ADMIN).await;
    let cases = [
        (
            pb::Collection {
                name: String::new(),
                ..collection("ok-slug")
            },
            "collection.name",
        ),
        (
            pb::Collection {
                slug: "No Slug".into(),
                ..collection("x")
            },
            "collection.slug",
        ),
        (
            pb::Collection {
                embedding_model: "gpt-embed".into(),
                ..collection("m1")
            },
            "collection.embedding_model",
        ),
        (
            pb::Collection {
                dimensions: 100,
                ..collection("d1")
            },
            "collection.dimensions",
        ),
        (
            pb::Collection {
                distance: 9,
                ..collection("d2")
            },
            "collection.distance",
        ),
        (
            pb::Collection {
                chunk_size: 4096,
                ..collection("c1")
            },
            "collection.chunk_size",
        ),
        (
            pb::Collection {
                chunk_size: 64,
                chunk_overlap: 64,
                ..collection("c2")
            },
            "collection.chunk_overlap",
        ),
    ];
    for (bad, field) in cases {
        let status = admin
            .create_collection(pb::CreateCollectionRequest {
                request_id: String::new(),
                collection: Some(bad),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(
            agentic_e2e::violated_fields(&status)
                .iter()
                .any(|f| f == field),
            "{field}: {status:?}"
        );
    }
    let long = "x".repeat(20_001);
    for (request, field) in [
        (embed(&[], 0), "texts"),
        (embed(&["ok", "  "], 0), "texts[1]"),
        (embed(&["nul\0"], 0), "texts[0]"),
        (embed(&[long.as_str()], 0), "texts[0]"),
        (embed(&["ok"], 100), "dimensions"),
        (embed(&["ok"], 512), "dimensions"),
    ] {
        let status = admin.embed(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(
            agentic_e2e::violated_fields(&status)
                .iter()
                .any(|f| f == field),
            "{field}: {status:?}"
        );
    }
    let too_many: Vec<&str> = vec!["t"; 101];
    let status = admin.embed(embed(&too_many, 0)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn embed_returns_the_models_vectors_and_serves_repeats_from_the_cache() {
    let harness = Harness::start().await;
    let mut member = client(&harness, Uuid::now_v7(), roles::MEMBER).await;
    let texts = [
        "The cat sat on the mat.",
        "A kitten is resting on a rug.",
        "Quarterly revenue grew by 12 percent.",
    ];
    let first = member
        .embed(embed(&texts, 0))
        .await
        .expect("embed")
        .into_inner();
    assert_eq!(first.model, "wordllama-l2-supercat-256");
    assert_eq!(first.cached, 0);
    assert_eq!(first.vectors.len(), 3);

    // The same vectors as the model run directly.
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/models");
    let direct = WordLlama::load(
        &models.join("l2_supercat_256.safetensors"),
        &models.join("l2_supercat_tokenizer_config.json"),
        256,
    )
    .expect("model");
    let owned: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
    let expected = direct.embed(&owned).await.expect("direct");
    for (got, want) in first.vectors.iter().zip(&expected) {
        assert_eq!(&got.values, want);
    }

    // Repeats come from the cache, even mixed with a new text; order is kept.
    let again = member
        .embed(embed(&[texts[2], "Something new entirely.", texts[0]], 0))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(again.cached, 2);
    assert_eq!(again.vectors[0].values, first.vectors[2].values);
    assert_eq!(again.vectors[2].values, first.vectors[0].values);

    // Truncated vectors match the model loaded at that size: unit length, same neighbours.
    let small = member
        .embed(embed(&texts, 64))
        .await
        .expect("64d")
        .into_inner();
    assert_eq!(small.cached, 3, "truncation reuses the cached full vectors");
    let at_64 = WordLlama::load(
        &models.join("l2_supercat_256.safetensors"),
        &models.join("l2_supercat_tokenizer_config.json"),
        64,
    )
    .expect("model")
    .embed(&owned)
    .await
    .expect("direct 64");
    for (got, want) in small.vectors.iter().zip(&at_64) {
        assert_eq!(got.values.len(), 64);
        assert!(cosine(&got.values, want) > 0.9999);
    }

    // A second replica on the same Redis finds the vectors there.
    let replica = testsuite::TestService::<RagApp>::start_on(
        &harness.db.url,
        &harness.db.name,
        &agentic_e2e::Options::default(),
    )
    .await;
    let token = replica.token(Uuid::now_v7(), roles::VIEWER);
    let mut on_replica = RagServiceClient::new(replica.bearer_channel(Some(&token)).await);
    let from_redis = on_replica
        .embed(embed(&texts, 0))
        .await
        .expect("replica")
        .into_inner();
    assert_eq!(from_redis.cached, 3, "served by redis");
    assert_eq!(from_redis.vectors, first.vectors);
}

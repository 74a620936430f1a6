//! The RAG service end to end: ingestion through the queue workers, dense, lexical and
//! hybrid search over real pgvector, filters, deletion, and the search cache.

use agentic_e2e::rag::{
    RagClient, RagHarness, create_collection, document, ingest_ready, rag_admin,
};
use agentic_proto::rag::v1 as pb;
use prost_types::{Struct, Value, value::Kind};

/// A labelled corpus: one topic per document, each with a rare exact term a lexical
/// query can find and a paraphrase a dense query should.
const CORPUS: &[(&str, &str)] = &[
    (
        "Photosynthesis",
        "Green plants capture sunlight with chlorophyll in their leaves. \
         They combine water and carbon dioxide into glucose and release oxygen. \
         The Calvin cycle fixes carbon inside the chloroplast stroma.",
    ),
    (
        "Brewing beer at home",
        "Zymurgy is the craft of fermentation. Malted barley is mashed in hot water, \
         the sweet wort is boiled with hops, cooled, and yeast turns its sugars into \
         alcohol over two weeks.",
    ),
    (
        "Refund policy",
        "Customers may return any purchase within thirty days for a full refund. \
         Keep the receipt; items must be unused and in their original packaging. \
         Refunds reach the original card in five business days.",
    ),
    (
        "Router troubleshooting",
        "If the wireless network drops, restart the modem and the router, then wait \
         two minutes. Firmware XQ-4471 fixes intermittent disconnects on older units.",
    ),
    (
        "Volcanoes",
        "Magma rises through the crust and erupts as lava, ash and gas. \
         Stratovolcanoes such as Fuji build steep cones from alternating layers.",
    ),
    (
        "Baking bread",
        "Mix flour, water, salt and yeast, knead the dough until it is elastic, \
         let it rise for an hour, shape the loaf and bake it in a hot oven.",
    ),
    (
        "Central banks",
        "The central bank raises interest rates to cool inflation and lowers them \
         to encourage borrowing. Kowalczyk chaired the monetary committee in 2019.",
    ),
    (
        "Marathon training",
        "Runners build weekly mileage gradually, add one long run each weekend, \
         and taper during the final three weeks before the race.",
    ),
];

/// (query, index of the document it should find).
const PARAPHRASES: &[(&str, usize)] = &[
    ("how do plants turn light into food", 0),
    ("can I get my money back after buying something", 2),
    ("my wifi keeps disconnecting", 3),
    ("molten rock erupting from a mountain", 4),
    ("preparing for a long distance running race", 7),
];
const RARE_TERMS: &[(&str, usize)] = &[
    ("zymurgy", 1),
    ("XQ-4471", 3),
    ("Kowalczyk", 6),
    ("stroma", 0),
];

fn text_value(text: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(text.to_owned())),
    }
}

fn metadata(pairs: &[(&str, &str)]) -> Struct {
    Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), text_value(v)))
            .collect(),
    }
}

/// Ingests [`CORPUS`], each document tagged `topic: even|odd` by its position.
async fn ingest_corpus(client: &mut RagClient, collection: &str) -> Vec<pb::Document> {
    let inputs = CORPUS
        .iter()
        .enumerate()
        .map(|(i, (title, text))| pb::DocumentInput {
            metadata: Some(metadata(&[(
                "topic",
                if i % 2 == 0 { "even" } else { "odd" },
            )])),
            ..document(title, text)
        })
        .collect();
    ingest_ready(client, collection, inputs).await
}

fn search(collection: &str, query: &str, mode: pb::SearchMode) -> pb::SearchRequest {
    pb::SearchRequest {
        collection_id: collection.to_owned(),
        query: query.to_owned(),
        mode: mode as i32,
        top_k: Some(3),
        ..Default::default()
    }
}

/// The titles of the results, best first.
async fn titles(
    client: &mut agentic_e2e::rag::RagClient,
    request: pb::SearchRequest,
) -> Vec<String> {
    client
        .search(request)
        .await
        .expect("search")
        .into_inner()
        .results
        .into_iter()
        .map(|r| r.title)
        .collect()
}

#[tokio::test]
async fn search_finds_paraphrases_dense_rare_terms_lexical_and_hybrid_both() {
    let harness = RagHarness::start().await;
    let (_, mut client) = rag_admin(&harness.service).await;
    let collection = create_collection(&mut client, "labelled", 256, 32).await;
    let documents = ingest_corpus(&mut client, &collection.id).await;
    assert!(documents.iter().all(|d| d.chunk_count == 1));

    // Hits at rank 1 per mode, over paraphrases and rare terms together.
    let mut hits = std::collections::BTreeMap::new();
    for (mode, name) in [
        (pb::SearchMode::Dense, "dense"),
        (pb::SearchMode::Lexical, "lexical"),
        (pb::SearchMode::Hybrid, "hybrid"),
    ] {
        let (mut paraphrases, mut rare) = (0, 0);
        for (query, expected) in PARAPHRASES {
            let found = titles(&mut client, search(&collection.id, query, mode)).await;
            paraphrases +=
                usize::from(found.first().map(String::as_str) == Some(CORPUS[*expected].0));
        }
        for (query, expected) in RARE_TERMS {
            let found = titles(&mut client, search(&collection.id, query, mode)).await;
            rare += usize::from(found.first().map(String::as_str) == Some(CORPUS[*expected].0));
        }
        println!(
            "{name}: paraphrases {paraphrases}/{}, rare terms {rare}/{}",
            PARAPHRASES.len(),
            RARE_TERMS.len()
        );
        hits.insert(name, (paraphrases, rare));
    }
    let (dense, lexical, hybrid) = (hits["dense"], hits["lexical"], hits["hybrid"]);
    assert_eq!(dense.0, PARAPHRASES.len(), "dense finds every paraphrase");
    assert_eq!(lexical.1, RARE_TERMS.len(), "lexical finds every rare term");
    let total = |(a, b): (usize, usize)| a + b;
    assert!(
        total(hybrid) >= total(dense),
        "hybrid {hybrid:?} vs dense {dense:?}"
    );
    assert!(
        total(hybrid) >= total(lexical),
        "hybrid {hybrid:?} vs lexical {lexical:?}"
    );
}

#[tokio::test]
async fn filters_keep_only_matching_documents_and_delete_drops_results_at_once() {
    let harness = RagHarness::start().await;
    let (_, mut client) = rag_admin(&harness.service).await;
    let collection = create_collection(&mut client, "filtered", 256, 32).await;
    let documents = ingest_corpus(&mut client, &collection.id).await;

    // The metadata filter keeps only the odd documents, whatever the query prefers.
    let mut request = search(
        &collection.id,
        "how do plants turn light into food",
        pb::SearchMode::Dense,
    );
    request.top_k = Some(8);
    request.metadata_filter = Some(metadata(&[("topic", "odd")]));
    let results = client
        .search(request.clone())
        .await
        .expect("filtered")
        .into_inner()
        .results;
    assert_eq!(results.len(), 4, "the four odd documents");
    for result in &results {
        let position = CORPUS
            .iter()
            .position(|(t, _)| *t == result.title)
            .expect("known title");
        assert_eq!(position % 2, 1, "{} is odd", result.title);
        assert_eq!(result.metadata, Some(metadata(&[("topic", "odd")])));
    }
    for mode in [pb::SearchMode::Lexical, pb::SearchMode::Hybrid] {
        let mut lexical = search(&collection.id, "zymurgy OR stroma", mode);
        lexical.metadata_filter = Some(metadata(&[("topic", "odd")]));
        let found = titles(&mut client, lexical).await;
        // "stroma" is in an even document: only the odd one with "zymurgy" matches the text.
        assert_eq!(found[0], "Brewing beer at home", "{mode:?}");
        for title in &found {
            let position = CORPUS
                .iter()
                .position(|(t, _)| t == title)
                .expect("known title");
            assert_eq!(position % 2, 1, "{mode:?}: {title} is odd");
        }
        if mode == pb::SearchMode::Lexical {
            assert_eq!(found.len(), 1);
        }
    }

    // Only the documents named.
    let mut by_id = search(&collection.id, "bread", pb::SearchMode::Hybrid);
    by_id.top_k = Some(10);
    by_id.document_ids = vec![documents[3].id.clone(), documents[5].id.clone()];
    let mut found = titles(&mut client, by_id).await;
    found.sort();
    assert_eq!(found, vec!["Baking bread", "Router troubleshooting"]);

    // A min_score above every similarity leaves nothing.
    let mut strict = search(&collection.id, "bread", pb::SearchMode::Dense);
    strict.min_score = Some(1.01);
    assert!(titles(&mut client, strict).await.is_empty());

    // Cached, then deleted: the next search no longer returns it (the cache went too).
    let query = search(
        &collection.id,
        "Firmware XQ-4471 wireless router",
        pb::SearchMode::Hybrid,
    );
    let before = titles(&mut client, query.clone()).await;
    assert_eq!(
        before.first().map(String::as_str),
        Some("Router troubleshooting")
    );
    // Counted by the cache's hit metric: idle workers poll the queue, so the pool's
    // query count moves by itself.
    let hits = || async {
        let (_, page) = harness.service.admin_get("/metrics").await;
        agentic_e2e::metric_sum(
            &page,
            "cache_requests_total",
            &["kind=\"rag_search\"", "result=\"hit\""],
        )
    };
    let hits_before = hits().await;
    assert_eq!(titles(&mut client, query.clone()).await, before);
    assert_eq!(
        hits().await,
        hits_before + 1.0,
        "the repeat came from the cache"
    );
    client
        .delete_document(pb::DeleteDocumentRequest {
            id: documents[3].id.clone(),
        })
        .await
        .expect("delete");
    let after = titles(&mut client, query).await;
    assert!(
        !after.contains(&"Router troubleshooting".to_owned()),
        "{after:?}"
    );
    let chunks: i64 = harness
        .db
        .count(&format!(
            "SELECT count(*) AS n FROM rag.chunks WHERE document_id = '{}'",
            documents[3].id
        ))
        .await;
    assert_eq!(chunks, 0, "its chunks are gone");
}

#[tokio::test]
async fn documents_are_read_listed_by_status_and_ingested_once_per_client_id() {
    let harness = RagHarness::start().await;
    let (_, mut client) = rag_admin(&harness.service).await;
    let collection = create_collection(&mut client, "docs", 64, 8).await;
    let long: String = (0..40)
        .map(|i| format!("Sentence number {i} talks about something else entirely. "))
        .collect();
    let inputs = vec![
        pb::DocumentInput {
            client_id: "doc-a".into(),
            source_uri: "https://example.com/a".into(),
            ..document("A", &long)
        },
        pb::DocumentInput {
            client_id: "doc-b".into(),
            ..document("B", "Short text.")
        },
    ];
    let first = ingest_ready(&mut client, &collection.id, inputs.clone()).await;
    assert!(first[0].chunk_count > 1, "a long text makes several chunks");
    assert_eq!(first[1].chunk_count, 1);
    assert_eq!(first[0].source_uri, "https://example.com/a");

    // Again with the same client ids: the same documents, nothing new stored.
    let again = ingest_ready(&mut client, &collection.id, inputs).await;
    assert_eq!(
        again.iter().map(|d| &d.id).collect::<Vec<_>>(),
        first.iter().map(|d| &d.id).collect::<Vec<_>>()
    );
    let stored = harness
        .db
        .count("SELECT count(*) AS n FROM rag.documents")
        .await;
    assert_eq!(stored, 2);
    let chunk_rows = harness
        .db
        .count("SELECT count(*) AS n FROM rag.chunks")
        .await;
    assert_eq!(
        chunk_rows,
        (first[0].chunk_count + first[1].chunk_count) as i64
    );

    // Get has the text; a list page has none, and pages by status.
    let got = client
        .get_document(pb::GetDocumentRequest {
            id: first[0].id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .document
        .expect("document");
    assert_eq!(got.text, long);
    assert_eq!(got.status, pb::DocumentStatus::Ready as i32);
    let page = client
        .list_documents(pb::ListDocumentsRequest {
            collection_id: collection.id.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.documents.len(), 1);
    assert_eq!(page.documents[0].id, first[0].id);
    assert!(page.documents[0].text.is_empty());
    let rest = client
        .list_documents(pb::ListDocumentsRequest {
            collection_id: collection.id.clone(),
            page_size: 1,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .expect("next page")
        .into_inner();
    assert_eq!(rest.documents[0].id, first[1].id);
    assert!(rest.next_page_token.is_empty());
    let failed = client
        .list_documents(pb::ListDocumentsRequest {
            collection_id: collection.id.clone(),
            status: pb::DocumentStatus::Failed as i32,
            ..Default::default()
        })
        .await
        .expect("failed ones")
        .into_inner();
    assert!(failed.documents.is_empty());

    // The client-streaming variant stores every message's documents.
    let first_id = collection.id.clone();
    let messages: Vec<_> = (0..3)
        .map(|m| pb::IngestDocumentsRequest {
            request_id: String::new(),
            collection_id: if m == 0 {
                first_id.clone()
            } else {
                String::new()
            },
            documents: (0..5)
                .map(|i| {
                    document(
                        &format!("streamed {m}-{i}"),
                        &format!("Streamed text {m} {i}."),
                    )
                })
                .collect(),
            wait: m == 2,
        })
        .collect();
    let streamed = client
        .stream_ingest_documents(futures::stream::iter(messages))
        .await
        .expect("stream")
        .into_inner()
        .documents;
    assert_eq!(streamed.len(), 15);
    assert!(
        streamed
            .iter()
            .all(|d| d.status == pb::DocumentStatus::Ready as i32)
    );
    let stored = harness
        .db
        .count("SELECT count(*) AS n FROM rag.documents")
        .await;
    assert_eq!(stored, 17);
}

#[tokio::test]
async fn documents_are_read_through_the_cache_and_fresh_after_every_change() {
    let harness = RagHarness::start().await;
    let (_, mut client) = rag_admin(&harness.service).await;
    let collection = create_collection(&mut client, "cached-docs", 64, 8).await;
    let hits = || async {
        let (_, page) = harness.service.admin_get("/metrics").await;
        agentic_e2e::metric_sum(
            &page,
            "cache_requests_total",
            &["kind=\"document\"", "result=\"hit\""],
        )
    };
    let get = |client: &mut RagClient, id: String| {
        let mut client = client.clone();
        async move {
            client
                .get_document(pb::GetDocumentRequest { id })
                .await
                .map(|r| r.into_inner().document.expect("document"))
        }
    };

    // Read at once after queueing (most likely still pending, and cached so): the
    // worker's status change must reach the reader, not wait out the TTL.
    let queued = client
        .ingest_documents(pb::IngestDocumentsRequest {
            request_id: String::new(),
            collection_id: collection.id.clone(),
            documents: (0..20)
                .map(|i| document(&format!("doc {i}"), &format!("Text number {i}.")))
                .collect(),
            wait: false,
        })
        .await
        .expect("ingest")
        .into_inner()
        .documents;
    let last = queued.last().expect("queued").id.clone();
    let first_read = get(&mut client, last.clone()).await.expect("get");
    let mut status = first_read.status;
    for _ in 0..100 {
        if status == pb::DocumentStatus::Ready as i32 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        status = get(&mut client, last.clone()).await.expect("get").status;
    }
    assert_eq!(
        status,
        pb::DocumentStatus::Ready as i32,
        "seen READY through the cache"
    );

    // A repeat is a cache hit.
    let before = hits().await;
    let again = get(&mut client, last.clone()).await.expect("get");
    assert_eq!(again.status, pb::DocumentStatus::Ready as i32);
    assert!(hits().await > before, "served by the cache");

    // Deleting the document, or its whole collection, is seen at once.
    client
        .delete_document(pb::DeleteDocumentRequest { id: last.clone() })
        .await
        .expect("delete");
    let gone = get(&mut client, last).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    let other = queued[0].id.clone();
    get(&mut client, other.clone())
        .await
        .expect("cached before the collection goes");
    client
        .delete_collection(pb::DeleteCollectionRequest {
            id: collection.id.clone(),
        })
        .await
        .expect("delete collection");
    let gone = get(&mut client, other).await.unwrap_err();
    assert_eq!(
        gone.code(),
        tonic::Code::NotFound,
        "the collection took it along"
    );
}

#[tokio::test]
async fn a_document_whose_workers_kept_dying_fails_after_its_attempts() {
    let harness = RagHarness::start().await;
    let (tenant, mut client) = rag_admin(&harness.service).await;
    let collection = create_collection(&mut client, "attempts", 64, 8).await;
    // As if three workers had taken it and died: its attempts are used up.
    let id = uuid::Uuid::now_v7();
    harness
        .db
        .execute(&format!(
            "INSERT INTO rag.documents (id, tenant_id, collection_id, title, content) \
             VALUES ('{id}', '{tenant}', '{}', 'cursed', 'Some text.'); \
             INSERT INTO rag.document_attempts (document_id, attempts) VALUES ('{id}', 3);",
            collection.id
        ))
        .await;
    let mut document = None;
    for _ in 0..100 {
        let got = client
            .get_document(pb::GetDocumentRequest { id: id.to_string() })
            .await
            .expect("get")
            .into_inner()
            .document
            .expect("document");
        if got.status != pb::DocumentStatus::Pending as i32 {
            document = Some(got);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let document = document.expect("a worker settled it");
    assert_eq!(document.status, pb::DocumentStatus::Failed as i32);
    assert!(
        document.error.contains("gave up after 3 attempts"),
        "{}",
        document.error
    );
    let chunks = harness
        .db
        .count(&format!(
            "SELECT count(*) AS n FROM rag.chunks WHERE document_id = '{id}'"
        ))
        .await;
    assert_eq!(chunks, 0);
}

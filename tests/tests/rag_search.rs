//! The RAG service end to end: ingestion through the queue workers, dense, lexical and
//! hybrid search over real pgvector, filters, deletion, and the search cache.

use agentic_e2e::rag::{RagHarness, create_collection, document, ingest_ready, rag_admin};
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
async fn titles(client: &mut agentic_e2e::rag::RagClient, request: pb::SearchRequest) -> Vec<String> {
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
    let inputs = CORPUS
        .iter()
        .enumerate()
        .map(|(i, (title, text))| pb::DocumentInput {
            metadata: Some(metadata(&[("topic", if i % 2 == 0 { "even" } else { "odd" })])),
            ..document(title, text)
        })
        .collect();
    let documents = ingest_ready(&mut client, &collection.id, inputs).await;
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
            paraphrases += usize::from(found.first().map(String::as_str) == Some(CORPUS[*expected].0));
        }
        for (query, expected) in RARE_TERMS {
            let found = titles(&mut client, search(&collection.id, query, mode)).await;
            rare += usize::from(found.first().map(String::as_str) == Some(CORPUS[*expected].0));
        }
        println!("{name}: paraphrases {paraphrases}/{}, rare terms {rare}/{}", PARAPHRASES.len(), RARE_TERMS.len());
        hits.insert(name, (paraphrases, rare));
    }
    let (dense, lexical, hybrid) = (hits["dense"], hits["lexical"], hits["hybrid"]);
    assert_eq!(dense.0, PARAPHRASES.len(), "dense finds every paraphrase");
    assert_eq!(lexical.1, RARE_TERMS.len(), "lexical finds every rare term");
    let total = |(a, b): (usize, usize)| a + b;
    assert!(total(hybrid) >= total(dense), "hybrid {hybrid:?} vs dense {dense:?}");
    assert!(total(hybrid) >= total(lexical), "hybrid {hybrid:?} vs lexical {lexical:?}");
}

//! The local model against WordLlama's own Python implementation (wordllama 0.4.0.post1,
//! `WordLlamaInference.embed(texts, norm=True)` on the same two files): the reference
//! values below were printed by it. `make test` fetches the files (`scripts/models.sh`).

use std::path::PathBuf;

use agentic_rag::chunking::chunk;
use agentic_rag::embedding::{Embedder, WordLlama, cosine};

fn model(dimensions: usize) -> WordLlama {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/models");
    WordLlama::load(
        &models.join("l2_supercat_256.safetensors"),
        &models.join("l2_supercat_tokenizer_config.json"),
        dimensions,
    )
    .expect("the model is in .local/models (scripts/models.sh)")
}

fn texts() -> Vec<String> {
    [
        "The cat sat on the mat.",
        "A kitten is resting on a rug.",
        "Quarterly revenue grew by 12 percent.",
        "héllo wörld 🙂",
    ]
    .map(String::from)
    .to_vec()
}

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < 2e-4, "{what}: {actual:?} vs {expected:?}");
    }
}

#[tokio::test]
async fn vectors_match_the_reference_implementation() {
    let cases: [(usize, [[f32; 4]; 4], f32, f32); 2] = [
        (
            256,
            [
                [-0.0478, 0.0284, -0.047, 0.09483],
                [0.01894, 0.05341, -0.02435, 0.09987],
                [0.02069, 0.09445, 0.06502, -0.03951],
                [-0.01642, 0.00882, -0.01885, -0.02649],
            ],
            0.35883,
            -0.00314,
        ),
        (
            64,
            [
                [-0.07597, 0.04515, -0.07471, 0.15073],
                [0.03361, 0.09481, -0.04322, 0.17727],
                [0.03515, 0.16043, 0.11044, -0.06712],
                [-0.02934, 0.01576, -0.03367, -0.04733],
            ],
            0.45762,
            0.10715,
        ),
    ];
    for (dimensions, first4, cos01, cos02) in cases {
        let model = model(dimensions);
        assert_eq!(model.dimensions(), dimensions);
        let vectors = model.embed(&texts()).await.expect("embed");
        assert_eq!(vectors.len(), 4);
        for (index, (vector, expected)) in vectors.iter().zip(first4).enumerate() {
            assert_eq!(vector.len(), dimensions);
            let norm = cosine(vector, vector);
            assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");
            assert_close(
                &vector[..4],
                &expected,
                &format!("{dimensions}d text {index}"),
            );
        }
        assert_close(
            &[cosine(&vectors[0], &vectors[1])],
            &[cos01],
            "cat ~ kitten",
        );
        assert_close(
            &[cosine(&vectors[0], &vectors[2])],
            &[cos02],
            "cat ~ revenue",
        );
        assert!(cos01 > cos02, "related texts are closer");
    }
}

#[test]
fn only_the_trained_dimensions_load() {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/models");
    let refused = WordLlama::load(
        &models.join("l2_supercat_256.safetensors"),
        &models.join("l2_supercat_tokenizer_config.json"),
        100,
    );
    assert!(refused.is_err());
}

#[test]
fn chunks_fit_the_models_token_budget() {
    let model = model(256);
    let paragraph = "Retrieval systems split documents into chunks. Each chunk is embedded \
                     on its own, and a query finds the nearest ones. ";
    let text = format!("{}\n\n{}", paragraph.repeat(8), paragraph.repeat(3));
    let count = |t: &str| model.count_tokens(t);
    let chunks = chunk(&text, 64, 8, &count);
    assert!(chunks.len() > 2);
    for c in &chunks {
        assert!(
            model.count_tokens(c.text) <= 64 + 2,
            "{} tokens",
            model.count_tokens(c.text)
        );
    }
}

/// Chunking counts a chunk as the sum of its pieces; with this tokenizer every chunk
/// must fit its size by its own text's count, and the sum may be low by one at most
/// (a piece that opens a paragraph loses its word prefix inside the whole).
#[test]
fn chunks_fit_their_size_by_the_real_tokenizer() {
    let model = model(256);
    let sentences = [
        "The river flooded the old bridge.",
        "Refunds take five days!",
        "Is the router's firmware current?",
        "Ünïcödé wörds, emoji 🙂 and 漢字 text.",
        "Two  spaces here.",
        "Numbers 3.14 and 1,000,000 stay whole.",
        "supercalifragilisticexpialidocious antidisestablishmentarianism.",
    ];
    let mut text = String::new();
    for (i, sentence) in sentences.iter().cycle().take(60).enumerate() {
        text.push_str(sentence);
        text.push_str(if i % 9 == 8 { "\n\n" } else { " " });
    }
    let count = |t: &str| model.count_tokens(t);
    for (size, overlap) in [(16, 0), (32, 4), (64, 8), (256, 32)] {
        let chunks = chunk(&text, size, overlap, &count);
        assert!(
            chunks.len() > 1,
            "size {size}: the text needs several chunks"
        );
        for c in &chunks {
            let own = model.count_tokens(c.text);
            assert!(
                own <= size && own <= c.tokens + 1,
                "size {size}: counted {} for a chunk of {own} tokens: {:?}",
                c.tokens,
                c.text
            );
        }
    }
}

/// 50 varied sentences (several languages, code, numbers, a single letter) embedded by the
/// `wordllama` Python package itself: `tests/data/wordllama_reference.py` wrote the file.
#[tokio::test]
async fn fifty_sentences_match_the_python_package() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/wordllama_reference.json");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("reference file"))
            .expect("reference JSON");
    let sentences: Vec<String> = reference["sentences"]
        .as_array()
        .expect("sentences")
        .iter()
        .map(|s| s.as_str().expect("text").to_owned())
        .collect();
    assert_eq!(sentences.len(), 50);
    for dimensions in [256usize, 64] {
        let expected: Vec<Vec<f32>> = reference["vectors"][dimensions.to_string()]
            .as_array()
            .expect("vectors")
            .iter()
            .map(|row| {
                row.as_array()
                    .expect("row")
                    .iter()
                    .map(|x| x.as_f64().expect("number") as f32)
                    .collect()
            })
            .collect();
        let actual = model(dimensions).embed(&sentences).await.expect("embed");
        let mut worst = f32::MAX;
        for ((text, got), want) in sentences.iter().zip(&actual).zip(&expected) {
            assert_eq!(got.len(), dimensions);
            let similarity = cosine(got, want);
            worst = worst.min(similarity);
            assert!(
                similarity >= 0.999,
                "{dimensions}d {text:?}: cosine {similarity}"
            );
        }
        println!("{dimensions} dimensions: lowest cosine to the Python package {worst:.6}");
    }
}

//! Generated text: documents to ingest, message bodies, questions, and search queries drawn
//! from what was ingested (so searches find something, as real ones mostly do).

use agentic_proto::conversation::v1 as conversation_pb;
use agentic_proto::rag::v1 as rag_pb;
use rand::Rng;
use rand::seq::IndexedRandom;
use uuid::Uuid;

/// Message `i` of a batch of new ones: the user and the assistant take turns.
pub(crate) fn turn(i: usize, content: String) -> conversation_pb::Message {
    let role = if i.is_multiple_of(2) {
        conversation_pb::MessageRole::User
    } else {
        conversation_pb::MessageRole::Assistant
    };
    conversation_pb::Message {
        id: Uuid::now_v7().to_string(),
        role: role as i32,
        content,
        ..Default::default()
    }
}

const SUBJECTS: &[&str] = &[
    "the billing service",
    "the night shift",
    "the Lisbon office",
    "the onboarding guide",
    "the mobile app",
    "the support queue",
    "the data warehouse",
    "the quarterly review",
    "the travel policy",
    "the release train",
    "the security team",
    "the search index",
];
const VERBS: &[&str] = &[
    "moved to",
    "depends on",
    "was replaced by",
    "reports to",
    "is reviewed by",
    "publishes",
    "archives",
    "pays for",
];
const OBJECTS: &[&str] = &[
    "a weekly digest",
    "the finance ledger",
    "the regional manager",
    "a new vendor",
    "the staging cluster",
    "every invoice over 500 euros",
    "the customer survey",
    "the on-call rota",
    "the parking permits",
    "an encrypted backup",
];
const WHEN: &[&str] = &[
    "every Monday",
    "since March",
    "after the audit",
    "before each release",
    "at month end",
    "on request",
];

/// The generator of one run; its seeded documents are the same for the same run id.
pub(crate) struct Text {
    seed: u64,
}

impl Text {
    pub(crate) fn new(run_id: &str) -> Self {
        let seed = run_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
        });
        Self { seed }
    }

    /// A sentence built from the word lists, chosen by `rng`.
    fn sentence(rng: &mut impl Rng) -> String {
        format!(
            "{} {} {} {}.",
            capitalised(SUBJECTS.choose(rng).expect("subjects")),
            VERBS.choose(rng).expect("verbs"),
            OBJECTS.choose(rng).expect("objects"),
            WHEN.choose(rng).expect("times")
        )
    }

    fn paragraph(rng: &mut impl Rng, sentences: usize) -> String {
        (0..sentences)
            .map(|_| Self::sentence(rng))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Document `index` of the set ingested before the load.
    pub(crate) fn seeded_document(&self, index: usize) -> rag_pb::DocumentInput {
        let mut rng = self.seeded(index as u64);
        rag_pb::DocumentInput {
            title: format!("Handbook page {index}"),
            text: Self::paragraph(&mut rng, 8),
            client_id: format!("seed-{index}"),
            ..Default::default()
        }
    }

    /// A fresh document (for the `ingest_document` step).
    pub(crate) fn document(&self, rng: &mut impl Rng, tag: &str) -> rag_pb::DocumentInput {
        rag_pb::DocumentInput {
            title: format!("Note {tag}"),
            text: Self::paragraph(rng, 6),
            client_id: tag.to_owned(),
            ..Default::default()
        }
    }

    /// A message a user might write.
    pub(crate) fn message(&self, rng: &mut impl Rng) -> String {
        let sentences = rng.random_range(1..=3);
        Self::paragraph(rng, sentences)
    }

    /// A question about something the seeded documents say.
    pub(crate) fn question(&self, rng: &mut impl Rng) -> String {
        format!(
            "What does {} depend on?",
            SUBJECTS.choose(rng).expect("subjects")
        )
    }

    /// A search query: a few consecutive words of one of the first `documents` seeded
    /// documents.
    pub(crate) fn query(&self, rng: &mut impl Rng, documents: usize) -> String {
        let text = self
            .seeded_document(rng.random_range(0..documents.max(1)))
            .text;
        let words: Vec<&str> = text.split_whitespace().collect();
        let length = rng.random_range(3..=6).min(words.len());
        let start = rng.random_range(0..=words.len() - length);
        words[start..start + length]
            .join(" ")
            .trim_end_matches('.')
            .to_owned()
    }

    fn seeded(&self, index: u64) -> rand::rngs::StdRng {
        use rand::SeedableRng;
        rand::rngs::StdRng::seed_from_u64(self.seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_documents_repeat_and_queries_come_from_them() {
        let text = Text::new("run-1");
        assert_eq!(
            text.seeded_document(3).text,
            Text::new("run-1").seeded_document(3).text
        );
        let mut rng = rand::rng();
        let query = text.query(&mut rng, 5);
        assert!(
            (0..5).any(|i| text.seeded_document(i).text.contains(&query)),
            "{query}"
        );
    }
}

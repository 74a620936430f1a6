//! Validation of the RAG service's requests into typed inputs; every error names its
//! field, and every violation of a request is reported at once.

use std::collections::HashSet;

use agentic_platform::error::{Error, Result};
use agentic_platform::json;
use agentic_platform::validate::{self, Violations};
use agentic_proto::rag::v1 as pb;
use chrono::Utc;
use uuid::Uuid;

use crate::embedding::Embedder;
use crate::model::{DocumentRow, Status as DocStatus, distance_name};

// ---- collections ----

const DEFAULT_CHUNK_SIZE: i32 = 256;
const DEFAULT_CHUNK_OVERLAP: i32 = 32;
const MIN_CHUNK_SIZE: i32 = 32;
const MAX_CHUNK_SIZE: i32 = 2048;
const MAX_COLLECTION_NAME: usize = 200;

/// A validated collection for CreateCollection: the defaults filled in.
pub(crate) struct CollectionInput {
    pub(crate) name: String,
    pub(crate) slug: String,
    pub(crate) dimensions: i32,
    pub(crate) distance: &'static str,
    pub(crate) chunk_size: i32,
    pub(crate) chunk_overlap: i32,
}

/// `[64, 128, 256]` as "64, 128, 256".
fn choices(dimensions: &[usize]) -> String {
    let names: Vec<String> = dimensions.iter().map(usize::to_string).collect();
    names.join(", ")
}

pub(crate) fn new_collection(
    c: &pb::Collection,
    embedder: &dyn Embedder,
) -> Result<CollectionInput> {
    let model = embedder.model();
    let embedding_model = if c.embedding_model.is_empty() || c.embedding_model == model {
        Ok(())
    } else {
        Err(Error::invalid(
            "collection.embedding_model",
            format!("is not a model of this service; it has {model}"),
        ))
    };
    let dimensions = match c.dimensions {
        0 => Ok(embedder.dimensions() as i32),
        d if d > 0 && embedder.supports_dimensions(d as usize) => Ok(d),
        _ => Err(Error::invalid(
            "collection.dimensions",
            format!(
                "is not available from {model} (it has {})",
                choices(&embedder.dimension_choices())
            ),
        )),
    };
    let distance = match pb::Distance::try_from(c.distance) {
        Ok(pb::Distance::Unspecified) => Some("cosine"),
        Ok(other) => distance_name(other),
        Err(_) => None,
    }
    .ok_or_else(|| Error::invalid("collection.distance", "is not a known distance"));
    let chunk_size = if c.chunk_size == 0 {
        DEFAULT_CHUNK_SIZE
    } else {
        c.chunk_size
    };
    let chunk_size_ok = if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Ok(chunk_size)
    } else {
        Err(Error::invalid(
            "collection.chunk_size",
            format!("must be {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} tokens"),
        ))
    };
    let chunk_overlap = if c.chunk_overlap == 0 && c.chunk_size == 0 {
        DEFAULT_CHUNK_OVERLAP
    } else {
        c.chunk_overlap
    };
    let chunk_overlap = if (0..chunk_size).contains(&chunk_overlap) {
        Ok(chunk_overlap)
    } else {
        Err(Error::invalid(
            "collection.chunk_overlap",
            "must be at least 0 and less than the chunk size",
        ))
    };
    let (name, slug, (), dimensions, distance, chunk_size, chunk_overlap) = validate::all((
        validate::text("collection.name", &c.name, 1, MAX_COLLECTION_NAME),
        validate::identifier("collection.slug", &c.slug, 3, 63, &['-']),
        embedding_model,
        dimensions,
        distance,
        chunk_size_ok,
        chunk_overlap,
    ))?;
    Ok(CollectionInput {
        name,
        slug,
        dimensions,
        distance,
        chunk_size,
        chunk_overlap,
    })
}

// ---- documents ----

/// Documents in one call, or in one message of a stream.
pub(crate) const MAX_DOCUMENTS: usize = 100;
/// A document's text, in bytes.
pub(crate) const MAX_TEXT_BYTES: usize = 1024 * 1024;
pub(crate) const MAX_TITLE_CHARS: usize = 500;
pub(crate) const MAX_SOURCE_URI_CHARS: usize = 2048;
pub(crate) const MAX_CLIENT_ID_CHARS: usize = 200;
pub(crate) const MAX_METADATA_BYTES: usize = 16 * 1024;

/// 1 (or `min`) to [`MAX_DOCUMENTS`] documents.
pub(crate) fn document_count(documents: &[pb::DocumentInput], min: usize) -> Result<()> {
    if documents.len() < min || documents.len() > MAX_DOCUMENTS {
        return Err(Error::invalid(
            "documents",
            format!("must hold {min} to {MAX_DOCUMENTS} documents"),
        ));
    }
    Ok(())
}

/// The document rows of `inputs`, or every violation, each named by its field
/// (`documents[3].text`).
pub(crate) fn new_documents(
    tenant: Uuid,
    collection: Uuid,
    inputs: &[pb::DocumentInput],
) -> Result<Vec<DocumentRow>> {
    let mut violations = Violations::new();
    let mut rows = Vec::with_capacity(inputs.len());
    let mut client_ids = HashSet::new();
    let now = Utc::now();
    for (index, input) in inputs.iter().enumerate() {
        let field = |name: &str| format!("documents[{index}].{name}");
        let title = violations.check(validate::text(
            &field("title"),
            &input.title,
            1,
            MAX_TITLE_CHARS,
        ));
        if input.text.trim().is_empty() {
            violations.add(field("text"), "is required");
        } else if input.text.len() > MAX_TEXT_BYTES {
            violations.add(
                field("text"),
                format!("must be at most {MAX_TEXT_BYTES} bytes (send larger texts in parts)"),
            );
        } else {
            violations.check(validate::multiline(
                &field("text"),
                &input.text,
                MAX_TEXT_BYTES,
            ));
        }
        let source_uri = violations.check(validate::text(
            &field("source_uri"),
            &input.source_uri,
            0,
            MAX_SOURCE_URI_CHARS,
        ));
        let metadata = violations.check(json::from_struct_within(
            &field("metadata"),
            input.metadata.as_ref(),
            MAX_METADATA_BYTES,
        ));
        let client_id = if input.client_id.is_empty() {
            Some(None)
        } else {
            let id = violations.check(validate::text(
                &field("client_id"),
                &input.client_id,
                1,
                MAX_CLIENT_ID_CHARS,
            ));
            if let Some(id) = &id
                && !client_ids.insert(id.clone())
            {
                violations.add(field("client_id"), "appears twice in the request");
            }
            id.map(Some)
        };
        if let (Some(title), Some(source_uri), Some(metadata), Some(client_id)) =
            (title, source_uri, metadata, client_id)
        {
            rows.push(DocumentRow {
                id: Uuid::now_v7(),
                tenant_id: tenant,
                collection_id: collection,
                client_id,
                title,
                source_uri,
                metadata,
                content: input.text.clone(),
                status: DocStatus::Pending.as_str().to_owned(),
                error: String::new(),
                chunk_count: 0,
                created_at: now,
                updated_at: now,
            });
        }
    }
    violations.into_result()?;
    Ok(rows)
}

// ---- search ----

const DEFAULT_TOP_K: i32 = 10;
const MAX_TOP_K: i32 = 100;
/// pgvector's own default candidate list: a search's `ef_search` when it names none (at
/// least its `top_k`).
pub const DEFAULT_EF_SEARCH: i32 = 40;
pub(crate) const MAX_EF_SEARCH: i32 = 1000;
const MAX_QUERY_CHARS: usize = 2000;
const MAX_FILTER_BYTES: usize = 16 * 1024;
const MAX_DOCUMENT_IDS: usize = 100;
/// How a search ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Dense,
    Lexical,
    Hybrid,
}

/// A search request, checked against everything but its collection.
pub(crate) struct SearchInput {
    pub(crate) collection_id: Uuid,
    pub(crate) mode: Mode,
    pub(crate) text: Option<String>,
    /// A query vector of finite numbers, not all zero; its length is checked against the
    /// collection by [`query_vector_for`].
    pub(crate) vector: Option<Vec<f32>>,
    pub(crate) top_k: i32,
    pub(crate) ef_search: i32,
    pub(crate) min_score: Option<f32>,
    pub(crate) metadata: Option<serde_json::Value>,
    pub(crate) documents: Option<Vec<Uuid>>,
}

fn mode(value: i32) -> Result<Mode> {
    match pb::SearchMode::try_from(value) {
        Ok(pb::SearchMode::Unspecified | pb::SearchMode::Dense) => Ok(Mode::Dense),
        Ok(pb::SearchMode::Lexical) => Ok(Mode::Lexical),
        Ok(pb::SearchMode::Hybrid) => Ok(Mode::Hybrid),
        Err(_) => Err(Error::invalid("mode", "is not a known search mode")),
    }
}

/// The query: text, or (for dense search) a vector, never both.
fn query(
    message: &pb::SearchRequest,
    mode: Option<Mode>,
) -> Result<(Option<String>, Option<Vec<f32>>)> {
    let has_text = !message.query.trim().is_empty();
    let values = &message.query_vector;
    match (has_text, values.is_empty()) {
        (false, true) => Err(Error::invalid(
            "query",
            "is required (or query_vector, for dense search)",
        )),
        (true, false) => Err(Error::invalid(
            "query_vector",
            "must be empty when query is given",
        )),
        (true, true) => validate::text("query", &message.query, 1, MAX_QUERY_CHARS)
            .map(|text| (Some(text), None)),
        (false, false) => {
            if mode.is_some_and(|mode| mode != Mode::Dense) {
                Err(Error::invalid(
                    "query_vector",
                    "only dense search takes a vector; give query instead",
                ))
            } else if values.iter().any(|x| !x.is_finite()) {
                Err(Error::invalid("query_vector", "must hold finite numbers"))
            } else if values.iter().all(|x| *x == 0.0) {
                Err(Error::invalid("query_vector", "must not be all zeros"))
            } else {
                Ok((None, Some(values.clone())))
            }
        }
    }
}

fn top_k_and_ef_search(message: &pb::SearchRequest) -> (Result<i32>, Result<i32>) {
    let top_k = message.top_k.unwrap_or(DEFAULT_TOP_K);
    let ef_search = message.ef_search.unwrap_or(DEFAULT_EF_SEARCH.max(top_k));
    let top_k_ok = if (1..=MAX_TOP_K).contains(&top_k) {
        Ok(top_k)
    } else {
        Err(Error::invalid("top_k", format!("must be 1 to {MAX_TOP_K}")))
    };
    let ef_search_ok = if (1..=MAX_EF_SEARCH).contains(&ef_search) && ef_search >= top_k {
        Ok(ef_search)
    } else {
        Err(Error::invalid(
            "ef_search",
            format!("must be top_k to {MAX_EF_SEARCH}"),
        ))
    };
    (top_k_ok, ef_search_ok)
}

fn min_score(value: Option<f32>) -> Result<Option<f32>> {
    match value {
        Some(score) if !score.is_finite() => {
            Err(Error::invalid("min_score", "must be a finite number"))
        }
        other => Ok(other),
    }
}

/// A non-empty metadata filter, if any.
fn metadata_filter(value: Option<&prost_types::Struct>) -> Result<Option<serde_json::Value>> {
    let filter = json::from_struct_within("metadata_filter", value, MAX_FILTER_BYTES)?;
    Ok(Some(filter).filter(|filter| filter.as_object().is_some_and(|o| !o.is_empty())))
}

/// The documents a search is limited to, sorted and distinct; `None` for all.
fn document_filter(values: &[String]) -> Result<Option<Vec<Uuid>>> {
    if values.is_empty() {
        return Ok(None);
    }
    if values.len() > MAX_DOCUMENT_IDS {
        return Err(Error::invalid(
            "document_ids",
            format!("must hold at most {MAX_DOCUMENT_IDS} ids"),
        ));
    }
    let mut ids = validate::distinct_ids("document_ids", values)?;
    ids.sort_unstable();
    Ok(Some(ids))
}

/// Checks everything a search asks that does not depend on its collection, so bad input
/// is INVALID_ARGUMENT before an unknown collection is NOT_FOUND.
pub(crate) fn search(message: &pb::SearchRequest) -> Result<SearchInput> {
    let mode = mode(message.mode);
    let query = query(message, mode.as_ref().ok().copied());
    let (top_k, ef_search) = top_k_and_ef_search(message);
    let (collection_id, mode, (text, vector), top_k, ef_search, min_score, metadata, documents) =
        validate::all((
            validate::id("collection_id", &message.collection_id),
            mode,
            query,
            top_k,
            ef_search,
            min_score(message.min_score),
            metadata_filter(message.metadata_filter.as_ref()),
            document_filter(&message.document_ids),
        ))?;
    Ok(SearchInput {
        collection_id,
        mode,
        text,
        vector,
        top_k,
        ef_search,
        min_score,
        metadata,
        documents,
    })
}

/// Fails unless a query vector has the collection's dimensions.
pub(crate) fn query_vector_for(vector: &[f32], dimensions: i32) -> Result<()> {
    if vector.len() != dimensions as usize {
        return Err(Error::invalid(
            "query_vector",
            format!(
                "must have the collection's {dimensions} dimensions, not {}",
                vector.len()
            ),
        ));
    }
    Ok(())
}

// ---- embed ----

const MAX_EMBED_TEXTS: usize = 100;
const MAX_EMBED_TEXT_LEN: usize = 20_000;

/// A validated EmbedRequest: the texts and the dimensions to cut the vectors to.
pub(crate) fn embed(message: &pb::EmbedRequest, embedder: &dyn Embedder) -> Result<usize> {
    if message.texts.is_empty() || message.texts.len() > MAX_EMBED_TEXTS {
        return Err(Error::invalid(
            "texts",
            format!("must hold 1 to {MAX_EMBED_TEXTS} texts"),
        ));
    }
    let mut violations = Violations::new();
    for (index, text) in message.texts.iter().enumerate() {
        let field = format!("texts[{index}]");
        if text.trim().is_empty() {
            violations.add(field, "is required");
        } else {
            violations.check(validate::multiline(&field, text, MAX_EMBED_TEXT_LEN));
        }
    }
    let full = embedder.dimensions();
    let dimensions = match message.dimensions {
        0 => Ok(full),
        d if d > 0 && embedder.supports_dimensions(d as usize) => Ok(d as usize),
        _ => Err(Error::invalid(
            "dimensions",
            format!("must be 0 (the model's {full}) or a size the model supports"),
        )),
    };
    let ((), dimensions) = validate::all((violations.into_result(), dimensions))?;
    Ok(dimensions)
}

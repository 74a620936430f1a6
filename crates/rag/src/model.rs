//! Rows and their mapping to and from protobuf.

use agentic_platform::json;
use agentic_platform::time::to_timestamp;
use agentic_proto::rag::v1 as pb;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::{chunks, collections, documents};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = collections, check_for_backend(diesel::pg::Pg))]
pub struct CollectionRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub slug: String,
    pub embedding_model: String,
    pub dimensions: i32,
    pub distance: String,
    pub chunk_size: i32,
    pub chunk_overlap: i32,
    pub created_at: DateTime<Utc>,
}

pub fn distance_name(distance: pb::Distance) -> Option<&'static str> {
    match distance {
        pb::Distance::Cosine => Some("cosine"),
        pb::Distance::InnerProduct => Some("inner_product"),
        pb::Distance::L2 => Some("l2"),
        pb::Distance::Unspecified => None,
    }
}

fn distance_from_name(name: &str) -> pb::Distance {
    match name {
        "cosine" => pb::Distance::Cosine,
        "inner_product" => pb::Distance::InnerProduct,
        "l2" => pb::Distance::L2,
        _ => pb::Distance::Unspecified,
    }
}

impl From<CollectionRow> for pb::Collection {
    fn from(row: CollectionRow) -> Self {
        Self {
            id: row.id.to_string(),
            tenant_id: row.tenant_id.to_string(),
            name: row.name,
            slug: row.slug,
            embedding_model: row.embedding_model,
            dimensions: row.dimensions,
            distance: distance_from_name(&row.distance) as i32,
            chunk_size: row.chunk_size,
            chunk_overlap: row.chunk_overlap,
            create_time: Some(to_timestamp(row.created_at)),
        }
    }
}

/// A document's place in ingestion, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Ready,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    pub fn from_proto(status: pb::DocumentStatus) -> Option<Self> {
        match status {
            pb::DocumentStatus::Pending => Some(Self::Pending),
            pb::DocumentStatus::Ready => Some(Self::Ready),
            pb::DocumentStatus::Failed => Some(Self::Failed),
            pb::DocumentStatus::Unspecified => None,
        }
    }

    fn to_proto(name: &str) -> pb::DocumentStatus {
        match name {
            "pending" => pb::DocumentStatus::Pending,
            "ready" => pb::DocumentStatus::Ready,
            "failed" => pb::DocumentStatus::Failed,
            _ => pb::DocumentStatus::Unspecified,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = documents, check_for_backend(diesel::pg::Pg))]
pub struct DocumentRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub collection_id: Uuid,
    pub client_id: Option<String>,
    pub title: String,
    pub source_uri: String,
    pub metadata: serde_json::Value,
    pub content: String,
    pub status: String,
    pub error: String,
    pub chunk_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A document without its text, as lists and ingestion replies show it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = documents, check_for_backend(diesel::pg::Pg))]
pub struct DocumentSummary {
    pub id: Uuid,
    pub collection_id: Uuid,
    pub client_id: Option<String>,
    pub title: String,
    pub source_uri: String,
    pub metadata: serde_json::Value,
    pub status: String,
    pub error: String,
    pub chunk_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<DocumentSummary> for pb::Document {
    fn from(row: DocumentSummary) -> Self {
        Self {
            id: row.id.to_string(),
            collection_id: row.collection_id.to_string(),
            client_id: row.client_id.unwrap_or_default(),
            title: row.title,
            source_uri: row.source_uri,
            metadata: Some(json::to_struct(&row.metadata)),
            status: Status::to_proto(&row.status) as i32,
            error: row.error,
            chunk_count: row.chunk_count,
            text: String::new(),
            create_time: Some(to_timestamp(row.created_at)),
            update_time: Some(to_timestamp(row.updated_at)),
        }
    }
}

impl From<DocumentRow> for pb::Document {
    fn from(row: DocumentRow) -> Self {
        let text = row.content;
        let summary = DocumentSummary {
            id: row.id,
            collection_id: row.collection_id,
            client_id: row.client_id,
            title: row.title,
            source_uri: row.source_uri,
            metadata: row.metadata,
            status: row.status,
            error: row.error,
            chunk_count: row.chunk_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
        };
        Self {
            text,
            ..summary.into()
        }
    }
}

/// A chunk ready to store: its text, its document's metadata and its vector.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = chunks, check_for_backend(diesel::pg::Pg))]
pub struct NewChunk {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub collection_id: Uuid,
    pub document_id: Uuid,
    pub ordinal: i32,
    pub content: String,
    pub token_count: i32,
    pub metadata: serde_json::Value,
    pub dimensions: i32,
    pub embedding: pgvector::Vector,
}

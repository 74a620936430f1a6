//! Rows and their mapping to and from protobuf.

use agentic_platform::time::to_timestamp;
use agentic_proto::rag::v1 as pb;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::collections;

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

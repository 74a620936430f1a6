//! Diesel table definitions for the `rag` schema (see migrations/rag).

diesel::table! {
    rag.collections (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        slug -> Text,
        embedding_model -> Text,
        dimensions -> Int4,
        distance -> Text,
        chunk_size -> Int4,
        chunk_overlap -> Int4,
        created_at -> Timestamptz,
    }
}

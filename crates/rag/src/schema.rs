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

diesel::table! {
    rag.documents (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        collection_id -> Uuid,
        client_id -> Nullable<Text>,
        title -> Text,
        source_uri -> Text,
        metadata -> Jsonb,
        content -> Text,
        status -> Text,
        error -> Text,
        chunk_count -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    rag.document_attempts (document_id) {
        document_id -> Uuid,
        attempts -> Int4,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use pgvector::sql_types::Vector;

    // `search_text` (tsvector, generated) is only read by search's own SQL.
    rag.chunks (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        collection_id -> Uuid,
        document_id -> Uuid,
        ordinal -> Int4,
        content -> Text,
        token_count -> Int4,
        metadata -> Jsonb,
        dimensions -> Int4,
        embedding -> Vector,
    }
}

diesel::joinable!(documents -> collections (collection_id));
diesel::allow_tables_to_appear_in_same_query!(collections, documents, chunks);

//! Diesel table definitions for the `agents` schema (see migrations/agent).

diesel::table! {
    agents.mcp_servers (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        transport -> Text,
        url -> Text,
        command -> Text,
        args -> Array<Text>,
        headers_sealed -> Nullable<Bytea>,
        header_names -> Array<Text>,
        enabled -> Bool,
        tools -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    agents.agents (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        slug -> Text,
        description -> Text,
        model -> Text,
        system_prompt -> Text,
        temperature -> Float4,
        max_tokens -> Int4,
        config -> Jsonb,
        mcp_server_ids -> Array<Uuid>,
        status -> Text,
        created_by -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        collection_ids -> Array<Uuid>,
        retrieval_top_k -> Int4,
        retrieval_min_score -> Nullable<Float4>,
        retrieval_mode -> Text,
    }
}

diesel::table! {
    agents.workflows (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        description -> Text,
        steps -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(mcp_servers, agents, workflows);

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
        discovered_at -> Nullable<Timestamptz>,
        discovery_error -> Text,
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

diesel::table! {
    agents.workflow_runs (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        workflow_id -> Uuid,
        request_id -> Nullable<Uuid>,
        status -> Text,
        input -> Text,
        overrides -> Jsonb,
        plan -> Jsonb,
        steps -> Jsonb,
        output -> Text,
        error -> Text,
        created_by -> Text,
        attempts -> Int4,
        lease_owner -> Nullable<Uuid>,
        lease_until -> Nullable<Timestamptz>,
        deadline -> Timestamptz,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(mcp_servers, agents, workflows, workflow_runs);

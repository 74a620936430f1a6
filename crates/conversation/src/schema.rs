//! Diesel table definitions for the `conversations` schema (see migrations/conversation).

diesel::table! {
    conversations.conversations (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        agent_id -> Uuid,
        user_id -> Uuid,
        title -> Text,
        status -> Text,
        metadata -> Jsonb,
        message_count -> Int8,
        last_message_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    conversations.messages (conversation_id, sequence) {
        conversation_id -> Uuid,
        sequence -> Int8,
        id -> Uuid,
        tenant_id -> Uuid,
        role -> Text,
        content -> Text,
        token_count -> Int4,
        tool_name -> Nullable<Text>,
        tool_arguments -> Nullable<Jsonb>,
        tool_result -> Nullable<Text>,
        metadata -> Jsonb,
        created_at -> Timestamptz,
        reply_to -> Nullable<Uuid>,
        finish_reason -> Nullable<Text>,
        answering_until -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(messages -> conversations (conversation_id));
diesel::allow_tables_to_appear_in_same_query!(conversations, messages);

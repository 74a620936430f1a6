-- The conversation service's schema. Agents and users live in their own services, so
-- agent_id and user_id reference nothing here; every query filters by tenant.
CREATE SCHEMA IF NOT EXISTS conversations;

CREATE TABLE conversations.conversations (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL,
    agent_id         uuid        NOT NULL,
    user_id          uuid        NOT NULL,
    title            text        NOT NULL DEFAULT '',
    status           text        NOT NULL CHECK (status IN ('active', 'archived')),
    metadata         jsonb       NOT NULL DEFAULT '{}',
    message_count    bigint      NOT NULL DEFAULT 0,
    last_message_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- conversations(tenant_id, created_at) from the seeds; listing newest first pages by id
-- (UUIDv7, so creation order).
CREATE INDEX conversations_tenant_created_idx ON conversations.conversations (tenant_id, created_at);
CREATE INDEX conversations_tenant_id_idx ON conversations.conversations (tenant_id, id DESC);
CREATE INDEX conversations_agent_idx ON conversations.conversations (agent_id, id DESC);
CREATE INDEX conversations_user_idx ON conversations.conversations (user_id, id DESC);

CREATE TABLE conversations.messages (
    conversation_id  uuid        NOT NULL REFERENCES conversations.conversations (id) ON DELETE CASCADE,
    sequence         bigint      NOT NULL,
    id               uuid        NOT NULL,
    tenant_id        uuid        NOT NULL,
    role             text        NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content          text        NOT NULL DEFAULT '',
    token_count      integer     NOT NULL DEFAULT 0 CHECK (token_count >= 0),
    tool_name        text,
    tool_arguments   jsonb,
    tool_result      text,
    metadata         jsonb       NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, sequence),
    -- A client's message id is appended once per conversation.
    UNIQUE (conversation_id, id)
);

-- Appends messages to a conversation in one call (one round trip): takes the
-- conversation's row lock, so appenders to one conversation take turns and sequence
-- numbers are gap-free; skips ids already appended (a retry); returns every requested
-- message as stored, in request order. Returns nothing if the conversation does not exist
-- in the tenant.
CREATE FUNCTION conversations.append_messages(
    p_tenant uuid,
    p_conversation uuid,
    p_ids uuid[],
    p_roles text[],
    p_contents text[],
    p_token_counts integer[],
    p_tool_names text[],
    p_tool_arguments jsonb[],
    p_tool_results text[],
    p_metadata jsonb[]
) RETURNS SETOF conversations.messages
LANGUAGE plpgsql AS $$
DECLARE
    v_count bigint;
    v_added bigint;
BEGIN
    SELECT message_count INTO v_count
      FROM conversations.conversations
     WHERE id = p_conversation AND tenant_id = p_tenant
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    WITH input AS (
        SELECT *
          FROM unnest(p_ids, p_roles, p_contents, p_token_counts, p_tool_names,
                      p_tool_arguments, p_tool_results, p_metadata)
               WITH ORDINALITY AS t(id, role, content, token_count, tool_name,
                                    tool_arguments, tool_result, metadata, ord)
    ), fresh AS (
        SELECT input.*, row_number() OVER (ORDER BY input.ord) AS n
          FROM input
         WHERE NOT EXISTS (SELECT 1 FROM conversations.messages m
                            WHERE m.conversation_id = p_conversation AND m.id = input.id)
    )
    INSERT INTO conversations.messages
        (conversation_id, sequence, id, tenant_id, role, content, token_count,
         tool_name, tool_arguments, tool_result, metadata)
    SELECT p_conversation, v_count + n, id, p_tenant, role, content, token_count,
           tool_name, tool_arguments, tool_result, metadata
      FROM fresh;
    GET DIAGNOSTICS v_added = ROW_COUNT;

    IF v_added > 0 THEN
        UPDATE conversations.conversations
           SET message_count = v_count + v_added, last_message_at = now(), updated_at = now()
         WHERE id = p_conversation;
    END IF;

    RETURN QUERY
        SELECT m.*
          FROM unnest(p_ids) WITH ORDINALITY AS t(id, ord)
          JOIN conversations.messages m ON m.conversation_id = p_conversation AND m.id = t.id
         ORDER BY t.ord;
END;
$$;

-- The function as 2026-11-24-000002_create_conversations made it.
CREATE OR REPLACE FUNCTION conversations.append_messages(
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

-- conversations.append_messages as before, but its two look-ups by message id are
-- written so that no statistics can turn them into a scan of the whole conversation.
-- Written as a join (NOT EXISTS, JOIN), the planner may hash the requested ids and read
-- every message of the conversation instead of probing the (conversation_id, id) key per
-- id: it does when the table's statistics say conversations are short, and inside this
-- function the plan is cached per connection. An append then cost time in proportion to
-- the conversation's length (a millisecond at 5,000 messages, twenty times the probes).
-- A scalar subquery is never turned into a join, and a LATERAL subquery with a LIMIT is
-- never flattened into one: each stays one index probe per requested id.
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
         WHERE (SELECT true FROM conversations.messages m
                 WHERE m.conversation_id = p_conversation AND m.id = input.id) IS NULL
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
          CROSS JOIN LATERAL (
              SELECT *
                FROM conversations.messages s
               WHERE s.conversation_id = p_conversation AND s.id = t.id
               LIMIT 1
          ) m
         ORDER BY t.ord;
END;
$$;

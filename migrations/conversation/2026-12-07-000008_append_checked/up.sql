-- AppendMessages in one statement, without a transaction of its own: appends as
-- conversations.append_messages does, then checks that every requested id holds the
-- requested message (a retry of the same append) and raises unique_violation naming the
-- first that does not, which undoes the whole statement. The check compares what the
-- service's NewMessage::matches compares; jsonb compares by value.
CREATE FUNCTION conversations.append_new_messages(
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
    v_row conversations.messages;
    v_index integer := 0;
BEGIN
    FOR v_row IN
        SELECT * FROM conversations.append_messages(p_tenant, p_conversation, p_ids, p_roles,
            p_contents, p_token_counts, p_tool_names, p_tool_arguments, p_tool_results,
            p_metadata)
    LOOP
        v_index := v_index + 1;
        IF v_row.role IS DISTINCT FROM p_roles[v_index]
           OR v_row.content IS DISTINCT FROM p_contents[v_index]
           OR v_row.token_count IS DISTINCT FROM p_token_counts[v_index]
           OR v_row.tool_name IS DISTINCT FROM p_tool_names[v_index]
           OR v_row.tool_arguments IS DISTINCT FROM p_tool_arguments[v_index]
           OR v_row.tool_result IS DISTINCT FROM p_tool_results[v_index]
           OR v_row.metadata IS DISTINCT FROM p_metadata[v_index] THEN
            RAISE EXCEPTION 'messages[%].id: a different message has this id', v_index - 1
                USING ERRCODE = 'unique_violation';
        END IF;
        RETURN NEXT v_row;
    END LOOP;
END;
$$;

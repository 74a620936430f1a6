ALTER TABLE conversations.messages
    DROP COLUMN answering_until,
    DROP COLUMN finish_reason,
    DROP COLUMN reply_to;

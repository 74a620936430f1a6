-- Answers stored by Respond. `reply_to` is the user message an answer answers;
-- `finish_reason` says why it ended (NULL while it is being answered, and on every other
-- message); `answering_until` is the lease of the call answering it: a retry of the same
-- message waits for it, and takes the answer over once it has lapsed (a crashed process).
ALTER TABLE conversations.messages
    ADD COLUMN reply_to        uuid,
    ADD COLUMN finish_reason   text CHECK (finish_reason IN ('stop', 'length', 'cancelled', 'deadline', 'error')),
    ADD COLUMN answering_until timestamptz;

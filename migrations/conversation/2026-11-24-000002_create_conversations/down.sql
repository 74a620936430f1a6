DROP FUNCTION conversations.append_messages;
DROP TABLE conversations.messages;
DROP TABLE conversations.conversations;
DROP SCHEMA conversations;

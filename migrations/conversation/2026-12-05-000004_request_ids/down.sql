DROP TABLE conversations.request_ids;

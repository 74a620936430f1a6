DROP TABLE users.request_ids;

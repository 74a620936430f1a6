DROP TABLE agents.request_ids;

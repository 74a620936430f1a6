DROP TABLE rag.request_ids;

DROP TABLE rag.collections;
DROP SCHEMA rag;

DROP TABLE rag.chunks;
DROP TABLE rag.document_attempts;
DROP TABLE rag.documents;

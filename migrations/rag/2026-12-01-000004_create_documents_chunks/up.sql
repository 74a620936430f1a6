-- Documents, their chunks with embeddings, and the ingestion queue.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE rag.documents (
    id             uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    collection_id  uuid        NOT NULL REFERENCES rag.collections (id) ON DELETE CASCADE,
    -- The caller's id for idempotent ingestion: unique in the collection when given.
    client_id      text,
    title          text        NOT NULL,
    source_uri     text        NOT NULL DEFAULT '',
    metadata       jsonb       NOT NULL DEFAULT '{}',
    content        text        NOT NULL,
    -- pending → ready | failed. The work queue is the pending rows (see the partial index).
    status         text        NOT NULL DEFAULT 'pending'
                               CHECK (status IN ('pending', 'ready', 'failed')),
    error          text        NOT NULL DEFAULT '',
    chunk_count    integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX documents_collection_client_id_key
    ON rag.documents (collection_id, client_id) WHERE client_id IS NOT NULL;
-- Listing by collection (and status), keyset by id.
CREATE INDEX documents_collection_status_idx ON rag.documents (collection_id, status, id);
CREATE INDEX documents_collection_id_idx ON rag.documents (collection_id, id);
-- The queue: workers take the oldest pending rows FOR UPDATE SKIP LOCKED.
CREATE INDEX documents_pending_idx ON rag.documents (id) WHERE status = 'pending';

-- Attempts live outside the queue row: a worker holds that row locked in a transaction
-- while it works, and a crash rolls that transaction back, so a count kept there could
-- never grow. This table is written beside it, committed at once.
CREATE TABLE rag.document_attempts (
    document_id  uuid    PRIMARY KEY,
    attempts     integer NOT NULL
);

CREATE TABLE rag.chunks (
    id             uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL,
    collection_id  uuid        NOT NULL,
    document_id    uuid        NOT NULL REFERENCES rag.documents (id) ON DELETE CASCADE,
    ordinal        integer     NOT NULL,
    content        text        NOT NULL,
    token_count    integer     NOT NULL,
    -- The document's metadata, copied so metadata filters are row filters of the vector
    -- scan (documents are immutable once ingested).
    metadata       jsonb       NOT NULL DEFAULT '{}',
    -- Vectors are stored unit-length, so one cosine index orders all three distances.
    dimensions     integer     NOT NULL,
    embedding      vector      NOT NULL CHECK (vector_dims(embedding) = dimensions),
    search_text    tsvector    GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_collection_idx ON rag.chunks (collection_id);
CREATE INDEX chunks_search_text_idx ON rag.chunks USING gin (search_text);
-- One HNSW index per dimension count a collection may have (the column holds several);
-- services with other models add theirs when a collection first needs it.
CREATE INDEX chunks_embedding_64_idx ON rag.chunks
    USING hnsw ((embedding::vector(64)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE dimensions = 64;
CREATE INDEX chunks_embedding_128_idx ON rag.chunks
    USING hnsw ((embedding::vector(128)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE dimensions = 128;
CREATE INDEX chunks_embedding_256_idx ON rag.chunks
    USING hnsw ((embedding::vector(256)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE dimensions = 256;

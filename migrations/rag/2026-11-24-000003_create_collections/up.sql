-- The RAG service's schema. Collections first; documents and chunks follow.
CREATE SCHEMA IF NOT EXISTS rag;

CREATE TABLE rag.collections (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL,
    name             text        NOT NULL,
    slug             text        NOT NULL,
    embedding_model  text        NOT NULL,
    dimensions       integer     NOT NULL CHECK (dimensions > 0),
    distance         text        NOT NULL CHECK (distance IN ('cosine', 'inner_product', 'l2')),
    chunk_size       integer     NOT NULL CHECK (chunk_size > 0),
    chunk_overlap    integer     NOT NULL CHECK (chunk_overlap >= 0 AND chunk_overlap < chunk_size),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX collections_tenant_slug_key ON rag.collections (tenant_id, slug);
CREATE INDEX collections_tenant_id_idx ON rag.collections (tenant_id, id);

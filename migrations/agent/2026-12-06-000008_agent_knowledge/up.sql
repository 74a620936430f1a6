-- An agent's knowledge: the RAG collections it answers from (in the RAG service, so
-- they reference nothing here), and how they are searched.
ALTER TABLE agents.agents
    ADD COLUMN collection_ids      uuid[]  NOT NULL DEFAULT '{}',
    ADD COLUMN retrieval_top_k     integer NOT NULL DEFAULT 5 CHECK (retrieval_top_k BETWEEN 1 AND 50),
    ADD COLUMN retrieval_min_score real,
    ADD COLUMN retrieval_mode      text    NOT NULL DEFAULT 'hybrid' CHECK (retrieval_mode IN ('dense', 'hybrid'));

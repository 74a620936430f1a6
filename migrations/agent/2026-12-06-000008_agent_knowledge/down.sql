ALTER TABLE agents.agents
    DROP COLUMN retrieval_mode,
    DROP COLUMN retrieval_min_score,
    DROP COLUMN retrieval_top_k,
    DROP COLUMN collection_ids;

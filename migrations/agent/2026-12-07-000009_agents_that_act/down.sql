DROP TABLE agents.workflow_runs;
ALTER TABLE agents.mcp_servers
    DROP COLUMN discovery_error,
    DROP COLUMN discovered_at;

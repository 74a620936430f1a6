DROP TABLE agents.workflows;
DROP TABLE agents.agents;
DROP TABLE agents.mcp_servers;
DROP SCHEMA agents;

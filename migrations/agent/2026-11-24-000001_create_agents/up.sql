-- The agent service's schema: MCP servers, agents and workflows. A row's etag is its
-- updated_at, which every write moves forward.
-- Tenants live in the
-- user service, so tenant_id references nothing here; every query filters by it.
CREATE SCHEMA IF NOT EXISTS agents;

CREATE TABLE agents.mcp_servers (
    id              uuid        PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    name            text        NOT NULL,
    transport       text        NOT NULL CHECK (transport IN ('stdio', 'sse', 'streamable_http')),
    url             text        NOT NULL DEFAULT '',
    command         text        NOT NULL DEFAULT '',
    args            text[]      NOT NULL DEFAULT '{}',
    -- Header values, sealed with SECRETS_KEY (nonce ‖ ciphertext of a JSON object);
    -- their names are kept in the clear to show which headers are set.
    headers_sealed  bytea,
    header_names    text[]      NOT NULL DEFAULT '{}',
    enabled         boolean     NOT NULL DEFAULT true,
    tools           jsonb       NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX mcp_servers_tenant_name_key ON agents.mcp_servers (tenant_id, name);
CREATE INDEX mcp_servers_tenant_id_idx ON agents.mcp_servers (tenant_id, id);

CREATE TABLE agents.agents (
    id              uuid        PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    name            text        NOT NULL,
    slug            text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    model           text        NOT NULL,
    system_prompt   text        NOT NULL DEFAULT '',
    temperature     real        NOT NULL CHECK (temperature >= 0 AND temperature <= 2),
    max_tokens      integer     NOT NULL CHECK (max_tokens > 0),
    config          jsonb       NOT NULL DEFAULT '{}',
    mcp_server_ids  uuid[]      NOT NULL DEFAULT '{}',
    status          text        NOT NULL CHECK (status IN ('active', 'paused', 'archived')),
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
-- A slug is unique among live agents only, so a deleted agent's slug is free at once.
CREATE UNIQUE INDEX agents_tenant_slug_live_key ON agents.agents (tenant_id, slug)
    WHERE deleted_at IS NULL;
-- Listing live agents in creation order (ids are UUIDv7, so time-ordered), with or
-- without a status filter.
CREATE INDEX agents_tenant_live_idx ON agents.agents (tenant_id, id)
    WHERE deleted_at IS NULL;
CREATE INDEX agents_status_idx ON agents.agents (tenant_id, status, id)
    WHERE deleted_at IS NULL;
CREATE INDEX agents_created_at_idx ON agents.agents (created_at);
-- Deleted agents, for undelete and for purging past the retention window.
CREATE INDEX agents_deleted_at_idx ON agents.agents (deleted_at)
    WHERE deleted_at IS NOT NULL;
-- The agents that use an MCP server, when it is deleted.
CREATE INDEX agents_mcp_server_ids_idx ON agents.agents USING gin (mcp_server_ids);

CREATE TABLE agents.workflows (
    id              uuid        PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    name            text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    -- [{"name": …, "agent_id": …, "input_template": …}, …] in run order.
    steps           jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflows_tenant_id_idx ON agents.workflows (tenant_id, id);

-- MCP servers: when their tools were last discovered, and why that failed if it did.
ALTER TABLE agents.mcp_servers
    ADD COLUMN discovered_at   timestamptz,
    ADD COLUMN discovery_error text NOT NULL DEFAULT '';

-- Workflow runs. A run belongs to the process that holds its lease (lease_until, renewed
-- while it runs); a queued or running run whose lease lapsed is taken up by another
-- replica, which resumes it after its last finished step. `steps` holds each started
-- step's record (rendered input, output, usage, times, error), in order.
CREATE TABLE agents.workflow_runs (
    id           uuid        PRIMARY KEY,
    tenant_id    uuid        NOT NULL,
    workflow_id  uuid        NOT NULL REFERENCES agents.workflows (id) ON DELETE CASCADE,
    request_id   uuid,
    status       text        NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    input        text        NOT NULL,
    overrides    jsonb       NOT NULL DEFAULT '{}',
    -- The workflow's steps as they were when the run started.
    plan         jsonb       NOT NULL,
    steps        jsonb       NOT NULL DEFAULT '[]',
    output       text        NOT NULL DEFAULT '',
    error        text        NOT NULL DEFAULT '',
    created_by   text        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    lease_owner  uuid,
    lease_until  timestamptz,
    deadline     timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One run per request id and workflow.
CREATE UNIQUE INDEX workflow_runs_request ON agents.workflow_runs (tenant_id, workflow_id, request_id)
    WHERE request_id IS NOT NULL;
-- A workflow's runs, newest first.
CREATE INDEX workflow_runs_by_workflow ON agents.workflow_runs (tenant_id, workflow_id, id DESC);
-- Unfinished runs, for the replicas that look for lapsed leases.
CREATE INDEX workflow_runs_unfinished ON agents.workflow_runs (lease_until)
    WHERE status IN ('queued', 'running');

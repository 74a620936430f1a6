-- A tenant's rate limit plan: rules (JSON, as SetTenantRateLimits takes them) that add
-- to or replace the default rules for its callers. No row: the defaults apply.
CREATE TABLE users.tenant_rate_limits (
    tenant_id  uuid        PRIMARY KEY REFERENCES users.tenants (id) ON DELETE CASCADE,
    rules      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

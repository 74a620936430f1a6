DROP TABLE users.tenant_rate_limits;

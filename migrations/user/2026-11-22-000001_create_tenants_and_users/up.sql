-- The user service's schema: tenants and their users.
CREATE SCHEMA IF NOT EXISTS users;

CREATE TABLE users.tenants (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    slug        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenants_slug_key ON users.tenants (slug);

CREATE TABLE users.users (
    id             uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL REFERENCES users.tenants (id),
    email          text        NOT NULL,
    username       text,
    display_name   text        NOT NULL,
    role           text        NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    status         text        NOT NULL CHECK (status IN ('active', 'inactive', 'suspended')),
    password_hash  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Emails are stored lowercased, so one index serves uniqueness and sign-in lookups.
CREATE UNIQUE INDEX users_tenant_email_key ON users.users (tenant_id, email);
CREATE UNIQUE INDEX users_tenant_username_key ON users.users (tenant_id, username)
    WHERE username IS NOT NULL;
CREATE INDEX users_email_idx ON users.users (email);
-- users(tenant_id) and users(tenant_id, status), with id last for keyset paging.
CREATE INDEX users_tenant_id_idx ON users.users (tenant_id, id);
CREATE INDEX users_tenant_status_idx ON users.users (tenant_id, status, id);

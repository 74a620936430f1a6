-- Tenants get a lifecycle: active or suspended (tokens of a suspended tenant are refused
-- by every service), and an update time.
ALTER TABLE users.tenants
    ADD COLUMN status     text        NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'suspended')),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
-- tenants(status), with id last for keyset paging by status.
CREATE INDEX tenants_status_idx ON users.tenants (status, id);

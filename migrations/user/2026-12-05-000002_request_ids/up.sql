-- Request ids of idempotent creates (AIP-155): a retry with the same id gets the first
-- response. Written in the create's own transaction; kept at least 24 hours.
CREATE TABLE users.request_ids (
    scope         uuid        NOT NULL,
    request_id    uuid        NOT NULL,
    request_hash  bytea       NOT NULL,
    response      bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, request_id)
);
CREATE INDEX request_ids_created_at_idx ON users.request_ids (created_at);

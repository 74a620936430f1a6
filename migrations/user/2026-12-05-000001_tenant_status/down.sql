DROP INDEX users.tenants_status_idx;
ALTER TABLE users.tenants DROP COLUMN updated_at, DROP COLUMN status;

DROP TABLE users.users;
DROP TABLE users.tenants;
DROP SCHEMA users;

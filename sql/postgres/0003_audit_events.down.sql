-- oauthdb migration 0003 (PostgreSQL 15), down: the audit triggers and
-- their functions go; the rows they wrote stay (auth_audit_log is
-- append-only).
DROP TRIGGER users_audit_created ON users;
DROP TRIGGER users_audit_active ON users;
DROP TRIGGER users_audit_deleted ON users;
DROP TRIGGER user_providers_audit_linked ON user_providers;
DROP TRIGGER user_providers_audit_active ON user_providers;
DROP TRIGGER user_providers_audit_deleted ON user_providers;
DROP FUNCTION oauthdb_purge(bigint);
DROP FUNCTION users_audit();
DROP FUNCTION user_providers_audit();
DROP FUNCTION oauthdb_unix(timestamptz);
DROP FUNCTION oauthdb_audit_replaying(oid);

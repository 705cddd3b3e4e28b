-- oauthdb migration 0001 (SQLite), down: drops the nine tables, children
-- before parents.  Dropping a table drops its indexes and triggers with it;
-- the implicit DELETE of DROP TABLE fires no triggers, so the append-only
-- triggers of auth_audit_log do not stand in the way.
DROP VIEW auth_audit_log_new_id;
DROP TABLE sync_logs;
DROP TABLE auth_audit_log;
DROP TABLE token_refresh_log;
DROP TABLE oauth_tokens;
DROP TABLE user_providers;
DROP TABLE service_configs;
DROP TABLE user_sessions;
DROP TABLE user_preferences;
DROP TABLE users;

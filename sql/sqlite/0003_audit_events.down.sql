-- oauthdb migration 0003 (SQLite), down: drops the audit triggers of users
-- and user_providers (the id view they use belongs to 0001).  The rows they wrote stay in
-- auth_audit_log: the log is append-only.
DROP TRIGGER user_providers_audit_deleted;
DROP TRIGGER user_providers_audit_unlinked;
DROP TRIGGER user_providers_audit_relinked;
DROP TRIGGER user_providers_audit_linked;
DROP TRIGGER users_audit_deleted;
DROP TRIGGER users_audit_reactivated;
DROP TRIGGER users_audit_deactivated;
DROP TRIGGER users_audit_created;

-- oauthdb migration 0001 (PostgreSQL 15), down: undoes 0001_schema.up.sql.
--
-- Tables go children first; their indexes, triggers and grants go with them.
-- Roles are cluster-wide: each one is dropped only when nothing anywhere
-- still needs it -- no member and no member-of (DROP ROLE would silently
-- remove memberships), no per-role settings, and no object or privilege in
-- any database of the cluster (DROP ROLE refuses those; we catch that and
-- keep the role with a NOTICE instead of failing the down).

DROP TABLE sync_logs;
DROP TABLE auth_audit_log;
DROP TABLE token_refresh_log;
DROP TABLE oauth_tokens;
DROP TABLE user_providers;
DROP TABLE service_configs;
DROP TABLE user_sessions;
DROP TABLE user_preferences;
DROP TABLE users;

DROP FUNCTION auth_audit_log_no_delete();
DROP FUNCTION auth_audit_log_no_update();
DROP FUNCTION oauthdb_uuid7();
DROP FUNCTION oauthdb_audit_id();
DROP SEQUENCE auth_audit_log_order;

DO $$
DECLARE
  r text;
  r_oid oid;
BEGIN
  FOREACH r IN ARRAY ARRAY['oauthdb_app', 'oauthdb_readonly', 'oauthdb_auditor'] LOOP
    SELECT oid INTO r_oid FROM pg_roles WHERE rolname = r;
    CONTINUE WHEN r_oid IS NULL;
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM %I', current_schema(), r);
    IF EXISTS (SELECT FROM pg_auth_members WHERE roleid = r_oid OR member = r_oid)
       OR EXISTS (SELECT FROM pg_db_role_setting WHERE setrole = r_oid) THEN
      RAISE NOTICE 'oauthdb: keeping role % (it has members, memberships or settings)', r;
      CONTINUE;
    END IF;
    BEGIN
      EXECUTE format('DROP ROLE %I', r);
    EXCEPTION WHEN dependent_objects_still_exist THEN
      RAISE NOTICE 'oauthdb: keeping role % (still used elsewhere: %)', r, SQLERRM;
    END;
  END LOOP;
END
$$;

-- oauthdb migration 0003 (PostgreSQL 15): audit rows for the account events
-- that are plain INSERT, UPDATE and DELETE on users and user_providers,
-- written by triggers, as sql/sqlite/0003_audit_events.up.sql does: the same
-- actions, the same user_id, provider and details (timestamps inside
-- details are Unix seconds on both engines), so every client of production
-- records them too.  docs/SQL.md "Audit trail" lists the events.
--
--   action              when                                       user_id
--   user.created        a users row is inserted                    the user
--   user.deactivated    users.is_active goes from true to false    the user
--   user.reactivated    users.is_active goes from false to true    the user
--   user.deleted        a users row is deleted                     NULL
--   provider.linked     a user_providers row is inserted active,
--                       or its is_active goes from false to true   the user
--   provider.unlinked   user_providers.is_active goes true to false,
--                       or an active link is deleted while its
--                       user still exists                          the user
--
-- Ids and timestamps come from auth_audit_log's defaults (oauthdb_audit_id(),
-- clock_timestamp(); 0001), the one source every writer here uses.  The
-- functions run as the caller (oauthdb_app may append to auth_audit_log)
-- with search_path pinned to this schema and then pg_temp, so neither a
-- caller's search_path nor a temporary table of the same name can redirect
-- a row.
--
-- Replays.  A promotion (oauthdb-export) writes users and user_providers
-- rows whose events already happened in the dev database; the triggers must
-- not invent a second record of them, and must not be disabled either.  The
-- exporter says so in its own transaction: SET LOCAL oauthdb.replaying =
-- 'on'.  Anyone can set that, so it is honoured only for a role that owns
-- the table (or a superuser): such a role can already disable or drop these
-- triggers, so the setting gives it nothing new, while the application
-- (oauthdb_app, never the owner) that sets it still writes every row.

CREATE FUNCTION oauthdb_audit_replaying(relid oid) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(current_setting('oauthdb.replaying', true), '') = 'on'
     AND pg_has_role(CURRENT_USER,
           (SELECT c.relowner FROM pg_class AS c WHERE c.oid = relid), 'USAGE')
$$;

CREATE FUNCTION oauthdb_unix(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE
AS $$ SELECT floor(extract(epoch FROM t))::bigint $$;

CREATE FUNCTION users_audit() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  IF oauthdb_audit_replaying(TG_RELID) THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO auth_audit_log (user_id, action, details)
    VALUES (NEW.id, 'user.created', '{}');
  ELSIF TG_OP = 'UPDATE' AND OLD.is_active AND NOT NEW.is_active THEN
    INSERT INTO auth_audit_log (user_id, action, details)
    VALUES (NEW.id, 'user.deactivated',
            jsonb_build_object('deactivated_at', oauthdb_unix(NEW.deactivated_at)));
  ELSIF TG_OP = 'UPDATE' AND NOT OLD.is_active AND NEW.is_active THEN
    INSERT INTO auth_audit_log (user_id, action, details)
    VALUES (NEW.id, 'user.reactivated', '{}');
  ELSIF TG_OP = 'DELETE' THEN
    -- The user is gone (its links and sessions with it, by cascade), so
    -- the row names it only in details, as in SQLite.
    INSERT INTO auth_audit_log (user_id, action, details)
    VALUES (NULL, 'user.deleted', jsonb_build_object('user_id', OLD.id));
  END IF;
  RETURN NULL;
END
$$;

CREATE FUNCTION user_providers_audit() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  IF oauthdb_audit_replaying(TG_RELID) THEN
    RETURN NULL;
  END IF;
  IF (TG_OP = 'INSERT' AND NEW.is_active)
     OR (TG_OP = 'UPDATE' AND NOT OLD.is_active AND NEW.is_active) THEN
    INSERT INTO auth_audit_log (user_id, action, provider, details)
    VALUES (NEW.user_id, 'provider.linked', NEW.provider,
            jsonb_build_object('user_provider_id', NEW.id, 'provider', NEW.provider));
  ELSIF TG_OP = 'UPDATE' AND OLD.is_active AND NOT NEW.is_active THEN
    INSERT INTO auth_audit_log (user_id, action, provider, details)
    VALUES (NEW.user_id, 'provider.unlinked', NEW.provider,
            jsonb_build_object('user_provider_id', NEW.id, 'provider', NEW.provider,
                               'unlinked_at', oauthdb_unix(NEW.unlinked_at)));
  ELSIF TG_OP = 'DELETE' AND OLD.is_active
        AND EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id) THEN
    -- Not when the user is gone: user.deleted already says so.
    INSERT INTO auth_audit_log (user_id, action, provider, details)
    VALUES (OLD.user_id, 'provider.unlinked', OLD.provider,
            jsonb_build_object('user_provider_id', OLD.id, 'provider', OLD.provider,
                               'link_deleted', true));
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER users_audit_created AFTER INSERT ON users
  FOR EACH ROW EXECUTE FUNCTION users_audit();
CREATE TRIGGER users_audit_active AFTER UPDATE OF is_active, deactivated_at ON users
  FOR EACH ROW WHEN (OLD.is_active IS DISTINCT FROM NEW.is_active)
  EXECUTE FUNCTION users_audit();
CREATE TRIGGER users_audit_deleted AFTER DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION users_audit();
CREATE TRIGGER user_providers_audit_linked AFTER INSERT ON user_providers
  FOR EACH ROW WHEN (NEW.is_active) EXECUTE FUNCTION user_providers_audit();
CREATE TRIGGER user_providers_audit_active AFTER UPDATE OF is_active, unlinked_at ON user_providers
  FOR EACH ROW WHEN (OLD.is_active IS DISTINCT FROM NEW.is_active)
  EXECUTE FUNCTION user_providers_audit();
CREATE TRIGGER user_providers_audit_deleted AFTER DELETE ON user_providers
  FOR EACH ROW WHEN (OLD.is_active) EXECUTE FUNCTION user_providers_audit();

-- oauthdb_purge(older_than_seconds): the one way rows leave auth_audit_log,
-- as in SQLite (docs/SQL.md): deletes the audit rows with timestamp before
-- the cutoff (now() in whole seconds minus older_than_seconds) and the
-- sessions that died before it, records a retention.run row, and returns
-- that row's details as text.  To get past auth_audit_log_no_delete it
-- disables that trigger, deletes, and enables it again, all in the caller's
-- transaction: ALTER TABLE holds an ACCESS EXCLUSIVE lock on auth_audit_log
-- until the transaction ends, so no other session ever sees the log without
-- its trigger (writers of audit rows wait for the purge), and any error
-- rolls the trigger back with everything else.  SECURITY DEFINER (the
-- table's owner may alter it); nobody but the owner may call it until a
-- GRANT says otherwise.
CREATE FUNCTION oauthdb_purge(older_than_seconds bigint) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
AS $$
DECLARE
  now_unix bigint := floor(extract(epoch FROM now()))::bigint;
  cutoff bigint;
  n_audit bigint;
  n_sessions bigint;
  details text;
BEGIN
  IF older_than_seconds IS NULL OR older_than_seconds < 0
     OR older_than_seconds > 253402300799 THEN
    RAISE EXCEPTION 'oauthdb_purge: older_than_seconds must be an integer from 0 to 253402300799 (90 days: 90 * 86400)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  cutoff := now_unix - older_than_seconds;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger
                  WHERE tgrelid = 'auth_audit_log'::regclass
                    AND tgname = 'auth_audit_log_no_delete' AND tgenabled = 'O') THEN
    RAISE EXCEPTION 'oauthdb_purge: trigger auth_audit_log_no_delete is missing, so auth_audit_log is not append-only; refusing to purge (check the schema with SELECT * FROM schema_migrations, and restore the trigger)'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  ALTER TABLE auth_audit_log DISABLE TRIGGER auth_audit_log_no_delete;
  DELETE FROM auth_audit_log WHERE timestamp < to_timestamp(cutoff);
  GET DIAGNOSTICS n_audit = ROW_COUNT;
  ALTER TABLE auth_audit_log ENABLE TRIGGER auth_audit_log_no_delete;
  -- A session dies at the first of revoked_at, expires_at and its idle
  -- deadline (session_valid's rule).
  DELETE FROM user_sessions
   WHERE least(coalesce(revoked_at, expires_at), expires_at,
               last_used + idle_timeout * interval '1 second') < to_timestamp(cutoff);
  GET DIAGNOSTICS n_sessions = ROW_COUNT;
  details := format('{"audit_rows":%s,"sessions":%s,"cutoff":%s,"older_than":%s}',
                    n_audit, n_sessions, cutoff, older_than_seconds);
  INSERT INTO auth_audit_log (user_id, action, details)
  VALUES (NULL, 'retention.run', details::jsonb);
  RETURN details;
END
$$;

-- search_path pinned per function to this schema, then pg_temp (last, so a
-- temporary table cannot stand in for auth_audit_log or users).
DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY['oauthdb_audit_replaying(oid)', 'oauthdb_unix(timestamptz)',
                           'users_audit()', 'user_providers_audit()',
                           'oauthdb_purge(bigint)'] LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
  END LOOP;
END
$$;

-- Nothing PUBLIC: the triggers call these as the writer of the row.
REVOKE ALL ON FUNCTION oauthdb_audit_replaying(oid), oauthdb_unix(timestamptz),
  users_audit(), user_providers_audit(), oauthdb_purge(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oauthdb_audit_replaying(oid), oauthdb_unix(timestamptz),
  users_audit(), user_providers_audit() TO oauthdb_app;

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

-- search_path pinned per function to this schema, then pg_temp (last, so a
-- temporary table cannot stand in for auth_audit_log or users).
DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY['oauthdb_audit_replaying(oid)', 'oauthdb_unix(timestamptz)',
                           'users_audit()', 'user_providers_audit()'] LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
  END LOOP;
END
$$;

-- Nothing PUBLIC: the triggers call these as the writer of the row.
REVOKE ALL ON FUNCTION oauthdb_audit_replaying(oid), oauthdb_unix(timestamptz),
  users_audit(), user_providers_audit() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oauthdb_audit_replaying(oid), oauthdb_unix(timestamptz),
  users_audit(), user_providers_audit() TO oauthdb_app;

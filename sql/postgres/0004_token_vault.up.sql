-- oauthdb migration 0004 (PostgreSQL 15): oauth_token_vault, oauth_tokens
-- with its three tokens in plaintext, readable and writable as the SQLite
-- extension's virtual table is (docs/SQL.md "Token vault", docs/POSTGRES.md
-- "The vault"): the same name and columns, the same associated data
-- ('oauth_tokens.<column>:<id>'), the same errors where the engines allow,
-- the same token_refresh_log row and audit events (token.stored,
-- token.refreshed, token.revoked, token.deleted).
--
--   INSERT INTO oauth_token_vault(id, user_provider_id, token_type, access_token,
--                                 refresh_token, scope, expires_at)
--   VALUES (uuid7(), $1, 'Bearer', $2, $3, $4, now() + interval '3599 s') RETURNING id;
--   SELECT access_token FROM oauth_token_vault WHERE id = $1;
--   UPDATE oauth_token_vault SET access_token = $2,
--          refresh_token = coalesce($3, refresh_token), expires_at = $4
--    WHERE id = $1;                                  -- writes token_refresh_log
--
-- Why a migration and not the extension.  A view must name tables that
-- exist, and what CREATE EXTENSION creates is an extension member that
-- pg_dump does not dump: after a pg_restore, CREATE EXTENSION runs before
-- the tables exist.  So the view, its triggers and the plpgsql below belong
-- to the schema, like the tables (pg_dump dumps them, pg_restore brings them
-- back), and call the extension's C functions (ext/postgres/vault.c:
-- oauthdb_vault_open, _seal, _old_fingerprint, _raise) only at run time.
-- This file therefore applies with or without the extension; the vault
-- works once CREATE EXTENSION oauthdb has run in this same schema, and
-- until then says so (oauth_token_vault_ready).
--
-- search_path.  Every function here sees plaintext or writes tokens, so each
-- that runs statements has search_path pinned to this schema, then pg_temp
-- (last: a temporary table or function cannot stand in for ours), and the
-- opener names this schema in its one call; the view and triggers name
-- their tables and functions by OID.  A caller's search_path, or objects in
-- a schema earlier on it, never redirect a call.
--
-- Reads open a token only when its column is asked for, and only for the
-- rows the query returns: the view is a plain projection of oauth_tokens, so
-- the planner pushes `WHERE id = $1` down to the primary key and evaluates
-- the opener on that row alone.
--
-- UPDATE and DELETE.  The executor builds each old row of the view before
-- the INSTEAD OF trigger sees it; opening every token there would need the
-- keyring for `SET is_active = false`, and a token that no longer opens
-- could not be replaced.  So a statement trigger sets oauthdb.vault_unopened
-- (transaction-local, a fresh random value per statement) for the
-- statement's span, during which the view returns a placeholder
-- '<value>:<column>' for each stored token instead of opening it (in a
-- DELETE, whose RETURNING shows the old row, NULL).  A token
-- column the UPDATE does not assign arrives in NEW as that same
-- placeholder, and is kept as stored without being opened or resealed, as
-- in SQLite; one computed from it (access_token || 'x') is refused.

-- Is the extension installed where the tables are?  Called once per
-- statement (the view's WHERE clause has no column, so the planner makes
-- it a one-time filter) and by each write.
CREATE FUNCTION oauth_token_vault_ready() RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
  ext_schema name;
BEGIN
  SELECT n.nspname INTO ext_schema
    FROM pg_catalog.pg_extension AS e JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
   WHERE e.extname = 'oauthdb';
  IF ext_schema IS NULL THEN
    RAISE EXCEPTION 'oauth_token_vault: the oauthdb extension is not installed in this database; a superuser runs CREATE EXTENSION oauthdb SCHEMA %, the schema of the tables', pg_catalog.quote_ident(pg_catalog.current_schema())
      USING ERRCODE = 'object_not_in_prerequisite_state';
  ELSIF ext_schema <> pg_catalog.current_schema() THEN
    RAISE EXCEPTION 'oauth_token_vault: the oauthdb extension is in schema %, not in %, the schema of the tables; a superuser moves it: DROP EXTENSION oauthdb; CREATE EXTENSION oauthdb SCHEMA %',
      pg_catalog.quote_ident(ext_schema), pg_catalog.quote_ident(pg_catalog.current_schema()),
      pg_catalog.quote_ident(pg_catalog.current_schema())
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  RETURN true;
END
$$;

-- The view's opener: the extension's oauthdb_vault_open, which names the row
-- and column when a value does not open, and returns the placeholder while
-- an UPDATE or DELETE of the vault runs.  Called once per row and token
-- read, so it is pinned by naming the schema in its one call (written in
-- here now) rather than by a SET search_path, which costs a configuration
-- change per call (50,000 reads: 115 ms against 78 ms).  PARALLEL UNSAFE:
-- the extension's library must be loaded before a parallel query starts,
-- and nothing here loads it until the first row is read.
DO $$
BEGIN
  EXECUTE format($f$
    CREATE FUNCTION oauth_token_vault_open(sealed bytea, column_name text, id uuid) RETURNS text
    LANGUAGE plpgsql STABLE STRICT PARALLEL UNSAFE
    AS $body$
    BEGIN
      RETURN %I.oauthdb_vault_open(sealed, column_name, id);
    END
    $body$ $f$, current_schema());
END
$$;

-- An auth_audit_log row for a token of link $3: the link's user and
-- provider, details as SQLite's vault writes them (expires_at in Unix
-- seconds); one row even when the link is gone.
CREATE FUNCTION oauth_token_vault_audit(text, uuid, uuid, timestamptz) RETURNS void
LANGUAGE sql VOLATILE
AS $$
  INSERT INTO auth_audit_log (user_id, action, provider, details)
  SELECT p.user_id, $1, p.provider,
         jsonb_build_object('token_id', $2, 'user_provider_id', $3,
                            'provider', p.provider, 'expires_at', oauthdb_unix($4))
    FROM (SELECT) AS one LEFT JOIN user_providers AS p ON p.id = $3
$$;

CREATE VIEW oauth_token_vault WITH (security_invoker = true) AS
  SELECT t.id, t.user_provider_id, t.credential_kind, t.token_type,
         oauth_token_vault_open(t.access_token, 'access_token', t.id) AS access_token,
         oauth_token_vault_open(t.refresh_token, 'refresh_token', t.id) AS refresh_token,
         oauth_token_vault_open(t.id_token, 'id_token', t.id) AS id_token,
         t.scope, t.expires_at, t.last_used, t.metadata, t.is_active, t.revoked_at,
         t.created_at, t.updated_at
    FROM oauth_tokens AS t
   WHERE oauth_token_vault_ready();

-- Sets and clears oauthdb.vault_unopened around an UPDATE or DELETE.
CREATE FUNCTION oauth_token_vault_statement() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  IF TG_WHEN = 'BEFORE' AND TG_OP = 'DELETE' THEN
    PERFORM pg_catalog.set_config('oauthdb.vault_unopened', 'delete', true);
  ELSIF TG_WHEN = 'BEFORE' THEN
    PERFORM pg_catalog.set_config('oauthdb.vault_unopened',
                                  'oauthdb-unopened:' || pg_catalog.gen_random_uuid(), true);
  ELSE
    PERFORM pg_catalog.set_config('oauthdb.vault_unopened', '', true);
  END IF;
  RETURN NULL;
END
$$;

-- INSTEAD OF INSERT, UPDATE and DELETE.  Every error leaves through
-- oauthdb_vault_raise (errhidestmt): PostgreSQL would otherwise log the
-- failed statement, and with it a plaintext literal.
CREATE FUNCTION oauth_token_vault_write() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
  o oauth_tokens%ROWTYPE;   -- the row as stored before
  n oauth_tokens%ROWTYPE;   -- the row as stored after
  what text := 'write';
  row_id uuid;
  set_access boolean := false;
  set_refresh boolean := false;
  set_id_token boolean := false;
  fp_access bytea;
  fp_refresh bytea;
  sealed_access bytea;
  sealed_refresh bytea;
  sealed_id_token bytea;
  changed boolean := false;
  computed text;
  err_state text;
  err_message text;
BEGIN
  PERFORM oauth_token_vault_ready();
  BEGIN
    IF TG_OP = 'INSERT' THEN
      row_id := NEW.id;
      IF NEW.id IS NULL THEN
        -- As in SQLite, the caller makes the id, so that the statement that
        -- stores the token names it (RETURNING id).
        PERFORM oauthdb_vault_raise('23502', 'oauth_token_vault: id is required; pass uuid7(): INSERT INTO oauth_token_vault(id, user_provider_id, ...) VALUES (uuid7(), ...) RETURNING id');
      END IF;
      computed := CASE WHEN position('oauthdb-unopened:' IN NEW.access_token) > 0 THEN 'access_token'
                       WHEN position('oauthdb-unopened:' IN NEW.refresh_token) > 0 THEN 'refresh_token'
                       WHEN position('oauthdb-unopened:' IN NEW.id_token) > 0 THEN 'id_token' END;
      IF computed IS NOT NULL THEN
        PERFORM oauthdb_vault_raise('22023', format('oauth_token_vault: %s of row %s holds a placeholder of a token an UPDATE or DELETE of the vault did not open; set it from a value', computed, row_id));
      END IF;
      what := 'insert';
      INSERT INTO oauth_tokens (id, user_provider_id, credential_kind, token_type,
                                access_token, refresh_token, id_token, scope, expires_at,
                                last_used, metadata, is_active, revoked_at, created_at, updated_at)
      VALUES (NEW.id, NEW.user_provider_id, coalesce(NEW.credential_kind, 'oauth2'), NEW.token_type,
              oauthdb_vault_seal(NEW.access_token, 'access_token', NEW.id),
              oauthdb_vault_seal(NEW.refresh_token, 'refresh_token', NEW.id),
              oauthdb_vault_seal(NEW.id_token, 'id_token', NEW.id),
              coalesce(NEW.scope, ''), NEW.expires_at, NEW.last_used,
              coalesce(NEW.metadata, '{}'), coalesce(NEW.is_active, true), NEW.revoked_at,
              coalesce(NEW.created_at, now()), coalesce(NEW.updated_at, now()))
      RETURNING * INTO n;
      what := 'audit';
      PERFORM oauth_token_vault_audit('token.stored', n.id, n.user_provider_id, n.expires_at);
      -- RETURNING shows the row as stored, tokens as given.
      NEW.credential_kind := n.credential_kind; NEW.scope := n.scope;
      NEW.metadata := n.metadata; NEW.is_active := n.is_active;
      NEW.created_at := n.created_at; NEW.updated_at := n.updated_at;
      RETURN NEW;
    END IF;

    row_id := OLD.id;
    SELECT * INTO o FROM oauth_tokens WHERE id = OLD.id FOR UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;  -- deleted meanwhile: nothing to update or delete
    END IF;

    IF TG_OP = 'DELETE' THEN
      what := 'delete';
      DELETE FROM oauth_tokens WHERE id = o.id;
      what := 'audit';
      PERFORM oauth_token_vault_audit('token.deleted', o.id, o.user_provider_id, o.expires_at);
      RETURN OLD;  -- its tokens are NULL: a DELETE opens none
    END IF;

    -- UPDATE.  The tokens are sealed to the id: a new id would leave them
    -- unopenable.
    IF NEW.id IS DISTINCT FROM OLD.id THEN
      PERFORM oauthdb_vault_raise('23000', format('oauth_token_vault: cannot change the id of row %s (its tokens are sealed to it); insert a new row instead', row_id));
    END IF;
    -- A token column is assigned when NEW differs from OLD: unassigned, it
    -- is OLD's placeholder (or NULL for a NULL token).
    set_access := NEW.access_token IS DISTINCT FROM OLD.access_token;
    set_refresh := NEW.refresh_token IS DISTINCT FROM OLD.refresh_token;
    set_id_token := NEW.id_token IS DISTINCT FROM OLD.id_token;
    computed := CASE WHEN set_access AND position('oauthdb-unopened:' IN NEW.access_token) > 0 THEN 'access_token'
                     WHEN set_refresh AND position('oauthdb-unopened:' IN NEW.refresh_token) > 0 THEN 'refresh_token'
                     WHEN set_id_token AND position('oauthdb-unopened:' IN NEW.id_token) > 0 THEN 'id_token' END;
    IF computed IS NOT NULL THEN
      PERFORM oauthdb_vault_raise('22023', format('oauth_token_vault: %s of row %s is computed from a stored token, which an UPDATE of the vault does not open in PostgreSQL; set it from a value (SET %s = $1)', computed, row_id, computed));
    END IF;
    -- Sealed first, as in SQLite: a seal's error comes before any other.
    IF set_access THEN sealed_access := oauthdb_vault_seal(NEW.access_token, 'access_token', o.id); END IF;
    IF set_refresh THEN sealed_refresh := oauthdb_vault_seal(NEW.refresh_token, 'refresh_token', o.id); END IF;
    IF set_id_token THEN sealed_id_token := oauthdb_vault_seal(NEW.id_token, 'id_token', o.id); END IF;
    IF set_access OR set_refresh THEN
      -- The log fingerprints the access token, the one every refresh
      -- renews, and the refresh token stored until now: the one the
      -- refresh used.  NULL when a stored value does not open (then it
      -- counts as changed: replacing it may be the repair).
      fp_access := oauthdb_vault_old_fingerprint(o.access_token, 'access_token', o.id);
      fp_refresh := oauthdb_vault_old_fingerprint(o.refresh_token, 'refresh_token', o.id);
      changed := (set_access AND CASE WHEN o.access_token IS NULL THEN NEW.access_token IS NOT NULL
                                      WHEN fp_access IS NULL OR NEW.access_token IS NULL THEN true
                                      ELSE fp_access <> token_fingerprint(NEW.access_token) END)
              OR (set_refresh AND CASE WHEN o.refresh_token IS NULL THEN NEW.refresh_token IS NOT NULL
                                       WHEN fp_refresh IS NULL OR NEW.refresh_token IS NULL THEN true
                                       ELSE fp_refresh <> token_fingerprint(NEW.refresh_token) END);
    END IF;
    what := 'update';
    -- Columns the UPDATE did not assign keep what is stored now (another
    -- transaction may have changed them since the statement's snapshot).
    UPDATE oauth_tokens SET
      user_provider_id = CASE WHEN NEW.user_provider_id IS NOT DISTINCT FROM OLD.user_provider_id
                              THEN o.user_provider_id ELSE NEW.user_provider_id END,
      credential_kind = CASE WHEN NEW.credential_kind IS NOT DISTINCT FROM OLD.credential_kind
                             THEN o.credential_kind ELSE NEW.credential_kind END,
      token_type = CASE WHEN NEW.token_type IS NOT DISTINCT FROM OLD.token_type
                        THEN o.token_type ELSE NEW.token_type END,
      access_token = CASE WHEN set_access THEN sealed_access ELSE o.access_token END,
      refresh_token = CASE WHEN set_refresh THEN sealed_refresh ELSE o.refresh_token END,
      id_token = CASE WHEN set_id_token THEN sealed_id_token ELSE o.id_token END,
      scope = CASE WHEN NEW.scope IS NOT DISTINCT FROM OLD.scope THEN o.scope ELSE NEW.scope END,
      expires_at = CASE WHEN NEW.expires_at IS NOT DISTINCT FROM OLD.expires_at
                        THEN o.expires_at ELSE NEW.expires_at END,
      last_used = CASE WHEN NEW.last_used IS NOT DISTINCT FROM OLD.last_used
                       THEN o.last_used ELSE NEW.last_used END,
      metadata = CASE WHEN NEW.metadata IS NOT DISTINCT FROM OLD.metadata
                      THEN o.metadata ELSE NEW.metadata END,
      is_active = CASE WHEN NEW.is_active IS NOT DISTINCT FROM OLD.is_active
                       THEN o.is_active ELSE NEW.is_active END,
      revoked_at = CASE WHEN NEW.revoked_at IS NOT DISTINCT FROM OLD.revoked_at
                        THEN o.revoked_at ELSE NEW.revoked_at END,
      created_at = CASE WHEN NEW.created_at IS NOT DISTINCT FROM OLD.created_at
                        THEN o.created_at ELSE NEW.created_at END,
      -- now() unless the statement sets it, as SQLite's unixepoch()
      updated_at = CASE WHEN NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at
                        THEN now() ELSE NEW.updated_at END
    WHERE id = o.id
    RETURNING * INTO n;
    IF changed THEN
      what := 'log the refresh of';
      INSERT INTO token_refresh_log (id, token_id, old_token_fingerprint, new_token_fingerprint,
                                     refresh_used_fingerprint, old_expires_at, new_expires_at, success)
      VALUES (uuid7(), o.id, fp_access,
              CASE WHEN set_access THEN token_fingerprint(NEW.access_token) ELSE fp_access END,
              fp_refresh, o.expires_at, n.expires_at, true);
      what := 'audit';
      PERFORM oauth_token_vault_audit('token.refreshed', n.id, n.user_provider_id, n.expires_at);
    END IF;
    IF o.revoked_at IS NULL AND n.revoked_at IS NOT NULL THEN
      what := 'audit';
      PERFORM oauth_token_vault_audit('token.revoked', n.id, n.user_provider_id, n.expires_at);
    END IF;
    -- RETURNING shows the row as stored, the tokens the UPDATE assigned as
    -- given, and NULL for the tokens it did not (never a placeholder).
    NEW.user_provider_id := n.user_provider_id; NEW.credential_kind := n.credential_kind;
    NEW.token_type := n.token_type; NEW.scope := n.scope; NEW.expires_at := n.expires_at;
    NEW.last_used := n.last_used; NEW.metadata := n.metadata; NEW.is_active := n.is_active;
    NEW.revoked_at := n.revoked_at; NEW.created_at := n.created_at; NEW.updated_at := n.updated_at;
    IF NOT set_access THEN NEW.access_token := NULL; END IF;
    IF NOT set_refresh THEN NEW.refresh_token := NULL; END IF;
    IF NOT set_id_token THEN NEW.id_token := NULL; END IF;
    RETURN NEW;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
    IF err_message NOT LIKE 'oauth_token_vault: %' THEN
      err_message := CASE what WHEN 'audit' THEN format('oauth_token_vault: cannot audit row %s: %s', row_id, err_message)
                     ELSE format('oauth_token_vault: cannot %s row %s: %s', what, row_id, err_message) END;
    END IF;
    PERFORM oauthdb_vault_raise(err_state, err_message);
    RETURN NULL;
  END;
END
$$;

CREATE TRIGGER oauth_token_vault_write
  INSTEAD OF INSERT OR UPDATE OR DELETE ON oauth_token_vault
  FOR EACH ROW EXECUTE FUNCTION oauth_token_vault_write();
CREATE TRIGGER oauth_token_vault_unopened
  BEFORE UPDATE OR DELETE ON oauth_token_vault
  FOR EACH STATEMENT EXECUTE FUNCTION oauth_token_vault_statement();
CREATE TRIGGER oauth_token_vault_reopened
  AFTER UPDATE OR DELETE ON oauth_token_vault
  FOR EACH STATEMENT EXECUTE FUNCTION oauth_token_vault_statement();

-- search_path pinned per function to this schema, then pg_temp (the
-- opener names its schema instead, above).
DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY['oauth_token_vault_ready()',
                           'oauth_token_vault_audit(text, uuid, uuid, timestamptz)',
                           'oauth_token_vault_statement()', 'oauth_token_vault_write()'] LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
  END LOOP;
END
$$;

-- Privileges: the application only, as the extension's token_open.  The
-- view runs as its caller (security_invoker): oauthdb_readonly and
-- oauthdb_auditor, who may not read the sealed columns or call the
-- extension's openers, get nothing here.
REVOKE ALL ON oauth_token_vault FROM PUBLIC;
REVOKE ALL ON FUNCTION oauth_token_vault_ready(), oauth_token_vault_open(bytea, text, uuid),
  oauth_token_vault_audit(text, uuid, uuid, timestamptz), oauth_token_vault_statement(),
  oauth_token_vault_write() FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON oauth_token_vault TO oauthdb_app;
GRANT EXECUTE ON FUNCTION oauth_token_vault_ready(), oauth_token_vault_open(bytea, text, uuid),
  oauth_token_vault_audit(text, uuid, uuid, timestamptz), oauth_token_vault_statement(),
  oauth_token_vault_write() TO oauthdb_app;

-- oauthdb 0.1.0 for PostgreSQL: CREATE EXTENSION oauthdb (docs/POSTGRES.md).
\echo Use "CREATE EXTENSION oauthdb" to load this file. \quit

-- Every function is C over the shared core: it looks nothing up by name at
-- run time, so search_path cannot redirect it; everything created here is
-- schema-qualified with @extschema@ for the same reason.
--
-- Volatility: sealing and uuid7 draw random bytes (VOLATILE); opening,
-- fingerprints and the key list depend on the keyring file, which can
-- change between statements (STABLE, never IMMUTABLE); token_key_id reads a
-- header and scope_has compares strings (IMMUTABLE). password_verify is
-- STABLE, not IMMUTABLE, although it is pure: the planner must not run
-- Argon2 (64 MiB, ~0.1 s) while folding constants.

CREATE FUNCTION @extschema@.token_seal(plaintext text, ad text DEFAULT NULL)
  RETURNS bytea AS 'MODULE_PATHNAME', 'token_seal_text'
  LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_seal(plaintext bytea, ad text DEFAULT NULL)
  RETURNS bytea AS 'MODULE_PATHNAME', 'token_seal_bytea'
  LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_open(sealed bytea, ad text DEFAULT NULL)
  RETURNS text AS 'MODULE_PATHNAME', 'token_open_text'
  LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_open_bytea(sealed bytea, ad text DEFAULT NULL)
  RETURNS bytea AS 'MODULE_PATHNAME', 'token_open_bytea'
  LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_reseal(sealed bytea, ad text DEFAULT NULL)
  RETURNS bytea AS 'MODULE_PATHNAME', 'token_reseal'
  LANGUAGE C VOLATILE PARALLEL SAFE;
-- Associated data as bytea too, as SQLite takes a BLOB: no defaults here, so
-- a call with one argument or an untyped literal picks the text forms.
CREATE FUNCTION @extschema@.token_seal(plaintext text, ad bytea)
  RETURNS bytea AS 'MODULE_PATHNAME', 'token_seal_text'
  LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_seal(plaintext bytea, ad bytea)
  RETURNS bytea AS 'MODULE_PATHNAME', 'token_seal_bytea'
  LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_open(sealed bytea, ad bytea)
  RETURNS text AS 'MODULE_PATHNAME', 'token_open_text'
  LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_open_bytea(sealed bytea, ad bytea)
  RETURNS bytea AS 'MODULE_PATHNAME', 'token_open_bytea'
  LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_reseal(sealed bytea, ad bytea)
  RETURNS bytea AS 'MODULE_PATHNAME', 'token_reseal'
  LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_key_id(sealed bytea)
  RETURNS text AS 'MODULE_PATHNAME', 'token_key_id'
  LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_ad(table_name text, column_name text, id text)
  RETURNS text AS 'MODULE_PATHNAME', 'token_ad'
  LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_fingerprint(token text)
  RETURNS bytea AS 'MODULE_PATHNAME', 'token_fingerprint'
  LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_fingerprint(token bytea)
  RETURNS bytea AS 'MODULE_PATHNAME', 'token_fingerprint'
  LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.password_hash(password text)
  RETURNS text AS 'MODULE_PATHNAME', 'password_hash'
  LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.password_verify(hash text, password text)
  RETURNS boolean AS 'MODULE_PATHNAME', 'password_verify'
  LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.uuid7()
  RETURNS uuid AS 'MODULE_PATHNAME', 'uuid7'
  LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE FUNCTION @extschema@.scope_has(scope text, wanted text)
  RETURNS boolean AS 'MODULE_PATHNAME', 'scope_has_pg'
  LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.oauthdb_keys(OUT key_id text, OUT status text,
                                         OUT is_primary boolean)
  RETURNS SETOF record AS 'MODULE_PATHNAME', 'oauthdb_keys'
  LANGUAGE C STABLE PARALLEL SAFE;

-- Sessions (session.c; docs/POSTGRES.md "Sessions"): over the tables of
-- this extension's schema, as the caller (oauthdb_app's own privileges on
-- user_sessions and auth_audit_log). session_valid only reads: STABLE.
CREATE FUNCTION @extschema@.session_create(user_id uuid, ttl bigint DEFAULT NULL,
                                           ip_address text DEFAULT NULL,
                                           user_agent text DEFAULT NULL)
  RETURNS text AS 'MODULE_PATHNAME', 'session_create_pg'
  LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.session_valid(token text)
  RETURNS uuid AS 'MODULE_PATHNAME', 'session_valid_pg'
  LANGUAGE C STABLE;
CREATE FUNCTION @extschema@.session_touch(token text)
  RETURNS integer AS 'MODULE_PATHNAME', 'session_touch_pg'
  LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.session_revoke(token text, reason text DEFAULT NULL)
  RETURNS integer AS 'MODULE_PATHNAME', 'session_revoke_pg'
  LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.session_revoke_id(session_id uuid, reason text DEFAULT NULL)
  RETURNS integer AS 'MODULE_PATHNAME', 'session_revoke_id_pg'
  LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.session_revoke_user(user_id uuid, reason text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'session_revoke_user_pg'
  LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.session_rotate(token text)
  RETURNS text AS 'MODULE_PATHNAME', 'session_rotate_pg'
  LANGUAGE C VOLATILE;

-- SELECT * FROM oauthdb_keys, as in SQLite. security_invoker: the caller
-- needs EXECUTE on the function, not the view owner's.
CREATE VIEW @extschema@.oauthdb_keys WITH (security_invoker = true) AS
  SELECT key_id, status, is_primary FROM @extschema@.oauthdb_keys();

-- Privileges. Nothing is PUBLIC. The roles are the ones migration
-- sql/postgres/0001 creates; whichever of the two runs first creates them
-- (NOLOGIN group roles, created only when missing), so CREATE EXTENSION
-- before or after the migrations gives the same grants.
REVOKE ALL ON FUNCTION
  @extschema@.token_seal(text, text), @extschema@.token_seal(bytea, text),
  @extschema@.token_seal(text, bytea), @extschema@.token_seal(bytea, bytea),
  @extschema@.token_open(bytea, text), @extschema@.token_open(bytea, bytea),
  @extschema@.token_open_bytea(bytea, text), @extschema@.token_open_bytea(bytea, bytea),
  @extschema@.token_reseal(bytea, text), @extschema@.token_reseal(bytea, bytea),
  @extschema@.token_key_id(bytea), @extschema@.token_ad(text, text, text),
  @extschema@.token_fingerprint(text), @extschema@.token_fingerprint(bytea),
  @extschema@.password_hash(text), @extschema@.password_verify(text, text),
  @extschema@.uuid7(), @extschema@.scope_has(text, text),
  @extschema@.session_create(uuid, bigint, text, text), @extschema@.session_valid(text),
  @extschema@.session_touch(text), @extschema@.session_revoke(text, text),
  @extschema@.session_revoke_id(uuid, text), @extschema@.session_revoke_user(uuid, text),
  @extschema@.session_rotate(text),
  @extschema@.oauthdb_keys()
  FROM PUBLIC;
REVOKE ALL ON @extschema@.oauthdb_keys FROM PUBLIC;

DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['oauthdb_app', 'oauthdb_readonly', 'oauthdb_auditor'] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
      EXCEPTION WHEN duplicate_object THEN
        NULL;
      END;
    END IF;
  END LOOP;
END
$$;

GRANT USAGE ON SCHEMA @extschema@ TO oauthdb_app, oauthdb_readonly, oauthdb_auditor;

-- oauthdb_app: the application. Seals, opens, reseals, hashes and checks
-- passwords, and keeps sessions.
GRANT EXECUTE ON FUNCTION
  @extschema@.token_seal(text, text), @extschema@.token_seal(bytea, text),
  @extschema@.token_seal(text, bytea), @extschema@.token_seal(bytea, bytea),
  @extschema@.token_open(bytea, text), @extschema@.token_open(bytea, bytea),
  @extschema@.token_open_bytea(bytea, text), @extschema@.token_open_bytea(bytea, bytea),
  @extschema@.token_reseal(bytea, text), @extschema@.token_reseal(bytea, bytea),
  @extschema@.token_key_id(bytea), @extschema@.token_ad(text, text, text),
  @extschema@.token_fingerprint(text), @extschema@.token_fingerprint(bytea),
  @extschema@.password_hash(text), @extschema@.password_verify(text, text),
  @extschema@.uuid7(), @extschema@.scope_has(text, text),
  @extschema@.session_create(uuid, bigint, text, text), @extschema@.session_valid(text),
  @extschema@.session_touch(text), @extschema@.session_revoke(text, text),
  @extschema@.session_revoke_id(uuid, text), @extschema@.session_revoke_user(uuid, text),
  @extschema@.session_rotate(text),
  @extschema@.oauthdb_keys()
  TO oauthdb_app;
GRANT SELECT ON @extschema@.oauthdb_keys TO oauthdb_app;

-- oauthdb_readonly and oauthdb_auditor: no secret in, no secret out. They
-- may ask which key a value is under and test scopes, never open, seal or
-- fingerprint (a fingerprint oracle would let them test guesses).
GRANT EXECUTE ON FUNCTION
  @extschema@.token_key_id(bytea), @extschema@.token_ad(text, text, text), @extschema@.scope_has(text, text)
  TO oauthdb_readonly, oauthdb_auditor;

-- ===== oauth_token_vault (vault.c; docs/POSTGRES.md "The vault") ==-- The C half of the vault. The view oauth_token_vault, its INSTEAD OF
-- triggers and their plpgsql come with migration 0004
-- (sql/postgres/0004_token_vault.up.sql), next to the tables, and call
-- these at run time: a view must name existing tables, and objects made
-- here are extension members that pg_dump does not dump. Granted like
-- token_open: oauthdb_app only.
CREATE FUNCTION @extschema@.oauthdb_vault_open(sealed bytea, column_name text, id uuid)
  RETURNS text AS 'MODULE_PATHNAME', 'oauthdb_vault_open'
  LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.oauthdb_vault_seal(plaintext text, column_name text, id uuid)
  RETURNS bytea AS 'MODULE_PATHNAME', 'oauthdb_vault_seal'
  LANGUAGE C VOLATILE PARALLEL SAFE;
CREATE FUNCTION @extschema@.oauthdb_vault_old_fingerprint(sealed bytea, column_name text, id uuid)
  RETURNS bytea AS 'MODULE_PATHNAME', 'oauthdb_vault_old_fingerprint'
  LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.oauthdb_vault_raise(sqlstate text, message text)
  RETURNS void AS 'MODULE_PATHNAME', 'oauthdb_vault_raise'
  LANGUAGE C VOLATILE PARALLEL SAFE;
REVOKE ALL ON FUNCTION
  @extschema@.oauthdb_vault_open(bytea, text, uuid), @extschema@.oauthdb_vault_seal(text, text, uuid),
  @extschema@.oauthdb_vault_old_fingerprint(bytea, text, uuid), @extschema@.oauthdb_vault_raise(text, text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  @extschema@.oauthdb_vault_open(bytea, text, uuid), @extschema@.oauthdb_vault_seal(text, text, uuid),
  @extschema@.oauthdb_vault_old_fingerprint(bytea, text, uuid), @extschema@.oauthdb_vault_raise(text, text)
  TO oauthdb_app;
-- ===== end of oauth_token_vault ==========================================
-- ===========================================================================
-- Refresh scheduling and refresh workers (expiring.c, refresh.c; docs/SQL.md
-- "Tokens due for refresh" and "Refresh workers", docs/POSTGRES.md "Refresh
-- workers"): SQLite's tokens_expiring and its three claim functions, over
-- the tables of this extension's schema, as the caller. tokens_expiring
-- only reads (STABLE); the claims write (VOLATILE). oauthdb_app only: the
-- due list's WHERE clause reads refresh_token, a column oauthdb_readonly
-- may not read, and a claim or its result is a write of the application.
-- ===========================================================================
CREATE FUNCTION @extschema@.tokens_expiring(within_seconds bigint)
  RETURNS TABLE (id uuid, user_provider_id uuid, provider text,
                 expires_at timestamptz, seconds_left bigint)
  AS 'MODULE_PATHNAME', 'tokens_expiring_pg'
  LANGUAGE C STABLE ROWS 100;
CREATE FUNCTION @extschema@.token_claim_refresh(token_id uuid, within_seconds bigint,
                                                lease_seconds bigint,
                                                worker text DEFAULT NULL)
  RETURNS text AS 'MODULE_PATHNAME', 'token_claim_refresh_pg'
  LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.token_refresh_done(claim text, access_token text,
                                               expires_at timestamptz,
                                               refresh_token text DEFAULT NULL)
  RETURNS integer AS 'MODULE_PATHNAME', 'token_refresh_done_pg'
  LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.token_refresh_failed(claim text, error_message text,
                                                 invalid_grant integer DEFAULT 0)
  RETURNS integer AS 'MODULE_PATHNAME', 'token_refresh_failed_pg'
  LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION
  @extschema@.tokens_expiring(bigint),
  @extschema@.token_claim_refresh(uuid, bigint, bigint, text),
  @extschema@.token_refresh_done(text, text, timestamptz, text),
  @extschema@.token_refresh_failed(text, text, integer)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  @extschema@.tokens_expiring(bigint),
  @extschema@.token_claim_refresh(uuid, bigint, bigint, text),
  @extschema@.token_refresh_done(text, text, timestamptz, text),
  @extschema@.token_refresh_failed(text, text, integer)
  TO oauthdb_app;
-- ===========================================================================
-- End of refresh scheduling and refresh workers.
-- ===========================================================================
-- ---- Functions SQLite has under the same names (password.c, uuid7.c) ----
-- password_needs_rehash and uuid7_timestamp are pure and reveal nothing
-- (SQLite: DETERMINISTIC, INNOCUOUS). token_ad also takes a uuid id, as
-- every id column here is one (the same C function; tokens.c).
CREATE FUNCTION @extschema@.password_needs_rehash(hash text)
  RETURNS boolean AS 'MODULE_PATHNAME', 'password_needs_rehash'
  LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.uuid7_timestamp(id uuid)
  RETURNS bigint AS 'MODULE_PATHNAME', 'uuid7_timestamp'
  LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.token_ad(table_name text, column_name text, id uuid)
  RETURNS text AS 'MODULE_PATHNAME', 'token_ad'
  LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION
  @extschema@.password_needs_rehash(text), @extschema@.uuid7_timestamp(uuid),
  @extschema@.token_ad(text, text, uuid)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  @extschema@.password_needs_rehash(text), @extschema@.uuid7_timestamp(uuid),
  @extschema@.token_ad(text, text, uuid)
  TO oauthdb_app;
GRANT EXECUTE ON FUNCTION
  @extschema@.uuid7_timestamp(uuid), @extschema@.token_ad(text, text, uuid)
  TO oauthdb_readonly, oauthdb_auditor;

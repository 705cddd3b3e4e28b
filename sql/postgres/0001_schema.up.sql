-- oauthdb migration 0001 (PostgreSQL 15): the nine tables of
-- sql/sqlite/0001_schema.up.sql in native types, their indexes, the
-- append-only triggers of auth_audit_log and the three roles.
-- docs/SCHEMA.md explains every constraint and the type mapping.
--
-- Plain SQL: the migration runner wraps this file in one transaction and
-- records it in schema_migrations.  Every object is created in the current
-- schema (the first schema of search_path); no name is schema-qualified.
-- Creating the roles needs CREATEROLE the first time (roles are cluster-wide);
-- when they already exist the file only grants to them.
--
-- Type mapping: TEXT UUID -> uuid, INTEGER unix seconds -> timestamptz,
-- INTEGER 0/1 -> boolean, JSON TEXT -> jsonb, BLOB -> bytea.  Constraint
-- names match the SQLite side wherever the rule exists on both sides.

-- RFC 9562 UUIDv7: 48-bit Unix milliseconds, version 7, 74 random bits.
-- gen_random_uuid() provides the random bits and the variant; the first six
-- bytes are replaced by the time and the version nibble 4 (0100) becomes
-- 7 (0111) by setting bits 52 and 53.  Used as the DEFAULT of every id here;
-- the exporter always supplies ids from SQLite.
CREATE FUNCTION oauthdb_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
  SELECT encode(
           set_bit(set_bit(
             overlay(uuid_send(gen_random_uuid())
                     PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                     FROM 1 FOR 6),
             52, 1), 53, 1),
           'hex')::uuid
$$;

-- oauthdb_audit_id(): the default id of auth_audit_log, made so that rows
-- sort in the order they were written under the documented ORDER BY
-- timestamp, id (the SQLite rule, docs/SCHEMA.md "Audit order"): a UUIDv7
-- whose 48-bit millisecond is clock_timestamp()'s, whose 12 bits after the
-- version are 0, and whose last 62 bits are the next value of the sequence
-- auth_audit_log_order, with the variant bits 10 on top.  Within one
-- millisecond the sequence orders the ids; nextval() never goes back, even
-- across sessions.  auth_audit_log.timestamp defaults to clock_timestamp()
-- too (when the row was written, not when its transaction began).  Rows the
-- exporter copies keep SQLite's ids and timestamps, ordered by the same rule.
CREATE SEQUENCE auth_audit_log_order AS bigint;

CREATE FUNCTION oauthdb_audit_id() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
  SELECT encode(
           substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
           || '\x7000'::bytea
           || int8send(nextval('auth_audit_log_order') | (-9223372036854775807 - 1)),
           'hex')::uuid
$$;

CREATE TABLE users (
  id              uuid        NOT NULL DEFAULT oauthdb_uuid7() PRIMARY KEY,
  email           text        NOT NULL
                  CONSTRAINT users_email_shape CHECK (email LIKE '_%@_%' AND email = trim(email)),
  display_name    text,
  password_hash   text
                  CONSTRAINT users_password_hash_argon2id
                  CHECK (password_hash IS NULL OR left(password_hash, 10) = '$argon2id$'),
  is_active       boolean     NOT NULL DEFAULT true,
  email_verified  boolean     NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  last_login      timestamptz,
  deactivated_at  timestamptz,
  CONSTRAINT users_deactivated_inactive CHECK (deactivated_at IS NULL OR NOT is_active)
);

CREATE TABLE user_preferences (
  id              uuid        NOT NULL DEFAULT oauthdb_uuid7() PRIMARY KEY,
  user_id         uuid        NOT NULL UNIQUE
                  REFERENCES users (id) ON DELETE CASCADE,
  timezone        text        NOT NULL DEFAULT 'UTC'
                  CONSTRAINT user_preferences_timezone_nonempty CHECK (timezone <> ''),
  locale          text        NOT NULL DEFAULT 'en'
                  CONSTRAINT user_preferences_locale_nonempty CHECK (locale <> ''),
  settings        jsonb       NOT NULL DEFAULT '{}'
                  CONSTRAINT user_preferences_settings_object CHECK (jsonb_typeof(settings) = 'object'),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_sessions (
  id              uuid        NOT NULL DEFAULT oauthdb_uuid7() PRIMARY KEY,
  user_id         uuid        NOT NULL
                  REFERENCES users (id) ON DELETE CASCADE,
  -- SHA-256 of the session token's UTF-8 bytes: sha256(convert_to(token, 'UTF8')).
  token_hash      bytea       NOT NULL
                  CONSTRAINT user_sessions_token_hash_sha256 CHECK (length(token_hash) = 32),
  created_at      timestamptz NOT NULL DEFAULT now(),
  last_used       timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  idle_timeout    integer     NOT NULL  -- seconds, as in SQLite
                  CONSTRAINT user_sessions_idle_timeout_positive CHECK (idle_timeout > 0),
  revoked_at      timestamptz,
  revoked_reason  text,
  ip_address      text,
  user_agent      text,
  CONSTRAINT user_sessions_expiry_after_creation CHECK (expires_at >= created_at),
  CONSTRAINT user_sessions_reason_needs_revocation CHECK (revoked_reason IS NULL OR revoked_at IS NOT NULL)
);

CREATE TABLE service_configs (
  id                 uuid        NOT NULL DEFAULT oauthdb_uuid7() PRIMARY KEY,
  service_name       text        NOT NULL UNIQUE
                     CONSTRAINT service_configs_service_name_slug CHECK (service_name ~ '^[a-z0-9_-]+$'),
  display_name       text        NOT NULL,
  auth_type          text        NOT NULL
                     CONSTRAINT service_configs_auth_type CHECK (auth_type IN ('oauth2', 'api_key')),
  auth_url           text
                     CONSTRAINT service_configs_auth_url_https CHECK (auth_url LIKE 'https://_%'),
  token_url          text
                     CONSTRAINT service_configs_token_url_https CHECK (token_url LIKE 'https://_%'),
  revoke_url         text
                     CONSTRAINT service_configs_revoke_url_https CHECK (revoke_url LIKE 'https://_%'),
  api_base_url       text
                     CONSTRAINT service_configs_api_base_url_https CHECK (api_base_url LIKE 'https://_%'),
  scopes             jsonb       NOT NULL DEFAULT '[]'
                     CONSTRAINT service_configs_scopes_array CHECK (jsonb_typeof(scopes) = 'array'),
  client_id          text,
  -- Where the client secret lives (env:NAME, file:PATH, vault:PATH), never the secret.
  client_secret_ref  text
                     CONSTRAINT service_configs_client_secret_ref_is_reference
                     CHECK (client_secret_ref LIKE 'env:_%'
                            OR client_secret_ref LIKE 'file:_%'
                            OR client_secret_ref LIKE 'vault:_%'),
  -- https, or http to the loopback host for development (RFC 8252 section 7.3).
  redirect_uri       text
                     CONSTRAINT service_configs_redirect_uri_https
                     CHECK (redirect_uri LIKE 'https://_%'
                            OR redirect_uri ~ '^http://(localhost|127\.0\.0\.1)([:/].*)?$'),
  api_key_header     text,
  settings           jsonb       NOT NULL DEFAULT '{}'
                     CONSTRAINT service_configs_settings_object CHECK (jsonb_typeof(settings) = 'object'),
  is_active          boolean     NOT NULL DEFAULT true,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT service_configs_auth_type_fields CHECK (
       (auth_type = 'oauth2'
        AND auth_url IS NOT NULL AND token_url IS NOT NULL AND api_key_header IS NULL)
    OR (auth_type = 'api_key'
        AND api_key_header IS NOT NULL AND api_key_header <> ''
        AND auth_url IS NULL AND token_url IS NULL AND revoke_url IS NULL
        AND client_id IS NULL AND client_secret_ref IS NULL AND redirect_uri IS NULL)
  )
);

CREATE TABLE user_providers (
  id                uuid        NOT NULL DEFAULT oauthdb_uuid7() PRIMARY KEY,
  user_id           uuid        NOT NULL
                    REFERENCES users (id) ON DELETE CASCADE,
  provider          text        NOT NULL
                    REFERENCES service_configs (service_name) ON UPDATE CASCADE ON DELETE RESTRICT,
  provider_id       text        NOT NULL
                    CONSTRAINT user_providers_provider_id_nonempty CHECK (provider_id <> ''),
  provider_email    text,
  display_name      text,
  avatar_url        text
                    CONSTRAINT user_providers_avatar_url_https CHECK (avatar_url LIKE 'https://_%'),
  scopes            jsonb       NOT NULL DEFAULT '[]'
                    CONSTRAINT user_providers_scopes_array CHECK (jsonb_typeof(scopes) = 'array'),
  sync_cursors      jsonb       NOT NULL DEFAULT '{}'
                    CONSTRAINT user_providers_sync_cursors_object CHECK (jsonb_typeof(sync_cursors) = 'object'),
  sync_status       text        NOT NULL DEFAULT 'idle'
                    CONSTRAINT user_providers_sync_status
                    CHECK (sync_status IN ('idle', 'running', 'success', 'failure')),
  is_active         boolean     NOT NULL DEFAULT true,
  linked_at         timestamptz NOT NULL DEFAULT now(),
  unlinked_at       timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT user_providers_account_once UNIQUE (provider, provider_id),
  CONSTRAINT user_providers_unlinked_inactive CHECK (unlinked_at IS NULL OR NOT is_active)
);

CREATE TABLE oauth_tokens (
  id                uuid        NOT NULL DEFAULT oauthdb_uuid7() PRIMARY KEY,
  user_provider_id  uuid        NOT NULL
                    REFERENCES user_providers (id) ON DELETE CASCADE,
  credential_kind   text        NOT NULL DEFAULT 'oauth2'
                    CONSTRAINT oauth_tokens_credential_kind CHECK (credential_kind IN ('oauth2', 'api_key')),
  token_type        text
                    CONSTRAINT oauth_tokens_token_type_nonempty CHECK (token_type <> ''),
  -- Sealed values (docs/FORMAT.md).  substring() rather than get_byte()
  -- so that an empty value fails the check instead of raising an error.
  access_token      bytea       NOT NULL
                    CONSTRAINT oauth_tokens_access_token_sealed
                    CHECK (length(access_token) >= 46 AND substring(access_token FROM 1 FOR 1) = '\x01'::bytea),
  refresh_token     bytea
                    CONSTRAINT oauth_tokens_refresh_token_sealed
                    CHECK (length(refresh_token) >= 46 AND substring(refresh_token FROM 1 FOR 1) = '\x01'::bytea),
  id_token          bytea
                    CONSTRAINT oauth_tokens_id_token_sealed
                    CHECK (length(id_token) >= 46 AND substring(id_token FROM 1 FOR 1) = '\x01'::bytea),
  -- Space-separated scope tokens as the provider returned them (RFC 6749
  -- section 3.3); the same rule as SQLite's: printable ASCII without '"'
  -- or '\', single spaces between tokens, none at either end.
  scope             text        NOT NULL DEFAULT ''
                    CONSTRAINT oauth_tokens_scope_tokens
                    CHECK (scope = btrim(scope, ' ') AND position('  ' IN scope) = 0
                           AND scope !~ '[^ -~]' AND scope !~ '["\\]'),
  expires_at        timestamptz,
  last_used         timestamptz,
  metadata          jsonb       NOT NULL DEFAULT '{}'
                    CONSTRAINT oauth_tokens_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
  is_active         boolean     NOT NULL DEFAULT true,
  revoked_at        timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  -- A refresh worker's lease and the failure count (docs/POSTGRES.md
  -- "Refresh workers"); as in SQLite.
  refresh_claim     text
                    CONSTRAINT oauth_tokens_refresh_claim_uuid CHECK (length(refresh_claim) = 36),
  refresh_claimed_by text
                    CONSTRAINT oauth_tokens_refresh_claimed_by_label
                    CHECK (length(refresh_claimed_by) BETWEEN 1 AND 200),
  refresh_claimed_until timestamptz,
  refresh_failures  integer     NOT NULL DEFAULT 0
                    CONSTRAINT oauth_tokens_refresh_failures_count CHECK (refresh_failures >= 0),
  reconsent_required_at timestamptz,
  CONSTRAINT oauth_tokens_refresh_claim_lease
  CHECK ((refresh_claim IS NULL) = (refresh_claimed_until IS NULL)
         AND (refresh_claimed_by IS NULL OR refresh_claim IS NOT NULL)),
  CONSTRAINT oauth_tokens_api_key_no_refresh
  CHECK (credential_kind = 'oauth2'
         OR (refresh_token IS NULL AND expires_at IS NULL
             AND token_type IS NULL AND id_token IS NULL)),
  CONSTRAINT oauth_tokens_revoked_inactive CHECK (revoked_at IS NULL OR NOT is_active)
);

CREATE TABLE token_refresh_log (
  id                     uuid        NOT NULL DEFAULT oauthdb_uuid7() PRIMARY KEY,
  token_id               uuid
                         REFERENCES oauth_tokens (id) ON DELETE SET NULL,
  old_token_fingerprint  bytea
                         CONSTRAINT token_refresh_log_old_fingerprint_16 CHECK (length(old_token_fingerprint) = 16),
  new_token_fingerprint  bytea
                         CONSTRAINT token_refresh_log_new_fingerprint_16 CHECK (length(new_token_fingerprint) = 16),
  refresh_used_fingerprint bytea
                         CONSTRAINT token_refresh_log_refresh_used_fingerprint_16 CHECK (length(refresh_used_fingerprint) = 16),
  old_expires_at         timestamptz,
  new_expires_at         timestamptz,
  success                boolean     NOT NULL,
  error_message          text,
  created_at             timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT token_refresh_log_failure_has_error_message CHECK (success OR error_message IS NOT NULL)
);

CREATE TABLE auth_audit_log (
  id          uuid        NOT NULL DEFAULT oauthdb_audit_id() PRIMARY KEY,
  user_id     uuid
              REFERENCES users (id) ON DELETE SET NULL,
  action      text        NOT NULL
              CONSTRAINT auth_audit_log_action_name CHECK (action ~ '^[a-z][a-z0-9_.]*[.][a-z][a-z0-9_.]*$'),
  provider    text,
  actor       text,
  success     boolean     NOT NULL DEFAULT true,
  error_message text,
  details     jsonb       NOT NULL DEFAULT '{}'
              CONSTRAINT auth_audit_log_details_object CHECK (jsonb_typeof(details) = 'object'),
  ip_address  text,
  user_agent  text,
  timestamp   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE sync_logs (
  id                uuid        NOT NULL DEFAULT oauthdb_uuid7() PRIMARY KEY,
  user_provider_id  uuid        NOT NULL
                    REFERENCES user_providers (id) ON DELETE CASCADE,
  action_type       text        NOT NULL
                    CONSTRAINT sync_logs_action_type_nonempty CHECK (action_type <> ''),
  status            text        NOT NULL
                    CONSTRAINT sync_logs_status CHECK (status IN ('running', 'success', 'failure')),
  started_at        timestamptz NOT NULL DEFAULT now(),
  finished_at       timestamptz,
  items_synced      integer     NOT NULL DEFAULT 0
                    CONSTRAINT sync_logs_items_synced_nonnegative CHECK (items_synced >= 0),
  data_size         bigint
                    CONSTRAINT sync_logs_data_size_nonnegative CHECK (data_size >= 0),
  duration_ms       bigint
                    CONSTRAINT sync_logs_duration_ms_nonnegative CHECK (duration_ms >= 0),
  cursor_before     text,
  cursor_after      text,
  error_message     text,
  timestamp         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sync_logs_finished_iff_done CHECK ((status = 'running') = (finished_at IS NULL)),
  CONSTRAINT sync_logs_finished_after_start CHECK (finished_at IS NULL OR finished_at >= started_at),
  CONSTRAINT sync_logs_failure_has_error_message CHECK (status <> 'failure' OR error_message IS NOT NULL)
);

-- Indexes: the same names and columns as the SQLite side.

-- Email is unique ignoring ASCII case, exactly like SQLite's COLLATE NOCASE
-- (which folds ASCII only).  COLLATE "C" makes lower() fold ASCII only too,
-- whatever the database locale, so every set of rows SQLite accepts is
-- accepted here.  Look users up with lower(email COLLATE "C") = lower($1 COLLATE "C").
CREATE UNIQUE INDEX users_email_nocase ON users (lower(email COLLATE "C"));

CREATE UNIQUE INDEX user_sessions_token_hash ON user_sessions (token_hash);
CREATE INDEX user_sessions_user ON user_sessions (user_id, expires_at);
CREATE INDEX user_sessions_expires ON user_sessions (expires_at);

CREATE INDEX user_providers_user ON user_providers (user_id, provider);

CREATE UNIQUE INDEX oauth_tokens_one_active ON oauth_tokens (user_provider_id) WHERE is_active;
CREATE INDEX oauth_tokens_user_provider ON oauth_tokens (user_provider_id);
CREATE INDEX oauth_tokens_expiring ON oauth_tokens (expires_at)
  WHERE is_active AND refresh_token IS NOT NULL AND expires_at IS NOT NULL
    AND reconsent_required_at IS NULL;

CREATE INDEX token_refresh_log_token ON token_refresh_log (token_id, created_at, id);

CREATE INDEX auth_audit_log_user ON auth_audit_log (user_id, timestamp, id);
CREATE INDEX auth_audit_log_timestamp ON auth_audit_log (timestamp, id);

CREATE INDEX sync_logs_link ON sync_logs (user_provider_id, started_at, id);

-- auth_audit_log is append-only (see the SQLite file for the reasoning).
-- The one UPDATE let through is the foreign key's ON DELETE SET NULL: only
-- user_id changes, to NULL, and the user is gone.  users is looked up in the
-- trigger's own schema, whatever the caller's search_path.  These triggers
-- stop the application and mistakes; the table owner can still disable them.
CREATE FUNCTION auth_audit_log_no_update() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
  user_exists boolean;
BEGIN
  IF OLD.user_id IS NOT NULL AND NEW.user_id IS NULL
     AND to_jsonb(NEW) - 'user_id' = to_jsonb(OLD) - 'user_id' THEN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.users WHERE id = $1)', TG_TABLE_SCHEMA)
      INTO user_exists USING OLD.user_id;
    IF NOT user_exists THEN
      RETURN NEW;
    END IF;
  END IF;
  RAISE EXCEPTION 'auth_audit_log is append-only'
    USING ERRCODE = 'restrict_violation';
END
$$;

CREATE FUNCTION auth_audit_log_no_delete() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  RAISE EXCEPTION 'auth_audit_log is append-only: rows leave only through retention (oauthdb_purge)'
    USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER auth_audit_log_no_update
  BEFORE UPDATE ON auth_audit_log
  FOR EACH ROW EXECUTE FUNCTION auth_audit_log_no_update();

CREATE TRIGGER auth_audit_log_no_delete
  BEFORE DELETE ON auth_audit_log
  FOR EACH ROW EXECUTE FUNCTION auth_audit_log_no_delete();

-- TRUNCATE fires no row triggers, so it gets its own.
CREATE TRIGGER auth_audit_log_no_truncate
  BEFORE TRUNCATE ON auth_audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION auth_audit_log_no_delete();

-- Roles (NOLOGIN group roles; grant them to login roles).  Created only when
-- missing; a concurrent creator in another database is tolerated.
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['oauthdb_app', 'oauthdb_readonly', 'oauthdb_auditor'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
      EXCEPTION WHEN duplicate_object THEN
        NULL;
      END;
    END IF;
  END LOOP;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO oauthdb_app, oauthdb_readonly, oauthdb_auditor',
                 current_schema());
END
$$;

-- oauthdb_app: reads and writes everything, but auth_audit_log only grows.
GRANT SELECT, INSERT, UPDATE, DELETE
   ON users, user_preferences, user_sessions, service_configs, user_providers,
      oauth_tokens, token_refresh_log, sync_logs
   TO oauthdb_app;
GRANT SELECT, INSERT ON auth_audit_log TO oauthdb_app;
GRANT USAGE ON SEQUENCE auth_audit_log_order TO oauthdb_app;

-- oauthdb_readonly: everything except the secret columns (password hashes,
-- session token hashes, sealed tokens).  Column grants name their columns,
-- so a column added later stays hidden until a migration grants it.
GRANT SELECT (id, email, display_name, is_active, email_verified,
              created_at, updated_at, last_login, deactivated_at)
   ON users TO oauthdb_readonly;
GRANT SELECT (id, user_id, created_at, last_used, expires_at, idle_timeout,
              revoked_at, revoked_reason, ip_address, user_agent)
   ON user_sessions TO oauthdb_readonly;
GRANT SELECT (id, user_provider_id, credential_kind, token_type, scope, expires_at,
              last_used, metadata, is_active, revoked_at, created_at, updated_at,
              refresh_claim, refresh_claimed_by, refresh_claimed_until,
              refresh_failures, reconsent_required_at)
   ON oauth_tokens TO oauthdb_readonly;
GRANT SELECT
   ON user_preferences, service_configs, user_providers, token_refresh_log,
      auth_audit_log, sync_logs
   TO oauthdb_readonly;

-- oauthdb_auditor: the logs.
GRANT SELECT ON auth_audit_log, token_refresh_log, sync_logs TO oauthdb_auditor;

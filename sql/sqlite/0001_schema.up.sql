-- oauthdb migration 0001 (SQLite): the nine tables, their indexes and the
-- append-only triggers of auth_audit_log.  docs/SCHEMA.md explains every
-- constraint and which query each index serves.
--
-- Plain SQL: the migration runner wraps this file in one transaction and
-- records it in schema_migrations.  Nothing here needs the oauthdb extension:
-- defaults and checks use only SQLite built-ins (unixepoch, json_valid,
-- json_type), so a database stays usable and checkable with the plain CLI.
--
-- Conventions (docs/SCHEMA.md):
--   ids         TEXT, canonical lower-case UUID (uuid7() from the extension)
--   timestamps  INTEGER unix seconds; the range check rejects milliseconds
--               (0 .. 9999-12-31T23:59:59Z)
--   booleans    INTEGER 0 or 1
--   JSON        TEXT that json_valid() accepts, of the stated JSON type
--   sealed      BLOB in the sealed format: version byte 0x01 and at least
--               6 header + 24 nonce + 16 tag = 46 bytes
-- Foreign keys are enforced only with PRAGMA foreign_keys=ON (the extension
-- turns it on for its connections).

CREATE TABLE users (
  id              TEXT    NOT NULL PRIMARY KEY
                  CONSTRAINT users_id_uuid CHECK (length(id) = 36 AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
  email           TEXT    NOT NULL UNIQUE COLLATE NOCASE
                  CONSTRAINT users_email_shape CHECK (email LIKE '_%@_%' AND email = trim(email)),
  display_name    TEXT,
  password_hash   TEXT
                  CONSTRAINT users_password_hash_argon2id
                  CHECK (password_hash IS NULL OR substr(password_hash, 1, 10) = '$argon2id$'),
  is_active       INTEGER NOT NULL DEFAULT 1
                  CONSTRAINT users_is_active_bool CHECK (is_active IN (0, 1)),
  email_verified  INTEGER NOT NULL DEFAULT 0
                  CONSTRAINT users_email_verified_bool CHECK (email_verified IN (0, 1)),
  created_at      INTEGER NOT NULL DEFAULT (unixepoch())
                  CONSTRAINT users_created_at_seconds CHECK (created_at BETWEEN 0 AND 253402300799),
  updated_at      INTEGER NOT NULL DEFAULT (unixepoch())
                  CONSTRAINT users_updated_at_seconds CHECK (updated_at BETWEEN 0 AND 253402300799),
  last_login      INTEGER
                  CONSTRAINT users_last_login_seconds CHECK (last_login BETWEEN 0 AND 253402300799),
  deactivated_at  INTEGER
                  CONSTRAINT users_deactivated_at_seconds CHECK (deactivated_at BETWEEN 0 AND 253402300799),
  CONSTRAINT users_deactivated_inactive CHECK (deactivated_at IS NULL OR is_active = 0)
) STRICT;

CREATE TABLE user_preferences (
  id              TEXT    NOT NULL PRIMARY KEY
                  CONSTRAINT user_preferences_id_uuid CHECK (length(id) = 36 AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
  user_id         TEXT    NOT NULL UNIQUE
                  REFERENCES users (id) ON DELETE CASCADE,
  timezone        TEXT    NOT NULL DEFAULT 'UTC'
                  CONSTRAINT user_preferences_timezone_nonempty CHECK (timezone <> ''),
  locale          TEXT    NOT NULL DEFAULT 'en'
                  CONSTRAINT user_preferences_locale_nonempty CHECK (locale <> ''),
  settings        TEXT    NOT NULL DEFAULT '{}'
                  CONSTRAINT user_preferences_settings_object
                  CHECK (json_valid(settings) AND json_type(settings) = 'object'),
  created_at      INTEGER NOT NULL DEFAULT (unixepoch())
                  CONSTRAINT user_preferences_created_at_seconds CHECK (created_at BETWEEN 0 AND 253402300799),
  updated_at      INTEGER NOT NULL DEFAULT (unixepoch())
                  CONSTRAINT user_preferences_updated_at_seconds CHECK (updated_at BETWEEN 0 AND 253402300799)
) STRICT;

CREATE TABLE user_sessions (
  id              TEXT    NOT NULL PRIMARY KEY
                  CONSTRAINT user_sessions_id_uuid CHECK (length(id) = 36 AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
  user_id         TEXT    NOT NULL
                  REFERENCES users (id) ON DELETE CASCADE,
  -- SHA-256 of the session token's UTF-8 bytes; the token itself is never stored.
  token_hash      BLOB    NOT NULL
                  CONSTRAINT user_sessions_token_hash_sha256 CHECK (length(token_hash) = 32),
  created_at      INTEGER NOT NULL DEFAULT (unixepoch())
                  CONSTRAINT user_sessions_created_at_seconds CHECK (created_at BETWEEN 0 AND 253402300799),
  last_used       INTEGER NOT NULL DEFAULT (unixepoch())
                  CONSTRAINT user_sessions_last_used_seconds CHECK (last_used BETWEEN 0 AND 253402300799),
  expires_at      INTEGER NOT NULL
                  CONSTRAINT user_sessions_expires_at_seconds CHECK (expires_at BETWEEN 0 AND 253402300799),
  idle_timeout    INTEGER NOT NULL
                  CONSTRAINT user_sessions_idle_timeout_positive CHECK (idle_timeout > 0),
  revoked_at      INTEGER
                  CONSTRAINT user_sessions_revoked_at_seconds CHECK (revoked_at BETWEEN 0 AND 253402300799),
  revoked_reason  TEXT,
  ip_address      TEXT,
  user_agent      TEXT,
  CONSTRAINT user_sessions_expiry_after_creation CHECK (expires_at >= created_at),
  CONSTRAINT user_sessions_reason_needs_revocation CHECK (revoked_reason IS NULL OR revoked_at IS NOT NULL)
) STRICT;

CREATE TABLE service_configs (
  id                 TEXT    NOT NULL PRIMARY KEY
                     CONSTRAINT service_configs_id_uuid CHECK (length(id) = 36 AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
  service_name       TEXT    NOT NULL UNIQUE
                     CONSTRAINT service_configs_service_name_slug
                     CHECK (service_name <> '' AND service_name NOT GLOB '*[^a-z0-9_-]*'),
  display_name       TEXT    NOT NULL,
  auth_type          TEXT    NOT NULL
                     CONSTRAINT service_configs_auth_type CHECK (auth_type IN ('oauth2', 'api_key')),
  auth_url           TEXT
                     CONSTRAINT service_configs_auth_url_https CHECK (auth_url IS NULL OR auth_url GLOB 'https://?*'),
  token_url          TEXT
                     CONSTRAINT service_configs_token_url_https CHECK (token_url IS NULL OR token_url GLOB 'https://?*'),
  revoke_url         TEXT
                     CONSTRAINT service_configs_revoke_url_https CHECK (revoke_url IS NULL OR revoke_url GLOB 'https://?*'),
  api_base_url       TEXT
                     CONSTRAINT service_configs_api_base_url_https CHECK (api_base_url IS NULL OR api_base_url GLOB 'https://?*'),
  scopes             TEXT    NOT NULL DEFAULT '[]'
                     CONSTRAINT service_configs_scopes_array
                     CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
  client_id          TEXT,
  -- Where the client secret lives (env:NAME, file:PATH, vault:PATH), never the secret.
  client_secret_ref  TEXT
                     CONSTRAINT service_configs_client_secret_ref_is_reference
                     CHECK (client_secret_ref IS NULL
                            OR client_secret_ref GLOB 'env:?*'
                            OR client_secret_ref GLOB 'file:?*'
                            OR client_secret_ref GLOB 'vault:?*'),
  -- Where the provider sends the user back with the authorization code: https,
  -- or http to the loopback host for development (RFC 8252 section 7.3).
  redirect_uri       TEXT
                     CONSTRAINT service_configs_redirect_uri_https
                     CHECK (redirect_uri IS NULL
                            OR redirect_uri GLOB 'https://?*'
                            OR redirect_uri GLOB 'http://localhost[:/]*'
                            OR redirect_uri = 'http://localhost'
                            OR redirect_uri GLOB 'http://127.0.0.1[:/]*'
                            OR redirect_uri = 'http://127.0.0.1'),
  api_key_header     TEXT,
  -- Extra authorization-request parameters (access_type, prompt, ...).
  settings           TEXT    NOT NULL DEFAULT '{}'
                     CONSTRAINT service_configs_settings_object
                     CHECK (json_valid(settings) AND json_type(settings) = 'object'),
  is_active          INTEGER NOT NULL DEFAULT 1
                     CONSTRAINT service_configs_is_active_bool CHECK (is_active IN (0, 1)),
  created_at         INTEGER NOT NULL DEFAULT (unixepoch())
                     CONSTRAINT service_configs_created_at_seconds CHECK (created_at BETWEEN 0 AND 253402300799),
  updated_at         INTEGER NOT NULL DEFAULT (unixepoch())
                     CONSTRAINT service_configs_updated_at_seconds CHECK (updated_at BETWEEN 0 AND 253402300799),
  -- OAuth needs its endpoints and has no key header; an API-key service has
  -- a header and none of the OAuth client settings.
  CONSTRAINT service_configs_auth_type_fields CHECK (
       (auth_type = 'oauth2'
        AND auth_url IS NOT NULL AND token_url IS NOT NULL AND api_key_header IS NULL)
    OR (auth_type = 'api_key'
        AND api_key_header IS NOT NULL AND api_key_header <> ''
        AND auth_url IS NULL AND token_url IS NULL AND revoke_url IS NULL
        AND client_id IS NULL AND client_secret_ref IS NULL AND redirect_uri IS NULL)
  )
) STRICT;

CREATE TABLE user_providers (
  id                TEXT    NOT NULL PRIMARY KEY
                    CONSTRAINT user_providers_id_uuid CHECK (length(id) = 36 AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
  user_id           TEXT    NOT NULL
                    REFERENCES users (id) ON DELETE CASCADE,
  provider          TEXT    NOT NULL
                    REFERENCES service_configs (service_name) ON UPDATE CASCADE ON DELETE RESTRICT,
  -- The account's id at the provider (Google's "sub").
  provider_id       TEXT    NOT NULL
                    CONSTRAINT user_providers_provider_id_nonempty CHECK (provider_id <> ''),
  provider_email    TEXT,
  display_name      TEXT,
  avatar_url        TEXT
                    CONSTRAINT user_providers_avatar_url_https
                    CHECK (avatar_url IS NULL OR avatar_url GLOB 'https://?*'),
  scopes            TEXT    NOT NULL DEFAULT '[]'
                    CONSTRAINT user_providers_scopes_array
                    CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
  -- Per-resource sync state, e.g. {"calendar:primary":{"syncToken":"..."},
  -- "gmail":{"historyId":"123"},"contacts":{"syncToken":"..."}}.
  sync_cursors      TEXT    NOT NULL DEFAULT '{}'
                    CONSTRAINT user_providers_sync_cursors_object
                    CHECK (json_valid(sync_cursors) AND json_type(sync_cursors) = 'object'),
  -- State of the link's last sync run (its history is in sync_logs).
  sync_status       TEXT    NOT NULL DEFAULT 'idle'
                    CONSTRAINT user_providers_sync_status
                    CHECK (sync_status IN ('idle', 'running', 'success', 'failure')),
  is_active         INTEGER NOT NULL DEFAULT 1
                    CONSTRAINT user_providers_is_active_bool CHECK (is_active IN (0, 1)),
  linked_at         INTEGER NOT NULL DEFAULT (unixepoch())
                    CONSTRAINT user_providers_linked_at_seconds CHECK (linked_at BETWEEN 0 AND 253402300799),
  unlinked_at       INTEGER
                    CONSTRAINT user_providers_unlinked_at_seconds CHECK (unlinked_at BETWEEN 0 AND 253402300799),
  created_at        INTEGER NOT NULL DEFAULT (unixepoch())
                    CONSTRAINT user_providers_created_at_seconds CHECK (created_at BETWEEN 0 AND 253402300799),
  updated_at        INTEGER NOT NULL DEFAULT (unixepoch())
                    CONSTRAINT user_providers_updated_at_seconds CHECK (updated_at BETWEEN 0 AND 253402300799),
  CONSTRAINT user_providers_account_once UNIQUE (provider, provider_id),
  CONSTRAINT user_providers_unlinked_inactive CHECK (unlinked_at IS NULL OR is_active = 0)
) STRICT;

CREATE TABLE oauth_tokens (
  id                TEXT    NOT NULL PRIMARY KEY
                    CONSTRAINT oauth_tokens_id_uuid CHECK (length(id) = 36 AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
  user_provider_id  TEXT    NOT NULL
                    REFERENCES user_providers (id) ON DELETE CASCADE,
  -- What the credential is: an OAuth 2.0 token or an API key (Motion).
  credential_kind   TEXT    NOT NULL DEFAULT 'oauth2'
                    CONSTRAINT oauth_tokens_credential_kind CHECK (credential_kind IN ('oauth2', 'api_key')),
  -- The token endpoint's token_type, as returned ('Bearer'); NULL for an API key.
  token_type        TEXT
                    CONSTRAINT oauth_tokens_token_type_nonempty CHECK (token_type IS NULL OR token_type <> ''),
  -- Sealed (docs/FORMAT.md) with associated data
  -- 'oauth_tokens.<column>:<id>'; for Motion access_token is the sealed API key.
  access_token      BLOB    NOT NULL
                    CONSTRAINT oauth_tokens_access_token_sealed
                    CHECK (length(access_token) >= 46 AND substr(access_token, 1, 1) = x'01'),
  refresh_token     BLOB
                    CONSTRAINT oauth_tokens_refresh_token_sealed
                    CHECK (refresh_token IS NULL
                           OR (length(refresh_token) >= 46 AND substr(refresh_token, 1, 1) = x'01')),
  -- The OpenID Connect id_token: a signed credential carrying personal data.
  id_token          BLOB
                    CONSTRAINT oauth_tokens_id_token_sealed
                    CHECK (id_token IS NULL
                           OR (length(id_token) >= 46 AND substr(id_token, 1, 1) = x'01')),
  -- The granted scope as the provider returned it: space-separated scope
  -- tokens (RFC 6749 section 3.3), '' for none.  Ask scope_has(scope, 'x').
  scope             TEXT    NOT NULL DEFAULT ''
                    CONSTRAINT oauth_tokens_scope_tokens
                    CHECK (scope = trim(scope, ' ') AND instr(scope, '  ') = 0
                           AND scope NOT GLOB '*[^ -~]*' AND scope NOT GLOB '*["\]*'),
  expires_at        INTEGER
                    CONSTRAINT oauth_tokens_expires_at_seconds CHECK (expires_at BETWEEN 0 AND 253402300799),
  last_used         INTEGER
                    CONSTRAINT oauth_tokens_last_used_seconds CHECK (last_used BETWEEN 0 AND 253402300799),
  -- Application data about the token (not a secret).
  metadata          TEXT    NOT NULL DEFAULT '{}'
                    CONSTRAINT oauth_tokens_metadata_object
                    CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
  is_active         INTEGER NOT NULL DEFAULT 1
                    CONSTRAINT oauth_tokens_is_active_bool CHECK (is_active IN (0, 1)),
  revoked_at        INTEGER
                    CONSTRAINT oauth_tokens_revoked_at_seconds CHECK (revoked_at BETWEEN 0 AND 253402300799),
  created_at        INTEGER NOT NULL DEFAULT (unixepoch())
                    CONSTRAINT oauth_tokens_created_at_seconds CHECK (created_at BETWEEN 0 AND 253402300799),
  updated_at        INTEGER NOT NULL DEFAULT (unixepoch())
                    CONSTRAINT oauth_tokens_updated_at_seconds CHECK (updated_at BETWEEN 0 AND 253402300799),
  -- A refresh worker's lease (token_claim_refresh, docs/SQL.md "Refresh
  -- workers"): the claim's id, the worker's label, and until when it holds
  -- the token.  Only the claim functions write these.
  refresh_claim     TEXT
                    CONSTRAINT oauth_tokens_refresh_claim_uuid CHECK (length(refresh_claim) = 36),
  refresh_claimed_by TEXT
                    CONSTRAINT oauth_tokens_refresh_claimed_by_label
                    CHECK (length(refresh_claimed_by) BETWEEN 1 AND 200),
  refresh_claimed_until INTEGER
                    CONSTRAINT oauth_tokens_refresh_claimed_until_seconds
                    CHECK (refresh_claimed_until BETWEEN 0 AND 253402300799),
  -- Failed refreshes since the last success (token_refresh_failed).
  refresh_failures  INTEGER NOT NULL DEFAULT 0
                    CONSTRAINT oauth_tokens_refresh_failures_count CHECK (refresh_failures >= 0),
  -- When refreshing was given up (invalid_grant or too many failures): the
  -- link needs the user to connect again; tokens_expiring no longer lists it.
  reconsent_required_at INTEGER
                    CONSTRAINT oauth_tokens_reconsent_required_at_seconds
                    CHECK (reconsent_required_at BETWEEN 0 AND 253402300799),
  CONSTRAINT oauth_tokens_refresh_claim_lease
  CHECK ((refresh_claim IS NULL) = (refresh_claimed_until IS NULL)
         AND (refresh_claimed_by IS NULL OR refresh_claim IS NOT NULL)),
  -- An API key (Motion) is neither refreshed nor expires, and is no OAuth
  -- token response: no token_type, no id_token.
  CONSTRAINT oauth_tokens_api_key_no_refresh
  CHECK (credential_kind = 'oauth2'
         OR (refresh_token IS NULL AND expires_at IS NULL
             AND token_type IS NULL AND id_token IS NULL)),
  CONSTRAINT oauth_tokens_revoked_inactive CHECK (revoked_at IS NULL OR is_active = 0)
) STRICT;

CREATE TABLE token_refresh_log (
  id                     TEXT    NOT NULL PRIMARY KEY
                         CONSTRAINT token_refresh_log_id_uuid CHECK (length(id) = 36 AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
  token_id               TEXT
                         REFERENCES oauth_tokens (id) ON DELETE SET NULL,
  -- Keyed BLAKE2b-128 fingerprints (token_fingerprint()), never a token.
  old_token_fingerprint  BLOB
                         CONSTRAINT token_refresh_log_old_fingerprint_16
                         CHECK (old_token_fingerprint IS NULL OR length(old_token_fingerprint) = 16),
  new_token_fingerprint  BLOB
                         CONSTRAINT token_refresh_log_new_fingerprint_16
                         CHECK (new_token_fingerprint IS NULL OR length(new_token_fingerprint) = 16),
  -- The refresh token sent to the provider (the seed's refresh_used).
  refresh_used_fingerprint BLOB
                         CONSTRAINT token_refresh_log_refresh_used_fingerprint_16
                         CHECK (refresh_used_fingerprint IS NULL OR length(refresh_used_fingerprint) = 16),
  old_expires_at         INTEGER
                         CONSTRAINT token_refresh_log_old_expires_at_seconds
                         CHECK (old_expires_at BETWEEN 0 AND 253402300799),
  new_expires_at         INTEGER
                         CONSTRAINT token_refresh_log_new_expires_at_seconds
                         CHECK (new_expires_at BETWEEN 0 AND 253402300799),
  success                INTEGER NOT NULL
                         CONSTRAINT token_refresh_log_success_bool CHECK (success IN (0, 1)),
  error_message          TEXT,
  created_at             INTEGER NOT NULL DEFAULT (unixepoch())
                         CONSTRAINT token_refresh_log_created_at_seconds CHECK (created_at BETWEEN 0 AND 253402300799),
  CONSTRAINT token_refresh_log_failure_has_error_message CHECK (success = 1 OR error_message IS NOT NULL)
) STRICT;

CREATE TABLE auth_audit_log (
  id          TEXT    NOT NULL PRIMARY KEY
              CONSTRAINT auth_audit_log_id_uuid CHECK (length(id) = 36 AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
  user_id     TEXT
              REFERENCES users (id) ON DELETE SET NULL,
  -- 'noun.verb' in lower case: user.created, session.revoked, key.rotated, ...
  action      TEXT    NOT NULL
              CONSTRAINT auth_audit_log_action_name
              CHECK (action GLOB '[a-z]*.[a-z]*' AND action NOT GLOB '*[^a-z0-9_.]*'),
  -- The service the event concerns (a service_configs.service_name), if any.
  provider    TEXT,
  actor       TEXT,
  success     INTEGER NOT NULL DEFAULT 1
              CONSTRAINT auth_audit_log_success_bool CHECK (success IN (0, 1)),
  -- Why it failed; a success's reason (a revocation's) goes into details.
  error_message TEXT,
  details     TEXT    NOT NULL DEFAULT '{}'
              CONSTRAINT auth_audit_log_details_object
              CHECK (json_valid(details) AND json_type(details) = 'object'),
  ip_address  TEXT,
  user_agent  TEXT,
  timestamp   INTEGER NOT NULL DEFAULT (unixepoch())
              CONSTRAINT auth_audit_log_timestamp_seconds CHECK (timestamp BETWEEN 0 AND 253402300799)
) STRICT;

CREATE TABLE sync_logs (
  id                TEXT    NOT NULL PRIMARY KEY
                    CONSTRAINT sync_logs_id_uuid CHECK (length(id) = 36 AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
  user_provider_id  TEXT    NOT NULL
                    REFERENCES user_providers (id) ON DELETE CASCADE,
  -- A key of user_providers.sync_cursors: 'gmail', 'calendar:primary', 'contacts', ...
  action_type       TEXT    NOT NULL
                    CONSTRAINT sync_logs_action_type_nonempty CHECK (action_type <> ''),
  status            TEXT    NOT NULL
                    CONSTRAINT sync_logs_status CHECK (status IN ('running', 'success', 'failure')),
  started_at        INTEGER NOT NULL DEFAULT (unixepoch())
                    CONSTRAINT sync_logs_started_at_seconds CHECK (started_at BETWEEN 0 AND 253402300799),
  finished_at       INTEGER
                    CONSTRAINT sync_logs_finished_at_seconds CHECK (finished_at BETWEEN 0 AND 253402300799),
  items_synced      INTEGER NOT NULL DEFAULT 0
                    CONSTRAINT sync_logs_items_synced_nonnegative CHECK (items_synced >= 0),
  data_size         INTEGER
                    CONSTRAINT sync_logs_data_size_nonnegative CHECK (data_size >= 0),
  duration_ms       INTEGER
                    CONSTRAINT sync_logs_duration_ms_nonnegative CHECK (duration_ms >= 0),
  cursor_before     TEXT,
  cursor_after      TEXT,
  error_message     TEXT,
  timestamp         INTEGER NOT NULL DEFAULT (unixepoch())
                    CONSTRAINT sync_logs_timestamp_seconds CHECK (timestamp BETWEEN 0 AND 253402300799),
  -- A run is finished exactly when it is no longer 'running'.
  CONSTRAINT sync_logs_finished_iff_done CHECK ((status = 'running') = (finished_at IS NULL)),
  CONSTRAINT sync_logs_finished_after_start CHECK (finished_at IS NULL OR finished_at >= started_at),
  CONSTRAINT sync_logs_failure_has_error_message CHECK (status <> 'failure' OR error_message IS NOT NULL)
) STRICT;

-- Indexes.  UNIQUE constraints above already index users.email,
-- user_preferences.user_id (also users ON DELETE CASCADE),
-- service_configs.service_name and user_providers (provider, provider_id),
-- which also serves the foreign key from user_providers.provider.

-- Session by token hash (session_valid, session_touch, session_revoke).
CREATE UNIQUE INDEX user_sessions_token_hash ON user_sessions (token_hash);

-- Sessions of a user; also the child side of users ON DELETE CASCADE.
CREATE INDEX user_sessions_user ON user_sessions (user_id, expires_at);
-- Expired-session cleanup: DELETE ... WHERE expires_at < ?.
CREATE INDEX user_sessions_expires ON user_sessions (expires_at);

-- A user's providers; also the child side of users ON DELETE CASCADE.
CREATE INDEX user_providers_user ON user_providers (user_id, provider);

-- At most one active token per provider link.
CREATE UNIQUE INDEX oauth_tokens_one_active ON oauth_tokens (user_provider_id) WHERE is_active = 1;
-- Every token of a link; the child side of user_providers ON DELETE CASCADE
-- (a partial index cannot serve a foreign-key lookup).
CREATE INDEX oauth_tokens_user_provider ON oauth_tokens (user_provider_id);
-- Tokens expiring soon (tokens_expiring, token_claim_refresh): the query
-- must repeat this WHERE clause term for term and add expires_at <= ?.
-- A token that needs re-consent is left out: no worker retries it.
CREATE INDEX oauth_tokens_expiring ON oauth_tokens (expires_at)
  WHERE is_active = 1 AND refresh_token IS NOT NULL AND expires_at IS NOT NULL
    AND reconsent_required_at IS NULL;

-- Refresh history of a token, newest last; also oauth_tokens ON DELETE SET NULL.
CREATE INDEX token_refresh_log_token ON token_refresh_log (token_id, created_at, id);

-- Audit by user and time; also users ON DELETE SET NULL.
CREATE INDEX auth_audit_log_user ON auth_audit_log (user_id, timestamp, id);
-- Audit by time, the documented order (and retention: oldest rows first).
CREATE INDEX auth_audit_log_timestamp ON auth_audit_log (timestamp, id);

-- Sync runs of a link by time; also user_providers ON DELETE CASCADE.
CREATE INDEX sync_logs_link ON sync_logs (user_provider_id, started_at, id);

-- auth_audit_log_new_id: the id and timestamp of the next audit row, the
-- one source of audit ids for every writer (the extension's audit rows, the
-- triggers of 0003, an application's own rows, `oauthdb rotate`), so that
-- the documented order, ORDER BY timestamp, id, is the order rows were
-- written.  One row, two columns:
--
--   id         an RFC 9562 UUIDv7 as lower-case 8-4-4-4-12 text, greater
--              than every id already in the log;
--   timestamp  the second of the id's millisecond, so that ordering by
--              timestamp, id is ordering by id.
--
-- The id's 48-bit millisecond is the clock's (julianday('now'), whole
-- milliseconds, fixed for a whole statement) when that is past the newest
-- id's millisecond.  Otherwise (the same millisecond, or a clock that went
-- back) it keeps the newest id's millisecond and takes its 12-bit counter
-- (rand_a) plus one; past fff, or when the newest id is not a UUIDv7, the
-- next millisecond with counter 0.  A fresh millisecond starts its counter
-- at random below 800 (hex), leaving at least 2048 ids of headroom.  The
-- variant is 10 and the last 62 bits are randomblob().
--
-- Writers are serialized by SQLite's write lock, and max(id) (one probe of
-- the primary key's index) is read inside the writing transaction, so no
-- two writers can see the same newest id.  Each reference evaluates afresh.
-- Only SQLite built-ins: it works in the plain shell, without the extension.
CREATE VIEW auth_audit_log_new_id (id, timestamp) AS
WITH newest AS (
  SELECT CASE WHEN id IS NULL THEN NULL ELSE
              (instr('0123456789abcdef', substr(id, 1, 1)) - 1) * 17592186044416
                   + (instr('0123456789abcdef', substr(id, 2, 1)) - 1) * 1099511627776
                   + (instr('0123456789abcdef', substr(id, 3, 1)) - 1) * 68719476736
                   + (instr('0123456789abcdef', substr(id, 4, 1)) - 1) * 4294967296
                   + (instr('0123456789abcdef', substr(id, 5, 1)) - 1) * 268435456
                   + (instr('0123456789abcdef', substr(id, 6, 1)) - 1) * 16777216
                   + (instr('0123456789abcdef', substr(id, 7, 1)) - 1) * 1048576
                   + (instr('0123456789abcdef', substr(id, 8, 1)) - 1) * 65536
                   + (instr('0123456789abcdef', substr(id, 10, 1)) - 1) * 4096
                   + (instr('0123456789abcdef', substr(id, 11, 1)) - 1) * 256
                   + (instr('0123456789abcdef', substr(id, 12, 1)) - 1) * 16
                   + (instr('0123456789abcdef', substr(id, 13, 1)) - 1) END AS ms,
         CASE WHEN id IS NULL THEN NULL ELSE
              (instr('0123456789abcdef', substr(id, 16, 1)) - 1) * 256
                   + (instr('0123456789abcdef', substr(id, 17, 1)) - 1) * 16
                   + (instr('0123456789abcdef', substr(id, 18, 1)) - 1) END AS seq,
         substr(id, 15, 1) = '7' AS v7
    FROM (SELECT max(id) AS id FROM auth_audit_log)
),
clock AS (
  SELECT CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) AS ms
),
next AS (
  SELECT CASE WHEN newest.ms IS NULL OR clock.ms > newest.ms THEN clock.ms
              WHEN newest.v7 AND newest.seq < 4095 THEN newest.ms
              ELSE newest.ms + 1 END AS ms,
         CASE WHEN newest.ms IS NULL OR clock.ms > newest.ms THEN random() & 2047
              WHEN newest.v7 AND newest.seq < 4095 THEN newest.seq + 1
              ELSE 0 END AS seq
    FROM newest, clock
)
SELECT printf('%s-%s-7%03x-%x%s-%s', substr(h, 1, 8), substr(h, 9, 4), seq,
              8 + (random() & 3), substr(rnd, 1, 3), substr(rnd, 4, 12)),
       ms / 1000
  FROM (SELECT printf('%012x', ms) AS h, ms, seq, lower(hex(randomblob(8))) AS rnd FROM next);

-- auth_audit_log is append-only.
--
-- UPDATE is refused, with one exception: deleting a user makes the foreign
-- key set auth_audit_log.user_id to NULL, which SQLite performs as an UPDATE.
-- That change is allowed when it is the only change and the user no longer
-- exists (the parent row is already gone when the action runs), so a live
-- user's history cannot be detached by hand.
CREATE TRIGGER auth_audit_log_no_update
BEFORE UPDATE ON auth_audit_log
FOR EACH ROW
WHEN NOT (
      OLD.user_id IS NOT NULL
  AND NEW.user_id IS NULL
  AND NEW.id IS OLD.id
  AND NEW.action IS OLD.action
  AND NEW.provider IS OLD.provider
  AND NEW.actor IS OLD.actor
  AND NEW.success IS OLD.success
  AND NEW.error_message IS OLD.error_message
  AND NEW.details IS OLD.details
  AND NEW.ip_address IS OLD.ip_address
  AND NEW.user_agent IS OLD.user_agent
  AND NEW.timestamp IS OLD.timestamp
  AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = OLD.user_id)
)
BEGIN
  SELECT RAISE(ABORT, 'auth_audit_log is append-only');
END;

-- DELETE is refused.  Retention (oauthdb_purge) drops this trigger, deletes
-- and recreates it inside its own transaction.
CREATE TRIGGER auth_audit_log_no_delete
BEFORE DELETE ON auth_audit_log
FOR EACH ROW
BEGIN
  SELECT RAISE(ABORT, 'auth_audit_log is append-only: rows leave only through retention (oauthdb_purge)');
END;

-- INSERT OR REPLACE would delete the old row without firing the DELETE
-- trigger (delete triggers fire on REPLACE only with recursive_triggers on),
-- so an insert may not reuse an existing id.
CREATE TRIGGER auth_audit_log_no_replace
BEFORE INSERT ON auth_audit_log
FOR EACH ROW
WHEN EXISTS (SELECT 1 FROM auth_audit_log WHERE id = NEW.id)
BEGIN
  SELECT RAISE(ABORT, 'auth_audit_log is append-only: id already exists');
END;

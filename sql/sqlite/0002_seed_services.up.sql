-- oauthdb migration 0002 (SQLite): seeds the two supported services.
--
-- Ids and timestamps are fixed constants (2025-01-01T00:00:00Z, also the
-- timestamp inside the UUIDv7s), so every dev database seeds identical rows
-- and the exporter's upsert finds nothing to change in production.
-- Deployment-specific settings (google client_id, redirect_uri, is_active) are edited
-- afterwards with UPDATE.

INSERT INTO service_configs
  (id, service_name, display_name, auth_type,
   auth_url, token_url, revoke_url, api_base_url,
   scopes, client_id, client_secret_ref, redirect_uri, api_key_header, settings,
   is_active, created_at, updated_at)
VALUES
  ('01941f29-7c00-7000-8000-000000000001', 'google', 'Google', 'oauth2',
   'https://accounts.google.com/o/oauth2/v2/auth',
   'https://oauth2.googleapis.com/token',
   'https://oauth2.googleapis.com/revoke',
   NULL,
   '["openid","email","profile","https://www.googleapis.com/auth/gmail.modify","https://www.googleapis.com/auth/calendar","https://www.googleapis.com/auth/contacts.readonly"]',
   NULL, 'env:GOOGLE_CLIENT_SECRET', NULL, NULL,
   '{"access_type":"offline","prompt":"consent","include_granted_scopes":"true"}',
   1, 1735689600, 1735689600),
  ('01941f29-7c00-7000-8000-000000000002', 'motion', 'Motion', 'api_key',
   NULL, NULL, NULL,
   'https://api.usemotion.com/v1',
   '[]',
   NULL, NULL, NULL, 'X-API-Key',
   '{}',
   1, 1735689600, 1735689600);

-- oauthdb migration 0002 (PostgreSQL 15): seeds the two supported services
-- with the same fixed ids, values and timestamps as the SQLite migration
-- 0002, so rows exported from any dev database match these exactly.

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
   true, '2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00'),
  ('01941f29-7c00-7000-8000-000000000002', 'motion', 'Motion', 'api_key',
   NULL, NULL, NULL,
   'https://api.usemotion.com/v1',
   '[]',
   NULL, NULL, NULL, 'X-API-Key',
   '{}',
   true, '2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00');

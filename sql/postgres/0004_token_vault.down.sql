-- oauthdb migration 0004 (PostgreSQL 15), down: the vault view, its
-- triggers and functions go; oauth_tokens and its sealed values stay.
DROP VIEW oauth_token_vault;
DROP FUNCTION oauth_token_vault_write();
DROP FUNCTION oauth_token_vault_statement();
DROP FUNCTION oauth_token_vault_audit(text, uuid, uuid, timestamptz);
DROP FUNCTION oauth_token_vault_open(bytea, text, uuid);
DROP FUNCTION oauth_token_vault_ready();

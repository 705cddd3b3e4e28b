-- oauthdb migration 0004 (SQLite): nothing to do.  In SQLite the vault,
-- oauth_token_vault, is the extension's eponymous virtual table
-- (ext/sqlite/vault.c), there whenever the extension is loaded.  PostgreSQL's
-- 0004 creates its vault as a view over oauth_tokens (docs/POSTGRES.md); this
-- file keeps the numbering equal on both engines, which oauthdb-export relies
-- on: it brings the target to the source's version, migration for migration.
SELECT 1;

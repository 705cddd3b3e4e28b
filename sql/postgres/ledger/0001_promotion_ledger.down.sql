-- oauthdb-export ledger migration 0001, undone: forgets every promotion
-- (the next one treats production's rows as never promoted).
DROP TABLE IF EXISTS oauthdb_promoted_rows;
DROP FUNCTION IF EXISTS oauthdb_promoted_rows_changed();
DROP TABLE IF EXISTS oauthdb_promoted_tables;
DROP TABLE IF EXISTS oauthdb_promotion_runs;

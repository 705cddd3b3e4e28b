-- oauthdb-export ledger migration 0001, undone: forgets every promotion
-- (the next one treats production's rows as never promoted).
DROP TABLE IF EXISTS oauthdb_promoted_rows;
DROP TABLE IF EXISTS oauthdb_promotion_runs;

-- oauthdb-export ledger migration 0001 (PostgreSQL): what each promotion
-- wrote, so that a rerun can tell dev's changes from production's.
--
-- The ledger belongs to the exporter, not to the application schema: it
-- has its own numbering (recorded in oauthdb_ledger_migrations, not in
-- schema_migrations), exists only in targets oauthdb-export writes to, and
-- is applied whatever the source's schema version. docs/EXPORT.md, "The
-- ledger", describes it.

-- One row per promotion that committed.
CREATE TABLE oauthdb_promotion_runs (
  run_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- the dev database: --source-id, or derived from host and path
  source_id       text        NOT NULL CHECK (source_id <> ''),
  source_name     text        NOT NULL,      -- the path as given, for people
  schema_version  integer     NOT NULL CHECK (schema_version > 0),
  secrets_mode    text        NOT NULL
                  CONSTRAINT oauthdb_promotion_runs_secrets_mode_known
                  CHECK (secrets_mode IN ('none', 'keep', 'reseal', 'omit')),
  -- key ids (8 hex digits) of the source's sealed values; under reseal the
  -- production key that sealed what was sent
  source_key_ids  text[]      NOT NULL DEFAULT '{}',
  target_key_id   text,
  promoted_at     timestamptz NOT NULL DEFAULT now(),
  -- per table: read, inserted, updated, unchanged, kept, conflicts, deleted
  counts          jsonb       NOT NULL DEFAULT '{}'
);

-- One row per table a promotion met: its number in oauthdb_promoted_rows
-- (a smallint there instead of the name: the ledger has a row per promoted
-- row, so every byte counts), and a summary of its ledger rows that lets a
-- rerun find "dev changed nothing in this table" without reading them:
--   summary       the sum, as four 64-bit lanes, of BLAKE2b-256(row_id ||
--                 digest) over the table's rows in oauthdb_promoted_rows
--                 (order does not matter), or NULL when unknown;
--   summary_rows  how many rows that is;
--   summary_xmins the distinct row_xmin of those rows, or NULL when there
--                 are too many to list (the rerun counts production's
--                 changes from them).
-- Any write to oauthdb_promoted_rows forgets every summary (the trigger
-- below); oauthdb-export sets again those it knows to hold, in the same
-- transaction.
CREATE TABLE oauthdb_promoted_tables (
  table_no       smallint PRIMARY KEY CHECK (table_no > 0),
  table_name     text     NOT NULL UNIQUE,
  summary        bytea    CHECK (length(summary) = 32),
  summary_rows   bigint   CHECK (summary_rows >= 0),
  summary_xmins  xid[]
);

-- One row per promoted row: the digest of the row as sent (its sent
-- columns but id, sealed values as the source holds them; BLAKE2b, 16
-- bytes) and the row version (xmin) the promotion left in the table. A
-- rerun compares the source's digest with digest (did dev change it?) and
-- the table's xmin with row_xmin (did production?). row_xmin is an xid,
-- compared with xmin as it is.
CREATE TABLE oauthdb_promoted_rows (
  row_id      uuid     NOT NULL,
  digest      bytea    NOT NULL CHECK (length(digest) = 16),
  table_no    smallint NOT NULL,  -- oauthdb_promoted_tables (no foreign key:
                                  -- checked per row, it would cost a lookup each)
  row_xmin    xid      NOT NULL,  -- compared with the row's xmin as it is
  run_id      bigint   NOT NULL,  -- oauthdb_promotion_runs, same transaction
  CONSTRAINT oauthdb_promoted_rows_pkey PRIMARY KEY (table_no, row_id)
);

-- Whoever writes ledger rows (an exporter, or a person), the summaries no
-- longer hold: once per statement, not per row.
CREATE FUNCTION oauthdb_promoted_rows_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE oauthdb_promoted_tables SET summary = NULL, summary_rows = NULL, summary_xmins = NULL
   WHERE summary IS NOT NULL;
  RETURN NULL;
END
$$;
CREATE TRIGGER oauthdb_promoted_rows_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oauthdb_promoted_rows
  FOR EACH STATEMENT EXECUTE FUNCTION oauthdb_promoted_rows_changed();

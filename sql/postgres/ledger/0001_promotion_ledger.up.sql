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

-- One row per promoted row: the digest of the row as sent (its sent
-- columns but id, sealed values as the source holds them) and the row
-- version (xmin) the promotion left in the table. A rerun compares the
-- source's digest with digest (did dev change it?) and the table's xmin
-- with row_xmin (did production?). row_xmin is an xid, compared with xmin as it is.
CREATE TABLE oauthdb_promoted_rows (
  table_name  text    COLLATE "C" NOT NULL,   -- byte order: cheap to compare
  row_id      uuid    NOT NULL,
  digest      bytea   NOT NULL CHECK (length(digest) = 32),
  row_xmin    xid     NOT NULL,   -- compared with the row's xmin as it is
  run_id      bigint  NOT NULL,   -- oauthdb_promotion_runs, same transaction
  CONSTRAINT oauthdb_promoted_rows_pkey PRIMARY KEY (table_name, row_id)
);

/*
** export_ledger.c: three-way promotion. A promotion never overwrites what
** production changed.
**
** The target keeps a ledger of what each promotion wrote (sql/postgres/
** ledger, the exporter's own migrations, applied whatever the source's
** schema version):
**
**   oauthdb_promotion_runs   per run: the source's identity, its schema
**                            version, the secrets mode and key ids, the time,
**                            the counts
**   oauthdb_promoted_rows    per promoted row: table, id, the digest of the
**                            row as sent (export_digest.c), the row version
**                            (xmin) the promotion left, the run
**
** For every source row, three sides: the source's digest S, the ledger's L
** (what was sent last time) and the target's row, whose xmin still equals
** the ledger's row_xmin exactly when nobody wrote the row since (every
** UPDATE makes a new row version with the writer's transaction id). So:
**
**   not in the ledger, not in the target         insert
**   not in the ledger, in the target, equal      same: recorded, not written
**   not in the ledger, in the target, different  conflict (never promoted)
**   S = L, target as left                        unchanged
**   S = L, target changed or deleted since       kept: production's stays
**   S != L, target as left                       update (if this source
**                                                wrote it; else conflict)
**   S != L, target equal to the source row       same (both made one change)
**   S != L, target changed or deleted since      conflict
**
** Conflicts stop the run before COMMIT, each listed with table, id and
** the columns that differ, unless --on-conflict=dev (dev's row is written)
** or --on-conflict=prod (production's stays, and the ledger takes the
** source's digest, so the next run sees nothing to do). Ledger rows the
** source no longer has are rows dev removed: reported; with
** --delete-removed deleted in production where production has not changed
** them and no row references them.
**
** Secrets: rows this run would write in a table with sealed columns must
** have been written by the same --secrets mode (and, for keep, under the
** same dev keys); otherwise the run is refused before that table is
** written, saying what production holds (export_ledger_secrets below).
**
** Everything, ledger included, happens in the export's one transaction:
** rows and ledger commit together or not at all.
*/
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include "export.h"
#include "migrations.h"

#define MAX_CONFLICTS_KEPT 100   /* in the --json report; stderr lists all */

static int exec_simple(exporter *ex, const char *what, const char *sql);

/* ---- the ledger's own migrations -------------------------------------- */

static int ledger_migrate(exporter *ex) {
  const migration_set ledger = {
      "oauthdb_ledger_migrations", "ledger migration", "'s promotion ledger",
      "a newer oauthdb-export wrote it", ledger_migrations, ledger_migration_count,
      ledger_migration_count ? ledger_migrations[ledger_migration_count - 1].version : 0};
  int before;
  return migrate_set(ex, &ledger, &before);
}

/*
** The source's identity. The source is opened read-only and the exporter
** writes no file, so it cannot be given an id of its own: --source-id
** names it (a developer's name for their database, kept across moves),
** and otherwise it is derived from where it lives: SHA-256 of the host
** name and the file's absolute path, as "path:<16 hex digits>".
*/
static char *source_identity(exporter *ex) {
  if (ex->source_id_opt) return ex_xstrdup(ex->source_id_opt);
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  char *real = realpath(ex->source_path, NULL);
  const char *path = real ? real : ex->source_path;
  crypto_hash_sha256_state st;
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const unsigned char *)host, strlen(host) + 1);
  crypto_hash_sha256_update(&st, (const unsigned char *)path, strlen(path));
  crypto_hash_sha256_final(&st, h);
  free(real);
  char hex[17];
  sodium_bin2hex(hex, sizeof hex, h, 8);
  return ex_strdup_printf("path:%s", hex);
}

void ledger_note_key_id(exporter *ex, uint32_t kid) {
  for (int i = 0; i < ex->ledger.n_key_ids; i++)
    if (ex->ledger.key_ids[i] == kid) return;
  if (ex->ledger.n_key_ids < (int)(sizeof ex->ledger.key_ids / sizeof ex->ledger.key_ids[0]))
    ex->ledger.key_ids[ex->ledger.n_key_ids++] = kid;
}

/* '{0a1b2c3d,...}', sorted, for text[] (malloc'd). */
static char *key_ids_array(const exporter *ex) {
  uint32_t ids[16];
  int n = ex->ledger.n_key_ids;
  memcpy(ids, ex->ledger.key_ids, sizeof ids[0] * (size_t)n);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
      uint32_t x = ids[j];
      ids[j] = ids[j - 1], ids[j - 1] = x;
    }
  ex_buf b = {0, 0, 0};
  buf_printf(&b, "{");
  for (int i = 0; i < n; i++) buf_printf(&b, "%s%08x", i ? "," : "", ids[i]);
  buf_printf(&b, "}");
  return (char *)b.p;
}

/* After target_catalog: the ledger exists, this run has its row, and each
** table knows how many of its rows the ledger holds. */
static int ledger_prepare_impl(exporter *ex) {
  if (ledger_migrate(ex)) return -1;
  ex->ledger.source_id = source_identity(ex);
  for (int i = 0; i < ex->n_tables; i++) {
    ex_table *t = &ex->tables[i];
    if (t->id_col < 0 || t->cols[t->id_col].kind != PGK_UUID)
      return ex_fail(ex, EXIT_TARGET,
                     "target %s: %s.id is not uuid; the promotion ledger needs uuid ids",
                     ex->target_desc, t->name);
  }
  /* No one else writes the ledger until this run commits: the summaries
     read below stay true (or are this run's to change). */
  if (exec_simple(ex, "locking the promotion ledger",
                  "LOCK TABLE oauthdb_promoted_rows IN SHARE ROW EXCLUSIVE MODE"))
    return -1;
  /* Every table this run promotes gets its number in the ledger ... */
  ex_buf names = {0, 0, 0};
  buf_printf(&names, "{");
  for (int i = 0; i < ex->n_tables; i++) {
    buf_printf(&names, "%s\"", i ? "," : "");  /* an array element, quoted */
    for (const char *c = ex->tables[i].name; *c; c++)
      buf_printf(&names, "%s%c", *c == '"' || *c == '\\' ? "\\" : "", *c);
    buf_printf(&names, "\"");
  }
  buf_printf(&names, "}");
  const char *np[] = {(char *)names.p};
  PGresult *r = pg_exec_params(
      ex, "numbering tables in the promotion ledger",
      "INSERT INTO oauthdb_promoted_tables (table_no, table_name) "
      "SELECT (SELECT coalesce(max(table_no), 0) FROM oauthdb_promoted_tables) + "
      "row_number() OVER (ORDER BY n.ord), n.name FROM unnest($1::text[]) WITH ORDINALITY n(name, ord) "
      "WHERE NOT EXISTS (SELECT 1 FROM oauthdb_promoted_tables p WHERE p.table_name = n.name)",
      1, np);
  free(names.p);
  if (!r) return -1;
  PQclear(r);
  /* ... and, for each, whether the ledger holds rows of it at all (a count
     of millions of index entries would cost a rerun more than it says: a
     table it knows takes the changed-rows path, export_digest.c, which
     sends everything anyway when most rows turn out new), and its summary */
  r = pg_exec(ex, "reading the promotion ledger",
              "SELECT p.table_name, p.table_no, EXISTS (SELECT 1 FROM oauthdb_promoted_rows l "
              "WHERE l.table_no = p.table_no), encode(p.summary, 'hex'), p.summary_rows, "
              "p.summary_xmins FROM oauthdb_promoted_tables p");
  if (!r) return -1;
  for (int k = 0; k < PQntuples(r); k++) {
    ex_table *t = NULL;
    for (int i = 0; i < ex->n_tables; i++)
      if (!strcmp(ex->tables[i].name, PQgetvalue(r, k, 0))) t = &ex->tables[i];
    if (!t) continue;
    t->ledger.no = atoi(PQgetvalue(r, k, 1));
    t->ledger.rows = PQgetvalue(r, k, 2)[0] == 't';
    ex->ledger.rows_before += t->ledger.rows;
    unsigned char sum[32];
    size_t n = 0;
    if (!PQgetisnull(r, k, 3) && !PQgetisnull(r, k, 4) &&
        sodium_hex2bin(sum, sizeof sum, PQgetvalue(r, k, 3), 64, NULL, &n, NULL) == 0 &&
        n == sizeof sum) {
      t->ledger.has_summary = 1;
      for (int j = 0; j < 4; j++) {
        uint64_t v = 0;
        for (int b = 0; b < 8; b++) v = v << 8 | sum[8 * j + b];
        t->ledger.summary.lane[j] = v;
      }
      t->ledger.summary.rows = strtoll(PQgetvalue(r, k, 4), NULL, 10);
      t->ledger.summary_xmins =
          PQgetisnull(r, k, 5) ? NULL : ex_xstrdup(PQgetvalue(r, k, 5));
    }
  }
  PQclear(r);
  /* Writing ledger rows forgets every summary (the ledger's trigger);
     ledger_finish puts back those of tables this run did not write. */
  if (exec_simple(ex, "reading the promotion ledger",
                  "CREATE TEMP TABLE oauthdb_summaries ON COMMIT DROP AS "
                  "SELECT table_no, summary, summary_rows, summary_xmins "
                  "FROM oauthdb_promoted_tables WHERE summary IS NOT NULL"))
    return -1;
  for (int i = 0; i < ex->n_tables; i++)
    if (ex->tables[i].ledger.no <= 0)
      return ex_fail(ex, EXIT_TARGET, "target %s: the promotion ledger has no number for %s",
                     ex->target_desc, ex->tables[i].name);
  /* the run's row; its counts are filled in by ledger_finish */
  char version[16];
  snprintf(version, sizeof version, "%d", ex->source_version);
  const char *params[] = {ex->ledger.source_id, ex->source_path, version,
                          secrets_mode_name(ex->secrets)};
  r = pg_exec_params(ex, "recording the run in the promotion ledger",
                     "INSERT INTO oauthdb_promotion_runs "
                     "(source_id, source_name, schema_version, secrets_mode) "
                     "VALUES ($1, $2, $3, $4) "
                     "RETURNING run_id, (txid_current() % 4294967296)::bigint",
                     4, params);
  if (!r) return -1;
  snprintf(ex->ledger.run_id, sizeof ex->ledger.run_id, "%s", PQgetvalue(r, 0, 0));
  snprintf(ex->ledger.xid, sizeof ex->ledger.xid, "%s", PQgetvalue(r, 0, 1));
  PQclear(r);
  return 0;
}

/* ---- an empty table, loaded by COPY: every row is the run's ----------- */

/*
** A first promotion finds the ledger empty: its primary key is dropped
** before the first rows go in and built once at the end (ledger_finish),
** one sort instead of an index insert per row, as export_direct.c does
** for the tables. Inside the transaction: nobody sees the ledger without
** its key. The run records every row once, so nothing needs the key to
** find a duplicate meanwhile (ledger_record inserts plainly), and the
** rebuild checks that anyway.
*/
static int defer_pk(exporter *ex) {
  if (ex->ledger.pk_deferred || ex->ledger.rows_before > 0) return 0;
  PGresult *r = pg_exec(ex, "reading the promotion ledger",
                        "SELECT NOT EXISTS (SELECT 1 FROM oauthdb_promoted_rows)");
  if (!r) return -1;
  int empty = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  if (!empty) {
    ex->ledger.rows_before = 1;  /* not empty after all: no deferring */
    return 0;
  }
  if (exec_simple(ex, "deferring the promotion ledger's key",
                  "ALTER TABLE oauthdb_promoted_rows DROP CONSTRAINT oauthdb_promoted_rows_pkey"))
    return -1;
  ex->ledger.pk_deferred = 1;
  return 0;
}

/* A second pass over the source: (id, digest, table, xmin, run) per row,
** one binary COPY into the ledger. The rows were just written by this
** transaction, so their xmin is its id. The ledger held no row of the
** table, so these are all its rows: their summary is known. */
static int ledger_record_direct_impl(exporter *ex, ex_table *t) {
  if (t->n_source == 0) {  /* nothing to record; and no statement, which
                             would make the ledger forget every summary */
    t->ledger.known = 1;
    memset(&t->ledger.found, 0, sizeof t->ledger.found);
    free(t->ledger.found_xmins);
    t->ledger.found_xmins = ex_xstrdup("{}");
    return 0;
  }
  if (defer_pk(ex)) return -1;
  char *sql = source_select_sql(t, 0);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(ex->src, sql, -1, &st, NULL);
  free(sql);
  if (rc != SQLITE_OK)
    return ex_fail(ex, EXIT_NOINPUT, "source %s: cannot read %s: %s", ex->source_path,
                   t->name, sqlite3_errmsg(ex->src));
  char *what = ex_strdup_printf("recording %s in the promotion ledger", t->name);
  ex_copy c;
  rc = copy_start(ex, &c,
                  "COPY oauthdb_promoted_rows (row_id, digest, table_no, row_xmin, run_id) "
                  "FROM STDIN (FORMAT binary)", what);
  free(what);
  if (rc) {
    sqlite3_finalize(st);
    return -1;
  }
  ex_digester *d = digester_new(t);
  int64_t xid = strtoll(ex->ledger.xid, NULL, 10), run = strtoll(ex->ledger.run_id, NULL, 10);
  ex_summary sum;
  memset(&sum, 0, sizeof sum);
  t->ledger.wrote = 1;
  while (!c.failed && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    unsigned char h[LEDGER_DIGEST_BYTES], u[16];
    if (digester_row(ex, t, d, st, h)) {
      c.failed = 1;
      break;
    }
    uuid_bytes(sqlite3_column_text(st, t->id_col + 1), u);
    summary_add(&sum, u, h);
    buf_be(&c.b, 5, 2);
    buf_field(&c.b, u, 16);
    buf_field(&c.b, h, LEDGER_DIGEST_BYTES);
    buf_be(&c.b, 2, 4), buf_be(&c.b, (uint64_t)t->ledger.no, 2);
    buf_be(&c.b, 4, 4), buf_be(&c.b, (uint64_t)xid, 4);  /* xid: uint32 */
    buf_be(&c.b, 8, 4), buf_be(&c.b, (uint64_t)run, 8);
    if (copy_tuple_done(&c)) break;
  }
  if (!c.failed && rc != SQLITE_DONE) {
    ex_fail(ex, EXIT_NOINPUT, "source %s: reading %s failed: %s", ex->source_path, t->name,
            sqlite3_errmsg(ex->src));
    c.failed = 1;
  }
  sqlite3_finalize(st);
  int64_t taken = 0;
  rc = copy_finish(&c, &taken);
  digester_delete(d, t);
  ex->ledger.rows_written += taken;
  if (rc == 0) {
    t->ledger.known = 1;
    t->ledger.found = sum;
    free(t->ledger.found_xmins);
    t->ledger.found_xmins = ex_strdup_printf("{%s}", ex->ledger.xid);
  }
  return rc;
}

/* ---- a staged table: classify, check secrets, record ------------------ */

/* "ROW(a.x, a.y, ...)" over the sent columns but id (malloc'd). */
static char *row_expr(const ex_table *t, const char *alias) {
  ex_buf b = {0, 0, 0};
  buf_printf(&b, "ROW(");
  int first = 1;
  for (int j = 0; j < t->n_cols; j++) {
    if (!t->cols[j].sent || j == t->id_col) continue;
    char *q = sql_ident(t->cols[j].name);
    buf_printf(&b, "%s%s.%s", first ? "" : ", ", alias, q);
    free(q);
    first = 0;
  }
  buf_printf(&b, ")");
  return (char *)b.p;
}

/* The names of the columns where cur and s differ, as text[] (malloc'd). */
static char *diff_columns_expr(const ex_table *t) {
  ex_buf b = {0, 0, 0};
  buf_printf(&b, "array_remove(ARRAY[NULL::text");
  for (int j = 0; j < t->n_cols; j++) {
    if (!t->cols[j].sent || j == t->id_col) continue;
    char *q = sql_ident(t->cols[j].name);
    char *lit = ex_strdup_printf("'%s'", t->cols[j].name);  /* catalog names: no quote */
    if (strchr(t->cols[j].name, '\'')) {
      free(lit);
      lit = ex_xstrdup("'?'");
    }
    buf_printf(&b, ", CASE WHEN cur.%s IS DISTINCT FROM s.%s THEN %s END", q, q, lit);
    free(q), free(lit);
  }
  buf_printf(&b, "], NULL)");
  return (char *)b.p;
}

static void keep_conflict(exporter *ex, const char *table, const char *id,
                          const char *columns, const char *reason) {
  ex->ledger.n_conflicts++;
  if (ex->ledger.n_conflicts_kept >= MAX_CONFLICTS_KEPT) return;
  ex->ledger.conflicts = ex_xrealloc(
      ex->ledger.conflicts, sizeof *ex->ledger.conflicts * (size_t)(ex->ledger.n_conflicts_kept + 1));
  ex_conflict *c = &ex->ledger.conflicts[ex->ledger.n_conflicts_kept++];
  c->table = ex_xstrdup(table);
  c->id = ex_xstrdup(id);
  c->columns = ex_xstrdup(columns);
  c->reason = ex_xstrdup(reason);
}

static int exec_simple(exporter *ex, const char *what, const char *sql) {
  PGresult *r = pg_exec(ex, what, sql);
  if (!r) return -1;
  PQclear(r);
  return 0;
}

/*
** Secrets: the rows about to be written (actions in `writes`) were last
** written under some mode and keys. Refused:
**   keep over rows reseal or omit wrote: production's keyring opens what it
**     holds there, and would not open dev's sealed values (always refused);
**   keep whose values are sealed under other dev keys than the values
**     production holds in the same rows (dev rotated its keyring), reseal over
**     keep or omit, and any other change of mode: refused unless
**     --allow-secrets-change says the change is meant.
** omit writes no sealed value, so it is never refused.
*/
static int check_secrets(exporter *ex, ex_table *t, const char *qt, const char *stage,
                         const char *plan, const char *writes) {
  if (!t->has_sealed || ex->secrets == SECRETS_OMIT) return 0;
  /* a sealed value's key id: header bytes 2..5 (ext/core/seal.h) */
  ex_buf other = {0, 0, 0}, new_ids = {0, 0, 0};
  buf_printf(&other, "false");
  buf_printf(&new_ids, "NULL::text");
  for (int j = 0; j < t->n_cols; j++) {
    if (!t->cols[j].sealed || !t->cols[j].sent) continue;
    char *q = sql_ident(t->cols[j].name);
    buf_printf(&other,
               " OR substring(cur.%s from 3 for 4) <> substring(s.%s from 3 for 4)", q, q);
    buf_printf(&new_ids, ", encode(substring(s.%s from 3 for 4), 'hex')", q);
    free(q);
  }
  char *sql = ex_strdup_printf(
      "SELECT r.secrets_mode, array_to_string(r.source_key_ids, ' '), "
      "coalesce(r.target_key_id, ''), min(r.run_id), count(*), "
      "count(*) FILTER (WHERE %s), "
      "(SELECT string_agg(DISTINCT k, ' ') FROM unnest(array_agg(DISTINCT ARRAY[%s])) k) "
      "FROM %s p JOIN %s s ON s.id = p.id "
      "JOIN oauthdb_promoted_rows l ON l.table_no = %d AND l.row_id = p.id "
      "JOIN oauthdb_promotion_runs r ON r.run_id = l.run_id "
      "LEFT JOIN %s cur ON cur.id = p.id "
      "WHERE p.action IN (%s) GROUP BY 1, 2, 3 ORDER BY 4",
      (char *)other.p, (char *)new_ids.p, plan, stage, t->ledger.no, qt, writes);
  free(other.p), free(new_ids.p);
  PGresult *r = pg_exec(ex, "checking secrets against the promotion ledger", sql);
  free(sql);
  if (!r) return -1;
  const char *mode = secrets_mode_name(ex->secrets);
  int rc = 0;
  for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
    const char *was = PQgetvalue(r, i, 0), *was_keys = PQgetvalue(r, i, 1);
    const char *was_target = PQgetvalue(r, i, 2), *run = PQgetvalue(r, i, 3);
    const char *n = PQgetvalue(r, i, 4);
    /* keep over keep: are the values to write sealed under the keys of
       those production holds in the same rows? */
    int same_keys = strtoll(PQgetvalue(r, i, 5), NULL, 10) == 0;
    const char *keys = PQgetvalue(r, i, 6);
    int same_mode = !strcmp(was, mode);
    if (same_mode && (ex->secrets != SECRETS_KEEP || same_keys)) continue;
    char holds[256];
    if (!strcmp(was, "reseal"))
      snprintf(holds, sizeof holds, "values sealed for production's own keyring (key %s)",
               was_target[0] ? was_target : "?");
    else if (!strcmp(was, "keep"))
      snprintf(holds, sizeof holds, "dev's sealed values as they were (dev keys %s)",
               was_keys[0] ? was_keys : "none");
    else if (!strcmp(was, "omit"))
      snprintf(holds, sizeof holds, "its own token values (the promotion left them out)");
    else
      snprintf(holds, sizeof holds, "values written under --secrets=%s", was);
    int never = ex->secrets == SECRETS_KEEP && (!strcmp(was, "reseal") || !strcmp(was, "omit"));
    if (never) {
      rc = ex_fail(ex, EXIT_USAGE,
                   "refused: production's %s holds %s in %s rows this run would update "
                   "(promoted with --secrets=%s, run %s); --secrets=keep would replace them "
                   "with dev's sealed values (keys %s), which production's keyring cannot "
                   "open. Use --secrets=reseal --target-keyring FILE (production's keyring) "
                   "or --secrets=omit; nothing was committed",
                   t->name, holds, n, was, run, keys[0] ? keys : "none");
    } else if (!ex->allow_secrets_change) {
      rc = ex_fail(ex, EXIT_USAGE,
                   "refused: production's %s holds %s in %s rows this run would update "
                   "(promoted with --secrets=%s, run %s); this run's --secrets=%s%s%s would "
                   "replace them with values sealed differently. Run with --secrets=%s%s, "
                   "or, if production's keyring opens what this run sends, add "
                   "--allow-secrets-change; nothing was committed",
                   t->name, holds, n, was, run, mode,
                   ex->secrets == SECRETS_KEEP ? " with dev keys " : "",
                   ex->secrets == SECRETS_KEEP ? keys : "", was,
                   !strcmp(was, "keep") ? " and the dev keyring production already has" : "");
    }
  }
  PQclear(r);
  return rc;
}

/* Every source row was staged (into the plan, when there were any): the
** ledger's rows not among them are rows dev removed. */
static int ledger_gone_full_impl(exporter *ex, ex_table *t, int index, int plan_exists) {
  if (t->ledger.rows == 0) return 0;
  ex_buf b = {0, 0, 0};
  buf_printf(&b,
             "CREATE TEMP TABLE oauthdb_gone_%d ON COMMIT DROP AS "
             "SELECT l.row_id AS id FROM oauthdb_promoted_rows l WHERE l.table_no = %d",
             index, t->ledger.no);
  if (plan_exists)
    buf_printf(&b, " AND NOT EXISTS (SELECT 1 FROM oauthdb_plan_%d p WHERE p.id = l.row_id)",
               index);
  PGresult *g = pg_exec(ex, "finding rows removed in dev", (char *)b.p);
  free(b.p);
  if (!g) return -1;
  t->counts.removed_in_dev = strtoll(PQcmdTuples(g), NULL, 10);
  t->ledger.gone_ready = 1;
  PQclear(g);
  return 0;
}

/*
** After staging (and reseal's reconciliation): pg_temp.oauthdb_plan_N
** gets each staged row's action; conflicts are listed; pg_temp.oauthdb_write_N
** gets the rows to write. full_stage: every source row was staged (so ledger rows
** missing from the stage are rows dev removed).
*/
static int ledger_classify_impl(exporter *ex, ex_table *t, const char *qt, const char *stage,
                    int index, int full_stage, int64_t *n_to_write) {
  char *src_lit = PQescapeLiteral(ex->pg, ex->ledger.source_id, strlen(ex->ledger.source_id));
  char *cur_row = row_expr(t, "cur"), *s_row = row_expr(t, "s");
  char *diff = diff_columns_expr(t);
  ex_buf b = {0, 0, 0};
  int rc = -1;
  buf_printf(&b,
             "CREATE TEMP TABLE oauthdb_plan_%d ON COMMIT DROP AS "
             "SELECT s.id, s." LEDGER_DIGEST_COL " AS digest, l.run_id AS last_run, "
             "r.source_name AS last_source, "
             "CASE "
             " WHEN l.row_id IS NULL THEN CASE WHEN cur.id IS NULL THEN 'insert' "
             "   WHEN %s IS NOT DISTINCT FROM %s THEN 'same' ELSE 'conflict:unpromoted' END "
             " WHEN l.digest = s." LEDGER_DIGEST_COL " THEN CASE WHEN cur.id IS NULL THEN 'kept:deleted' "
             "   WHEN cur.xmin = l.row_xmin THEN 'unchanged' ELSE 'kept' END "
             " WHEN cur.id IS NULL THEN 'conflict:deleted' "
             " WHEN %s IS NOT DISTINCT FROM %s THEN 'same' "
             " WHEN cur.xmin <> l.row_xmin THEN 'conflict:both' "
             " WHEN r.source_id IS DISTINCT FROM %s THEN 'conflict:source' "
             " ELSE 'update' END AS action, "
             "CASE WHEN cur.id IS NULL THEN NULL ELSE %s END AS columns "
             "FROM %s s "
             "LEFT JOIN oauthdb_promoted_rows l ON l.table_no = %d AND l.row_id = s.id "
             "LEFT JOIN oauthdb_promotion_runs r ON r.run_id = l.run_id "
             "LEFT JOIN %s cur ON cur.id = s.id",
             index, cur_row, s_row, cur_row, s_row, src_lit ? src_lit : "''", diff, stage,
             t->ledger.no, qt);
  if (exec_simple(ex, "classifying rows against the promotion ledger", (char *)b.p)) goto done;

  /* the counts, and every conflict by table, id and columns */
  b.len = 0;
  buf_printf(&b,
             "SELECT action, count(*) FROM oauthdb_plan_%d GROUP BY 1; "
             "SELECT id, action, array_to_string(columns, ', '), last_run, last_source "
             "FROM oauthdb_plan_%d WHERE action LIKE 'conflict%%' ORDER BY id",
             index, index);
  if (!PQsendQuery(ex->pg, (char *)b.p)) {
    pg_fail(ex, "reading the classification", NULL);
    goto done;
  }
  PGresult *r;
  int part = 0, failed = 0;
  int64_t kept = 0, conflicts = 0;
  while ((r = PQgetResult(ex->pg))) {
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      if (!failed) pg_fail(ex, "reading the classification", r);
      failed = 1;
    } else if (part == 0) {
      for (int i = 0; i < PQntuples(r); i++) {
        const char *a = PQgetvalue(r, i, 0);
        int64_t n = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        if (!strncmp(a, "kept", 4)) kept += n;
        if (!strncmp(a, "conflict", 8)) conflicts += n;
      }
    } else {
      for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0), *a = PQgetvalue(r, i, 1);
        const char *cols = PQgetvalue(r, i, 2), *run = PQgetvalue(r, i, 3);
        const char *from = PQgetvalue(r, i, 4);
        char reason[512];
        if (!strcmp(a, "conflict:unpromoted"))
          snprintf(reason, sizeof reason, "in production but never promoted, and different");
        else if (!strcmp(a, "conflict:deleted"))
          snprintf(reason, sizeof reason,
                   "deleted in production and changed in dev since run %s", run);
        else if (!strcmp(a, "conflict:source"))
          snprintf(reason, sizeof reason,
                   "last promoted from another source (%s, run %s), and different", from, run);
        else
          snprintf(reason, sizeof reason,
                   "changed in production and in dev since run %s", run);
        const char *resolution = ex->on_conflict == CONFLICT_DEV    ? "; dev's row is written"
                                 : ex->on_conflict == CONFLICT_PROD ? "; production's row stays"
                                                                    : "";
        ex_note(ex, "conflict: %s id=%s (%s): %s%s", t->name, id, reason,
                cols[0] ? cols : "(the whole row)", resolution);
        keep_conflict(ex, t->name, id, cols, reason);
      }
    }
    part++;
    PQclear(r);
  }
  if (failed) goto done;
  t->counts.conflicts = conflicts;
  t->counts.kept = kept + (ex->on_conflict == CONFLICT_PROD ? conflicts : 0);

  const char *writes = ex->on_conflict == CONFLICT_DEV
                           ? "'insert', 'update', 'conflict:unpromoted', 'conflict:deleted', "
                             "'conflict:both', 'conflict:source'"
                           : "'insert', 'update'";
  char *plan = ex_strdup_printf("pg_temp.oauthdb_plan_%d", index);
  rc = check_secrets(ex, t, qt, stage, plan, writes);
  free(plan);
  if (rc) goto done;
  rc = -1;

  /* rows dev removed: on the full path, the ledger's rows not staged */
  if (full_stage && ledger_gone_full_impl(ex, t, index, 1)) goto done;

  /* the rows to write, for the upsert (stage stays whole for --verify) */
  b.len = 0;
  buf_printf(&b,
             "CREATE TEMP TABLE oauthdb_write_%d ON COMMIT DROP AS SELECT s.* FROM %s s "
             "JOIN oauthdb_plan_%d p ON p.id = s.id WHERE p.action IN (%s)",
             index, stage, index, writes);
  PGresult *d = pg_exec(ex, "choosing the rows to write", (char *)b.p);
  if (!d) goto done;
  *n_to_write = strtoll(PQcmdTuples(d), NULL, 10);
  PQclear(d);
  rc = 0;
done:
  PQfreemem(src_lit);
  free(cur_row), free(s_row), free(diff), free(b.p);
  return rc;
}

/*
** After the upsert: the ledger gets the digest and the row version of every
** row this run wrote or found equal, and, under --on-conflict=prod, of the
** conflicts production kept (so the next run sees nothing to do). Rows the
** upsert skipped (omit, no parent) are not in the target and not recorded.
*/
static int ledger_record_impl(exporter *ex, ex_table *t, const char *qt, int index) {
  const char *actions = ex->on_conflict == CONFLICT_STOP
                            ? "'insert', 'update', 'same'"
                            : "'insert', 'update', 'same', 'conflict:unpromoted', "
                              "'conflict:both', 'conflict:source', 'conflict:deleted'";
  char *sql = ex_strdup_printf(
      "INSERT INTO oauthdb_promoted_rows AS l (table_no, row_id, digest, row_xmin, run_id) "
      "SELECT %d, p.id, p.digest, cur.xmin, %s FROM oauthdb_plan_%d p "
      "JOIN %s cur ON cur.id = p.id WHERE p.action IN (%s)%s",
      t->ledger.no, ex->ledger.run_id, index, qt, actions,
      ex->ledger.pk_deferred ? ""  /* the ledger was empty: no row is there yet */
                             : " ON CONFLICT (table_no, row_id) DO UPDATE SET "
                               "digest = excluded.digest, row_xmin = excluded.row_xmin, "
                               "run_id = excluded.run_id");
  t->ledger.wrote = 1, t->ledger.known = 0;
  PGresult *r = pg_exec(ex, "recording rows in the promotion ledger", sql);
  free(sql);
  if (!r) return -1;
  ex->ledger.rows_written += strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  return 0;
}

/*
** The changed-rows path (export_digest.c): ids are the ledger rows the
** source lacks, which dev removed (pass 1 counted the rows dev did not
** change and production did, from the ledger's stream).
*/
static int ledger_gone_from_ids_impl(exporter *ex, ex_table *t, int index, const char *ids,
                                     int64_t n_ids) {
  ex_buf b = {0, 0, 0};
  int rc = -1;
  buf_printf(&b, "CREATE TEMP TABLE oauthdb_gone_%d (id uuid) ON COMMIT DROP", index);
  if (exec_simple(ex, "finding rows removed in dev", (char *)b.p)) goto done;
  if (n_ids > 0) {
    b.len = 0;
    buf_printf(&b, "INSERT INTO oauthdb_gone_%d SELECT unnest($1::uuid[])", index);
    ex_buf arr = {0, 0, 0};
    buf_printf(&arr, "{");
    const char *id = ids;
    for (int64_t i = 0; i < n_ids; i++) {
      buf_printf(&arr, "%s%s", i ? "," : "", id);
      id += strlen(id) + 1;
    }
    buf_printf(&arr, "}");
    const char *params[] = {(char *)arr.p};
    PGresult *r = pg_exec_params(ex, "finding rows removed in dev", (char *)b.p, 1, params);
    free(arr.p);
    if (!r) goto done;
    PQclear(r);
  }
  t->counts.removed_in_dev = n_ids;
  t->ledger.gone_ready = 1;
  rc = 0;
done:
  free(b.p);
  return rc;
}

/*
** The changed-rows path never reads production's rows for the rows dev did
** not change (pass 1 only merged the ledger). Their `kept` count comes
** from row versions: production's rows whose xmin is one the ledger
** recorded for this table are as a promotion left them (one sequential
** read of the row headers, no join), less those among the staged and
** removed rows (counted by id). A row production wrote in a transaction
** whose id the ledger also recorded for another row (one it adopted as
** equal) would count as unchanged: only the report's count, never what is
** written. With more distinct row versions than the merge keeps, the
** exact join instead.
*/
static int ledger_count_kept_impl(exporter *ex, ex_table *t, const char *qt, int index,
                                  int staged) {
  int64_t same = 0;
  char *xmins = digest_unchanged(t, &same);
  ex_buf b = {0, 0, 0};
  int rc = -1;
  PGresult *r;
  if (!xmins && same < 0) {  /* every row was staged and classified */
    rc = 0;
    goto done;
  }
  if (!xmins) {
    buf_printf(&b,
               "SELECT count(*) FROM oauthdb_promoted_rows l LEFT JOIN %s cur ON cur.id = l.row_id "
               "WHERE l.table_no = %d AND (cur.id IS NULL OR cur.xmin <> l.row_xmin) "
               "AND NOT EXISTS (SELECT 1 FROM oauthdb_gone_%d g WHERE g.id = l.row_id)",
               qt, t->ledger.no, index);
    if (staged)
      buf_printf(&b, " AND NOT EXISTS (SELECT 1 FROM oauthdb_plan_%d p WHERE p.id = l.row_id)",
                 index);
    r = pg_exec(ex, "counting rows production changed", (char *)b.p);
    if (!r) goto done;
    t->counts.kept += strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    rc = 0;
    goto done;
  }
  /* matched: rows as a promotion left them, less the staged and removed */
  ex_buf others = {0, 0, 0};
  buf_printf(&others, "SELECT id FROM oauthdb_gone_%d", index);
  if (staged) buf_printf(&others, " UNION ALL SELECT id FROM oauthdb_plan_%d", index);
  buf_printf(&b,
             "SELECT (SELECT count(*) FROM %s WHERE xmin = ANY($1::xid[])), "
             "(SELECT count(*) FROM (%s) x "
             "JOIN oauthdb_promoted_rows l ON l.table_no = %d AND l.row_id = x.id "
             "JOIN %s cur ON cur.id = x.id WHERE cur.xmin = l.row_xmin)",
             qt, (char *)others.p, t->ledger.no, qt);
  free(others.p);
  const char *params[] = {xmins};
  r = pg_exec_params(ex, "counting rows production changed", (char *)b.p, 1, params);
  if (!r) goto done;
  int64_t matched = strtoll(PQgetvalue(r, 0, 0), NULL, 10) - strtoll(PQgetvalue(r, 0, 1), NULL, 10);
  PQclear(r);
  int64_t kept = same - matched;
  t->counts.kept += kept > 0 ? kept : 0;
  rc = 0;
done:
  free(xmins);
  free(b.p);
  return rc;
}

/* ---- the end of the run ------------------------------------------------ */

/*
** --delete-removed: children first (reverse load order). A row is deleted
** only where production has not changed it since it was promoted (same row
** version) and no row of any table references it (a foreign key's ON
** DELETE CASCADE would otherwise take production's own rows with it).
*/
static int delete_removed(exporter *ex, ex_table *t, int index) {
  char *lit = PQescapeLiteral(ex->pg, t->name, strlen(t->name));
  char *qt = sql_ident(t->name);
  ex_buf b = {0, 0, 0};
  int rc = -1;
  /* every foreign key that references t (any table of the target schema) */
  buf_printf(&b,
             "SELECT c.conrelid::regclass::text, a.attname, pa.attname, "
             "cardinality(c.conkey) FROM pg_constraint c "
             "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
             "JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1] "
             "WHERE c.contype = 'f' AND c.confrelid = %s::regclass",
             lit ? lit : "''");
  PGresult *fk = pg_exec(ex, "reading foreign keys", (char *)b.p);
  if (!fk) goto done;
  b.len = 0;
  buf_printf(&b,
             "WITH d AS (DELETE FROM %s cur USING oauthdb_gone_%d g, oauthdb_promoted_rows l "
             "WHERE cur.id = g.id AND l.table_no = %d AND l.row_id = g.id "
             "AND cur.xmin = l.row_xmin",
             qt, index, t->ledger.no);
  for (int i = 0; i < PQntuples(fk); i++) {
    if (atoi(PQgetvalue(fk, i, 3)) != 1) {  /* several columns: never delete */
      buf_printf(&b, " AND false");
      continue;
    }
    char *qc = sql_ident(PQgetvalue(fk, i, 1)), *qp = sql_ident(PQgetvalue(fk, i, 2));
    buf_printf(&b, " AND NOT EXISTS (SELECT 1 FROM %s x WHERE x.%s = cur.%s)",
               PQgetvalue(fk, i, 0), qc, qp);  /* regclass text comes quoted */
    free(qc), free(qp);
  }
  PQclear(fk);
  buf_printf(&b,
             " RETURNING cur.id), f AS (DELETE FROM oauthdb_promoted_rows l USING oauthdb_gone_%d g "
             "WHERE l.table_no = %d AND l.row_id = g.id AND (l.row_id IN (SELECT id FROM d) "
             "OR NOT EXISTS (SELECT 1 FROM %s cur WHERE cur.id = g.id)) RETURNING 1) "
             "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM f)",
             index, t->ledger.no, qt);
  t->ledger.wrote = 1, t->ledger.known = 0;
  char *what = ex_strdup_printf("deleting rows of %s removed in dev", t->name);
  PGresult *r = pg_exec(ex, what, (char *)b.p);
  free(what);
  if (!r) goto done;
  t->counts.deleted = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  rc = 0;
done:
  PQfreemem(lit);
  free(qt);
  free(b.p);
  return rc;
}

/*
** The tables' summaries at COMMIT. Writing ledger rows made the ledger's
** trigger forget all of them: those of tables this run did not write come
** back as they were, and a table whose rows this run wrote in full (an
** empty table loaded) or found all unchanged in dev gets the summary it
** computed. Every other table's stays NULL: its next rerun compares row by
** row, and finds it then.
*/
static int record_summaries(exporter *ex) {
  ex_buf b = {0, 0, 0};
  buf_printf(&b, "UPDATE oauthdb_promoted_tables p SET summary = s.summary, "
                 "summary_rows = s.summary_rows, summary_xmins = s.summary_xmins "
                 "FROM oauthdb_summaries s WHERE p.table_no = s.table_no AND p.summary IS NULL "
                 "AND s.table_no <> ALL ('{0");
  for (int i = 0; i < ex->n_tables; i++)
    if (ex->tables[i].ledger.wrote) buf_printf(&b, ",%d", ex->tables[i].ledger.no);
  buf_printf(&b, "}'::smallint[])");
  int n_known = 0;
  for (int i = 0; i < ex->n_tables; i++) {
    const ex_table *t = &ex->tables[i];
    if (!t->ledger.known) continue;
    unsigned char sum[32];
    char hex[65];
    summary_bytes(&t->ledger.found, sum);
    sodium_bin2hex(hex, sizeof hex, sum, sizeof sum);
    buf_printf(&b,
               "; UPDATE oauthdb_promoted_tables SET summary = '\\x%s', summary_rows = %lld, "
               "summary_xmins = %s%s%s WHERE table_no = %d",
               hex, (long long)t->ledger.found.rows, t->ledger.found_xmins ? "'" : "",
               t->ledger.found_xmins ? t->ledger.found_xmins : "NULL",
               t->ledger.found_xmins ? "'" : "", t->ledger.no);
    n_known++;
  }
  int rc = exec_simple(ex, "recording the tables' summaries in the promotion ledger",
                       (char *)b.p);
  free(b.p);
  if (rc == 0) ex_trace(ex, "ledger: %d table summar%s known", n_known, n_known == 1 ? "y" : "ies");
  return rc;
}

static int ledger_finish_impl(exporter *ex) {
  if (ex->ledger.n_conflicts > 0 && ex->on_conflict == CONFLICT_STOP)
    return ex_fail(ex, EXIT_CONFLICT,
                   "%lld conflict%s: rows changed in production and in dev since they were "
                   "last promoted (listed above, by table, id and columns); nothing was "
                   "committed. Rerun with --on-conflict=prod to keep production's rows, or "
                   "--on-conflict=dev to write dev's",
                   (long long)ex->ledger.n_conflicts, ex->ledger.n_conflicts == 1 ? "" : "s");
  if (ex->delete_removed)
    for (int i = ex->n_tables - 1; i >= 0; i--)
      if (ex->tables[i].ledger.gone_ready && ex->tables[i].counts.removed_in_dev > 0 &&
          delete_removed(ex, &ex->tables[i], i))
        return -1;
  for (int i = 0; i < ex->n_tables; i++) {
    ex_counts *c = &ex->tables[i].counts;
    if (c->removed_in_dev > c->deleted)
      ex_note(ex, "%s: %lld row%s promoted earlier %s no longer in the source; kept in "
              "production%s", ex->tables[i].name, (long long)(c->removed_in_dev - c->deleted),
              c->removed_in_dev - c->deleted == 1 ? "" : "s",
              c->removed_in_dev - c->deleted == 1 ? "is" : "are",
              ex->delete_removed ? " (changed there since, or still referenced)"
                                 : " (--delete-removed deletes those production has not changed)");
  }
  if (ex->ledger.pk_deferred) {
    if (exec_simple(ex, "building the promotion ledger's key",
                    "ALTER TABLE oauthdb_promoted_rows ADD CONSTRAINT oauthdb_promoted_rows_pkey "
                    "PRIMARY KEY (table_no, row_id)"))
      return -1;
    ex->ledger.pk_deferred = 0;
    ex_trace(ex, "ledger: its key built");
  }
  if (record_summaries(ex)) return -1;
  /* the run's counts and key ids */
  ex_buf b = {0, 0, 0};
  buf_printf(&b, "{");
  for (int i = 0; i < ex->n_tables; i++) {
    const ex_counts *c = &ex->tables[i].counts;
    buf_printf(&b,
               "%s\"%s\":{\"read\":%lld,\"inserted\":%lld,\"updated\":%lld,\"unchanged\":%lld,"
               "\"kept\":%lld,\"conflicts\":%lld,\"removed_in_dev\":%lld,\"deleted\":%lld,"
               "\"skipped\":%lld}",
               i ? "," : "", ex->tables[i].name, (long long)c->read, (long long)c->inserted,
               (long long)c->updated, (long long)c->unchanged, (long long)c->kept,
               (long long)c->conflicts, (long long)c->removed_in_dev, (long long)c->deleted,
               (long long)c->skipped);
  }
  buf_printf(&b, "}");
  char *keys = key_ids_array(ex);
  char target_key[16] = "";
  if (ex->secrets == SECRETS_RESEAL && ex->prod_kr)
    snprintf(target_key, sizeof target_key, "%08x", keyring_primary(ex->prod_kr)->id);
  const char *params[] = {(char *)b.p, keys, target_key[0] ? target_key : NULL,
                          ex->ledger.run_id};
  PGresult *r = pg_exec_params(ex, "recording the run in the promotion ledger",
                               "UPDATE oauthdb_promotion_runs SET counts = $1::jsonb, "
                               "source_key_ids = $2::text[], target_key_id = $3 "
                               "WHERE run_id = $4",
                               4, params);
  free(b.p);
  free(keys);
  if (!r) return -1;
  PQclear(r);
  return 0;
}


/* ---- what the rest of the exporter calls: timed, for the trace and make bench ---- */

int ledger_prepare(exporter *ex) {
  double t0 = ex_now();
  int rc = ledger_prepare_impl(ex);
  ex->ledger.seconds += ex_now() - t0;
  return rc;
}

int ledger_record_direct(exporter *ex, ex_table *t) {
  double t0 = ex_now();
  int rc = ledger_record_direct_impl(ex, t);
  ex->ledger.seconds += ex_now() - t0;
  return rc;
}

int ledger_classify(exporter *ex, ex_table *t, const char *qt, const char *stage,
                    int index, int full_stage, int64_t *n_to_write) {
  double t0 = ex_now();
  int rc = ledger_classify_impl(ex, t, qt, stage, index, full_stage, n_to_write);
  ex->ledger.seconds += ex_now() - t0;
  return rc;
}

int ledger_record(exporter *ex, ex_table *t, const char *qt, int index) {
  double t0 = ex_now();
  int rc = ledger_record_impl(ex, t, qt, index);
  ex->ledger.seconds += ex_now() - t0;
  return rc;
}

int ledger_gone_full(exporter *ex, ex_table *t, int index, int plan_exists) {
  double t0 = ex_now();
  int rc = ledger_gone_full_impl(ex, t, index, plan_exists);
  ex->ledger.seconds += ex_now() - t0;
  return rc;
}

int ledger_gone_from_ids(exporter *ex, ex_table *t, int index, const char *ids,
                         int64_t n_ids) {
  double t0 = ex_now();
  int rc = ledger_gone_from_ids_impl(ex, t, index, ids, n_ids);
  ex->ledger.seconds += ex_now() - t0;
  return rc;
}

int ledger_finish(exporter *ex) {
  double t0 = ex_now();
  int rc = ledger_finish_impl(ex);
  ex->ledger.seconds += ex_now() - t0;
  return rc;
}

int ledger_count_kept(exporter *ex, ex_table *t, const char *qt, int index, int staged) {
  double t0 = ex_now();
  int rc = ledger_count_kept_impl(ex, t, qt, index, staged);
  ex->ledger.seconds += ex_now() - t0;
  return rc;
}

void ledger_free(exporter *ex) {
  free(ex->ledger.source_id);
  for (int i = 0; i < ex->ledger.n_conflicts_kept; i++) {
    ex_conflict *c = &ex->ledger.conflicts[i];
    free(c->table), free(c->id), free(c->columns), free(c->reason);
  }
  free(ex->ledger.conflicts);
}

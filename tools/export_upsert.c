/*
** export_upsert.c: pass 2 per table, parents first: staging table, COPY,
** upsert, counts.
**
**   CREATE TEMP TABLE pg_temp.oauthdb_stage_N (...) ON COMMIT DROP;
**   COPY pg_temp.oauthdb_stage_N (...) FROM STDIN (FORMAT binary);
**   WITH changed AS (
**     INSERT INTO t AS t (...) SELECT s.... FROM stage s
**       LEFT JOIN t cur ON cur.id = s.id
**      WHERE cur.id IS NULL OR ROW(cur....) IS DISTINCT FROM ROW(s....)
**     ON CONFLICT (id) DO UPDATE SET ... = excluded....
**      WHERE ROW(t....) IS DISTINCT FROM ROW(excluded....)
**     RETURNING (xmax = 0) AS inserted)
**   SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
**     FROM changed;
**
** The anti-join in front is there for speed, not correctness: ON CONFLICT
** locks (and so writes) every conflicting row even when its WHERE is false,
** so a rerun would rewrite the whole table; filtering unchanged rows first
** means a rerun touches nothing. ON CONFLICT still decides, so a row that
** appears concurrently is updated rather than failing. Nothing is deleted
** here (--delete-removed: export_ledger.c).
** unchanged = read - inserted - updated - skipped - kept (- unresolved
** conflicts, which stop the run).
**
** Three paths, per table:
**
**   - An empty target table (checked under LOCK ... SHARE ROW EXCLUSIVE,
**     which keeps others from inserting until we commit) gets the COPY
**     directly: all rows are inserts, and a second pass over a staging table
**     would double the work of the first promotion. Its indexes and foreign
**     keys are built once after the COPY (export_direct.c).
**   - A table the ledger holds rows of had its rows' digests compared with
**     the ledger's in pass 1 (export_digest.c): only the rows dev changed
**     go to the staging table; with none, nothing is sent at all.
**   - Otherwise (reseal, omit, --verify, or ids in random order): every
**     row goes to the staging table.
**
** Staged rows carry their digests; export_ledger.c classifies them
** (source, ledger, target) and only the rows to write go through the
** upsert above (from pg_temp.oauthdb_write_N); the ledger records them.
*/
#include <stdlib.h>
#include <string.h>
#include "export.h"

/* "p.a, p.b" over the sent columns, optionally leaving out id. */
static void col_list(ex_buf *b, const ex_table *t, const char *prefix, int skip_id) {
  int first = 1;
  for (int j = 0; j < t->n_cols; j++) {
    if (!t->cols[j].sent || (skip_id && j == t->id_col)) continue;
    char *q = sql_ident(t->cols[j].name);
    buf_printf(b, "%s%s%s%s", first ? "" : ", ", prefix ? prefix : "", prefix ? "." : "", q);
    free(q);
    first = 0;
  }
}

/* Under --secrets=omit: a row whose parent is not in the target is skipped. */
static void fk_filter(ex_buf *b, const exporter *ex, const ex_table *t) {
  for (int f = 0; f < t->n_fks; f++) {
    const ex_fk *fk = &t->fks[f];
    char *qc = sql_ident(t->cols[fk->col].name);
    char *qp = sql_ident(ex->tables[fk->parent].name);
    char *qpc = sql_ident(fk->parent_col);
    buf_printf(b, " AND (s.%s IS NULL OR EXISTS (SELECT 1 FROM %s p WHERE p.%s = s.%s))", qc,
           qp, qpc, qc);
    free(qc), free(qp), free(qpc);
  }
}

static int64_t int_value(const PGresult *r, int row, int col) {
  return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int target_is_empty(exporter *ex, const char *qt, int *empty) {
  char *sql = ex_strdup_printf("SELECT NOT EXISTS (SELECT 1 FROM %s)", qt);
  PGresult *r = pg_exec(ex, "checking the target table", sql);
  free(sql);
  if (!r) return -1;
  *empty = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  return 0;
}

static int decide_direct(exporter *ex, ex_table *t, const char *qt) {
  t->direct.chosen = 0;
  /* omit filters rows against the target: always through staging; rows
     the ledger knows of need their three-way classification */
  if (ex->secrets == SECRETS_OMIT || t->ledger.rows > 0) return 0;
  int empty;
  if (target_is_empty(ex, qt, &empty)) return -1;
  if (!empty) return 0;
  char *sql = ex_strdup_printf("LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE", qt);
  PGresult *r = pg_exec(ex, "locking the target table", sql);
  free(sql);
  if (!r) return -1;
  PQclear(r);
  /* someone may have inserted between the look and the lock */
  if (target_is_empty(ex, qt, &empty)) return -1;
  t->direct.chosen = empty;
  return 0;
}

/* Upsert the to_write rows of stage; counts inserted, updated, skipped. */
static int upsert(exporter *ex, ex_table *t, const char *qt, const char *stage,
                  int64_t to_write) {
  ex_buf b = {0, 0, 0};
  int omit_update_only = ex->secrets == SECRETS_OMIT && t->has_sealed;
  PGresult *r;
  int64_t eligible = to_write;
  if (ex->secrets == SECRETS_OMIT) {
    buf_printf(&b, "SELECT count(*) FROM %s s WHERE true", stage);
    if (omit_update_only) buf_printf(&b, " AND EXISTS (SELECT 1 FROM %s cur WHERE cur.id = s.id)", qt);
    fk_filter(&b, ex, t);
    r = pg_exec(ex, "counting rows to load", (char *)b.p);
    b.len = 0;
    if (!r) goto fail;
    eligible = int_value(r, 0, 0);
    PQclear(r);
  }
  if (omit_update_only) {
    buf_printf(&b, "WITH changed AS (UPDATE %s AS t SET ", qt);
    int first = 1;
    for (int j = 0; j < t->n_cols; j++) {
      if (!t->cols[j].sent || j == t->id_col) continue;
      char *q = sql_ident(t->cols[j].name);
      buf_printf(&b, "%s%s = s.%s", first ? "" : ", ", q, q);
      free(q);
      first = 0;
    }
    buf_printf(&b, " FROM %s s WHERE t.id = s.id AND ROW(", stage);
    col_list(&b, t, "t", 1);
    buf_printf(&b, ") IS DISTINCT FROM ROW(");
    col_list(&b, t, "s", 1);
    buf_printf(&b, ")");
    fk_filter(&b, ex, t);
    buf_printf(&b, " RETURNING 1) SELECT 0, count(*) FROM changed");
  } else {
    buf_printf(&b, "WITH changed AS (INSERT INTO %s AS t (", qt);
    col_list(&b, t, NULL, 0);
    buf_printf(&b, ") SELECT ");
    col_list(&b, t, "s", 0);
    buf_printf(&b, " FROM %s s LEFT JOIN %s cur ON cur.id = s.id WHERE (cur.id IS NULL OR ROW(",
           stage, qt);
    col_list(&b, t, "cur", 1);
    buf_printf(&b, ") IS DISTINCT FROM ROW(");
    col_list(&b, t, "s", 1);
    buf_printf(&b, "))");
    if (ex->secrets == SECRETS_OMIT) fk_filter(&b, ex, t);
    buf_printf(&b, " ON CONFLICT (id) DO UPDATE SET ");
    int first = 1;
    for (int j = 0; j < t->n_cols; j++) {
      if (!t->cols[j].sent || j == t->id_col) continue;
      char *q = sql_ident(t->cols[j].name);
      buf_printf(&b, "%s%s = excluded.%s", first ? "" : ", ", q, q);
      free(q);
      first = 0;
    }
    buf_printf(&b, " WHERE ROW(");
    col_list(&b, t, "t", 1);
    buf_printf(&b, ") IS DISTINCT FROM ROW(");
    col_list(&b, t, "excluded", 1);
    buf_printf(&b, ") RETURNING (xmax = 0) AS inserted) "
               "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) "
               "FROM changed");
  }
  char *what = ex_strdup_printf("upsert into %s", t->name);
  r = pg_exec(ex, what, (char *)b.p);
  free(what);
  if (!r) goto fail;
  t->counts.inserted = int_value(r, 0, 0);
  t->counts.updated = int_value(r, 0, 1);
  PQclear(r);
  t->counts.skipped = to_write - eligible;
  free(b.p);
  return 0;
fail:
  free(b.p);
  return -1;
}

/*
** A table the target already holds, or one the ledger knows: the source's
** rows (all, or only those dev changed: export_digest.c) go to a staging
** table with their digests, are classified against the ledger and the
** target (export_ledger.c), and the rows to write go through the upsert.
*/
static int load_staged(exporter *ex, ex_table *t, const char *qt, const char *stage,
                       int index) {
  ex_buf b = {0, 0, 0};
  int rc = -1;
  buf_printf(&b, "CREATE TEMP TABLE oauthdb_stage_%d (", index);
  for (int j = 0; j < t->n_cols; j++) {
    if (!t->cols[j].sent) continue;
    char *q = sql_ident(t->cols[j].name);
    buf_printf(&b, "%s %s, ", q, t->cols[j].pg_type);
    free(q);
  }
  buf_printf(&b, LEDGER_DIGEST_COL " bytea) ON COMMIT DROP");
  if (t->rerun.unchanged) {
    /* pass 1's summary: dev changed no row, so nothing is sent; of
       production's changes only the count (row versions) */
    t->counts.read = t->n_source;
    ex_trace(ex, "%s: unchanged in dev: nothing sent", t->name);
    progress_step(ex, t->counts.read);
    rc = ledger_gone_from_ids(ex, t, index, NULL, 0) ||
                 ledger_count_kept(ex, t, qt, index, 0)
             ? -1
             : 0;
    goto done;
  }
  int64_t staged = 0;
  int changed_only = t->rerun.chosen && digest_usable(t);
  if (changed_only) {
    if (digest_stage(ex, t, stage, (char *)b.p, &staged)) goto done;
    progress_step(ex, t->counts.read);
  } else {
    PGresult *r = pg_exec(ex, "creating a staging table", (char *)b.p);
    if (!r) goto done;
    PQclear(r);
    if (copy_table_digested(ex, t, stage, &t->counts.read)) goto done;
    staged = t->counts.read;
    ex_trace(ex, "%s: %lld rows staged in full", t->name, (long long)t->counts.read);
    if (ex->verify && verify_staged(ex, t, stage)) goto done;
    if (secrets_reconcile(ex, t, stage)) goto done;
  }
  int64_t to_write = 0;
  if (staged > 0 &&
      ledger_classify(ex, t, qt, stage, index, !changed_only, &to_write))
    goto done;
  if (!changed_only && staged == 0 && ledger_gone_full(ex, t, index, 0)) goto done;
  if (changed_only) {
    /* the rows dev removed, and production's changes to the rows dev did
       not change, counted before this run writes anything (row versions) */
    int64_t n_gone;
    const char *gone = digest_gone_ids(t, &n_gone);
    if (ledger_gone_from_ids(ex, t, index, gone, n_gone) ||
        ledger_count_kept(ex, t, qt, index, staged > 0))
      goto done;
  }
  if (staged > 0) {
    /* No ANALYZE: it costs as much as the upsert, and a never-analyzed
       table is estimated from its size in pages, which is all the plan
       (hash join against the target) needs. */
    if (to_write > 0) {
      char *write = ex_strdup_printf("pg_temp.oauthdb_write_%d", index);
      if (upsert(ex, t, qt, write, to_write)) {
        free(write);
        goto done;
      }
      free(write);
    }
    if (ledger_record(ex, t, qt, index)) goto done;
    if (ex->verify && verify_written(ex, t, qt, stage, index)) goto done;
  }
  rc = 0;
done:
  free(b.p);
  return rc;
}

/*
** OAUTHDB_EXPORT_BENCH_WITHOUT_LEDGER=1, for bench/export.sh only (not an
** option, not in --help): a table loaded into an empty target is not
** recorded in the promotion ledger, so make bench can time the first load
** with and without the ledger's per-row work side by side
** (export_ledger_overhead). Such a target's next run treats those rows as
** never promoted, as after dropping the ledger (docs/EXPORT.md).
*/
static int bench_without_ledger(void) {
  const char *e = getenv("OAUTHDB_EXPORT_BENCH_WITHOUT_LEDGER");
  return e && *e && strcmp(e, "0") != 0;
}

static int load_table(exporter *ex, ex_table *t, int index) {
  char *qt = sql_ident(t->name);
  char *stage = ex_strdup_printf("pg_temp.oauthdb_stage_%d", index);
  int rc = -1;
  progress_begin(ex, "loading", t->name);
  t->counts.inserted = t->counts.updated = t->counts.skipped = 0;
  if (decide_direct(ex, t, qt)) goto done;
  if (t->direct.chosen) {
    ex_deferred d;
    if (direct_defer(ex, t, qt, &d)) goto done;
    ex_trace(ex, "%s: empty in the target: COPY into it, %d indexes and %d foreign keys "
             "built after", t->name, d.n_indexes, d.n_fks);
    if (copy_table(ex, t, qt, &t->counts.read)) {
      deferred_free(&d);
      goto done;
    }
    ex_trace(ex, "%s: %lld rows copied", t->name, (long long)t->counts.read);
    if (direct_restore(ex, &d)) goto done;
    ex_trace(ex, "%s: indexes and foreign keys back", t->name);
    t->counts.inserted = t->counts.read;
    if (!bench_without_ledger()) {
      if (ledger_record_direct(ex, t)) goto done;
      ex_trace(ex, "%s: recorded in the promotion ledger", t->name);
    }
    if (ex->verify && verify_table(ex, t, NULL)) goto done;
  } else if (load_staged(ex, t, qt, stage, index)) {
    goto done;
  }
  /* conflicts not resolved stop the run (ledger_finish); dev's are
     written (inserted, updated), production's kept */
  t->counts.unchanged = t->counts.read - t->counts.inserted - t->counts.updated -
                        t->counts.skipped - t->counts.kept -
                        (ex->on_conflict == CONFLICT_STOP ? t->counts.conflicts : 0);
  ex_trace(ex, "%s: loaded", t->name);
  rc = 0;
done:
  free(qt);
  free(stage);
  digest_state_free(t);
  return rc;
}

int load_tables(exporter *ex) {
  ex->progress_total = 0;
  for (int i = 0; i < ex->n_tables; i++) ex->progress_total += ex->tables[i].n_source;
  for (int i = 0; i < ex->n_tables; i++)
    if (load_table(ex, &ex->tables[i], i)) return -1;
  progress_end(ex);
  return 0;
}

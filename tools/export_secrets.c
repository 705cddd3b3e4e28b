/*
** export_secrets.c: what happens to sealed token values (docs/EXPORT.md,
** --secrets; the format in docs/FORMAT.md).
**
** There is no default. A source holding sealed values stops the run until
** the user picks one of:
**
**   keep    the sealed bytes go as they are; production must then hold the
**           dev keyring's keys to open them.
**   reseal  each value is opened with the dev keyring (--source-keyring or
**           $OAUTHDB_KEYRING) and sealed again with the production keyring's
**           primary key (--target-keyring), with the same associated data
**           `oauth_tokens.<column>:<id>`. The plaintext lives only in the
**           keyring's locked scratch buffer (keyring_scratch: sodium_malloc,
**           mlock'd, out of core dumps) and is zeroed as soon as it is sealed.
**           A rerun would seal every value again under a fresh nonce and so
**           "change" every row; secrets_reconcile keeps production's bytes
**           wherever they already open to the same plaintext.
**   omit    sealed columns are not sent. Rows already in production keep
**           their tokens and get the other columns; rows that would need a
**           token (new ones: access_token is NOT NULL) are skipped, counted,
**           and so are rows whose parent was skipped.
*/
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "associated_data.h"
#include "export.h"
#include "seal.h"

/* Columns that hold sealed values, and so their associated data's prefix. */
static const struct {
  const char *table, *column;
} sealed_columns[] = {
    {"oauth_tokens", "access_token"},
    {"oauth_tokens", "refresh_token"},
    {"oauth_tokens", "id_token"},
};

int export_is_sealed(const char *table, const char *column) {
  for (size_t i = 0; i < sizeof sealed_columns / sizeof sealed_columns[0]; i++)
    if (!strcmp(sealed_columns[i].table, table) && !strcmp(sealed_columns[i].column, column))
      return 1;
  return 0;
}

const char *secrets_mode_name(secrets_mode m) {
  switch (m) {
  case SECRETS_KEEP: return "keep";
  case SECRETS_RESEAL: return "reseal";
  case SECRETS_OMIT: return "omit";
  default: return "none";
  }
}

static keyring *load(exporter *ex, const char *path, const char *which) {
  char *err = NULL;
  keyring *kr = keyring_load(path, &err);
  if (!kr) {
    ex_fail(ex, EXIT_NOINPUT, "%s keyring: %s", which, err ? err : "cannot load");
    free(err);
  }
  return kr;
}

/* Count the source's sealed values; insist on a choice; load keyrings. */
int secrets_prepare(exporter *ex) {
  ex->sealed_values = 0;
  for (int i = 0; i < ex->n_tables; i++) {
    const ex_table *t = &ex->tables[i];
    /* Whether there are any: the count itself comes from pass 1, which
       reads every row anyway. One look per table, all its sealed columns
       at once: a column that is NULL in every row (id_token, often) would
       otherwise cost a read of the whole table. */
    ex_buf where = {0, 0, 0};
    for (int j = 0; j < t->n_src_cols; j++) {
      if (!export_is_sealed(t->name, t->src_cols[j])) continue;
      char *qc = sql_ident(t->src_cols[j]);
      buf_printf(&where, "%s%s IS NOT NULL", where.len ? " OR " : "", qc);
      free(qc);
    }
    if (!where.len) continue;
    char *qt = sql_ident(t->name);
    char *sql = ex_strdup_printf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s)", qt, (char *)where.p);
    free(qt), free(where.p);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(ex->src, sql, -1, &st, NULL);
    free(sql);
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
      sqlite3_finalize(st);
      return ex_fail(ex, EXIT_NOINPUT, "source %s: cannot look for sealed values: %s",
                     ex->source_path, sqlite3_errmsg(ex->src));
    }
    ex->sealed_values += sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  if (ex->sealed_values > 0 && ex->secrets == SECRETS_UNSET)
    return ex_fail(
        ex, EXIT_USAGE,
        "the source holds sealed token values; say what to do with them:\n"
        "  --secrets=keep    copy them as they are (production then needs the\n"
        "                    dev keyring's keys to open them)\n"
        "  --secrets=reseal --target-keyring FILE\n"
        "                    open each with the dev keyring (--source-keyring or\n"
        "                    $OAUTHDB_KEYRING) and seal it with FILE's primary key\n"
        "  --secrets=omit    leave token columns out; token rows not already in\n"
        "                    production are skipped and counted\n"
        "nothing was sent");
  if (ex->secrets != SECRETS_RESEAL) return 0;

  const char *dev = ex->source_keyring_path ? ex->source_keyring_path
                                            : getenv("OAUTHDB_KEYRING");
  if (!dev || !*dev)
    return ex_fail(ex, EXIT_USAGE,
                   "--secrets=reseal needs the dev keyring: --source-keyring FILE "
                   "or $OAUTHDB_KEYRING");
  if (!(ex->dev_kr = load(ex, dev, "dev (source)"))) return -1;
  if (!(ex->prod_kr = load(ex, ex->target_keyring_path, "production (target)"))) return -1;
  const keyring_key *primary = keyring_primary(ex->prod_kr);
  const keyring_key *same = keyring_find(ex->dev_kr, primary->id);
  if (same && sodium_memcmp(same->key, primary->key, KEYRING_KEY_BYTES) == 0)
    return ex_fail(ex, EXIT_USAGE,
                   "the target keyring's primary key %08x is also in the dev "
                   "keyring: resealing under it would change nothing; give "
                   "production a key of its own (oauthdb keygen)", primary->id);
  return 0;
}

void secrets_free(exporter *ex) {
  keyring_free(ex->dev_kr);
  keyring_free(ex->prod_kr);
  ex->dev_kr = ex->prod_kr = NULL;
}

/* `oauth_tokens.<column>:<id>` (docs/FORMAT.md, "Associated data for
** oauth_tokens"). */
static size_t make_ad(char *ad, size_t cap, const ex_table *t, const ex_column *c,
                      const char *id) {
  size_t n = associated_data(ad, cap, t->name, c->name, id, strlen(id));
  return n >= cap ? 0 : n;
}

/* Pass 1. The reason text names the key id at most, never any bytes. */
const char *secrets_check(exporter *ex, const ex_table *t, const ex_column *c,
                          const char *id, const unsigned char *v, size_t n) {
  static char reason[160];
  uint32_t kid = 0;
  seal_status s = seal_key_id(v, n, &kid);
  if (s == SEAL_OK && n < SEAL_OVERHEAD) s = SEAL_TRUNCATED;
  if (s != SEAL_OK) {
    snprintf(reason, sizeof reason, "not a sealed value (%s)", seal_status_text(s));
    return reason;
  }
  ledger_note_key_id(ex, kid);  /* which dev keys this run's values need */
  if (ex->secrets != SECRETS_RESEAL) return NULL;
  /* Reseal must not fail half way through pass 2: open everything now. */
  char ad[256];
  size_t n_ad = make_ad(ad, sizeof ad, t, c, id);
  unsigned char *pt = keyring_scratch(ex->dev_kr, n - SEAL_OVERHEAD);
  if (!pt) return "out of locked memory opening a sealed value";
  s = seal_open(ex->dev_kr, v, n, (const unsigned char *)ad, n_ad, pt, &kid);
  sodium_memzero(pt, n - SEAL_OVERHEAD);
  if (s == SEAL_OK) return NULL;
  if (s == SEAL_UNKNOWN_KEY || s == SEAL_RETIRED_KEY)
    snprintf(reason, sizeof reason,
             "sealed value does not open with the dev keyring: %s %08x",
             seal_status_text(s), kid);
  else
    snprintf(reason, sizeof reason,
             "sealed value does not open with the dev keyring: %s", seal_status_text(s));
  return reason;
}

int64_t secrets_transform(exporter *ex, const ex_table *t, const ex_column *c,
                          const char *id, const unsigned char *v, size_t n,
                          unsigned char **out, size_t *cap) {
  if (ex->secrets != SECRETS_RESEAL) {
    if (n > *cap) *out = ex_xrealloc(*out, *cap = n);
    if (n) memcpy(*out, v, n);
    return (int64_t)n;
  }
  char ad[256];
  size_t n_ad = make_ad(ad, sizeof ad, t, c, id), n_pt = n - SEAL_OVERHEAD;
  unsigned char *pt = keyring_scratch(ex->dev_kr, n_pt);
  if (!pt) {
    ex_fail(ex, EXIT_TARGET, "out of locked memory while resealing");
    return -1;
  }
  uint32_t kid = 0;
  seal_status s = seal_open(ex->dev_kr, v, n, (const unsigned char *)ad, n_ad, pt, &kid);
  if (s == SEAL_OK) {
    if (seal_sealed_len(n_pt) > *cap) *out = ex_xrealloc(*out, *cap = seal_sealed_len(n_pt));
    s = seal_token(ex->prod_kr, pt, n_pt, (const unsigned char *)ad, n_ad, *out);
  }
  sodium_memzero(pt, n_pt);
  if (s != SEAL_OK) {
    /* pass 1 opened this very value: only a changed keyring gets here */
    ex_fail(ex, EXIT_DATAERR, "reseal of %s.%s id=%s failed: %s", t->name, c->name,
            id, seal_status_text(s));
    return -1;
  }
  ex->resealed++;
  return (int64_t)seal_sealed_len(n_pt);
}

/* Do a and b (both sealed for production) hold the same plaintext? */
static int same_plaintext(exporter *ex, const char *ad, size_t n_ad,
                          const unsigned char *a, size_t na,
                          const unsigned char *b, size_t nb) {
  if (na != nb || na < SEAL_OVERHEAD) return 0;
  size_t n_pt = na - SEAL_OVERHEAD;
  /* two locked buffers: the production keyring's and the dev keyring's */
  unsigned char *pa = keyring_scratch(ex->prod_kr, n_pt);
  unsigned char *pb = keyring_scratch(ex->dev_kr, n_pt);
  if (!pa || !pb) return 0;
  uint32_t kid;
  int same = seal_open(ex->prod_kr, a, na, (const unsigned char *)ad, n_ad, pa, &kid) == SEAL_OK &&
             seal_open(ex->prod_kr, b, nb, (const unsigned char *)ad, n_ad, pb, &kid) == SEAL_OK &&
             sodium_memcmp(pa, pb, n_pt) == 0;
  sodium_memzero(pa, n_pt);
  sodium_memzero(pb, n_pt);
  return same;
}

/*
** Reseal, table already staged: for each staged row that production already
** has, and each sealed column where both values open (with the production
** keyring) to the same plaintext, put production's bytes back into the
** staging table. A cursor reads the pairs in batches and the matches go to a
** temporary table with COPY, so memory stays flat.
*/
int secrets_reconcile(exporter *ex, const ex_table *t, const char *stage) {
  if (ex->secrets != SECRETS_RESEAL || !t->has_sealed) return 0;
  char *qt = sql_ident(t->name);
  size_t cap = 1024;
  char *sel = ex_xmalloc(cap);
  snprintf(sel, cap, "s.id::text");
  for (int j = 0; j < t->n_cols; j++) {
    if (!t->cols[j].sealed) continue;
    char *qc = sql_ident(t->cols[j].name);
    char *more = ex_strdup_printf("%s, s.%s, cur.%s", sel, qc, qc);
    free(sel), free(qc);
    sel = more;
  }
  char *sql = ex_strdup_printf(
      "CREATE TEMP TABLE IF NOT EXISTS oauthdb_reseal_keep (id uuid, col text) "
      "ON COMMIT DROP; TRUNCATE oauthdb_reseal_keep; "
      "DECLARE oauthdb_reseal BINARY NO SCROLL CURSOR FOR "
      "SELECT %s FROM %s s JOIN %s cur ON cur.id = s.id",
      sel, stage, qt);
  free(sel);
  PGresult *r = pg_exec(ex, "reseal: comparing with production", sql);
  free(sql);
  if (!r) goto fail;
  PQclear(r);
  for (;;) {
    r = pg_exec(ex, "reseal: comparing with production",
                "FETCH FORWARD 2000 FROM oauthdb_reseal");
    if (!r) goto fail;
    int rows = PQntuples(r);
    if (rows == 0) {
      PQclear(r);
      break;
    }
    size_t len = 0, bcap = 4096;
    char *batch = ex_xmalloc(bcap);
    for (int i = 0; i < rows; i++) {
      char id[64];
      snprintf(id, sizeof id, "%.*s", PQgetlength(r, i, 0), PQgetvalue(r, i, 0));
      int field = 1;
      for (int j = 0; j < t->n_cols; j++) {
        if (!t->cols[j].sealed) continue;
        int a = field++, b = field++;
        if (PQgetisnull(r, i, a) || PQgetisnull(r, i, b)) continue;
        char ad[256];
        size_t n_ad = make_ad(ad, sizeof ad, t, &t->cols[j], id);
        if (!same_plaintext(ex, ad, n_ad, (const unsigned char *)PQgetvalue(r, i, a),
                            (size_t)PQgetlength(r, i, a),
                            (const unsigned char *)PQgetvalue(r, i, b),
                            (size_t)PQgetlength(r, i, b)))
          continue;
        size_t need = strlen(id) + strlen(t->cols[j].name) + 3;
        if (len + need > bcap) batch = ex_xrealloc(batch, bcap = 2 * (len + need));
        len += (size_t)snprintf(batch + len, bcap - len, "%s\t%s\n", id, t->cols[j].name);
        ex->reseal_kept++;
        ex->resealed--;
      }
    }
    PQclear(r);
    if (len) {
      r = PQexec(ex->pg, "COPY oauthdb_reseal_keep FROM STDIN");
      int ok = PQresultStatus(r) == PGRES_COPY_IN;
      PQclear(r);
      ok = ok && PQputCopyData(ex->pg, batch, (int)len) == 1 && PQputCopyEnd(ex->pg, NULL) == 1;
      r = PQgetResult(ex->pg);
      if (!ok || PQresultStatus(r) != PGRES_COMMAND_OK) {
        pg_fail(ex, "reseal: recording values kept", r);
        PQclear(r);
        free(batch);
        goto fail;
      }
      PQclear(r);
      while ((r = PQgetResult(ex->pg))) PQclear(r);
    }
    free(batch);
  }
  r = pg_exec(ex, "reseal: comparing with production", "CLOSE oauthdb_reseal");
  if (!r) goto fail;
  PQclear(r);
  for (int j = 0; j < t->n_cols; j++) {
    if (!t->cols[j].sealed) continue;
    char *qc = sql_ident(t->cols[j].name);
    const char *param[] = {t->cols[j].name};
    sql = ex_strdup_printf(
        "UPDATE %s s SET %s = cur.%s FROM oauthdb_reseal_keep k, %s cur "
        "WHERE k.col = $1 AND k.id = s.id AND cur.id = s.id",
        stage, qc, qc, qt);
    free(qc);
    r = pg_exec_params(ex, "reseal: keeping production's values", sql, 1, param);
    free(sql);
    if (!r) goto fail;
    PQclear(r);
  }
  free(qt);
  return 0;
fail:
  free(qt);
  return -1;
}

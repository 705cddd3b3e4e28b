/*
** export_verify.c: --verify, a row count and a content digest per table,
** computed independently on each side before COMMIT.
**
** Each row is rendered as text, column by column: NULL as "N", otherwise
**   text, json      <octet length>:<bytes>
**   jsonb           <octet length>:<jsonb::text>   (export_json.c on our side)
**   uuid            canonical text
**   timestamptz     microseconds since 1970 (a fractional second shows up)
**   boolean         1 or 0
**   integers        decimal
**   bytea           lower-case hex
** each followed by ",". A row's hash is the first 8 bytes of the SHA-256 of
** its rendering as a signed big-endian int64; the digest is the exact sum
** of those (PostgreSQL's sum(bigint) is numeric; ours an __int128). A sum is
** order-free, so neither side sorts, and both sides stream.
**
** The source side renders the values it reads in pass 2 (SQLite's integers
** and text), PostgreSQL renders what its tables hold, so an encoding mistake
** on either side shows. Sealed columns are in the digest under keep; under
** reseal their bytes differ by design and under omit they are not sent, so
** they are left out. Under omit, rows skipped for want of a token are taken
** from the staging table so the two sides still add up.
*/
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "export.h"

static ex_buf row;  /* reused for every row: its size is one row's */

static void vb_int(ex_buf *b, int64_t v) {
  char s[32];
  int n = snprintf(s, sizeof s, "%" PRId64, v);
  buf_put(b, s, (size_t)n);
}

int verify_included(const exporter *ex, const ex_column *c) {
  return c->sent && !(c->sealed && ex->secrets != SECRETS_KEEP);
}

int verify_add_row(exporter *ex, ex_table *t, sqlite3_stmt *st) {
  row.len = 0;
  for (int j = 0; j < t->n_cols; j++) {
    const ex_column *c = &t->cols[j];
    if (!verify_included(ex, c)) continue;
    int col = j + 1;
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
      buf_put(&row, "N,", 2);
      continue;
    }
    switch (c->kind) {
    case PGK_TEXT:
    case PGK_JSON: {
      size_t n = (size_t)sqlite3_column_bytes(st, col);
      vb_int(&row, (int64_t)n);
      buf_put(&row, ":", 1);
      buf_put(&row, sqlite3_column_text(st, col), n);
      break;
    }
    case PGK_JSONB: {
      const char *v = (const char *)sqlite3_column_text(st, col);
      size_t n = (size_t)sqlite3_column_bytes(st, col);
      char *canon = NULL;
      size_t len = 0, cap = 0;
      if (json_canonical(v, n, &canon, &len, &cap)) {
        free(canon);
        return ex_fail(ex, EXIT_DATAERR, "verify: %s.%s: JSON changed since it was checked",
                       t->name, c->name);
      }
      vb_int(&row, (int64_t)len);
      buf_put(&row, ":", 1);
      buf_put(&row, canon, len);
      free(canon);
      break;
    }
    case PGK_UUID:
      buf_put(&row, sqlite3_column_text(st, col), (size_t)sqlite3_column_bytes(st, col));
      break;
    case PGK_TIMESTAMPTZ:
    case PGK_TIMESTAMP:
      vb_int(&row, sqlite3_column_int64(st, col) * 1000000);
      break;
    case PGK_BOOL:
      buf_put(&row, sqlite3_column_int64(st, col) ? "1" : "0", 1);
      break;
    case PGK_INT2:
    case PGK_INT4:
    case PGK_INT8:
      vb_int(&row, sqlite3_column_int64(st, col));
      break;
    case PGK_BYTEA: {
      size_t n = (size_t)sqlite3_column_bytes(st, col);
      const unsigned char *v = sqlite3_column_blob(st, col);
      /* room for the hex and its NUL, which is not part of the row */
      char *at = (char *)buf_reserve(&row, 2 * n + 1);
      sodium_bin2hex(at, 2 * n + 1, v, n);
      row.len--;
      break;
    }
    }
    buf_put(&row, ",", 1);
  }
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, row.p ? row.p : (const unsigned char *)"", row.len);
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u = (u << 8) | h[i];
  t->verify.sum += (__int128)(int64_t)u;
  t->verify.rows++;
  return 0;
}

/* The same rendering and hash in SQL, over the row alias. */
char *verify_pg_digest_expr(const exporter *ex, const ex_table *t, const char *alias) {
  ex_buf b = {0, 0, 0};
  const char *head = "('x' || left(encode(sha256(convert_to(''";
  buf_put(&b, head, strlen(head));
  for (int j = 0; j < t->n_cols; j++) {
    const ex_column *c = &t->cols[j];
    if (!verify_included(ex, c)) continue;
    char *q = sql_ident(c->name);
    char *v = ex_strdup_printf("%s.%s", alias, q);
    free(q);
    char *r;
    switch (c->kind) {
    case PGK_TEXT:
    case PGK_JSON:
      r = ex_strdup_printf("octet_length(%s)::text || ':' || %s", v, v);
      break;
    case PGK_JSONB:
      r = ex_strdup_printf("octet_length(%s::text)::text || ':' || %s::text", v, v);
      break;
    case PGK_TIMESTAMPTZ:
    case PGK_TIMESTAMP:
      r = ex_strdup_printf("((extract(epoch FROM %s) * 1000000)::bigint)::text", v);
      break;
    case PGK_BOOL:
      r = ex_strdup_printf("CASE WHEN %s THEN '1' ELSE '0' END", v);
      break;
    case PGK_BYTEA:
      r = ex_strdup_printf("encode(%s, 'hex')", v);
      break;
    default:  /* uuid, integers */
      r = ex_strdup_printf("%s::text", v);
    }
    char *part = ex_strdup_printf(" || coalesce(%s, 'N') || ','", r);
    buf_put(&b, part, strlen(part));
    free(part), free(r), free(v);
  }
  const char *tail = ", 'UTF8')), 'hex'), 16))::bit(64)::bigint";
  buf_put(&b, tail, strlen(tail) + 1);
  return (char *)b.p;
}

static void i128_text(__int128 v, char *out, size_t cap) {
  char tmp[48];
  int n = 0, neg = v < 0;
  unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
  do {
    tmp[n++] = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u);
  size_t k = 0;
  if (neg && k + 1 < cap) out[k++] = '-';
  while (n && k + 1 < cap) out[k++] = tmp[--n];
  out[k] = 0;
}

int verify_table(exporter *ex, ex_table *t, const char *stage) {
  char *qt = sql_ident(t->name);
  char *hx = verify_pg_digest_expr(ex, t, "x");
  char *sql;
  if (!stage) {
    sql = ex_strdup_printf(
        "SELECT count(*), coalesce(sum(h), 0)::text FROM (SELECT %s AS h FROM %s x) d",
        hx, qt);
  } else if (ex->secrets == SECRETS_OMIT) {
    char *hs = verify_pg_digest_expr(ex, t, "s");
    sql = ex_strdup_printf(
        "SELECT count(*), coalesce(sum(h), 0)::text FROM ("
        "SELECT %s AS h FROM %s x WHERE x.id IN (SELECT id FROM %s) "
        "UNION ALL SELECT %s FROM %s s "
        "WHERE NOT EXISTS (SELECT 1 FROM %s x WHERE x.id = s.id)) d",
        hx, qt, stage, hs, stage, qt);
    free(hs);
  } else {
    sql = ex_strdup_printf(
        "SELECT count(*), coalesce(sum(h), 0)::text FROM ("
        "SELECT %s AS h FROM %s x WHERE x.id IN (SELECT id FROM %s)) d",
        hx, qt, stage);
  }
  free(hx);
  free(qt);
  char *what = ex_strdup_printf("verify of %s", t->name);
  PGresult *r = pg_exec(ex, what, sql);
  free(what);
  free(sql);
  if (!r) return -1;
  int64_t rows = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  char ours[48];
  i128_text(t->verify.sum, ours, sizeof ours);
  int same = rows == t->verify.rows && strcmp(ours, PQgetvalue(r, 0, 1)) == 0;
  if (!same)
    ex_fail(ex, EXIT_VERIFY,
            "verify: %s differs: source %lld rows, digest %s; target %lld rows, "
            "digest %s; rolled back",
            t->name, (long long)t->verify.rows, ours, (long long)rows, PQgetvalue(r, 0, 1));
  PQclear(r);
  return same ? 0 : -1;
}

/* The staging table against the source's rows: the transfer lost nothing. */
int verify_staged(exporter *ex, ex_table *t, const char *stage) {
  char *hs = verify_pg_digest_expr(ex, t, "s");
  char *sql = ex_strdup_printf(
      "SELECT count(*), coalesce(sum(h), 0)::text FROM (SELECT %s AS h FROM %s s) d", hs,
      stage);
  free(hs);
  char *what = ex_strdup_printf("verify of %s", t->name);
  PGresult *r = pg_exec(ex, what, sql);
  free(what);
  free(sql);
  if (!r) return -1;
  int64_t rows = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  char ours[48];
  i128_text(t->verify.sum, ours, sizeof ours);
  int same = rows == t->verify.rows && strcmp(ours, PQgetvalue(r, 0, 1)) == 0;
  if (!same)
    ex_fail(ex, EXIT_VERIFY,
            "verify: %s differs: source %lld rows, digest %s; sent %lld rows, "
            "digest %s; rolled back",
            t->name, (long long)t->verify.rows, ours, (long long)rows, PQgetvalue(r, 0, 1));
  PQclear(r);
  return same ? 0 : -1;
}

/*
** After the upsert: each row the three-way rule let dev's version stand
** (inserted, updated, unchanged, equal, or a conflict --on-conflict=dev
** resolved) must be in the target exactly as staged. Rows production kept
** are production's by design; under omit, rows skipped are absent.
*/
int verify_written(exporter *ex, ex_table *t, const char *qt, const char *stage, int index) {
  char *hx = verify_pg_digest_expr(ex, t, "x"), *hs = verify_pg_digest_expr(ex, t, "s");
  const char *actions = ex->on_conflict == CONFLICT_DEV
                            ? "'insert', 'update', 'same', 'unchanged', 'conflict:unpromoted', "
                              "'conflict:both', 'conflict:source', 'conflict:deleted'"
                            : "'insert', 'update', 'same', 'unchanged'";
  char *sql = ex_strdup_printf(
      "SELECT count(*) FILTER (WHERE x.id IS NOT NULL AND %s IS DISTINCT FROM %s), "
      "count(*) FILTER (WHERE x.id IS NULL) "
      "FROM oauthdb_plan_%d p JOIN %s s ON s.id = p.id LEFT JOIN %s x ON x.id = p.id "
      "WHERE p.action IN (%s)",
      hx, hs, index, stage, qt, actions);
  free(hx), free(hs);
  char *what = ex_strdup_printf("verify of %s", t->name);
  PGresult *r = pg_exec(ex, what, sql);
  free(what);
  free(sql);
  if (!r) return -1;
  int64_t differ = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  int64_t missing = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
  PQclear(r);
  if (ex->secrets == SECRETS_OMIT) missing = 0;  /* skipped rows */
  if (differ || missing)
    return ex_fail(ex, EXIT_VERIFY,
                   "verify: %s differs: %lld rows written differ from the source, %lld "
                   "missing in the target; rolled back",
                   t->name, (long long)differ, (long long)missing);
  return 0;
}

/*
** export_copy.c: pass 2, one table streamed with binary COPY.
**
** sqlite3_step -> encode one row -> append to a buffer -> PQputCopyData
** whenever the buffer passes 64 KiB. Nothing holds more than the current
** chunk (plus one row), so memory does not grow with the row count.
**
** The binary format (PostgreSQL docs, "COPY ... File Formats"): a header
** "PGCOPY\n\377\r\n\0", flags and extension length (int32 0, 0); per row an
** int16 field count, then per field an int32 length (-1 for NULL) and the
** type's binary send format, all big-endian:
**
**   uuid         16 bytes
**   timestamptz  int64 microseconds since 2000-01-01 00:00:00 UTC
**   boolean      1 byte, 0 or 1
**   jsonb        version byte 1, then the JSON text
**   text, json   the UTF-8 bytes; bytea the raw bytes
**   int2/4/8     two's complement of that width
**
** Values were checked in pass 1 against the same target types, from the
** same snapshot, so encoding never meets a value it cannot represent.
*/
#include <stdlib.h>
#include <string.h>
#include "export.h"

#define COPY_CHUNK (64 * 1024)
#define PG_EPOCH_OFFSET INT64_C(946684800) /* 2000-01-01 in unix seconds */

typedef struct copybuf {
  unsigned char *p;
  size_t len, cap;
} copybuf;

static unsigned char *cb_reserve(copybuf *b, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : COPY_CHUNK + 4096;
    while (cap < b->len + n) cap *= 2;
    b->p = ex_xrealloc(b->p, b->cap = cap);
  }
  unsigned char *at = b->p + b->len;
  b->len += n;
  return at;
}

static void put_be(copybuf *b, uint64_t v, int bytes) {
  unsigned char *at = cb_reserve(b, (size_t)bytes);
  for (int i = bytes - 1; i >= 0; i--, v >>= 8) at[i] = (unsigned char)(v & 0xff);
}

static void put_field(copybuf *b, const void *data, size_t n) {
  put_be(b, (uint32_t)n, 4);
  if (n) memcpy(cb_reserve(b, n), data, n);
}

static int hexval(unsigned char c) {
  return c <= '9' ? c - '0' : c - 'a' + 10;  /* canonical lower-case, checked */
}

static int flush(exporter *ex, copybuf *b, const char *what) {
  if (b->len == 0) return 0;
  if (PQputCopyData(ex->pg, (const char *)b->p, (int)b->len) != 1)
    return pg_fail(ex, what, NULL);
  b->len = 0;
  return 0;
}

/* COPY dest (sent columns) FROM STDIN (FORMAT binary), rows from pass 2. */
int copy_table(exporter *ex, ex_table *t, const char *dest, int64_t *rows_out) {
  char *what = ex_strdup_printf("COPY of %s", t->name);
  char *sql = source_select_sql(t, 0);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(ex->src, sql, -1, &st, NULL);
  free(sql);
  if (rc != SQLITE_OK) {
    ex_fail(ex, EXIT_NOINPUT, "source %s: cannot read %s: %s", ex->source_path,
            t->name, sqlite3_errmsg(ex->src));
    free(what);
    return -1;
  }

  size_t cap = 256, len = 0;
  char *cols = ex_xmalloc(cap);
  cols[0] = 0;
  int n_sent = 0;
  for (int j = 0; j < t->n_cols; j++) {
    if (!t->cols[j].sent) continue;
    char *q = pg_ident(t->cols[j].name);
    size_t need = strlen(q) + 3;
    if (len + need > cap) cols = ex_xrealloc(cols, cap = 2 * (len + need));
    len += (size_t)snprintf(cols + len, cap - len, "%s%s", n_sent ? ", " : "", q);
    free(q);
    n_sent++;
  }
  sql = ex_strdup_printf("COPY %s (%s) FROM STDIN (FORMAT binary)", dest, cols);
  free(cols);
  PGresult *r = PQexec(ex->pg, sql);
  free(sql);
  if (PQresultStatus(r) != PGRES_COPY_IN) {
    pg_fail(ex, what, r);
    PQclear(r);
    sqlite3_finalize(st);
    free(what);
    return -1;
  }
  PQclear(r);

  copybuf b = {0, 0, 0};
  static const unsigned char header[] = "PGCOPY\n\377\r\n";  /* + its NUL */
  memcpy(cb_reserve(&b, sizeof header), header, sizeof header);
  put_be(&b, 0, 4);  /* flags */
  put_be(&b, 0, 4);  /* header extension length */

  unsigned char *sealed = NULL;
  size_t sealed_cap = 0;
  int failed = 0;
  int64_t rows = 0;
  while (!failed && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, t->id_col + 1);
    put_be(&b, (uint16_t)n_sent, 2);
    for (int j = 0; j < t->n_cols && !failed; j++) {
      const ex_column *c = &t->cols[j];
      if (!c->sent) continue;
      int col = j + 1;
      if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        put_be(&b, UINT32_MAX, 4);  /* -1: NULL */
        continue;
      }
      switch (c->kind) {
      case PGK_UUID: {
        const unsigned char *v = sqlite3_column_text(st, col);
        unsigned char u[16];
        for (int i = 0, k = 0; i < 36; i++) {
          if (v[i] == '-') continue;
          u[k / 2] = (unsigned char)(k % 2 ? (u[k / 2] | hexval(v[i])) : hexval(v[i]) << 4);
          k++;
        }
        put_field(&b, u, 16);
        break;
      }
      case PGK_TEXT:
      case PGK_JSON:
        put_field(&b, sqlite3_column_text(st, col), (size_t)sqlite3_column_bytes(st, col));
        break;
      case PGK_JSONB: {
        const unsigned char *v = sqlite3_column_text(st, col);
        size_t n = (size_t)sqlite3_column_bytes(st, col);
        put_be(&b, (uint32_t)(n + 1), 4);
        *cb_reserve(&b, 1) = 1;  /* jsonb binary format version */
        if (n) memcpy(cb_reserve(&b, n), v, n);
        break;
      }
      case PGK_TIMESTAMPTZ:
      case PGK_TIMESTAMP: {
        int64_t secs = sqlite3_column_int64(st, col);
        put_be(&b, 8, 4);
        put_be(&b, (uint64_t)((secs - PG_EPOCH_OFFSET) * 1000000), 8);
        break;
      }
      case PGK_BOOL: {
        unsigned char v = sqlite3_column_int64(st, col) != 0;
        put_field(&b, &v, 1);
        break;
      }
      case PGK_INT2:
        put_be(&b, 2, 4);
        put_be(&b, (uint64_t)sqlite3_column_int64(st, col), 2);
        break;
      case PGK_INT4:
        put_be(&b, 4, 4);
        put_be(&b, (uint64_t)sqlite3_column_int64(st, col), 4);
        break;
      case PGK_INT8:
        put_be(&b, 8, 4);
        put_be(&b, (uint64_t)sqlite3_column_int64(st, col), 8);
        break;
      case PGK_BYTEA: {
        const unsigned char *v = sqlite3_column_blob(st, col);
        size_t n = (size_t)sqlite3_column_bytes(st, col);
        if (!c->sealed) {
          put_field(&b, v, n);
          break;
        }
        int64_t m = secrets_transform(ex, t, c, id, v, n, &sealed, &sealed_cap);
        if (m < 0) failed = 1;
        else put_field(&b, sealed, (size_t)m);
        break;
      }
      }
    }
    if (!failed && ex->verify && verify_add_row(ex, t, st)) failed = 1;
    rows++;
    progress_step(ex, 1);
    if (!failed && b.len >= COPY_CHUNK && flush(ex, &b, what)) failed = 2;
  }
  if (!failed && rc != SQLITE_DONE) {
    ex_fail(ex, EXIT_NOINPUT, "source %s: reading %s failed: %s", ex->source_path,
            t->name, sqlite3_errmsg(ex->src));
    failed = 1;
  }
  sqlite3_finalize(st);
  free(sealed);

  if (!failed) {
    put_be(&b, UINT16_MAX, 2);  /* trailer: field count -1 */
    if (flush(ex, &b, what)) failed = 2;
  }
  free(b.p);
  if (failed == 2) {  /* the connection is gone or broken */
    free(what);
    return -1;
  }
  /* An error of ours aborts the COPY so the server discards it. */
  if (PQputCopyEnd(ex->pg, failed ? "oauthdb-export: aborted" : NULL) != 1) {
    if (!failed) pg_fail(ex, what, NULL);
    free(what);
    return -1;
  }
  r = PQgetResult(ex->pg);
  if (!failed && PQresultStatus(r) != PGRES_COMMAND_OK) {
    pg_fail(ex, what, r);
    failed = 1;
  }
  if (!failed) *rows_out = strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  while ((r = PQgetResult(ex->pg))) PQclear(r);
  free(what);
  if (!failed && *rows_out != rows)
    return ex_fail(ex, EXIT_TARGET, "COPY of %s: sent %lld rows, the target took %lld",
                   t->name, (long long)rows, (long long)*rows_out);
  return failed ? -1 : 0;
}

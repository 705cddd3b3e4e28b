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

/* A canonical UUID's text (checked in pass 1: lower-case hex digits and
** dashes at 8, 13, 18, 23) as its 16 bytes. */
void uuid_bytes(const unsigned char *v, unsigned char u[16]) {
  static const unsigned char hex[256] = {
      ['0'] = 0, ['1'] = 1, ['2'] = 2, ['3'] = 3, ['4'] = 4, ['5'] = 5, ['6'] = 6,
      ['7'] = 7, ['8'] = 8, ['9'] = 9, ['a'] = 10, ['b'] = 11, ['c'] = 12, ['d'] = 13,
      ['e'] = 14, ['f'] = 15};
  /* where each byte's two digits start */
  static const unsigned char at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
  for (int k = 0; k < 16; k++)
    u[k] = (unsigned char)(hex[v[at[k]]] << 4 | hex[v[at[k] + 1]]);
}

/*
** One value of the current row of st (column col) in its binary send
** format, as a field: int32 length (-1 for NULL), then the bytes. Sealed
** values go through secrets_transform (reseal) unless raw_sealed. Returns
** 0, or -1 after ex_fail.
*/
int encode_value(exporter *ex, const ex_table *t, const ex_column *c, sqlite3_stmt *st,
                 int col, ex_buf *b, unsigned char **sealed, size_t *sealed_cap,
                 int raw_sealed) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) {
    buf_be(b, UINT32_MAX, 4);  /* -1: NULL */
    return 0;
  }
  switch (c->kind) {
  case PGK_UUID: {
    unsigned char u[16];
    uuid_bytes(sqlite3_column_text(st, col), u);
    buf_field(b, u, 16);
    break;
  }
  case PGK_TEXT:
  case PGK_JSON: {
    const unsigned char *v = sqlite3_column_text(st, col);
    buf_field(b, v, (size_t)sqlite3_column_bytes(st, col));
    break;
  }
  case PGK_JSONB: {
    const unsigned char *v = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    unsigned char *at = buf_reserve(b, 5 + n);
    at[0] = (unsigned char)((n + 1) >> 24), at[1] = (unsigned char)((n + 1) >> 16);
    at[2] = (unsigned char)((n + 1) >> 8), at[3] = (unsigned char)(n + 1);
    at[4] = 1;  /* jsonb binary format version */
    if (n) memcpy(at + 5, v, n);
    break;
  }
  case PGK_TIMESTAMPTZ:
  case PGK_TIMESTAMP: {
    int64_t secs = sqlite3_column_int64(st, col);
    buf_be(b, 8, 4);
    buf_be(b, (uint64_t)((secs - PG_EPOCH_OFFSET) * 1000000), 8);
    break;
  }
  case PGK_BOOL: {
    unsigned char v = sqlite3_column_int64(st, col) != 0;
    buf_field(b, &v, 1);
    break;
  }
  case PGK_INT2:
    buf_be(b, 2, 4);
    buf_be(b, (uint64_t)sqlite3_column_int64(st, col), 2);
    break;
  case PGK_INT4:
    buf_be(b, 4, 4);
    buf_be(b, (uint64_t)sqlite3_column_int64(st, col), 4);
    break;
  case PGK_INT8:
    buf_be(b, 8, 4);
    buf_be(b, (uint64_t)sqlite3_column_int64(st, col), 8);
    break;
  case PGK_BYTEA: {
    const unsigned char *v = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (!c->sealed || raw_sealed || ex->secrets != SECRETS_RESEAL) {
      buf_field(b, v, n);
      break;
    }
    const char *id = (const char *)sqlite3_column_text(st, t->id_col + 1);
    int64_t m = secrets_transform(ex, t, c, id, v, n, sealed, sealed_cap);
    if (m < 0) return -1;
    buf_field(b, *sealed, (size_t)m);
    break;
  }
  }
  return 0;
}

/* "a", "b", ... : the sent columns, for COPY's column list (malloc'd). */
char *copy_column_list(const ex_table *t) {
  size_t cap = 256, len = 0;
  char *cols = ex_xmalloc(cap);
  cols[0] = 0;
  int n_sent = 0;
  for (int j = 0; j < t->n_cols; j++) {
    if (!t->cols[j].sent) continue;
    char *q = sql_ident(t->cols[j].name);
    size_t need = strlen(q) + 3;
    if (len + need > cap) cols = ex_xrealloc(cols, cap = 2 * (len + need));
    len += (size_t)snprintf(cols + len, cap - len, "%s%s", n_sent ? ", " : "", q);
    free(q);
    n_sent++;
  }
  return cols;
}

static int flush(ex_copy *c) {
  if (c->b.len == 0) return 0;
  if (PQputCopyData(c->ex->pg, (const char *)c->b.p, (int)c->b.len) != 1) {
    c->failed = 2;
    return pg_fail(c->ex, c->what, NULL);
  }
  c->b.len = 0;
  return 0;
}

/* Send sql (a COPY ... FROM STDIN (FORMAT binary)) and the stream's header. */
int copy_start(exporter *ex, ex_copy *c, const char *sql, const char *what) {
  memset(c, 0, sizeof *c);
  c->ex = ex;
  c->what = ex_xstrdup(what);
  PGresult *r = PQexec(ex->pg, sql);
  if (PQresultStatus(r) != PGRES_COPY_IN) {
    pg_fail(ex, what, r);
    PQclear(r);
    free(c->what);
    c->what = NULL;
    return -1;
  }
  PQclear(r);
  static const unsigned char header[] = "PGCOPY\n\377\r\n";  /* + its NUL */
  memcpy(buf_reserve(&c->b, sizeof header), header, sizeof header);
  buf_be(&c->b, 0, 4);  /* flags */
  buf_be(&c->b, 0, 4);  /* header extension length */
  c->started = 1;
  return 0;
}

/* A tuple was appended to c->b: count it, and send once a chunk is full. */
int copy_tuple_done(ex_copy *c) {
  c->rows++;
  if (c->b.len >= COPY_CHUNK) return flush(c);
  return 0;
}

/* Append the current row of st (rowid, then t's columns) as one tuple. */
int copy_source_row(ex_copy *c, ex_table *t, sqlite3_stmt *st) {
  buf_be(&c->b, (uint16_t)(t->n_sent + (c->digester != NULL)), 2);
  for (int j = 0; j < t->n_cols; j++) {
    const ex_column *col = &t->cols[j];
    if (!col->sent) continue;
    if (encode_value(c->ex, t, col, st, j + 1, &c->b, &c->sealed, &c->sealed_cap, 0)) {
      c->failed = 1;
      return -1;
    }
  }
  if (c->digester) {
    unsigned char h[LEDGER_DIGEST_BYTES];
    if (digester_row(c->ex, t, c->digester, st, h)) {
      c->failed = 1;
      return -1;
    }
    buf_field(&c->b, h, sizeof h);
  }
  return copy_tuple_done(c);
}

/*
** End the COPY: the trailer and the server's verdict, or, when c->failed
** (an error of ours), an abort so that the server discards the rows.
** *taken gets the row count the server reports. Frees c.
*/
int copy_finish(ex_copy *c, int64_t *taken) {
  exporter *ex = c->ex;
  int failed = c->failed;
  PGresult *r;
  if (!c->started) failed = 1;
  if (c->started && !failed) {
    buf_be(&c->b, UINT16_MAX, 2);  /* trailer: field count -1 */
    if (flush(c)) failed = 2;
  }
  free(c->b.p);
  free(c->sealed);
  c->b.p = NULL, c->sealed = NULL;
  c->digester = NULL;  /* the caller's */
  if (!c->started || failed == 2) {  /* not started, or the connection is gone */
    free(c->what);
    return -1;
  }
  /* An error of ours aborts the COPY so the server discards it. */
  if (PQputCopyEnd(ex->pg, failed ? "oauthdb-export: aborted" : NULL) != 1) {
    if (!failed) pg_fail(ex, c->what, NULL);
    free(c->what);
    return -1;
  }
  r = PQgetResult(ex->pg);
  if (!failed && PQresultStatus(r) != PGRES_COMMAND_OK) {
    pg_fail(ex, c->what, r);
    failed = 1;
  }
  if (!failed) *taken = strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  while ((r = PQgetResult(ex->pg))) PQclear(r);
  if (!failed && *taken != c->rows) {
    ex_fail(ex, EXIT_TARGET, "%s: sent %lld rows, the target took %lld", c->what,
            (long long)c->rows, (long long)*taken);
    failed = 1;
  }
  free(c->what);
  return failed ? -1 : 0;
}

static int copy_rows(exporter *ex, ex_table *t, const char *dest, int digested,
                     int64_t *rows_out);

/* COPY dest (sent columns) FROM STDIN (FORMAT binary), rows from pass 2. */
int copy_table(exporter *ex, ex_table *t, const char *dest, int64_t *rows_out) {
  return copy_rows(ex, t, dest, 0, rows_out);
}

int copy_table_digested(exporter *ex, ex_table *t, const char *dest, int64_t *rows_out) {
  return copy_rows(ex, t, dest, 1, rows_out);
}

static int copy_rows(exporter *ex, ex_table *t, const char *dest, int digested,
                     int64_t *rows_out) {
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
  t->n_sent = 0;
  for (int j = 0; j < t->n_cols; j++) t->n_sent += t->cols[j].sent;
  char *cols = copy_column_list(t);
  sql = ex_strdup_printf("COPY %s (%s%s) FROM STDIN (FORMAT binary)", dest, cols,
                         digested ? ", " LEDGER_DIGEST_COL : "");
  free(cols);
  ex_copy c;
  rc = copy_start(ex, &c, sql, what);
  ex_digester *d = digested && rc == 0 ? digester_new(t) : NULL;
  c.digester = d;
  free(sql);
  free(what);
  if (rc) {
    sqlite3_finalize(st);
    return -1;
  }
  int verify = ex->verify && !t->verify.done;
  while (!c.failed && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (copy_source_row(&c, t, st)) break;
    if (verify && verify_add_row(ex, t, st)) c.failed = 1;
    progress_step(ex, 1);
  }
  if (!c.failed && rc != SQLITE_DONE) {
    ex_fail(ex, EXIT_NOINPUT, "source %s: reading %s failed: %s", ex->source_path,
            t->name, sqlite3_errmsg(ex->src));
    c.failed = 1;
  }
  sqlite3_finalize(st);
  rc = copy_finish(&c, rows_out);
  if (d) digester_delete(d, t);
  return rc;
}

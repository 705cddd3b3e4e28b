/*
** export_digest.c: a rerun sends only what dev changed since the last
** promotion, without reading production's rows.
**
** The promotion ledger (export_ledger.c) holds, for every promoted row, the
** digest of the row as it was sent. For a table most of whose rows were
** promoted before, pass 1 merges two streams in id order:
**
**   - the ledger's rows of the table,
**       COPY (SELECT row_id, digest FROM oauthdb_promoted_rows
**             WHERE table_no = ... ORDER BY row_id) TO STDOUT (FORMAT binary)
**     sent without waiting, so PostgreSQL reads while pass 1 checks;
**   - the source's rows, read in id order (SQLite's primary key index),
**     each row's digest computed as the ledger's was (digester_row).
**
** Equal digests: dev has not changed the row since it was promoted, and
** nothing about it is sent; whatever production did to it stays (the
** ledger counts those as kept, from row versions alone). A different
** digest, or an id the ledger lacks: the row is changed (its id is kept, up
** to LOOKUP_MAX of them). Ledger ids the source lacks: rows dev removed
** (digest_gone_ids). After pass 1 only the changed rows go, each looked up
** by id in the source (all rows when there are more than LOOKUP_MAX or
** more than half), with their digests, into the staging table, where
** export_ledger.c classifies them against the ledger and production.
**
** The digest (digester_row, below) is over the source's values, so it
** is computed before a row is checked; pass 1 checks only rows whose
** digest differs (validate_rows).
**
** So a rerun with nothing changed reads the source once and the ledger's
** digests once, and sends nothing at all. Nothing of the source goes to
** the target before every row passed.
**
** Used under --secrets=keep and when there are no sealed values (reseal
** and omit need the full staging table: reconciliation, skipped rows),
** without --verify (which digests every sent row in staging), for a table
** with uuid ids the ledger holds rows of, when the source has an index on id and its rows sit roughly in
** id order. Anything unexpected (ids out of order on either side) sends
** the table in full, and the full path classifies every row the same way.
*/
#include <stdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include "export.h"

/* Changed ids kept for lookups; past this many, all rows are sent. */
#define LOOKUP_MAX 65536

/* What pass 1 learned about a table on this path. */
struct ex_digest_state {
  /* the merge */
  char *msg;                /* the target's current row (a COPY message) */
  const unsigned char *cur_id, *cur_h;  /* cur_h: the digest, or the row's fields */
  size_t cur_id_n, cur_h_n;
  uint32_t cur_xmin;        /* the row version the promotion left */
  int cur;                  /* msg holds a row */
  int target_done;          /* the target's stream has ended */
  int streaming;            /* its COPY is still open */
  int fields;               /* per row: 2 (id, digest), or 1 + the sent columns */
  int header_seen;
  int failed;               /* the target's stream failed (ex_fail called) */
  int broken;               /* ids out of order: send the table in full */
  unsigned char last_src[64];
  size_t last_src_n;
  int have_src;
  struct ex_digester *d;
  /* the outcome */
  int64_t rows, changed;
  int64_t same;             /* rows whose digest equals the ledger's */
  ex_summary ledger_sum;    /* the summary of the ledger's rows, as they came */
  uint32_t *xmins;          /* the distinct row versions the ledger records */
  int n_xmins, xmins_overflow;
  int staged_all;           /* every row went to staging: classified there */
  char *gone;               /* ledger ids the source lacks, text, each with its NUL */
  size_t gone_len, gone_cap;
  int64_t n_gone;
  char *ids;                /* changed ids, text, each with its NUL */
  size_t ids_len, ids_cap;
  int64_t n_ids;
};

/* Columns in the digest: the sent ones but id (the merge's key). */
static int digested(const ex_table *t, int j) {
  return t->cols[j].sent && j != t->id_col;
}

/*
** The ledger's digest of a row: BLAKE2b-256 (libsodium's crypto_generichash)
** over the values SQLite holds in the row's sent columns but id, each as
** its storage class (1 byte) and value: INTEGER and REAL as 8 big-endian
** bytes, TEXT and BLOB as a 4-byte length and the bytes, NULL as the class
** alone. What is sent is a function of exactly these values (and of the
** target column types, which the digest starts with: a schema change makes
** every row "changed"), so equal digests mean an equal row as sent. It
** needs no parsing, so it is computed before a row is checked and works on
** any value, valid or not: pass 1 checks only the rows whose digest
** differs from the ledger's (the others were checked, and sent, as they are).
** Sealed values are digested as the source holds them, whatever --secrets
** sends, so the same dev row has the same digest under keep and reseal.
*/
typedef struct ex_digester {
  crypto_generichash_state start;   /* after the column names and types */
} digester;

ex_digester *digester_new(const ex_table *t) {
  digester *d = ex_xmalloc(sizeof *d);
  crypto_generichash_init(&d->start, NULL, 0, LEDGER_DIGEST_BYTES);
  for (int j = 0; j < t->n_cols; j++) {
    if (!digested(t, j)) continue;
    unsigned char kind = (unsigned char)t->cols[j].kind;
    crypto_generichash_update(&d->start, (const unsigned char *)t->cols[j].name,
                              strlen(t->cols[j].name) + 1);
    crypto_generichash_update(&d->start, &kind, 1);
  }
  return d;
}

void digester_delete(ex_digester *d, const ex_table *t) {
  (void)t;
  free(d);
}

static void be_bytes(unsigned char *out, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 8) out[i] = (unsigned char)(v & 0xff);
}

/* The digest of the current row of st (rowid, then t's columns). */
static int row_digest(exporter *ex, const ex_table *t, digester *d, sqlite3_stmt *st,
                      unsigned char h[LEDGER_DIGEST_BYTES]) {
  (void)ex;
  crypto_generichash_state g = d->start;
  for (int j = 0; j < t->n_cols; j++) {
    if (!digested(t, j)) continue;
    int col = j + 1, type = sqlite3_column_type(st, col);
    unsigned char head[9];
    head[0] = (unsigned char)type;
    switch (type) {
    case SQLITE_INTEGER:
      be_bytes(head + 1, (uint64_t)sqlite3_column_int64(st, col), 8);
      crypto_generichash_update(&g, head, 9);
      break;
    case SQLITE_FLOAT: {
      double v = sqlite3_column_double(st, col);
      uint64_t bits;
      memcpy(&bits, &v, 8);
      be_bytes(head + 1, bits, 8);
      crypto_generichash_update(&g, head, 9);
      break;
    }
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      const unsigned char *v = type == SQLITE_TEXT ? sqlite3_column_text(st, col)
                                                   : sqlite3_column_blob(st, col);
      size_t n = (size_t)sqlite3_column_bytes(st, col);
      be_bytes(head + 1, (uint64_t)n, 4);
      crypto_generichash_update(&g, head, 5);
      if (n) crypto_generichash_update(&g, v, n);
      break;
    }
    default:
      crypto_generichash_update(&g, head, 1);
    }
  }
  crypto_generichash_final(&g, h, LEDGER_DIGEST_BYTES);
  return 0;
}

int digester_row(exporter *ex, const ex_table *t, ex_digester *d, sqlite3_stmt *st,
                 unsigned char h[LEDGER_DIGEST_BYTES]) {
  return row_digest(ex, t, d, st, h);
}

/*
** A table's summary (oauthdb_promoted_tables.summary): the lane-wise sum,
** modulo 2^64, of BLAKE2b-256(id || digest) over its rows. A sum does not
** depend on the order the rows come in (a first load reads them in file
** order, a rerun in id order), and two sets of rows have the same summary
** only if they are the same set (or by a 2^-256 accident): the same ids,
** each with the same digest.
*/
void summary_add(ex_summary *s, const unsigned char id[16],
                 const unsigned char digest[LEDGER_DIGEST_BYTES]) {
  unsigned char in[16 + LEDGER_DIGEST_BYTES], h[32];
  memcpy(in, id, 16);
  memcpy(in + 16, digest, LEDGER_DIGEST_BYTES);
  crypto_generichash(h, sizeof h, in, sizeof in, NULL, 0);
  for (int k = 0; k < 4; k++) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | h[8 * k + i];
    s->lane[k] += v;
  }
  s->rows++;
}

void summary_bytes(const ex_summary *s, unsigned char out[32]) {
  for (int k = 0; k < 4; k++) be_bytes(out + 8 * k, s->lane[k], 8);
}

const char *digest_gone_ids(const ex_table *t, int64_t *n) {
  const ex_digest_state *s = t->rerun.state;
  *n = s ? s->n_gone : 0;
  return s ? s->gone : NULL;
}

/* '{x,y}' (malloc'd), as xid[] takes it */
static char *xmins_text(const uint32_t *xmins, int n) {
  ex_buf b = {0, 0, 0};
  buf_printf(&b, "{");
  for (int i = 0; i < n; i++) buf_printf(&b, "%s%u", i ? "," : "", xmins[i]);
  buf_printf(&b, "}");
  return (char *)b.p;
}

/* Rows dev did not change (not staged), and the ledger's row versions as
** '{x,y}' (malloc'd), or NULL when there are too many to list, or when
** every row was staged (*same = -1: the classification counted them all). */
char *digest_unchanged(const ex_table *t, int64_t *same) {
  if (t->rerun.unchanged) {  /* the summary said so: every row, none staged */
    *same = t->ledger.summary.rows;
    return t->ledger.summary_xmins ? ex_xstrdup(t->ledger.summary_xmins) : NULL;
  }
  const ex_digest_state *s = t->rerun.state;
  *same = s && s->staged_all ? -1 : 0;  /* -1: the classification saw every row */
  if (!s || s->staged_all || s->xmins_overflow) return NULL;
  *same = s->same;
  return xmins_text(s->xmins, s->n_xmins);
}

#define XMINS_MAX 1024
static void note_xmin(ex_digest_state *s, uint32_t x) {
  if (s->xmins_overflow) return;
  for (int i = s->n_xmins - 1; i >= 0; i--)  /* runs: mostly the last few */
    if (s->xmins[i] == x) return;
  if (s->n_xmins == XMINS_MAX) {
    s->xmins_overflow = 1;
    return;
  }
  if (!s->xmins) s->xmins = ex_xmalloc(sizeof *s->xmins * XMINS_MAX);
  s->xmins[s->n_xmins++] = x;
}

/* Does the source run sql through an index, without a sort (which could
** spill to a temporary file) or a scan of the whole table (for lookups)? */
static int source_uses_index(exporter *ex, const char *sql, int lookup) {
  char *plan = ex_strdup_printf("EXPLAIN QUERY PLAN %s", sql);
  sqlite3_stmt *st = NULL;
  int ok = sqlite3_prepare_v2(ex->src, plan, -1, &st, NULL) == SQLITE_OK;
  free(plan);
  int indexed = 0;
  while (ok && sqlite3_step(st) == SQLITE_ROW) {
    const char *detail = (const char *)sqlite3_column_text(st, 3);
    if (!detail || strstr(detail, "TEMP B-TREE")) ok = 0;
    else if (lookup ? !strncmp(detail, "SEARCH", 6) : strstr(detail, " USING ") != NULL)
      indexed = 1;
    else ok = 0;
  }
  sqlite3_finalize(st);
  return ok && indexed;
}

/*
** Reading in id order costs little when rows sit in the file roughly in id
** order, as they do with UUIDv7 ids (time first) inserted as they come, or
** when the table is small: a sample of the first ids in order must mostly
** step to a rowid within ORDER_NEAR rows (which the page cache holds). With
** random ids (UUIDv4) in a big table, each row would be a random page read;
** then the table is sent in full instead.
*/
#define ORDER_SAMPLE 2000
#define ORDER_NEAR 4096
static int id_order_is_local(exporter *ex, const ex_table *t, const char *qid) {
  char *qt = sql_ident(t->name);
  char *sql = ex_strdup_printf("SELECT rowid FROM %s ORDER BY %s LIMIT %d", qt, qid,
                               ORDER_SAMPLE);
  free(qt);
  sqlite3_stmt *st = NULL;
  int ok = sqlite3_prepare_v2(ex->src, sql, -1, &st, NULL) == SQLITE_OK;
  free(sql);
  int64_t prev = 0, pairs = 0, near = 0;
  for (int i = 0; ok && sqlite3_step(st) == SQLITE_ROW; i++) {
    int64_t rowid = sqlite3_column_int64(st, 0);
    if (i > 0) {
      pairs++;
      if (rowid - prev <= ORDER_NEAR && prev - rowid <= ORDER_NEAR) near++;
    }
    prev = rowid;
  }
  sqlite3_finalize(st);
  return ok && near * 10 >= pairs * 9;
}

/*
** UUIDv7 ids inserted as they are made rise with the rowid: then pass 1
** reads the table in file order (sequential pages) instead of through the
** id index, and gets id order all the same. A sample at both ends says so;
** should a row further in break the order, the merge notices (ids must
** rise) and the table is sent in full.
*/
static int ids_rise_with_rowid(exporter *ex, const ex_table *t, const char *qid) {
  char *qt = sql_ident(t->name);
  char *sql = ex_strdup_printf(
      "SELECT (SELECT count(*) FROM (SELECT %s AS id, lag(%s) OVER (ORDER BY rowid) AS prev "
      "FROM (SELECT rowid, %s FROM %s ORDER BY rowid LIMIT %d)) WHERE id <= prev), "
      "(SELECT count(*) FROM (SELECT %s AS id, lag(%s) OVER (ORDER BY rowid) AS prev "
      "FROM (SELECT rowid, %s FROM %s ORDER BY rowid DESC LIMIT %d)) WHERE id <= prev)",
      qid, qid, qid, qt, ORDER_SAMPLE, qid, qid, qid, qt, ORDER_SAMPLE);
  free(qt);
  sqlite3_stmt *st = NULL;
  int ok = sqlite3_prepare_v2(ex->src, sql, -1, &st, NULL) == SQLITE_OK &&
           sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == 0 &&
           sqlite3_column_int64(st, 1) == 0;
  sqlite3_finalize(st);
  free(sql);
  return ok;
}

/* Before pass 1: which tables take this path (t->rerun.chosen). */
int digest_prepare(exporter *ex) {
  if (ex->secrets == SECRETS_RESEAL || ex->secrets == SECRETS_OMIT || ex->verify) return 0;
  for (int i = 0; i < ex->n_tables; i++) {
    ex_table *t = &ex->tables[i];
    t->rerun.chosen = 0;
    if (t->n_source == 0) continue;
    /* rows promoted before, with uuid ids (the ledger's) */
    t->rerun.chosen = t->ledger.rows > 0 && t->cols[t->id_col].kind == PGK_UUID;
    if (!t->rerun.chosen) continue;
    /* the source must find rows by id, and read them in id order, through
       an index (no sort, which could write a temporary file) */
    char *select = source_select_sql(t, 0);
    char *qid = sql_ident(t->cols[t->id_col].name);
    char *lookup = ex_strdup_printf("%s WHERE %s = ?1", select, qid);
    char *ordered = ex_strdup_printf("%s ORDER BY %s", select, qid);
    t->rerun.chosen = source_uses_index(ex, lookup, 1) && source_uses_index(ex, ordered, 0) &&
                id_order_is_local(ex, t, qid);
    t->rerun.rowid_order = t->rerun.chosen && ids_rise_with_rowid(ex, t, qid);
    free(select), free(qid), free(lookup), free(ordered);
  }
  return 0;
}

/*
** Pass 1 for a table whose summary the ledger holds, and whose parents dev
** did not change either (their rows are still those the table's foreign
** keys were checked against when its rows were sent): one read of the
** source in file order, each row's digest summed as the ledger's rows
** were. The same summary over the same number of rows: dev has changed no
** row, added none and removed none since the ledger's rows were written,
** so every row holds the values checked and sent then. Nothing of the table
** is then checked again, streamed from the ledger or sent
** (t->rerun.unchanged); what production did to those rows stays, and is
** counted from row versions (ledger_count_kept). Otherwise pass 1 goes on
** row by row (digest_begin), and this read was the price of asking.
*/
int digest_summary_scan(exporter *ex, ex_table *t) {
  t->rerun.unchanged = 0;
  if (!t->rerun.chosen || !t->ledger.has_summary || ex->n_invalid ||
      t->ledger.summary.rows != t->n_source)
    return 0;
  for (int f = 0; f < t->n_fks; f++) {
    const ex_table *p = &ex->tables[t->fks[f].parent];
    if (p != t && !p->ledger.known) return 0;
  }
  char *sql = source_select_sql(t, 0);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(ex->src, sql, -1, &st, NULL);
  free(sql);
  if (rc != SQLITE_OK) {  /* pass 1 reads the table again, and says why */
    sqlite3_finalize(st);
    return 0;
  }
  digester *d = digester_new(t);
  ex_summary sum;
  memset(&sum, 0, sizeof sum);
  int ids_ok = 1;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *id = sqlite3_column_text(st, t->id_col + 1);
    size_t id_n = (size_t)sqlite3_column_bytes(st, t->id_col + 1);
    unsigned char u[16], h[LEDGER_DIGEST_BYTES];
    if (!id || uuid_check(id, id_n) != 0) {  /* pass 1's checks name it */
      ids_ok = 0;
      break;
    }
    uuid_bytes(id, u);
    row_digest(ex, t, d, st, h);
    summary_add(&sum, u, h);
  }
  sqlite3_finalize(st);
  digester_delete(d, t);
  if (ids_ok && rc == SQLITE_DONE && sum.rows == t->ledger.summary.rows &&
      memcmp(sum.lane, t->ledger.summary.lane, sizeof sum.lane) == 0) {
    t->rerun.unchanged = 1;
    t->ledger.known = 1;
    t->ledger.found = sum;
    free(t->ledger.found_xmins);
    t->ledger.found_xmins =
        t->ledger.summary_xmins ? ex_xstrdup(t->ledger.summary_xmins) : NULL;
  }
  ex_trace(ex, "%s: summary of %lld rows %s the ledger's", t->name, (long long)sum.rows,
           t->rerun.unchanged ? "equals" : "differs from");
  return 0;
}

void digest_state_free(ex_table *t) {
  ex_digest_state *s = t->rerun.state;
  if (!s) return;
  if (s->msg) PQfreemem(s->msg);
  digester_delete(s->d, t);
  free(s->ids);
  free(s->gone);
  free(s->xmins);
  free(s);
  t->rerun.state = NULL;
}


/* Pass 1 begins table t: ask for the target's digests, in id order. */
int digest_begin(exporter *ex, ex_table *t) {
  if (!t->rerun.chosen || ex->n_invalid) return 0;
  ex_digest_state *s = ex_xmalloc(sizeof *s);
  memset(s, 0, sizeof *s);
  t->rerun.state = s;
  s->d = digester_new(t);
  t->n_sent = 0;
  for (int j = 0; j < t->n_cols; j++) t->n_sent += t->cols[j].sent;
  PGresult *r;
  /* the ledger's digests of the table's rows and the row versions it
     left, in id order (its primary key's), streamed as pass 1 reads */
  char *sql = ex_strdup_printf("COPY (SELECT row_id, digest, row_xmin FROM oauthdb_promoted_rows "
                               "WHERE table_no = %d ORDER BY row_id) "
                               "TO STDOUT (FORMAT binary)", t->ledger.no);
  r = PQexec(ex->pg, sql);
  free(sql);
  if (PQresultStatus(r) != PGRES_COPY_OUT) {
    s->failed = 1;
    s->target_done = 1;
    pg_fail(ex, "reading the ledger", r);
    PQclear(r);
    return -1;
  }
  PQclear(r);
  s->streaming = 1;
  s->fields = 3;
  return 0;
}

/* The end of the ledger's COPY: its status. */
static int finish_target(exporter *ex, ex_digest_state *s) {
  PGresult *r;
  int rc = 0;
  s->target_done = 1;
  s->streaming = 0;
  while ((r = PQgetResult(ex->pg))) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK && !s->failed) {
      s->failed = 1;
      rc = pg_fail(ex, "reading the ledger", r);
    }
    PQclear(r);
  }
  return rc;
}

/* The next target row into s->cur_id, s->cur_h (s->cur = 0 at the end).
** A row of binary COPY: int16 2, int32 length + id, int32 32 + digest. */
static int next_target(exporter *ex, ex_digest_state *s) {
  if (s->msg) PQfreemem(s->msg);
  s->msg = NULL;
  s->cur = 0;
  while (s->streaming) {
    int n = PQgetCopyData(ex->pg, &s->msg, 0);
    if (n == -1) return finish_target(ex, s);
    if (n < 0) {
      s->failed = 1;
      s->streaming = 0;
      s->target_done = 1;
      return pg_fail(ex, "reading the ledger", NULL);
    }
    const unsigned char *p = (const unsigned char *)s->msg;
    size_t len = (size_t)n;
    static const unsigned char sig[11] = "PGCOPY\n\377\r\n";
    if (!s->header_seen) {  /* the header, possibly with the first row */
      if (len < 19 || memcmp(p, sig, 11) != 0) goto bad;
      uint32_t ext = (uint32_t)p[15] << 24 | (uint32_t)p[16] << 16 | (uint32_t)p[17] << 8 | p[18];
      if (ext > len - 19) goto bad;
      p += 19 + ext, len -= 19 + ext;
      s->header_seen = 1;
      if (len == 0) {
        PQfreemem(s->msg);
        s->msg = NULL;
        continue;
      }
    }
    if (len == 2 && p[0] == 0xff && p[1] == 0xff) {  /* the trailer */
      PQfreemem(s->msg);
      s->msg = NULL;
      continue;
    }
    /* int16 field count, then id (int32 length, bytes), then either the
       digest (int32 32, 32 bytes) or the row's fields */
    if (len < 2 + 4 || p[0] != 0 || p[1] != s->fields) goto bad;
    uint32_t idn = (uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
    if (idn > len - 6) goto bad;
    const unsigned char *rest = p + 6 + idn;
    size_t rest_n = len - 6 - idn;
    /* the digest (int32 16, 16 bytes), then the xid (int32 4, 4 bytes) */
    enum { D = LEDGER_DIGEST_BYTES };
    if (rest_n != 4 + D + 4 + 4 || rest[0] || rest[1] || rest[2] || rest[3] != D ||
        rest[4 + D] || rest[5 + D] || rest[6 + D] || rest[7 + D] != 4)
      goto bad;
    s->cur_xmin = (uint32_t)rest[8 + D] << 24 | (uint32_t)rest[9 + D] << 16 |
                  (uint32_t)rest[10 + D] << 8 | rest[11 + D];
    note_xmin(s, s->cur_xmin);
    rest += 4, rest_n = D;
    if (idn == 16) summary_add(&s->ledger_sum, p + 6, rest);
    else s->broken = 1;
    s->cur_id = p + 6, s->cur_id_n = idn, s->cur_h = rest, s->cur_h_n = rest_n;
    s->cur = 1;
    return 0;
  bad:  /* not what was asked for: read on, but do not trust the merge */
    s->broken = 1;
    PQfreemem(s->msg);
    s->msg = NULL;
  }
  return 0;
}

static int cmp_bytes(const unsigned char *a, size_t na, const unsigned char *b, size_t nb) {
  int c = memcmp(a, b, na < nb ? na : nb);
  return c ? c : (na > nb) - (na < nb);
}

/* A ledger row (its id as 16 bytes) the source does not have. */
static void note_gone(ex_digest_state *s, const unsigned char *id, size_t n) {
  if (n != 16) {
    s->broken = 1;
    return;
  }
  if (++s->n_gone > LOOKUP_MAX) {  /* a mass removal: the full path counts it */
    s->broken = 1;
    return;
  }
  char text[37];
  static const char hex[] = "0123456789abcdef";
  size_t k = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text[k++] = '-';
    text[k++] = hex[id[i] >> 4];
    text[k++] = hex[id[i] & 15];
  }
  text[k] = 0;
  if (s->gone_len + 37 > s->gone_cap) s->gone = ex_xrealloc(s->gone, s->gone_cap = 2 * (s->gone_len + 37));
  memcpy(s->gone + s->gone_len, text, 37);
  s->gone_len += 37;
}

static void note_changed(ex_digest_state *s, const char *id, size_t n) {
  s->changed++;
  if (s->changed > LOOKUP_MAX) return;
  if (s->ids_len + n + 1 > s->ids_cap) s->ids = ex_xrealloc(s->ids, s->ids_cap = 2 * (s->ids_len + n + 1));
  memcpy(s->ids + s->ids_len, id, n);
  s->ids[s->ids_len + n] = 0;
  s->ids_len += n + 1;
  s->n_ids++;
}

/*
** The next row of st (rowid, then t's columns; id order), before its
** checks. Returns 1 when its digest equals the ledger's (dev has not changed
** it since it was checked and sent: pass 1 need not check it again), 0 when
** it is changed or new (it is checked, and sent if valid), -1 on failure.
*/
int digest_row(exporter *ex, ex_table *t, sqlite3_stmt *st) {
  ex_digest_state *s = t->rerun.state;
  if (!s || ex->n_invalid) return 0;
  if (s->failed) return -1;
  s->rows++;
  if (s->broken) return 0;
  /* the id as the ledger has it */
  const unsigned char *idtext = sqlite3_column_text(st, t->id_col + 1);
  size_t idtext_n = (size_t)sqlite3_column_bytes(st, t->id_col + 1);
  unsigned char key[64];
  size_t key_n;
  if (t->cols[t->id_col].kind == PGK_UUID) {
    if (!idtext || uuid_check(idtext, idtext_n) != 0) return 0;  /* the checks say why */
    uuid_bytes(idtext, key);
    key_n = 16;
  } else {
    if (idtext_n > sizeof key) {  /* long text ids: not on this path */
      s->broken = 1;
      return 0;
    }
    memcpy(key, idtext, idtext_n);
    key_n = idtext_n;
  }
  if (s->have_src && cmp_bytes(s->last_src, s->last_src_n, key, key_n) >= 0) {
    s->broken = 1;  /* not in id order after all */
    return 0;
  }
  memcpy(s->last_src, key, key_n);
  s->last_src_n = key_n;
  if (!s->have_src) {
    s->have_src = 1;
    if (next_target(ex, s)) return -1;
  }
  /* pass over target rows the source does not have */
  int c = 1;
  while (s->cur) {
    c = cmp_bytes(s->cur_id, s->cur_id_n, key, key_n);
    if (c >= 0) break;
    unsigned char prev[64];
    size_t prev_n = s->cur_id_n;
    if (prev_n > sizeof prev) {
      s->broken = 1;
      return 0;
    }
    memcpy(prev, s->cur_id, prev_n);
    note_gone(s, s->cur_id, s->cur_id_n);
    if (next_target(ex, s)) return -1;
    if (s->cur && cmp_bytes(prev, prev_n, s->cur_id, s->cur_id_n) >= 0) {
      s->broken = 1;  /* the target's ids are not in the source's order */
      return 0;
    }
  }
  int same = 0;
  if (s->cur && c == 0) {
    unsigned char h[LEDGER_DIGEST_BYTES];
    if (row_digest(ex, t, s->d, st, h)) return -1;
    same = memcmp(h, s->cur_h, LEDGER_DIGEST_BYTES) == 0;
    if (!same) note_changed(s, (const char *)idtext, idtext_n);
    else s->same++;
    if (next_target(ex, s)) return -1;
  } else {
    note_changed(s, (const char *)idtext, idtext_n);  /* the ledger lacks it */
  }
  return same;
}

/* The merge is over. If dev changed nothing, the ledger's rows of the table
** stay as they are, and their summary (summed as they streamed) is known
** for the next run. */
static int merge_found_unchanged(ex_table *t, ex_digest_state *s) {
  if (digest_usable(t) && s->changed == 0 && s->n_gone == 0 && s->ledger_sum.rows == s->rows) {
    t->ledger.known = 1;
    t->ledger.found = s->ledger_sum;
    free(t->ledger.found_xmins);
    t->ledger.found_xmins = s->xmins_overflow ? NULL : xmins_text(s->xmins, s->n_xmins);
  }
  return 0;
}

/* Pass 1 is done with t (or stopped: then cancel the target's query). */
int digest_end(exporter *ex, ex_table *t, int stopped) {
  ex_digest_state *s = t->rerun.state;
  if (!s) return 0;
  digester_delete(s->d, t), s->d = NULL;
  if (s->target_done) return s->failed ? -1 : merge_found_unchanged(t, s);
  if (stopped || ex->n_invalid) {
    /* the run fails: the statement can go (a cancel aborts the transaction,
       which is rolled back anyway) */
    PGcancel *c = PQgetCancel(ex->pg);
    if (c) {
      char err[256];
      PQcancel(c, err, sizeof err);
      PQfreeCancel(c);
    }
    if (s->msg) PQfreemem(s->msg);
    s->msg = NULL;
    char *m;
    while (PQgetCopyData(ex->pg, &m, 0) > 0) PQfreemem(m);
    PGresult *r;
    while ((r = PQgetResult(ex->pg))) PQclear(r);
    s->target_done = 1;
    s->streaming = 0;
    return 0;
  }
  /* the rest of the ledger's rows (ids the source does not have) */
  if (!s->have_src && !s->target_done && next_target(ex, s)) return -1;
  while (!s->target_done) {
    if (s->cur) note_gone(s, s->cur_id, s->cur_id_n);
    if (next_target(ex, s)) return -1;
  }
  return s->failed ? -1 : merge_found_unchanged(t, s);
}

/* Look each changed row up in the source; one COPY into stage. */
static int send_changed(exporter *ex, ex_table *t, sqlite3_stmt *lookup, const char *stage) {
  ex_digest_state *s = t->rerun.state;
  char *cols = copy_column_list(t);
  char *sql = ex_strdup_printf("COPY %s (%s, %s) FROM STDIN (FORMAT binary)", stage, cols,
                               LEDGER_DIGEST_COL);
  char *what = ex_strdup_printf("COPY of %s", t->name);
  free(cols);
  ex_copy c;
  int rc = copy_start(ex, &c, sql, what);
  free(sql);
  free(what);
  if (rc) return -1;
  ex_digester *d = digester_new(t);
  c.digester = d;
  const char *id = s->ids;
  for (int64_t i = 0; i < s->n_ids && !c.failed; i++) {
    size_t n = strlen(id);
    sqlite3_bind_text(lookup, 1, id, (int)n, SQLITE_STATIC);
    int step = sqlite3_step(lookup);
    if (step != SQLITE_ROW) {
      ex_fail(ex, EXIT_NOINPUT, "source %s: reading %s by id failed: %s", ex->source_path,
              t->name, step == SQLITE_DONE ? "row not found" : sqlite3_errmsg(ex->src));
      c.failed = 1;
    } else {
      copy_source_row(&c, t, lookup);
    }
    sqlite3_reset(lookup);
    sqlite3_clear_bindings(lookup);
    id += n + 1;
  }
  int64_t taken = 0;
  rc = copy_finish(&c, &taken);
  digester_delete(d, t);
  return rc;
}

/*
** After pass 1, for a table on this path whose merge went through
** (digest_usable): stage, created with create_stage_sql when anything is to
** be sent, gets the rows to upsert, *n_staged of them (0: nothing changed).
*/
int digest_usable(const ex_table *t) {
  const ex_digest_state *s = t->rerun.state;
  return s && s->target_done && !s->failed && !s->broken && s->rows == t->n_source;
}

int digest_stage(exporter *ex, ex_table *t, const char *stage, const char *create_stage_sql,
                 int64_t *n_staged) {
  ex_digest_state *s = t->rerun.state;
  *n_staged = 0;
  t->counts.read = s->rows;
  t->n_sent = 0;
  for (int j = 0; j < t->n_cols; j++) t->n_sent += t->cols[j].sent;
  int by_id = s->changed <= LOOKUP_MAX && s->changed * 2 <= s->rows;
  ex_trace(ex, "%s: %lld of %lld rows differ from the ledger%s", t->name,
           (long long)s->changed, (long long)s->rows,
           s->changed == 0 ? "" : by_id ? "; those are sent" : "; every row is sent");
  if (s->changed == 0) return 0;
  PGresult *r = pg_exec(ex, "creating a staging table", create_stage_sql);
  if (!r) return -1;
  PQclear(r);
  int rc;
  if (by_id) {
    char *select = source_select_sql(t, 0);
    char *qid = sql_ident(t->cols[t->id_col].name);
    char *lookup_sql = ex_strdup_printf("%s WHERE %s = ?1", select, qid);
    free(select), free(qid);
    sqlite3_stmt *lookup = NULL;
    rc = sqlite3_prepare_v2(ex->src, lookup_sql, -1, &lookup, NULL);
    free(lookup_sql);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(lookup);
      return ex_fail(ex, EXIT_NOINPUT, "source %s: cannot read %s: %s", ex->source_path,
                     t->name, sqlite3_errmsg(ex->src));
    }
    rc = send_changed(ex, t, lookup, stage);
    sqlite3_finalize(lookup);
    if (rc == 0) *n_staged = s->changed;
  } else {
    /* many rows: one pass over the table costs less than lookups */
    s->staged_all = 1;
    int64_t read = 0;
    rc = copy_table_digested(ex, t, stage, &read);
    if (rc == 0) *n_staged = read;
  }
  return rc;
}

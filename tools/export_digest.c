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
**             WHERE table_name = ... ORDER BY row_id) TO STDOUT (FORMAT binary)
**     sent without waiting, so PostgreSQL reads while pass 1 checks;
**   - the source's rows, read in id order (SQLite's primary key index),
**     each valid row's digest computed as the ledger's was (digester_row).
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
** The digest: SHA-256 over the row's sent columns but id, each value in
** its PostgreSQL type's binary send format (jsonb in its normal form,
** json_canonical), self-delimiting: fixed-size values as they are, text a
** NUL after it, bytea its int32 length first, and a 1 byte before each
** value of a nullable column, a 0 byte alone for NULL. Sealed values are
** digested as the source holds them, whatever --secrets sends, so the same
** dev row has the same digest under keep and reseal.
**
** So a rerun with nothing changed reads the source once and the ledger's
** digests once, and sends nothing at all. Nothing of the source goes to
** the target before every row passed.
**
** Used under --secrets=keep and when there are no sealed values (reseal
** and omit need the full staging table: reconciliation, skipped rows),
** without --verify (which digests every sent row in staging), for a table
** with uuid ids whose ledger holds at least half as many rows as the
** source, when the source has an index on id and its rows sit roughly in
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

/* The last JSON text of a column and its jsonb normal form: dev data
** repeats the same scopes and '{}' on most rows. */
typedef struct canon_memo {
  char *src, *out;
  size_t src_n, out_n, src_cap, out_cap;
  int set;
} canon_memo;

typedef struct ex_digester {
  ex_buf rec;
  canon_memo *memo;   /* per column */
  char *canon;        /* json_canonical's output */
  size_t canon_cap;
} digester;

ex_digester *digester_new(const ex_table *t) {
  digester *d = ex_xmalloc(sizeof *d);
  memset(d, 0, sizeof *d);
  d->memo = ex_xmalloc(sizeof *d->memo * (size_t)(t->n_cols ? t->n_cols : 1));
  memset(d->memo, 0, sizeof *d->memo * (size_t)(t->n_cols ? t->n_cols : 1));
  return d;
}

#define MEMO_MAX 4096

/* The jsonb normal form of s, memoized per column. NULL after ex_fail. */
static const char *canonical(exporter *ex, const ex_table *t, digester *d, int j,
                             const char *s, size_t n, size_t *out_n) {
  canon_memo *m = &d->memo[j];
  if (m->set && m->src_n == n && memcmp(m->src, s, n) == 0) {
    *out_n = m->out_n;
    return m->out;
  }
  size_t len = 0;
  if (json_canonical(s, n, &d->canon, &len, &d->canon_cap)) {
    ex_fail(ex, EXIT_DATAERR, "%s.%s: JSON changed since it was checked", t->name,
            t->cols[j].name);
    return NULL;
  }
  if (n <= MEMO_MAX && len <= MEMO_MAX) {
    if (!m->src) m->src = ex_xmalloc(MEMO_MAX), m->out = ex_xmalloc(MEMO_MAX);
    memcpy(m->src, s, n);
    memcpy(m->out, d->canon, len);
    m->src_n = n, m->out_n = len, m->set = 1;
  }
  *out_n = len;
  return d->canon;
}

/* The digest of the current row of st (rowid, then t's columns): the same
** bytes as pg_digest_expr's, from SQLite's values (checked in pass 1). */
static int row_digest(exporter *ex, const ex_table *t, digester *d, sqlite3_stmt *st,
                      unsigned char h[32]) {
  ex_buf *b = &d->rec;
  b->len = 0;
  for (int j = 0; j < t->n_cols; j++) {
    if (!digested(t, j)) continue;
    const ex_column *c = &t->cols[j];
    int col = j + 1;
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
      *buf_reserve(b, 1) = 0;
      continue;
    }
    if (!c->not_null) *buf_reserve(b, 1) = 1;
    switch (c->kind) {
    case PGK_UUID:
      uuid_bytes(sqlite3_column_text(st, col), buf_reserve(b, 16));
      break;
    case PGK_TEXT:
    case PGK_JSON: {
      size_t n = (size_t)sqlite3_column_bytes(st, col);
      unsigned char *at = buf_reserve(b, n + 1);
      memcpy(at, sqlite3_column_text(st, col), n);
      at[n] = 0;
      break;
    }
    case PGK_JSONB: {
      size_t n;
      const char *v = canonical(ex, t, d, j, (const char *)sqlite3_column_text(st, col),
                                (size_t)sqlite3_column_bytes(st, col), &n);
      if (!v) return -1;
      unsigned char *at = buf_reserve(b, n + 2);
      at[0] = 1;  /* jsonb's binary format version */
      memcpy(at + 1, v, n);
      at[n + 1] = 0;
      break;
    }
    case PGK_BYTEA: {
      size_t n = (size_t)sqlite3_column_bytes(st, col);
      buf_be(b, (uint32_t)n, 4);
      if (n) memcpy(buf_reserve(b, n), sqlite3_column_blob(st, col), n);
      break;
    }
    case PGK_TIMESTAMPTZ:
    case PGK_TIMESTAMP:
      buf_be(b, (uint64_t)((sqlite3_column_int64(st, col) - INT64_C(946684800)) * 1000000), 8);
      break;
    case PGK_BOOL:
      *buf_reserve(b, 1) = sqlite3_column_int64(st, col) != 0;
      break;
    case PGK_INT2:
      buf_be(b, (uint64_t)sqlite3_column_int64(st, col), 2);
      break;
    case PGK_INT4:
      buf_be(b, (uint64_t)sqlite3_column_int64(st, col), 4);
      break;
    case PGK_INT8:
      buf_be(b, (uint64_t)sqlite3_column_int64(st, col), 8);
      break;
    }
  }
  crypto_hash_sha256(h, b->p ? b->p : (const unsigned char *)"", b->len);
  return 0;
}

static void digester_free(digester *d, int n_cols) {
  free(d->rec.p);
  for (int j = 0; j < n_cols; j++) free(d->memo[j].src), free(d->memo[j].out);
  free(d->memo);
  free(d->canon);
}

void digester_delete(ex_digester *d, const ex_table *t) {
  if (!d) return;
  digester_free(d, t->n_cols);
  free(d);
}

int digester_row(exporter *ex, const ex_table *t, ex_digester *d, sqlite3_stmt *st,
                 unsigned char h[32]) {
  return row_digest(ex, t, d, st, h);
}

const char *digest_gone_ids(const ex_table *t, int64_t *n) {
  const ex_digest_state *s = t->rerun.state;
  *n = s ? s->n_gone : 0;
  return s ? s->gone : NULL;
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

/* Before pass 1: which tables take this path (t->rerun.chosen). */
int digest_prepare(exporter *ex) {
  if (ex->secrets == SECRETS_RESEAL || ex->secrets == SECRETS_OMIT || ex->verify) return 0;
  for (int i = 0; i < ex->n_tables; i++) {
    ex_table *t = &ex->tables[i];
    t->rerun.chosen = 0;
    if (t->n_source == 0) continue;
    /* most rows promoted before (else most go in full anyway), with
       uuid ids (the ledger's) */
    t->rerun.chosen = t->ledger.rows >= (t->n_source + 1) / 2 &&
                      t->cols[t->id_col].kind == PGK_UUID;
    if (!t->rerun.chosen) continue;
    /* the source must find rows by id, and read them in id order, through
       an index (no sort, which could write a temporary file) */
    char *select = source_select_sql(t, 0);
    char *qid = sql_ident(t->cols[t->id_col].name);
    char *lookup = ex_strdup_printf("%s WHERE %s = ?1", select, qid);
    char *ordered = ex_strdup_printf("%s ORDER BY %s", select, qid);
    t->rerun.chosen = source_uses_index(ex, lookup, 1) && source_uses_index(ex, ordered, 0) &&
                id_order_is_local(ex, t, qid);
    free(select), free(qid), free(lookup), free(ordered);
  }
  return 0;
}

void digest_state_free(ex_table *t) {
  ex_digest_state *s = t->rerun.state;
  if (!s) return;
  if (s->msg) PQfreemem(s->msg);
  if (s->d) digester_free(s->d, t->n_cols), free(s->d);
  free(s->ids);
  free(s->gone);
  free(s);
  t->rerun.state = NULL;
}


/* Pass 1 begins table t: ask for the target's digests, in id order. */
int digest_begin(exporter *ex, ex_table *t) {
  if (!t->rerun.chosen || ex->n_invalid) return 0;
  ex_digest_state *s = ex_xmalloc(sizeof *s);
  memset(s, 0, sizeof *s);
  t->rerun.state = s;
  s->d = ex_xmalloc(sizeof *s->d);
  memset(s->d, 0, sizeof *s->d);
  s->d->memo = ex_xmalloc(sizeof *s->d->memo * (size_t)t->n_cols);
  memset(s->d->memo, 0, sizeof *s->d->memo * (size_t)t->n_cols);
  t->n_sent = 0;
  for (int j = 0; j < t->n_cols; j++) t->n_sent += t->cols[j].sent;
  PGresult *r;
  /* the ledger's digests of the table's rows, in id order */
  char *lit = PQescapeLiteral(ex->pg, t->name, strlen(t->name));
  char *sql = ex_strdup_printf("COPY (SELECT row_id, digest FROM oauthdb_promoted_rows "
                               "WHERE table_name = %s ORDER BY row_id) "
                               "TO STDOUT (FORMAT binary)", lit ? lit : "''");
  PQfreemem(lit);
  r = PQexec(ex->pg, sql);
  free(sql);
  if (PQresultStatus(r) != PGRES_COPY_OUT) {
    s->failed = 1;
    s->target_done = 1;
    pg_fail(ex, "reading the ledger's digests", r);
    PQclear(r);
    return -1;
  }
  PQclear(r);
  s->streaming = 1;
  s->fields = 2;
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
      rc = pg_fail(ex, "reading the ledger's digests", r);
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
      return pg_fail(ex, "reading the ledger's digests", NULL);
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
    if (rest_n != 4 + 32 || rest[0] || rest[1] || rest[2] || rest[3] != 32) goto bad;
    rest += 4, rest_n = 32;
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

/* A row of st (rowid, then t's columns; id order) passed its checks. */
int digest_row(exporter *ex, ex_table *t, sqlite3_stmt *st) {
  ex_digest_state *s = t->rerun.state;
  if (!s || ex->n_invalid) return 0;
  if (s->failed) return -1;
  s->rows++;
  if (s->broken) return 0;
  /* the id as the target sends it */
  const unsigned char *idtext = sqlite3_column_text(st, t->id_col + 1);
  size_t idtext_n = (size_t)sqlite3_column_bytes(st, t->id_col + 1);
  unsigned char key[64];
  size_t key_n;
  if (t->cols[t->id_col].kind == PGK_UUID) {
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
  if (s->cur && c == 0) {
    unsigned char h[32];
    if (row_digest(ex, t, s->d, st, h)) return -1;
    if (memcmp(h, s->cur_h, 32) != 0) note_changed(s, (const char *)idtext, idtext_n);
    if (next_target(ex, s)) return -1;
  } else {
    note_changed(s, (const char *)idtext, idtext_n);  /* the target lacks it */
  }
  return 0;
}

/* Pass 1 is done with t (or stopped: then cancel the target's query). */
int digest_end(exporter *ex, ex_table *t, int stopped) {
  ex_digest_state *s = t->rerun.state;
  if (!s) return 0;
  if (s->d) digester_free(s->d, t->n_cols), free(s->d), s->d = NULL;
  if (s->target_done) return s->failed ? -1 : 0;
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
  return s->failed ? -1 : 0;
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
    int64_t read = 0;
    rc = copy_table_digested(ex, t, stage, &read);
    if (rc == 0) *n_staged = read;
  }
  return rc;
}

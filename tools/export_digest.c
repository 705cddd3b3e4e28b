/*
** export_digest.c: a rerun sends only what changed.
**
** For a target table that already holds rows, sending every source row to a
** staging table and comparing there costs as much as the first load (the
** COPY of full rows, then a join that compares every column). Instead, pass
** 1 compares each row with the target's as it goes:
**
**   - before pass 1 reads a table, the exporter asks PostgreSQL for
**       COPY (SELECT id, <the sent columns> FROM t ORDER BY id)
**         TO STDOUT (FORMAT binary)
**     or, over a network, for each row's SHA-256 digest instead of its
**     columns (sent without waiting: PostgreSQL reads while pass 1 checks);
**   - pass 1 reads the source in id order too (SQLite's primary key index)
**     and, for every row that passed its checks, encodes it the same way
**     and merges the two streams: an id the target lacks, or whose bytes
**     (or digest) differ, is a changed row (its id is kept, up to
**     LOOKUP_MAX of them); target rows the source lacks are passed over;
**   - after pass 1, only the changed rows are sent in full into the usual
**     staging table (pg_temp.oauthdb_stage_N), each looked up by id in the
**     source (all rows, as before, when there are more than LOOKUP_MAX or
**     more than half the rows), and the usual upsert runs on them
**     (export_upsert.c).
**
** So a rerun with nothing changed reads the source once, while PostgreSQL
** reads the target once, and sends nothing at all. Nothing of the source
** goes to the target before every row passed.
**
** Whole rows: the target's binary COPY tuple against the source row's, as
** export_copy.c encodes it, byte for byte, except that a jsonb value comes
** in PostgreSQL's normal form, which the source side renders with
** json_canonical (export_json.c), as --verify does. Streaming the rows
** costs PostgreSQL less than half of hashing them, so this is the choice
** when the target is on this machine (a unix socket).
**
** Digests (over a network, where the rows would cost ten times the bytes):
** SHA-256 over each column's binary send format, self-delimiting (see
** pg_value_expr), computed by PostgreSQL in SQL (in parallel workers where
** it has them) and by the exporter from SQLite's values (libsodium).
**
** Either way the comparison only decides which rows are worth sending: a
** row it calls changed still goes through the upsert, whose IS DISTINCT
** FROM decides (a jsonb number 1.0 against 1.00 is sent and then found
** unchanged), and a row it calls unchanged has exactly the target's bytes.
**
** The target's rows are those of the statement's snapshot, taken when
** pass 1 reaches the table. A row the application changes in production
** after that, and that the source has unchanged, keeps the application's
** change, as if the application had written it just after the export.
**
** Used under --secrets=keep and when there are no sealed values (reseal
** and omit need the full staging table: reconciliation, skipped rows),
** without --verify (which digests every sent row in staging), when the
** source has an index on id and its rows sit roughly in id order, and only
** where the target holds at least half as many rows as the source
** (otherwise most rows are new and go in full anyway). Anything unexpected
** (ids out of order on either side) sends the table in full.
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
  int whole_rows;           /* the target sends its rows, not their digests */
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
  char *ids;                /* changed ids, text, each with its NUL */
  size_t ids_len, ids_cap;
  int64_t n_ids;
};

/* Columns in the digest: the sent ones but id (the merge's key). */
static int digested(const ex_table *t, int j) {
  return t->cols[j].sent && j != t->id_col;
}

/*
** The digest's input, column by column (the sent columns but id): each
** value in its type's binary send format, so that PostgreSQL produces it
** with the send functions and no text conversion (timestamps in
** particular are dear to print), and self-delimiting, so that the whole is
** unambiguous:
**
**   uuid, timestamptz, timestamp, boolean, int2/4/8   the fixed-size bytes
**   text, json, jsonb                  the bytes (jsonb: jsonb_send, the
**                                      version byte then its normal text),
**                                      then a 0 byte (text holds no NUL)
**   bytea                              int32 length, then the bytes
**
** and, for a column that may be NULL, a 1 byte before the value and a 0
** byte alone for NULL. Per column, in SQL:
*/
static char *pg_value_expr(const ex_column *c, const char *v) {
  switch (c->kind) {
  case PGK_UUID: return ex_strdup_printf("uuid_send(%s)", v);
  case PGK_TEXT:
  case PGK_JSON: return ex_strdup_printf("textsend(%s::text) || '\\x00'::bytea", v);
  case PGK_JSONB: return ex_strdup_printf("jsonb_send(%s) || '\\x00'::bytea", v);
  case PGK_TIMESTAMPTZ: return ex_strdup_printf("timestamptz_send(%s)", v);
  case PGK_TIMESTAMP: return ex_strdup_printf("timestamp_send(%s)", v);
  case PGK_BOOL: return ex_strdup_printf("boolsend(%s)", v);
  case PGK_INT2: return ex_strdup_printf("int2send(%s)", v);
  case PGK_INT4: return ex_strdup_printf("int4send(%s)", v);
  case PGK_INT8: return ex_strdup_printf("int8send(%s)", v);
  case PGK_BYTEA: default: return ex_strdup_printf("int4send(length(%s)) || %s", v, v);
  }
}

/* sha256(<every column's part> || ...) over the row alias (malloc'd). */
static char *pg_digest_expr(const ex_table *t, const char *alias) {
  ex_buf b = {0, 0, 0};
  const char *head = "sha256(''::bytea";
  memcpy(buf_reserve(&b, strlen(head)), head, strlen(head));
  for (int j = 0; j < t->n_cols; j++) {
    if (!digested(t, j)) continue;
    const ex_column *c = &t->cols[j];
    char *q = sql_ident(c->name);
    char *v = ex_strdup_printf("%s.%s", alias, q);
    char *e = pg_value_expr(c, v);
    char *part = c->not_null ? ex_strdup_printf(" || %s", e)
                             : ex_strdup_printf(" || coalesce('\\x01'::bytea || %s, '\\x00'::bytea)", e);
    memcpy(buf_reserve(&b, strlen(part)), part, strlen(part));
    free(part), free(e), free(v), free(q);
  }
  const char *tail = ")";
  memcpy(buf_reserve(&b, strlen(tail) + 1), tail, strlen(tail) + 1);
  return (char *)b.p;
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

/* The current row of st as the target's COPY sends it: every sent column
** as a binary COPY field (int32 length, the send format), jsonb in its
** normal form (as jsonb_send has it). */
static int row_fields(exporter *ex, const ex_table *t, digester *d, sqlite3_stmt *st) {
  ex_buf *b = &d->rec;
  b->len = 0;
  for (int j = 0; j < t->n_cols; j++) {
    const ex_column *c = &t->cols[j];
    if (!c->sent) continue;
    int col = j + 1;
    if (c->kind == PGK_JSONB && sqlite3_column_type(st, col) != SQLITE_NULL) {
      size_t n;
      const char *v = canonical(ex, t, d, j, (const char *)sqlite3_column_text(st, col),
                                (size_t)sqlite3_column_bytes(st, col), &n);
      if (!v) return -1;
      buf_be(b, (uint32_t)(n + 1), 4);
      unsigned char *at = buf_reserve(b, n + 1);
      at[0] = 1;  /* jsonb's binary format version */
      memcpy(at + 1, v, n);
      continue;
    }
    /* keep (or no sealed values): sealed bytes as they are */
    if (encode_value(ex, t, c, st, col, b, NULL, NULL, 1)) return -1;
  }
  return 0;
}

static void digester_free(digester *d, int n_cols) {
  free(d->rec.p);
  for (int j = 0; j < n_cols; j++) free(d->memo[j].src), free(d->memo[j].out);
  free(d->memo);
  free(d->canon);
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
  /* The target on this machine (a unix socket): its rows come back whole,
     which costs PostgreSQL less than half of hashing them. Over a network:
     their digests, a tenth of the bytes. OAUTHDB_EXPORT_COMPARE=rows|digests
     chooses (tests, diagnosis). */
  const char *host = PQhost(ex->pg), *force = getenv("OAUTHDB_EXPORT_COMPARE");
  ex->rerun.compare_rows = host && host[0] == '/';
  if (force && !strcmp(force, "rows")) ex->rerun.compare_rows = 1;
  if (force && !strcmp(force, "digests")) ex->rerun.compare_rows = 0;
  for (int i = 0; i < ex->n_tables; i++) {
    ex_table *t = &ex->tables[i];
    t->rerun.chosen = 0;
    if (t->n_source == 0) continue;
    char *qt = sql_ident(t->name);
    int64_t half = (t->n_source + 1) / 2;
    char *sql = ex_strdup_printf("SELECT count(*) FROM (SELECT FROM %s LIMIT %lld) s", qt,
                                 (long long)half);
    free(qt);
    PGresult *r = pg_exec(ex, "counting the target's rows", sql);
    free(sql);
    if (!r) return -1;
    t->rerun.chosen = strtoll(PQgetvalue(r, 0, 0), NULL, 10) >= half;
    PQclear(r);
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
  free(s);
  t->rerun.state = NULL;
}

/* The ORDER BY of the merge: uuid order is byte order; text in "C". */
static const char *order_collate(const ex_table *t) {
  return t->cols[t->id_col].kind == PGK_UUID ? "" : " COLLATE \"C\"";
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
  s->whole_rows = ex->rerun.compare_rows;
  t->n_sent = 0;
  for (int j = 0; j < t->n_cols; j++) t->n_sent += t->cols[j].sent;
  PGresult *r;
  if (!s->whole_rows) {
    /* Computing the digests is the work: PostgreSQL may share it among
       parallel workers (in id order through Gather Merge). The planner does
       not know how dear sha256 is, so passing rows between processes is
       made cheap for this one statement; finish_target resets both. */
    r = pg_exec(ex, "reading the target's digests",
                "SET LOCAL parallel_setup_cost = 0; "
                "SET LOCAL parallel_tuple_cost = 0.001");
    if (!r) {
      s->failed = 1;
      return -1;
    }
    PQclear(r);
  }
  char *qt = sql_ident(t->name);
  char *qid = sql_ident(t->cols[t->id_col].name);
  char *expr = s->whole_rows ? copy_column_list(t) : pg_digest_expr(t, "cur");
  char *sql = ex_strdup_printf("COPY (SELECT cur.%s, %s FROM %s cur ORDER BY cur.%s%s) "
                               "TO STDOUT (FORMAT binary)",
                               qid, expr, qt, qid, order_collate(t));
  free(qt), free(qid), free(expr);
  r = PQexec(ex->pg, sql);
  free(sql);
  if (PQresultStatus(r) != PGRES_COPY_OUT) {
    s->failed = 1;
    s->target_done = 1;
    pg_fail(ex, "reading the target's digests", r);
    PQclear(r);
    return -1;
  }
  PQclear(r);
  s->streaming = 1;
  s->fields = s->whole_rows ? 1 + t->n_sent : 2;
  return 0;
}

/* The end of the target's COPY: its status, and the settings back. */
static int finish_target(exporter *ex, ex_digest_state *s) {
  PGresult *r;
  int rc = 0;
  s->target_done = 1;
  s->streaming = 0;
  while ((r = PQgetResult(ex->pg))) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK && !s->failed) {
      s->failed = 1;
      rc = pg_fail(ex, "reading the target's digests", r);
    }
    PQclear(r);
  }
  if (rc || s->whole_rows) return rc;
  r = pg_exec(ex, "reading the target's digests",
              "RESET parallel_setup_cost; RESET parallel_tuple_cost");
  if (!r) {
    s->failed = 1;
    return -1;
  }
  PQclear(r);
  return 0;
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
      return pg_fail(ex, "reading the target's digests", NULL);
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
    if (!s->whole_rows) {
      if (rest_n != 4 + 32 || rest[0] || rest[1] || rest[2] || rest[3] != 32) goto bad;
      rest += 4, rest_n = 32;
    }
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
    if (next_target(ex, s)) return -1;
    if (s->cur && cmp_bytes(prev, prev_n, s->cur_id, s->cur_id_n) >= 0) {
      s->broken = 1;  /* the target's ids are not in the source's order */
      return 0;
    }
  }
  if (s->cur && c == 0) {
    int same;
    if (s->whole_rows) {
      if (row_fields(ex, t, s->d, st)) return -1;
      same = s->d->rec.len == s->cur_h_n && memcmp(s->d->rec.p, s->cur_h, s->cur_h_n) == 0;
    } else {
      unsigned char h[32];
      if (row_digest(ex, t, s->d, st, h)) return -1;
      same = memcmp(h, s->cur_h, 32) == 0;
    }
    if (!same) note_changed(s, (const char *)idtext, idtext_n);
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
  /* the rest of the target's rows (ids the source does not have) */
  while (!s->target_done)
    if (next_target(ex, s)) return -1;
  return s->failed ? -1 : 0;
}

/* Look each changed row up in the source; one COPY into stage. */
static int send_changed(exporter *ex, ex_table *t, sqlite3_stmt *lookup, const char *stage) {
  ex_digest_state *s = t->rerun.state;
  char *cols = copy_column_list(t);
  char *sql = ex_strdup_printf("COPY %s (%s) FROM STDIN (FORMAT binary)", stage, cols);
  char *what = ex_strdup_printf("COPY of %s", t->name);
  free(cols);
  ex_copy c;
  int rc = copy_start(ex, &c, sql, what);
  free(sql);
  free(what);
  if (rc) return -1;
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
  return copy_finish(&c, &taken);
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
  ex_trace(ex, "%s: %lld of %lld rows differ from the target%s", t->name,
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
    rc = copy_table(ex, t, stage, &read);
    if (rc == 0) *n_staged = read;
  }
  return rc;
}

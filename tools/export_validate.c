/*
** export_validate.c: pass 1, every source row checked before any is sent.
**
** What a dev database can hold that PostgreSQL would reject, or worse,
** accept as something else: invalid UTF-8 or NUL in TEXT, a value stored with
** the wrong storage class (a non-STRICT table, or a hand edit), JSON that
** json_valid() refuses or jsonb cannot store, timestamps out of range or in
** milliseconds, NULL in a NOT NULL column, broken foreign keys (SQLite
** enforces them only with PRAGMA foreign_keys=ON), and sealed columns that
** do not hold sealed values. What to expect of each column comes from the
** target's type, read from its catalog (export_schema.c).
**
** A finding names table, id, column and reason, and never the value: it
** may be a secret.
*/
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "export.h"

/*
** Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
** U+10FFFF, which is exactly what PostgreSQL's UTF8 encoding accepts.
** Returns 0 if valid, else -1 with *bad_at the offset of the bad sequence.
*/
int utf8_check(const unsigned char *s, size_t n, size_t *bad_at) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
    else goto bad;
    if (i + len > n) goto bad;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) goto bad;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
    i += len;
  }
  return 0;
bad:
  *bad_at = i;
  return -1;
}

/* Canonical lower-case UUID text, as the schema's CHECK and uuid7() have it. */
int uuid_check(const unsigned char *s, size_t n) {
  /* 1: a lower-case hex digit; every other byte 0 */
  static const unsigned char hex[256] = {
      ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
      ['7'] = 1, ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
      ['e'] = 1, ['f'] = 1};
  if (n != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') return -1;
  unsigned ok = 1;
  for (size_t i = 0; i < 8; i++) ok &= hex[s[i]];
  for (size_t i = 9; i < 13; i++) ok &= hex[s[i]];
  for (size_t i = 14; i < 18; i++) ok &= hex[s[i]];
  for (size_t i = 19; i < 23; i++) ok &= hex[s[i]];
  for (size_t i = 24; i < 36; i++) ok &= hex[s[i]];
  return ok ? 0 : -1;
}

/*
** The common case first: text that is plain ASCII without NUL passes both
** checks below, and 8 bytes are looked at at once. Returns 1 when s is
** known to be fine, 0 when the exact checks must decide.
*/
static int text_plainly_ok(const unsigned char *s, size_t n) {
  const uint64_t high = UINT64_C(0x8080808080808080), low = UINT64_C(0x0101010101010101);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    if ((w & high) || ((w - low) & ~w & high)) return 0;
  }
  for (; i < n; i++)
    if (s[i] == 0 || s[i] >= 0x80) return 0;
  return 1;
}

static const char *class_name(int type) {
  switch (type) {
  case SQLITE_INTEGER: return "INTEGER";
  case SQLITE_FLOAT: return "REAL";
  case SQLITE_TEXT: return "TEXT";
  case SQLITE_BLOB: return "BLOB";
  default: return "NULL";
  }
}

static int expected_class(pg_kind k) {
  switch (k) {
  case PGK_UUID: case PGK_TEXT: case PGK_JSON: case PGK_JSONB: return SQLITE_TEXT;
  case PGK_BYTEA: return SQLITE_BLOB;
  default: return SQLITE_INTEGER;
  }
}

/* The row's id for messages: the id itself when it is a clean UUID. */
static void row_label(sqlite3_stmt *st, const ex_table *t, char *out, size_t cap) {
  int col = t->id_col + 1;
  if (sqlite3_column_type(st, col) == SQLITE_TEXT) {
    const unsigned char *v = sqlite3_column_text(st, col);
    if (uuid_check(v, (size_t)sqlite3_column_bytes(st, col)) == 0) {
      snprintf(out, cap, "%s", (const char *)v);
      return;
    }
  }
  snprintf(out, cap, "(rowid %lld)", (long long)sqlite3_column_int64(st, 0));
}

/*
** JSON values: json_valid() (SQLite's own verdict) and json_pg_problem(),
** both run only when a column's value differs from the last one that
** passed: dev data repeats the same scopes or '{}' on most rows.
*/
#define JSON_MEMO_MAX 1024
typedef struct json_memo {
  unsigned char *p;
  size_t n;
  int set;
} json_memo;

typedef struct vctx {
  sqlite3_stmt *json_valid;   /* SELECT json_valid(?1) */
  json_memo *memo;            /* per column */
} vctx;

static const char *check_json(exporter *ex, vctx *v, int j, const unsigned char *s,
                              size_t n, char *buf, size_t cap) {
  json_memo *m = &v->memo[j];
  if (m->set && m->n == n && memcmp(m->p, s, n) == 0) return NULL;
  sqlite3_bind_text(v->json_valid, 1, (const char *)s, (int)n, SQLITE_STATIC);
  int rc = sqlite3_step(v->json_valid);
  int valid = rc == SQLITE_ROW && sqlite3_column_int(v->json_valid, 0) == 1;
  sqlite3_reset(v->json_valid);
  sqlite3_clear_bindings(v->json_valid);
  if (rc != SQLITE_ROW) {
    snprintf(buf, cap, "json_valid() failed: %s", sqlite3_errmsg(ex->src));
    return buf;
  }
  if (!valid) return "invalid JSON (json_valid() = 0)";
  const char *why = json_pg_problem((const char *)s, n);
  if (why) {
    snprintf(buf, cap, "JSON that PostgreSQL cannot store: %s", why);
    return buf;
  }
  if (n <= JSON_MEMO_MAX) {
    if (!m->p) m->p = ex_xmalloc(JSON_MEMO_MAX);
    memcpy(m->p, s, n);
    m->n = n;
    m->set = 1;
  }
  return NULL;
}

/* Check one value; NULL if fine, else the reason in buf. */
static const char *check_value(exporter *ex, const ex_table *t, const ex_column *c,
                               sqlite3_stmt *st, int col, vctx *vc,
                               const char *id, char *buf, size_t cap) {
  int type = sqlite3_column_type(st, col);
  if (type == SQLITE_NULL) {
    if (c->not_null) return "NULL in a NOT NULL column";
    return NULL;
  }
  int want = expected_class(c->kind);
  if (type != want) {
    snprintf(buf, cap, "stored as %s where %s is expected (target type %s)",
             class_name(type), class_name(want), c->pg_type);
    return buf;
  }
  if (want == SQLITE_TEXT) {
    const unsigned char *v = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col), bad;
    if (text_plainly_ok(v, n)) {
      /* no NUL, valid UTF-8 */
    } else if (memchr(v, 0, n)) {
      snprintf(buf, cap, "NUL byte at offset %zu (PostgreSQL text cannot hold it)",
               (size_t)((const unsigned char *)memchr(v, 0, n) - v));
      return buf;
    } else if (utf8_check(v, n, &bad)) {
      snprintf(buf, cap, "invalid UTF-8 at byte %zu", bad);
      return buf;
    }
    if (c->kind == PGK_UUID && uuid_check(v, n))
      return "not a canonical lower-case UUID";
    if (c->kind == PGK_JSON || c->kind == PGK_JSONB)
      return check_json(ex, vc, (int)(c - t->cols), v, n, buf, cap);
    return NULL;
  }
  if (want == SQLITE_BLOB) {
    if (!c->sealed) return NULL;
    ex->sealed_counted++;
    return secrets_check(ex, t, c, id, sqlite3_column_blob(st, col),
                         (size_t)sqlite3_column_bytes(st, col));
  }
  int64_t v = sqlite3_column_int64(st, col);
  switch (c->kind) {
  case PGK_TIMESTAMPTZ:
  case PGK_TIMESTAMP:
    if (v >= 0 && v <= TS_MAX_SECONDS) return NULL;
    if (v > TS_MAX_SECONDS && v / 1000 <= TS_MAX_SECONDS)
      snprintf(buf, cap,
               "timestamp %" PRId64 " is out of range (0 to %" PRId64
               " unix seconds): milliseconds?", v, TS_MAX_SECONDS);
    else
      snprintf(buf, cap, "timestamp %" PRId64 " is out of range (0 to %" PRId64
               " unix seconds)", v, TS_MAX_SECONDS);
    return buf;
  case PGK_BOOL:
    if (v == 0 || v == 1) return NULL;
    snprintf(buf, cap, "boolean stored as %" PRId64 " (only 0 or 1)", v);
    return buf;
  case PGK_INT2:
    if (v >= INT16_MIN && v <= INT16_MAX) return NULL;
    snprintf(buf, cap, "%" PRId64 " does not fit %s", v, c->pg_type);
    return buf;
  case PGK_INT4:
    if (v >= INT32_MIN && v <= INT32_MAX) return NULL;
    snprintf(buf, cap, "%" PRId64 " does not fit %s", v, c->pg_type);
    return buf;
  default:
    return NULL;
  }
}

/* Append s to the malloc'd SQL text *sql. */
static void sql_append(char **sql, size_t *len, size_t *cap, const char *s) {
  size_t n = strlen(s);
  if (*len + n + 1 > *cap) *sql = ex_xrealloc(*sql, *cap = 2 * (*len + n + 1));
  memcpy(*sql + *len, s, n + 1);
  *len += n;
}

/*
** One column per foreign key of t (as SQLite declares it, the same list
** pragma_foreign_key_check uses): 1 when the row's key is NULL or its parent
** row exists, else 0. Appended to pass 1's SELECT, so that the check costs
** one index lookup per row and no second scan of the child table. Returns
** the SQL to append (malloc'd; "" when t has no foreign key), or NULL when
** the list cannot be built (then validate_fks does it all).
*/
static char *fk_exists_sql(exporter *ex, const ex_table *t, int *n_fk) {
  sqlite3_stmt *st = NULL, *pk = NULL;
  size_t cap = 256, len = 0;
  char *sql = ex_xmalloc(cap);
  sql[0] = 0;
  *n_fk = 0;
  if (sqlite3_prepare_v2(ex->src,
                         "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) "
                         "ORDER BY id, seq", -1, &st, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(ex->src,
                         "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
                         -1, &pk, NULL) != SQLITE_OK)
    goto fail;
  sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
  char *qt = sql_ident(t->name);
  int cur = -1, rc = SQLITE_DONE;
  char *where = NULL;   /* this key's join condition */
  int ok = 1;
  while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    int id = sqlite3_column_int(st, 0);
    const char *parent = (const char *)sqlite3_column_text(st, 1);
    const char *from = (const char *)sqlite3_column_text(st, 2);
    const char *to = (const char *)sqlite3_column_text(st, 3);
    if (!parent || !from) { ok = 0; break; }
    char *to_owned = NULL;
    if (!to) {  /* the parent's primary key: only a one-column one here */
      sqlite3_reset(pk);
      sqlite3_bind_text(pk, 1, parent, -1, SQLITE_TRANSIENT);
      if (sqlite3_step(pk) != SQLITE_ROW) { ok = 0; break; }
      to_owned = ex_xstrdup((const char *)sqlite3_column_text(pk, 0));
      if (sqlite3_step(pk) == SQLITE_ROW) { free(to_owned); ok = 0; break; }
      to = to_owned;
    }
    char *qp = sql_ident(parent), *qf = sql_ident(from), *qto = sql_ident(to);
    if (id != cur) {
      if (where) {  /* close the previous key */
        char *end = ex_strdup_printf(" THEN 1 ELSE EXISTS (SELECT 1 FROM %s) END)", where);
        sql_append(&sql, &len, &cap, end);
        free(end), free(where);
      }
      cur = id;
      (*n_fk)++;
      sql_append(&sql, &len, &cap, ", (CASE WHEN ");
      char *first = ex_strdup_printf("%s.%s IS NULL", qt, qf);
      sql_append(&sql, &len, &cap, first);
      free(first);
      where = ex_strdup_printf("%s AS oauthdb_parent WHERE oauthdb_parent.%s = %s.%s", qp, qto, qt, qf);
    } else {
      char *more = ex_strdup_printf(" OR %s.%s IS NULL", qt, qf);
      sql_append(&sql, &len, &cap, more);
      free(more);
      char *w = ex_strdup_printf("%s AND oauthdb_parent.%s = %s.%s", where, qto, qt, qf);
      free(where);
      where = w;
    }
    free(qp), free(qf), free(qto), free(to_owned);
  }
  if (ok && rc != SQLITE_DONE) ok = 0;
  if (ok && where) {
    char *end = ex_strdup_printf(" THEN 1 ELSE EXISTS (SELECT 1 FROM %s) END)", where);
    sql_append(&sql, &len, &cap, end);
    free(end);
  }
  free(where);
  free(qt);
  sqlite3_finalize(st);
  sqlite3_finalize(pk);
  if (!ok) {
    free(sql);
    return NULL;
  }
  return sql;
fail:
  sqlite3_finalize(st);
  sqlite3_finalize(pk);
  free(sql);
  return NULL;
}

/*
** Pass 1 over one table's rows. *fk_suspect is set when a foreign key
** column says a parent is missing (or when the keys could not be checked
** here); validate_fks then names the rows, as SQLite's own check does.
*/
static int validate_rows(exporter *ex, ex_table *t, int *fk_suspect) {
  *fk_suspect = 0;
  /* dev changed none of its rows since they were checked and promoted */
  if (digest_summary_scan(ex, t)) return -1;
  if (t->rerun.unchanged) {
    progress_step(ex, t->n_source);
    return 0;
  }
  /* in id order when merged with the target's digests (export_digest.c) */
  char *order = NULL;
  if (t->rerun.chosen && !t->rerun.rowid_order) {
    char *qid = sql_ident(t->cols[t->id_col].name);
    order = ex_strdup_printf(" ORDER BY %s", qid);
    free(qid);
  }
  char *sql = source_select_sql_ex(t, 0, "", order ? order : "");
  int n_fk = 0;
  char *fks = fk_exists_sql(ex, t, &n_fk);
  sqlite3_stmt *st = NULL;
  int rc = SQLITE_ERROR;
  *fk_suspect = 0;
  if (fks) {
    char *full = source_select_sql_ex(t, 0, fks, order ? order : "");
    rc = sqlite3_prepare_v2(ex->src, full, -1, &st, NULL);
    free(full);
    free(fks);
  }
  free(order);
  if (rc != SQLITE_OK) {  /* keys not checkable in the scan: afterwards */
    sqlite3_finalize(st);
    st = NULL;
    n_fk = 0;
    *fk_suspect = 1;
    rc = sqlite3_prepare_v2(ex->src, sql, -1, &st, NULL);
  }
  free(sql);
  if (rc != SQLITE_OK)
    return ex_fail(ex, EXIT_NOINPUT, "source %s: cannot read %s: %s", ex->source_path,
                   t->name, sqlite3_errmsg(ex->src));
  vctx vc = {NULL, NULL};
  if (sqlite3_prepare_v2(ex->src, "SELECT json_valid(?1)", -1, &vc.json_valid, NULL) !=
      SQLITE_OK) {
    sqlite3_finalize(st);
    return ex_fail(ex, EXIT_NOINPUT, "source %s: json_valid(): %s", ex->source_path,
                   sqlite3_errmsg(ex->src));
  }
  vc.memo = ex_xmalloc(sizeof *vc.memo * (size_t)(t->n_cols ? t->n_cols : 1));
  memset(vc.memo, 0, sizeof *vc.memo * (size_t)(t->n_cols ? t->n_cols : 1));
  if (digest_begin(ex, t)) {
    sqlite3_finalize(st);
    sqlite3_finalize(vc.json_valid);
    free(vc.memo);
    return -1;
  }
  progress_begin(ex, "checking", t->name);
  char id[64] = "", reason[256];
  int stop = 0;
  int fk_col = t->n_cols + 1;
  while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    int labelled = 0;
    /* a row dev has not changed since it was checked and promoted: its
       values are those checked then (its foreign keys are checked again) */
    int same = digest_row(ex, t, st);
    if (same < 0) {
      stop = 2;
      break;
    }
    for (int j = 0; j < t->n_cols && !stop && !same; j++) {
      const ex_column *c = &t->cols[j];
      if (!c->sent) continue;
      /* the row's label is needed by a finding, or as associated data */
      if (!labelled && c->sealed && ex->secrets == SECRETS_RESEAL) {
        row_label(st, t, id, sizeof id);
        labelled = 1;
      }
      const char *why = check_value(ex, t, c, st, j + 1, &vc, id, reason, sizeof reason);
      if (why) {
        if (!labelled) row_label(st, t, id, sizeof id), labelled = 1;
        ex_invalid(ex, t, id, c->name, "%s", why);
        if (!ex->all_errors) stop = 1;
      }
    }
    for (int k = 0; k < n_fk; k++)
      if (sqlite3_column_int(st, fk_col + k) == 0) *fk_suspect = 1;
    progress_step(ex, 1);
  }
  sqlite3_finalize(st);
  sqlite3_finalize(vc.json_valid);
  for (int j = 0; j < t->n_cols; j++) free(vc.memo[j].p);
  free(vc.memo);
  int read_failed = !stop && rc != SQLITE_DONE;
  if (read_failed)
    ex_fail(ex, EXIT_NOINPUT, "source %s: reading %s failed: %s", ex->source_path, t->name,
            sqlite3_errmsg(ex->src));
  if (digest_end(ex, t, stop != 0 || read_failed) || stop == 2 || read_failed)
    return -1;
  return 0;
}

/*
** Foreign keys: SQLite's own check, which finds every child row without a
** parent whether or not foreign_keys was on when it was written.
*/
static int validate_fks(exporter *ex, ex_table *t) {
  sqlite3_stmt *st = NULL, *from = NULL, *idq = NULL;
  int rc = sqlite3_prepare_v2(ex->src,
                              "SELECT rowid, \"parent\", fkid FROM pragma_foreign_key_check(?1)",
                              -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(ex->src,
                            "SELECT \"from\", \"to\" FROM pragma_foreign_key_list(?1) "
                            "WHERE id = ?2 ORDER BY seq", -1, &from, NULL);
  char *q = sql_ident(t->name);  /* same quoting rules as SQLite's */
  char *sql = ex_strdup_printf("SELECT id FROM %s WHERE rowid = ?1", q);
  free(q);
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(ex->src, sql, -1, &idq, NULL);
  free(sql);
  if (rc != SQLITE_OK) {
    ex_fail(ex, EXIT_NOINPUT, "source %s: cannot check foreign keys of %s: %s",
            ex->source_path, t->name, sqlite3_errmsg(ex->src));
    goto done;
  }
  sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(from, 1, t->name, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    char id[64], column[128] = "?", to[128] = "";
    sqlite3_bind_int64(idq, 1, sqlite3_column_int64(st, 0));
    if (sqlite3_step(idq) == SQLITE_ROW && sqlite3_column_type(idq, 0) == SQLITE_TEXT &&
        uuid_check(sqlite3_column_text(idq, 0), (size_t)sqlite3_column_bytes(idq, 0)) == 0)
      snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(idq, 0));
    else
      snprintf(id, sizeof id, "(rowid %lld)", (long long)sqlite3_column_int64(st, 0));
    sqlite3_reset(idq);
    sqlite3_bind_int(from, 2, sqlite3_column_int(st, 2));
    if (sqlite3_step(from) == SQLITE_ROW) {
      snprintf(column, sizeof column, "%s", (const char *)sqlite3_column_text(from, 0));
      if (sqlite3_column_type(from, 1) == SQLITE_TEXT)
        snprintf(to, sizeof to, "(%s)", (const char *)sqlite3_column_text(from, 1));
    }
    sqlite3_reset(from);
    ex_invalid(ex, t, id, column, "foreign key: no row in %s%s has this value",
               (const char *)sqlite3_column_text(st, 1), to);
    if (!ex->all_errors) {
      rc = SQLITE_DONE;
      break;
    }
  }
  if (rc != SQLITE_DONE)
    ex_fail(ex, EXIT_NOINPUT, "source %s: cannot check foreign keys of %s: %s",
            ex->source_path, t->name, sqlite3_errmsg(ex->src));
done:
  sqlite3_finalize(st);
  sqlite3_finalize(from);
  sqlite3_finalize(idq);
  return ex->exit_code ? -1 : 0;
}

int validate_source(exporter *ex) {
  ex->progress_total = 0;
  for (int i = 0; i < ex->n_tables; i++) ex->progress_total += ex->tables[i].n_source;
  for (int i = 0; i < ex->n_tables; i++) {
    ex_table *t = &ex->tables[i];
    int fk_suspect = 0;
    if (validate_rows(ex, t, &fk_suspect)) return -1;
    ex_trace(ex, "pass 1: %s checked (%lld rows)%s", t->name, (long long)t->n_source,
             t->rerun.unchanged ? ": unchanged in dev, by its summary"
             : t->rerun.chosen ? ", digests compared" : "");
    if (ex->n_invalid && !ex->all_errors) break;
    if (fk_suspect && validate_fks(ex, t)) return -1;
    if (ex->n_invalid && !ex->all_errors) break;
  }
  progress_end(ex);
  ex->sealed_values = ex->sealed_counted;
  if (ex->n_invalid && ex->all_errors)
    return ex_fail(ex, EXIT_DATAERR,
                   "%lld invalid row%s in the source; nothing was sent or committed",
                   (long long)ex->n_invalid, ex->n_invalid == 1 ? "" : "s");
  if (ex->n_invalid)
    return ex_fail(ex, EXIT_DATAERR,
                   "the source has an invalid row; nothing was sent or committed "
                   "(--all-errors lists every one)");
  return 0;
}

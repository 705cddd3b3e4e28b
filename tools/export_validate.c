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
  if (n != 36) return -1;
  for (size_t i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return -1;
    } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
      return -1;
    }
  }
  return 0;
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

/* Check one value; NULL if fine, else the reason in buf. */
static const char *check_value(exporter *ex, const ex_table *t, const ex_column *c,
                               sqlite3_stmt *st, int col, int json_valid_col,
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
    if (memchr(v, 0, n)) {
      snprintf(buf, cap, "NUL byte at offset %zu (PostgreSQL text cannot hold it)",
               (size_t)((const unsigned char *)memchr(v, 0, n) - v));
      return buf;
    }
    if (utf8_check(v, n, &bad)) {
      snprintf(buf, cap, "invalid UTF-8 at byte %zu", bad);
      return buf;
    }
    if (c->kind == PGK_UUID && uuid_check(v, n))
      return "not a canonical lower-case UUID";
    if (c->kind == PGK_JSON || c->kind == PGK_JSONB) {
      if (sqlite3_column_int(st, json_valid_col) != 1) return "invalid JSON (json_valid() = 0)";
      const char *why = json_pg_problem((const char *)v, n);
      if (why) {
        snprintf(buf, cap, "JSON that PostgreSQL cannot store: %s", why);
        return buf;
      }
    }
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

static int validate_rows(exporter *ex, ex_table *t) {
  char *sql = source_select_sql(t, 1);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(ex->src, sql, -1, &st, NULL);
  free(sql);
  if (rc != SQLITE_OK)
    return ex_fail(ex, EXIT_NOINPUT, "source %s: cannot read %s: %s", ex->source_path,
                   t->name, sqlite3_errmsg(ex->src));
  progress_begin(ex, "checking", t->name);
  char id[64], reason[256];
  int stop = 0;
  while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    row_label(st, t, id, sizeof id);
    int json_col = t->n_cols + 1;
    for (int j = 0; j < t->n_cols && !stop; j++) {
      const ex_column *c = &t->cols[j];
      int this_json = -1;
      if (c->kind == PGK_JSON || c->kind == PGK_JSONB) this_json = json_col++;
      if (!c->sent) continue;
      const char *why = check_value(ex, t, c, st, j + 1, this_json, id, reason, sizeof reason);
      if (why) {
        ex_invalid(ex, t, id, c->name, "%s", why);
        if (!ex->all_errors) stop = 1;
      }
    }
    progress_step(ex, 1);
  }
  sqlite3_finalize(st);
  if (!stop && rc != SQLITE_DONE)
    return ex_fail(ex, EXIT_NOINPUT, "source %s: reading %s failed: %s",
                   ex->source_path, t->name, sqlite3_errmsg(ex->src));
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
  char *q = pg_ident(t->name);  /* same quoting rules as SQLite's */
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
    if (validate_rows(ex, t)) return -1;
    if (ex->n_invalid && !ex->all_errors) break;
    if (validate_fks(ex, t)) return -1;
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

/*
** keys.c: oauthdb_keys, the connection's keyring and what uses each key.
**
**   SELECT * FROM oauthdb_keys;
**   -- key_id   | status  | is_primary | sealed_values
**   -- 9c0e51d2 | primary | 1          | 1840
**   -- 0a77b3e0 | active  | 0          | 12
**   -- 5b3f0c11 | unknown | 0          | 2      <- sealed, key not in keyring
**
** One row per key of the keyring, in file order, then one per key id found
** in oauth_tokens that the keyring does not have (status 'unknown': those
** values cannot be opened here). sealed_values counts the sealed values
** (access_token, refresh_token and id_token) of oauth_tokens whose header names the
** key: bytes 3..6 of the value, substr(x, 3, 4). A retired key whose count
** is 0 can be dropped from the keyring; rotation waits for that.
**
** Never a key byte: the rows are built from ids and statuses only.
** Counting reads the whole of oauth_tokens (no index holds key ids), so it
** is only done when sealed_values is asked for (colUsed, idxNum bit 1).
*/
#include <string.h>
#include "oauthdb.h"

SQLITE_EXTENSION_INIT3

enum { KCOL_KEY_ID, KCOL_STATUS, KCOL_IS_PRIMARY, KCOL_SEALED_VALUES };

/* idxNum bit: sealed_values is used, so count. */
#define KEYS_COUNT 1

/* key id (bytes 3..6 of a sealed value, as lower-case hex) -> how many. */
#define KEYS_COUNT_SQL                                                       \
  "SELECT lower(hex(k)), count(*) FROM ("                                    \
  " SELECT substr(access_token, 3, 4) AS k FROM main.oauth_tokens"           \
  " UNION ALL"                                                               \
  " SELECT substr(refresh_token, 3, 4) FROM main.oauth_tokens"               \
  "  WHERE refresh_token IS NOT NULL"                                        \
  " UNION ALL"                                                               \
  " SELECT substr(id_token, 3, 4) FROM main.oauth_tokens"                    \
  "  WHERE id_token IS NOT NULL"                                             \
  ") GROUP BY k ORDER BY k"

#define KEYS_HAS_TABLE_SQL                                                   \
  "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' "                   \
  "AND name = 'oauth_tokens'"

typedef struct key_row {
  char key_id[9];
  const char *status;
  int is_primary;
  sqlite3_int64 sealed_values;
} key_row;

typedef struct keys_vtab {
  sqlite3_vtab base;
  sqlite3 *db;
  oauthdb_conn *conn;
} keys_vtab;

typedef struct keys_cursor {
  sqlite3_vtab_cursor base;
  key_row *rows;
  int n, i;
} keys_cursor;

static int keys_connect(sqlite3 *db, void *aux, int argc,
                        const char *const *argv, sqlite3_vtab **out,
                        char **pzErr) {
  (void)argc; (void)argv; (void)pzErr;
  int rc = sqlite3_declare_vtab(db,
      "CREATE TABLE x(key_id TEXT, status TEXT, is_primary INTEGER, "
      "sealed_values INTEGER)");
  if (rc != SQLITE_OK) return rc;
  keys_vtab *v = sqlite3_malloc(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->db = db;
  v->conn = aux;
  *out = &v->base;
  return SQLITE_OK;
}

static int keys_disconnect(sqlite3_vtab *vtab) {
  sqlite3_free(vtab);
  return SQLITE_OK;
}

static int keys_best_index(sqlite3_vtab *vtab, sqlite3_index_info *info) {
  (void)vtab;
  int counts = (info->colUsed >> KCOL_SEALED_VALUES) & 1;
  info->idxNum = counts ? KEYS_COUNT : 0;
  info->estimatedCost = counts ? 1e6 : 10;  /* counting scans oauth_tokens */
  info->estimatedRows = 4;
  return SQLITE_OK;
}

static int keys_open(sqlite3_vtab *vtab, sqlite3_vtab_cursor **out) {
  (void)vtab;
  keys_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  *out = &c->base;
  return SQLITE_OK;
}

static int keys_close(sqlite3_vtab_cursor *cur) {
  sqlite3_free(((keys_cursor *)cur)->rows);
  sqlite3_free(cur);
  return SQLITE_OK;
}

static void hex_id(uint32_t id, char out[9]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 8; i++) out[i] = digits[(id >> (28 - 4 * i)) & 0xf];
  out[8] = '\0';
}

static key_row *row_for(keys_cursor *c, const char *key_id) {
  for (int i = 0; i < c->n; i++)
    if (strcmp(c->rows[i].key_id, key_id) == 0) return &c->rows[i];
  return NULL;
}

static int has_tokens_table(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int found = 0;
  if (sqlite3_prepare_v2(db, KEYS_HAS_TABLE_SQL, -1, &st, NULL) == SQLITE_OK)
    found = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return found;
}

/* Add each key id's count of sealed values; ids not in the keyring get rows. */
static int count_sealed(keys_vtab *v, keys_cursor *c, int cap) {
  if (!has_tokens_table(v->db)) return SQLITE_OK;  /* not migrated: none */
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(v->db, KEYS_COUNT_SQL, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    vtab_set_error(&v->base, "oauthdb_keys: cannot count sealed values: %s",
                   sqlite3_errmsg(v->db));
    return rc;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *key_id = (const char *)sqlite3_column_text(st, 0);
    /* The schema's CHECK keeps values >= 46 bytes; anything shorter is junk. */
    if (!key_id || strlen(key_id) != 8) continue;
    key_row *r = row_for(c, key_id);
    if (!r) {
      if (c->n == cap) {
        cap *= 2;
        key_row *grown = sqlite3_realloc64(c->rows, (sqlite3_uint64)cap * sizeof *grown);
        if (!grown) {
          rc = SQLITE_NOMEM;
          break;
        }
        c->rows = grown;
      }
      r = &c->rows[c->n++];
      memcpy(r->key_id, key_id, 9);
      r->status = "unknown";
      r->is_primary = 0;
    }
    r->sealed_values = sqlite3_column_int64(st, 1);
  }
  if (rc != SQLITE_DONE && rc != SQLITE_NOMEM)
    vtab_set_error(&v->base, "oauthdb_keys: cannot count sealed values: %s",
                   sqlite3_errmsg(v->db));
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int keys_filter(sqlite3_vtab_cursor *cur, int idx_num,
                       const char *idx_str, int argc, sqlite3_value **argv) {
  (void)idx_str; (void)argc; (void)argv;
  keys_cursor *c = (keys_cursor *)cur;
  keys_vtab *v = (keys_vtab *)cur->pVtab;
  sqlite3_free(c->rows);
  c->rows = NULL;
  c->n = c->i = 0;

  char *err = NULL;
  keyring *kr = connection_keyring(v->conn, &err);
  if (!kr) {
    /* connection_keyring's message says how to load one. */
    vtab_set_error(cur->pVtab, "oauthdb_keys: %s", err ? err : "out of memory");
    sqlite3_free(err);
    return SQLITE_ERROR;
  }
  int cap = kr->n_keys + 4;
  c->rows = sqlite3_malloc64((sqlite3_uint64)cap * sizeof *c->rows);
  if (!c->rows) return SQLITE_NOMEM;
  for (int i = 0; i < kr->n_keys; i++) {
    key_row *r = &c->rows[c->n++];
    hex_id(kr->keys[i].id, r->key_id);
    r->status = key_status_name(kr->keys[i].status);
    r->is_primary = kr->keys[i].status == KEY_PRIMARY;
    r->sealed_values = 0;
  }
  return idx_num & KEYS_COUNT ? count_sealed(v, c, cap) : SQLITE_OK;
}

static int keys_next(sqlite3_vtab_cursor *cur) {
  ((keys_cursor *)cur)->i++;
  return SQLITE_OK;
}

static int keys_eof(sqlite3_vtab_cursor *cur) {
  keys_cursor *c = (keys_cursor *)cur;
  return c->i >= c->n;
}

static int keys_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col) {
  keys_cursor *c = (keys_cursor *)cur;
  key_row *r = &c->rows[c->i];
  switch (col) {
    case KCOL_KEY_ID: sqlite3_result_text(ctx, r->key_id, 8, SQLITE_TRANSIENT); break;
    case KCOL_STATUS: sqlite3_result_text(ctx, r->status, -1, SQLITE_STATIC); break;
    case KCOL_IS_PRIMARY: sqlite3_result_int(ctx, r->is_primary); break;
    case KCOL_SEALED_VALUES: sqlite3_result_int64(ctx, r->sealed_values); break;
  }
  return SQLITE_OK;
}

static int keys_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  *rowid = ((keys_cursor *)cur)->i + 1;
  return SQLITE_OK;
}

static sqlite3_module keys_module = {
  /* iVersion    */ 0,
  /* xCreate     */ NULL,   /* eponymous only */
  /* xConnect    */ keys_connect,
  /* xBestIndex  */ keys_best_index,
  /* xDisconnect */ keys_disconnect,
  /* xDestroy    */ NULL,
  /* xOpen       */ keys_open,
  /* xClose      */ keys_close,
  /* xFilter     */ keys_filter,
  /* xNext       */ keys_next,
  /* xEof        */ keys_eof,
  /* xColumn     */ keys_column,
  /* xRowid      */ keys_rowid,
  /* xUpdate     */ NULL,
  /* xBegin      */ NULL,
  /* xSync       */ NULL,
  /* xCommit     */ NULL,
  /* xRollback   */ NULL,
  /* xFindMethod */ NULL,
  /* xRename     */ NULL,
  /* xSavepoint  */ NULL,
  /* xRelease    */ NULL,
  /* xRollbackTo */ NULL,
  /* xShadowName */ NULL
};

int keys_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_module(db, conn, "oauthdb_keys", &keys_module, pzErr);
}

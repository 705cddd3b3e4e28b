/*
** vault.c: oauth_token_vault, oauth_tokens with its two tokens in plaintext.
**
**   INSERT INTO oauth_token_vault(id, user_provider_id, token_type,
**                                 access_token, refresh_token, id_token,
**                                 scope, expires_at)
**   VALUES (uuid7(), :link, 'Bearer', 'ya29.a0Af...', '1//0gX...', 'eyJ...',
**           'openid https://www.googleapis.com/auth/gmail.readonly',
**           unixepoch() + 3599) RETURNING id;      -- the caller makes the id
**   SELECT access_token FROM oauth_token_vault WHERE user_provider_id = :link
**      AND is_active = 1;                         -- 'ya29.a0Af...'
**   UPDATE oauth_token_vault SET access_token = :new, expires_at = :exp,
**          refresh_token = coalesce(:refresh, refresh_token)
**    WHERE id = :id;                              -- logs the refresh
**   DELETE FROM oauth_token_vault WHERE id = :id;
**
** An eponymous table (no CREATE VIRTUAL TABLE) with the columns of
** oauth_tokens but the refresh workers' lease and failure bookkeeping
** (refresh_claim ... reconsent_required_at), which only refresh.c writes
** and which a vault write leaves as it is. Reads open access_token, refresh_token and id_token with
** associated data `oauth_tokens.<column>:<id>` (docs/FORMAT.md); writes seal them with
** the keyring's primary key and write main.oauth_tokens, inside the caller's
** statement and transaction, so only sealed bytes reach the file. A value
** that does not open is an error naming the row, never a silent NULL.
**
** An UPDATE that changes the access or refresh token adds a
** token_refresh_log row (fingerprints of the old and new access token and
** of the refresh token used, old and new expiry; never a token), and
** every write adds an auth_audit_log row: token.stored, token.refreshed,
** token.revoked (revoked_at set), token.deleted. Columns an UPDATE does not
** assign are neither opened nor resealed (sqlite3_vtab_nochange), so
** `UPDATE oauth_token_vault SET is_active = 0` needs no keyring.
**
** The table reveals secrets, so it is SQLITE_VTAB_DIRECTONLY: a view or
** trigger in a database file cannot read it.
*/
#include <sodium.h>
#include <string.h>
#include "audit.h"
#include "associated_data.h"
#include "oauthdb.h"
#include "seal.h"

SQLITE_EXTENSION_INIT3

enum {
  VCOL_ID,
  VCOL_USER_PROVIDER_ID,
  VCOL_CREDENTIAL_KIND,
  VCOL_TOKEN_TYPE,
  VCOL_ACCESS_TOKEN,
  VCOL_REFRESH_TOKEN,
  VCOL_ID_TOKEN,
  VCOL_SCOPE,
  VCOL_EXPIRES_AT,
  VCOL_LAST_USED,
  VCOL_METADATA,
  VCOL_IS_ACTIVE,
  VCOL_REVOKED_AT,
  VCOL_CREATED_AT,
  VCOL_UPDATED_AT,
  VCOL__COUNT
};

/* The declared types are the STRICT types of oauth_tokens, tokens as TEXT. */
static const char vault_schema[] =
    "CREATE TABLE x(id TEXT, user_provider_id TEXT, credential_kind TEXT, "
    "token_type TEXT, access_token TEXT, refresh_token TEXT, id_token TEXT, "
    "scope TEXT, expires_at INTEGER, last_used INTEGER, metadata TEXT, "
    "is_active INTEGER, revoked_at INTEGER, created_at INTEGER, "
    "updated_at INTEGER)";

/* The sealed columns, by vault column; NULL for a plain one. */
static const char *sealed_column_name(int col) {
  switch (col) {
    case VCOL_ACCESS_TOKEN: return "access_token";
    case VCOL_REFRESH_TOKEN: return "refresh_token";
    case VCOL_ID_TOKEN: return "id_token";
    default: return NULL;
  }
}

/*
** Every statement reads rowid and then the columns in table order, so the
** vault's column i is statement column i + 1. main.: an attached database
** or a temp table named oauth_tokens must not stand in for ours.
*/
#define VAULT_SELECT                                                         \
  "/*oauthdb cache*/ SELECT rowid, id, user_provider_id, credential_kind, "  \
  "token_type, access_token, refresh_token, id_token, scope, expires_at, "   \
  "last_used, metadata, is_active, revoked_at, created_at, updated_at "      \
  "FROM main.oauth_tokens"

/*
** xBestIndex plans. idxNum has at most one of these bits set; idxStr repeats
** it for EXPLAIN QUERY PLAN ("VIRTUAL TABLE INDEX 1:id=?"):
**
**   0              full scan of oauth_tokens in rowid order
**   VAULT_BY_ID    id = argv[0]: one probe of the primary key (unique)
**   VAULT_BY_ROWID rowid = argv[0]: one probe of the table b-tree (unique)
**   VAULT_BY_LINK  user_provider_id = argv[0]: one probe of the index
**                  oauth_tokens_user_provider
**
** With several usable, the unique one wins and SQLite checks the others on
** the rows it gets (their constraints are not omitted).
*/
#define VAULT_BY_ID 1
#define VAULT_BY_ROWID 2
#define VAULT_BY_LINK 4

enum { VREAD_SCAN, VREAD_BY_ID, VREAD_BY_ROWID, VREAD_BY_LINK, VREAD__COUNT };

static const struct {
  int idx_num;
  const char *idx_str;
  const char *sql;
} vault_reads[VREAD__COUNT] = {
    {0, NULL, VAULT_SELECT},
    {VAULT_BY_ID, "id=?", VAULT_SELECT " WHERE id = ?1"},
    {VAULT_BY_ROWID, "rowid=?", VAULT_SELECT " WHERE rowid = ?1"},
    {VAULT_BY_LINK, "user_provider_id=?", VAULT_SELECT " WHERE user_provider_id = ?1"},
};

/*
** The read statements belong to the table, not to the connection's cache
** (conn_stmt): a cursor keeps its statement across calls, and the cache may
** be finalized (by sqlite3_close, refused while the user still has a
** statement open) before the cursor is closed. The table cannot go away
** under its cursors: a live statement holds a reference on it, so
** xDisconnect, which finalizes these, only runs once no cursor is left.
** A second cursor on the same plan (a self-join) prepares its own.
*/
typedef struct vault_vtab {
  sqlite3_vtab base;
  sqlite3 *db;
  oauthdb_conn *conn;
  sqlite3_stmt *reads[VREAD__COUNT];
  int read_taken[VREAD__COUNT];  /* lent to a cursor */
} vault_vtab;

typedef struct vault_cursor {
  sqlite3_vtab_cursor base;
  sqlite3_stmt *st;  /* positioned on the current row */
  int slot;          /* the vault_vtab.reads slot lent to us, or -1: ours */
  int eof;
} vault_cursor;

/* ---- associated data and opening ------------------------------------- */

/*
** "oauth_tokens.<column>:<id>", the associated data of a sealed column. Our
** ids are 36 characters, so it fits the caller's stack buffer; a longer id
** (refused by the schema, but it may be what a caller typed) gets the heap.
** Returns NULL when out of memory; free with ad_free.
*/
#define VAULT_AD_STACK 96

static char *ad_build(char buf[VAULT_AD_STACK], const char *column,
                      const char *id, int n_id, int *n_ad) {
  size_t n = associated_data(buf, VAULT_AD_STACK, "oauth_tokens", column, id,
                             (size_t)n_id);
  char *p = buf;
  if (n >= VAULT_AD_STACK) {
    p = sqlite3_malloc64(n + 1);
    if (!p) return NULL;
    associated_data(p, n + 1, "oauth_tokens", column, id, (size_t)n_id);
  }
  *n_ad = (int)n;
  return p;
}

static void ad_free(char buf[VAULT_AD_STACK], char *p) {
  if (p != buf) sqlite3_free(p);
}

/* Zero a plaintext SQLite is done with (the destructor of our results). */
static void wipe_free(void *p) {
  sodium_memzero(p, (size_t)sqlite3_msize(p));
  sqlite3_free(p);
}

/*
** Plaintext opened for xUpdate (to compare and fingerprint): sodium_malloc'd,
** so locked and out of core dumps, and zeroed by sodium_free.
*/
typedef struct plain {
  unsigned char *p;  /* NULL: the stored value was NULL or did not open */
  size_t n;
  int opened;        /* 1 when p holds the value (or it was NULL) */
} plain;

static void plain_free(plain *pt) {
  if (pt->p) sodium_free(pt->p);
  memset(pt, 0, sizeof *pt);
}

/*
** Open SEALED (column COLUMN of row ID) into OUT, which holds at least
** n - SEAL_OVERHEAD bytes. SQLITE_OK when OUT holds the plaintext;
** SQLITE_NOMEM when memory ran out (nothing in OUT counts); otherwise
** SQLITE_ERROR with *err an sqlite3_malloc'd message naming the row
** ("oauth_token_vault: cannot open access_token of row ...").
*/
static int vault_open(vault_vtab *v, const char *column, const char *id,
                      int n_id, const unsigned char *sealed, size_t n,
                      unsigned char *out, char **err) {
  *err = NULL;
  char *why = NULL;
  keyring *kr = connection_keyring(v->conn, &why);
  if (kr) {
    char buf[VAULT_AD_STACK];
    int n_ad = 0;
    char *ad = ad_build(buf, column, id, n_id, &n_ad);
    if (!ad) return SQLITE_NOMEM;
    uint32_t key_id = 0;
    seal_status s = seal_open(kr, sealed, n, (const unsigned char *)ad,
                              (size_t)n_ad, out, &key_id);
    ad_free(buf, ad);
    if (s == SEAL_OK) return SQLITE_OK;
    /* Callers checked the size: a long AD's buffer is what failed. */
    if (s == SEAL_TOO_BIG) return SQLITE_NOMEM;
    /* In token_open's words, so a reader sees one sentence from both. */
    why = seal_failure_message(v->conn, "token_open", s, sealed, n, key_id);
  }
  if (!why) return SQLITE_NOMEM;
  *err = sqlite3_mprintf("oauth_token_vault: cannot open %s of row %.*s: %s",
                         column, n_id, id, why);
  sqlite3_free(why);
  return *err ? SQLITE_ERROR : SQLITE_NOMEM;
}

/* Bytes a sealed value of n bytes opens to (0 for a truncated one). */
static size_t plain_len(size_t n) { return n > SEAL_OVERHEAD ? n - SEAL_OVERHEAD : 0; }

/* ---- the table ---------------------------------------------------------- */

static int vault_connect(sqlite3 *db, void *aux, int argc,
                         const char *const *argv, sqlite3_vtab **out,
                         char **pzErr) {
  (void)argc; (void)argv; (void)pzErr;
  int rc = sqlite3_declare_vtab(db, vault_schema);
  /* It reveals secrets: never from a view, trigger or index of a file. */
  if (rc == SQLITE_OK) rc = sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  if (rc != SQLITE_OK) return rc;
  vault_vtab *v = sqlite3_malloc(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->db = db;
  v->conn = aux;
  *out = &v->base;
  return SQLITE_OK;
}

static int vault_disconnect(sqlite3_vtab *vtab) {
  vault_vtab *v = (vault_vtab *)vtab;
  for (int i = 0; i < VREAD__COUNT; i++) sqlite3_finalize(v->reads[i]);
  sqlite3_free(v);
  return SQLITE_OK;
}

/* Only a BINARY equality can be answered by oauth_tokens' own indexes. */
static int usable_eq(sqlite3_index_info *info, int i) {
  const struct sqlite3_index_constraint *c = &info->aConstraint[i];
  if (!c->usable || c->op != SQLITE_INDEX_CONSTRAINT_EQ) return 0;
  const char *coll = sqlite3_vtab_collation(info, i);
  return !coll || sqlite3_stricmp(coll, "BINARY") == 0;
}

static int vault_best_index(sqlite3_vtab *vtab, sqlite3_index_info *info) {
  (void)vtab;
  int by_id = -1, by_rowid = -1, by_link = -1;
  for (int i = 0; i < info->nConstraint; i++) {
    if (!usable_eq(info, i)) continue;
    switch (info->aConstraint[i].iColumn) {
      case VCOL_ID: by_id = i; break;
      case -1: by_rowid = i; break;
      case VCOL_USER_PROVIDER_ID: by_link = i; break;
    }
  }
  int use = by_id >= 0 ? by_id : by_rowid >= 0 ? by_rowid : by_link;
  if (use < 0) {
    info->idxNum = 0;
    info->estimatedCost = 1e6;
    info->estimatedRows = 100000;
    return SQLITE_OK;
  }
  info->aConstraintUsage[use].argvIndex = 1;
  info->aConstraintUsage[use].omit = 1;
  if (use == by_link) {
    info->idxNum = VAULT_BY_LINK;
    info->idxStr = (char *)vault_reads[VREAD_BY_LINK].idx_str;
    info->estimatedCost = 20;
    info->estimatedRows = 4;  /* a link keeps its old tokens, inactive */
  } else {
    int slot = use == by_id ? VREAD_BY_ID : VREAD_BY_ROWID;
    info->idxNum = vault_reads[slot].idx_num;
    info->idxStr = (char *)vault_reads[slot].idx_str;
    info->estimatedCost = 10;
    info->estimatedRows = 1;
    info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
  }
  return SQLITE_OK;
}

static int vault_open_cursor(sqlite3_vtab *vtab, sqlite3_vtab_cursor **out) {
  (void)vtab;
  vault_cursor *c = sqlite3_malloc(sizeof *c);
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof *c);
  c->slot = -1;
  c->eof = 1;
  *out = &c->base;
  return SQLITE_OK;
}

/* Give the cursor's statement back (reset) or finalize it if it was its own. */
static void cursor_release(vault_cursor *c) {
  vault_vtab *v = (vault_vtab *)c->base.pVtab;
  if (!c->st) return;
  if (c->slot >= 0) {
    sqlite3_reset(c->st);
    sqlite3_clear_bindings(c->st);
    v->read_taken[c->slot] = 0;
  } else {
    sqlite3_finalize(c->st);
  }
  c->st = NULL;
  c->slot = -1;
}

static int vault_close(sqlite3_vtab_cursor *cur) {
  cursor_release((vault_cursor *)cur);
  sqlite3_free(cur);
  return SQLITE_OK;
}

/* The message for a statement that failed on oauth_tokens, with the fix. */
static void set_table_error(vault_vtab *v, const char *what) {
  const char *msg = sqlite3_errmsg(v->db);
  vtab_set_error(&v->base, "oauth_token_vault: %s%s%s", what, msg,
                 strstr(msg, "no such table")
                     ? " (has SELECT oauthdb_migrate() been run?)"
                     : "");
}

static int cursor_take(vault_cursor *c, int slot) {
  vault_vtab *v = (vault_vtab *)c->base.pVtab;
  int rc;
  if (!v->read_taken[slot]) {
    if (!v->reads[slot]) {
      rc = sqlite3_prepare_v3(v->db, vault_reads[slot].sql, -1,
                              SQLITE_PREPARE_PERSISTENT, &v->reads[slot], NULL);
      if (rc != SQLITE_OK) {
        set_table_error(v, "");
        return rc;
      }
    }
    v->read_taken[slot] = 1;
    c->st = v->reads[slot];
    c->slot = slot;
    return SQLITE_OK;
  }
  rc = sqlite3_prepare_v2(v->db, vault_reads[slot].sql, -1, &c->st, NULL);
  if (rc != SQLITE_OK) set_table_error(v, "");
  c->slot = -1;
  return rc;
}

static int cursor_step(vault_cursor *c) {
  int rc = sqlite3_step(c->st);
  if (rc == SQLITE_ROW) {
    c->eof = 0;
    return SQLITE_OK;
  }
  c->eof = 1;
  if (rc != SQLITE_DONE) set_table_error((vault_vtab *)c->base.pVtab, "");
  /* Done: hand the statement back now, for the next cursor to use. */
  cursor_release(c);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int vault_filter(sqlite3_vtab_cursor *cur, int idx_num,
                        const char *idx_str, int argc, sqlite3_value **argv) {
  (void)idx_str;
  vault_cursor *c = (vault_cursor *)cur;
  cursor_release(c);
  c->eof = 1;
  int slot = idx_num == VAULT_BY_ID      ? VREAD_BY_ID
             : idx_num == VAULT_BY_ROWID ? VREAD_BY_ROWID
             : idx_num == VAULT_BY_LINK  ? VREAD_BY_LINK
                                         : VREAD_SCAN;
  int rc = cursor_take(c, slot);
  if (rc != SQLITE_OK) return rc;
  if (argc > 0) sqlite3_bind_value(c->st, 1, argv[0]);
  return cursor_step(c);
}

static int vault_next(sqlite3_vtab_cursor *cur) {
  return cursor_step((vault_cursor *)cur);
}

static int vault_eof(sqlite3_vtab_cursor *cur) {
  return ((vault_cursor *)cur)->eof;
}

/*
** Open a token column into a buffer SQLite takes over. The plaintext has to
** live in SQLite's heap to be a result at all, so it is decrypted straight
** there (no second copy in locked memory to zero) and handed over with
** wipe_free as its destructor, which zeroes it when SQLite lets it go.
** With length -1, SQLite sees the terminator and never copies the value to
** add one; a value holding a NUL byte is returned as a BLOB, as token_open
** does, so no C client reads it cut short.
*/
static int column_open(vault_cursor *c, sqlite3_context *ctx, int col) {
  vault_vtab *v = (vault_vtab *)c->base.pVtab;
  sqlite3_stmt *st = c->st;
  if (sqlite3_column_type(st, col + 1) == SQLITE_NULL) return SQLITE_OK;
  const unsigned char *sealed = sqlite3_column_blob(st, col + 1);
  size_t n = (size_t)sqlite3_column_bytes(st, col + 1);
  const char *id = (const char *)sqlite3_column_text(st, 1 + VCOL_ID);
  int n_id = sqlite3_column_bytes(st, 1 + VCOL_ID);
  const char *column = sealed_column_name(col);

  size_t len = plain_len(n);
  /* A file can hold a blob of any size: refuse before allocating for it. */
  if (len > SEAL_MAX_PLAINTEXT) {
    vtab_set_error(&v->base, "oauth_token_vault: cannot open %s of row %.*s: "
                   "token_open: sealed value holds %lld bytes; the limit is "
                   "16777216 (16 MiB)", column, n_id, id ? id : "", (long long)len);
    return SQLITE_ERROR;
  }
  unsigned char *out = sqlite3_malloc64(len + 1);
  if (!out || !id) {
    sqlite3_free(out);
    return SQLITE_NOMEM;
  }
  char *err = NULL;
  int rc = vault_open(v, column, id, n_id, sealed, n, out, &err);
  if (rc != SQLITE_OK) {
    wipe_free(out);
    if (err) vtab_set_error(&v->base, "%s", err);
    sqlite3_free(err);
    return rc;
  }
  out[len] = '\0';
  if (memchr(out, '\0', len))
    sqlite3_result_blob64(ctx, out, len, wipe_free);
  else
    sqlite3_result_text(ctx, (const char *)out, -1, wipe_free);
  return SQLITE_OK;
}

static int vault_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx,
                        int col) {
  vault_cursor *c = (vault_cursor *)cur;
  /*
  ** In an UPDATE, a column the statement does not assign is not read:
  ** xUpdate sees it as unchanged (sqlite3_value_nochange) and keeps the
  ** stored value, so `SET is_active = 0` neither opens nor reseals.
  */
  if (sqlite3_vtab_nochange(ctx)) return SQLITE_OK;
  if (sealed_column_name(col)) return column_open(c, ctx, col);
  sqlite3_result_value(ctx, sqlite3_column_value(c->st, col + 1));
  return SQLITE_OK;
}

static int vault_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  *rowid = sqlite3_column_int64(((vault_cursor *)cur)->st, 0);
  return SQLITE_OK;
}

/* ---- writes ------------------------------------------------------------- */

/*
** Write statements come from the connection's cache: each is stepped to
** the end and reset before xUpdate returns, so none outlives the call.
*/
/* A NULL where oauth_tokens has a DEFAULT gets that default. */
#define VAULT_INSERT_SQL                                                      \
  "INSERT INTO main.oauth_tokens(rowid, id, user_provider_id, "               \
  "credential_kind, token_type, access_token, refresh_token, id_token, "      \
  "scope, expires_at, last_used, metadata, is_active, revoked_at, "           \
  "created_at, updated_at) VALUES (?1, ?2, ?3, coalesce(?4, 'oauth2'), ?5, "  \
  "?6, ?7, ?8, coalesce(?9, ''), ?10, ?11, coalesce(?12, '{}'), "             \
  "coalesce(?13, 1), ?14, coalesce(?15, unixepoch()), "                       \
  "coalesce(?16, unixepoch()))"

/* ?16 NULL: the UPDATE did not assign updated_at, so it becomes now. */
#define VAULT_UPDATE_SQL                                                      \
  "UPDATE main.oauth_tokens SET rowid = ?1, id = ?2, user_provider_id = ?3, " \
  "credential_kind = ?4, token_type = ?5, access_token = ?6, "                \
  "refresh_token = ?7, id_token = ?8, scope = ?9, expires_at = ?10, "         \
  "last_used = ?11, metadata = ?12, is_active = ?13, revoked_at = ?14, "      \
  "created_at = ?15, updated_at = coalesce(?16, unixepoch()) "                \
  "WHERE rowid = ?17"
#define VAULT_UPDATE_ROWID_PARAM (VCOL__COUNT + 2)

#define VAULT_DELETE_SQL "DELETE FROM main.oauth_tokens WHERE rowid = ?1"

#define VAULT_OLD_ROW_SQL VAULT_SELECT " WHERE rowid = ?1"

/*
** The fingerprints are computed in the INSERT from the bound plaintexts, so
** only they are stored (token_fingerprint: keyed BLAKE2b, tokens.c).
*/
#define REFRESH_LOG_SQL                                                       \
  "INSERT INTO main.token_refresh_log(id, token_id, "                         \
  "old_token_fingerprint, new_token_fingerprint, refresh_used_fingerprint, "  \
  "old_expires_at, new_expires_at, success) VALUES (uuid7(), ?1, "            \
  "token_fingerprint(?2), token_fingerprint(?3), token_fingerprint(?6), "     \
  "?4, ?5, 1)"

/* The audit row's user, provider and details; one row even if the link is gone. */
#define VAULT_AUDIT_SQL                                                       \
  "SELECT (SELECT user_id FROM main.user_providers WHERE id = ?1), "          \
  "json_object('token_id', ?2, 'user_provider_id', ?1, 'provider', "          \
  "(SELECT provider FROM main.user_providers WHERE id = ?1), "                \
  "'expires_at', ?3), "                                                       \
  "(SELECT provider FROM main.user_providers WHERE id = ?1)"

/*
** A cached statement for one xUpdate step. Busy would mean xUpdate was
** re-entered while it ran; refuse rather than reset it under itself.
*/
static sqlite3_stmt *write_stmt(vault_vtab *v, conn_stmt_id id, const char *sql) {
  sqlite3_stmt *st = conn_stmt(v->conn, id, sql);
  if (!st) {
    set_table_error(v, "");
    return NULL;
  }
  if (sqlite3_stmt_busy(st)) {
    vtab_set_error(&v->base, "oauth_token_vault: written to from inside its own write");
    return NULL;
  }
  return st;
}

/* Step a write statement to the end; reset and unbind it either way. */
static int write_run(vault_vtab *v, sqlite3_stmt *st, const char *what,
                     const char *id) {
  int rc = sqlite3_step(st);
  while (rc == SQLITE_ROW) rc = sqlite3_step(st);
  int reset_rc = sqlite3_reset(st);  /* keeps the step's message */
  if (rc != SQLITE_DONE)
    vtab_set_error(&v->base, "oauth_token_vault: cannot %s row %s: %s", what,
                   id ? id : "?", sqlite3_errmsg(v->db));
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? SQLITE_OK : reset_rc;
}

/* A sealed value on its way into oauth_tokens (ciphertext: no secret). */
typedef struct sealed_buf {
  unsigned char *p;  /* NULL: store NULL */
  size_t n;
} sealed_buf;

/*
** Seal VAL, the new plaintext of COLUMN in row ID. NULL stays NULL. A BLOB
** is refused: most likely a sealed value, which would be sealed twice.
*/
static int seal_column(vault_vtab *v, const char *column, const char *id,
                       sqlite3_value *val, sealed_buf *out) {
  out->p = NULL;
  out->n = 0;
  int t = sqlite3_value_type(val);
  if (t == SQLITE_NULL) return SQLITE_OK;
  if (t != SQLITE_TEXT) {
    vtab_set_error(&v->base,
                   "oauth_token_vault: %s of row %s must be TEXT (the plaintext "
                   "token), got %s%s", column, id, storage_class_name(t),
                   t == SQLITE_BLOB ? "; a sealed value belongs in oauth_tokens" : "");
    return SQLITE_MISMATCH;
  }
  const unsigned char *pt = sqlite3_value_text(val);
  size_t n = (size_t)sqlite3_value_bytes(val);
  if (!pt) return SQLITE_NOMEM;
  if (n > SEAL_MAX_PLAINTEXT) {
    vtab_set_error(&v->base, "oauth_token_vault: %s of row %s is %lld bytes; "
                   "the limit is 16777216 (16 MiB)", column, id, (long long)n);
    return SQLITE_TOOBIG;
  }
  char *err = NULL;
  keyring *kr = connection_keyring(v->conn, &err);
  if (!kr) {
    vtab_set_error(&v->base, "oauth_token_vault: cannot seal %s of row %s: %s",
                   column, id, err ? err : "out of memory");
    sqlite3_free(err);
    return SQLITE_ERROR;
  }
  char buf[VAULT_AD_STACK];
  int n_ad = 0;
  char *ad = ad_build(buf, column, id, (int)strlen(id), &n_ad);
  out->n = seal_sealed_len(n);
  out->p = ad ? sqlite3_malloc64(out->n) : NULL;
  if (!out->p) {
    if (ad) ad_free(buf, ad);
    return SQLITE_NOMEM;
  }
  seal_status s = seal_token(kr, pt, n, (const unsigned char *)ad, (size_t)n_ad, out->p);
  ad_free(buf, ad);
  if (s != SEAL_OK) {
    sqlite3_free(out->p);
    out->p = NULL;
    /* The size was checked above: a long AD's buffer is what failed. */
    if (s == SEAL_TOO_BIG) return SQLITE_NOMEM;
    char *why = seal_failure_message(v->conn, "token_seal", s, NULL, 0, 0);
    if (!why) return SQLITE_NOMEM;
    vtab_set_error(&v->base, "oauth_token_vault: cannot seal %s of row %s: %s",
                   column, id, why);
    sqlite3_free(why);
    return SQLITE_ERROR;
  }
  return SQLITE_OK;
}

static void bind_sealed(sqlite3_stmt *st, int i, const sealed_buf *s) {
  if (s->p)
    sqlite3_bind_blob64(st, i, s->p, s->n, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

/* Append an auth_audit_log row for a token of link LINK_ID. */
static int vault_audit(vault_vtab *v, const char *event, const char *token_id,
                       sqlite3_value *link_id, sqlite3_value *expires_at) {
  sqlite3_stmt *st = write_stmt(v, STMT_VAULT_AUDIT, VAULT_AUDIT_SQL);
  if (!st) return SQLITE_ERROR;
  sqlite3_bind_value(st, 1, link_id);
  sqlite3_bind_text(st, 2, token_id, -1, SQLITE_STATIC);
  sqlite3_bind_value(st, 3, expires_at);
  int rc = sqlite3_step(st);
  char *user_id = NULL, *details = NULL, *provider = NULL;
  if (rc == SQLITE_ROW) {
    const char *u = (const char *)sqlite3_column_text(st, 0);
    const char *p = (const char *)sqlite3_column_text(st, 2);
    if (u) user_id = sqlite3_mprintf("%s", u);
    if (p) provider = sqlite3_mprintf("%s", p);
    details = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 1));
    rc = details && (user_id || !u) && (provider || !p) ? SQLITE_OK : SQLITE_NOMEM;
  } else {
    vtab_set_error(&v->base, "oauth_token_vault: cannot audit row %s: %s",
                   token_id, sqlite3_errmsg(v->db));
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc == SQLITE_OK) {
    rc = audit_write(v->conn, event, user_id, provider, 1, NULL, details, NULL);
    if (rc != SQLITE_OK)
      vtab_set_error(&v->base, "oauth_token_vault: cannot audit row %s: %s",
                     token_id, sqlite3_errmsg(v->db));
  }
  sqlite3_free(user_id);
  sqlite3_free(provider);
  sqlite3_free(details);
  return rc;
}

/*
** The row at ROWID as it is now, copied (sqlite3_value_dup) because the
** write that follows may change the page the statement points into.
** Tokens stay sealed here.
*/
typedef struct old_row {
  sqlite3_value *col[VCOL__COUNT];
  char *id;
} old_row;

static void old_row_free(old_row *r) {
  for (int i = 0; i < VCOL__COUNT; i++) sqlite3_value_free(r->col[i]);
  sqlite3_free(r->id);
  memset(r, 0, sizeof *r);
}

static int old_row_read(vault_vtab *v, sqlite3_int64 rowid, old_row *r) {
  memset(r, 0, sizeof *r);
  sqlite3_stmt *st = write_stmt(v, STMT_VAULT_OLD_ROW, VAULT_OLD_ROW_SQL);
  if (!st) return SQLITE_ERROR;
  sqlite3_bind_int64(st, 1, rowid);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    rc = SQLITE_OK;
    for (int i = 0; i < VCOL__COUNT; i++) {
      r->col[i] = sqlite3_value_dup(sqlite3_column_value(st, i + 1));
      if (!r->col[i]) rc = SQLITE_NOMEM;
    }
    const char *id = (const char *)sqlite3_column_text(st, 1 + VCOL_ID);
    r->id = sqlite3_mprintf("%s", id ? id : "");
    if (!r->id) rc = SQLITE_NOMEM;
  } else if (rc == SQLITE_DONE) {
    vtab_set_error(&v->base, "oauth_token_vault: no row with rowid %lld", rowid);
    rc = SQLITE_ERROR;
  } else {
    set_table_error(v, "");
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_OK) old_row_free(r);
  return rc;
}

/* The vault columns that hold sealed values, in column order. */
static const int sealed_cols[] = {VCOL_ACCESS_TOKEN, VCOL_REFRESH_TOKEN, VCOL_ID_TOKEN};
#define N_SEALED ((int)(sizeof sealed_cols / sizeof sealed_cols[0]))

static void sealed_free(sealed_buf sealed[N_SEALED]) {
  for (int k = 0; k < N_SEALED; k++) sqlite3_free(sealed[k].p);
}

/* Index into sealed_cols of vault column COL, or -1. */
static int sealed_slot(int col) {
  for (int k = 0; k < N_SEALED; k++)
    if (sealed_cols[k] == col) return k;
  return -1;
}

static int vault_insert(vault_vtab *v, sqlite3_value *rowid,
                        sqlite3_value **col, sqlite3_int64 *out_rowid) {
  /*
  ** The caller makes the id. An INSERT ... RETURNING on a virtual table
  ** reports the values the statement passed in, not what xUpdate stored,
  ** so an id made here would come back as NULL: the application would
  ** hold a row it cannot name.
  */
  if (sqlite3_value_type(col[VCOL_ID]) == SQLITE_NULL) {
    vtab_set_error(&v->base, "oauth_token_vault: id is required; pass uuid7(): "
                   "INSERT INTO oauth_token_vault(id, user_provider_id, ...) "
                   "VALUES (uuid7(), ...) RETURNING id");
    return SQLITE_CONSTRAINT;
  }
  char *id = sqlite3_mprintf("%s", (const char *)sqlite3_value_text(col[VCOL_ID]));
  if (!id) return SQLITE_NOMEM;
  sealed_buf sealed[N_SEALED] = {{0}};
  int rc = SQLITE_OK;
  for (int k = 0; k < N_SEALED && rc == SQLITE_OK; k++)
    rc = seal_column(v, sealed_column_name(sealed_cols[k]), id,
                     col[sealed_cols[k]], &sealed[k]);
  sqlite3_stmt *st = NULL;
  if (rc == SQLITE_OK && !(st = write_stmt(v, STMT_VAULT_INSERT, VAULT_INSERT_SQL)))
    rc = SQLITE_ERROR;
  if (rc == SQLITE_OK) {
    sqlite3_bind_value(st, 1, rowid);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    for (int i = VCOL_USER_PROVIDER_ID; i < VCOL__COUNT; i++) {
      int k = sealed_slot(i);
      if (k >= 0) bind_sealed(st, i + 2, &sealed[k]);
      else sqlite3_bind_value(st, i + 2, col[i]);
    }
    rc = write_run(v, st, "insert", id);
  }
  if (rc == SQLITE_OK) {
    *out_rowid = sqlite3_last_insert_rowid(v->db);
    rc = vault_audit(v, "token.stored", id, col[VCOL_USER_PROVIDER_ID],
                     col[VCOL_EXPIRES_AT]);
  }
  sealed_free(sealed);
  sqlite3_free(id);
  return rc;
}

/*
** Open the stored (sealed) value of COLUMN for comparison. A value that does
** not open is not an error here: the UPDATE replacing it may be the repair
** (a token sealed under a key since lost), so it counts as changed and its
** fingerprint is NULL. pt->opened says whether pt holds the value.
*/
static int old_plain(vault_vtab *v, const old_row *r, int col, plain *pt) {
  memset(pt, 0, sizeof *pt);
  sqlite3_value *val = r->col[col];
  if (sqlite3_value_type(val) == SQLITE_NULL) {
    pt->opened = 1;
    return SQLITE_OK;
  }
  const unsigned char *sealed = sqlite3_value_blob(val);
  size_t n = (size_t)sqlite3_value_bytes(val);
  pt->n = plain_len(n);
  /* Too big to be ours: it cannot open, so it counts as changed (as above). */
  if (pt->n > SEAL_MAX_PLAINTEXT) {
    pt->n = 0;
    return SQLITE_OK;
  }
  pt->p = sodium_malloc(pt->n + 1);
  if (!pt->p) return SQLITE_NOMEM;
  char *err = NULL;
  int rc = vault_open(v, sealed_column_name(col), r->id, (int)strlen(r->id), sealed, n, pt->p, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) {
    plain_free(pt);
    return rc == SQLITE_NOMEM ? SQLITE_NOMEM : SQLITE_OK;
  }
  pt->opened = 1;
  return SQLITE_OK;
}

/* Does the new plaintext VAL differ from the old value PT? */
static int plain_differs(const plain *pt, sqlite3_value *val) {
  if (!pt->opened) return 1;
  int new_null = sqlite3_value_type(val) == SQLITE_NULL;
  int old_null = pt->p == NULL;
  if (old_null || new_null) return old_null != new_null;
  const unsigned char *p = sqlite3_value_text(val);
  size_t n = (size_t)sqlite3_value_bytes(val);
  return !p || n != pt->n || (n && sodium_memcmp(p, pt->p, n) != 0);
}

/*
** The token_refresh_log row of a refresh: fingerprints of the old and new
** access token and of the refresh token the application sent to the
** provider (the one stored before this UPDATE), old and new expiry.
*/
static int refresh_log(vault_vtab *v, const old_row *r, const plain *old_access,
                       const plain *old_refresh, sqlite3_value *new_access,
                       sqlite3_value *new_expires) {
  sqlite3_stmt *st = write_stmt(v, STMT_REFRESH_LOG_INSERT, REFRESH_LOG_SQL);
  if (!st) return SQLITE_ERROR;
  /* SQLITE_STATIC: the plaintexts outlive the step and are unbound after. */
  sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
  if (old_access->p)
    sqlite3_bind_blob64(st, 2, old_access->p, old_access->n, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 2);
  /* The old one as a BLOB, the new as TEXT: the fingerprint hashes bytes. */
  /* Not bind_value: that would copy the plaintext into SQLite's heap, which
     frees it unzeroed. The argument outlives the step. */
  if (new_access)
    sqlite3_bind_text(st, 3, (const char *)sqlite3_value_text(new_access),
                      sqlite3_value_bytes(new_access), SQLITE_STATIC);
  else if (old_access->p)
    sqlite3_bind_blob64(st, 3, old_access->p, old_access->n, SQLITE_STATIC);
  sqlite3_bind_value(st, 4, r->col[VCOL_EXPIRES_AT]);
  sqlite3_bind_value(st, 5, new_expires);
  if (old_refresh->p)
    sqlite3_bind_blob64(st, 6, old_refresh->p, old_refresh->n, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 6);
  return write_run(v, st, "log the refresh of", r->id);
}

static int vault_change(vault_vtab *v, sqlite3_int64 rowid,
                        sqlite3_value *new_rowid, sqlite3_value **col) {
  old_row r;
  int rc = old_row_read(v, rowid, &r);
  if (rc != SQLITE_OK) return rc;

  /* The tokens are sealed to the id: a new id would leave them unopenable. */
  if (!sqlite3_value_nochange(col[VCOL_ID])) {
    const char *id = (const char *)sqlite3_value_text(col[VCOL_ID]);
    if (!id || strcmp(id, r.id) != 0) {
      vtab_set_error(&v->base, "oauth_token_vault: cannot change the id of row %s "
                     "(its tokens are sealed to it); insert a new row instead", r.id);
      old_row_free(&r);
      return SQLITE_CONSTRAINT;
    }
  }
  sqlite3_value *val[VCOL__COUNT];
  for (int i = 0; i < VCOL__COUNT; i++)
    val[i] = sqlite3_value_nochange(col[i]) ? r.col[i] : col[i];
  int set_access = val[VCOL_ACCESS_TOKEN] == col[VCOL_ACCESS_TOKEN];
  int set_refresh = val[VCOL_REFRESH_TOKEN] == col[VCOL_REFRESH_TOKEN];

  /* Only the sealed columns the UPDATE assigns are sealed again. */
  sealed_buf sealed[N_SEALED] = {{0}};
  int assigned[N_SEALED] = {0};
  plain old_access = {0}, old_refresh = {0};
  int changed = 0;
  for (int k = 0; k < N_SEALED && rc == SQLITE_OK; k++) {
    int c = sealed_cols[k];
    assigned[k] = val[c] == col[c];
    if (assigned[k]) rc = seal_column(v, sealed_column_name(c), r.id, col[c], &sealed[k]);
  }
  if (rc == SQLITE_OK && (set_access || set_refresh)) {
    /*
    ** The log fingerprints the access token, the one every refresh renews,
    ** and the refresh token stored until now: the one the refresh used.
    */
    rc = old_plain(v, &r, VCOL_ACCESS_TOKEN, &old_access);
    if (rc == SQLITE_OK) rc = old_plain(v, &r, VCOL_REFRESH_TOKEN, &old_refresh);
    changed = (set_access && plain_differs(&old_access, col[VCOL_ACCESS_TOKEN])) ||
              (set_refresh && plain_differs(&old_refresh, col[VCOL_REFRESH_TOKEN]));
  }

  sqlite3_stmt *st = NULL;
  if (rc == SQLITE_OK && !(st = write_stmt(v, STMT_VAULT_UPDATE, VAULT_UPDATE_SQL)))
    rc = SQLITE_ERROR;
  if (rc == SQLITE_OK) {
    sqlite3_bind_value(st, 1, new_rowid);
    for (int i = VCOL_ID; i < VCOL__COUNT; i++) {
      int k = sealed_slot(i);
      if (k >= 0 && assigned[k]) bind_sealed(st, i + 2, &sealed[k]);
      else if (i == VCOL_UPDATED_AT && val[i] != col[i]) sqlite3_bind_null(st, i + 2);
      else sqlite3_bind_value(st, i + 2, val[i]);
    }
    sqlite3_bind_int64(st, VAULT_UPDATE_ROWID_PARAM, rowid);
    rc = write_run(v, st, "update", r.id);
  }
  if (rc == SQLITE_OK && changed) {
    rc = refresh_log(v, &r, &old_access, &old_refresh,
                     set_access ? col[VCOL_ACCESS_TOKEN] : NULL, val[VCOL_EXPIRES_AT]);
    if (rc == SQLITE_OK)
      rc = vault_audit(v, "token.refreshed", r.id, val[VCOL_USER_PROVIDER_ID],
                       val[VCOL_EXPIRES_AT]);
  }
  if (rc == SQLITE_OK &&
      sqlite3_value_type(r.col[VCOL_REVOKED_AT]) == SQLITE_NULL &&
      sqlite3_value_type(val[VCOL_REVOKED_AT]) != SQLITE_NULL)
    rc = vault_audit(v, "token.revoked", r.id, val[VCOL_USER_PROVIDER_ID],
                     val[VCOL_EXPIRES_AT]);

  plain_free(&old_access);
  plain_free(&old_refresh);
  sealed_free(sealed);
  old_row_free(&r);
  return rc;
}

static int vault_delete(vault_vtab *v, sqlite3_int64 rowid) {
  old_row r;
  int rc = old_row_read(v, rowid, &r);
  if (rc != SQLITE_OK) return rc;
  sqlite3_stmt *st = write_stmt(v, STMT_VAULT_DELETE, VAULT_DELETE_SQL);
  if (!st) rc = SQLITE_ERROR;
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, rowid);
    rc = write_run(v, st, "delete", r.id);
  }
  if (rc == SQLITE_OK)
    rc = vault_audit(v, "token.deleted", r.id, r.col[VCOL_USER_PROVIDER_ID],
                     r.col[VCOL_EXPIRES_AT]);
  old_row_free(&r);
  return rc;
}

/*
** argv[0] is the old rowid (NULL for an INSERT); argv[1] the new rowid,
** argv[2...] the new column values. Writes are ordinary statements on
** main.oauth_tokens inside the caller's statement, whose statement journal
** undoes all of them if any row fails.
*/
static int vault_update(sqlite3_vtab *vtab, int argc, sqlite3_value **argv,
                        sqlite3_int64 *out_rowid) {
  vault_vtab *v = (vault_vtab *)vtab;
  if (argc == 1) return vault_delete(v, sqlite3_value_int64(argv[0]));
  /*
  ** REPLACE would delete a token row behind the vault's back (no audit) and
  ** IGNORE would need constraint support we do not declare: refuse both.
  */
  int mode = sqlite3_vtab_on_conflict(v->db);
  if (mode == SQLITE_REPLACE || mode == SQLITE_IGNORE) {
    vtab_set_error(vtab, "oauth_token_vault: OR %s is not supported; update or "
                   "delete the existing row instead",
                   mode == SQLITE_REPLACE ? "REPLACE" : "IGNORE");
    return SQLITE_ERROR;
  }
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
    return vault_insert(v, argv[1], argv + 2, out_rowid);
  return vault_change(v, sqlite3_value_int64(argv[0]), argv[1], argv + 2);
}

static sqlite3_module vault_module = {
  /* iVersion    */ 0,
  /* xCreate     */ NULL,   /* eponymous only */
  /* xConnect    */ vault_connect,
  /* xBestIndex  */ vault_best_index,
  /* xDisconnect */ vault_disconnect,
  /* xDestroy    */ NULL,
  /* xOpen       */ vault_open_cursor,
  /* xClose      */ vault_close,
  /* xFilter     */ vault_filter,
  /* xNext       */ vault_next,
  /* xEof        */ vault_eof,
  /* xColumn     */ vault_column,
  /* xRowid      */ vault_rowid,
  /* xUpdate     */ vault_update,
  /* xBegin      */ NULL,   /* the writes are oauth_tokens', in its transaction */
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

int vault_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_module(db, conn, "oauth_token_vault", &vault_module, pzErr);
}

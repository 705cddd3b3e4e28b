/*
** refresh.c: refresh workers that never refresh one token twice at once,
** and give up on a link that keeps failing (docs/SQL.md "Refresh workers").
**
**   SELECT id FROM tokens_expiring(600);                       -- candidates
**   SELECT token_claim_refresh(:id, 600, 60, 'worker-1');      -- claim or NULL
**   -- ... call the provider's token endpoint with the refresh token ...
**   SELECT token_refresh_done(:claim, :access, :expires_at, :new_refresh);
**   SELECT token_refresh_failed(:claim, 'HTTP 503', 0);        -- 0: retried
**   SELECT token_refresh_failed(:claim, 'invalid_grant', 1);   -- 1: re-consent
**
** A claim is one UPDATE of oauth_tokens whose WHERE clause re-reads the row
** under SQLite's write lock: the token must still be due (the same terms as
** tokens_expiring, so a token another worker just refreshed is skipped),
** not need re-consent, and hold no lease that is still running. Two
** workers racing for one token both run that UPDATE; the second sees the
** first's lease and changes nothing, so it gets NULL. The claim's id is a
** fresh UUIDv7 stored in refresh_claim; done and failed act only on the row
** that still carries it, so a worker whose lease ran out and whose token
** another worker then claimed cannot write over that worker's result.
**
** token_refresh_done stores the new tokens through oauth_token_vault (the
** documented refresh path: sealing, token_refresh_log, token.refreshed),
** then releases the claim and clears the failure count, in one savepoint.
** token_refresh_failed logs the failure in token_refresh_log; after
** refresh_max_failures consecutive failures (oauthdb_config, default
** REFRESH_DEFAULT_MAX_FAILURES) or an invalid_grant it sets
** reconsent_required_at, which takes the token out of tokens_expiring's
** partial index, and writes the audit row token.reconsent_required.
**
** All three are DIRECTONLY: they write, and done takes plaintext tokens.
*/
#include <string.h>
#include "audit.h"
#include "oauthdb.h"
#include "refresh_rules.h"

SQLITE_EXTENSION_INIT3

int64_t refresh_max_failures(const oauthdb_conn *conn) {
  return refresh_failure_limit(conn->refresh_max_failures);
}

/* The connection's error as FN's, keeping a BUSY a caller can retry. */
static void refresh_db_error(sqlite3_context *ctx, sqlite3 *db, const char *fn) {
  int code = sqlite3_errcode(db);
  const char *msg = sqlite3_errmsg(db);
  fn_error(ctx, "%s: %s%s", fn, msg,
           strstr(msg, "no such") ? " (has SELECT oauthdb_migrate() been run?)" : "");
  if (code != SQLITE_OK && code != SQLITE_ERROR) sqlite3_result_error_code(ctx, code);
}

static int is_int(sqlite3_value *v) { return sqlite3_value_type(v) == SQLITE_INTEGER; }

/* A text argument of 1..max bytes, or NULL with the error set. */
static const char *text_arg(sqlite3_context *ctx, sqlite3_value *v, int max,
                            const char *fn, const char *what) {
  if (sqlite3_value_type(v) != SQLITE_TEXT || sqlite3_value_bytes(v) < 1 ||
      sqlite3_value_bytes(v) > max) {
    fn_error(ctx, REFRESH_MSG_TEXT, fn, what, max);
    return NULL;
  }
  const char *s = (const char *)sqlite3_value_text(v);
  if (!s) sqlite3_result_error_nomem(ctx);
  return s;
}

/* ---- token_claim_refresh(token_id, within_seconds, lease_seconds [, worker]) ---- */

/* The due terms repeat tokens_expiring's (expiring.c) and its index's. */
#define CLAIM_SQL                                                             \
  "UPDATE main.oauth_tokens SET refresh_claim = ?2, refresh_claimed_by = ?3, " \
  "refresh_claimed_until = ?4 + ?6 "                                          \
  "WHERE id = ?1 AND is_active = 1 AND refresh_token IS NOT NULL "            \
  "AND expires_at IS NOT NULL AND reconsent_required_at IS NULL "             \
  "AND expires_at <= ?4 + ?5 "                                                \
  "AND (refresh_claimed_until IS NULL OR refresh_claimed_until <= ?4)"

static void claim_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  const char *fn = "token_claim_refresh";
  const char *id = text_arg(ctx, argv[0], REFRESH_CLAIM_LEN, fn, REFRESH_ARG_TOKEN_ID);
  if (!id) return;
  if (!is_int(argv[1]) || sqlite3_value_int64(argv[1]) < 0 ||
      sqlite3_value_int64(argv[1]) > REFRESH_MAX_WITHIN) {
    fn_error(ctx, REFRESH_MSG_WITHIN, fn, REFRESH_MAX_WITHIN);
    return;
  }
  if (!is_int(argv[2]) || sqlite3_value_int64(argv[2]) < 1 ||
      sqlite3_value_int64(argv[2]) > REFRESH_MAX_LEASE) {
    fn_error(ctx, REFRESH_MSG_LEASE, fn, REFRESH_MAX_LEASE);
    return;
  }
  const char *worker = NULL;
  if (argc > 3 && sqlite3_value_type(argv[3]) != SQLITE_NULL) {
    worker = text_arg(ctx, argv[3], REFRESH_MAX_LABEL, fn, REFRESH_ARG_WORKER);
    if (!worker) return;
  }
  int64_t now = conn_now(conn);
  if (now + sqlite3_value_int64(argv[2]) > REFRESH_MAX_TIME) {
    fn_error(ctx, REFRESH_MSG_LEASE_TOO_LATE, fn);
    return;
  }

  unsigned char raw[UUID7_BYTES];
  char claim[UUID7_TEXT_LEN + 1];
  uuid7_next_bytes(&conn->uuid7, raw);
  uuid7_format(raw, claim);

  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, CLAIM_SQL, -1, &st, NULL) != SQLITE_OK) {
    refresh_db_error(ctx, db, fn);
    sqlite3_finalize(st);
    return;
  }
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, claim, -1, SQLITE_STATIC);
  if (worker) sqlite3_bind_text(st, 3, worker, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, now);
  sqlite3_bind_int64(st, 5, sqlite3_value_int64(argv[1]));
  sqlite3_bind_int64(st, 6, sqlite3_value_int64(argv[2]));
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) {
    refresh_db_error(ctx, db, fn);
    sqlite3_finalize(st);
    return;
  }
  int claimed = sqlite3_changes(db) == 1;
  sqlite3_finalize(st);
  if (claimed) sqlite3_result_text(ctx, claim, -1, SQLITE_TRANSIENT);
  else sqlite3_result_null(ctx);
}

/* ---- shared: run BODY inside a savepoint ---- */

typedef int (*savepoint_body)(sqlite3_context *ctx, oauthdb_conn *conn,
                              sqlite3 *db, sqlite3_value **argv, int argc,
                              char **err);

/*
** Run body in SAVEPOINT oauthdb_refresh: all its writes or none. On error
** *err (sqlite3_malloc'd) says why, and the function's error names fn.
*/
static void in_savepoint(sqlite3_context *ctx, const char *fn, savepoint_body body,
                         int argc, sqlite3_value **argv) {
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  if (sqlite3_exec(db, "SAVEPOINT oauthdb_refresh", NULL, NULL, NULL) != SQLITE_OK) {
    refresh_db_error(ctx, db, fn);
    return;
  }
  char *err = NULL;
  int rc = body(ctx, conn, db, argv, argc, &err);
  int code = rc;
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(db, "RELEASE oauthdb_refresh", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
      code = sqlite3_errcode(db);
      err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    }
  }
  if (rc != SQLITE_OK) {
    sqlite3_exec(db, "ROLLBACK TO oauthdb_refresh; RELEASE oauthdb_refresh",
                 NULL, NULL, NULL);
    fn_error(ctx, "%s: %s", fn, err ? err : sqlite3_errstr(rc));
    if (code != SQLITE_ERROR && code != SQLITE_OK) sqlite3_result_error_code(ctx, code);
  }
  sqlite3_free(err);
}

/* Prepare SQL or set *err from the connection. */
static sqlite3_stmt *prepare(sqlite3 *db, const char *sql, char **err) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    *err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return NULL;
  }
  return st;
}

/* Step a write to its end; *err from the connection on failure. */
static int run(sqlite3 *db, sqlite3_stmt *st, char **err) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
  if (rc != SQLITE_DONE) *err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  rc = sqlite3_errcode(db);
  sqlite3_finalize(st);
  return *err ? (rc == SQLITE_OK ? SQLITE_ERROR : rc) : SQLITE_OK;
}

/* ---- token_refresh_done(claim, access_token, expires_at [, refresh_token]) ---- */

/*
** The claim is released first: a write as the savepoint's first statement
** takes the write lock through the busy handler, where a read first would
** have to upgrade its lock and could get SQLITE_BUSY instead of waiting.
*/
#define DONE_RELEASE_SQL                                                      \
  "UPDATE main.oauth_tokens SET refresh_claim = NULL, "                       \
  "refresh_claimed_by = NULL, refresh_claimed_until = NULL, "                 \
  "refresh_failures = 0 WHERE refresh_claim = ?1 RETURNING id"
/* Through the vault: it seals, logs the refresh and audits token.refreshed. */
#define DONE_VAULT_SQL                                                        \
  "UPDATE main.oauth_token_vault SET access_token = ?2, expires_at = ?3, "    \
  "refresh_token = coalesce(?4, refresh_token) WHERE id = ?1"

static int done_body(sqlite3_context *ctx, oauthdb_conn *conn, sqlite3 *db,
                     sqlite3_value **argv, int argc, char **err) {
  (void)conn;
  const char *claim = (const char *)sqlite3_value_text(argv[0]);
  char id[37] = "";
  sqlite3_stmt *st = prepare(db, DONE_RELEASE_SQL, err);
  if (!st) return SQLITE_ERROR;
  sqlite3_bind_text(st, 1, claim, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    if (sqlite3_column_bytes(st, 0) == 36) memcpy(id, sqlite3_column_text(st, 0), 37);
    rc = sqlite3_step(st);
  }
  if (rc != SQLITE_DONE) *err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  rc = sqlite3_errcode(db);
  sqlite3_finalize(st);
  if (*err) return rc == SQLITE_OK ? SQLITE_ERROR : rc;
  if (!id[0]) {
    *err = sqlite3_mprintf(REFRESH_MSG_NOT_HELD REFRESH_MSG_NOT_STORED, claim);
    return SQLITE_ERROR;
  }

  st = prepare(db, DONE_VAULT_SQL, err);
  if (!st) return SQLITE_ERROR;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_value(st, 2, argv[1]);
  sqlite3_bind_value(st, 3, argv[2]);
  if (argc > 3) sqlite3_bind_value(st, 4, argv[3]);
  rc = run(db, st, err);
  if (rc == SQLITE_OK) sqlite3_result_int(ctx, 1);
  return rc;
}

static void done_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  const char *fn = "token_refresh_done";
  if (!text_arg(ctx, argv[0], REFRESH_CLAIM_LEN, fn, REFRESH_ARG_CLAIM)) return;
  if (sqlite3_value_type(argv[1]) != SQLITE_TEXT) {
    fn_error(ctx, REFRESH_MSG_ACCESS_TEXT, fn);
    return;
  }
  if (sqlite3_value_type(argv[2]) != SQLITE_NULL && !is_int(argv[2])) {
    fn_error(ctx, REFRESH_MSG_EXPIRES, fn);
    return;
  }
  if (argc > 3 && sqlite3_value_type(argv[3]) != SQLITE_NULL &&
      sqlite3_value_type(argv[3]) != SQLITE_TEXT) {
    fn_error(ctx, REFRESH_MSG_REFRESH_TEXT, fn);
    return;
  }
  in_savepoint(ctx, fn, done_body, argc, argv);
}

/* ---- token_refresh_failed(claim, error_message [, invalid_grant]) ---- */

/*
** ?3: invalid_grant, ?4: the failure limit, ?5: now. SET's right-hand
** sides see the old row (refresh_failures + 1 is the new count); RETURNING
** sees the new one.
*/
#define FAILED_SQL                                                            \
  "UPDATE main.oauth_tokens SET refresh_claim = NULL, "                       \
  "refresh_claimed_by = NULL, refresh_claimed_until = NULL, "                 \
  "refresh_failures = refresh_failures + 1, "                                 \
  "reconsent_required_at = CASE WHEN ?3 OR refresh_failures + 1 >= ?4 "       \
  "THEN ?5 END WHERE refresh_claim = ?1 "                                     \
  "RETURNING id, user_provider_id, expires_at, refresh_failures, "            \
  "reconsent_required_at, "                                                   \
  "(SELECT user_id FROM main.user_providers AS p "                            \
  " WHERE p.id = oauth_tokens.user_provider_id), "                            \
  "(SELECT provider FROM main.user_providers AS p "                           \
  " WHERE p.id = oauth_tokens.user_provider_id)"

#define FAILED_LOG_SQL                                                        \
  "INSERT INTO main.token_refresh_log(id, token_id, old_expires_at, "         \
  "success, error_message) VALUES (uuid7(), ?1, ?2, 0, ?3)"

static int failed_body(sqlite3_context *ctx, oauthdb_conn *conn, sqlite3 *db,
                       sqlite3_value **argv, int argc, char **err) {
  const char *claim = (const char *)sqlite3_value_text(argv[0]);
  int invalid_grant = argc > 2 && sqlite3_value_int64(argv[2]) != 0;
  sqlite3_stmt *st = prepare(db, FAILED_SQL, err);
  if (!st) return SQLITE_ERROR;
  sqlite3_bind_text(st, 1, claim, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, invalid_grant);
  sqlite3_bind_int64(st, 4, refresh_max_failures(conn));
  sqlite3_bind_int64(st, 5, conn_now(conn));
  int rc = sqlite3_step(st);
  char id[37] = "", link[37] = "", user_id[37] = "", provider[101] = "";
  sqlite3_int64 failures = 0;
  int has_expiry = 0, reconsent = 0;
  sqlite3_int64 expires_at = 0;
  if (rc == SQLITE_ROW) {
    if (sqlite3_column_bytes(st, 0) == 36) memcpy(id, sqlite3_column_text(st, 0), 37);
    if (sqlite3_column_bytes(st, 1) == 36) memcpy(link, sqlite3_column_text(st, 1), 37);
    has_expiry = sqlite3_column_type(st, 2) != SQLITE_NULL;
    expires_at = sqlite3_column_int64(st, 2);
    failures = sqlite3_column_int64(st, 3);
    /* The value itself: SQLite 3.40's RETURNING answers "x IS NOT NULL"
       wrongly for a column this UPDATE set to NULL. */
    reconsent = sqlite3_column_type(st, 4) != SQLITE_NULL;
    if (sqlite3_column_bytes(st, 5) == 36) memcpy(user_id, sqlite3_column_text(st, 5), 37);
    int n = sqlite3_column_bytes(st, 6);
    if (n > 0 && n < (int)sizeof provider) memcpy(provider, sqlite3_column_text(st, 6), n + 1);
    rc = sqlite3_step(st);
  }
  if (rc != SQLITE_DONE) *err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  if (*err) return SQLITE_ERROR;
  if (!id[0]) {
    *err = sqlite3_mprintf(REFRESH_MSG_NOT_HELD REFRESH_MSG_NOT_RECORDED, claim);
    return SQLITE_ERROR;
  }

  st = prepare(db, FAILED_LOG_SQL, err);
  if (!st) return SQLITE_ERROR;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  if (has_expiry) sqlite3_bind_int64(st, 2, expires_at);
  sqlite3_bind_value(st, 3, argv[1]);
  rc = run(db, st, err);
  if (rc != SQLITE_OK) return rc;

  if (reconsent) {
    char details[256];
    refresh_reconsent_details(details, sizeof details, id, link, failures,
                              invalid_grant);
    rc = audit_write(conn, "token.reconsent_required", user_id[0] ? user_id : NULL,
                     provider[0] ? provider : NULL, 1, NULL, details, NULL);
    if (rc != SQLITE_OK) {
      *err = sqlite3_mprintf("cannot write the audit row: %s", sqlite3_errmsg(db));
      return rc;
    }
  }
  sqlite3_result_int(ctx, reconsent);
  return SQLITE_OK;
}

static void failed_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  const char *fn = "token_refresh_failed";
  if (!text_arg(ctx, argv[0], REFRESH_CLAIM_LEN, fn, REFRESH_ARG_CLAIM)) return;
  if (!text_arg(ctx, argv[1], REFRESH_MAX_ERROR, fn, REFRESH_ARG_ERROR))
    return;
  if (argc > 2 && (!is_int(argv[2]) || sqlite3_value_int64(argv[2]) < 0 ||
                   sqlite3_value_int64(argv[2]) > 1)) {
    fn_error(ctx, REFRESH_MSG_INVALID_GRANT, fn);
    return;
  }
  in_savepoint(ctx, fn, failed_body, argc, argv);
}

static const oauthdb_function refresh_functions[] = {
    {"token_claim_refresh", 3, SQLITE_DIRECTONLY, claim_fn},
    {"token_claim_refresh", 4, SQLITE_DIRECTONLY, claim_fn},
    {"token_refresh_done", 3, SQLITE_DIRECTONLY, done_fn},
    {"token_refresh_done", 4, SQLITE_DIRECTONLY, done_fn},
    {"token_refresh_failed", 2, SQLITE_DIRECTONLY, failed_fn},
    {"token_refresh_failed", 3, SQLITE_DIRECTONLY, failed_fn},
};
OAUTHDB_FUNCTION_SET(refresh_functions);

int refresh_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_functions(
      db, conn, refresh_functions,
      (int)(sizeof refresh_functions / sizeof refresh_functions[0]), pzErr);
}

/*
** session.c: sign-in sessions in user_sessions, and oauthdb_config().
**
**   sqlite> SELECT session_create('0192f3c4-...', NULL, :ip, :user_agent);
**   -- the token, once; the session row records the client's IP and agent
**   q3J0c1R5bFVqZ2lNc0x2QUZ3d0xGd0h4b0J5Q2xGVQ
**   sqlite> SELECT session_valid(:token);                  -- user id or NULL
**   0192f3c4-...
**   sqlite> SELECT session_touch(:token);                  -- 1: renewed
**   sqlite> SELECT session_revoke(:token, 'logout');       -- 1: revoked
**   sqlite> SELECT session_revoke_user('0192f3c4-...');    -- how many
**   sqlite> SELECT session_revoke_id(:session_id);         -- 1: that device
**   sqlite> SELECT session_rotate(:token);                 -- new token, same row
**   sqlite> SELECT oauthdb_config('session_idle_timeout', 900);
**
** A token is 32 bytes from randombytes_buf in URL-safe base64 without
** padding (43 characters, safe in a cookie or a URL). It is returned once
** and never stored: the row keeps token_hash = SHA-256 of the token's text,
** which PostgreSQL can compute too (sha256(convert_to(token, 'UTF8'))), so
** a session checks the same way on both sides. 256 random bits need no
** salt or slow hash: there is nothing to guess.
**
** A session is live while, at the connection's clock `now`,
**   revoked_at IS NULL, now < expires_at (absolute, never extended),
**   now < last_used + idle_timeout, and its user is_active = 1.
** session_valid() is one lookup by the unique token_hash index joined to
** users by primary key, through a statement cached on the connection; it
** never writes, so checking a request costs no lock and no journal.
** session_touch() moves last_used to now (at most once a second: a
** second touch in the same second writes nothing), which extends the idle
** deadline but never the absolute one.
**
** Audit rows (auth_audit_log): session.created (details: session_id,
** expires_at, idle_timeout; the row's ip_address and user_agent are the
** session's), session.revoked (details: session_id and
** reason; from session_revoke, session_revoke_user and session_revoke_id),
** session.rotated (details: session_id). Never the token. A touch writes no audit row: it
** happens on every request, the log would grow with traffic, and
** last_used already records it.
**
** Timeouts and the clock are per connection (oauthdb_config below; the
** defaults are in SESSION_DEFAULT_*). A session keeps the idle timeout of
** the connection that created it.
**
** Every function here is DIRECTONLY: they create secrets, write, or (for
** session_valid) tell whom a token belongs to, so a view or trigger of an
** untrusted database file must not be able to call them.
*/
#include <sodium.h>
#include <string.h>
#include <time.h>
#include "audit.h"
#include "oauthdb.h"
#include "refresh_rules.h"
#include "session_token.h"

SQLITE_EXTENSION_INIT3

#define TOKEN_TEXT_LEN SESSION_TOKEN_TEXT_LEN

#define LIVE_SESSION_WHERE                                                  \
  " s.revoked_at IS NULL AND s.expires_at > ?2"                             \
  " AND s.last_used + s.idle_timeout > ?2"

static const char session_valid_sql[] =
    "SELECT s.user_id FROM user_sessions AS s"
    " JOIN users AS u ON u.id = s.user_id"
    " WHERE s.token_hash = ?1 AND" LIVE_SESSION_WHERE " AND u.is_active = 1";

static const char session_touch_sql[] =
    "UPDATE user_sessions AS s SET last_used = ?2"
    " WHERE s.token_hash = ?1 AND" LIVE_SESSION_WHERE
    " AND s.last_used < ?2"
    " AND EXISTS (SELECT 1 FROM users AS u"
    "             WHERE u.id = s.user_id AND u.is_active = 1)"
    " RETURNING 1";

/* Only users that may sign in get a session: one statement does both. */
static const char session_insert_sql[] =
    "INSERT INTO user_sessions"
    "(id, user_id, token_hash, created_at, last_used, expires_at,"
    " idle_timeout, ip_address, user_agent)"
    " SELECT uuid7(), id, ?2, ?3, ?3, ?4, ?5, ?6, ?7 FROM users"
    " WHERE id = ?1 AND is_active = 1"
    " RETURNING id";

/*
** Revocation leaves sessions past their absolute expiry alone: they can
** never be valid again, and marking them would only add audit rows.
*/
static const char session_revoke_sql[] =
    "UPDATE user_sessions SET revoked_at = ?2,"
    " revoked_reason = ?3"
    " WHERE token_hash = ?1 AND revoked_at IS NULL AND expires_at > ?2"
    " RETURNING id, user_id";

/* "Sign out that other device": by the session's id, not its token. */
static const char session_revoke_id_sql[] =
    "UPDATE user_sessions SET revoked_at = ?2, revoked_reason = ?3"
    " WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2"
    " RETURNING id, user_id";

/*
** A new token for the same live session: the old hash is replaced in the
** same UPDATE, so the old token stops working the moment this commits.
*/
static const char session_rotate_sql[] =
    "UPDATE user_sessions AS s SET token_hash = ?3, last_used = ?2"
    " WHERE s.token_hash = ?1 AND" LIVE_SESSION_WHERE
    " AND EXISTS (SELECT 1 FROM users AS u"
    "             WHERE u.id = s.user_id AND u.is_active = 1)"
    " RETURNING id, user_id";

/*
** Rare (sign out everywhere, deactivation): prepared per call, not cached.
** The live sessions are read first, in id order (uuid7: creation order), so
** that the audit rows come in that order on both engines; UPDATE ...
** RETURNING yields rows in no defined order.
*/
static const char session_live_of_user_sql[] =
    "SELECT id FROM user_sessions"
    " WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2"
    " ORDER BY id";
static const char session_revoke_user_sql[] =
    "UPDATE user_sessions SET revoked_at = ?2, revoked_reason = ?3"
    " WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2"
    " RETURNING id";

/* ---- the connection's clock and timeouts ---- */

static int64_t idle_timeout(const oauthdb_conn *conn) {
  return conn->session_idle_timeout ? conn->session_idle_timeout
                                    : SESSION_DEFAULT_IDLE;
}
static int64_t absolute_timeout(const oauthdb_conn *conn) {
  return conn->session_absolute_timeout ? conn->session_absolute_timeout
                                        : SESSION_DEFAULT_ABSOLUTE;
}

/* ---- helpers ---- */

/*
** Report the connection's last error as FN's, keeping its code (so BUSY
** stays BUSY for a caller that retries), with a hint when the schema is
** missing.
*/
static void db_error(sqlite3_context *ctx, oauthdb_conn *conn, const char *fn) {
  int code = sqlite3_errcode(conn->db);
  const char *msg = sqlite3_errmsg(conn->db);
  fn_error(ctx, "%s: %s%s", fn, msg,
           strstr(msg, "no such table")
               ? " (has SELECT oauthdb_migrate() been run?)"
               : "");
  if (code != SQLITE_OK && code != SQLITE_ERROR) sqlite3_result_error_code(ctx, code);
}

/* A cached statement, ready to bind; NULL with the error set on ctx. */
static sqlite3_stmt *cached_stmt(sqlite3_context *ctx, oauthdb_conn *conn,
                                 conn_stmt_id id, const char *sql,
                                 const char *fn) {
  sqlite3_stmt *st = conn_stmt(conn, id, sql);
  if (!st) {
    db_error(ctx, conn, fn);
    return NULL;
  }
  /* Busy means we were re-entered while it ran: never reset it under itself. */
  if (sqlite3_stmt_busy(st)) {
    fn_error(ctx, "%s: called recursively (from inside another session "
                  "function)", fn);
    return NULL;
  }
  return st;
}

/* Finish a statement whose last step returned RC; its error, if any, on ctx. */
static int stmt_finish(sqlite3_context *ctx, oauthdb_conn *conn,
                       sqlite3_stmt *st, int rc, const char *fn) {
  while (rc == SQLITE_ROW) rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) {
    sqlite3_reset(st);  /* keeps the step's message for db_error */
    db_error(ctx, conn, fn);
    sqlite3_clear_bindings(st);
    return rc;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return SQLITE_OK;
}

/*
** SHA-256 of a token argument's text. Returns 0, leaving hash untouched,
** when the value cannot be a token (NULL, not text, wrong length): such a
** value is simply not a live session, and says so without an error.
*/
static int token_hash_of(sqlite3_value *v, unsigned char hash[32]) {
  if (sqlite3_value_type(v) != SQLITE_TEXT) return 0;
  const unsigned char *t = sqlite3_value_text(v);
  return session_token_hash(t, (size_t)sqlite3_value_bytes(v), hash);
}

/*
** An integer argument, or text that reads as one ('60', as drivers that
** bind everything as text send it); not 1.5, '60s' or a blob.
*/
static int is_integer(sqlite3_value *v) {
  return sqlite3_value_type(v) != SQLITE_BLOB &&
         sqlite3_value_numeric_type(v) == SQLITE_INTEGER;
}

/* A users.id argument: must be text. NULL with the error set otherwise. */
static const char *user_id_arg(sqlite3_context *ctx, sqlite3_value *v,
                               const char *fn) {
  int type = sqlite3_value_type(v);
  if (type != SQLITE_TEXT) {
    fn_error(ctx, "%s: user_id must be text (a users.id), not %s", fn,
             type == SQLITE_NULL ? "NULL" : "a number or blob");
    return NULL;
  }
  const char *id = (const char *)sqlite3_value_text(v);
  if (!id) sqlite3_result_error_nomem(ctx);
  return id;
}

/*
** The optional text arguments (a revocation's reason, session_create's
** ip_address and user_agent) share one reading: absent or NULL leaves *OUT
** as it was (the caller's default), text of at most MAX bytes is taken, and
** anything else is refused by the caller in its own words.
*/
enum text_arg_status { TEXT_ARG_OK, TEXT_ARG_NOT_TEXT, TEXT_ARG_TOO_LONG,
                       TEXT_ARG_NOMEM };
static enum text_arg_status optional_text_arg(sqlite3_context *ctx, int argc,
                                              sqlite3_value **argv, int i,
                                              int max, const char **out) {
  if (argc <= i || sqlite3_value_type(argv[i]) == SQLITE_NULL) return TEXT_ARG_OK;
  if (sqlite3_value_type(argv[i]) != SQLITE_TEXT) return TEXT_ARG_NOT_TEXT;
  const char *text = (const char *)sqlite3_value_text(argv[i]);
  if (!text) {
    sqlite3_result_error_nomem(ctx);
    return TEXT_ARG_NOMEM;
  }
  if (sqlite3_value_bytes(argv[i]) > max) return TEXT_ARG_TOO_LONG;
  *out = text;
  return TEXT_ARG_OK;
}

/*
** A revocation reason: optional text of at most SESSION_MAX_REASON bytes.
** Returns 0 with the error set on ctx when it is not acceptable.
*/
static int reason_arg(sqlite3_context *ctx, int argc, sqlite3_value **argv,
                      int i, const char *fallback, const char **out,
                      const char *fn) {
  *out = fallback;
  switch (optional_text_arg(ctx, argc, argv, i, SESSION_MAX_REASON, out)) {
  case TEXT_ARG_OK: return 1;
  case TEXT_ARG_NOT_TEXT: fn_error(ctx, "%s: reason must be text", fn); break;
  case TEXT_ARG_TOO_LONG:
    fn_error(ctx, SESSION_MSG_REASON_TOO_LONG, fn, SESSION_MAX_REASON);
    break;
  case TEXT_ARG_NOMEM: break;
  }
  return 0;
}

/* Write a session.revoked audit row; on failure the error is set on ctx. */
static int audit_revoked(sqlite3_context *ctx, oauthdb_conn *conn,
                         const char *fn, const char *session_id,
                         const char *user_id, const char *reason) {
  char *details = sqlite3_mprintf("{\"session_id\":\"%s\"}", session_id);
  if (!details) {
    sqlite3_result_error_nomem(ctx);
    return SQLITE_NOMEM;
  }
  int rc = audit_write(conn, "session.revoked", user_id, NULL, 1, reason, details, NULL);
  sqlite3_free(details);
  if (rc != SQLITE_OK) {
    /* The session stays revoked: a logout must not leave a token live. */
    fn_error(ctx, "%s: the session was revoked, but its audit row could not "
                  "be written: %s", fn, sqlite3_errmsg(conn->db));
  }
  return rc;
}

/*
** session_create's ip_address or user_agent: NULL (or absent) is recorded
** as NULL. Returns 0 with the error set on ctx when it is not acceptable.
*/
static int client_arg(sqlite3_context *ctx, int argc, sqlite3_value **argv,
                      int i, int max, const char *name, const char **out) {
  *out = NULL;
  switch (optional_text_arg(ctx, argc, argv, i, max, out)) {
  case TEXT_ARG_OK: return 1;
  case TEXT_ARG_NOT_TEXT:
    fn_error(ctx, "session_create: %s must be text or NULL, not %s", name,
             storage_class_name(sqlite3_value_type(argv[i])));
    break;
  case TEXT_ARG_TOO_LONG: fn_error(ctx, SESSION_MSG_CLIENT_TOO_LONG, name, max); break;
  case TEXT_ARG_NOMEM: break;
  }
  return 0;
}

static void new_token(char token[TOKEN_TEXT_LEN + 1],
                      unsigned char hash[crypto_hash_sha256_BYTES]) {
  session_token_new(token, hash);
}

/* ---- session_create(user_id [, ttl [, ip_address [, user_agent]]]) ---- */

/*
** After the insert found no user that may sign in: say which rule failed.
** A one-off statement; this is the error path.
*/
static void explain_no_user(sqlite3_context *ctx, oauthdb_conn *conn,
                            const char *user_id) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(conn->db, "SELECT is_active FROM users WHERE id = ?1",
                         -1, &st, NULL) != SQLITE_OK) {
    db_error(ctx, conn, "session_create");
    return;
  }
  sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    fn_error(ctx, SESSION_MSG_INACTIVE, user_id);
  else if (rc == SQLITE_DONE)
    fn_error(ctx, SESSION_MSG_NO_USER, user_id);
  else
    db_error(ctx, conn, "session_create");
  sqlite3_finalize(st);
}

/* Remove a session whose creation could not be audited (error path). */
static void undo_insert(oauthdb_conn *conn, const char *session_id) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(conn->db, "DELETE FROM user_sessions WHERE id = ?1",
                         -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC);
    sqlite3_step(st);
  }
  sqlite3_finalize(st);
}

static void session_create_fn(sqlite3_context *ctx, int argc,
                              sqlite3_value **argv) {
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  const char *user_id = user_id_arg(ctx, argv[0], "session_create");
  if (!user_id) return;
  int64_t ttl = absolute_timeout(conn);
  if (argc > 1 && sqlite3_value_type(argv[1]) != SQLITE_NULL) {
    ttl = sqlite3_value_int64(argv[1]);
    if (!is_integer(argv[1]) || ttl < 1 ||
        ttl > SESSION_MAX_SECONDS) {
      fn_error(ctx, SESSION_MSG_TTL, SESSION_MAX_SECONDS);
      return;
    }
  }
  const char *ip_address, *user_agent;
  if (!client_arg(ctx, argc, argv, 2, SESSION_MAX_IP, "ip_address", &ip_address) ||
      !client_arg(ctx, argc, argv, 3, SESSION_MAX_USER_AGENT, "user_agent", &user_agent))
    return;
  int64_t now = conn_now(conn);
  if (now + ttl > SESSION_MAX_TIME) {
    fn_error(ctx, SESSION_MSG_TOO_LATE);
    return;
  }
  sqlite3_stmt *st = cached_stmt(ctx, conn, STMT_SESSION_INSERT,
                                 session_insert_sql, "session_create");
  if (!st) return;

  char token[TOKEN_TEXT_LEN + 1];
  unsigned char hash[crypto_hash_sha256_BYTES];
  new_token(token, hash);

  sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, hash, sizeof hash, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, now);
  sqlite3_bind_int64(st, 4, now + ttl);
  sqlite3_bind_int64(st, 5, idle_timeout(conn));
  sqlite3_bind_text(st, 6, ip_address, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 7, user_agent, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  char session_id[37] = "";
  char *why = NULL; /* why the audit row could not be written */
  int created = rc == SQLITE_ROW, audited = 0;
  if (created) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    if (id && sqlite3_column_bytes(st, 0) == 36) memcpy(session_id, id, 37);
    /*
    ** Write the audit row while the INSERT is still running (it has
    ** inserted, and holds its RETURNING row): in autocommit mode both then
    ** commit together when it finishes, so no other connection (a backup,
    ** an export) ever sees a session without its record. Written after
    ** the INSERT finished, each would be a transaction of its own.
    */
    char *details = sqlite3_mprintf(
        "{\"session_id\":\"%s\",\"expires_at\":%lld,\"idle_timeout\":%lld}",
        session_id, (long long)(now + ttl), (long long)idle_timeout(conn));
    audit_client client = {ip_address, user_agent};
    int arc = details ? audit_write(conn, "session.created", user_id, NULL, 1, NULL,
                                    details, &client)
                      : SQLITE_NOMEM;
    sqlite3_free(details);
    audited = arc == SQLITE_OK;
    if (!audited)
      why = sqlite3_mprintf("%s", arc == SQLITE_NOMEM ? "out of memory"
                                                      : sqlite3_errmsg(conn->db));
  }
  if (stmt_finish(ctx, conn, st, rc, "session_create") != SQLITE_OK) goto out;
  if (!created) {
    explain_no_user(ctx, conn, user_id);
    goto out;
  }
  if (!audited) {
    /* No token leaves without its audit row: take the session back. */
    undo_insert(conn, session_id);
    fn_error(ctx, "session_create: cannot write the audit row (%s); no "
                  "session was created", why ? why : "out of memory");
    goto out;
  }
  sqlite3_result_text(ctx, token, TOKEN_TEXT_LEN, SQLITE_TRANSIENT);

out:
  sqlite3_free(why);
  sodium_memzero(token, sizeof token);
  sodium_memzero(hash, sizeof hash);
}

/* ---- session_valid(token) ---- */

/*
** The user id of the live session with this token hash, copied into
** user_id[37]. Returns 1 if live, 0 if not, -1 on error (set on ctx).
*/
static int lookup_live(sqlite3_context *ctx, oauthdb_conn *conn,
                       const unsigned char hash[32], char user_id[37],
                       const char *fn) {
  sqlite3_stmt *st = cached_stmt(ctx, conn, STMT_SESSION_VALID,
                                 session_valid_sql, fn);
  if (!st) return -1;
  sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, conn_now(conn));
  int rc = sqlite3_step(st);
  int live = 0;
  if (rc == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    int n = sqlite3_column_bytes(st, 0);
    /* users.id is CHECKed to 36 characters; anything else is not ours. */
    if (id && n == 36) {
      memcpy(user_id, id, 37);
      live = 1;
    }
  }
  /* Finish by hand: the statement yields one row, and this is the hot path. */
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    sqlite3_reset(st);
    db_error(ctx, conn, fn);
    live = -1;
  } else {
    sqlite3_reset(st);
  }
  /* Do not leave the cache pointing at the caller's stack. */
  sqlite3_bind_null(st, 1);
  return live;
}

static void session_valid_fn(sqlite3_context *ctx, int argc,
                             sqlite3_value **argv) {
  (void)argc;
  unsigned char hash[crypto_hash_sha256_BYTES];
  if (!token_hash_of(argv[0], hash)) return; /* NULL: not a session */
  char user_id[37];
  int live = lookup_live(ctx, sqlite3_user_data(ctx), hash, user_id,
                         "session_valid");
  sodium_memzero(hash, sizeof hash);
  if (live == 1) sqlite3_result_text(ctx, user_id, 36, SQLITE_TRANSIENT);
}

/* ---- session_touch(token) ---- */

static void session_touch_fn(sqlite3_context *ctx, int argc,
                             sqlite3_value **argv) {
  (void)argc;
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  unsigned char hash[crypto_hash_sha256_BYTES];
  if (!token_hash_of(argv[0], hash)) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  sqlite3_stmt *st = cached_stmt(ctx, conn, STMT_SESSION_TOUCH,
                                 session_touch_sql, "session_touch");
  if (!st) goto out;
  sqlite3_bind_blob(st, 1, hash, sizeof hash, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, conn_now(conn));
  int rc = sqlite3_step(st);
  int renewed = rc == SQLITE_ROW;
  if (stmt_finish(ctx, conn, st, rc, "session_touch") != SQLITE_OK) goto out;
  if (!renewed) {
    /*
    ** Nothing written: the session is dead, or was already touched this
    ** second. A read tells which, so a busy session costs one write a
    ** second, not one a request.
    */
    char user_id[37];
    int live = lookup_live(ctx, conn, hash, user_id, "session_touch");
    if (live < 0) goto out;
    renewed = live;
  }
  sqlite3_result_int(ctx, renewed);
out:
  sodium_memzero(hash, sizeof hash);
}

/* ---- session_revoke(token [, reason]) ---- */

static void session_revoke_fn(sqlite3_context *ctx, int argc,
                              sqlite3_value **argv) {
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  const char *reason;
  if (!reason_arg(ctx, argc, argv, 1, "logout", &reason, "session_revoke"))
    return;
  unsigned char hash[crypto_hash_sha256_BYTES];
  if (!token_hash_of(argv[0], hash)) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  sqlite3_stmt *st = cached_stmt(ctx, conn, STMT_SESSION_REVOKE,
                                 session_revoke_sql, "session_revoke");
  if (!st) goto out;
  sqlite3_bind_blob(st, 1, hash, sizeof hash, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, conn_now(conn));
  sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  char session_id[37] = "", user_id[37] = "";
  if (rc == SQLITE_ROW) {
    const char *sid = (const char *)sqlite3_column_text(st, 0);
    const char *uid = (const char *)sqlite3_column_text(st, 1);
    if (sid && sqlite3_column_bytes(st, 0) == 36) memcpy(session_id, sid, 37);
    if (uid && sqlite3_column_bytes(st, 1) == 36) memcpy(user_id, uid, 37);
  }
  int revoked = rc == SQLITE_ROW;
  /*
  ** The audit row is written while the UPDATE still runs, so that in
  ** autocommit mode the revocation and its record commit together (see
  ** session_create). If it fails the error is on ctx, and the UPDATE still
  ** finishes: the session stays revoked.
  */
  int audited = !revoked || audit_revoked(ctx, conn, "session_revoke",
                                          session_id, user_id, reason) == SQLITE_OK;
  if (stmt_finish(ctx, conn, st, rc, "session_revoke") != SQLITE_OK) goto out;
  if (!audited) goto out;
  sqlite3_result_int(ctx, revoked);
out:
  sodium_memzero(hash, sizeof hash);
}

/* ---- session_revoke_user(user_id [, reason]) ---- */

static void session_revoke_user_fn(sqlite3_context *ctx, int argc,
                                   sqlite3_value **argv) {
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  const char *fn = "session_revoke_user";
  const char *user_id = user_id_arg(ctx, argv[0], fn);
  if (!user_id) return;
  const char *reason;
  if (!reason_arg(ctx, argc, argv, 1, "revoke_user", &reason, fn)) return;
  int64_t now = conn_now(conn);

  sqlite3_stmt *live = NULL, *st = NULL;
  char (*ids)[37] = NULL;  /* the live sessions' ids, in id order */
  sqlite3_int64 n_live = 0, n = 0;
  int rc;
  if (sqlite3_prepare_v2(conn->db, session_live_of_user_sql, -1, &live, NULL) != SQLITE_OK)
    goto db_failed;
  sqlite3_bind_text(live, 1, user_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(live, 2, now);
  while ((rc = sqlite3_step(live)) == SQLITE_ROW) {
    const char *sid = (const char *)sqlite3_column_text(live, 0);
    if (!sid || sqlite3_column_bytes(live, 0) != 36) continue;
    void *grown = sqlite3_realloc64(ids, (sqlite3_uint64)(n_live + 1) * sizeof *ids);
    if (!grown) {
      sqlite3_result_error_nomem(ctx);
      goto out;
    }
    ids = grown;
    memcpy(ids[n_live++], sid, 37);
  }
  if (rc != SQLITE_DONE) goto db_failed;

  if (sqlite3_prepare_v2(conn->db, session_revoke_user_sql, -1, &st, NULL) != SQLITE_OK)
    goto db_failed;
  sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, now);
  sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
  /*
  ** RETURNING: every row is updated by the first step. The audit rows are
  ** written while the UPDATE is still running, before the step that ends
  ** it (which commits, in autocommit mode): the revocations and their
  ** record commit together. The sessions it updated are the ones read
  ** above: the read and the UPDATE see one snapshot (the calling statement
  ** holds it; a write by another connection in between makes the UPDATE
  ** fail as busy rather than see more), and the count is checked.
  */
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    for (sqlite3_int64 i = 0; i < n_live; i++)
      if (audit_revoked(ctx, conn, fn, ids[i], user_id, reason) != SQLITE_OK) goto out;
    do n++; while ((rc = sqlite3_step(st)) == SQLITE_ROW);
  }
  if (rc != SQLITE_DONE) goto db_failed;
  if (n != n_live) {
    fn_error(ctx, "%s: revoked %lld sessions but read %lld live ones; "
                  "the audit log may be missing rows", fn, (long long)n, (long long)n_live);
    goto out;
  }
  sqlite3_result_int64(ctx, n);
  goto out;
db_failed:
  db_error(ctx, conn, fn);
out:
  sqlite3_finalize(live);
  sqlite3_finalize(st);
  sqlite3_free(ids);
}

/* ---- session_revoke_id(session_id [, reason]) ---- */

static void session_revoke_id_fn(sqlite3_context *ctx, int argc,
                                 sqlite3_value **argv) {
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  const char *fn = "session_revoke_id";
  if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
    fn_error(ctx, "%s: session_id must be text (a user_sessions.id), not %s", fn,
             sqlite3_value_type(argv[0]) == SQLITE_NULL ? "NULL" : "a number or blob");
    return;
  }
  const char *id = (const char *)sqlite3_value_text(argv[0]);
  if (!id) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  const char *reason;
  if (!reason_arg(ctx, argc, argv, 1, "revoke_id", &reason, fn)) return;

  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(conn->db, session_revoke_id_sql, -1, &st, NULL) != SQLITE_OK) {
    db_error(ctx, conn, fn);
    sqlite3_finalize(st);
    return;
  }
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, conn_now(conn));
  sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  int revoked = rc == SQLITE_ROW, audited = 1;
  if (revoked) {
    char session_id[37] = "", user_id[37] = "";
    const char *sid = (const char *)sqlite3_column_text(st, 0);
    const char *uid = (const char *)sqlite3_column_text(st, 1);
    if (sid && sqlite3_column_bytes(st, 0) == 36) memcpy(session_id, sid, 37);
    if (uid && sqlite3_column_bytes(st, 1) == 36) memcpy(user_id, uid, 37);
    /* While the UPDATE runs, so both commit together (see session_create). */
    audited = audit_revoked(ctx, conn, fn, session_id, user_id, reason) == SQLITE_OK;
  }
  while (rc == SQLITE_ROW) rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) db_error(ctx, conn, fn);
  sqlite3_finalize(st);
  if (rc == SQLITE_DONE && audited) sqlite3_result_int(ctx, revoked);
}

/* ---- session_rotate(token) ---- */

static void session_rotate_fn(sqlite3_context *ctx, int argc,
                              sqlite3_value **argv) {
  (void)argc;
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  const char *fn = "session_rotate";
  unsigned char old_hash[crypto_hash_sha256_BYTES];
  if (!token_hash_of(argv[0], old_hash)) return; /* not a session: NULL */
  char token[TOKEN_TEXT_LEN + 1];
  unsigned char hash[crypto_hash_sha256_BYTES];
  new_token(token, hash);

  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(conn->db, session_rotate_sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    db_error(ctx, conn, fn);
    goto out;
  }
  sqlite3_bind_blob(st, 1, old_hash, sizeof old_hash, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, conn_now(conn));
  sqlite3_bind_blob(st, 3, hash, sizeof hash, SQLITE_STATIC);
  rc = sqlite3_step(st);
  int rotated = rc == SQLITE_ROW, audited = 1;
  char *why = NULL;
  if (rotated) {
    char session_id[37] = "", user_id[37] = "";
    const char *sid = (const char *)sqlite3_column_text(st, 0);
    const char *uid = (const char *)sqlite3_column_text(st, 1);
    if (sid && sqlite3_column_bytes(st, 0) == 36) memcpy(session_id, sid, 37);
    if (uid && sqlite3_column_bytes(st, 1) == 36) memcpy(user_id, uid, 37);
    char *details = sqlite3_mprintf("{\"session_id\":\"%s\"}", session_id);
    int arc = details ? audit_write(conn, "session.rotated", user_id, NULL, 1, NULL, details, NULL)
                      : SQLITE_NOMEM;
    sqlite3_free(details);
    audited = arc == SQLITE_OK;
    if (!audited)
      why = sqlite3_mprintf("%s", arc == SQLITE_NOMEM ? "out of memory"
                                                      : sqlite3_errmsg(conn->db));
  }
  while (rc == SQLITE_ROW) rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) {
    db_error(ctx, conn, fn);
  } else if (!audited) {
    /*
    ** The old token is already dead (the UPDATE ran); handing out the new
    ** one without its record is what must not happen. The user signs in
    ** again.
    */
    fn_error(ctx, "%s: cannot write the audit row (%s); the session's old "
                  "token no longer works and no new one is given",
             fn, why ? why : "out of memory");
  } else if (rotated) {
    sqlite3_result_text(ctx, token, TOKEN_TEXT_LEN, SQLITE_TRANSIENT);
  }
  sqlite3_free(why);
out:
  sqlite3_finalize(st);
  sodium_memzero(token, sizeof token);
  sodium_memzero(hash, sizeof hash);
  sodium_memzero(old_hash, sizeof old_hash);
}

/* ---- oauthdb_config(name [, value]) ---- */

typedef struct config_setting {
  const char *name;
  int64_t max;                            /* values are 0 (default) .. max */
  int64_t *(*field)(oauthdb_conn *);
  int64_t (*effective)(const oauthdb_conn *);
} config_setting;

static int64_t *idle_field(oauthdb_conn *c) { return &c->session_idle_timeout; }
static int64_t *absolute_field(oauthdb_conn *c) { return &c->session_absolute_timeout; }
static int64_t *clock_field(oauthdb_conn *c) { return &c->clock_override; }
static int64_t *refresh_failures_field(oauthdb_conn *c) { return &c->refresh_max_failures; }

static const config_setting config_settings[] = {
    {"session_idle_timeout", SESSION_MAX_SECONDS, idle_field, idle_timeout},
    {"session_absolute_timeout", SESSION_MAX_SECONDS, absolute_field,
     absolute_timeout},
    /* refresh.c: consecutive failures before a link needs re-consent. */
    {"refresh_max_failures", REFRESH_MAX_FAILURES_SETTING, refresh_failures_field, refresh_max_failures},
    /* For tests: expiry without sleeping. 0 returns to the real clock. */
    {"clock", SESSION_MAX_TIME, clock_field, conn_now},
};

/*
** oauthdb_config(name) reads a per-connection setting; oauthdb_config(name,
** value) sets it. Both return the value in force afterwards: for a timeout
** set to 0 that is its default, for the clock set to 0 the real time.
*/
static void oauthdb_config_fn(sqlite3_context *ctx, int argc,
                              sqlite3_value **argv) {
  oauthdb_conn *conn = sqlite3_user_data(ctx);
  const char *name = (const char *)sqlite3_value_text(argv[0]);
  const config_setting *s = NULL;
  for (size_t i = 0; name && i < sizeof config_settings / sizeof *config_settings; i++)
    if (strcmp(name, config_settings[i].name) == 0) s = &config_settings[i];
  if (!s) {
    fn_error(ctx, "oauthdb_config: unknown setting '%s' (known: "
                  "session_idle_timeout, session_absolute_timeout, "
                  "refresh_max_failures, clock)",
             name ? name : "NULL");
    return;
  }
  if (argc > 1) {
    int64_t v = sqlite3_value_int64(argv[1]);
    if (!is_integer(argv[1]) || v < 0 || v > s->max) {
      fn_error(ctx, "oauthdb_config: %s must be an integer from 0 (%s) to %lld",
               s->name, s->field == clock_field ? "the real clock" : "the default",
               (long long)s->max);
      return;
    }
    *s->field(conn) = v;
  }
  sqlite3_result_int64(ctx, s->effective(conn));
}

static const oauthdb_function session_functions[] = {
    {"session_create", 1, SQLITE_DIRECTONLY, session_create_fn},
    {"session_create", 2, SQLITE_DIRECTONLY, session_create_fn},
    {"session_create", 3, SQLITE_DIRECTONLY, session_create_fn},
    {"session_create", 4, SQLITE_DIRECTONLY, session_create_fn},
    {"session_valid", 1, SQLITE_DIRECTONLY, session_valid_fn},
    {"session_touch", 1, SQLITE_DIRECTONLY, session_touch_fn},
    {"session_revoke", 1, SQLITE_DIRECTONLY, session_revoke_fn},
    {"session_revoke", 2, SQLITE_DIRECTONLY, session_revoke_fn},
    {"session_revoke_user", 1, SQLITE_DIRECTONLY, session_revoke_user_fn},
    {"session_revoke_user", 2, SQLITE_DIRECTONLY, session_revoke_user_fn},
    {"session_revoke_id", 1, SQLITE_DIRECTONLY, session_revoke_id_fn},
    {"session_revoke_id", 2, SQLITE_DIRECTONLY, session_revoke_id_fn},
    {"session_rotate", 1, SQLITE_DIRECTONLY, session_rotate_fn},
    {"oauthdb_config", 1, SQLITE_DIRECTONLY, oauthdb_config_fn},
    {"oauthdb_config", 2, SQLITE_DIRECTONLY, oauthdb_config_fn},
};
OAUTHDB_FUNCTION_SET(session_functions);

int session_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_functions(
      db, conn, session_functions,
      (int)(sizeof session_functions / sizeof session_functions[0]), pzErr);
}

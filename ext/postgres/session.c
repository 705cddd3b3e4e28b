/*
** session.c: sign-in sessions in PostgreSQL (docs/POSTGRES.md, "Sessions"),
** the functions of SQLite's ext/sqlite/session.c over the same core
** (session_token.h: token format, SHA-256 storage, defaults, messages).
**
**   SELECT session_create(:user_id, NULL, :ip, :user_agent); -- the token, once
**   SELECT session_valid(:token);          -- the user's id, or NULL
**   SELECT session_touch(:token);          -- 1: renewed
**   SELECT session_revoke(:token, 'logout');
**   SELECT session_revoke_id(:session_id); SELECT session_revoke_user(:user_id);
**   SELECT session_rotate(:token);         -- a new token for the same row
**   SET oauthdb.session_idle_timeout = 900;  -- oauthdb_config() in SQLite
**
** The tables are the ones in the extension's own schema (create the
** extension where the migrations created them): every statement names that
** schema, so a caller's search_path cannot redirect one to a table of its
** own. The statements are prepared once per backend through SPI and kept
** (spi_plan.c, as refresh.c's are); the plan cache replans them after DDL.
**
** The clock is the statement's start time in whole seconds (the SQLite
** side's clock has seconds too, and session_touch writes at most once a
** second), or oauthdb.clock when a superuser set it (tests: expiry without
** sleeping). Timeouts come from oauthdb.session_idle_timeout and
** oauthdb.session_absolute_timeout (0: the default), as SQLite's come from
** oauthdb_config.
**
** Every function runs as its caller (SECURITY INVOKER): oauthdb_app's own
** table privileges are what let it write user_sessions and append to
** auth_audit_log. A statement that fails rolls back with its audit row, so
** no token is ever handed out without its record.
*/
#include "postgres.h"

#include <sodium.h>
#include <string.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "oauthdb_pg.h"
#include "session_token.h"

PG_FUNCTION_INFO_V1(session_create_pg);
PG_FUNCTION_INFO_V1(session_valid_pg);
PG_FUNCTION_INFO_V1(session_touch_pg);
PG_FUNCTION_INFO_V1(session_revoke_pg);
PG_FUNCTION_INFO_V1(session_revoke_id_pg);
PG_FUNCTION_INFO_V1(session_revoke_user_pg);
PG_FUNCTION_INFO_V1(session_rotate_pg);

static int idle_timeout_setting = 0;
static int absolute_timeout_setting = 0;
static double clock_setting = 0;

void session_define_settings(void) {
  DefineCustomIntVariable(
      "oauthdb.session_idle_timeout",
      "Idle timeout (seconds) of sessions session_create makes; 0: 1800.",
      NULL, &idle_timeout_setting, 0, 0, SESSION_MAX_SECONDS, PGC_USERSET,
      GUC_UNIT_S, NULL, NULL, NULL);
  DefineCustomIntVariable(
      "oauthdb.session_absolute_timeout",
      "Lifetime (seconds) of a session when session_create gets no ttl; 0: 86400.",
      NULL, &absolute_timeout_setting, 0, 0, SESSION_MAX_SECONDS, PGC_USERSET,
      GUC_UNIT_S, NULL, NULL, NULL);
  /*
  ** Superuser only: a role that could move the clock back could make an
  ** expired session valid again for itself.
  */
  DefineCustomRealVariable(
      "oauthdb.clock",
      "Unix time the session functions use instead of the real clock (tests); 0: real time.",
      NULL, &clock_setting, 0, 0, (double)SESSION_MAX_TIME, PGC_SUSET, 0,
      NULL, NULL, NULL);
}

/* ---- the statements ---- */

/* %1$s is the extension's schema, quoted. */
#define LIVE_SESSION_WHERE                                                  \
  " s.revoked_at IS NULL AND s.expires_at > $2"                             \
  " AND s.last_used + s.idle_timeout * interval '1 second' > $2"
#define USER_ACTIVE                                                         \
  " AND EXISTS (SELECT 1 FROM %1$s.users AS u"                              \
  "             WHERE u.id = s.user_id AND u.is_active)"

typedef enum {
  PLAN_VALID, PLAN_TOUCH, PLAN_INSERT, PLAN_USER_STATE, PLAN_REVOKE,
  PLAN_REVOKE_ID, PLAN_REVOKE_USER, PLAN_ROTATE, PLAN_AUDIT, PLAN_COUNT
} plan_id;

typedef struct {
  const char *sql;
  int nargs;
  Oid types[7];
} plan_def;

static const plan_def plan_defs[PLAN_COUNT] = {
    [PLAN_VALID] = {"SELECT s.user_id::text FROM %1$s.user_sessions AS s"
                    " JOIN %1$s.users AS u ON u.id = s.user_id"
                    " WHERE s.token_hash = $1 AND" LIVE_SESSION_WHERE
                    " AND u.is_active",
                    2, {BYTEAOID, TIMESTAMPTZOID}},
    [PLAN_TOUCH] = {"UPDATE %1$s.user_sessions AS s SET last_used = $2"
                    " WHERE s.token_hash = $1 AND" LIVE_SESSION_WHERE
                    " AND s.last_used < $2" USER_ACTIVE " RETURNING 1",
                    2, {BYTEAOID, TIMESTAMPTZOID}},
    /* Only users that may sign in get a session: one statement does both. */
    [PLAN_INSERT] = {"INSERT INTO %1$s.user_sessions"
                     "(user_id, token_hash, created_at, last_used, expires_at,"
                     " idle_timeout, ip_address, user_agent)"
                     " SELECT id, $2, $3, $3, $4, $5, $6, $7 FROM %1$s.users"
                     " WHERE id = $1 AND is_active RETURNING id::text",
                     7, {UUIDOID, BYTEAOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
                         INT4OID, TEXTOID, TEXTOID}},
    [PLAN_USER_STATE] = {"SELECT is_active FROM %1$s.users WHERE id = $1",
                         1, {UUIDOID}},
    /* Sessions past their absolute expiry are left alone, as in SQLite. */
    [PLAN_REVOKE] = {"UPDATE %1$s.user_sessions SET revoked_at = $2,"
                     " revoked_reason = $3 WHERE token_hash = $1"
                     " AND revoked_at IS NULL AND expires_at > $2"
                     " RETURNING id::text, user_id::text",
                     3, {BYTEAOID, TIMESTAMPTZOID, TEXTOID}},
    [PLAN_REVOKE_ID] = {"UPDATE %1$s.user_sessions SET revoked_at = $2,"
                        " revoked_reason = $3 WHERE id = $1"
                        " AND revoked_at IS NULL AND expires_at > $2"
                        " RETURNING id::text, user_id::text",
                        3, {UUIDOID, TIMESTAMPTZOID, TEXTOID}},
    /*
    ** The audit rows in the sessions' id order (uuid7: creation order),
    ** as SQLite writes them, not in whatever order the UPDATE met them.
    */
    [PLAN_REVOKE_USER] = {"WITH revoked AS (UPDATE %1$s.user_sessions"
                          " SET revoked_at = $2, revoked_reason = $3"
                          " WHERE user_id = $1 AND revoked_at IS NULL"
                          " AND expires_at > $2 RETURNING id, user_id)"
                          " SELECT id::text, user_id::text FROM revoked"
                          " ORDER BY id",
                          3, {UUIDOID, TIMESTAMPTZOID, TEXTOID}},
    /* The old hash is replaced in the same UPDATE: the old token dies. */
    [PLAN_ROTATE] = {"UPDATE %1$s.user_sessions AS s SET token_hash = $3,"
                     " last_used = $2 WHERE s.token_hash = $1 AND"
                     LIVE_SESSION_WHERE USER_ACTIVE
                     " RETURNING id::text, user_id::text",
                     3, {BYTEAOID, TIMESTAMPTZOID, BYTEAOID}},
    /*
    ** id and timestamp come from the table's defaults (oauthdb_audit_id(),
    ** clock_timestamp()), as every writer's do. A success's reason goes
    ** into details, as in SQLite.
    */
    [PLAN_AUDIT] = {"INSERT INTO %1$s.auth_audit_log (user_id, action, details,"
                    " ip_address, user_agent)"
                    " VALUES ($1, $2, $3::jsonb || CASE WHEN $4 IS NULL"
                    " THEN '{}'::jsonb ELSE pg_catalog.jsonb_build_object("
                    "'reason', $4) END, $5, $6)",
                    6, {UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID}},
};

static SPIPlanPtr plans[PLAN_COUNT];

/* Run plan ID (prepared on first use: spi_plan.c); rows processed. */
static int run(FunctionCallInfo fcinfo, plan_id id, Datum *values,
               const char *nulls, bool read_only) {
  SPIPlanPtr p = oauthdb_plan(fcinfo, &plans[id], plan_defs[id].sql,
                              plan_defs[id].nargs, plan_defs[id].types, 0);
  return (int)oauthdb_run(p, values, nulls, read_only);
}

/* Column COL of result row ROW copied into OUT (a uuid's 36 characters). */
static void copy_id(uint64 row, int col, char out[37]) {
  char *v = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
  out[0] = '\0';
  if (v && strlen(v) == 36) memcpy(out, v, 37);
}

/* ---- the clock and timeouts ---- */


/* Now, in whole Unix seconds. */
static int64 now_unix(void) {
  if (clock_setting > 0) return (int64)clock_setting;
  TimestampTz t = GetCurrentStatementStartTimestamp();
  return t / USECS_PER_SEC + UNIX_TO_PG_EPOCH;
}

static Datum unix_ts(int64 secs) {
  return TimestampTzGetDatum((TimestampTz)(secs - UNIX_TO_PG_EPOCH) * USECS_PER_SEC);
}

int64 oauthdb_now(void) { return now_unix(); }
Datum oauthdb_unix_timestamptz(int64 secs) { return unix_ts(secs); }

static int idle_timeout(void) {
  return idle_timeout_setting ? idle_timeout_setting : SESSION_DEFAULT_IDLE;
}
static int absolute_timeout(void) {
  return absolute_timeout_setting ? absolute_timeout_setting : SESSION_DEFAULT_ABSOLUTE;
}

/* ---- arguments ---- */

/* The token argument's hash; 0 when it cannot be a token (NULL, length). */
static int token_arg(FunctionCallInfo fcinfo, int i, unsigned char hash[32]) {
  if (PG_NARGS() <= i || PG_ARGISNULL(i)) return 0;
  text *t = PG_GETARG_TEXT_PP(i);
  return session_token_hash((const unsigned char *)VARDATA_ANY(t),
                            VARSIZE_ANY_EXHDR(t), hash);
}

static Datum bytes_datum(const unsigned char *p, size_t n) {
  bytea *b = palloc(VARHDRSZ + n);
  SET_VARSIZE(b, VARHDRSZ + n);
  memcpy(VARDATA(b), p, n);
  return PointerGetDatum(b);
}

/* An optional reason: FALLBACK when NULL, at most SESSION_MAX_REASON bytes. */
static char *reason_arg(FunctionCallInfo fcinfo, int i, const char *fallback,
                        const char *fn) {
  if (PG_NARGS() <= i || PG_ARGISNULL(i)) return pstrdup(fallback);
  text *t = PG_GETARG_TEXT_PP(i);
  if (VARSIZE_ANY_EXHDR(t) > SESSION_MAX_REASON)
    oauthdb_error(ERRCODE_STRING_DATA_RIGHT_TRUNCATION, SESSION_MSG_REASON_TOO_LONG,
                  fn, SESSION_MAX_REASON);
  return text_to_cstring(t);
}

/* A required id argument (uuid); NULL is refused with SQLite's words. */
static Datum id_arg(FunctionCallInfo fcinfo, int i, const char *fn,
                    const char *what) {
  if (PG_ARGISNULL(i))
    oauthdb_error(ERRCODE_NULL_VALUE_NOT_ALLOWED, "%s: %s, not NULL", fn, what);
  return PG_GETARG_DATUM(i);
}

/* session_create's ip_address / user_agent: NULL or at most MAX bytes. */
static Datum client_arg(FunctionCallInfo fcinfo, int i, int max,
                        const char *name, char *null) {
  *null = 'n';
  if (PG_NARGS() <= i || PG_ARGISNULL(i)) return (Datum)0;
  text *t = PG_GETARG_TEXT_PP(i);
  if (VARSIZE_ANY_EXHDR(t) > (size_t)max)
    oauthdb_error(ERRCODE_STRING_DATA_RIGHT_TRUNCATION, SESSION_MSG_CLIENT_TOO_LONG,
                  name, max);
  *null = ' ';
  return PointerGetDatum(t);
}

/* ---- audit rows ---- */

/*
** One auth_audit_log row. IP and AGENT (the session's client, as
** session_create got them; 0 with *_NULL 'n' otherwise) become the row's
** ip_address and user_agent.
*/
static void audit_from(FunctionCallInfo fcinfo, const char *action,
                       const char *user_id, const char *details,
                       const char *reason, Datum ip, char ip_null,
                       Datum agent, char agent_null) {
  Datum v[6] = {DirectFunctionCall1(uuid_in, CStringGetDatum(user_id)),
                CStringGetTextDatum(action), CStringGetTextDatum(details),
                reason ? CStringGetTextDatum(reason) : (Datum)0, ip, agent};
  char nulls[7] = {' ', ' ', ' ', reason ? ' ' : 'n', ip_null, agent_null, '\0'};
  run(fcinfo, PLAN_AUDIT, v, nulls, false);
}

static void audit(FunctionCallInfo fcinfo, const char *action,
                  const char *user_id, const char *details, const char *reason) {
  audit_from(fcinfo, action, user_id, details, reason, (Datum)0, 'n', (Datum)0, 'n');
}

/* ---- session_create(user_id uuid [, ttl [, ip_address [, user_agent]]]) ---- */

Datum session_create_pg(PG_FUNCTION_ARGS) {
  Datum user_id = id_arg(fcinfo, 0, "session_create", "user_id must be text (a users.id)");
  int64 ttl = absolute_timeout();
  if (PG_NARGS() > 1 && !PG_ARGISNULL(1)) {
    ttl = PG_GETARG_INT64(1);
    if (ttl < 1 || ttl > SESSION_MAX_SECONDS)
      oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE, SESSION_MSG_TTL, SESSION_MAX_SECONDS);
  }
  char nulls[8] = "       ";
  Datum ip = client_arg(fcinfo, 2, SESSION_MAX_IP, "ip_address", &nulls[5]);
  Datum agent = client_arg(fcinfo, 3, SESSION_MAX_USER_AGENT, "user_agent", &nulls[6]);
  int64 now = now_unix();
  if (now + ttl > SESSION_MAX_TIME)
    oauthdb_error(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE, SESSION_MSG_TOO_LATE);

  char token[SESSION_TOKEN_TEXT_LEN + 1];
  unsigned char hash[SESSION_HASH_BYTES];
  session_token_new(token, hash);
  char *user_text = DatumGetCString(DirectFunctionCall1(uuid_out, user_id));

  SPI_connect();
  Datum v[7] = {user_id, bytes_datum(hash, sizeof hash), unix_ts(now),
                unix_ts(now + ttl), Int32GetDatum(idle_timeout()), ip, agent};
  sodium_memzero(hash, sizeof hash);
  if (run(fcinfo, PLAN_INSERT, v, nulls, false) != 1) {
    int found = run(fcinfo, PLAN_USER_STATE, v, NULL, true);
    sodium_memzero(token, sizeof token);
    if (found)
      oauthdb_error(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
                    SESSION_MSG_INACTIVE, user_text);
    oauthdb_error(ERRCODE_FOREIGN_KEY_VIOLATION, SESSION_MSG_NO_USER, user_text);
  }
  char session_id[37];
  copy_id(0, 1, session_id);
  char *details = psprintf(
      "{\"session_id\":\"%s\",\"expires_at\":%lld,\"idle_timeout\":%d}",
      session_id, (long long)(now + ttl), idle_timeout());
  audit_from(fcinfo, "session.created", user_text, details, NULL,
             ip, nulls[5], agent, nulls[6]);
  SPI_finish();
  text *result = cstring_to_text_with_len(token, SESSION_TOKEN_TEXT_LEN);
  sodium_memzero(token, sizeof token);
  PG_RETURN_TEXT_P(result);
}

/* ---- session_valid(token) ---- */

/* The live session's user id into user_id[37]; 1 if live, 0 if not. */
static int lookup_live(FunctionCallInfo fcinfo, const unsigned char hash[32],
                       char user_id[37]) {
  Datum v[2] = {bytes_datum(hash, 32), unix_ts(now_unix())};
  if (run(fcinfo, PLAN_VALID, v, NULL, true) != 1) return 0;
  copy_id(0, 1, user_id);
  return user_id[0] != '\0';
}

Datum session_valid_pg(PG_FUNCTION_ARGS) {
  unsigned char hash[32];
  if (!token_arg(fcinfo, 0, hash)) PG_RETURN_NULL();
  char user_id[37];
  SPI_connect();
  int live = lookup_live(fcinfo, hash, user_id);
  SPI_finish();
  sodium_memzero(hash, sizeof hash);
  if (!live) PG_RETURN_NULL();
  return DirectFunctionCall1(uuid_in, CStringGetDatum(user_id));
}

/* ---- session_touch(token) ---- */

Datum session_touch_pg(PG_FUNCTION_ARGS) {
  unsigned char hash[32];
  if (!token_arg(fcinfo, 0, hash)) PG_RETURN_INT32(0);
  SPI_connect();
  Datum v[2] = {bytes_datum(hash, 32), unix_ts(now_unix())};
  int renewed = run(fcinfo, PLAN_TOUCH, v, NULL, false) == 1;
  if (!renewed) {
    /* Dead, or already touched this second: a read tells which. */
    char user_id[37];
    renewed = lookup_live(fcinfo, hash, user_id);
  }
  SPI_finish();
  sodium_memzero(hash, sizeof hash);
  PG_RETURN_INT32(renewed);
}

/* ---- revocations ---- */

/* Audit every row the revoking UPDATE returned; returns how many. */
static int64 audit_revoked_rows(FunctionCallInfo fcinfo, const char *reason) {
  uint64 n = SPI_processed;
  SPITupleTable *rows = SPI_tuptable;
  for (uint64 i = 0; i < n; i++) {
    char session_id[37], user_id[37];
    SPI_tuptable = rows;
    copy_id(i, 1, session_id);
    copy_id(i, 2, user_id);
    audit(fcinfo, "session.revoked", user_id,
          psprintf("{\"session_id\":\"%s\"}", session_id), reason);
  }
  return (int64)n;
}

Datum session_revoke_pg(PG_FUNCTION_ARGS) {
  char *reason = reason_arg(fcinfo, 1, "logout", "session_revoke");
  unsigned char hash[32];
  if (!token_arg(fcinfo, 0, hash)) PG_RETURN_INT32(0);
  SPI_connect();
  Datum v[3] = {bytes_datum(hash, 32), unix_ts(now_unix()), CStringGetTextDatum(reason)};
  sodium_memzero(hash, sizeof hash);
  run(fcinfo, PLAN_REVOKE, v, NULL, false);
  int64 n = audit_revoked_rows(fcinfo, reason);
  SPI_finish();
  PG_RETURN_INT32(n > 0);
}

Datum session_revoke_id_pg(PG_FUNCTION_ARGS) {
  Datum id = id_arg(fcinfo, 0, "session_revoke_id",
                    "session_id must be text (a user_sessions.id)");
  char *reason = reason_arg(fcinfo, 1, "revoke_id", "session_revoke_id");
  SPI_connect();
  Datum v[3] = {id, unix_ts(now_unix()), CStringGetTextDatum(reason)};
  run(fcinfo, PLAN_REVOKE_ID, v, NULL, false);
  int64 n = audit_revoked_rows(fcinfo, reason);
  SPI_finish();
  PG_RETURN_INT32(n > 0);
}

Datum session_revoke_user_pg(PG_FUNCTION_ARGS) {
  Datum id = id_arg(fcinfo, 0, "session_revoke_user", "user_id must be text (a users.id)");
  char *reason = reason_arg(fcinfo, 1, "revoke_user", "session_revoke_user");
  SPI_connect();
  Datum v[3] = {id, unix_ts(now_unix()), CStringGetTextDatum(reason)};
  run(fcinfo, PLAN_REVOKE_USER, v, NULL, false);
  int64 n = audit_revoked_rows(fcinfo, reason);
  SPI_finish();
  PG_RETURN_INT64(n);
}

/* ---- session_rotate(token) ---- */

Datum session_rotate_pg(PG_FUNCTION_ARGS) {
  unsigned char old_hash[32];
  if (!token_arg(fcinfo, 0, old_hash)) PG_RETURN_NULL();
  char token[SESSION_TOKEN_TEXT_LEN + 1];
  unsigned char hash[SESSION_HASH_BYTES];
  session_token_new(token, hash);
  SPI_connect();
  Datum v[3] = {bytes_datum(old_hash, 32), unix_ts(now_unix()),
                bytes_datum(hash, sizeof hash)};
  sodium_memzero(hash, sizeof hash);
  sodium_memzero(old_hash, sizeof old_hash);
  int rotated = run(fcinfo, PLAN_ROTATE, v, NULL, false) == 1;
  if (rotated) {
    char session_id[37], user_id[37];
    copy_id(0, 1, session_id);
    copy_id(0, 2, user_id);
    audit(fcinfo, "session.rotated", user_id,
          psprintf("{\"session_id\":\"%s\"}", session_id), NULL);
  }
  SPI_finish();
  if (!rotated) {
    sodium_memzero(token, sizeof token);
    PG_RETURN_NULL();
  }
  text *result = cstring_to_text_with_len(token, SESSION_TOKEN_TEXT_LEN);
  sodium_memzero(token, sizeof token);
  PG_RETURN_TEXT_P(result);
}

/*
** refresh.c: refresh workers in PostgreSQL (docs/SQL.md "Refresh workers",
** docs/POSTGRES.md), the API of SQLite's ext/sqlite/refresh.c with the same
** arguments, results, lease rules and messages (refresh_rules.h):
**
**   SELECT id FROM tokens_expiring(600);                       -- candidates
**   SELECT token_claim_refresh(:id, 600, 60, 'worker-1');      -- claim or NULL
**   -- ... call the provider's token endpoint with the refresh token ...
**   SELECT token_refresh_done(:claim, :access, :expires_at, :new_refresh);
**   SELECT token_refresh_failed(:claim, 'HTTP 503', 0);        -- 0: retried
**   SELECT token_refresh_failed(:claim, 'invalid_grant', 1);   -- 1: re-consent
**
** A claim is one UPDATE of oauth_tokens whose row comes from a SELECT ...
** FOR UPDATE SKIP LOCKED with the due terms of tokens_expiring: a worker
** never waits for another's claim, and under READ COMMITTED the locked row
** is re-read (its newest version) and must still be due, need no
** re-consent and hold no running lease. Of two workers racing for a token,
** the second either skips the row the first has locked or, once the first
** committed, finds its lease: it gets NULL. A token another worker just
** refreshed is no longer due and is skipped the same way.
**
** token_refresh_done releases the claim (the UPDATE that finds the claim is
** the check that it is still held), then stores the new tokens as the vault
** does in SQLite: sealed under the primary key with associated data
** 'oauth_tokens.<column>:<id>', a token_refresh_log row with the
** fingerprints of the old and new access token and of the refresh token
** that was sent, and the audit row token.refreshed; nothing when the
** tokens did not change. token_refresh_failed logs the failure, counts
** it, and at the limit (oauthdb.refresh_max_failures, default 5) or on an
** invalid_grant sets reconsent_required_at (which takes the token out of
** tokens_expiring's partial index) and writes token.reconsent_required.
**
** Each call is one statement: an error anywhere rolls all of it back, the
** claim included. The functions run as their caller (oauthdb_app's table
** privileges), over the tables of the extension's schema (spi_plan.c).
** Plaintext (the old tokens opened to compare and fingerprint them) lives
** in palloc'd memory and is zeroed before the call returns.
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

#include "associated_data.h"
#include "fingerprint.h"
#include "oauthdb_pg.h"
#include "refresh_rules.h"
#include "seal.h"
#include "seal_message.h"
#include "uuid7.h"

PG_FUNCTION_INFO_V1(token_claim_refresh_pg);
PG_FUNCTION_INFO_V1(token_refresh_done_pg);
PG_FUNCTION_INFO_V1(token_refresh_failed_pg);

static int max_failures_setting = 0;
/* Claims of this backend increase, as SQLite's of a connection do. */
static uuid7_state claim_ids;

void refresh_define_settings(void) {
  DefineCustomIntVariable(
      "oauthdb.refresh_max_failures",
      "Consecutive failed refreshes after which a token needs re-consent; 0: 5.",
      NULL, &max_failures_setting, 0, 0, REFRESH_MAX_FAILURES_SETTING,
      PGC_USERSET, 0, NULL, NULL, NULL);
}

/* ---- the statements (%1$s: the extension's schema) ---- */

#define TOKEN_LINK_USER                                                     \
  "(SELECT p.user_id FROM %1$s.user_providers AS p"                         \
  " WHERE p.id = t.user_provider_id),"                                      \
  " (SELECT p.provider FROM %1$s.user_providers AS p"                       \
  " WHERE p.id = t.user_provider_id)"

typedef enum {
  PLAN_CLAIM, PLAN_RELEASE_DONE, PLAN_STORE, PLAN_LOG_DONE, PLAN_AUDIT_REFRESHED,
  PLAN_FAILED, PLAN_LOG_FAILED, PLAN_AUDIT, PLAN_COUNT
} plan_id;

typedef struct {
  const char *sql;
  int nargs;
  Oid types[6];
} plan_def;

static const plan_def plan_defs[PLAN_COUNT] = {
    /*
    ** $1 token, $2 claim, $3 worker, $4 now, $5 now + within, $6 lease end.
    ** The due terms repeat tokens_expiring's (expiring.c) and its index's.
    */
    [PLAN_CLAIM] = {"WITH due AS (SELECT id FROM %1$s.oauth_tokens"
                    " WHERE id = $1 AND is_active AND refresh_token IS NOT NULL"
                    " AND expires_at IS NOT NULL AND reconsent_required_at IS NULL"
                    " AND expires_at <= $5"
                    " AND (refresh_claimed_until IS NULL OR refresh_claimed_until <= $4)"
                    " FOR UPDATE SKIP LOCKED)"
                    " UPDATE %1$s.oauth_tokens AS t SET refresh_claim = $2,"
                    " refresh_claimed_by = $3, refresh_claimed_until = $6"
                    " FROM due WHERE t.id = due.id RETURNING t.id",
                    6, {UUIDOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
                        TIMESTAMPTZOID}},
    /* Finding the claim is the check that it is still held. */
    [PLAN_RELEASE_DONE] = {"UPDATE %1$s.oauth_tokens AS t SET refresh_claim = NULL,"
                           " refresh_claimed_by = NULL, refresh_claimed_until = NULL,"
                           " refresh_failures = 0 WHERE refresh_claim = $1"
                           " RETURNING t.id::text, t.access_token, t.refresh_token,"
                           " t.expires_at, t.user_provider_id::text, " TOKEN_LINK_USER,
                           1, {TEXTOID}},
    /* As the vault's UPDATE: updated_at is now. */
    [PLAN_STORE] = {"UPDATE %1$s.oauth_tokens SET access_token = $2,"
                    " refresh_token = coalesce($3, refresh_token), expires_at = $4,"
                    " updated_at = now() WHERE id = $1",
                    4, {UUIDOID, BYTEAOID, BYTEAOID, TIMESTAMPTZOID}},
    [PLAN_LOG_DONE] = {"INSERT INTO %1$s.token_refresh_log (token_id,"
                       " old_token_fingerprint, new_token_fingerprint,"
                       " refresh_used_fingerprint, old_expires_at, new_expires_at,"
                       " success) VALUES ($1, $2, $3, $4, $5, $6, true)",
                       6, {UUIDOID, BYTEAOID, BYTEAOID, BYTEAOID, TIMESTAMPTZOID,
                           TIMESTAMPTZOID}},
    /*
    ** The vault's token.refreshed row: details token_id, user_provider_id,
    ** provider, expires_at (Unix seconds, as every timestamp in details).
    ** id and timestamp from the table's defaults, as every writer's.
    */
    [PLAN_AUDIT_REFRESHED] = {"INSERT INTO %1$s.auth_audit_log (user_id, action,"
                              " provider, details) VALUES ($1, 'token.refreshed', $2,"
                              " pg_catalog.jsonb_build_object('token_id', $3::text,"
                              " 'user_provider_id', $4::text, 'provider', $2::text,"
                              " 'expires_at', pg_catalog.floor(pg_catalog.date_part("
                              "'epoch', $5::timestamptz))::bigint))",
                              5, {UUIDOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID}},
    /*
    ** $1 claim, $2 invalid_grant, $3 the failure limit, $4 now. SET's
    ** right-hand sides see the old row; RETURNING sees the new one.
    */
    [PLAN_FAILED] = {"UPDATE %1$s.oauth_tokens AS t SET refresh_claim = NULL,"
                     " refresh_claimed_by = NULL, refresh_claimed_until = NULL,"
                     " refresh_failures = t.refresh_failures + 1,"
                     " reconsent_required_at = CASE WHEN $2 OR"
                     " t.refresh_failures + 1 >= $3 THEN $4 END"
                     " WHERE refresh_claim = $1"
                     " RETURNING t.id::text, t.user_provider_id::text, t.expires_at,"
                     " t.refresh_failures, t.reconsent_required_at IS NOT NULL, "
                     TOKEN_LINK_USER,
                     4, {TEXTOID, BOOLOID, INT4OID, TIMESTAMPTZOID}},
    [PLAN_LOG_FAILED] = {"INSERT INTO %1$s.token_refresh_log (token_id,"
                         " old_expires_at, success, error_message)"
                         " VALUES ($1, $2, false, $3)",
                         3, {UUIDOID, TIMESTAMPTZOID, TEXTOID}},
    [PLAN_AUDIT] = {"INSERT INTO %1$s.auth_audit_log (user_id, action, provider,"
                    " details) VALUES ($1, $2, $3, $4::jsonb)",
                    4, {UUIDOID, TEXTOID, TEXTOID, TEXTOID}},
};

static SPIPlanPtr plans[PLAN_COUNT];

static uint64 run(FunctionCallInfo fcinfo, plan_id id, Datum *values,
                  const char *nulls) {
  SPIPlanPtr p = oauthdb_plan(fcinfo, &plans[id], plan_defs[id].sql,
                              plan_defs[id].nargs, plan_defs[id].types, 0);
  return oauthdb_run(p, values, nulls, false);
}

/* ---- arguments ---- */

/* A text argument of 1..max bytes, or FN's error naming WHAT. */
static text *text_arg(FunctionCallInfo fcinfo, int i, int max, const char *fn,
                      const char *what) {
  text *t = PG_NARGS() > i && !PG_ARGISNULL(i) ? PG_GETARG_TEXT_PP(i) : NULL;
  if (!t || VARSIZE_ANY_EXHDR(t) < 1 || VARSIZE_ANY_EXHDR(t) > (size_t)max)
    oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE, REFRESH_MSG_TEXT, fn, what, max);
  return t;
}

/* An integer argument from LO to HI, or MESSAGE (with FN and HI). */
static int64 int_arg(FunctionCallInfo fcinfo, int i, int64 lo, int64 hi,
                     const char *fn, const char *message) {
  if (PG_ARGISNULL(i) || PG_GETARG_INT64(i) < lo || PG_GETARG_INT64(i) > hi)
    oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE, message, fn, (int)hi);
  return PG_GETARG_INT64(i);
}

/* Column COL (1-based) of result row ROW as text copied into out[37]. */
static void copy_id(uint64 row, int col, char out[37]) {
  char *v = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
  out[0] = '\0';
  if (v && strlen(v) == 36) memcpy(out, v, 37);
}

static Datum uuid_datum(const char *id) {
  return DirectFunctionCall1(uuid_in, CStringGetDatum(id));
}

static Datum bytes_datum(const unsigned char *p, size_t n) {
  bytea *b = palloc(VARHDRSZ + n);
  SET_VARSIZE(b, VARHDRSZ + n);
  memcpy(VARDATA(b), p, n);
  return PointerGetDatum(b);
}

/* ---- token_claim_refresh(token_id, within_seconds, lease_seconds [, worker]) ---- */

Datum token_claim_refresh_pg(PG_FUNCTION_ARGS) {
  const char *fn = "token_claim_refresh";
  if (PG_ARGISNULL(0))
    oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE, REFRESH_MSG_TEXT, fn,
                  REFRESH_ARG_TOKEN_ID, REFRESH_CLAIM_LEN);
  int64 within = int_arg(fcinfo, 1, 0, REFRESH_MAX_WITHIN, fn, REFRESH_MSG_WITHIN);
  int64 lease = int_arg(fcinfo, 2, 1, REFRESH_MAX_LEASE, fn, REFRESH_MSG_LEASE);
  text *worker = NULL;
  if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
    worker = text_arg(fcinfo, 3, REFRESH_MAX_LABEL, fn, REFRESH_ARG_WORKER);
  int64 now = oauthdb_now();
  if (now + lease > REFRESH_MAX_TIME)
    oauthdb_error(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE, REFRESH_MSG_LEASE_TOO_LATE, fn);

  /* The claim's id: a UUIDv7 from the core, as SQLite's. */
  unsigned char raw[UUID7_BYTES];
  char claim[UUID7_TEXT_LEN + 1];
  uuid7_next_bytes(&claim_ids, raw);
  uuid7_format(raw, claim);

  SPI_connect();
  Datum v[6] = {PG_GETARG_DATUM(0), CStringGetTextDatum(claim),
                worker ? PointerGetDatum(worker) : (Datum)0,
                oauthdb_unix_timestamptz(now), oauthdb_unix_timestamptz(now + within),
                oauthdb_unix_timestamptz(now + lease)};
  char nulls[7] = {' ', ' ', worker ? ' ' : 'n', ' ', ' ', ' ', '\0'};
  int claimed = run(fcinfo, PLAN_CLAIM, v, nulls) == 1;
  SPI_finish();
  if (!claimed) PG_RETURN_NULL();
  PG_RETURN_TEXT_P(cstring_to_text(claim));
}

/* ---- token_refresh_done(claim, access_token, expires_at [, refresh_token]) ---- */

/* A stored value opened for comparison; opened = 0 when it did not open. */
typedef struct {
  unsigned char *p;  /* palloc'd plaintext, zeroed by plain_free; NULL: SQL NULL */
  size_t n;
  int opened;
} plain;

static void plain_free(plain *pt) {
  if (pt->p) {
    sodium_memzero(pt->p, pt->n);
    pfree(pt->p);
  }
  pt->p = NULL;
}

/*
** Open column COLUMN (value of row ID, column COL of the RETURNING row).
** A value that does not open is not an error: replacing it may be the
** repair (a token sealed under a key since lost), so it counts as changed
** and its fingerprint is NULL, as in SQLite's vault.
*/
static void old_plain(keyring *kr, const char *id, const char *column, int col,
                      plain *pt) {
  memset(pt, 0, sizeof *pt);
  bool isnull;
  Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
  if (isnull) {
    pt->opened = 1;
    return;
  }
  bytea *sealed = DatumGetByteaPP(d);
  const unsigned char *s = (const unsigned char *)VARDATA_ANY(sealed);
  size_t n = VARSIZE_ANY_EXHDR(sealed);
  if (n < SEAL_OVERHEAD || n - SEAL_OVERHEAD > SEAL_MAX_PLAINTEXT) return;
  char ad[128];
  size_t n_ad = associated_data(ad, sizeof ad, "oauth_tokens", column, id, strlen(id));
  pt->n = n - SEAL_OVERHEAD;
  pt->p = palloc(pt->n + 1);
  uint32_t key_id = 0;
  if (seal_open(kr, s, n, (const unsigned char *)ad, n_ad, pt->p, &key_id) != SEAL_OK) {
    plain_free(pt);
    return;
  }
  pt->opened = 1;
}

static int plain_differs(const plain *pt, const text *val) {
  if (!pt->opened) return 1;
  if (!pt->p || !val) return (pt->p == NULL) != (val == NULL);
  size_t n = VARSIZE_ANY_EXHDR(val);
  return n != pt->n || (n && sodium_memcmp(VARDATA_ANY(val), pt->p, n) != 0);
}

/* VAL sealed for COLUMN of row ID under the primary key, as a bytea Datum. */
static Datum seal_column(keyring *kr, const char *fn, const char *id,
                         const char *column, const text *val) {
  size_t n = VARSIZE_ANY_EXHDR(val);
  if (n > SEAL_MAX_PLAINTEXT)
    oauthdb_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                  "%s: %s is %lld bytes; the limit is 16777216 (16 MiB)", fn,
                  column, (long long)n);
  char ad[128];
  size_t n_ad = associated_data(ad, sizeof ad, "oauth_tokens", column, id, strlen(id));
  size_t len = seal_sealed_len(n);
  bytea *out = palloc(VARHDRSZ + len);
  SET_VARSIZE(out, VARHDRSZ + len);
  seal_status s = seal_token(kr, (const unsigned char *)VARDATA_ANY(val), n,
                             (const unsigned char *)ad, n_ad,
                             (unsigned char *)VARDATA(out));
  if (s != SEAL_OK) {
    char msg[SEAL_MESSAGE_MAX];
    seal_message(msg, sizeof msg, "token_seal", s, NULL, 0, 0, oauthdb_keyring_path());
    oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE, "%s: cannot seal %s of row %s: %s",
                  fn, column, id, msg);
  }
  return PointerGetDatum(out);
}

/* The fingerprint of PT (NULL when it did not open or is NULL). */
static Datum fingerprint_datum(keyring *kr, const unsigned char *p, size_t n,
                               char *null) {
  *null = 'n';
  if (!p) return (Datum)0;
  unsigned char fp[FINGERPRINT_BYTES];
  if (fingerprint_token(kr, p, n, fp) != 0)
    oauthdb_error(ERRCODE_OUT_OF_MEMORY, "out of memory");
  *null = ' ';
  return bytes_datum(fp, sizeof fp);
}

Datum token_refresh_done_pg(PG_FUNCTION_ARGS) {
  const char *fn = "token_refresh_done";
  text *claim = text_arg(fcinfo, 0, REFRESH_CLAIM_LEN, fn, REFRESH_ARG_CLAIM);
  if (PG_ARGISNULL(1)) oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE, REFRESH_MSG_ACCESS_TEXT, fn);
  text *access = PG_GETARG_TEXT_PP(1);
  bool expires_null = PG_ARGISNULL(2);
  Datum expires = expires_null ? (Datum)0 : PG_GETARG_DATUM(2);
  text *refresh = PG_NARGS() > 3 && !PG_ARGISNULL(3) ? PG_GETARG_TEXT_PP(3) : NULL;
  keyring *kr = oauthdb_keyring(fn);

  SPI_connect();
  Datum c[1] = {PointerGetDatum(claim)};
  if (run(fcinfo, PLAN_RELEASE_DONE, c, NULL) != 1) {
    char *claim_text = text_to_cstring(claim);
    oauthdb_error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                  "%s: " REFRESH_MSG_NOT_HELD REFRESH_MSG_NOT_STORED, fn, claim_text);
  }
  char id[37], link[37], user_id[37];
  copy_id(0, 1, id);
  copy_id(0, 5, link);
  copy_id(0, 6, user_id);
  char *provider = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 7);
  bool old_expires_null;
  Datum old_expires = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4,
                                    &old_expires_null);

  /* Sealed first: everything that can fail on the new values fails
     before any old plaintext exists. */
  Datum sealed_access = seal_column(kr, fn, id, "access_token", access);
  Datum sealed_refresh = refresh ? seal_column(kr, fn, id, "refresh_token", refresh) : (Datum)0;

  /*
  ** The log fingerprints the access token, the one every refresh renews,
  ** and the refresh token stored until now: the one the refresh used. The
  ** old plaintexts are zeroed before any statement runs, so no error
  ** leaves one behind.
  */
  plain old_access, old_refresh;
  old_plain(kr, id, "access_token", 2, &old_access);
  old_plain(kr, id, "refresh_token", 3, &old_refresh);
  int changed = plain_differs(&old_access, access) ||
                (refresh && plain_differs(&old_refresh, refresh));
  char lognulls[7] = "      ";
  Datum log[6];
  log[0] = uuid_datum(id);
  log[1] = fingerprint_datum(kr, old_access.p, old_access.n, &lognulls[1]);
  log[2] = fingerprint_datum(kr, (const unsigned char *)VARDATA_ANY(access),
                             VARSIZE_ANY_EXHDR(access), &lognulls[2]);
  log[3] = fingerprint_datum(kr, old_refresh.p, old_refresh.n, &lognulls[3]);
  log[4] = old_expires;
  lognulls[4] = old_expires_null ? 'n' : ' ';
  log[5] = expires;
  lognulls[5] = expires_null ? 'n' : ' ';
  plain_free(&old_access);
  plain_free(&old_refresh);

  char nulls[5] = {' ', ' ', refresh ? ' ' : 'n', expires_null ? 'n' : ' ', '\0'};
  Datum store[4] = {uuid_datum(id), sealed_access, sealed_refresh, expires};
  run(fcinfo, PLAN_STORE, store, nulls);

  if (changed) {
    run(fcinfo, PLAN_LOG_DONE, log, lognulls);
    char anulls[6] = {user_id[0] ? ' ' : 'n', provider ? ' ' : 'n', ' ', ' ',
                      expires_null ? 'n' : ' ', '\0'};
    Datum a[5] = {user_id[0] ? uuid_datum(user_id) : (Datum)0,
                  provider ? CStringGetTextDatum(provider) : (Datum)0,
                  CStringGetTextDatum(id), CStringGetTextDatum(link), expires};
    run(fcinfo, PLAN_AUDIT_REFRESHED, a, anulls);
  }
  SPI_finish();
  PG_RETURN_INT32(1);
}

/* ---- token_refresh_failed(claim, error_message [, invalid_grant]) ---- */

Datum token_refresh_failed_pg(PG_FUNCTION_ARGS) {
  const char *fn = "token_refresh_failed";
  text *claim = text_arg(fcinfo, 0, REFRESH_CLAIM_LEN, fn, REFRESH_ARG_CLAIM);
  text *error = text_arg(fcinfo, 1, REFRESH_MAX_ERROR, fn, REFRESH_ARG_ERROR);
  int invalid_grant = 0;
  if (PG_NARGS() > 2) {
    if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 0 || PG_GETARG_INT32(2) > 1)
      oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE, REFRESH_MSG_INVALID_GRANT, fn);
    invalid_grant = PG_GETARG_INT32(2);
  }
  int64 now = oauthdb_now();

  SPI_connect();
  Datum v[4] = {PointerGetDatum(claim), BoolGetDatum(invalid_grant != 0),
                Int32GetDatum((int32)refresh_failure_limit(max_failures_setting)),
                oauthdb_unix_timestamptz(now)};
  if (run(fcinfo, PLAN_FAILED, v, NULL) != 1) {
    char *claim_text = text_to_cstring(claim);
    oauthdb_error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                  "%s: " REFRESH_MSG_NOT_HELD REFRESH_MSG_NOT_RECORDED, fn, claim_text);
  }
  char id[37], link[37], user_id[37];
  copy_id(0, 1, id);
  copy_id(0, 2, link);
  copy_id(0, 6, user_id);
  bool isnull;
  Datum old_expires = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
  char expires_null = isnull ? 'n' : ' ';
  int64 failures = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
                                               SPI_tuptable->tupdesc, 4, &isnull));
  int reconsent = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
                                             SPI_tuptable->tupdesc, 5, &isnull));
  char *provider = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 7);

  Datum log[3] = {uuid_datum(id), old_expires, PointerGetDatum(error)};
  char lognulls[4] = {' ', expires_null, ' ', '\0'};
  run(fcinfo, PLAN_LOG_FAILED, log, lognulls);

  if (reconsent) {
    char details[256];
    refresh_reconsent_details(details, sizeof details, id, link, failures, invalid_grant);
    Datum a[4] = {user_id[0] ? uuid_datum(user_id) : (Datum)0,
                  CStringGetTextDatum("token.reconsent_required"),
                  provider ? CStringGetTextDatum(provider) : (Datum)0,
                  CStringGetTextDatum(details)};
    char anulls[5] = {user_id[0] ? ' ' : 'n', ' ', provider ? ' ' : 'n', ' ', '\0'};
    run(fcinfo, PLAN_AUDIT, a, anulls);
  }
  SPI_finish();
  PG_RETURN_INT32(reconsent);
}

/*
** expiring.c: tokens_expiring(within_seconds) in PostgreSQL (docs/SQL.md
** "Tokens due for refresh", docs/POSTGRES.md "Refresh workers"), the rows
** of SQLite's table-valued function (ext/sqlite/expiring.c):
**
**   SELECT id, provider, seconds_left FROM tokens_expiring(600);
**   -- 0192f3c4-...|google|412
**
**   id, user_provider_id, provider, expires_at, seconds_left
**
** every active OAuth token that can be refreshed (it has a refresh token and
** an expiry) and does not need re-consent, expiring within that many
** seconds of now (the bound inclusive; already expired ones included),
** soonest first. A token under a refresh worker's claim is listed, as in
** SQLite: token_claim_refresh is what tells a worker it is taken.
**
** The statement repeats the WHERE clause of the partial index
** oauth_tokens_expiring term for term, so it is one range scan of that
** index plus a primary-key probe of user_providers per row: the cost
** follows the rows returned, not the table (bench/pg_lookups.sh). It is
** planned for the bound's actual value (CURSOR_OPT_CUSTOM_PLAN): a generic
** plan would have to guess how many tokens are due.
**
** "now" is oauthdb_now(): the statement's start in whole seconds, or
** oauthdb.clock. The function only reads (STABLE, read-only SPI), opens no
** token and needs no keyring.
*/
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/timestamp.h"

#include "oauthdb_pg.h"

PG_FUNCTION_INFO_V1(tokens_expiring_pg);

#define EXPIRING_SQL                                                        \
  "SELECT t.id, t.user_provider_id, p.provider, t.expires_at"               \
  " FROM %1$s.oauth_tokens AS t"                                            \
  " JOIN %1$s.user_providers AS p ON p.id = t.user_provider_id"             \
  " WHERE t.is_active AND t.refresh_token IS NOT NULL"                      \
  " AND t.expires_at IS NOT NULL AND t.reconsent_required_at IS NULL"       \
  " AND t.expires_at <= $1"                                                 \
  " ORDER BY t.expires_at"

static SPIPlanPtr expiring_plan;

/*
** now + within as a timestamptz; a bound past either end of timestamptz's
** range saturates to infinity, as SQLite's saturates rather than overflows.
*/
static TimestampTz bound(int64 now, int64 within) {
  int64 secs, usecs;
  if (pg_add_s64_overflow(now, within, &secs) ||
      pg_sub_s64_overflow(secs, UNIX_TO_PG_EPOCH, &secs) ||
      pg_mul_s64_overflow(secs, USECS_PER_SEC, &usecs) ||
      !IS_VALID_TIMESTAMP(usecs))
    return within > 0 ? DT_NOEND : DT_NOBEGIN;
  return (TimestampTz)usecs;
}

/* Whole Unix seconds of T, rounded down (T is finite: the column's value). */
static int64 unix_seconds(TimestampTz t) {
  int64 s = t / USECS_PER_SEC;
  if (t % USECS_PER_SEC < 0) s--;
  return s + UNIX_TO_PG_EPOCH;
}

Datum tokens_expiring_pg(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0))
    oauthdb_error(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                  "tokens_expiring: within_seconds must be an integer number "
                  "of seconds, e.g. 3600");
  int64 within = PG_GETARG_INT64(0);
  int64 now = oauthdb_now();
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;

  static const Oid types[1] = {TIMESTAMPTZOID};
  SPI_connect();
  SPIPlanPtr plan = oauthdb_plan(fcinfo, &expiring_plan, EXPIRING_SQL, 1, types,
                                 CURSOR_OPT_CUSTOM_PLAN);
  Datum arg[1] = {TimestampTzGetDatum(bound(now, within))};
  uint64 n = oauthdb_run(plan, arg, NULL, true);
  for (uint64 i = 0; i < n; i++) {
    HeapTuple row = SPI_tuptable->vals[i];
    Datum values[5];
    bool nulls[5] = {false, false, false, false, false};
    for (int col = 0; col < 4; col++)
      values[col] = SPI_getbinval(row, SPI_tuptable->tupdesc, col + 1, &nulls[col]);
    /* expires_at is NOT NULL here: the WHERE clause says so. */
    values[4] = Int64GetDatum(unix_seconds(DatumGetTimestampTz(values[3])) - now);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  SPI_finish();
  return (Datum)0;
}

/*
** scope.c: scope_has(scope, wanted) in PostgreSQL, the core's rule
** (scope.h): is this one scope token in the space-separated scope string
** the provider returned? No LIKE, so no wildcard surprises.
**
**   SELECT id FROM oauth_tokens
**    WHERE scope_has(scope, 'https://www.googleapis.com/auth/gmail.readonly');
**
** IMMUTABLE, STRICT, PARALLEL SAFE: pure.
*/
#include "postgres.h"

#include "fmgr.h"

#include "oauthdb_pg.h"
#include "scope.h"

PG_FUNCTION_INFO_V1(scope_has_pg);

Datum scope_has_pg(PG_FUNCTION_ARGS) {
  text *scope = PG_GETARG_TEXT_PP(0);
  text *wanted = PG_GETARG_TEXT_PP(1);
  if (!scope_wanted_is_valid(VARDATA_ANY(wanted), VARSIZE_ANY_EXHDR(wanted)))
    oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE, "%s", SCOPE_WANTED_ERROR);
  PG_RETURN_BOOL(scope_has(VARDATA_ANY(scope), VARSIZE_ANY_EXHDR(scope),
                           VARDATA_ANY(wanted), VARSIZE_ANY_EXHDR(wanted)));
}

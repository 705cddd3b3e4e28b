/*
** scope.c: scope_has(scope, wanted), the question "was this scope granted"
** asked of an OAuth scope string as the token endpoint returned it.
**
**   SELECT scope_has(scope, 'https://www.googleapis.com/auth/calendar')
**     FROM oauth_tokens WHERE id = :id;                       -- 1 or 0
**   SELECT id FROM oauth_tokens
**    WHERE is_active = 1 AND scope_has(scope, 'openid');
**
** A scope string is scope tokens separated by spaces (RFC 6749 section
** 3.3; oauth_tokens.scope is stored that way). The answer is 1 when WANTED
** is one of those tokens, compared byte for byte (scope tokens are case
** sensitive), and 0 otherwise: never a substring match, so 'calendar' is
** not found in '.../auth/calendar.readonly' the way LIKE '%calendar%' would
** find it. NULL in either argument gives NULL. WANTED must be one scope
** token: empty or holding a space is an error, since it can never match.
**
** Pure: DETERMINISTIC (it can serve an index or a CHECK) and INNOCUOUS (it
** reads nothing but its arguments). The PostgreSQL extension has the same
** function over the same core rule (ext/core/scope.c), returning boolean.
*/
#include "oauthdb.h"
#include "scope.h"

SQLITE_EXTENSION_INIT3

static void scope_has_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  int t_scope = sqlite3_value_type(argv[0]);
  int t_wanted = sqlite3_value_type(argv[1]);
  if (t_scope == SQLITE_NULL || t_wanted == SQLITE_NULL) return;
  if (t_scope != SQLITE_TEXT) {
    fn_error(ctx, "scope_has: scope must be text (space-separated scopes), got %s",
             storage_class_name(t_scope));
    return;
  }
  if (t_wanted != SQLITE_TEXT) {
    fn_error(ctx, "scope_has: wanted must be text (one scope), got %s",
             storage_class_name(t_wanted));
    return;
  }
  const char *scope = (const char *)sqlite3_value_text(argv[0]);
  size_t n_scope = (size_t)sqlite3_value_bytes(argv[0]);
  const char *wanted = (const char *)sqlite3_value_text(argv[1]);
  size_t n_wanted = (size_t)sqlite3_value_bytes(argv[1]);
  if (!scope || !wanted) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  if (!scope_wanted_is_valid(wanted, n_wanted)) {
    fn_error(ctx, "%s", SCOPE_WANTED_ERROR);
    return;
  }
  sqlite3_result_int(ctx, scope_has(scope, n_scope, wanted, n_wanted));
}

static const oauthdb_function scope_functions[] = {
    {"scope_has", 2, SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, scope_has_fn},
};

int scope_register(sqlite3 *db, oauthdb_conn *conn, char **pzErr) {
  return conn_register_functions(
      db, conn, scope_functions,
      (int)(sizeof scope_functions / sizeof scope_functions[0]), pzErr);
}

/*
** vault.c: the C half of oauth_token_vault in PostgreSQL (docs/POSTGRES.md,
** "The vault"). The view itself, its INSTEAD OF triggers and their
** plpgsql live in migration 0004 (sql/postgres/0004_token_vault.up.sql),
** beside the tables they read, because a view must name existing tables
** and an extension's own objects are not dumped by pg_dump; the migration's
** functions call these four at run time:
**
**   oauthdb_vault_open(sealed, column_name, id) -> text
**       what the view shows: the plaintext of oauth_tokens.<column> of row
**       id, opened with associated data 'oauth_tokens.<column>:<id>'
**       (associated_data.h, as ext/sqlite/vault.c), or SQLite's error:
**       "oauth_token_vault: cannot open access_token of row ...: token_open:
**       authentication failed". While an UPDATE or DELETE of the vault runs
**       (oauthdb.vault_unopened set by its statement trigger) it opens
**       nothing and returns a placeholder instead (NULL in a DELETE), so
**       the old row the executor builds for the trigger holds no plaintext
**       and needs no keyring: SQLite's "a column the UPDATE does not assign
**       is not read".
**   oauthdb_vault_seal(plaintext, column_name, id) -> bytea
**       sealed with the primary key and that associated data, or
**       "oauth_token_vault: cannot seal access_token of row ...: ...".
**   oauthdb_vault_old_fingerprint(sealed, column_name, id) -> bytea
**       token_fingerprint() of the stored value's plaintext, computed here
**       so the plaintext never reaches plpgsql; NULL when the value is NULL
**       or does not open (the UPDATE replacing it may be the repair).
**   oauthdb_vault_raise(sqlstate, message)
**       raises the trigger's error with errhidestmt/errhidecontext, so a
**       failed INSERT of a plaintext literal is not repeated in the log.
**
** column_name must be access_token, refresh_token or id_token: these are
** the vault's associated data, not a general opener (token_open is that).
*/
#include "postgres.h"

#include <sodium.h>
#include <string.h>

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

#include "associated_data.h"
#include "fingerprint.h"
#include "oauthdb_pg.h"
#include "seal.h"
#include "seal_message.h"

PG_FUNCTION_INFO_V1(oauthdb_vault_open);
PG_FUNCTION_INFO_V1(oauthdb_vault_seal);
PG_FUNCTION_INFO_V1(oauthdb_vault_old_fingerprint);
PG_FUNCTION_INFO_V1(oauthdb_vault_raise);

/* oauthdb.vault_unopened: '' or the running UPDATE/DELETE's placeholder. */
static char *unopened_setting = NULL;

/*
** Only the values the statement triggers set: '', 'delete', or
** 'oauthdb-unopened:<random uuid>'. Anything else (a typo in a role's
** settings) would make the view return it as a token.
*/
static bool check_unopened(char **newval, void **extra, GucSource source) {
  const char *v = *newval;
  if (!v || !*v || strcmp(v, "delete") == 0) return true;
  if (strncmp(v, "oauthdb-unopened:", 17) == 0 && strlen(v) <= 17 + 36) return true;
  GUC_check_errdetail("oauthdb.vault_unopened is set by oauth_token_vault's own "
                      "triggers, to '', 'delete' or 'oauthdb-unopened:<uuid>'.");
  return false;
}

void vault_define_settings(void) {
  DefineCustomStringVariable(
      "oauthdb.vault_unopened",
      "Set (transaction-local) by oauth_token_vault's statement triggers "
      "while an UPDATE or DELETE of the vault runs: the view opens no token.",
      NULL, &unopened_setting, "", PGC_USERSET, 0, check_unopened, NULL, NULL);
}

/* The column argument, checked: one of the three sealed columns. */
static const char *arg_column(FunctionCallInfo fcinfo, int i) {
  static const char *const names[] = {"access_token", "refresh_token", "id_token"};
  text *t = PG_GETARG_TEXT_PP(i);
  size_t n = VARSIZE_ANY_EXHDR(t);
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
    if (strlen(names[k]) == n && memcmp(names[k], VARDATA_ANY(t), n) == 0) return names[k];
  oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE,
                "oauth_token_vault: no sealed column %s (access_token, "
                "refresh_token or id_token)", text_to_cstring(t));
  return NULL;
}

/* The id argument as the canonical text of the uuid (what the AD holds). */
static char *arg_id(FunctionCallInfo fcinfo, int i) {
  return DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(i)));
}

/* 'oauth_tokens.<column>:<id>' in palloc'd memory; *n its length. */
static char *vault_ad(const char *column, const char *id, size_t *n) {
  *n = associated_data(NULL, 0, "oauth_tokens", column, id, strlen(id));
  char *ad = palloc(*n + 1);
  associated_data(ad, *n + 1, "oauth_tokens", column, id, strlen(id));
  return ad;
}

/*
** Open SEALED into a new varlena, or return NULL with *why set (a
** palloc'd message in token_open's words); never raises for a value that
** does not open.
*/
static struct varlena *try_open(const char *column, const char *id,
                                bytea *sealed, char **why) {
  const unsigned char *p = (const unsigned char *)VARDATA_ANY(sealed);
  size_t n = VARSIZE_ANY_EXHDR(sealed);
  char msg[SEAL_MESSAGE_MAX];
  uint32_t key_id = 0;
  *why = NULL;
  seal_status s = seal_key_id(p, n, &key_id);
  if (s == SEAL_OK && n - SEAL_OVERHEAD > SEAL_MAX_PLAINTEXT) s = SEAL_TOO_BIG;
  if (s != SEAL_OK) {
    seal_message(msg, sizeof msg, "token_open", s, p, n, key_id, oauthdb_keyring_path());
    *why = pstrdup(msg);
    return NULL;
  }
  keyring *kr = oauthdb_keyring_try(why);
  if (!kr) return NULL;
  size_t n_ad;
  char *ad = vault_ad(column, id, &n_ad);
  size_t len = n - SEAL_OVERHEAD;
  struct varlena *out = palloc(VARHDRSZ + len);
  SET_VARSIZE(out, VARHDRSZ + len);
  s = seal_open(kr, p, n, (const unsigned char *)ad, n_ad, (unsigned char *)VARDATA(out), &key_id);
  pfree(ad);
  if (s != SEAL_OK) {
    sodium_memzero(VARDATA(out), len);
    pfree(out);
    seal_message(msg, sizeof msg, "token_open", s, p, n, key_id, oauthdb_keyring_path());
    *why = pstrdup(msg);
    return NULL;
  }
  return out;
}

/* oauthdb_vault_open(sealed bytea, column_name text, id uuid) -> text */
Datum oauthdb_vault_open(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
    oauthdb_error(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                  "oauth_token_vault: oauthdb_vault_open needs a column name and an id");
  const char *column = arg_column(fcinfo, 1);
  if (unopened_setting && *unopened_setting) {
    /* Inside a DELETE of the vault: nothing, as its RETURNING shows the old
       row. Inside an UPDATE: a placeholder per column, which the trigger
       recognises as "not assigned" (0004_token_vault). */
    if (strcmp(unopened_setting, "delete") == 0) PG_RETURN_NULL();
    char *ph = psprintf("%s:%s", unopened_setting, column);
    PG_RETURN_TEXT_P(cstring_to_text(ph));
  }
  char *id = arg_id(fcinfo, 2);
  char *why = NULL;
  struct varlena *out = try_open(column, id, PG_GETARG_BYTEA_PP(0), &why);
  if (!out)
    oauthdb_error(ERRCODE_DATA_EXCEPTION, "oauth_token_vault: cannot open %s of row %s: %s",
                  column, id, why);
  const unsigned char *pt = (const unsigned char *)VARDATA(out);
  size_t n = VARSIZE(out) - VARHDRSZ;
  if (!plaintext_is_text(pt, n) ||
      (GetDatabaseEncoding() != PG_UTF8 && !pg_verifymbstr((const char *)pt, (int)n, true))) {
    sodium_memzero(VARDATA(out), n);
    pfree(out);
    oauthdb_error(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                  "oauth_token_vault: cannot open %s of row %s: the plaintext is "
                  "not text (a NUL byte or invalid UTF-8); open it with "
                  "token_open_bytea(%s, token_ad('oauth_tokens', '%s', id)) from oauth_tokens",
                  column, id, column, column);
  }
  PG_RETURN_TEXT_P((text *)out);
}

/* oauthdb_vault_seal(plaintext text, column_name text, id uuid) -> bytea */
Datum oauthdb_vault_seal(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
    oauthdb_error(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                  "oauth_token_vault: oauthdb_vault_seal needs a column name and an id");
  const char *column = arg_column(fcinfo, 1);
  char *id = arg_id(fcinfo, 2);
  text *pt = PG_GETARG_TEXT_PP(0);
  size_t n = VARSIZE_ANY_EXHDR(pt);
  if (n > SEAL_MAX_PLAINTEXT)
    oauthdb_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                  "oauth_token_vault: %s of row %s is %lld bytes; the limit is "
                  "16777216 (16 MiB)", column, id, (long long)n);
  char *why = NULL;
  keyring *kr = oauthdb_keyring_try(&why);
  if (!kr)
    oauthdb_error(ERRCODE_CONFIG_FILE_ERROR, "oauth_token_vault: cannot seal %s of row %s: %s",
                  column, id, why);
  size_t n_ad;
  char *ad = vault_ad(column, id, &n_ad);
  size_t len = seal_sealed_len(n);
  bytea *out = palloc(VARHDRSZ + len);
  SET_VARSIZE(out, VARHDRSZ + len);
  seal_status s = seal_token(kr, (const unsigned char *)VARDATA_ANY(pt), n,
                             (const unsigned char *)ad, n_ad, (unsigned char *)VARDATA(out));
  pfree(ad);
  if (s != SEAL_OK) {
    char msg[SEAL_MESSAGE_MAX];
    seal_message(msg, sizeof msg, "token_seal", s, NULL, 0, 0, oauthdb_keyring_path());
    oauthdb_error(ERRCODE_INVALID_BINARY_REPRESENTATION,
                  "oauth_token_vault: cannot seal %s of row %s: %s", column, id, msg);
  }
  PG_RETURN_BYTEA_P(out);
}

/*
** oauthdb_vault_old_fingerprint(sealed bytea, column_name text, id uuid)
** -> bytea: the fingerprint of the stored plaintext, or NULL. The refresh
** log's old_token_fingerprint and refresh_used_fingerprint, and how the
** trigger tells a changed token from a rewritten one.
*/
Datum oauthdb_vault_old_fingerprint(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2)) PG_RETURN_NULL();
  const char *column = arg_column(fcinfo, 1);
  char *id = arg_id(fcinfo, 2);
  char *why = NULL;
  struct varlena *pt = try_open(column, id, PG_GETARG_BYTEA_PP(0), &why);
  if (!pt) PG_RETURN_NULL();
  size_t n = VARSIZE(pt) - VARHDRSZ;
  /* try_open had a keyring, so this one is at hand. */
  keyring *kr = oauthdb_keyring("token_fingerprint");
  bytea *out = palloc(VARHDRSZ + FINGERPRINT_BYTES);
  SET_VARSIZE(out, VARHDRSZ + FINGERPRINT_BYTES);
  int rc = fingerprint_token(kr, (const unsigned char *)VARDATA(pt), n,
                             (unsigned char *)VARDATA(out));
  sodium_memzero(VARDATA(pt), n);
  pfree(pt);
  if (rc != 0) oauthdb_error(ERRCODE_OUT_OF_MEMORY, "out of memory");
  PG_RETURN_BYTEA_P(out);
}

/* oauthdb_vault_raise(sqlstate text, message text): never returns. */
Datum oauthdb_vault_raise(PG_FUNCTION_ARGS) {
  const char *state = PG_ARGISNULL(0) ? "XX000" : text_to_cstring(PG_GETARG_TEXT_PP(0));
  const char *msg = PG_ARGISNULL(1) ? "oauth_token_vault: error" : text_to_cstring(PG_GETARG_TEXT_PP(1));
  int code = ERRCODE_INTERNAL_ERROR;
  if (strlen(state) == 5)
    code = MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
  oauthdb_error(code, "%s", msg);
  PG_RETURN_VOID();
}

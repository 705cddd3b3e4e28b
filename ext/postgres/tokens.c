/*
** tokens.c: token_seal, token_open, token_open_bytea, token_reseal,
** token_key_id and token_fingerprint in PostgreSQL (docs/POSTGRES.md),
** over the same core as SQLite's ext/sqlite/tokens.c, with the same
** messages (seal_message.h), so a value sealed on one engine opens on the
** other and fails the same way.
**
**   UPDATE oauth_tokens
**      SET access_token = token_seal($1, 'oauth_tokens.access_token:' || id)
**    WHERE id = $2;
**   SELECT token_open(access_token, 'oauth_tokens.access_token:' || id)
**     FROM oauth_tokens WHERE id = $1;
**   SELECT token_ad('oauth_tokens', 'access_token', id) ...  -- that AD
**
** Types: sealed values are bytea. Plaintext goes in as text or bytea;
** token_open returns text (an error names token_open_bytea when the
** plaintext is not text), token_open_bytea returns bytea: a SQL function
** has one result type in PostgreSQL, where SQLite returns TEXT or BLOB.
** Associated data is text or bytea (the same bytes either way); NULL
** means none, as in SQLite.
**
** Where plaintext lives: token_open decrypts straight into its result (the
** value the caller asked for, in the executor's memory like any column it
** reads; on a failed tag libsodium zeroes it). token_reseal keeps the
** plaintext in the keyring's locked scratch from open to seal and zeroes it.
** The plaintext arguments of token_seal are the caller's values, in the
** executor's memory; see docs/SECURITY.md for what PostgreSQL may log.
*/
#include "postgres.h"

#include <sodium.h>
#include <string.h>

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "associated_data.h"
#include "fingerprint.h"
#include "oauthdb_pg.h"
#include "seal.h"
#include "seal_message.h"

/* Associated data is a place name ("oauth_tokens.access_token:<uuid>"). */
#define TOKEN_MAX_AD (64 * 1024)

PG_FUNCTION_INFO_V1(token_seal_text);
PG_FUNCTION_INFO_V1(token_seal_bytea);
PG_FUNCTION_INFO_V1(token_open_text);
PG_FUNCTION_INFO_V1(token_open_bytea);
PG_FUNCTION_INFO_V1(token_reseal);
PG_FUNCTION_INFO_V1(token_key_id);
PG_FUNCTION_INFO_V1(token_fingerprint);
PG_FUNCTION_INFO_V1(token_ad);

/* FN's error for seal status S (never names plaintext, AD or key bytes). */
static void seal_fail(const char *fn, seal_status s, const unsigned char *sealed,
                      size_t n, uint32_t key_id) {
  char msg[SEAL_MESSAGE_MAX];
  seal_message(msg, sizeof msg, fn, s, sealed, n, key_id, oauthdb_keyring_path());
  oauthdb_error(s == SEAL_AUTH_FAILED ? ERRCODE_DATA_EXCEPTION
                                      : ERRCODE_INVALID_BINARY_REPRESENTATION,
                "%s", msg);
}

/* The associated data argument (argument 1): NULL or absent = empty. */
static const unsigned char *arg_ad(FunctionCallInfo fcinfo, const char *fn,
                                   size_t *n) {
  *n = 0;
  if (PG_NARGS() < 2 || PG_ARGISNULL(1)) return NULL;
  struct varlena *ad = PG_GETARG_VARLENA_PP(1);  /* text or bytea */
  *n = VARSIZE_ANY_EXHDR(ad);
  if (*n > TOKEN_MAX_AD)
    oauthdb_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                  "%s: associated data is %lld bytes; the limit is 65536 (64 KiB)",
                  fn, (long long)*n);
  return (const unsigned char *)VARDATA_ANY(ad);
}

static Datum seal_datum(FunctionCallInfo fcinfo, const char *fn,
                        const unsigned char *pt, size_t n) {
  if (n > SEAL_MAX_PLAINTEXT)
    oauthdb_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                  "%s: plaintext is %lld bytes; the limit is 16777216 (16 MiB)",
                  fn, (long long)n);
  size_t n_ad;
  const unsigned char *ad = arg_ad(fcinfo, fn, &n_ad);
  keyring *kr = oauthdb_keyring(fn);
  size_t len = seal_sealed_len(n);
  bytea *out = palloc(VARHDRSZ + len);
  SET_VARSIZE(out, VARHDRSZ + len);
  seal_status s = seal_token(kr, pt, n, ad, n_ad, (unsigned char *)VARDATA(out));
  if (s != SEAL_OK) seal_fail(fn, s, NULL, 0, 0);
  PG_RETURN_BYTEA_P(out);
}

/* token_seal(plaintext text, ad text DEFAULT NULL) -> bytea */
Datum token_seal_text(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  text *pt = PG_GETARG_TEXT_PP(0);
  return seal_datum(fcinfo, "token_seal", (const unsigned char *)VARDATA_ANY(pt),
                    VARSIZE_ANY_EXHDR(pt));
}

/* token_seal(plaintext bytea, ad text DEFAULT NULL) -> bytea */
Datum token_seal_bytea(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  bytea *pt = PG_GETARG_BYTEA_PP(0);
  return seal_datum(fcinfo, "token_seal", (const unsigned char *)VARDATA_ANY(pt),
                    VARSIZE_ANY_EXHDR(pt));
}

/*
** Open argument 0 into a new varlena (text or bytea: the same layout).
** Structure is checked first, so memory is only sized from a plausible
** length.
*/
static struct varlena *open_datum(FunctionCallInfo fcinfo, const char *fn,
                                  uint32_t *key_id) {
  bytea *sealed = PG_GETARG_BYTEA_PP(0);
  const unsigned char *p = (const unsigned char *)VARDATA_ANY(sealed);
  size_t n = VARSIZE_ANY_EXHDR(sealed);
  size_t n_ad;
  const unsigned char *ad = arg_ad(fcinfo, fn, &n_ad);
  *key_id = 0;
  seal_status s = seal_key_id(p, n, key_id);
  if (s == SEAL_OK && n - SEAL_OVERHEAD > SEAL_MAX_PLAINTEXT) s = SEAL_TOO_BIG;
  if (s != SEAL_OK) seal_fail(fn, s, p, n, *key_id);
  keyring *kr = oauthdb_keyring(fn);
  size_t len = n - SEAL_OVERHEAD;
  struct varlena *out = palloc(VARHDRSZ + len);
  SET_VARSIZE(out, VARHDRSZ + len);
  s = seal_open(kr, p, n, ad, n_ad, (unsigned char *)VARDATA(out), key_id);
  if (s != SEAL_OK) {
    sodium_memzero(VARDATA(out), len);
    pfree(out);
    seal_fail(fn, s, p, n, *key_id);
  }
  return out;
}

/* token_open(sealed bytea, ad text DEFAULT NULL) -> text */
Datum token_open_text(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  uint32_t key_id;
  struct varlena *out = open_datum(fcinfo, "token_open", &key_id);
  const unsigned char *pt = (const unsigned char *)VARDATA(out);
  size_t n = VARSIZE(out) - VARHDRSZ;
  /* The core's rule (valid UTF-8, no NUL), and the database's encoding. */
  if (!plaintext_is_text(pt, n) ||
      (GetDatabaseEncoding() != PG_UTF8 &&
       !pg_verifymbstr((const char *)pt, (int)n, true))) {
    sodium_memzero(VARDATA(out), n);
    pfree(out);
    oauthdb_error(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                  "token_open: the plaintext is not text (a NUL byte or "
                  "invalid UTF-8); open it with token_open_bytea");
  }
  PG_RETURN_TEXT_P((text *)out);
}

/* token_open_bytea(sealed bytea, ad text DEFAULT NULL) -> bytea */
Datum token_open_bytea(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  uint32_t key_id;
  PG_RETURN_BYTEA_P((bytea *)open_datum(fcinfo, "token_open_bytea", &key_id));
}

/*
** token_reseal(sealed bytea, ad text DEFAULT NULL) -> bytea: the same
** plaintext under the primary key. A value already under the primary comes
** back unchanged after its tag is checked, so a rotation can be rerun.
*/
Datum token_reseal(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  const char *fn = "token_reseal";
  bytea *sealed = PG_GETARG_BYTEA_PP(0);
  const unsigned char *p = (const unsigned char *)VARDATA_ANY(sealed);
  size_t n = VARSIZE_ANY_EXHDR(sealed);
  size_t n_ad;
  const unsigned char *ad = arg_ad(fcinfo, fn, &n_ad);
  uint32_t key_id = 0;
  seal_status s = seal_key_id(p, n, &key_id);
  if (s == SEAL_OK && n - SEAL_OVERHEAD > SEAL_MAX_PLAINTEXT) s = SEAL_TOO_BIG;
  if (s != SEAL_OK) seal_fail(fn, s, p, n, key_id);
  keyring *kr = oauthdb_keyring(fn);
  size_t len = n - SEAL_OVERHEAD;
  /* Everything that can raise an error is done before the plaintext
     exists, so no error path leaves it in the scratch. */
  bytea *out = palloc(VARHDRSZ + n);
  SET_VARSIZE(out, VARHDRSZ + n);
  unsigned char *plain = keyring_scratch(kr, len + 1);
  if (!plain) oauthdb_error(ERRCODE_OUT_OF_MEMORY, "out of memory");
  s = seal_open(kr, p, n, ad, n_ad, plain, &key_id);
  if (s != SEAL_OK) seal_fail(fn, s, p, n, key_id);  /* libsodium zeroed it */
  const keyring_key *primary = keyring_primary(kr);
  if (primary->id == key_id) {
    sodium_memzero(plain, len);
    memcpy(VARDATA(out), p, n);
    PG_RETURN_BYTEA_P(out);
  }
  s = seal_with_key(primary, plain, len, ad, n_ad, (unsigned char *)VARDATA(out));
  sodium_memzero(plain, len);
  if (s != SEAL_OK) seal_fail(fn, s, NULL, 0, 0);
  PG_RETURN_BYTEA_P(out);
}

/* token_key_id(sealed bytea) -> '9c0e51d2'. The header only: no keyring. */
Datum token_key_id(PG_FUNCTION_ARGS) {
  bytea *sealed = PG_GETARG_BYTEA_PP(0);
  const unsigned char *p = (const unsigned char *)VARDATA_ANY(sealed);
  size_t n = VARSIZE_ANY_EXHDR(sealed);
  uint32_t id = 0;
  seal_status s = seal_key_id(p, n, &id);
  if (s != SEAL_OK) seal_fail("token_key_id", s, p, n, id);
  char hex[9];
  snprintf(hex, sizeof hex, "%08x", (unsigned)id);
  PG_RETURN_TEXT_P(cstring_to_text_with_len(hex, 8));
}

/* token_fingerprint(text or bytea) -> 16-byte bytea (fingerprint.h). */
Datum token_fingerprint(PG_FUNCTION_ARGS) {
  struct varlena *in = PG_GETARG_VARLENA_PP(0);
  size_t n = VARSIZE_ANY_EXHDR(in);
  if (n > SEAL_MAX_PLAINTEXT)
    oauthdb_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                  "token_fingerprint: input is %lld bytes; the limit is 16777216 (16 MiB)",
                  (long long)n);
  keyring *kr = oauthdb_keyring("token_fingerprint");
  bytea *out = palloc(VARHDRSZ + FINGERPRINT_BYTES);
  SET_VARSIZE(out, VARHDRSZ + FINGERPRINT_BYTES);
  if (fingerprint_token(kr, (const unsigned char *)VARDATA_ANY(in), n,
                        (unsigned char *)VARDATA(out)) != 0)
    oauthdb_error(ERRCODE_OUT_OF_MEMORY, "out of memory");
  PG_RETURN_BYTEA_P(out);
}

/*
** token_ad(table, column, id) -> 'table.column:id' (associated_data.h), the
** same core function as SQLite's token_ad, the vault and the exporter. The
** id is text or a uuid (every id column here is one; the SQL script
** declares both): a uuid's text is the lower-case form a dev database's ids
** have, so the associated data is the same on both engines.
*/
Datum token_ad(PG_FUNCTION_ARGS) {
  char *table = text_to_cstring(PG_GETARG_TEXT_PP(0));
  char *column = text_to_cstring(PG_GETARG_TEXT_PP(1));
  const char *id;
  size_t n_id;
  if (get_fn_expr_argtype(fcinfo->flinfo, 2) == UUIDOID) {
    id = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(2)));
    n_id = strlen(id);
  } else {
    text *t = PG_GETARG_TEXT_PP(2);
    id = VARDATA_ANY(t);
    n_id = VARSIZE_ANY_EXHDR(t);
  }
  size_t n = associated_data(NULL, 0, table, column, id, n_id);
  text *out = palloc(VARHDRSZ + n + 1);
  associated_data(VARDATA(out), n + 1, table, column, id, n_id);
  SET_VARSIZE(out, VARHDRSZ + n);
  PG_RETURN_TEXT_P(out);
}

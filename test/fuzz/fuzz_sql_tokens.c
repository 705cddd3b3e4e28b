/*
** fuzz_sql_tokens: the token functions from SQL, fed outside bytes.
**
** The extension's objects are linked in and registered with
** sqlite3_auto_extension, so this is the real SQL surface of ext/sqlite/tokens.c
** over one in-memory connection whose keyring is the FORMAT.md vector keys.
**
** Input layout:
**
**   byte 0      bits 0-1: the value's type: BLOB (0, 2), TEXT (1), or a
**               scalar (3: INTEGER, or REAL if bit 4, or NULL if no bytes)
**               bits 2-3: the AD: absent (0: the one-argument forms), TEXT
**               (1), BLOB (2), NULL (3), or INTEGER 42 (3 with bit 5)
**   bytes 1-2   n_ad, big-endian; then n_ad bytes of AD
**   the rest    the value
**
** Each input goes through token_key_id, token_open, token_reseal,
** token_fingerprint and token_seal followed by token_open. Results are
** checked against the C functions of ext/core/seal.h called directly; a failed
** open or reseal must give the same message when the AD's bytes and
** everything of the value after its 6 header bytes are replaced by others
** of the same length: messages may name structure, never data (docs/SQL.md,
** token_open; docs/FORMAT.md). token_open returns TEXT exactly when the plaintext is valid
** UTF-8 without NUL, judged by fuzz_is_text, a second implementation.
*/
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "keyring.h"
#include "seal.h"

#define TARGET "fuzz_sql_tokens"

int sqlite3_oauthdb_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);

static sqlite3 *db;
static keyring *ref;   /* the same keyring, for calling ext/core/seal.h directly */

enum { Q_KEY_ID, Q_OPEN1, Q_OPEN2, Q_RESEAL1, Q_RESEAL2, Q_FP, Q_SEAL1, Q_SEAL2, Q_COUNT };
static const char *const query_sql[Q_COUNT] = {
    "SELECT token_key_id(?1)",   "SELECT token_open(?1)",
    "SELECT token_open(?1, ?2)", "SELECT token_reseal(?1)",
    "SELECT token_reseal(?1, ?2)", "SELECT token_fingerprint(?1)",
    "SELECT token_seal(?1)",     "SELECT token_seal(?1, ?2)",
};
static sqlite3_stmt *query[Q_COUNT];

/* An SQL argument as the input describes it. */
typedef struct arg {
  int type;            /* SQLITE_BLOB, _TEXT, _INTEGER, _FLOAT, _NULL; 0: absent */
  const uint8_t *p;
  size_t n;
  sqlite3_int64 i;
  double r;
} arg;

/* A result: a value (type and bytes) or an error message. */
typedef struct result {
  int error;
  int type;
  unsigned char *p;    /* malloc'd copy of the bytes, or the message */
  size_t n;
} result;

static void result_free(result *r) {
  if (r->p) sodium_memzero(r->p, r->n);
  free(r->p);
  memset(r, 0, sizeof *r);
}

static void bind_arg(sqlite3_stmt *st, int i, const arg *a) {
  switch (a->type) {
  case SQLITE_BLOB: sqlite3_bind_blob64(st, i, a->p, a->n, SQLITE_TRANSIENT); break;
  case SQLITE_TEXT: sqlite3_bind_text64(st, i, (const char *)a->p, a->n, SQLITE_TRANSIENT, SQLITE_UTF8); break;
  case SQLITE_INTEGER: sqlite3_bind_int64(st, i, a->i); break;
  case SQLITE_FLOAT: sqlite3_bind_double(st, i, a->r); break;
  default: sqlite3_bind_null(st, i); break;
  }
}

static unsigned char *dup_bytes(const void *p, size_t n) {
  unsigned char *d = malloc(n + 1);
  if (!d) abort();
  if (n) memcpy(d, p, n);
  d[n] = 0;
  return d;
}

/* Run query q (the one- or two-argument form, as ad says) on v and ad. */
static result run(int q1, int q2, const arg *v, const arg *ad) {
  int q = ad->type ? q2 : q1;
  sqlite3_stmt *st = query[q];
  result r = {0, 0, NULL, 0};
  bind_arg(st, 1, v);
  if (ad->type) bind_arg(st, 2, ad);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    r.type = sqlite3_column_type(st, 0);
    const void *p = r.type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, 0)
                                          : sqlite3_column_blob(st, 0);
    r.n = (size_t)sqlite3_column_bytes(st, 0);
    r.p = dup_bytes(p, r.n);
    if (sqlite3_step(st) != SQLITE_DONE) fuzz_fail(TARGET, "%s: a second row", query_sql[q]);
  } else {
    r.error = 1;
    const char *msg = sqlite3_errmsg(db);
    r.n = strlen(msg);
    r.p = dup_bytes(msg, r.n);
    if (rc == SQLITE_DONE) fuzz_fail(TARGET, "%s: no row", query_sql[q]);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return r;
}

/* The same argument with its data bytes replaced: what a message must not tell. */
static arg redacted(const arg *a, size_t keep, uint8_t **buf) {
  arg b = *a;
  *buf = NULL;
  if ((a->type == SQLITE_BLOB || a->type == SQLITE_TEXT) && a->n > keep) {
    *buf = malloc(a->n);
    if (!*buf) abort();
    memcpy(*buf, a->p, keep);
    memset(*buf + keep, 'Q', a->n - keep);  /* 'Q' keeps TEXT valid UTF-8 */
    b.p = *buf;
  }
  return b;
}

/* A failed call must fail with the same words when only data changes. */
static void check_message_names_no_data(int q1, int q2, const arg *v, const arg *ad,
                                        const result *first) {
  uint8_t *vb, *adb;
  arg v2 = redacted(v, SEAL_HEADER_BYTES, &vb), ad2 = redacted(ad, 0, &adb);
  result again = run(q1, q2, &v2, &ad2);
  if (!again.error || again.n != first->n || memcmp(again.p, first->p, first->n) != 0)
    fuzz_fail(TARGET, "%s: the message depends on data bytes: \"%s\" vs \"%s\"",
              query_sql[q1], (const char *)first->p,
              again.error ? (const char *)again.p : "(no error)");
  result_free(&again);
  free(vb);
  free(adb);
}

/* After "fn: ", the part of a message shared by token_open and token_reseal. */
static const char *after_name(const result *r) {
  const char *colon = strstr((const char *)r->p, ": ");
  return colon ? colon + 2 : (const char *)r->p;
}

static int is_bytes(const arg *a) { return a->type == SQLITE_BLOB || a->type == SQLITE_TEXT; }
static int ad_ok(const arg *ad) { return ad->type != SQLITE_INTEGER; }

static void check_key_id(const arg *v) {
  result r = run(Q_KEY_ID, Q_KEY_ID, v, &(arg){0});
  if (v->type == SQLITE_NULL) {
    if (r.error || r.type != SQLITE_NULL) fuzz_fail(TARGET, "token_key_id(NULL) is not NULL");
  } else if (v->type != SQLITE_BLOB) {
    if (!r.error) fuzz_fail(TARGET, "token_key_id took a non-BLOB");
  } else {
    uint32_t id = 0;
    seal_status s = seal_key_id(v->p, v->n, &id);
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", id);
    if (s == SEAL_OK && (r.error || r.type != SQLITE_TEXT || r.n != 8 || memcmp(r.p, hex, 8)))
      fuzz_fail(TARGET, "token_key_id: want %s", hex);
    if (s != SEAL_OK && !r.error)
      fuzz_fail(TARGET, "token_key_id answered for a value seal_key_id refuses (%s)",
                seal_status_text(s));
  }
  result_free(&r);
}

/* token_open and token_reseal of v; returns token_open's result. */
static void check_open_and_reseal(const arg *v, const arg *ad) {
  result o = run(Q_OPEN1, Q_OPEN2, v, ad);
  result rs = run(Q_RESEAL1, Q_RESEAL2, v, ad);
  const uint8_t *ad_p = is_bytes(ad) ? ad->p : NULL;
  size_t ad_n = is_bytes(ad) ? ad->n : 0;

  if (v->type == SQLITE_NULL && ad_ok(ad)) {
    if (o.error || o.type != SQLITE_NULL || rs.error || rs.type != SQLITE_NULL)
      fuzz_fail(TARGET, "NULL in did not give NULL out");
  } else if (v->type != SQLITE_BLOB || !ad_ok(ad)) {
    if (v->type != SQLITE_NULL && (!o.error || !rs.error))
      fuzz_fail(TARGET, "token_open/token_reseal took a %s value or %s AD",
                v->type == SQLITE_BLOB ? "BLOB" : "non-BLOB", ad_ok(ad) ? "good" : "INTEGER");
  } else {
    size_t n_pt = v->n >= SEAL_OVERHEAD ? v->n - SEAL_OVERHEAD : 0;
    unsigned char *pt = malloc(n_pt + 1);
    if (!pt) abort();
    uint32_t id = 0;
    seal_status s = seal_open(ref, v->p, v->n, ad_p, ad_n, pt, &id);
    if (s == SEAL_OK) {
      int want = fuzz_is_text(pt, n_pt) ? SQLITE_TEXT : SQLITE_BLOB;
      if (o.error) fuzz_fail(TARGET, "token_open failed where seal_open opened: %s", o.p);
      if (o.type != want || o.n != n_pt || (n_pt && memcmp(o.p, pt, n_pt)))
        fuzz_fail(TARGET, "token_open gave other bytes or type %d (want %d)", o.type, want);
      if (rs.error || rs.type != SQLITE_BLOB) fuzz_fail(TARGET, "token_reseal failed");
      if (id == FUZZ_PRIMARY_ID) {
        if (rs.n != v->n || memcmp(rs.p, v->p, v->n))
          fuzz_fail(TARGET, "token_reseal changed a value already under the primary");
      } else {
        unsigned char *pt2 = malloc(n_pt + 1);
        uint32_t id2 = 0;
        if (!pt2) abort();
        if (rs.n != v->n || seal_open(ref, rs.p, rs.n, ad_p, ad_n, pt2, &id2) != SEAL_OK ||
            id2 != FUZZ_PRIMARY_ID || (n_pt && memcmp(pt2, pt, n_pt)))
          fuzz_fail(TARGET, "token_reseal's value does not open to the same plaintext "
                            "under the primary");
        sodium_memzero(pt2, n_pt + 1);
        free(pt2);
      }
    } else {
      if (!o.error) fuzz_fail(TARGET, "token_open opened what seal_open refuses (%s)",
                              seal_status_text(s));
      if (!rs.error) fuzz_fail(TARGET, "token_reseal resealed what seal_open refuses");
    }
    sodium_memzero(pt, n_pt + 1);
    free(pt);
  }
  if (o.error) {
    check_message_names_no_data(Q_OPEN1, Q_OPEN2, v, ad, &o);
    if (!rs.error || strcmp(after_name(&o), after_name(&rs)) != 0)
      fuzz_fail(TARGET, "token_open says \"%s\", token_reseal \"%s\"", o.p,
                rs.error ? (const char *)rs.p : "(no error)");
  }
  if (rs.error) check_message_names_no_data(Q_RESEAL1, Q_RESEAL2, v, ad, &rs);
  result_free(&o);
  result_free(&rs);
}

static void check_fingerprint(const arg *v) {
  result r = run(Q_FP, Q_FP, v, &(arg){0});
  if (v->type == SQLITE_NULL) {
    if (r.error || r.type != SQLITE_NULL) fuzz_fail(TARGET, "token_fingerprint(NULL) is not NULL");
  } else if (!is_bytes(v)) {
    if (!r.error) fuzz_fail(TARGET, "token_fingerprint took a number");
  } else {
    /* docs/FORMAT.md, Fingerprints, computed the long way round. */
    unsigned char subkey[32], fp[16];
    crypto_kdf_derive_from_key(subkey, sizeof subkey, 1, "oauthfp1",
                               keyring_primary(ref)->key);
    crypto_generichash(fp, sizeof fp, v->p, v->n, subkey, sizeof subkey);
    sodium_memzero(subkey, sizeof subkey);
    if (r.error || r.type != SQLITE_BLOB || r.n != 16 || memcmp(r.p, fp, 16))
      fuzz_fail(TARGET, "token_fingerprint differs from FORMAT.md's recipe");
  }
  result_free(&r);
}

static void check_seal_round_trip(const arg *v, const arg *ad) {
  result s = run(Q_SEAL1, Q_SEAL2, v, ad);
  if (!is_bytes(v) || !ad_ok(ad)) {
    if (v->type != SQLITE_NULL && !s.error) fuzz_fail(TARGET, "token_seal took bad arguments");
    result_free(&s);
    return;
  }
  if (s.error || s.type != SQLITE_BLOB || s.n != seal_sealed_len(v->n))
    fuzz_fail(TARGET, "token_seal of %zu bytes: %s", v->n, s.error ? (char *)s.p : "wrong size");
  uint32_t id = 0;
  if (seal_key_id(s.p, s.n, &id) != SEAL_OK || id != FUZZ_PRIMARY_ID)
    fuzz_fail(TARGET, "token_seal did not use the primary key");
  arg sealed = {SQLITE_BLOB, s.p, s.n, 0, 0};
  result o = run(Q_OPEN1, Q_OPEN2, &sealed, ad);
  int want = fuzz_is_text(v->p, v->n) ? SQLITE_TEXT : SQLITE_BLOB;
  if (o.error || o.type != want || o.n != v->n || (v->n && memcmp(o.p, v->p, v->n)))
    fuzz_fail(TARGET, "token_open(token_seal(x)) is not x: %s",
              o.error ? (char *)o.p : "other bytes or type");
  result_free(&o);
  result_free(&s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  if (sodium_init() < 0) abort();
  const char *path = fuzz_write_file("keyring", fuzz_test_keyring_text,
                                     strlen(fuzz_test_keyring_text));
  char *err = NULL;
  ref = keyring_load(path, &err);
  if (!ref) fuzz_fail(TARGET, "test keyring refused: %s", err ? err : "?");
  /* void (*)(void) is the type sqlite3_auto_extension takes for any entry point. */
  sqlite3_auto_extension((void (*)(void))sqlite3_oauthdb_init);
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) fuzz_fail(TARGET, "open: %s", sqlite3_errmsg(db));
  char *sql = sqlite3_mprintf("SELECT oauthdb_keyring(%Q)", path);
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
    fuzz_fail(TARGET, "oauthdb_keyring: %s", err);
  sqlite3_free(sql);
  for (int q = 0; q < Q_COUNT; q++)
    if (sqlite3_prepare_v2(db, query_sql[q], -1, &query[q], NULL) != SQLITE_OK)
      fuzz_fail(TARGET, "prepare %s: %s", query_sql[q], sqlite3_errmsg(db));
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  uint8_t b0 = fuzz_byte(&in);
  arg ad = {0, NULL, 0, 0, 0};
  ad.p = fuzz_take(&in, fuzz_u16(&in), &ad.n);
  switch ((b0 >> 2) & 3) {
  case 0: ad.type = 0; break;
  case 1: ad.type = SQLITE_TEXT; break;
  case 2: ad.type = SQLITE_BLOB; break;
  default:
    ad.type = b0 & 0x20 ? SQLITE_INTEGER : SQLITE_NULL;
    ad.i = 42;
    break;
  }
  arg v = {0, in.p, in.n, 0, 0};
  switch (b0 & 3) {
  case 1: v.type = SQLITE_TEXT; break;
  case 3:
    if (in.n == 0) {
      v.type = SQLITE_NULL;
    } else if (b0 & 0x10) {
      uint64_t bits = fuzz_u64(&in);
      memcpy(&v.r, &bits, sizeof v.r);
      v.type = v.r == v.r ? SQLITE_FLOAT : SQLITE_NULL;  /* SQLite makes NaN NULL */
    } else {
      v.type = SQLITE_INTEGER;
      v.i = (sqlite3_int64)fuzz_u64(&in);
    }
    break;
  default: v.type = SQLITE_BLOB; break;
  }
  check_key_id(&v);
  check_open_and_reseal(&v, &ad);
  check_fingerprint(&v);
  check_seal_round_trip(&v, &ad);
  return 0;
}

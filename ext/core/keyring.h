/*
** keyring.h: the keyring file (docs/FORMAT.md, "Keyring").
**
** Pure C over libsodium and libc: no SQLite. Linked into the extension, the
** exporter and the shell tool alike.
*/
#ifndef OAUTHDB_KEYRING_H
#define OAUTHDB_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#define KEYRING_KEY_BYTES 32
#define KEYRING_MAX_KEYS 1024   /* a longer keyring file is refused */

typedef enum key_status {
  KEY_PRIMARY = 1,  /* seals and opens; exactly one per keyring */
  KEY_ACTIVE = 2,   /* opens only */
  KEY_RETIRED = 3   /* opens nothing; kept so an open can name the id */
} key_status;

typedef struct keyring_key {
  uint32_t id;
  key_status status;
  unsigned char *key;   /* KEYRING_KEY_BYTES in sodium_malloc'd memory */
} keyring_key;

typedef struct keyring {
  int n_keys;
  keyring_key *keys;    /* sodium_malloc'd */
} keyring;

/*
** Load PATH after checking it is a regular file owned by the effective user
** with no group or other permission bits. On failure returns NULL and sets
** *err to a malloc'd message naming the file and the rule that failed (and
** the fix), never any key material. The caller frees *err with free().
*/
keyring *keyring_load(const char *path, char **err);

/*
** The file's text as keyring_load_text read it, for an editor (`oauthdb
** keygen` and `oauthdb rotate`) that rewrites status words and keeps the
** user's comments and layout. One parser: the offsets come from the same
** pass that loaded the keys, so what is edited is what was checked.
*/
typedef struct keyring_line {
  size_t status_off, status_len;  /* the status word, in bytes[] */
} keyring_line;

typedef struct keyring_text {
  unsigned char *bytes;  /* the whole file, sodium_malloc'd (it holds keys) */
  size_t len;
  size_t body;           /* 3 after a UTF-8 byte order mark, else 0 */
  keyring_line *lines;   /* one per key, in keyring order (kr->keys[i]) */
} keyring_text;

/*
** keyring_load, also handing back the text it parsed (TEXT NULL: exactly
** keyring_load). On failure TEXT is zeroed. Free with keyring_text_free.
*/
keyring *keyring_load_text(const char *path, keyring_text *text, char **err);

/* Zero and free the text; the struct is left zeroed. NULL is fine. */
void keyring_text_free(keyring_text *text);

/*
** Replace (CREATE 0) or create (CREATE 1, never clobbering) the keyring at
** PATH with TEXT, atomically, mode 0600, after checking that TEXT loads
** (keyring_write.c). 0, or -1 with *err set (malloc'd; NULL when out of
** memory); on failure the file on disk is unchanged.
*/
int keyring_write(const char *path, const unsigned char *text, size_t len, int create,
                  char **err);

/* Zero and free. NULL is fine. */
void keyring_free(keyring *kr);

/* The key with this id, or NULL. */
const keyring_key *keyring_find(const keyring *kr, uint32_t id);

/* The one primary key (keyring_load guarantees there is exactly one). */
const keyring_key *keyring_primary(const keyring *kr);

const char *key_status_name(key_status s);

/*
** A locked buffer (sodium_malloc'd: mlock'd, out of core dumps) of at least
** n bytes, owned by kr and reused by later calls, for plaintext on its way
** in or out. It exists because one sodium_malloc costs tens of
** microseconds, more than sealing a token. The caller zeroes what it wrote
** (sodium_memzero) before it returns; keyring_free zeroes and frees the
** buffer. A later call may move it. NULL when out of memory. Not for
** concurrent use: like the keyring's owner (one connection), one at a time.
*/
unsigned char *keyring_scratch(keyring *kr, size_t n);

#endif /* OAUTHDB_KEYRING_H */

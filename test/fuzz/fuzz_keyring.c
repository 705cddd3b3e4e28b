/*
** fuzz_keyring: keyring file text -> keyring_load (ext/core/keyring.h).
**
** The input is the whole file. It is written to a 0600 file in a private
** temp directory (fuzz_util.c), never into the corpus, and loaded as a
** keyring. The bytes are made up: a "key" here is fuzzer noise or a
** published test vector.
**
** Loaded: 1 to KEYRING_MAX_KEYS keys, exactly one primary (and
** keyring_primary finds it), unique ids that keyring_find finds, no
** all-zero key, and every key line of the file accounted for (a file with
** a line that is not a key, a comment or blank is refused whole). Each
** key's id and bytes must be spelled in the file (as hex, any case).
** The scratch buffer gives as many bytes as asked.
**
** Refused: a message that starts "keyring PATH: " and repeats nothing of
** the file: no run of 16 non-blank bytes of it, so no key, whole or cut,
** and no text pasted into the wrong column, reaches a log.
*/
#define _GNU_SOURCE  /* memmem */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "keyring.h"

#define TARGET "fuzz_keyring"
#define ECHO_RUN 16   /* the longest run of file bytes a message may repeat, + 1 */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  if (sodium_init() < 0) abort();
  fuzz_private_dir();
  return 0;
}

static int blank(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/*
** Lines with something other than blanks before an optional # comment,
** after a UTF-8 byte order mark at the very start (FORMAT.md allows one).
*/
static int key_lines(const uint8_t *s, size_t n) {
  int count = 0, seen = 0, in_comment = 0;
  size_t start = n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
  for (size_t i = start; i <= n; i++) {
    if (i == n || s[i] == '\n') {
      count += seen;
      seen = in_comment = 0;
    } else if (!in_comment && s[i] == '#') {
      in_comment = 1;
    } else if (!in_comment && !blank(s[i])) {
      seen = 1;
    }
  }
  return count;
}

/* Is hex (lower case, n bytes) in s[0..len), ignoring case? */
static int spelled(const uint8_t *s, size_t len, const char *hex, size_t n) {
  for (size_t i = 0; i + n <= len; i++) {
    size_t k = 0;
    while (k < n && tolower(s[i + k]) == hex[k]) k++;
    if (k == n) return 1;
  }
  return 0;
}

static void check_loaded(keyring *kr, const uint8_t *data, size_t size) {
  if (kr->n_keys < 1 || kr->n_keys > KEYRING_MAX_KEYS)
    fuzz_fail(TARGET, "loaded %d keys", kr->n_keys);
  if (kr->n_keys != key_lines(data, size))
    fuzz_fail(TARGET, "loaded %d keys from %d key lines", kr->n_keys, key_lines(data, size));
  int primaries = 0;
  for (int i = 0; i < kr->n_keys; i++) {
    const keyring_key *k = &kr->keys[i];
    if (k->status == KEY_PRIMARY) {
      primaries++;
      if (keyring_primary(kr) != k) fuzz_fail(TARGET, "keyring_primary misses key %d", i);
    } else if (k->status != KEY_ACTIVE && k->status != KEY_RETIRED) {
      fuzz_fail(TARGET, "key %d has status %d", i, (int)k->status);
    }
    if (keyring_find(kr, k->id) != k) fuzz_fail(TARGET, "id %08x not unique", k->id);
    if (sodium_is_zero(k->key, KEYRING_KEY_BYTES)) fuzz_fail(TARGET, "all-zero key loaded");
    char id_hex[9], key_hex[2 * KEYRING_KEY_BYTES + 1];
    snprintf(id_hex, sizeof id_hex, "%08x", k->id);
    sodium_bin2hex(key_hex, sizeof key_hex, k->key, KEYRING_KEY_BYTES);
    if (!spelled(data, size, id_hex, 8) || !spelled(data, size, key_hex, 64))
      fuzz_fail(TARGET, "key %d (id %s) is not spelled in the file", i, id_hex);
    sodium_memzero(key_hex, sizeof key_hex);
  }
  if (primaries != 1) fuzz_fail(TARGET, "%d primary keys", primaries);

  /* The scratch buffer: as big as asked, whatever came before. */
  size_t sizes[] = {size, 1, (size_t)kr->n_keys * 4096 + 7, 0};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    unsigned char *p = keyring_scratch(kr, sizes[i]);
    if (!p) fuzz_fail(TARGET, "keyring_scratch(%zu) failed", sizes[i]);
    memset(p, 0x5a, sizes[i]);
    sodium_memzero(p, sizes[i]);
  }
}

static void check_refused(const char *err, const char *path, const uint8_t *data, size_t size) {
  if (!err) return;  /* out of memory: nothing to say */
  char prefix[4200];
  snprintf(prefix, sizeof prefix, "keyring %s: ", path);
  if (strncmp(err, prefix, strlen(prefix)) != 0)
    fuzz_fail(TARGET, "message does not start with the file: %s", err);
  /* The path is ours, not the file's: take every copy out before looking. */
  char *msg = strdup(err), *at;
  if (!msg) abort();
  while ((at = strstr(msg, path))) memset(at, ' ', strlen(path));
  size_t m = strlen(msg);
  for (size_t i = 0; i + ECHO_RUN <= size; i++) {
    size_t k = 0;
    while (k < ECHO_RUN && !blank(data[i + k])) k++;
    if (k < ECHO_RUN) {
      i += k;  /* no run can start before the blank */
      continue;
    }
    if (memmem(msg, m, data + i, ECHO_RUN))
      fuzz_fail(TARGET, "message repeats file bytes at offset %zu: %s", i, msg);
  }
  free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *written = fuzz_write_file("keyring", data, size);
  char path[4096];
  snprintf(path, sizeof path, "%s", written);
  char *err = NULL;
  keyring *kr = keyring_load(path, &err);
  if (kr) {
    if (err) fuzz_fail(TARGET, "loaded, and also an error: %s", err);
    check_loaded(kr, data, size);
    keyring_free(kr);
  } else {
    check_refused(err, path, data, size);
  }
  free(err);
  return 0;
}

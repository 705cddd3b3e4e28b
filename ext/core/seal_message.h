/*
** seal_message.h: why a seal or an open failed, in the same words on both
** engines ("token_open: authentication failed", "token_open: unknown key id
** 9c0e51d2 (not in keyring /path; was it rotated out?)", ...), and whether
** opened plaintext can be handed back as text.
**
** Only structural facts about a value are named (its length, version,
** algorithm, key id), never plaintext, associated data or key bytes.
** Pure C: no engine headers.
*/
#ifndef OAUTHDB_SEAL_MESSAGE_H
#define OAUTHDB_SEAL_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include "seal.h"

/* Enough for every message with a keyring path of up to 4 KiB. */
#define SEAL_MESSAGE_MAX 4352

/*
** "FN: ..." for status S into out[0..cap) (truncated if need be). SEALED
** and N are the value that did not open (NULL and 0 when sealing); PATH is
** the keyring file, NULL for "?".
*/
void seal_message(char *out, size_t cap, const char *fn, seal_status s,
                  const unsigned char *sealed, size_t n, uint32_t key_id,
                  const char *path);

/*
** Valid UTF-8 (RFC 3629: no overlong forms, surrogates or code points
** above U+10FFFF) without NUL bytes: what can be returned as text. A NUL
** would cut the string short for every C client, so such plaintext is a
** BLOB (SQLite) or only opens as bytea (PostgreSQL).
*/
int plaintext_is_text(const unsigned char *s, size_t n);

#endif /* OAUTHDB_SEAL_MESSAGE_H */

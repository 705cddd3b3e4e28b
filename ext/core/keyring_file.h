/*
** keyring_file.h: a keyring that follows its file, for both engines.
**
** `oauthdb rotate` (another process) promotes a new key, reseals, then
** retires the old one. A connection (SQLite) or backend (PostgreSQL) that
** kept sealing with the keys it loaded at first would go on writing values
** under a key the file now calls retired, which nothing else opens. So the
** file is compared with the stamp it had when loaded at most once a second
** (time() is a vDSO read; a stat per seal would cost a tenth of the seal),
** and reloaded when it changed. The rotation waits longer than that after
** promoting before it checks that no value uses the old key. A file that
** changed and no longer loads is an error, not a reason to keep the old
** keys quietly: keyring_file_current fails closed until it loads again.
**
** Pure C over libc and libsodium: no engine headers. Messages are malloc'd
** (free()); they name the file and the rule, never key material.
*/
#ifndef OAUTHDB_KEYRING_FILE_H
#define OAUTHDB_KEYRING_FILE_H

#include "keyring.h"

/* What identifies a version of the keyring file; all 0 when unreadable. */
typedef struct keyring_stamp {
  unsigned long long dev, ino, size;
  long long mtime_sec, mtime_nsec, ctime_sec, ctime_nsec;
} keyring_stamp;

typedef struct keyring_file {
  keyring *keys;           /* NULL until loaded, or after a failed reload */
  char *path;              /* malloc'd; where keys came from, for messages */
  keyring_stamp stamp;     /* the file as it was when keys were loaded */
  long long checked_at;    /* time() of the last comparison */
} keyring_file;

/*
** Load PATH (keyring_load's checks), replacing and zeroing what kf held.
** 0, or -1 with *err set (malloc'd; NULL when out of memory); on failure kf
** is unchanged.
*/
int keyring_file_load(keyring_file *kf, const char *path, char **err);

/*
** kf's keys, reloaded first when the file changed (checked at most once a
** second). NULL with *err set when a changed file does not load; then the
** old keys are dropped, and every call retries until the file loads.
** NULL with *err NULL when nothing was ever loaded.
*/
keyring *keyring_file_current(keyring_file *kf, char **err);

/* Zero and free the keys and the path; kf can be loaded again. */
void keyring_file_close(keyring_file *kf);

#endif /* OAUTHDB_KEYRING_FILE_H */

/*
** keyring_file.c: a keyring that follows its file (keyring_file.h).
*/
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "keyring_file.h"

static void stamp_of(const char *path, keyring_stamp *out) {
  struct stat st;
  memset(out, 0, sizeof *out);
  if (stat(path, &st) != 0) return;
  out->dev = (unsigned long long)st.st_dev;
  out->ino = (unsigned long long)st.st_ino;
  out->size = (unsigned long long)st.st_size;
  out->mtime_sec = (long long)st.st_mtim.tv_sec;
  out->mtime_nsec = (long long)st.st_mtim.tv_nsec;
  out->ctime_sec = (long long)st.st_ctim.tv_sec;
  out->ctime_nsec = (long long)st.st_ctim.tv_nsec;
}

int keyring_file_load(keyring_file *kf, const char *path, char **err) {
  *err = NULL;
  /*
  ** The stamp is taken before the load: if the file changes in between,
  ** the stamp is the older one and the next check loads again, never the
  ** other way round.
  */
  keyring_stamp stamp;
  stamp_of(path, &stamp);
  keyring *kr = keyring_load(path, err);
  if (!kr) return -1;
  char *copy = strdup(path);
  if (!copy) {
    keyring_free(kr);
    return -1;
  }
  keyring_free(kf->keys);
  free(kf->path);
  kf->keys = kr;
  kf->path = copy;
  kf->stamp = stamp;
  kf->checked_at = (long long)time(NULL);
  return 0;
}

keyring *keyring_file_current(keyring_file *kf, char **err) {
  *err = NULL;
  if (!kf->path) return NULL;
  long long now = (long long)time(NULL);
  if (kf->keys && now == kf->checked_at) return kf->keys;
  kf->checked_at = now;
  keyring_stamp stamp;
  stamp_of(kf->path, &stamp);
  if (kf->keys && memcmp(&stamp, &kf->stamp, sizeof stamp) == 0) return kf->keys;
  /* Changed, or a failed reload being retried from the same path. */
  char *path = strdup(kf->path);
  if (!path) return NULL;
  int rc = keyring_file_load(kf, path, err);
  free(path);
  if (rc != 0) {
    /* Fail closed, and keep failing until the file loads again. */
    keyring_free(kf->keys);
    kf->keys = NULL;
    return NULL;
  }
  return kf->keys;
}

void keyring_file_close(keyring_file *kf) {
  keyring_free(kf->keys);
  free(kf->path);
  memset(kf, 0, sizeof *kf);
}

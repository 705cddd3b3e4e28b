/*
** keyring_write.c: install a keyring file's new text atomically
** (keyring.h, keyring_write).
**
** Key material only ever goes to disk through here: a temporary file in the
** keyring's own directory (mkstemp: O_EXCL, mode 0600), fsync, checked by
** keyring_load (the one parser of the format), then renamed over the
** keyring (or, for a new keyring, link()ed to its name, which fails rather
** than clobber a file that appeared meanwhile), then the directory is
** fsynced. So a keyring on disk is always a whole, valid file in one state
** or the next, and a failure removes the temporary file. Temporary files a
** killed writer left behind are removed first: callers hold a lock that
** keeps a second writer out (oauthdb_tool_keys.c, keyring_lock).
**
** Pure C over libc and libsodium, like keyring.c. Messages name the file
** and the step, never the text.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "keyring.h"

static void write_err(char **err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  *err = n < 0 ? NULL : malloc((size_t)n + 1);
  if (!*err) return;
  va_start(ap, fmt);
  vsnprintf(*err, (size_t)n + 1, fmt, ap);
  va_end(ap);
}

static void remove_stale_temps(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
      char p[PATH_MAX];
      if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < sizeof p) unlink(p);
    }
  }
  closedir(d);
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

int keyring_write(const char *path, const unsigned char *text, size_t len, int create,
                  char **err) {
  *err = NULL;
  char dir[PATH_MAX], base[PATH_MAX], prefix[PATH_MAX], tmp[PATH_MAX];
  char *c1 = strdup(path), *c2 = strdup(path);
  if (!c1 || !c2) {
    free(c1);
    free(c2);
    write_err(err, "out of memory");
    return -1;
  }
  snprintf(dir, sizeof dir, "%s", dirname(c1));
  snprintf(base, sizeof base, "%s", basename(c2));
  free(c1);
  free(c2);
  if ((size_t)snprintf(prefix, sizeof prefix, ".%s.oauthdb-tmp-", base) >= sizeof prefix ||
      (size_t)snprintf(tmp, sizeof tmp, "%s/%sXXXXXX", dir, prefix) >= sizeof tmp) {
    write_err(err, "keyring path too long: %s", path);
    return -1;
  }
  remove_stale_temps(dir, prefix);
  int fd = mkstemp(tmp);  /* O_EXCL, mode 0600 */
  if (fd < 0) {
    write_err(err, "cannot create a temporary file in %s: %s", dir, strerror(errno));
    return -1;
  }
  const char *what = NULL;
  if (fchmod(fd, 0600) != 0) what = "chmod";
  else if (write_all(fd, text, len) != 0) what = "write";
  else if (fsync(fd) != 0) what = "fsync";
  int saved = errno;
  if (close(fd) != 0 && !what) {
    what = "close";
    saved = errno;
  }
  if (what) {
    write_err(err, "cannot %s %s: %s", what, tmp, strerror(saved));
    unlink(tmp);
    return -1;
  }
  /* Every reader must accept what is about to be installed. */
  char *load_err = NULL;
  keyring *check = keyring_load(tmp, &load_err);
  if (!check) {
    write_err(err, "refusing to write keyring %s: the new text does not load (%s)", path,
              load_err ? load_err : "out of memory");
    free(load_err);
    unlink(tmp);
    return -1;
  }
  keyring_free(check);
  if (create) {
    if (link(tmp, path) != 0) {
      saved = errno;
      unlink(tmp);
      write_err(err, "cannot create %s: %s", path, strerror(saved));
      return -1;
    }
    unlink(tmp);
  } else if (rename(tmp, path) != 0) {
    saved = errno;
    unlink(tmp);
    write_err(err, "cannot replace %s: %s", path, strerror(saved));
    return -1;
  }
  if (fsync_dir(dir) != 0) {
    write_err(err, "cannot fsync the directory of %s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

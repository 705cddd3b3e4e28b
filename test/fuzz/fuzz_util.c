/*
** fuzz_util.c: the fuzz targets' shared helpers (see fuzz_util.h).
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fuzz_util.h"

const char fuzz_test_keyring_text[] =
    "# docs/FORMAT.md test vector keys: published, never for real use\n"
    "9c0e51d2 5f1c3e8a9b2d4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8 primary\n"
    "0a77b3e0 a3e9d2c71b8f4e6a05d9c3b7e1f2a4d6c8b0e2f4a6c8d0e2f4b6a8c0d2e4f6a8 active\n"
    "e4d1c2b3 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0 active\n"
    "3f2a9b10 c5b8a1f4e2d3079618a4bf0e5d27c9e3a1b05f6d4c28e7193b6a0fd2e845c71b retired\n";

const char fuzz_prod_keyring_text[] =
    "# made up for the fuzzer: a production keyring with a key of its own\n"
    "7d3e9a01 93569b18aed2fcbcbfc8dfea6299c579b2ae186a6c1bba63661f2b3b7cba5a55 primary\n";

static char private_dir[4096];

/* Remove what fuzz_write_file wrote, then the directory (it has no subdirs). */
static void remove_private_dir(void) {
  DIR *d = opendir(private_dir);
  if (d) {
    struct dirent *e;
    char path[sizeof private_dir + 256];
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      snprintf(path, sizeof path, "%s/%s", private_dir, e->d_name);
      unlink(path);
    }
    closedir(d);
  }
  rmdir(private_dir);
}

const char *fuzz_private_dir(void) {
  if (private_dir[0]) return private_dir;
  /*
  ** $TMPDIR when set (the test suite sets its scratch directory), else
  ** tmpfs when there is one: a keyring file per input costs ten times more
  ** on a disk file system, which allocates and frees an inode each time.
  */
  const char *tmp = getenv("TMPDIR");
  struct stat st;
  if (!tmp || !*tmp)
    tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
              ? "/dev/shm" : "/tmp";
  snprintf(private_dir, sizeof private_dir, "%s/oauthdb-fuzz.XXXXXX", tmp);
  if (!mkdtemp(private_dir)) {  /* mkdtemp makes it 0700 */
    fprintf(stderr, "fuzz: mkdtemp %s: %s\n", private_dir, strerror(errno));
    abort();
  }
  atexit(remove_private_dir);
  return private_dir;
}

const char *fuzz_write_file(const char *name, const void *data, size_t n) {
  static char path[sizeof private_dir + 256];
  snprintf(path, sizeof path, "%s/%s", fuzz_private_dir(), name);
  /*
  ** A new file each time, not O_TRUNC: ext4 flushes a file truncated and
  ** rewritten to disk at close (auto_da_alloc), a millisecond per input.
  */
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  const unsigned char *p = data;
  while (fd >= 0 && n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) break;
    p += w;
    n -= (size_t)w;
  }
  if (fd < 0 || n > 0 || close(fd) != 0) {
    fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
    abort();
  }
  return path;
}

void fuzz_fail(const char *target, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /*
  ** Both streams: `make fuzz` may run a noisy target with stderr closed
  ** (-close_fd_mask=2), and the message must survive that.
  */
  fprintf(stdout, "%s: property broken: %s\n", target, msg);
  fflush(stdout);
  fprintf(stderr, "%s: property broken: %s\n", target, msg);
  abort();
}

uint8_t fuzz_byte(fuzz_in *in) {
  if (in->n == 0) return 0;
  in->n--;
  return *in->p++;
}

uint16_t fuzz_u16(fuzz_in *in) {
  uint16_t hi = fuzz_byte(in);
  return (uint16_t)(hi << 8 | fuzz_byte(in));
}

uint64_t fuzz_u64(fuzz_in *in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | fuzz_byte(in);
  return v;
}

const uint8_t *fuzz_take(fuzz_in *in, size_t len, size_t *got) {
  if (len > in->n) len = in->n;
  const uint8_t *p = in->p;
  in->p += len;
  in->n -= len;
  *got = len;
  return p;
}

/*
** Deliberately the plainest decoder: one byte at a time, every rule spelled
** out, so that it can judge the word-at-a-time code in ext/core/seal_message.c (plaintext_is_text).
*/
int fuzz_is_text(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c == 0) return 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1fu, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0fu, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07u, min = 0x10000;
    else return 0;
    if (n - i < len) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += len;
  }
  return 1;
}

/*
** rotate_vs_reseal.c: what `oauthdb rotate` costs over the one statement it
** replaces.
**
**   bench/run.sh build rotate_vs_reseal     # or, by hand:
**   cc -O2 -Iext bench/rotate_vs_reseal.c -o rr -lsqlite3 -lsodium
**   ./rr build/oauthdb.so                   # the tool is build/oauthdb
**
** Both sides start from a copy of the shared 1,000,000-token fixture
** (bench/token_fixture.h: 990,000 Google rows with an access and a refresh
** token, 10,000 Motion API keys: 1,990,000 sealed values), in a scratch
** directory next to it that is removed at the end, with the same settings
** (rollback journal, synchronous=FULL, secure_delete=ON, a 64 MiB cache):
**
**   rotate  the shell tool, timed from fork to exit: `oauthdb rotate a.db
**           --keyring K1`, K1 holding the fixture's key as primary. It
**           counts values per key, adds a key, reseals in batches of 5000
**           rows (its default), one transaction each, counts what is left,
**           writes the audit row, retires the old key, checkpoints.
**   reseal  the floor: one statement in one transaction on b.db, with a
**           keyring K2 that already has a new primary and the fixture's key
**           active (what rotate writes before it starts resealing):
**             UPDATE oauth_tokens SET
**               access_token = token_reseal(access_token, ...),
**               refresh_token = token_reseal(refresh_token, ...)
**
** Each side runs once (a second run would need two more 1M-row copies and
** would not fit the time budget); reseal runs first, so any page-cache
** advantage goes to the floor. Afterwards each database must have every
** value under one key, its new primary. The line `rotate_vs_reseal
** ratio=R` is rotate/reseal; the target is R <= 1.5.
*/
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "token_fixture.h"

static char scratch[PATH_MAX];

static void cleanup(void) {
  if (!scratch[0]) return;
  static const char *names[] = {"a.db", "a.db-journal", "a.db-wal", "a.db-shm", "b.db",
                                "b.db-journal", "b.db-wal", "b.db-shm", "k1", "k2",
                                "tool.out"};
  char p[PATH_MAX + 32];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", scratch, names[i]);
    unlink(p);
  }
  rmdir(scratch);
}

static void die(const char *what) {
  fprintf(stderr, "rotate_vs_reseal: %s\n", what);
  cleanup();
  exit(1);
}

static void copy_file(const char *from, const char *to) {
  int in = open(from, O_RDONLY);
  int out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (in < 0 || out < 0) die("copy: open");
  static char buf[1 << 20];
  ssize_t n;
  while ((n = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, (size_t)n) != n) die("copy: write");
  if (n < 0 || fsync(out) != 0) die("copy: read");
  close(in);
  close(out);
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) die("read keyring");
  static char text[4096];
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = 0;
  fclose(f);
  return text;
}

/* K2: the fixture's key demoted to active, a fresh primary added. */
static void write_reseal_keyring(const char *fixture_keyring, const char *path) {
  char *text = read_text(fixture_keyring);
  char *p = strstr(text, " primary");
  if (!p) die("fixture keyring has no primary");
  unsigned char key[32];
  char hex[65];
  randombytes_buf(key, sizeof key);
  sodium_bin2hex(hex, sizeof hex, key, sizeof key);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!out || fprintf(out, "%.*s active%s\n5eea1ed0 %s primary\n", (int)(p - text), text,
                      p + strlen(" primary"), hex) < 0 || fclose(out) != 0)
    die("write keyring");
  sodium_memzero(key, sizeof key);
  sodium_memzero(hex, sizeof hex);
  sodium_memzero(text, strlen(text));
}

/* Every value under one key id: that id's count, else -1. */
static sqlite3_int64 single_key_values(const char *db_path, const char *ext) {
  sqlite3 *db = bench_open(db_path, ext, SQLITE_OPEN_READONLY);
  sqlite3_int64 keys = bench_int(db,
      "SELECT count(DISTINCT k) FROM (SELECT token_key_id(access_token) AS k FROM oauth_tokens"
      " UNION ALL SELECT token_key_id(refresh_token) FROM oauth_tokens"
      " WHERE refresh_token IS NOT NULL)");
  sqlite3_int64 n = bench_int(db, "SELECT count(*) + count(refresh_token) FROM oauth_tokens");
  sqlite3_close(db);
  return keys == 1 ? n : -1;
}

int main(int argc, char **argv) {
  bench_name = "rotate_vs_reseal";
  if (argc != 2) {
    fprintf(stderr, "usage: rotate_vs_reseal PATH/TO/oauthdb.so (the tool beside it)\n");
    return 2;
  }
  if (sodium_init() < 0) die("sodium_init");
  const char *ext = argv[1];
  char tool[PATH_MAX];
  snprintf(tool, sizeof tool, "%s", ext);
  char *slash = strrchr(tool, '/');
  snprintf(slash ? slash + 1 : tool, sizeof tool - (size_t)(slash ? slash + 1 - tool : 0),
           "oauthdb");
  if (access(tool, X_OK) != 0) die("the oauthdb tool is not built next to the extension");

  token_fixture fx;
  token_fixture_get(&fx, ext);
  snprintf(scratch, sizeof scratch, "%s", fx.db_path);
  slash = strrchr(scratch, '/');
  snprintf(slash + 1, sizeof scratch - (size_t)(slash + 1 - scratch), "rotate-XXXXXX");
  if (!mkdtemp(scratch)) die("mkdtemp");

  char a[PATH_MAX + 16], b[PATH_MAX + 16], k1[PATH_MAX + 16], k2[PATH_MAX + 16],
      out[PATH_MAX + 16];
  snprintf(a, sizeof a, "%s/a.db", scratch);
  snprintf(b, sizeof b, "%s/b.db", scratch);
  snprintf(k1, sizeof k1, "%s/k1", scratch);
  snprintf(k2, sizeof k2, "%s/k2", scratch);
  snprintf(out, sizeof out, "%s/tool.out", scratch);
  double t = bench_now();
  copy_file(fx.db_path, a);
  copy_file(fx.db_path, b);
  copy_file(fx.keyring_path, k1);
  write_reseal_keyring(fx.keyring_path, k2);
  double setup = bench_now() - t;

  /* The floor: one UPDATE in one transaction, settings as the tool's. */
  sqlite3 *db = bench_open(b, ext, SQLITE_OPEN_READWRITE);
  char *sql = sqlite3_mprintf("PRAGMA secure_delete = ON; PRAGMA cache_size = -65536;"
                              "SELECT oauthdb_keyring(%Q)", k2);
  bench_exec(db, sql);
  sqlite3_free(sql);
  t = bench_now();
  bench_exec(db,
               "UPDATE oauth_tokens SET"
               " access_token = token_reseal(access_token, 'oauth_tokens.access_token:' || id),"
               " refresh_token = token_reseal(refresh_token, 'oauth_tokens.refresh_token:' || id)");
  double reseal = bench_now() - t;
  if (sqlite3_close(db) != SQLITE_OK) die("close");

  /* The tool, from fork to exit. */
  t = bench_now();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execl(tool, tool, "rotate", a, "--keyring", k1, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) die("fork");
  double rotate = bench_now() - t;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fputs(read_text(out), stderr);
    die("oauthdb rotate failed");
  }

  sqlite3_int64 na = single_key_values(a, ext), nb = single_key_values(b, ext);
  if (na < 0 || nb < 0 || na != nb) die("a database is left with values under two keys");
  cleanup();

  printf("rotate_vs_reseal: %lld sealed values (setup %.1f s: two copies of the fixture)\n",
         (long long)na, setup);
  printf("  rotate  oauthdb rotate, batches of 5000 rows          %.2f s  %.0f ns/value\n",
         rotate, rotate * 1e9 / (double)na);
  printf("  reseal  one UPDATE ... token_reseal(...), one txn     %.2f s  %.0f ns/value\n",
         reseal, reseal * 1e9 / (double)na);
  printf("rotate_vs_reseal ratio=%.2f (rotate/reseal; target <= 1.5)\n", rotate / reseal);
  return 0;
}

/*
** bench_util.h: what every benchmark needs around its timed loops: a
** monotonic clock, dying with SQLite's message, running SQL, opening a
** database with the extension loaded, and writing a throwaway keyring.
** Header-only (static inline): bench/run.sh compiles each bench .c alone.
**
** A benchmark sets bench_name first thing in main, so its messages say
** whose they are ("seal_open bench: prepare: no such table: ...").
*/
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static const char *bench_name = "bench";

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void bench_die(sqlite3 *db, const char *what) {
  fprintf(stderr, "%s: %s: %s\n", bench_name, what, db ? sqlite3_errmsg(db) : "failed");
  exit(1);
}

static inline void bench_exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "%s: %.60s...: %s\n", bench_name, sql, err ? err : "?");
    sqlite3_free(err);
    exit(1);
  }
}

/* The first column of SQL's first row, as an integer. */
static inline sqlite3_int64 bench_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) bench_die(db, sql);
  if (sqlite3_step(st) != SQLITE_ROW) bench_die(db, sql);
  sqlite3_int64 v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Open PATH with FLAGS and load the extension EXT; the caller closes. */
static inline sqlite3 *bench_open(const char *path, const char *ext, int flags) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) bench_die(db, path);
  sqlite3_enable_load_extension(db, 1);
  char *err = NULL;
  if (sqlite3_load_extension(db, ext, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "%s: load %s: %s\n", bench_name, ext, err ? err : "?");
    exit(1);
  }
  sqlite3_enable_load_extension(db, 0);
  return db;
}

/*
** Create the keyring PATH (mode 0600, replacing any file there) holding
** KEY as key ID_HEX, primary: a throwaway the extension accepts.
*/
static inline void bench_write_keyring(const char *path, const char *id_hex,
                                       const unsigned char key[32]) {
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, key, 32);
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!out || fprintf(out, "# oauthdb bench keyring\n%s %s primary\n", id_hex, hex) < 0 ||
      fclose(out) != 0)
    bench_die(NULL, "write keyring");
  sodium_memzero(hex, sizeof hex);
}

#endif /* BENCH_UTIL_H */

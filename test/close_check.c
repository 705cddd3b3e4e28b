/*
** close_check.c: a C client that proves the extension never makes
** sqlite3_close() fail (docs/ARCHITECTURE.md, "Why the statement cache is owned by a virtual
** table": a cached prepared statement must never make sqlite3_close fail).
**
**   close_check EXTENSION DB SQL...
**
** Opens DB, loads EXTENSION, runs each SQL argument (errors are printed and
** ignored: error paths must not leak statements either), then calls the
** legacy sqlite3_close(), which returns SQLITE_BUSY on any unfinalized
** statement. Prints "close=0" on success; exits 1 otherwise.
*/
#include <sqlite3.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: close_check EXTENSION DB SQL...\n");
    return 2;
  }
  sqlite3 *db = NULL;
  if (sqlite3_open(argv[2], &db) != SQLITE_OK) {
    fprintf(stderr, "close_check: cannot open %s\n", argv[2]);
    return 2;
  }
  char *err = NULL;
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, argv[1], NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "close_check: load: %s\n", err);
    sqlite3_free(err);
    return 2;
  }
  for (int i = 3; i < argc; i++) {
    if (sqlite3_exec(db, argv[i], NULL, NULL, &err) != SQLITE_OK) {
      printf("error: %s\n", err);
      sqlite3_free(err);
      err = NULL;
    }
  }
  int rc = sqlite3_close(db);
  printf("close=%d\n", rc);
  return rc == SQLITE_OK ? 0 : 1;
}

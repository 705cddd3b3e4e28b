/*
** oauthdb_tool.c: the `oauthdb` shell tool, its dispatch and shared helpers.
**
**   $ oauthdb init app.db
**   $ oauthdb keygen ~/.config/oauthdb/keyring
**   $ oauthdb rotate app.db --keyring ~/.config/oauthdb/keyring
**   $ oauthdb backup app.db backups/ --keep 14
**   $ oauthdb status app.db
**
** Every command takes --help. docs/OPERATIONS.md is the manual: what each
** command does, the rotation state machine, and the exit codes
** (0 done, 1 failed, 2 usage, 3 refused: nothing was changed).
**
** The tool works on databases through the extension itself (loaded into
** each connection it opens), so it applies the very migrations, seals and
** checks the application sees; it links only the pure keyring code, to
** write keyring files. It never prints a key or a token: the keyring's
** messages and the extension's never contain one, and the tool prints only
** key ids and counts.
*/
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include "oauthdb_tool.h"

#ifndef OAUTHDB_PREFIX
#define OAUTHDB_PREFIX "/usr/local"
#endif
#define EXTENSION_NAME "oauthdb.so"

const char *tool_cmd = NULL;
int tool_open_rc = SQLITE_OK;

static const struct command {
  const char *name;
  int (*run)(int, char **);
  const char *summary;
} commands[] = {
    {"init", cmd_init, "create a database (mode 0600) and migrate it"},
    {"keygen", cmd_keygen, "create a keyring, or add a key to one"},
    {"rotate", cmd_rotate, "new primary key, reseal every token, retire the old key"},
    {"backup", cmd_backup, "online, integrity-checked copy; keeps the newest N"},
    {"restore", cmd_restore, "put a backup back (keeps the replaced file aside)"},
    {"status", cmd_status, "schema version, keys in use, row counts, expiring tokens"},
    {"migrate", cmd_migrate, "migrate up, or down to VERSION"},
    {"purge", cmd_purge, "delete audit rows and dead sessions older than DAYS"},
};

static void main_help(FILE *out) {
  fprintf(out,
          "usage: oauthdb COMMAND [ARGS]   (oauthdb COMMAND --help for each)\n\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(out,
          "\nExit codes: 0 done, 1 failed, 2 usage error, 3 refused (nothing "
          "changed).\nEnvironment: OAUTHDB_KEYRING (keyring path), "
          "OAUTHDB_EXTENSION (oauthdb.so when not\nnext to this program).\n"
          "Manual: docs/OPERATIONS.md\n");
}

/* The version is the extension's: the tool is a front end to it. */
static int print_version(void) {
  tool_cmd = "--version";
  sqlite3 *db = tool_open(":memory:", SQLITE_OPEN_READWRITE);
  char *v = NULL;
  if (!db || tool_query_text(db, &v, "SELECT version FROM oauthdb_connection",
                             (char *)NULL) != SQLITE_OK) {
    tool_close(db);
    return EXIT_FAIL;
  }
  printf("oauthdb %s (extension %s, SQLite %s)\n", v ? v : "?",
         tool_extension_path(), sqlite3_libversion());
  free(v);
  tool_close(db);
  return EXIT_OK;
}

int main(int argc, char **argv) {
  /* Lines in order when stdout and stderr share a pipe or a log. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (sodium_init() < 0) {
    fprintf(stderr, "oauthdb: libsodium failed to initialise\n");
    return EXIT_FAIL;
  }
  if (argc < 2) {
    main_help(stderr);
    return EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    main_help(stdout);
    return EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) return print_version();
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(argv[1], commands[i].name) == 0) {
      tool_cmd = commands[i].name;
      return commands[i].run(argc - 1, argv + 1);
    }
  }
  fprintf(stderr, "oauthdb: unknown command '%s'\n\n", argv[1]);
  main_help(stderr);
  return EXIT_USAGE;
}

/* ---- messages ---------------------------------------------------------- */

void tool_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "oauthdb %s: ", tool_cmd ? tool_cmd : "");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int tool_usage_error(const char *usage, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "oauthdb %s: ", tool_cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n%s(oauthdb %s --help for more)\n", usage, tool_cmd);
  va_end(ap);
  return EXIT_USAGE;
}

/* ---- the extension ----------------------------------------------------- */

/*
** Next to this program first (a build directory holds both, and an
** installed pair stays together), then $OAUTHDB_EXTENSION, then where
** `make install` puts it.
*/
const char *tool_extension_path(void) {
  static char path[PATH_MAX];
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = 0;
      if ((size_t)snprintf(path, sizeof path, "%s/" EXTENSION_NAME, exe) < sizeof path &&
          access(path, R_OK) == 0)
        return path;
    }
  }
  const char *env = getenv("OAUTHDB_EXTENSION");
  if (env && *env) return env;
  return OAUTHDB_PREFIX "/lib/oauthdb/" EXTENSION_NAME;
}

static sqlite3 *open_common(const char *path, int flags, int load) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, flags, NULL);
  tool_open_rc = rc;
  if (rc != SQLITE_OK) {
    tool_error("cannot open %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return NULL;
  }
  sqlite3_extended_result_codes(db, 1);
  /* The extension sets 5 s when there is none; the tool waits longer. */
  sqlite3_busy_timeout(db, 30000);
  /*
  ** secure_delete: a resealed or deleted token must leave no old ciphertext
  ** (or anything else) in free pages; Debian's SQLite defaults to this,
  ** others do not, and a backup target never loads the extension, which
  ** sets it too.
  **
  ** Read the schema before the extension loads: a file that is not a
  ** database fails here with a plain message. It also keeps the load from
  ** failing half-way on such a file (or on a lock): SQLite unloads an
  ** extension whose init fails, but the connection keeps what it had
  ** registered by then, and closing it calls into the unloaded library.
  */
  rc = sqlite3_exec(db, "PRAGMA secure_delete = ON; SELECT count(*) FROM sqlite_schema",
                    NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    tool_open_rc = sqlite3_errcode(db);
    if ((tool_open_rc & 0xff) == SQLITE_NOTADB)
      tool_error("%s is not an SQLite database", path);
    else
      tool_error("cannot use %s: %s", path, sqlite3_errmsg(db));
    sqlite3_close(db);
    return NULL;
  }
  if (load) {
    const char *ext = tool_extension_path();
    char *err = NULL;
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, NULL);
    rc = sqlite3_load_extension(db, ext, NULL, &err);
    /* Nothing the tool runs later may load another extension. */
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
    if (rc != SQLITE_OK) {
      tool_error("cannot load the oauthdb extension %s: %s (set OAUTHDB_EXTENSION "
                 "to the path of oauthdb.so)", ext, err ? err : sqlite3_errstr(rc));
      sqlite3_free(err);
      sqlite3_close(db);
      return NULL;
    }
  }
  return db;
}

int tool_open_exit(void) {
  return (tool_open_rc & 0xff) == SQLITE_NOTADB ? EXIT_REFUSED : EXIT_FAIL;
}

sqlite3 *tool_open(const char *path, int flags) { return open_common(path, flags, 1); }
sqlite3 *tool_open_plain(const char *path, int flags) { return open_common(path, flags, 0); }

void tool_close(sqlite3 *db) {
  if (db && sqlite3_close(db) != SQLITE_OK)
    tool_error("closing the database: %s", sqlite3_errmsg(db));
}

/* ---- queries ----------------------------------------------------------- */

/*
** Prepare SQL, bind the NULL-terminated text arguments to ?1, ?2, ... and
** step once. Returns SQLITE_ROW (the row is *st's), SQLITE_DONE, or an
** error after printing it; the caller finalizes *st in every case.
*/
static int query_first_row(sqlite3 *db, sqlite3_stmt **st, const char *sql, va_list ap) {
  int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
  if (rc != SQLITE_OK) {
    tool_error("%s", sqlite3_errmsg(db));
    return rc;
  }
  const char *arg;
  for (int i = 1; (arg = va_arg(ap, const char *)) != NULL; i++)
    sqlite3_bind_text(*st, i, arg, -1, SQLITE_TRANSIENT);
  rc = sqlite3_step(*st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) tool_error("%s", sqlite3_errmsg(db));
  return rc;
}

int tool_query_text(sqlite3 *db, char **out, const char *sql, ...) {
  sqlite3_stmt *st = NULL;
  va_list ap;
  va_start(ap, sql);
  int rc = query_first_row(db, &st, sql, ap);
  va_end(ap);
  *out = NULL;
  if (rc == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    if (v) *out = strdup(v);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int tool_query_int(sqlite3 *db, sqlite3_int64 *out, const char *sql, ...) {
  sqlite3_stmt *st = NULL;
  va_list ap;
  va_start(ap, sql);
  int rc = query_first_row(db, &st, sql, ap);
  va_end(ap);
  *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int tool_exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) tool_error("%s", err ? err : sqlite3_errstr(rc));
  sqlite3_free(err);
  return rc;
}

int tool_is_oauthdb(sqlite3 *db) {
  sqlite3_int64 n = 0;
  if (tool_query_int(db, &n,
                     "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
                     "AND name = 'schema_migrations'", (char *)NULL) != SQLITE_OK)
    return -1;
  return n > 0;
}

static int cmp_key_count(const void *a, const void *b) {
  return strcmp(((const key_count *)a)->id, ((const key_count *)b)->id);
}

/*
** Tallied here, not with GROUP BY: a database holds a handful of key ids,
** and GROUP BY over a UNION of both columns would sort every value in a
** temporary B-tree (ten times the time of the scan on a million rows).
*/
int tool_key_counts(sqlite3 *db, key_count **out) {
  sqlite3_stmt *st = NULL;
  *out = NULL;
  if (sqlite3_prepare_v2(db,
                         "SELECT token_key_id(access_token), token_key_id(refresh_token),"
                         " token_key_id(id_token)"
                         " FROM oauth_tokens", -1, &st, NULL) != SQLITE_OK) {
    tool_error("%s", sqlite3_errmsg(db));
    return -1;
  }
  key_count *counts = NULL;
  int n = 0, cap = 0, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int col = 0; col < 3; col++) {
      const char *id = (const char *)sqlite3_column_text(st, col);
      if (!id) continue;
      int i = 0;
      while (i < n && strcmp(counts[i].id, id) != 0) i++;
      if (i == n) {
        if (n == cap) {
          cap = cap ? 2 * cap : 8;
          key_count *grown = realloc(counts, (size_t)cap * sizeof *counts);
          if (!grown) {
            free(counts);
            sqlite3_finalize(st);
            tool_error("out of memory");
            return -1;
          }
          counts = grown;
        }
        snprintf(counts[n].id, sizeof counts[n].id, "%s", id);
        counts[n++].n = 0;
      }
      counts[i].n++;
    }
  }
  if (rc != SQLITE_DONE) tool_error("%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    free(counts);
    return -1;
  }
  if (n > 1) qsort(counts, (size_t)n, sizeof *counts, cmp_key_count);
  *out = counts;
  return n;
}

/* ---- files ------------------------------------------------------------- */

void tool_timestamp(char out[32]) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char base[24];
  strftime(base, sizeof base, "%Y%m%dT%H%M%S", &tm);
  snprintf(out, 32, "%s.%03dZ", base, (int)(tv.tv_usec / 1000));
}

int tool_create_private(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -1;
  /* The umask can only take bits away; this makes sure it did not add any. */
  int rc = fchmod(fd, 0600);
  int saved = errno;
  close(fd);
  if (rc != 0) {
    unlink(path);
    errno = saved;
    return -1;
  }
  return 0;
}

int tool_fsync_dir(const char *path) {
  char *copy = strdup(path);
  if (!copy) return -1;
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(copy);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

const char *tool_user_name(void) {
  struct passwd *pw = getpwuid(geteuid());
  return pw && pw->pw_name ? pw->pw_name : "unknown";
}

/*
** oauthdb_tool_db.c: `oauthdb init`, `oauthdb migrate`, `oauthdb purge`.
**
**   $ oauthdb init app.db                 # new file, mode 0600, migrated
**   $ oauthdb migrate app.db              # up to the newest migration
**   $ oauthdb migrate app.db 1            # down (or up) to version 1
**   $ oauthdb purge app.db --older-than 90
**
** Each is a thin front end to the extension's own SQL (oauthdb_migrate,
** oauthdb_purge), so the tool and an application migrate and purge alike.
*/
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "oauthdb_tool.h"

static const struct option help_only[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/*
** Parse a non-negative integer argument. Returns 0, or -1 when S is not
** a whole decimal number from 0 to MAX.
*/
static int parse_count(const char *s, long long max, long long *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > max || s[0] == '+' || s[0] == ' ')
    return -1;
  *out = v;
  return 0;
}

/*
** Is DB something init or migrate may write to: an oauthdb database, or an
** empty one? Prints why not and returns EXIT_REFUSED; EXIT_OK otherwise.
*/
static int check_ours(sqlite3 *db, const char *path) {
  sqlite3_int64 tables = 0;
  int ours = tool_is_oauthdb(db);
  if (ours < 0) return EXIT_FAIL;
  if (ours) return EXIT_OK;
  if (tool_query_int(db, &tables,
                     "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
                     (char *)NULL) != SQLITE_OK)
    return EXIT_FAIL;
  if (tables > 0) {
    tool_error("%s holds %lld schema objects but no schema_migrations table: it is "
               "not an oauthdb database; refusing to touch it", path, (long long)tables);
    return EXIT_REFUSED;
  }
  return EXIT_OK;
}

/* ---- init ---------------------------------------------------------------- */

static const char init_usage[] = "usage: oauthdb init DB [--journal-mode wal|delete]\n";
static const char init_help[] =
    "Create the database DB (mode 0600) in WAL mode and migrate it to the\n"
    "newest schema. An existing oauthdb database is migrated (a no-op when it\n"
    "is current) and keeps its journal mode unless --journal-mode is given; an\n"
    "existing empty file is used; any other existing file is refused (exit 3).\n"
    "  -j, --journal-mode wal|delete  default wal for a new database: readers,\n"
    "                                 backups and exports never block writers\n"
    "                                 (docs/CLIENTS.md); the mode stays in the file\n"
    "Exit: 0 done, 1 failed, 2 usage, 3 refused.\n";

/*
** Set DB's journal mode to MODE ("wal" or "delete"). SQLite records WAL in
** the file's header, so every later connection gets it; it answers with the
** mode in force, which is checked: a database another connection holds open
** cannot leave WAL, and an in-memory or unusual VFS may refuse it.
*/
static int set_journal_mode(sqlite3 *db, const char *path, const char *mode) {
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA journal_mode = %s", mode);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  const char *got = NULL;
  if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    got = (const char *)sqlite3_column_text(st, 0);
  int ok = got && sqlite3_stricmp(got, mode) == 0;
  if (!ok)
    tool_error("%s: cannot set journal_mode to %s (it is %s): %s", path, mode,
               got ? got : "unknown", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return ok ? 0 : -1;
}

int cmd_init(int argc, char **argv) {
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'},
      {"journal-mode", required_argument, NULL, 'j'},
      {NULL, 0, NULL, 0},
  };
  const char *journal_mode = NULL; /* NULL: wal for a new database, else unchanged */
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "hj:", opts, NULL)) != -1) {
    switch (c) {
      case 'h':
        printf("%s\n%s", init_usage, init_help);
        return EXIT_OK;
      case 'j':
        if (strcmp(optarg, "wal") != 0 && strcmp(optarg, "delete") != 0)
          return tool_usage_error(init_usage, "--journal-mode is wal or delete, got '%s'",
                                  optarg);
        journal_mode = optarg;
        break;
      default:
        if (optopt == 'j') return tool_usage_error(init_usage, "--journal-mode needs wal or delete");
        return tool_usage_error(init_usage, "unknown option %s", argv[optind - 1]);
    }
  }
  if (argc - optind != 1)
    return tool_usage_error(init_usage, "expected one database path");
  const char *path = argv[optind];

  int created = 0;
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (errno != ENOENT) {
      tool_error("cannot stat %s: %s", path, strerror(errno));
      return EXIT_FAIL;
    }
    if (tool_create_private(path) != 0) {
      tool_error("cannot create %s: %s", path, strerror(errno));
      return EXIT_FAIL;
    }
    created = 1;
  } else if (!S_ISREG(st.st_mode)) {
    tool_error("%s exists and is not a regular file; refusing to touch it", path);
    return EXIT_REFUSED;
  }

  sqlite3 *db = tool_open(path, SQLITE_OPEN_READWRITE);
  int rc = db ? EXIT_OK : tool_open_exit();
  if (rc == EXIT_OK && !created) rc = check_ours(db, path);
  if (rc == EXIT_OK && !created && (st.st_mode & 077))
    fprintf(stderr, "oauthdb init: warning: %s has mode %04o: group or others can "
                    "read it; run: chmod 600 %s\n",
            path, (unsigned)(st.st_mode & 07777), path);
  sqlite3_int64 before = 0, after = 0;
  /* Before the first migration, so that it is written through the WAL. An
  ** empty existing file counts as new (schema version 0). */
  if (rc == EXIT_OK &&
      tool_query_int(db, &before, "SELECT oauthdb_schema_version()", (char *)NULL) != SQLITE_OK)
    rc = EXIT_FAIL;
  if (rc == EXIT_OK && !journal_mode && before == 0) journal_mode = "wal";
  if (rc == EXIT_OK && journal_mode && set_journal_mode(db, path, journal_mode) != 0)
    rc = EXIT_FAIL;
  if (rc == EXIT_OK &&
      tool_query_int(db, &after, "SELECT oauthdb_migrate()", (char *)NULL) != SQLITE_OK)
    rc = EXIT_FAIL;
  tool_close(db);
  if (rc != EXIT_OK) {
    /* A file we created and could not migrate would only be refused later. */
    if (created) {
      unlink(path);
      const char *suffixes[] = {"-journal", "-wal", "-shm"};
      for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        char side[4096];
        snprintf(side, sizeof side, "%s%s", path, suffixes[i]);
        unlink(side);
      }
    }
    return rc;
  }
  tool_fsync_dir(path);
  if (created)
    printf("created %s: schema version %lld\n", path, (long long)after);
  else if (before == after)
    printf("%s: already initialised, schema version %lld\n", path, (long long)after);
  else
    printf("%s: schema version %lld -> %lld\n", path, (long long)before, (long long)after);
  return EXIT_OK;
}

/* ---- migrate ------------------------------------------------------------- */

static const char migrate_usage[] = "usage: oauthdb migrate DB [VERSION]\n";
static const char migrate_help[] =
    "Migrate DB up to the newest schema this build knows, or up or down to\n"
    "VERSION (0 removes every oauthdb table). Each step runs in its own\n"
    "transaction; a migration changed after it was applied stops the run\n"
    "before anything is touched. DB must exist (oauthdb init creates one).\n"
    "Exit: 0 done, 1 failed, 2 usage, 3 refused (not an oauthdb database).\n";

int cmd_migrate(int argc, char **argv) {
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "h", help_only, NULL)) != -1) {
    if (c == 'h') {
      printf("%s\n%s", migrate_usage, migrate_help);
      return EXIT_OK;
    }
    return tool_usage_error(migrate_usage, "unknown option %s", argv[optind - 1]);
  }
  int nargs = argc - optind;
  if (nargs < 1 || nargs > 2)
    return tool_usage_error(migrate_usage, "expected DB and optionally VERSION");
  const char *path = argv[optind];
  long long target = -1;
  if (nargs == 2 && parse_count(argv[optind + 1], 9999, &target) != 0)
    return tool_usage_error(migrate_usage, "VERSION must be a number from 0, got '%s'",
                            argv[optind + 1]);

  sqlite3 *db = tool_open(path, SQLITE_OPEN_READWRITE);
  if (!db) return tool_open_exit();
  int rc = check_ours(db, path);
  sqlite3_int64 before = 0, after = 0;
  if (rc == EXIT_OK &&
      tool_query_int(db, &before, "SELECT oauthdb_schema_version()", (char *)NULL) != SQLITE_OK)
    rc = EXIT_FAIL;
  if (rc == EXIT_OK) {
    char num[32];
    snprintf(num, sizeof num, "%lld", target);
    /* The extension checks the range and says which versions exist. */
    int q = target < 0
                ? tool_query_int(db, &after, "SELECT oauthdb_migrate()", (char *)NULL)
                : tool_query_int(db, &after, "SELECT oauthdb_migrate(CAST(?1 AS INTEGER))",
                                 num, (char *)NULL);
    if (q != SQLITE_OK) rc = EXIT_FAIL;
  }
  tool_close(db);
  if (rc == EXIT_OK)
    printf("%s: schema version %lld -> %lld\n", path, (long long)before, (long long)after);
  return rc;
}

/* ---- purge --------------------------------------------------------------- */

static const char purge_usage[] = "usage: oauthdb purge DB --older-than DAYS\n";
static const char purge_help[] =
    "Delete auth_audit_log rows and dead sessions (revoked, expired or idle)\n"
    "older than DAYS days, through oauthdb_purge(): the log stays append-only\n"
    "for everyone else, and a 'retention.run' audit row records the counts.\n"
    "  --older-than DAYS  required; a whole number of days (0: everything\n"
    "                     dead before now)\n"
    "Exit: 0 done, 1 failed, 2 usage, 3 refused (not an oauthdb database).\n";

/* 9999-12-31 is about 2.9 million days after 1970; the SQL checks the rest. */
#define PURGE_MAX_DAYS 2932896LL

int cmd_purge(int argc, char **argv) {
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'},
      {"older-than", required_argument, NULL, 'o'},
      {NULL, 0, NULL, 0},
  };
  long long days = -1;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
    switch (c) {
      case 'h':
        printf("%s\n%s", purge_usage, purge_help);
        return EXIT_OK;
      case 'o':
        if (parse_count(optarg, PURGE_MAX_DAYS, &days) != 0)
          return tool_usage_error(purge_usage,
                                  "--older-than wants a whole number of days, got '%s'",
                                  optarg);
        break;
      default:
        if (optopt == 'o') return tool_usage_error(purge_usage, "--older-than needs DAYS");
        return tool_usage_error(purge_usage, "unknown option %s", argv[optind - 1]);
    }
  }
  if (argc - optind != 1) return tool_usage_error(purge_usage, "expected one database path");
  if (days < 0) return tool_usage_error(purge_usage, "--older-than DAYS is required");
  const char *path = argv[optind];

  sqlite3 *db = tool_open(path, SQLITE_OPEN_READWRITE);
  if (!db) return tool_open_exit();
  int rc = tool_is_oauthdb(db) == 1 ? EXIT_OK : EXIT_REFUSED;
  if (rc != EXIT_OK) tool_error("%s is not an oauthdb database", path);
  char seconds[32];
  snprintf(seconds, sizeof seconds, "%lld", days * 86400);
  char *result = NULL;
  if (rc == EXIT_OK &&
      tool_query_text(db, &result,
                      "SELECT json_extract(r, '$.audit_rows') || ' ' ||"
                      "       json_extract(r, '$.sessions') || ' ' ||"
                      "       strftime('%Y-%m-%dT%H:%M:%SZ', json_extract(r, '$.cutoff'), 'unixepoch')"
                      "  FROM (SELECT oauthdb_purge(CAST(?1 AS INTEGER)) AS r)",
                      seconds, (char *)NULL) != SQLITE_OK)
    rc = EXIT_FAIL;
  tool_close(db);
  if (rc == EXIT_OK) {
    long long audit = 0, sessions = 0;
    char cutoff[32] = "?";
    if (result) sscanf(result, "%lld %lld %31s", &audit, &sessions, cutoff);
    printf("%s: purged %lld audit rows and %lld dead sessions older than %lld days "
           "(before %s)\n", path, audit, sessions, days, cutoff);
  }
  free(result);
  return rc;
}

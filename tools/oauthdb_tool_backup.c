/*
** oauthdb_tool_backup.c: `oauthdb backup` and `oauthdb restore`.
**
**   $ oauthdb backup app.db                   # into ./backups/, keep 7
**   $ oauthdb backup app.db /srv/backups --keep 30
**   $ oauthdb restore /srv/backups/app-20250101T120000.000Z.db app.db --force
**
** Both go through SQLite's online backup API, never a file copy: a backup
** is a consistent snapshot (one read transaction) however the application
** writes meanwhile, and a restore writes through the target's pager, so a
** live WAL and other connections are handled as SQLite handles any write.
**
** A backup holds what the database holds: sealed values, never a
** plaintext token (the schema's CHECKs refuse one), and no keys (they live
** in the keyring file, which is not in the database; back it up apart).
** The copy is then VACUUMed: that drops free pages, which on a database
** written without secure_delete could still hold old ciphertext, under keys
** since rotated out. It is checked with PRAGMA integrity_check, switched to
** a rollback journal (a backup is one self-contained file), written under a
** temporary name and renamed into place only when it is whole, mode 0600.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "oauthdb_tool.h"

#define DEFAULT_KEEP 7
/* How long a backup waits for a writer to let go (the busy timeout aside). */
#define BUSY_WAIT_MS 60000

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/*
** Copy all of SRC into DST with the backup API, in one step (one read
** transaction on SRC: a consistent snapshot), retrying while either side
** is locked by another connection.
*/
static int copy_database(sqlite3 *dst, sqlite3 *src, const char *what) {
  sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
  if (!b) {
    tool_error("%s: %s", what, sqlite3_errmsg(dst));
    return -1;
  }
  int rc, waited = 0;
  while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
    if (waited >= BUSY_WAIT_MS) break;
    sleep_ms(50);
    waited += 50;
  }
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) {
    tool_error("%s: %s", what, sqlite3_errcode(dst) != SQLITE_OK ? sqlite3_errmsg(dst)
                                                                 : sqlite3_errstr(rc));
    return -1;
  }
  return 0;
}

/* PRAGMA integrity_check; prints the first problems when it is not "ok". */
static int integrity_ok(sqlite3 *db, const char *path) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(10)", -1, &st, NULL) != SQLITE_OK) {
    tool_error("%s: %s", path, sqlite3_errmsg(db));
    return 0;
  }
  int ok = 0, rows = 0, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *line = (const char *)sqlite3_column_text(st, 0);
    if (rows++ == 0 && line && strcmp(line, "ok") == 0) ok = 1;
    else tool_error("%s: integrity_check: %s", path, line ? line : "?");
  }
  if (rc != SQLITE_DONE) {
    tool_error("%s: integrity_check failed: %s", path, sqlite3_errmsg(db));
    ok = 0;
  }
  sqlite3_finalize(st);
  return ok && rows == 1;
}

static int fsync_file(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

static void remove_db_files(const char *path) {
  char p[PATH_MAX];
  unlink(path);
  if ((size_t)snprintf(p, sizeof p, "%s-journal", path) < sizeof p) unlink(p);
}

/* ---- backup -------------------------------------------------------------- */

static const char backup_usage[] = "usage: oauthdb backup DB [DIR] [--keep N]\n";
static const char backup_help[] =
    "Copy DB into DIR/<name>-<UTC time>.db (DIR defaults to a `backups`\n"
    "directory next to DB, created mode 0700) while applications keep\n"
    "writing: SQLite's online backup API takes a consistent snapshot. The\n"
    "copy is VACUUMed (no free pages), passes PRAGMA integrity_check, is\n"
    "mode 0600, and is renamed into place only when whole. Then only the\n"
    "newest N backups of DB in DIR are kept (default 7; 0 keeps all).\n"
    "A backup holds sealed values only, never a plaintext token or a key:\n"
    "keep the keyring apart, or the backup opens nothing.\n"
    "  -n, --keep N   backups of this database to keep in DIR\n"
    "Exit: 0 done, 1 failed, 2 usage.\n";

/* "app.db" -> "app": the stem of backup names. */
static void db_stem(const char *path, char *out, size_t n) {
  char *copy = strdup(path);
  snprintf(out, n, "%s", copy ? basename(copy) : "db");
  free(copy);
  static const char *suffixes[] = {".db", ".sqlite3", ".sqlite"};
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    size_t l = strlen(out), s = strlen(suffixes[i]);
    if (l > s && strcmp(out + l - s, suffixes[i]) == 0) {
      out[l - s] = 0;
      break;
    }
  }
}

/* Is NAME "<stem>-YYYYMMDDTHHMMSS.mmmZ.db", a backup this command made? */
static int is_backup_name(const char *name, const char *stem) {
  static const char want[] = "99999999T999999.999Z.db";  /* 9: any digit */
  size_t sl = strlen(stem);
  if (strncmp(name, stem, sl) != 0 || name[sl] != '-') return 0;
  const char *p = name + sl + 1;
  if (strlen(p) != strlen(want)) return 0;
  for (size_t i = 0; want[i]; i++) {
    if (want[i] == '9' ? (p[i] < '0' || p[i] > '9') : p[i] != want[i]) return 0;
  }
  return 1;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
** Keep the newest KEEP backups of STEM in DIR. Names sort by time (the
** timestamp is fixed-width), and only names of the exact backup shape are
** ever considered, so no other file in DIR can be removed.
*/
static void prune(const char *dir, const char *stem, long keep) {
  if (keep <= 0) return;
  DIR *d = opendir(dir);
  if (!d) return;
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!is_backup_name(e->d_name, stem)) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **grown = realloc(names, cap * sizeof *names);
      if (!grown) break;
      names = grown;
    }
    if (!(names[n] = strdup(e->d_name))) break;
    n++;
  }
  closedir(d);
  if (names) qsort(names, n, sizeof *names, cmp_names);
  for (size_t i = 0; i < n; i++) {
    if (i + (size_t)keep < n) {
      char p[PATH_MAX];
      if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, names[i]) < sizeof p && unlink(p) == 0)
        fprintf(stderr, "oauthdb backup: removed old backup %s\n", p);
    }
    free(names[i]);
  }
  free(names);
}

static int make_dirs(const char *path) {
  char buf[PATH_MAX];
  if ((size_t)snprintf(buf, sizeof buf, "%s/", path) >= sizeof buf) return -1;
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return 0;
}

int cmd_backup(int argc, char **argv) {
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'},
      {"keep", required_argument, NULL, 'n'},
      {NULL, 0, NULL, 0},
  };
  long keep = DEFAULT_KEEP;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "hn:", opts, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
      case 'h':
        printf("%s\n%s", backup_usage, backup_help);
        return EXIT_OK;
      case 'n':
        errno = 0;
        keep = strtol(optarg, &end, 10);
        if (errno || end == optarg || *end || keep < 0 || keep > 100000)
          return tool_usage_error(backup_usage, "--keep wants a number from 0, got '%s'",
                                  optarg);
        break;
      default:
        if (optopt == 'n') return tool_usage_error(backup_usage, "--keep needs N");
        return tool_usage_error(backup_usage, "unknown option %s", argv[optind - 1]);
    }
  }
  int nargs = argc - optind;
  if (nargs < 1 || nargs > 2)
    return tool_usage_error(backup_usage, "expected DB and optionally DIR");
  const char *path = argv[optind];
  char dir[PATH_MAX];
  if (nargs == 2) {
    snprintf(dir, sizeof dir, "%s", argv[optind + 1]);
  } else {
    char *copy = strdup(path);
    snprintf(dir, sizeof dir, "%s/backups", copy ? dirname(copy) : ".");
    free(copy);
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
    tool_error("no database at %s", path);
    return EXIT_FAIL;
  }
  if (make_dirs(dir) != 0) {
    tool_error("cannot create %s: %s", dir, strerror(errno));
    return EXIT_FAIL;
  }

  char stem[NAME_MAX], ts[32], final_path[PATH_MAX], tmp[PATH_MAX];
  db_stem(path, stem, sizeof stem);
  /* Two backups in one millisecond would collide: wait for the next one. */
  for (int tries = 0;; tries++) {
    tool_timestamp(ts);
    if ((size_t)snprintf(final_path, sizeof final_path, "%s/%s-%s.db", dir, stem, ts) >=
            sizeof final_path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.%s-%s.db.partial", dir, stem, ts) >= sizeof tmp) {
      tool_error("backup path too long: %s", dir);
      return EXIT_FAIL;
    }
    if (access(final_path, F_OK) != 0 || tries == 100) break;
    sleep_ms(2);
  }
  if (tool_create_private(tmp) != 0) {
    tool_error("cannot create %s: %s", tmp, strerror(errno));
    return EXIT_FAIL;
  }

  int rc = EXIT_FAIL;
  sqlite3 *src = tool_open(path, SQLITE_OPEN_READWRITE);
  sqlite3 *dst = src ? tool_open_plain(tmp, SQLITE_OPEN_READWRITE) : NULL;
  char *mode = NULL;
  if (dst && copy_database(dst, src, "backup") == 0 &&
      tool_query_text(dst, &mode, "PRAGMA journal_mode = DELETE", (char *)NULL) == SQLITE_OK &&
      tool_exec(dst, "VACUUM") == SQLITE_OK && integrity_ok(dst, tmp))
    rc = EXIT_OK;
  free(mode);
  sqlite3_int64 version = -1;
  if (rc == EXIT_OK && tool_is_oauthdb(dst) == 1)
    tool_query_int(src, &version, "SELECT oauthdb_schema_version()", (char *)NULL);
  tool_close(dst);
  tool_close(src);
  if (rc == EXIT_OK && (fsync_file(tmp) != 0 || rename(tmp, final_path) != 0)) {
    tool_error("cannot put the backup in place at %s: %s", final_path, strerror(errno));
    rc = EXIT_FAIL;
  }
  if (rc != EXIT_OK) {
    remove_db_files(tmp);
    return rc;
  }
  tool_fsync_dir(final_path);
  if (version >= 0)
    printf("%s (schema version %lld)\n", final_path, (long long)version);
  else
    printf("%s\n", final_path);
  prune(dir, stem, keep);
  return EXIT_OK;
}

/* ---- restore ------------------------------------------------------------- */

static const char restore_usage[] = "usage: oauthdb restore BACKUP DB [--force]\n";
static const char restore_help[] =
    "Restore the backup BACKUP into DB. BACKUP must pass PRAGMA integrity_check\n"
    "and carry a schema this oauthdb knows (same migrations, same checksums;\n"
    "an older version is restored as it is: run oauthdb migrate afterwards).\n"
    "An existing DB is replaced only with --force, and first copied aside to\n"
    "DB.replaced-<UTC time>. The restore goes through SQLite's backup API, so\n"
    "a database in WAL mode, or open in an application, is handled safely;\n"
    "applications see the restored data at their next transaction.\n"
    "  -f, --force   replace an existing DB\n"
    "Exit: 0 done, 1 failed, 2 usage, 3 refused (DB exists without --force,\n"
    "or BACKUP is not an oauthdb database).\n";

int cmd_restore(int argc, char **argv) {
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'},
      {"force", no_argument, NULL, 'f'},
      {NULL, 0, NULL, 0},
  };
  int force = 0, c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "hf", opts, NULL)) != -1) {
    if (c == 'h') {
      printf("%s\n%s", restore_usage, restore_help);
      return EXIT_OK;
    }
    if (c == 'f') {
      force = 1;
      continue;
    }
    return tool_usage_error(restore_usage, "unknown option %s", argv[optind - 1]);
  }
  if (argc - optind != 2) return tool_usage_error(restore_usage, "expected BACKUP and DB");
  const char *backup = argv[optind], *path = argv[optind + 1];

  struct stat bst, dst_st;
  if (stat(backup, &bst) != 0 || !S_ISREG(bst.st_mode)) {
    tool_error("no backup at %s", backup);
    return EXIT_FAIL;
  }
  int exists = stat(path, &dst_st) == 0;
  if (exists && bst.st_dev == dst_st.st_dev && bst.st_ino == dst_st.st_ino)
    return tool_usage_error(restore_usage, "%s and %s are the same file", backup, path);

  /* Check the backup before anything else is touched. */
  sqlite3 *bk = tool_open(backup, SQLITE_OPEN_READONLY);
  if (!bk) return tool_open_exit();
  int rc = EXIT_OK;
  sqlite3_int64 version = 0, newest = 0;
  int ours = tool_is_oauthdb(bk);
  if (ours != 1) {
    tool_error("%s is not an oauthdb database (no schema_migrations)", backup);
    rc = ours < 0 ? EXIT_FAIL : EXIT_REFUSED;
  } else if (!integrity_ok(bk, backup)) {
    tool_error("%s fails its integrity check; not restoring it", backup);
    rc = EXIT_FAIL;
  } else if (tool_query_int(bk, &version, "SELECT oauthdb_schema_version()",
                            (char *)NULL) != SQLITE_OK ||
             tool_query_int(bk, &newest, "SELECT max(version) FROM oauthdb_migrations",
                            (char *)NULL) != SQLITE_OK) {
    /* The extension said why: a changed or unknown migration. */
    rc = EXIT_FAIL;
  }
  if (rc == EXIT_OK && exists && !force) {
    tool_error("%s exists; rerun with --force to replace it (it is kept aside as "
               "%s.replaced-<time>)", path, path);
    rc = EXIT_REFUSED;
  }
  if (rc != EXIT_OK) {
    tool_close(bk);
    return rc;
  }

  char aside[PATH_MAX] = "";
  sqlite3 *db = NULL;
  if (exists) {
    char ts[32];
    tool_timestamp(ts);
    snprintf(aside, sizeof aside, "%s.replaced-%s", path, ts);
    db = tool_open_plain(path, SQLITE_OPEN_READWRITE);
    sqlite3 *keep = NULL;
    char *mode = NULL;
    if (!db || tool_create_private(aside) != 0) {
      if (db) tool_error("cannot create %s: %s", aside, strerror(errno));
      rc = EXIT_FAIL;
      aside[0] = 0;
    } else if (!(keep = tool_open_plain(aside, SQLITE_OPEN_READWRITE)) ||
               copy_database(keep, db, "keeping the replaced database") != 0 ||
               tool_query_text(keep, &mode, "PRAGMA journal_mode = DELETE",
                               (char *)NULL) != SQLITE_OK) {
      rc = EXIT_FAIL;
    }
    free(mode);
    tool_close(keep);
    if (rc == EXIT_OK && fsync_file(aside) != 0) rc = EXIT_FAIL;
    if (rc != EXIT_OK && aside[0]) remove_db_files(aside);
  } else {
    if (tool_create_private(path) != 0) {
      tool_error("cannot create %s: %s", path, strerror(errno));
      rc = EXIT_FAIL;
    } else {
      db = tool_open_plain(path, SQLITE_OPEN_READWRITE);
      if (!db) rc = EXIT_FAIL;
    }
  }
  if (rc == EXIT_OK &&
      (copy_database(db, bk, "restore") != 0 || !integrity_ok(db, path)))
    rc = EXIT_FAIL;
  tool_close(db);
  tool_close(bk);
  if (rc != EXIT_OK) {
    if (!exists) remove_db_files(path);
    return rc;
  }
  tool_fsync_dir(path);
  printf("restored %s into %s (schema version %lld)\n", backup, path, (long long)version);
  if (aside[0]) printf("the replaced database is kept as %s\n", aside);
  if (version < newest)
    fprintf(stderr, "oauthdb restore: note: the backup is at schema version %lld and "
                    "this oauthdb knows %lld; run: oauthdb migrate %s\n",
            (long long)version, (long long)newest, path);
  return EXIT_OK;
}

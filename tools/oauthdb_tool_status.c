/*
** oauthdb_tool_status.c: `oauthdb status`, a read-only look at a database.
**
**   $ oauthdb status app.db
**   database: app.db
**   schema version: 2 (this oauthdb knows up to 2)
**   keyring: /home/me/.config/oauthdb/keyring
**   keys (sealed values per key id):
**     0a77b3e0  primary  2400
**     9c0e51d2  retired  0
**   rows:
**     auth_audit_log  1532
**     ...
**   tokens expiring within 1 hour: 3
**   sessions alive: 41
**
** Key ids and their counts come from the sealed values' headers
** (token_key_id), so they need no keyring; a keyring, when one is named or
** in $OAUTHDB_KEYRING, only adds each key's status. The database is opened
** read-only: status never writes, not even a WAL checkpoint.
*/
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "oauthdb_tool.h"

static const char status_usage[] = "usage: oauthdb status DB [--keyring KEYRING]\n";
static const char status_help[] =
    "Show DB's schema version, the keys its sealed values use (key id, status\n"
    "from the keyring when there is one, and how many values each key seals),\n"
    "a rotation in progress, row counts per table, active tokens expiring in\n"
    "the next hour (as tokens_expiring(3600) lists them) and live sessions.\n"
    "Read-only; needs no keyring (without one, statuses show as `?`). A keyring\n"
    "that does not load is reported, the rest is still shown, and the exit is 1.\n"
    "  -k, --keyring KEYRING  default $OAUTHDB_KEYRING\n"
    "Exit: 0 done, 1 failed, 2 usage, 3 refused (not an oauthdb database); 1\n"
    "also when the keyring does not load.\n";

/* The rule of session_valid (ext/sqlite/session.c), at the real clock. */
static const char sessions_alive_sql[] =
    "SELECT count(*) FROM user_sessions AS s JOIN users AS u ON u.id = s.user_id"
    " WHERE s.revoked_at IS NULL AND s.expires_at > unixepoch()"
    " AND s.last_used + s.idle_timeout > unixepoch() AND u.is_active = 1";

static const char *status_of(const keyfile *kf, const char *hex) {
  if (!kf) return "?";
  uint32_t id = (uint32_t)strtoul(hex, NULL, 16);
  for (int i = 0; i < keyfile_count(kf); i++)
    if (keyfile_id(kf, i) == id) return keyfile_status(kf, i);
  return "missing";
}

static int print_keys(sqlite3 *db, const keyfile *kf) {
  key_count *counts = NULL;
  int n = tool_key_counts(db, &counts);
  if (n < 0) return -1;
  printf("keys (sealed values per key id):\n");
  int warn = 0;
  for (int i = 0; i < n; i++) {
    const char *status = status_of(kf, counts[i].id);
    printf("  %s  %-8s %lld\n", counts[i].id, status, (long long)counts[i].n);
    if (strcmp(status, "retired") == 0 || strcmp(status, "missing") == 0) warn = 1;
  }
  /* Keys of the keyring that seal nothing here: still worth seeing. */
  for (int i = 0; kf && i < keyfile_count(kf); i++) {
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", (unsigned)keyfile_id(kf, i));
    int found = 0;
    for (int j = 0; j < n && !found; j++) found = strcmp(counts[j].id, hex) == 0;
    if (!found) printf("  %s  %-8s 0\n", hex, keyfile_status(kf, i));
  }
  free(counts);
  if (warn)
    printf("warning: some values are under a retired key or one the keyring does "
           "not hold: they do not open (docs/OPERATIONS.md, \"Rotation\")\n");
  return 0;
}

static int print_rows(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db,
                         "SELECT name FROM sqlite_schema WHERE type = 'table'"
                         " AND name NOT LIKE 'sqlite_%' ORDER BY name",
                         -1, &st, NULL) != SQLITE_OK) {
    tool_error("%s", sqlite3_errmsg(db));
    return -1;
  }
  printf("rows:\n");
  int rc, result = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", name);
    sqlite3_int64 n = 0;
    if (!sql || tool_query_int(db, &n, sql, (char *)NULL) != SQLITE_OK) result = -1;
    else printf("  %-20s %lld\n", name, (long long)n);
    sqlite3_free(sql);
  }
  if (rc != SQLITE_DONE) result = -1;
  sqlite3_finalize(st);
  return result;
}

int cmd_status(int argc, char **argv) {
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'},
      {"keyring", required_argument, NULL, 'k'},
      {NULL, 0, NULL, 0},
  };
  const char *keyring_path = getenv("OAUTHDB_KEYRING");
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "hk:", opts, NULL)) != -1) {
    switch (c) {
      case 'h':
        printf("%s\n%s", status_usage, status_help);
        return EXIT_OK;
      case 'k':
        keyring_path = optarg;
        break;
      default:
        if (optopt == 'k') return tool_usage_error(status_usage, "--keyring needs a path");
        return tool_usage_error(status_usage, "unknown option %s", argv[optind - 1]);
    }
  }
  if (argc - optind != 1) return tool_usage_error(status_usage, "expected one database path");
  const char *path = argv[optind];

  sqlite3 *db = tool_open(path, SQLITE_OPEN_READONLY);
  if (!db) return tool_open_exit();
  int ours = tool_is_oauthdb(db);
  if (ours != 1) {
    if (ours == 0) tool_error("%s is not an oauthdb database (oauthdb init creates one)", path);
    tool_close(db);
    return ours == 0 ? EXIT_REFUSED : EXIT_FAIL;
  }
  int rc = EXIT_OK;
  /* One read transaction: every number below is from the same snapshot. */
  if (tool_exec(db, "BEGIN") != SQLITE_OK) rc = EXIT_FAIL;
  sqlite3_int64 version = 0, newest = 0, has_tokens = 0;
  if (rc == EXIT_OK &&
      (tool_query_int(db, &version, "SELECT oauthdb_schema_version()", (char *)NULL) != SQLITE_OK ||
       tool_query_int(db, &newest, "SELECT max(version) FROM oauthdb_migrations",
                      (char *)NULL) != SQLITE_OK ||
       tool_query_int(db, &has_tokens,
                      "SELECT count(*) FROM sqlite_schema WHERE name = 'oauth_tokens'",
                      (char *)NULL) != SQLITE_OK))
    rc = EXIT_FAIL;
  if (rc == EXIT_OK) {
    printf("database: %s\n", path);
    printf("schema version: %lld (this oauthdb knows up to %lld)\n", (long long)version,
           (long long)newest);
  }

  keyfile *kf = NULL;
  int keyring_failed = 0;
  if (rc == EXIT_OK) {
    if (keyring_path && *keyring_path) {
      /* A keyring that does not load still leaves the rest worth showing,
      ** but the run failed: a script that checks the exit code must not
      ** take a keyring it cannot use for a good one. */
      kf = keyfile_read(keyring_path);
      printf("keyring: %s%s\n", keyring_path, kf ? "" : " (does not load: see above)");
      if (!kf) keyring_failed = 1;
    } else {
      printf("keyring: none (statuses unknown: pass --keyring or set OAUTHDB_KEYRING)\n");
    }
    uint32_t old_id, new_id;
    sqlite3_int64 started;
    if (kf && keyfile_rotation(kf, &old_id, &new_id, &started)) {
      time_t t = (time_t)started;
      char when[32];
      strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
      printf("rotation: in progress from %08x to %08x since %s; run oauthdb rotate "
             "to finish\n", (unsigned)old_id, (unsigned)new_id, when);
    }
  }
  if (rc == EXIT_OK && has_tokens && print_keys(db, kf) != 0) rc = EXIT_FAIL;
  if (rc == EXIT_OK && print_rows(db) != 0) rc = EXIT_FAIL;
  if (rc == EXIT_OK && has_tokens) {
    sqlite3_int64 expiring = 0, alive = 0;
    if (tool_query_int(db, &expiring, "SELECT count(*) FROM tokens_expiring(3600)",
                       (char *)NULL) != SQLITE_OK ||
        tool_query_int(db, &alive, sessions_alive_sql, (char *)NULL) != SQLITE_OK)
      rc = EXIT_FAIL;
    else
      printf("tokens expiring within 1 hour: %lld\nsessions alive: %lld\n",
             (long long)expiring, (long long)alive);
  }
  keyfile_free(kf);
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  tool_close(db);
  return rc == EXIT_OK && keyring_failed ? EXIT_FAIL : rc;
}

/*
** oauthdb_tool.h: what the `oauthdb` shell tool's command files share.
**
** One file per group of commands (oauthdb_tool_db.c: init, migrate, purge;
** oauthdb_tool_keys.c: keygen, rotate; oauthdb_tool_backup.c: backup,
** restore; oauthdb_tool_status.c: status), dispatched from oauthdb_tool.c.
** docs/OPERATIONS.md is the user's manual.
*/
#ifndef OAUTHDB_TOOL_H
#define OAUTHDB_TOOL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Exit codes (docs/OPERATIONS.md, "Exit codes"). */
#define EXIT_OK 0       /* done */
#define EXIT_FAIL 1     /* failed: a database, keyring or file error */
#define EXIT_USAGE 2    /* bad command line: nothing was done */
#define EXIT_REFUSED 3  /* refused to clobber something: nothing was changed */

/* The command being run, for messages ("oauthdb rotate: ..."). */
extern const char *tool_cmd;

/* "oauthdb CMD: message\n" on stderr. */
void tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print a usage error and the command's usage line; returns EXIT_USAGE. */
int tool_usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
** Open PATH with sqlite3_open_v2 FLAGS, turn secure_delete on and load the
** oauthdb extension (tool_extension_path). Returns NULL after printing why.
*/
sqlite3 *tool_open(const char *path, int flags);
/* Why the last tool_open failed (SQLITE_NOTADB: not a database file). */
extern int tool_open_rc;
/* The exit code for a failed tool_open: EXIT_REFUSED for a non-database. */
int tool_open_exit(void);

/* Open PATH without the extension (a backup target), secure_delete on. */
sqlite3 *tool_open_plain(const char *path, int flags);

/* Close, reporting (not hiding) a failure. */
void tool_close(sqlite3 *db);

/* Where the extension is loaded from (see oauthdb_tool.c). */
const char *tool_extension_path(void);

/*
** Run SQL that returns at most one value; *out gets it as a malloc'd
** string (NULL for SQL NULL). Binds the NULL-terminated list of text
** arguments to ?1, ?2, .... Returns SQLITE_OK or prints the error.
*/
int tool_query_text(sqlite3 *db, char **out, const char *sql, ...);
/* The same for an integer result (0 for NULL or no row). */
int tool_query_int(sqlite3 *db, sqlite3_int64 *out, const char *sql, ...);
/* Run SQL without results; prints and returns the error. */
int tool_exec(sqlite3 *db, const char *sql);

/* Is DB an oauthdb database (has schema_migrations)? Negative on error. */
int tool_is_oauthdb(sqlite3 *db);

/* Sealed values of oauth_tokens per key id (both token columns). */
typedef struct key_count {
  char id[9];  /* 8 lowercase hex digits */
  sqlite3_int64 n;
} key_count;
/*
** Count them in one scan; *out (malloc'd, sorted by id) gets one entry per
** key id. Returns how many, or -1 after printing the error.
*/
int tool_key_counts(sqlite3 *db, key_count **out);

/* UTC timestamp for file names: 20250101T120000.123Z (21 bytes with NUL). */
void tool_timestamp(char out[32]);

/* Create PATH empty with mode 0600, failing if it exists (O_EXCL). */
int tool_create_private(const char *path);

/* fsync the directory holding PATH, so a rename or creation is durable. */
int tool_fsync_dir(const char *path);

/* The running user's name, for the audit log's actor column. */
const char *tool_user_name(void);

/* Command entry points: argc/argv start at the command name. */
int cmd_init(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_purge(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_rotate(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_status(int argc, char **argv);

/* oauthdb_tool_keys.c, shared with status: the keyring as the tool edits it. */
typedef struct keyfile keyfile;
/*
** Load PATH: checked and parsed by keyring_load (the extension's own rules),
** then kept as text in locked memory so edits keep the user's comments.
*/
keyfile *keyfile_read(const char *path);
void keyfile_free(keyfile *kf);
int keyfile_count(const keyfile *kf);
/* The i-th key line's id and status. */
uint32_t keyfile_id(const keyfile *kf, int i);
const char *keyfile_status(const keyfile *kf, int i);
/* A rotation in progress (docs/OPERATIONS.md): 1 with old and new ids. */
int keyfile_rotation(const keyfile *kf, uint32_t *old_id, uint32_t *new_id,
                     sqlite3_int64 *started);

#endif /* OAUTHDB_TOOL_H */

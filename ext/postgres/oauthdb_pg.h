/*
** oauthdb_pg.h: what the PostgreSQL adapter's files share.
*/
#ifndef OAUTHDB_PG_H
#define OAUTHDB_PG_H

#include "fmgr.h"
#include "keyring.h"

/*
** This backend's keyring, loaded from oauthdb.keyring and reloaded when the
** file or the setting changed. Never returns NULL: raises FN's error
** ("token_seal: no keyring: ...", "token_seal: keyring /x: mode 0644 ...").
*/
keyring *oauthdb_keyring(const char *fn);

/*
** The same keyring, or NULL with *why a palloc'd message without a function
** name ("no keyring: set oauthdb.keyring = ...", "keyring /x: mode 0644 ..."),
** for callers that word the error themselves (vault.c).
*/
keyring *oauthdb_keyring_try(char **why);

/* The file the keys came from, for messages; NULL before any load. */
const char *oauthdb_keyring_path(void);

/*
** Every error of ours: errhidestmt, so that the server log's STATEMENT:
** line (log_min_error_statement = error by default) does not repeat a
** statement that may hold a plaintext literal, and errhidecontext, so that
** its CONTEXT: line does not carry the bind parameters
** (log_parameter_max_length_on_error). The client still gets both
** (docs/SECURITY.md, "PostgreSQL").
*/
#define oauthdb_error(code, ...)                                      \
  ereport(ERROR, (errcode(code), errmsg(__VA_ARGS__), errhidestmt(true), \
                  errhidecontext(true)))

/* session.c: oauthdb.session_* and oauthdb.clock, from _PG_init. */
void session_define_settings(void);

/* vault.c: oauthdb.vault_unopened, from _PG_init. */
void vault_define_settings(void);

/*
** session.c: now in whole Unix seconds, the clock every function of ours
** uses: the statement's start time, or oauthdb.clock when a superuser set
** it (tests).
*/
int64 oauthdb_now(void);

/* Seconds from the Unix epoch (1970) to PostgreSQL's (2000). */
#define UNIX_TO_PG_EPOCH ((int64)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

/* Unix seconds as a timestamptz Datum (in range: callers check). */
Datum oauthdb_unix_timestamptz(int64 secs);

/*
** spi_plan.c: the kept SPI plan in *SLOT, prepared on first use from
** SQL_FORMAT with %1$s replaced by the (quoted) schema of FCINFO's
** function, the extension's schema: every statement names the tables
** there, so a caller's search_path cannot redirect it, and the extension
** may be created before or after the migrations (nothing is prepared until
** a call). CURSOR_OPTIONS: 0, or CURSOR_OPT_CUSTOM_PLAN for a statement
** whose best plan depends on its parameters' values.
*/
struct _SPI_plan;
struct _SPI_plan *oauthdb_plan(FunctionCallInfo fcinfo, struct _SPI_plan **slot,
                               const char *sql_format, int nargs,
                               const Oid *types, int cursor_options);

/* Run PLAN through SPI (connected); returns SPI_processed. */
uint64 oauthdb_run(struct _SPI_plan *plan, Datum *values, const char *nulls,
                   bool read_only);

/* refresh.c: oauthdb.refresh_max_failures, from _PG_init. */
void refresh_define_settings(void);

#endif /* OAUTHDB_PG_H */

/*
** oauthdb_pg.h: what the PostgreSQL adapter's files share.
*/
#ifndef OAUTHDB_PG_H
#define OAUTHDB_PG_H

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

#endif /* OAUTHDB_PG_H */

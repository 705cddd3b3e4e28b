/*
** schema_check.c: refuse to load on a database whose schema would call
** oauthdb by itself, or hide one of its tables (docs/SECURITY.md,
** "Hostile database files").
**
**   sqlite> .open attacker.db
**   sqlite> .load ./build/oauthdb
**   Error: oauthdb: refusing to load: table loot in main calls token_open()
**   in its definition (a CHECK, DEFAULT, generated column or index), ...
**
** Why it is needed, although every function that reveals a secret is
** SQLITE_DIRECTONLY:
**
**  - SQLite resolves the function names of CHECK constraints, generated
**    columns and index expressions when it parses the schema, and a name it
**    does not know then is looked up again only when a statement runs, with
**    no look at its flags. Loading reads the schema before the functions
**    exist (so does any statement the application ran before loading), so
**    a file could make the application's own INSERT call token_open() and
**    keep the plaintext in a STORED generated column or an index of the file,
**    whatever trusted_schema says (test/hostile.test, 2.x). In a schema
**    parsed once the functions exist (a later ATTACH, a change by another
**    connection) SQLite itself refuses them in indexes and generated
**    columns (non-deterministic); it still lets a CHECK call them, a limit
**    docs/SECURITY.md states (test/hostile.test 2.10). This runs before
**    anything is registered: a failed load leaves registered functions
**    behind.
**  - A table or view named like one of our eponymous tables hides it: an
**    INSERT INTO oauth_token_vault would store plaintext in the file's table.
**
** Views and triggers need no check: SQLite applies DIRECTONLY to them
** whenever they are used, and to DEFAULT expressions too.
**
** The DIRECTONLY functions are read from the registration tables
** themselves (oauthdb_function_sets); the list of eponymous tables below
** must name every one the extension registers. test/hostile.test compares
** both with pragma_function_list and pragma_module_list.
*/
#include <string.h>
#include "oauthdb.h"

SQLITE_EXTENSION_INIT3

static const char *const eponymous_tables[] = {
    "oauthdb_connection", "oauth_token_vault", "oauthdb_keys",
    "oauthdb_migrations", "tokens_expiring",
};

/* SQLite's identifier characters (tokenize.c, IdChar): ASCII letters,
   digits, '_', '$' and every byte of a multi-byte UTF-8 character. */
static int id_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '$' || c >= 0x80;
}

/* SQLite's white space (sqlite3Isspace): space and \t \n \v \f \r. */
static int space_char(unsigned char c) { return c == ' ' || (c >= 9 && c <= 13); }

/* The function name a token of n bytes spells (ASCII case-insensitive). */
static const char *function_named(const char *s, size_t n) {
  for (int k = 0; oauthdb_function_sets[k]; k++) {
    const oauthdb_function_set *set = oauthdb_function_sets[k];
    for (int i = 0; i < set->n; i++) {
      const char *f = set->fns[i].name;
      if ((set->fns[i].flags & SQLITE_DIRECTONLY) && strlen(f) == n &&
          sqlite3_strnicmp(s, f, (int)n) == 0)
        return f;
    }
  }
  return NULL;
}

/*
** The first of our DIRECTONLY functions that SQL calls: a token that spells
** its name (bare, or quoted "", [], `` or even '') followed by "(", with
** only blanks and comments between. Tokens follow SQLite's tokenizer, so
** comments and string literals (our own schema's comments name functions)
** are skipped exactly where SQLite skips them.
*/
static const char *calls_directonly(const unsigned char *p) {
  const char *pending = NULL;  /* the last token named a function */
  while (*p) {
    unsigned char c = *p;
    if (space_char(c)) {
      p++;
      continue;
    }
    if (c == '-' && p[1] == '-') {
      while (*p && *p != '\n') p++;
      continue;
    }
    if (c == '/' && p[1] == '*') {
      p += 2;
      while (*p && !(p[0] == '*' && p[1] == '/')) p++;
      if (*p) p += 2;
      continue;
    }
    const char *named = NULL;
    if (c == '\'' || c == '"' || c == '`' || c == '[') {
      unsigned char close = c == '[' ? ']' : c;
      const unsigned char *start = ++p;
      int escaped = 0;  /* a doubled quote: the name then holds a quote */
      while (*p) {
        if (*p == close) {
          if (close != ']' && p[1] == close) {
            escaped = 1;
            p += 2;
            continue;
          }
          break;
        }
        p++;
      }
      if (!escaped) named = function_named((const char *)start, (size_t)(p - start));
      if (*p) p++;
    } else if (id_char(c)) {
      const unsigned char *start = p;
      while (id_char(*p)) p++;
      named = function_named((const char *)start, (size_t)(p - start));
    } else {
      if (c == '(' && pending) return pending;
      p++;
    }
    pending = named;
  }
  return NULL;
}

static int is_eponymous_name(const char *name) {
  for (size_t i = 0; i < sizeof eponymous_tables / sizeof *eponymous_tables; i++)
    if (sqlite3_stricmp(name, eponymous_tables[i]) == 0) return 1;
  return 0;
}

/* Check one schema (main, temp or an attached name). */
static int check_schema(sqlite3 *db, const char *schema, char **pzErr) {
  char *sql = sqlite3_mprintf(
      "SELECT type, name, sql FROM \"%w\".sqlite_schema "
      "WHERE type IN ('table', 'view', 'index')", schema);
  if (!sql) return SQLITE_NOMEM;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("oauthdb: cannot read the schema of %s: %s", schema,
                             sqlite3_errmsg(db));
    return rc;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *type = (const char *)sqlite3_column_text(st, 0);
    const char *name = (const char *)sqlite3_column_text(st, 1);
    const unsigned char *text = sqlite3_column_text(st, 2);
    if (!type || !name) continue;
    if (strcmp(type, "index") != 0 && is_eponymous_name(name)) {
      *pzErr = sqlite3_mprintf(
          "oauthdb: refusing to load: %s %s in %s has the name of one of "
          "oauthdb's tables and would stand in for it (writes to it would "
          "not be sealed); was this database file made to attack you?",
          type, name, schema);
      rc = SQLITE_ERROR;
      break;
    }
    const char *fn = text && strcmp(type, "view") != 0 ? calls_directonly(text) : NULL;
    if (fn) {
      *pzErr = sqlite3_mprintf(
          "oauthdb: refusing to load: %s %s in %s calls %s() in its definition "
          "(a CHECK, DEFAULT, generated column or index expression), where "
          "SQLite would run it for any statement that writes or reads the "
          "table, with this connection's keys; was this database file made "
          "to attack you?",
          type, name, schema, fn);
      rc = SQLITE_ERROR;
      break;
    }
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int schema_check(sqlite3 *db, char **pzErr) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "SELECT name FROM pragma_database_list", -1, &st,
                              NULL);
  while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    const char *schema = (const char *)sqlite3_column_text(st, 0);
    if (schema) rc = check_schema(db, schema, pzErr);
  }
  if (rc == SQLITE_OK) rc = sqlite3_finalize(st);
  else sqlite3_finalize(st);
  if (rc != SQLITE_OK && !*pzErr)
    *pzErr = sqlite3_mprintf("oauthdb: cannot read the database schema: %s",
                             sqlite3_errmsg(db));
  return rc;
}

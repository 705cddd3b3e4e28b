/*
** migrations.h: migrations embedded at build time by tools/embed_sql.sh,
** sorted by version. sqlite_migrations[] feeds the extension,
** postgres_migrations[] the exporter, and ledger_migrations[] the
** exporter's own promotion ledger (sql/postgres/ledger, numbered apart).
*/
#ifndef OAUTHDB_MIGRATIONS_H
#define OAUTHDB_MIGRATIONS_H

typedef struct migration {
  int version;
  const char *name;
  const char *up;
  const char *down;
} migration;

extern const migration sqlite_migrations[];
extern const int sqlite_migration_count;
extern const migration postgres_migrations[];
extern const int postgres_migration_count;
extern const migration ledger_migrations[];
extern const int ledger_migration_count;

/* Lowercase hex SHA-256 of m->up (65 bytes with the NUL). */
void migration_checksum(const migration *m, char out[65]);

#endif

/*
** migration_checksum.c: the checksum recorded for an applied migration.
**
** SHA-256 of the up script's bytes, lowercase hex. The extension records it
** in schema_migrations and the exporter in PostgreSQL's schema_migrations;
** a mismatch means the migration changed after it was applied.
*/
#include <sodium.h>
#include <string.h>
#include "migrations.h"

void migration_checksum(const migration *m, char out[65]) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, (const unsigned char *)m->up, strlen(m->up));
  sodium_bin2hex(out, 65, digest, sizeof digest);
}

/*
** uuid7.c: uuid7() in PostgreSQL, RFC 9562 version 7 UUIDs from the core
** (uuid7.h), as the uuid type every id column of sql/postgres has.
**
**   INSERT INTO users(id, email) VALUES (uuid7(), 'ada@example.com');
**
** Ids of one backend strictly increase (the generator state is the
** backend's, as SQLite's is the connection's); VOLATILE, and PARALLEL
** RESTRICTED so that the ids of one statement come from one state.
** uuid7_timestamp(id) reads the unix milliseconds back, as SQLite's does.
*/
#include "postgres.h"

#include "fmgr.h"
#include "utils/uuid.h"

#include "oauthdb_pg.h"
#include "uuid7.h"

PG_FUNCTION_INFO_V1(uuid7);
PG_FUNCTION_INFO_V1(uuid7_timestamp);

static uuid7_state backend_uuid7;

Datum uuid7(PG_FUNCTION_ARGS) {
  (void)fcinfo;
  pg_uuid_t *id = palloc(sizeof *id);
  StaticAssertStmt(UUID_LEN == UUID7_BYTES, "uuid sizes differ");
  uuid7_next_bytes(&backend_uuid7, id->data);
  PG_RETURN_UUID_P(id);
}

/* uuid7_timestamp(id uuid) -> bigint: the core's rule, SQLite's message. */
Datum uuid7_timestamp(PG_FUNCTION_ARGS) {
  pg_uuid_t *id = PG_GETARG_UUID_P(0);
  int64 ms = uuid7_timestamp_ms(id->data);
  if (ms < 0) oauthdb_error(ERRCODE_INVALID_PARAMETER_VALUE, UUID7_MSG_NOT_V7);
  PG_RETURN_INT64(ms);
}

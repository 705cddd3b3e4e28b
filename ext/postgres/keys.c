/*
** keys.c: oauthdb_keys in PostgreSQL: this backend's keyring, one row per
** key in file order, from ids and statuses only (never a key byte).
**
**   SELECT * FROM oauthdb_keys;       -- a view over oauthdb_keys()
**    key_id   | status  | is_primary
**   ----------+---------+------------
**    9c0e51d2 | primary | t
**
** SQLite's table also counts the sealed values per key (sealed_values);
** here that is a query of its own (docs/POSTGRES.md), since it reads
** oauth_tokens.
*/
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "oauthdb_pg.h"

PG_FUNCTION_INFO_V1(oauthdb_keys);

Datum oauthdb_keys(PG_FUNCTION_ARGS) {
  ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
  InitMaterializedSRF(fcinfo, 0);
  keyring *kr = oauthdb_keyring("oauthdb_keys");
  for (int i = 0; i < kr->n_keys; i++) {
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", (unsigned)kr->keys[i].id);
    Datum values[3];
    bool nulls[3] = {false, false, false};
    values[0] = PointerGetDatum(cstring_to_text(hex));
    values[1] = PointerGetDatum(cstring_to_text(key_status_name(kr->keys[i].status)));
    values[2] = BoolGetDatum(kr->keys[i].status == KEY_PRIMARY);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  return (Datum)0;
}

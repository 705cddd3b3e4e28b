/*
** spi_plan.c: statements of the extension's C functions, prepared once per
** backend through SPI and kept (oauthdb_pg.h, oauthdb_plan). They name the
** tables in the extension's own schema, looked up from the calling
** function's pg_proc row, so search_path cannot redirect them; nothing is
** prepared before the first call, so CREATE EXTENSION may come before the
** migrations (and a pg_dump restore, which recreates the extension before
** the tables, works). The plan cache replans a kept plan after DDL.
*/
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "oauthdb_pg.h"

SPIPlanPtr oauthdb_plan(FunctionCallInfo fcinfo, SPIPlanPtr *slot,
                        const char *sql_format, int nargs, const Oid *types,
                        int cursor_options) {
  if (*slot) return *slot;
  Oid nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
  char *schema = get_namespace_name(nsp);
  if (!schema)
    oauthdb_error(ERRCODE_UNDEFINED_SCHEMA, "oauthdb: the extension's schema is gone");
  char *sql = psprintf(sql_format, quote_identifier(schema));
  SPIPlanPtr p = SPI_prepare_cursor(sql, nargs, (Oid *)types, cursor_options);
  if (!p) elog(ERROR, "oauthdb: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
  if (SPI_keepplan(p) != 0) elog(ERROR, "oauthdb: SPI_keepplan failed");
  *slot = p;
  return p;
}

uint64 oauthdb_run(SPIPlanPtr plan, Datum *values, const char *nulls,
                   bool read_only) {
  int rc = SPI_execute_plan(plan, values, nulls, read_only, 0);
  if (rc < 0) elog(ERROR, "oauthdb: SPI_execute_plan failed: %s", SPI_result_code_string(rc));
  return SPI_processed;
}

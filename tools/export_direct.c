/*
** export_direct.c: the first load into an empty table, with its secondary
** indexes and foreign keys built once at the end instead of row by row.
**
** A target table found empty under LOCK ... SHARE ROW EXCLUSIVE gets the
** COPY straight into it (export_upsert.c). Into a table as it stands, each
** row then costs an entry in every index and, per foreign key, a trigger
** that looks the parent row up and locks it: most of the time of the COPY.
** So, inside the export's one transaction, before the COPY:
**
**   DROP INDEX <each index that no constraint uses>;
**   ALTER TABLE t DROP CONSTRAINT <each foreign key of t>;
**
** and after it, from the definitions read before dropping
** (pg_get_indexdef, pg_get_constraintdef):
**
**   CREATE INDEX ...;                      -- one sort per index
**   ALTER TABLE t ADD CONSTRAINT ... FOREIGN KEY ...;  -- one set-based check
**
** PostgreSQL still checks every row against every constraint: ADD
** CONSTRAINT validates the whole table in one join (a missing parent fails
** the run with the constraint's name, as the row-by-row trigger would), a
** UNIQUE index build fails on a duplicate, and CHECK constraints, NOT NULL,
** the primary key and unique constraints stay in place throughout. Triggers
** are never disabled. Should anything fail, the transaction rolls back and
** the indexes and constraints are as they were.
**
** Only for a source table of at least DEFER_MIN_ROWS rows, and only what
** can be put back exactly is dropped: an index in the default
** tablespace, not clustered, not the replica identity, with no comment,
** security label or statistics target, that no constraint or other object
** depends on; a foreign key of the table itself (not inherited), without
** comment, whose parent is also a table this run found empty and locked
** (dropping a foreign key locks its parent ACCESS EXCLUSIVE until COMMIT)
** and on whose parent we hold REFERENCES. Nothing is deferred unless we own
** the table, it is a plain table with no inheritance, and no event trigger
** is enabled (our DDL must not run anyone else's code).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "export.h"

static const char *const DEFERRABLE_SQL =
    "WITH t AS (SELECT c.oid FROM pg_class c WHERE c.oid = $1::regclass"
    "   AND c.relkind = 'r' AND pg_has_role(c.relowner, 'USAGE')"
    "   AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = c.oid OR h.inhparent = c.oid)"
    "   AND NOT EXISTS (SELECT 1 FROM pg_event_trigger e WHERE e.evtenabled <> 'D')) "
    "SELECT kind, drop_sql, create_sql, parent FROM ("
    " SELECT 1 AS ord, i.indexrelid AS o, 'i' AS kind,"
    "   format('DROP INDEX %s', i.indexrelid::regclass) AS drop_sql,"
    "   pg_get_indexdef(i.indexrelid) AS create_sql, NULL::text AS parent"
    " FROM pg_index i JOIN t ON i.indrelid = t.oid JOIN pg_class ic ON ic.oid = i.indexrelid"
    " WHERE i.indisvalid AND i.indisready AND i.indislive AND NOT i.indisclustered"
    "   AND NOT i.indisreplident AND ic.reltablespace = 0"
    "   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
    "   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass"
    "                   AND d.refobjid = i.indexrelid)"
    "   AND NOT EXISTS (SELECT 1 FROM pg_description s WHERE s.objoid = i.indexrelid)"
    "   AND NOT EXISTS (SELECT 1 FROM pg_seclabel s WHERE s.objoid = i.indexrelid)"
    "   AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indexrelid"
    "                   AND a.attstattarget >= 0)"
    " UNION ALL"
    " SELECT 2, k.oid, 'f',"
    "   format('ALTER TABLE %s DROP CONSTRAINT %I', k.conrelid::regclass, k.conname),"
    "   format('ALTER TABLE %s ADD CONSTRAINT %I %s', k.conrelid::regclass, k.conname,"
    "          pg_get_constraintdef(k.oid)),"
    "   CASE WHEN p.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
    "        THEN p.relname::text END"
    " FROM pg_constraint k JOIN t ON k.conrelid = t.oid JOIN pg_class p ON p.oid = k.confrelid"
    " WHERE k.contype = 'f' AND k.conislocal AND k.coninhcount = 0 AND k.conparentid = 0"
    "   AND NOT EXISTS (SELECT 1 FROM pg_description s WHERE s.objoid = k.oid)"
    "   AND has_table_privilege(k.confrelid, 'REFERENCES')"
    ") x ORDER BY ord, o";

void deferred_free(ex_deferred *d) {
  for (int i = 0; i < d->n; i++) free(d->create[i]), free(d->what[i]);
  free(d->create);
  free(d->what);
  memset(d, 0, sizeof *d);
}

/* Below this many rows, maintaining the indexes row by row costs less than
** building them again (and takes no ACCESS EXCLUSIVE lock). */
#define DEFER_MIN_ROWS 10000

/* Drop what can be rebuilt after the COPY; remember how to rebuild it. */
int direct_defer(exporter *ex, ex_table *t, const char *qt, ex_deferred *d) {
  memset(d, 0, sizeof *d);
  if (t->n_source < DEFER_MIN_ROWS) return 0;
  const char *params[] = {qt};
  PGresult *r = pg_exec_params(ex, "reading indexes and foreign keys", DEFERRABLE_SQL, 1,
                               params);
  if (!r) return -1;
  ex_buf drops = {0, 0, 0};
  for (int i = 0; i < PQntuples(r); i++) {
    const char *kind = PQgetvalue(r, i, 0);
    if (kind[0] == 'f') {
      /* its parent must be this table or one we found empty and locked */
      int ok = 0;
      if (!PQgetisnull(r, i, 3))
        for (int k = 0; k < ex->n_tables; k++)
          if (!strcmp(ex->tables[k].name, PQgetvalue(r, i, 3)))
            ok = &ex->tables[k] == t || ex->tables[k].direct.chosen;
      if (!ok) continue;
    }
    const char *drop = PQgetvalue(r, i, 1);
    size_t n = strlen(drop);
    unsigned char *at = buf_reserve(&drops, n + 2);
    memcpy(at, drop, n);
    memcpy(at + n, "; ", 2);
    d->create = ex_xrealloc(d->create, sizeof *d->create * (size_t)(d->n + 1));
    d->what = ex_xrealloc(d->what, sizeof *d->what * (size_t)(d->n + 1));
    d->create[d->n] = ex_xstrdup(PQgetvalue(r, i, 2));
    d->what[d->n] = ex_strdup_printf("rebuilding %s of %s after the COPY",
                                     kind[0] == 'f' ? "a foreign key" : "an index", t->name);
    d->n++;
    if (kind[0] == 'f') d->n_fks++;
    else d->n_indexes++;
  }
  PQclear(r);
  if (d->n == 0) {
    free(drops.p);
    return 0;
  }
  *buf_reserve(&drops, 1) = 0;
  r = pg_exec(ex, "dropping indexes and foreign keys until after the COPY", (char *)drops.p);
  free(drops.p);
  if (!r) {
    deferred_free(d);
    return -1;
  }
  PQclear(r);
  return 0;
}

/* After the COPY: rebuild every index, then re-add every foreign key. */
int direct_restore(exporter *ex, ex_deferred *d) {
  int rc = 0;
  if (d->n && !ex->direct.settings_done) {
    /* Index builds sort in memory up to maintenance_work_mem; in the
       database's default tablespace, where the dropped ones were. */
    PGresult *r = pg_exec(
        ex, "settings for rebuilding indexes",
        "SELECT set_config('maintenance_work_mem', '256MB', true) FROM pg_settings "
        " WHERE name = 'maintenance_work_mem' AND setting::bigint < 262144; "
        "SET LOCAL default_tablespace = ''");
    if (!r) rc = -1;
    PQclear(r);
    ex->direct.settings_done = 1;
  }
  for (int i = 0; i < d->n && rc == 0; i++) {
    PGresult *r = pg_exec(ex, d->what[i], d->create[i]);
    if (!r) rc = -1;
    PQclear(r);
  }
  deferred_free(d);
  return rc;
}

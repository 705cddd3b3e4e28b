/*
** export_schema.c: the target. Connection, the migrations that bring its
** schema to the source's version, and what the catalog says about the
** tables (column types, foreign keys, and so the order to load them in).
**
** Migrations are the sql/postgres files embedded at build time
** (postgres_migrations[]), recorded in the target's schema_migrations with
** the SHA-256 of each up script, as the extension does in SQLite. They run
** inside the export's one transaction: a refused or failed export, or a
** --dry-run, leaves the schema as it was. The promotion ledger's own
** migrations (export_ledger.c) go through the same runner, migrate_set,
** with their own table and no bound but this build's last.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "export.h"
#include "migrations.h"

/* Key of pg_advisory_xact_lock: one exporter at a time per database, so
** two runs never race to apply the same migration. ("oaut" in ASCII.) */
#define EXPORT_LOCK_KEY "1868657012"

/* libpq's messages end in a newline (and may have several lines). */
static char *one_line(const char *msg) {
  char *s = ex_xstrdup(msg ? msg : "");
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == ' ')) s[--n] = 0;
  /* newlines and the tab libpq indents continuation lines with */
  size_t k = 0;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i] == '\n' || s[i] == '\t' ? ' ' : s[i];
    if (c == ' ' && k > 0 && s[k - 1] == ' ') continue;
    s[k++] = c;
  }
  s[k] = 0;
  return s;
}

/*
** Report a failed statement. Built from the error's fields rather than the
** full text: DETAIL may quote a whole failing row (password hashes, sealed
** tokens), so it is never printed. Constraint violations and bad values are
** invalid data (65); everything else is the target's problem (69).
*/
int pg_fail(exporter *ex, const char *what, const PGresult *res) {
  if (!ex->pg || PQstatus(ex->pg) != CONNECTION_OK) {
    char *m = one_line(ex->pg ? PQerrorMessage(ex->pg) : "no connection");
    ex_fail(ex, EXIT_TARGET,
            "target %s: connection lost during %s: %s", ex->target_desc, what, m);
    free(m);
    return -1;
  }
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
  const char *table = res ? PQresultErrorField(res, PG_DIAG_TABLE_NAME) : NULL;
  const char *column = res ? PQresultErrorField(res, PG_DIAG_COLUMN_NAME) : NULL;
  char *m = one_line(primary ? primary : PQerrorMessage(ex->pg));
  int data = state && (!strncmp(state, "23", 2) || !strncmp(state, "22", 2));
  char where[512] = "";
  size_t k = 0;
  if (table) k += (size_t)snprintf(where + k, sizeof where - k, " [table %s]", table);
  if (column && k < sizeof where)
    k += (size_t)snprintf(where + k, sizeof where - k, " [column %s]", column);
  if (constraint && k < sizeof where)
    snprintf(where + k, sizeof where - k, " [constraint %s]", constraint);
  ex_fail(ex, data ? EXIT_DATAERR : EXIT_TARGET, "target %s: %s: %s%s (SQLSTATE %s)",
          ex->target_desc, what, m, where, state ? state : "?");
  free(m);
  return -1;
}

static PGresult *check_result(exporter *ex, const char *what, PGresult *r) {
  ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) return r;
  pg_fail(ex, what, r);
  PQclear(r);
  return NULL;
}

PGresult *pg_exec(exporter *ex, const char *what, const char *sql) {
  return check_result(ex, what, PQexec(ex->pg, sql));
}

PGresult *pg_exec_params(exporter *ex, const char *what, const char *sql, int n,
                         const char *const *values) {
  return check_result(ex, what,
                      PQexecParams(ex->pg, sql, n, NULL, values, NULL, NULL, 0));
}

/* NOTICEs (CREATE ... IF NOT EXISTS, the migrations' role notes) are noise
** here; a WARNING is shown, without its DETAIL. */
static void notice_receiver(void *arg, const PGresult *res) {
  exporter *ex = arg;
  const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (!sev || strcmp(sev, "WARNING") != 0) return;
  char *m = one_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
  ex_note(ex, "target warning: %s", m);
  free(m);
}

int target_connect(exporter *ex) {
  if (ex->conninfo) {
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(ex->conninfo, &err);
    /* libpq's parse error may quote part of the string: not shown. */
    PQfreemem(err);
    if (!opts)
      return ex_fail(ex, EXIT_USAGE,
                     "the connection string is not valid libpq syntax (not "
                     "shown: it may hold a password)");
    int has_password = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
      if (!strcmp(o->keyword, "password") && o->val && *o->val) has_password = 1;
    PQconninfoFree(opts);
    if (has_password)
      return ex_fail(ex, EXIT_USAGE,
                     "the connection string holds a password, which any user "
                     "can read from the process list; put it in ~/.pgpass "
                     "(or PGPASSFILE / PGPASSWORD) instead");
  }
  const char *const keys[] = {"dbname", "fallback_application_name",
                              "client_encoding", NULL};
  const char *const vals[] = {ex->conninfo ? ex->conninfo : "", "oauthdb-export",
                              "UTF8", NULL};
  ex->pg = PQconnectdbParams(keys, vals, 1);
  if (!ex->pg) return ex_fail(ex, EXIT_TARGET, "cannot allocate a connection");
  const char *host = PQhost(ex->pg), *db = PQdb(ex->pg);
  ex->target_desc = ex_strdup_printf("host=%s dbname=%s", host && *host ? host : "(default)",
                                     db && *db ? db : "(default)");
  if (PQstatus(ex->pg) != CONNECTION_OK) {
    char *m = one_line(PQerrorMessage(ex->pg));
    ex_fail(ex, EXIT_TARGET, "cannot connect to target %s: %s", ex->target_desc, m);
    free(m);
    return -1;
  }
  PQsetNoticeReceiver(ex->pg, notice_receiver, ex);
  const char *enc = PQparameterStatus(ex->pg, "server_encoding");
  if (!enc || strcmp(enc, "UTF8") != 0)
    return ex_fail(ex, EXIT_TARGET,
                   "target %s: database encoding is %s; oauthdb needs UTF8 "
                   "(CREATE DATABASE ... ENCODING 'UTF8')",
                   ex->target_desc, enc ? enc : "unknown");
  return 0;
}

void target_close(exporter *ex) {
  if (ex->pg) PQfinish(ex->pg);
  ex->pg = NULL;
}

int target_begin(exporter *ex) {
  PGresult *r = pg_exec(ex, "BEGIN",
                        "SET temp_buffers = '128MB'; "
                        "BEGIN; SET LOCAL client_min_messages = warning; "
                        /* the audit triggers of migration 0003 record
                           no event for rows this replays */
                        "SET LOCAL oauthdb.replaying = 'on'; "
                        "SELECT pg_advisory_xact_lock(" EXPORT_LOCK_KEY ")");
  if (!r) return -1;
  PQclear(r);
  return 0;
}

static const migration *find_migration(const migration_set *set, int version) {
  for (int i = 0; i < set->count; i++)
    if (set->list[i].version == version) return &set->list[i];
  return NULL;
}

/*
** Brings the target to set->upto: the schema's migrations (up to the
** source's version) and the ledger's (all of them) go through here. The
** set's table (created if missing) records each applied migration with the
** SHA-256 of its up script. Refused, before anything is applied: a
** migration this build does not know, one whose checksum differs from this
** build's, a gap, or a target already past set->upto. *before gets the
** version the target was at.
*/
int migrate_set(exporter *ex, const migration_set *set, int *before) {
  char *sql = ex_strdup_printf(
      "CREATE TABLE IF NOT EXISTS %s ("
      " version integer PRIMARY KEY CHECK (version > 0),"
      " name text NOT NULL,"
      " checksum text NOT NULL CHECK (length(checksum) = 64),"
      " applied_at timestamptz NOT NULL DEFAULT now())", set->table);
  char *what = ex_strdup_printf("creating %s", set->table);
  PGresult *r = pg_exec(ex, what, sql);
  free(sql), free(what);
  if (!r) return -1;
  PQclear(r);
  sql = ex_strdup_printf("SELECT version, name, checksum FROM %s ORDER BY version", set->table);
  what = ex_strdup_printf("reading %s", set->table);
  r = pg_exec(ex, what, sql);
  free(sql), free(what);
  if (!r) return -1;
  int expected = 1;
  for (int i = 0; i < PQntuples(r); i++) {
    int v = atoi(PQgetvalue(r, i, 0));
    const char *name = PQgetvalue(r, i, 1), *sum = PQgetvalue(r, i, 2);
    const migration *m = find_migration(set, v);
    if (!m) {
      ex_fail(ex, EXIT_TARGET,
              "target %s%s has migration %04d_%s, which this oauthdb-export does "
              "not know: %s; refusing",
              ex->target_desc, set->owner, v, name, set->newer);
      PQclear(r);
      return -1;
    }
    char want[65];
    migration_checksum(m, want);
    if (strcmp(sum, want) != 0) {
      ex_fail(ex, EXIT_TARGET,
              "target %s: %s %04d_%s differs from this build's "
              "(checksum in target %.12s..., in this build %.12s...); refusing",
              ex->target_desc, set->what, v, m->name, sum, want);
      PQclear(r);
      return -1;
    }
    if (v != expected) {
      ex_fail(ex, EXIT_TARGET, "target %s: %s lacks %04d (has %04d_%s); refusing",
              ex->target_desc, set->table, expected, v, m->name);
      PQclear(r);
      return -1;
    }
    expected++;
  }
  PQclear(r);
  *before = expected - 1;
  if (*before > set->upto) {
    const migration *m = find_migration(set, *before);
    return ex_fail(ex, EXIT_TARGET,
                   "target %s is at %s %04d_%s, newer than the source "
                   "(%04d); migrate the source first (SELECT oauthdb_migrate()); "
                   "refusing",
                   ex->target_desc, set->what, m->version, m->name, set->upto);
  }
  for (int v = *before + 1; v <= set->upto; v++) {
    const migration *m = find_migration(set, v);
    if (!m) return ex_fail(ex, EXIT_TARGET, "this build has no %s %04d", set->what, v);
    char step[128];
    snprintf(step, sizeof step, "%s %04d_%s", set->what, m->version, m->name);
    r = pg_exec(ex, step, m->up);
    if (!r) return -1;
    PQclear(r);
    char sum[65], version[16];
    migration_checksum(m, sum);
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name, sum};
    sql = ex_strdup_printf("INSERT INTO %s (version, name, checksum) VALUES ($1, $2, $3)",
                           set->table);
    r = pg_exec_params(ex, step, sql, 3, params);
    free(sql);
    if (!r) return -1;
    PQclear(r);
  }
  return 0;
}

/* The schema's migrations, up to the source's version. */
int target_migrate(exporter *ex) {
  char newer[96];
  snprintf(newer, sizeof newer, "the target is newer than the source (%04d)",
           ex->source_version);
  const migration_set schema = {"schema_migrations", "migration", "", newer,
                                postgres_migrations, postgres_migration_count,
                                ex->source_version};
  return migrate_set(ex, &schema, &ex->target_version_before);
}

static int kind_of(const char *typname, pg_kind *k) {
  static const struct {
    const char *name;
    pg_kind kind;
  } map[] = {
      {"uuid", PGK_UUID},         {"text", PGK_TEXT},   {"varchar", PGK_TEXT},
      {"json", PGK_JSON},         {"jsonb", PGK_JSONB}, {"timestamptz", PGK_TIMESTAMPTZ},
      {"timestamp", PGK_TIMESTAMP}, {"bool", PGK_BOOL}, {"int2", PGK_INT2},
      {"int4", PGK_INT4},         {"int8", PGK_INT8},   {"bytea", PGK_BYTEA},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(typname, map[i].name)) {
      *k = map[i].kind;
      return 0;
    }
  return -1;
}

static int table_index(const exporter *ex, const char *name) {
  for (int i = 0; i < ex->n_tables; i++)
    if (!strcmp(ex->tables[i].name, name)) return i;
  return -1;
}

static int table_columns(exporter *ex, ex_table *t) {
  const char *params[] = {t->name};
  /* The target's types decide the encoding, whatever the source declares. */
  PGresult *r = pg_exec_params(
      ex, "reading the catalog",
      "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
      "       coalesce(bt.typname, ty.typname), a.attnotnull "
      "FROM pg_attribute a "
      "JOIN pg_class c ON c.oid = a.attrelid "
      "JOIN pg_type ty ON ty.oid = a.atttypid "
      "LEFT JOIN pg_type bt ON ty.typtype = 'd' AND bt.oid = ty.typbasetype "
      "WHERE c.relname = $1 AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
      "  AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
      "ORDER BY a.attnum",
      1, params);
  if (!r) return -1;
  if (PQntuples(r) == 0) {
    PQclear(r);
    return ex_fail(ex, EXIT_TARGET,
                   "target %s has no table %s in its current schema after "
                   "migration %04d; source and target schemas differ",
                   ex->target_desc, t->name, ex->source_version);
  }
  t->cols = ex_xmalloc(sizeof *t->cols * (size_t)PQntuples(r));
  for (int i = 0; i < PQntuples(r); i++) {
    const char *name = PQgetvalue(r, i, 0);
    int in_source = 0;
    for (int j = 0; j < t->n_src_cols; j++)
      if (!strcmp(t->src_cols[j], name)) in_source = 1;
    if (!in_source) continue;  /* a target-only column keeps its default */
    ex_column *c = &t->cols[t->n_cols];
    memset(c, 0, sizeof *c);
    if (kind_of(PQgetvalue(r, i, 2), &c->kind)) {
      ex_fail(ex, EXIT_TARGET,
              "target %s: column %s.%s has type %s, which oauthdb-export "
              "cannot encode", ex->target_desc, t->name, name, PQgetvalue(r, i, 1));
      PQclear(r);
      return -1;
    }
    c->name = ex_xstrdup(name);
    c->pg_type = ex_xstrdup(PQgetvalue(r, i, 1));
    c->not_null = PQgetvalue(r, i, 3)[0] == 't';
    c->sealed = export_is_sealed(t->name, name);
    c->sent = !(c->sealed && ex->secrets == SECRETS_OMIT);
    if (c->sealed) t->has_sealed = 1;
    if (!strcmp(name, "id")) t->id_col = t->n_cols;
    t->n_cols++;
  }
  PQclear(r);
  for (int j = 0; j < t->n_src_cols; j++) {
    int found = 0;
    for (int k = 0; k < t->n_cols; k++)
      if (!strcmp(t->cols[k].name, t->src_cols[j])) found = 1;
    if (!found)
      return ex_fail(ex, EXIT_TARGET,
                     "source column %s.%s has no counterpart in target %s; "
                     "source and target schemas differ", t->name, t->src_cols[j],
                     ex->target_desc);
  }
  if (t->id_col < 0)
    return ex_fail(ex, EXIT_TARGET, "table %s has no id column to upsert on", t->name);
  if (t->cols[t->id_col].kind != PGK_UUID && t->cols[t->id_col].kind != PGK_TEXT)
    return ex_fail(ex, EXIT_TARGET, "table %s: id is neither uuid nor text", t->name);
  return 0;
}

static int table_fks(exporter *ex) {
  PGresult *r = pg_exec(
      ex, "reading foreign keys",
      "SELECT cl.relname, a.attname, pcl.relname, pa.attname "
      "FROM pg_constraint con "
      "JOIN pg_class cl ON cl.oid = con.conrelid "
      "JOIN pg_class pcl ON pcl.oid = con.confrelid "
      "CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(col, pcol) "
      "JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.col "
      "JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = k.pcol "
      "WHERE con.contype = 'f' "
      "  AND cl.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
      "ORDER BY con.conname, k.col");
  if (!r) return -1;
  for (int i = 0; i < PQntuples(r); i++) {
    int ti = table_index(ex, PQgetvalue(r, i, 0));
    int pi = table_index(ex, PQgetvalue(r, i, 2));
    if (ti < 0 || pi < 0) continue;  /* not exported: nothing to order */
    ex_table *t = &ex->tables[ti];
    int col = -1;
    for (int j = 0; j < t->n_cols; j++)
      if (!strcmp(t->cols[j].name, PQgetvalue(r, i, 1))) col = j;
    if (col < 0) continue;
    t->fks = ex_xrealloc(t->fks, sizeof *t->fks * (size_t)(t->n_fks + 1));
    t->fks[t->n_fks].col = col;
    t->fks[t->n_fks].parent = pi;
    t->fks[t->n_fks].parent_col = ex_xstrdup(PQgetvalue(r, i, 3));
    t->n_fks++;
  }
  PQclear(r);
  return 0;
}

/*
** Order the tables parents first (Kahn's algorithm, stable in the source's
** creation order), then renumber the foreign keys' parent indexes.
*/
static int order_tables(exporter *ex) {
  int n = ex->n_tables;
  int *order = ex_xmalloc(sizeof(int) * (size_t)n), *placed = ex_xmalloc(sizeof(int) * (size_t)n);
  int *newpos = ex_xmalloc(sizeof(int) * (size_t)n);
  for (int i = 0; i < n; i++) placed[i] = 0;
  int k = 0;
  while (k < n) {
    int progress = 0;
    for (int i = 0; i < n; i++) {
      if (placed[i]) continue;
      int ready = 1;
      for (int f = 0; f < ex->tables[i].n_fks; f++) {
        int p = ex->tables[i].fks[f].parent;
        if (p != i && !placed[p]) ready = 0;
      }
      if (!ready) continue;
      placed[i] = 1;
      order[k++] = i;
      progress = 1;
      break;  /* restart: keeps creation order among ready tables */
    }
    if (!progress) {
      free(order), free(placed), free(newpos);
      return ex_fail(ex, EXIT_TARGET, "the tables' foreign keys form a cycle");
    }
  }
  ex_table *sorted = ex_xmalloc(sizeof *sorted * (size_t)n);
  for (int i = 0; i < n; i++) {
    sorted[i] = ex->tables[order[i]];
    newpos[order[i]] = i;
  }
  for (int i = 0; i < n; i++)
    for (int f = 0; f < sorted[i].n_fks; f++)
      sorted[i].fks[f].parent = newpos[sorted[i].fks[f].parent];
  free(ex->tables);
  ex->tables = sorted;
  free(order), free(placed), free(newpos);
  return 0;
}

int target_catalog(exporter *ex) {
  for (int i = 0; i < ex->n_tables; i++)
    if (table_columns(ex, &ex->tables[i])) return -1;
  if (table_fks(ex)) return -1;
  return order_tables(ex);
}

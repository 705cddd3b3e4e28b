/*
** export.h: what the parts of oauthdb-export share.
**
**   export_main.c      main(): options, the run from start to end, report
**   export_util.c      allocation, messages, progress, trace, buffers, quoting
**   export_source.c    the dev database: read-only, one read transaction
**   export_schema.c    the target: connection, migrations, catalog, FK order
**   export_scope.c     which tables are promoted by default, --include
**   export_validate.c  row checks before anything is sent
**   export_json.c      JSON that PostgreSQL's jsonb accepts, and its text form
**   export_copy.c      binary COPY encoding, streamed from sqlite3_step
**   export_upsert.c    pass 2 per table: which path, staging, upsert, counts
**   export_direct.c    an empty table: indexes and foreign keys built after
**   export_digest.c    a rerun: row digests compared, only changed rows sent
**   export_secrets.c   --secrets=keep|reseal|omit
**   export_verify.c    per-table row count and content digest on both sides
**
** docs/EXPORT.md describes the program for its users.
*/
#ifndef OAUTHDB_EXPORT_H
#define OAUTHDB_EXPORT_H

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "keyring.h"

/* Exit codes (sysexits.h values, documented in --help and docs/EXPORT.md). */
enum {
  EXIT_OK = 0,
  EXIT_USAGE = 64,      /* bad options; also: sealed values and no --secrets */
  EXIT_DATAERR = 65,    /* a source row is invalid (or the target refused one) */
  EXIT_NOINPUT = 66,    /* the source database cannot be opened or read */
  EXIT_TARGET = 69,     /* the target: connection, schema, server errors */
  EXIT_VERIFY = 70,     /* --verify found a difference; nothing committed */
  EXIT_CONFLICT = 75    /* rows changed in production and in dev: --on-conflict */
};

typedef enum on_conflict {
  CONFLICT_STOP = 0,    /* list them and roll back (the default) */
  CONFLICT_DEV,         /* dev's row wins */
  CONFLICT_PROD         /* production's row stays */
} on_conflict;

typedef enum secrets_mode {
  SECRETS_UNSET = 0,
  SECRETS_KEEP,         /* sealed values copied as they are */
  SECRETS_RESEAL,       /* opened with the dev keyring, sealed for production */
  SECRETS_OMIT          /* sealed columns left out; rows needing them skipped */
} secrets_mode;

/* PostgreSQL column types the exporter encodes (from the target catalog). */
typedef enum pg_kind {
  PGK_UUID,
  PGK_TEXT,             /* text, varchar */
  PGK_JSON,
  PGK_JSONB,
  PGK_TIMESTAMPTZ,
  PGK_TIMESTAMP,
  PGK_BOOL,
  PGK_INT2,
  PGK_INT4,
  PGK_INT8,
  PGK_BYTEA
} pg_kind;

typedef struct ex_column {
  char *name;
  char *pg_type;        /* format_type() text, for the staging table */
  pg_kind kind;
  int not_null;
  int sealed;           /* holds sealed values (docs/FORMAT.md) */
  int sent;             /* part of the COPY (sealed columns under omit: not) */
} ex_column;

typedef struct ex_fk {  /* one column of a foreign key, as PostgreSQL has it */
  int col;              /* index into the child's cols */
  int parent;           /* index into exporter.tables */
  char *parent_col;
} ex_fk;

typedef struct ex_counts {
  int64_t read, inserted, updated, unchanged, skipped;
  int64_t kept;           /* production changed them since: left as they are */
  int64_t conflicts;      /* changed on both sides (resolved by --on-conflict) */
  int64_t removed_in_dev; /* promoted earlier, no longer in the source */
  int64_t deleted;        /* of those, deleted in production (--delete-removed) */
} ex_counts;

typedef struct ex_digest_state ex_digest_state;

/* A summary of a set of (id, digest) pairs: the lane-wise sum of
** BLAKE2b-256(id || digest), so any order gives the same (export_digest.c). */
#define LEDGER_DIGEST_BYTES 16
typedef struct ex_summary {
  uint64_t lane[4];
  int64_t rows;
} ex_summary;
typedef struct ex_digester ex_digester;

typedef struct ex_table {
  char *name;
  int n_cols;
  ex_column *cols;      /* target columns the source also has, target order */
  int id_col;           /* index of "id", the upsert's conflict key */
  int n_src_cols;
  char **src_cols;      /* the source's column names (source_plan) */
  int n_fks;
  ex_fk *fks;
  int has_sealed;
  int64_t n_source;     /* count(*) in the source snapshot (progress) */
  int n_sent;           /* columns sent (set by copy_table) */
  ex_counts counts;
  /* Each way of loading keeps its own state (export_upsert.c chooses):
     an empty target table gets the COPY itself (export_direct.c) */
  struct { int chosen; } direct;
  /* a table the target holds: pass 1 compares, only changed rows go
     (export_digest.c) */
  struct {
    int chosen;
    int rowid_order;    /* ids rise with rowid: read in file order, no index */
    int unchanged;      /* pass 1: the summary says dev changed no row */
    struct ex_digest_state *state;
  } rerun;
  /* --verify: the source side's digest (export_verify.c) */
  struct { int done; int64_t rows; __int128 sum; } verify;
  /* the promotion ledger (export_ledger.c) */
  struct {
    int no;             /* oauthdb_promoted_tables.table_no */
    int64_t rows;       /* 1 when the ledger holds rows of this table, else 0 */
    int gone_ready;     /* pg_temp.oauthdb_gone_N holds the rows dev removed */
    int wrote;          /* this run wrote ledger rows of this table */
    /* the table's summary as the run found it (has_summary), and as it
       holds at the end of this run (known; export_digest.c) */
    int has_summary, known;
    ex_summary summary, found;
    char *summary_xmins;         /* '{x,y}' as stored, or NULL */
    char *found_xmins;           /* the same for `found` (malloc'd) */
  } ledger;
} ex_table;

/* A row changed on both sides, for the report (export_ledger.c). */
typedef struct ex_conflict {
  char *table, *id, *columns, *reason;
} ex_conflict;

/* One invalid-row finding, kept (up to a cap) for the --json report. */
typedef struct ex_finding {
  char *table, *id, *column, *reason;
} ex_finding;

/* A table the source has and this run leaves out (export_scope.c). */
typedef struct ex_left_out {
  char *table;
  int64_t rows;
  const char *reason;
} ex_left_out;

typedef struct exporter {
  /* options */
  const char *source_path;
  const char *conninfo;          /* NULL: PG* environment */
  int dry_run, verify, json, all_errors;
  int progress;                  /* 1: draw the bar on stderr */
  secrets_mode secrets;
  const char *source_keyring_path, *target_keyring_path;
  unsigned include_mask;         /* --include: opt-in tables asked for */
  on_conflict on_conflict;       /* --on-conflict=dev|prod */
  int delete_removed;            /* --delete-removed */
  int allow_secrets_change;      /* --allow-secrets-change */
  const char *source_id_opt;     /* --source-id */

  sqlite3 *src;
  PGconn *pg;
  char *target_desc;             /* "host=... dbname=..." never a password */
  keyring *dev_kr, *prod_kr;

  int n_tables;
  ex_table *tables;              /* in foreign-key order once planned */

  int source_version;
  int target_version_before;
  int64_t sealed_values;         /* sealed values in the source (pass 1) */
  int64_t sealed_counted;
  int64_t resealed, reseal_kept; /* reseal: newly sealed / production kept */

  int n_left_out;
  ex_left_out *left_out;

  /* the promotion ledger (export_ledger.c) */
  struct {
    char *source_id;             /* the dev database's identity */
    char run_id[24];             /* this run's oauthdb_promotion_runs row */
    char xid[24];                /* its transaction id: rows it writes have xmin = xid */
    int n_key_ids;
    uint32_t key_ids[16];        /* key ids of the source's sealed values */
    int64_t n_conflicts;
    int n_conflicts_kept;
    ex_conflict *conflicts;      /* the first MAX_CONFLICTS_KEPT, for --json */
    double seconds;              /* spent on the ledger (trace, bench) */
    int64_t rows_before;         /* ledger rows of these tables, as counted */
    int64_t rows_written;        /* ledger rows this run wrote */
    int pk_deferred;             /* an empty ledger: its key built after (ledger_finish) */
  } ledger;

  /* findings */
  int64_t n_invalid;
  int n_findings;
  ex_finding *findings;
  int exit_code;                 /* first failure's code */
  char *failure;                 /* its message, for --json */
  int verified;                  /* --verify passed */
  struct { int settings_done; } direct;  /* SET LOCAL for index builds */
  int committed;

  /* progress */
  int64_t progress_total, progress_done;
  double progress_last;
  const char *progress_phase;
  const char *progress_table;
} exporter;

/* The one growable buffer (export_util.c): bytes, or SQL text built with
** buf_printf (which keeps a NUL after len). */
typedef struct ex_buf {
  unsigned char *p;
  size_t len, cap;
} ex_buf;
unsigned char *buf_reserve(ex_buf *b, size_t n);      /* n more bytes at the end */
void buf_put(ex_buf *b, const void *data, size_t n);
void buf_printf(ex_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_be(ex_buf *b, uint64_t v, int bytes);       /* big-endian integer */
void buf_field(ex_buf *b, const void *data, size_t n); /* int32 length + bytes */
/* SQL identifier quoting, the same in PostgreSQL and SQLite (malloc'd). */
char *sql_ident(const char *name);

/* export_util.c: messages. ex_fail prints "oauthdb-export: ..." once per
** failure, records the exit code of the first and returns -1. */
int ex_fail(exporter *ex, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ex_note(exporter *ex, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A malloc'd printf; exits on out-of-memory (there is nothing to save). */
char *ex_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *ex_xmalloc(size_t n);
void *ex_xrealloc(void *p, size_t n);
char *ex_xstrdup(const char *s);
void progress_step(exporter *ex, int64_t rows);
void progress_begin(exporter *ex, const char *phase, const char *table);
void progress_end(exporter *ex);
void ex_trace(exporter *ex, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
double ex_now(void);  /* monotonic seconds */

/* export_source.c */
int source_open(exporter *ex);
int source_plan(exporter *ex);          /* tables, columns, counts */
int source_sealed_count(exporter *ex);
void source_close(exporter *ex);
/* "SELECT <sent columns> FROM table" (plus extras), for passes over rows. */
char *source_select_sql(const ex_table *t, int with_json_valid);
char *source_select_sql_ex(const ex_table *t, int with_json_valid, const char *more,
                           const char *suffix);

/* export_schema.c */
int target_connect(exporter *ex);
int target_begin(exporter *ex);
int target_migrate(exporter *ex);
/* A series of migrations and the table in the target that records them
** (export_schema.c runs both the schema's and the ledger's). */
typedef struct migration_set {
  const char *table;             /* schema_migrations, oauthdb_ledger_migrations */
  const char *what;              /* "migration", "ledger migration": messages */
  const char *owner;             /* "" or "'s promotion ledger": whose migration */
  const char *newer;             /* why the target may hold one we do not know */
  const struct migration *list;
  int count;
  int upto;                      /* apply up to this version */
} migration_set;
int migrate_set(exporter *ex, const migration_set *set, int *before);
int target_catalog(exporter *ex);       /* column types, FKs, FK order */
void target_close(exporter *ex);
/* Run SQL expecting PGRES_COMMAND_OK or TUPLES_OK; on error ex_fail. The
** result is returned (caller PQclear) or NULL on failure. */
PGresult *pg_exec(exporter *ex, const char *what, const char *sql);
PGresult *pg_exec_params(exporter *ex, const char *what, const char *sql,
                         int n, const char *const *values);
int pg_fail(exporter *ex, const char *what, const PGresult *res);

/* export_scope.c */
int scope_parse_include(exporter *ex, const char *list);
int scope_apply(exporter *ex);

/* export_ledger.c: three-way promotion (docs/EXPORT.md). */
#define LEDGER_DIGEST_COL "oauthdb_digest"   /* the staging table's extra column */
int ledger_prepare(exporter *ex);          /* after target_catalog */
void ledger_note_key_id(exporter *ex, uint32_t kid);  /* pass 1 */
int ledger_record_direct(exporter *ex, ex_table *t);  /* an empty table, loaded */
/* A staged table: classify each staged row (source, ledger, target), keep
** only the rows to write in stage, check secrets. *n_to_write: how many. */
int ledger_classify(exporter *ex, ex_table *t, const char *qt, const char *stage,
                    int index, int full_stage, int64_t *n_to_write);
int ledger_record(exporter *ex, ex_table *t, const char *qt, int index);
int ledger_gone_full(exporter *ex, ex_table *t, int index, int plan_exists);
/* Rows promoted earlier that the source no longer has. */
int ledger_gone_from_ids(exporter *ex, ex_table *t, int index, const char *ids,
                         int64_t n_ids);
/* The changed-rows path: of the rows dev did not change, those production
** did (kept), from row versions. */
int ledger_count_kept(exporter *ex, ex_table *t, const char *qt, int index, int staged);
int ledger_finish(exporter *ex);           /* deletes, conflicts, the run's counts */
void ledger_free(exporter *ex);

/* export_validate.c */
int validate_source(exporter *ex);
int utf8_check(const unsigned char *s, size_t n, size_t *bad_at);
int uuid_check(const unsigned char *s, size_t n);
#define TS_MAX_SECONDS INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
void ex_invalid(exporter *ex, const ex_table *t, const char *id,
                const char *column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* export_json.c: JSON text already accepted by json_valid(). */
/* NULL if PostgreSQL's jsonb would take it, else a fixed reason. */
const char *json_pg_problem(const char *s, size_t n);
/* jsonb's text output (jsonb::text) of s, appended to *buf (ex_xrealloc'd).
** Returns 0, or -1 if s is not JSON jsonb accepts. */
int json_canonical(const char *s, size_t n, char **buf, size_t *len,
                   size_t *cap);

/* export_secrets.c */
int export_is_sealed(const char *table, const char *column);
int secrets_prepare(exporter *ex);      /* decide and load keyrings */
/* Check one sealed value (pass 1). Returns NULL or a reason. */
const char *secrets_check(exporter *ex, const ex_table *t, const ex_column *c,
                          const char *id, const unsigned char *v, size_t n);
/* The bytes to send for a sealed value: keep copies, reseal re-seals into
** *out (ex_xrealloc'd). Returns the length, or -1 after ex_fail. */
int64_t secrets_transform(exporter *ex, const ex_table *t, const ex_column *c,
                          const char *id, const unsigned char *v, size_t n,
                          unsigned char **out, size_t *cap);
/* reseal: where production already holds a value with the same plaintext,
** keep production's ciphertext so that a rerun changes nothing. */
int secrets_reconcile(exporter *ex, const ex_table *t, const char *stage);
void secrets_free(exporter *ex);
const char *secrets_mode_name(secrets_mode m);


/* export_copy.c */
void uuid_bytes(const unsigned char *text, unsigned char u[16]);
/* The current row's value in column col of st as a binary COPY field. */
int encode_value(exporter *ex, const ex_table *t, const ex_column *c, sqlite3_stmt *st,
                 int col, ex_buf *b, unsigned char **sealed, size_t *sealed_cap,
                 int raw_sealed);
char *copy_column_list(const ex_table *t);  /* the sent columns, quoted */

/* One binary COPY FROM STDIN, streamed in 64 KiB chunks. */
typedef struct ex_copy {
  exporter *ex;
  char *what;                    /* for messages: "COPY of users" */
  ex_buf b;
  int64_t rows;
  int started;
  int failed;                    /* 1: our error (abort); 2: connection broken */
  unsigned char *sealed;         /* reseal's output */
  size_t sealed_cap;
  ex_digester *digester;         /* set: each tuple ends with the row's digest */
} ex_copy;
int copy_start(exporter *ex, ex_copy *c, const char *sql, const char *what);
int copy_tuple_done(ex_copy *c);
int copy_source_row(ex_copy *c, ex_table *t, sqlite3_stmt *st);
int copy_finish(ex_copy *c, int64_t *taken);
/* COPY the table's rows into dest; *rows gets the count the target took. */
int copy_table(exporter *ex, ex_table *t, const char *dest, int64_t *rows);
/* The same into a staging table whose last column is LEDGER_DIGEST_COL. */
int copy_table_digested(exporter *ex, ex_table *t, const char *dest, int64_t *rows);

/* export_upsert.c */
int load_tables(exporter *ex);

/* export_direct.c: an empty table's indexes and foreign keys, dropped
** before its COPY and rebuilt after it. */
typedef struct ex_deferred {
  int n, n_indexes, n_fks;
  char **create;       /* CREATE INDEX / ALTER TABLE ... ADD CONSTRAINT */
  char **what;         /* for messages */
} ex_deferred;
int direct_defer(exporter *ex, ex_table *t, const char *qt, ex_deferred *d);
int direct_restore(exporter *ex, ex_deferred *d);
void deferred_free(ex_deferred *d);

/* export_digest.c: a table the target already has rows of. Pass 1 merges
** the source's row digests with the target's (digest_begin, digest_row for
** each valid row in id order, digest_end); after it, digest_stage puts only
** the rows that differ into stage (created with create_stage_sql), for the
** upsert. digest_prepare, before pass 1, picks the tables (t->digest). */
int digest_prepare(exporter *ex);
int digest_begin(exporter *ex, ex_table *t);
/* 1: the row equals the ledger's (pass 1 skips its checks), 0: changed, -1 */
int digest_row(exporter *ex, ex_table *t, sqlite3_stmt *st);
int digest_end(exporter *ex, ex_table *t, int stopped);
int digest_usable(const ex_table *t);
int digest_stage(exporter *ex, ex_table *t, const char *stage, const char *create_stage_sql,
                 int64_t *n_staged);
/* The ledger's digest of a row: BLAKE2b over its sent columns but id,
** each as SQLite holds it, sealed values as the source holds them. */
ex_digester *digester_new(const ex_table *t);
void digester_delete(ex_digester *d, const ex_table *t);
int digester_row(exporter *ex, const ex_table *t, ex_digester *d, sqlite3_stmt *st,
                 unsigned char h[LEDGER_DIGEST_BYTES]);
/* Table summaries (oauthdb_promoted_tables.summary). */
void summary_add(ex_summary *s, const unsigned char id[16],
                 const unsigned char digest[LEDGER_DIGEST_BYTES]);
void summary_bytes(const ex_summary *s, unsigned char out[32]);
/* Pass 1, a table whose ledger summary is known: one read of the source
** (digests only, no checks) says whether dev changed any row since. Sets
** t->rerun.unchanged. */
int digest_summary_scan(exporter *ex, ex_table *t);
/* The ids (text, each NUL-terminated) of ledger rows the source lacks. */
const char *digest_gone_ids(const ex_table *t, int64_t *n);
char *digest_unchanged(const ex_table *t, int64_t *same);
void digest_state_free(ex_table *t);

/* export_verify.c */
/* Add the current row of st (a pass-2 statement) to t's source digest. */
int verify_add_row(exporter *ex, ex_table *t, sqlite3_stmt *st);
int verify_table(exporter *ex, ex_table *t, const char *stage);
/* Staged tables: the staging table holds exactly the source's rows ... */
int verify_staged(exporter *ex, ex_table *t, const char *stage);
/* ... and every row written, or found equal, is in the target as staged. */
int verify_written(exporter *ex, ex_table *t, const char *qt, const char *stage, int index);
/* The column list rendering digested on the PostgreSQL side (malloc'd). */
char *verify_pg_digest_expr(const exporter *ex, const ex_table *t,
                            const char *alias);
int verify_included(const exporter *ex, const ex_column *c);

#endif /* OAUTHDB_EXPORT_H */

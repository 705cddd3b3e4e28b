/*
** export_main.c: oauthdb-export, promote a dev database into PostgreSQL.
**
**   oauthdb-export --secrets=keep dev.db 'host=db.internal dbname=app'
**   oauthdb-export --dry-run --verify --json --secrets=omit dev.db
**
** The run, in order (docs/EXPORT.md, "What a run does"):
**   1. open the source read-only and start one read transaction, so every
**      table comes from the same snapshot while the app keeps writing;
**   2. decide what happens to sealed values (no default: see secrets.c);
**   3. connect, BEGIN, take the exporter's advisory lock, bring the target
**      schema to the source's migration version (or refuse);
**   4. check every source row (pass 1); a bad row stops the run before any
**      row is sent;
**   5. stream every table with binary COPY into staging tables and upsert
**      in foreign-key order (pass 2); count inserted/updated/unchanged;
**   6. --verify: compare row counts and content digests on both sides;
**   7. COMMIT, or ROLLBACK for --dry-run or any failure; report.
**
** Messages go to stderr and never contain a password, a key, a token or
** the connection string itself: the target is named by host and dbname.
*/
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "export.h"

#define EXPORT_VERSION "0.1.0"

static void usage(FILE *f) {
  fputs(
      "usage: oauthdb-export [OPTIONS] SOURCE.db [CONNINFO]\n"
      "\n"
      "Promote an oauthdb dev database (SQLite) into PostgreSQL: bring the\n"
      "target schema to the source's migration version, check every row,\n"
      "then promote it in one transaction: rows production changed since the\n"
      "last promotion are kept, never overwritten (see docs/EXPORT.md).\n"
      "\n"
      "CONNINFO is a libpq connection string or URI; without it the PG*\n"
      "environment variables apply. A password is refused on the command\n"
      "line: use ~/.pgpass, PGPASSFILE or PGPASSWORD.\n"
      "\n"
      "  --secrets=keep         copy sealed token values as they are\n"
      "  --secrets=reseal       open with the dev keyring, seal with the\n"
      "                         production keyring's primary key\n"
      "  --secrets=omit         leave sealed columns out; token rows not\n"
      "                         already in production are skipped\n"
      "      (required when the source holds sealed values)\n"
      "  --include=TABLE,...    also promote user_sessions, token_refresh_log,\n"
      "                         auth_audit_log or sync_logs (left out by default)\n"
      "  --on-conflict=WHO      rows changed both in production and in dev\n"
      "                         since the last promotion: dev (dev's row is\n"
      "                         written) or prod (production's stays); without\n"
      "                         it they are listed and nothing is committed\n"
      "  --delete-removed       delete in production the rows dev removed since\n"
      "                         they were promoted, where production has not\n"
      "                         changed them and nothing references them\n"
      "  --allow-secrets-change accept a change of --secrets mode or dev keys\n"
      "                         for rows promoted before (never keep over\n"
      "                         values production's keyring opens)\n"
      "  --source-id=NAME       this dev database's name in the ledger (default:\n"
      "                         derived from host and path)\n"
      "  --source-keyring=FILE  dev keyring for reseal (default $OAUTHDB_KEYRING)\n"
      "  --target-keyring=FILE  production keyring for reseal\n"
      "  -n, --dry-run          do everything, then roll back\n"
      "  --verify               compare row counts and content digests of\n"
      "                         both sides before COMMIT\n"
      "  --all-errors           report every invalid row, not just the first\n"
      "  --json                 the report as JSON on stdout\n"
      "  --progress=WHEN        auto (stderr is a terminal), always, never\n"
      "  -h, --help             this text\n"
      "  -V, --version          the version\n"
      "\n"
      "Exit status: 0 done; 64 usage (or sealed values without --secrets);\n"
      "65 invalid data; 66 source problem; 69 target problem;\n"
      "70 verification failed; 75 conflicts (see --on-conflict). Nothing is committed unless the status is 0.\n"
      "See docs/EXPORT.md.\n",
      f);
}

/* ---- report ----------------------------------------------------------- */

static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

static const char *outcome(const exporter *ex) {
  if (ex->exit_code) return "failed";
  return ex->committed ? "committed" : "rolled back (dry run)";
}

static void report_text(const exporter *ex) {
  printf("oauthdb-export: %s -> %s\n", ex->source_path,
         ex->target_desc ? ex->target_desc : "(not connected)");
  if (ex->target_version_before == ex->source_version)
    printf("schema: target already at %04d\n", ex->source_version);
  else
    printf("schema: target migrated from %04d to %04d%s\n", ex->target_version_before,
           ex->source_version, ex->dry_run ? " (rolled back with the rest)" : "");
  switch (ex->secrets) {
  case SECRETS_KEEP:
    printf("secrets: keep (%lld sealed values copied as they are)\n",
           (long long)ex->sealed_values);
    break;
  case SECRETS_RESEAL:
    printf("secrets: reseal (%lld sealed for the target keyring, %lld already "
           "in production kept)\n",
           (long long)ex->resealed, (long long)ex->reseal_kept);
    break;
  case SECRETS_OMIT:
    printf("secrets: omit (sealed columns left out)\n");
    break;
  default:
    printf("secrets: none in the source\n");
  }
  if (ex->ledger.source_id)
    printf("ledger: run %s, source id %s\n", ex->ledger.run_id, ex->ledger.source_id);
  printf("%-17s %8s %8s %8s %9s %8s %9s %8s %8s\n", "table", "read", "inserted", "updated",
         "unchanged", "kept", "conflicts", "deleted", "skipped");
  ex_counts sum;
  memset(&sum, 0, sizeof sum);
  for (int i = 0; i < ex->n_tables; i++) {
    const ex_counts *c = &ex->tables[i].counts;
    printf("%-17s %8lld %8lld %8lld %9lld %8lld %9lld %8lld %8lld\n", ex->tables[i].name,
           (long long)c->read, (long long)c->inserted, (long long)c->updated,
           (long long)c->unchanged, (long long)c->kept, (long long)c->conflicts,
           (long long)c->deleted, (long long)c->skipped);
    sum.read += c->read, sum.inserted += c->inserted, sum.updated += c->updated;
    sum.unchanged += c->unchanged, sum.skipped += c->skipped, sum.kept += c->kept;
    sum.conflicts += c->conflicts, sum.deleted += c->deleted;
    sum.removed_in_dev += c->removed_in_dev;
  }
  printf("%-17s %8lld %8lld %8lld %9lld %8lld %9lld %8lld %8lld\n", "total",
         (long long)sum.read, (long long)sum.inserted, (long long)sum.updated,
         (long long)sum.unchanged, (long long)sum.kept, (long long)sum.conflicts,
         (long long)sum.deleted, (long long)sum.skipped);
  if (sum.removed_in_dev)
    printf("removed in dev: %lld rows promoted earlier are no longer in the source "
           "(%lld deleted in production)\n",
           (long long)sum.removed_in_dev, (long long)sum.deleted);
  for (int i = 0; i < ex->n_left_out; i++)
    printf("left out: %s, %lld row%s (%s; --include=%s promotes them)\n", ex->left_out[i].table,
           (long long)ex->left_out[i].rows, ex->left_out[i].rows == 1 ? "" : "s",
           ex->left_out[i].reason, ex->left_out[i].table);
  if (ex->verify) printf("verify: %s\n", ex->verified ? "ok" : "not done");
  printf("%s\n", outcome(ex));
}

static void report_json(const exporter *ex) {
  FILE *f = stdout;
  fprintf(f, "{\"source\":");
  json_string(f, ex->source_path);
  fprintf(f, ",\"target\":");
  if (ex->target_desc) json_string(f, ex->target_desc);
  else fputs("null", f);
  fprintf(f, ",\"dry_run\":%s,\"secrets\":\"%s\"", ex->dry_run ? "true" : "false",
          secrets_mode_name(ex->secrets));
  fprintf(f, ",\"schema\":{\"from\":%d,\"to\":%d}", ex->target_version_before,
          ex->source_version);
  if (ex->secrets == SECRETS_RESEAL)
    fprintf(f, ",\"resealed\":%lld,\"reseal_kept\":%lld", (long long)ex->resealed,
            (long long)ex->reseal_kept);
  fprintf(f, ",\"tables\":[");
  for (int i = 0; i < ex->n_tables; i++) {
    const ex_counts *c = &ex->tables[i].counts;
    fprintf(f, "%s{\"name\":", i ? "," : "");
    json_string(f, ex->tables[i].name);
    fprintf(f,
            ",\"read\":%lld,\"inserted\":%lld,\"updated\":%lld,"
            "\"unchanged\":%lld,\"kept\":%lld,\"conflicts\":%lld,"
            "\"removed_in_dev\":%lld,\"deleted\":%lld,\"skipped\":%lld}",
            (long long)c->read, (long long)c->inserted, (long long)c->updated,
            (long long)c->unchanged, (long long)c->kept, (long long)c->conflicts,
            (long long)c->removed_in_dev, (long long)c->deleted, (long long)c->skipped);
  }
  fprintf(f, "],\"ledger\":");
  if (ex->ledger.source_id) {
    fprintf(f, "{\"run\":%s,\"source_id\":", ex->ledger.run_id);
    json_string(f, ex->ledger.source_id);
    fprintf(f, ",\"on_conflict\":\"%s\"}", ex->on_conflict == CONFLICT_DEV    ? "dev"
                                           : ex->on_conflict == CONFLICT_PROD ? "prod"
                                                                              : "stop");
  } else {
    fputs("null", f);
  }
  fprintf(f, ",\"conflicts\":[");
  for (int i = 0; i < ex->ledger.n_conflicts_kept; i++) {
    const ex_conflict *c = &ex->ledger.conflicts[i];
    fprintf(f, "%s{\"table\":", i ? "," : "");
    json_string(f, c->table);
    fputs(",\"id\":", f);
    json_string(f, c->id);
    fputs(",\"columns\":", f);
    json_string(f, c->columns);
    fputs(",\"reason\":", f);
    json_string(f, c->reason);
    fputc('}', f);
  }
  fprintf(f, "],\"left_out\":[");
  for (int i = 0; i < ex->n_left_out; i++) {
    fprintf(f, "%s{\"name\":", i ? "," : "");
    json_string(f, ex->left_out[i].table);
    fprintf(f, ",\"rows\":%lld,\"reason\":", (long long)ex->left_out[i].rows);
    json_string(f, ex->left_out[i].reason);
    fputc('}', f);
  }
  fprintf(f, "],\"verify\":%s", !ex->verify ? "null" : ex->verified ? "true" : "false");
  fprintf(f, ",\"invalid_rows\":%lld,\"errors\":[", (long long)ex->n_invalid);
  for (int i = 0; i < ex->n_findings; i++) {
    const ex_finding *e = &ex->findings[i];
    fprintf(f, "%s{\"table\":", i ? "," : "");
    json_string(f, e->table);
    fputs(",\"id\":", f);
    json_string(f, e->id);
    fputs(",\"column\":", f);
    json_string(f, e->column);
    fputs(",\"reason\":", f);
    json_string(f, e->reason);
    fputc('}', f);
  }
  fprintf(f, "],\"committed\":%s,\"exit_code\":%d,\"failure\":",
          ex->committed ? "true" : "false", ex->exit_code);
  if (ex->failure) json_string(f, ex->failure);
  else fputs("null", f);
  fputs("}\n", f);
}

/* ---- options ---------------------------------------------------------- */

static int parse_options(exporter *ex, int argc, char **argv) {
  enum { OPT_SECRETS = 256, OPT_SRC_KR, OPT_TGT_KR, OPT_VERIFY, OPT_ALL,
         OPT_JSON, OPT_PROGRESS, OPT_INCLUDE, OPT_ON_CONFLICT, OPT_DELETE_REMOVED,
         OPT_ALLOW_SECRETS_CHANGE, OPT_SOURCE_ID };
  static const struct option longopts[] = {
      {"secrets", required_argument, 0, OPT_SECRETS},
      {"source-keyring", required_argument, 0, OPT_SRC_KR},
      {"target-keyring", required_argument, 0, OPT_TGT_KR},
      {"dry-run", no_argument, 0, 'n'},
      {"verify", no_argument, 0, OPT_VERIFY},
      {"all-errors", no_argument, 0, OPT_ALL},
      {"json", no_argument, 0, OPT_JSON},
      {"progress", required_argument, 0, OPT_PROGRESS},
      {"include", required_argument, 0, OPT_INCLUDE},
      {"on-conflict", required_argument, 0, OPT_ON_CONFLICT},
      {"delete-removed", no_argument, 0, OPT_DELETE_REMOVED},
      {"allow-secrets-change", no_argument, 0, OPT_ALLOW_SECRETS_CHANGE},
      {"source-id", required_argument, 0, OPT_SOURCE_ID},
      {"help", no_argument, 0, 'h'},
      {"version", no_argument, 0, 'V'},
      {0, 0, 0, 0}};
  const char *progress = "auto";
  int c;
  opterr = 0;  /* our own messages, so the exit code is always 64 */
  while ((c = getopt_long(argc, argv, "nhV", longopts, NULL)) != -1) {
    switch (c) {
    case OPT_SECRETS:
      if (!strcmp(optarg, "keep")) ex->secrets = SECRETS_KEEP;
      else if (!strcmp(optarg, "reseal")) ex->secrets = SECRETS_RESEAL;
      else if (!strcmp(optarg, "omit")) ex->secrets = SECRETS_OMIT;
      else
        return ex_fail(ex, EXIT_USAGE,
                       "--secrets must be keep, reseal or omit (got '%s')", optarg);
      break;
    case OPT_SRC_KR: ex->source_keyring_path = optarg; break;
    case OPT_TGT_KR: ex->target_keyring_path = optarg; break;
    case 'n': ex->dry_run = 1; break;
    case OPT_VERIFY: ex->verify = 1; break;
    case OPT_ALL: ex->all_errors = 1; break;
    case OPT_JSON: ex->json = 1; break;
    case OPT_PROGRESS: progress = optarg; break;
    case OPT_ON_CONFLICT:
      if (!strcmp(optarg, "dev")) ex->on_conflict = CONFLICT_DEV;
      else if (!strcmp(optarg, "prod")) ex->on_conflict = CONFLICT_PROD;
      else
        return ex_fail(ex, EXIT_USAGE, "--on-conflict must be dev or prod (got '%s')", optarg);
      break;
    case OPT_DELETE_REMOVED: ex->delete_removed = 1; break;
    case OPT_ALLOW_SECRETS_CHANGE: ex->allow_secrets_change = 1; break;
    case OPT_SOURCE_ID:
      if (!*optarg) return ex_fail(ex, EXIT_USAGE, "--source-id must not be empty");
      ex->source_id_opt = optarg;
      break;
    case OPT_INCLUDE:
      if (scope_parse_include(ex, optarg)) return -1;
      break;
    case 'h': usage(stdout); exit(EXIT_OK);
    case 'V': printf("oauthdb-export %s\n", EXPORT_VERSION); exit(EXIT_OK);
    default:
      ex_fail(ex, EXIT_USAGE, "unknown or incomplete option '%s' (see --help)",
              argv[optind - 1]);
      return -1;
    }
  }
  if (!strcmp(progress, "auto")) ex->progress = isatty(2);
  else if (!strcmp(progress, "always")) ex->progress = 1;
  else if (!strcmp(progress, "never")) ex->progress = 0;
  else
    return ex_fail(ex, EXIT_USAGE, "--progress must be auto, always or never");
  int rest = argc - optind;
  if (rest < 1 || rest > 2) {
    usage(stderr);
    return ex_fail(ex, EXIT_USAGE, "expected SOURCE.db and an optional CONNINFO");
  }
  ex->source_path = argv[optind];
  ex->conninfo = rest == 2 ? argv[optind + 1] : NULL;
  if (ex->secrets != SECRETS_RESEAL &&
      (ex->target_keyring_path || ex->source_keyring_path))
    return ex_fail(ex, EXIT_USAGE,
                   "--source-keyring and --target-keyring go with --secrets=reseal");
  if (ex->secrets == SECRETS_RESEAL && !ex->target_keyring_path)
    return ex_fail(ex, EXIT_USAGE,
                   "--secrets=reseal needs --target-keyring FILE (the production keyring)");
  return 0;
}

/* ---- the run ---------------------------------------------------------- */

static int run(exporter *ex) {
  ex_trace(ex, "start");
  if (source_open(ex) || source_plan(ex) || scope_apply(ex) || secrets_prepare(ex)) return -1;
  if (target_connect(ex) || target_begin(ex) || target_migrate(ex) ||
      target_catalog(ex))
    return -1;
  if (ledger_prepare(ex) || digest_prepare(ex)) return -1;
  ex_trace(ex, "target ready, schema at %04d", ex->source_version);
  if (validate_source(ex)) return -1;
  ex_trace(ex, "pass 1 done: every row checked");
  if (load_tables(ex) || ledger_finish(ex)) return -1;
  /* make bench reads this line: the ledger's share of a first load */
  ex_trace(ex, "ledger: %.3f s in all", ex->ledger.seconds);
  if (ex->verify) {
    /* load_tables computed both sides per table; all matched to get here. */
    ex->verified = 1;
  }
  PGresult *r = pg_exec(ex, ex->dry_run ? "ROLLBACK" : "COMMIT",
                        ex->dry_run ? "ROLLBACK" : "COMMIT");
  if (!r) return -1;
  /* COMMIT of an aborted transaction "succeeds" as ROLLBACK. */
  if (!ex->dry_run && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
    char *status = ex_xstrdup(PQcmdStatus(r));
    PQclear(r);
    ex_fail(ex, EXIT_TARGET, "target %s: COMMIT was turned into %s",
            ex->target_desc, status);
    free(status);
    return -1;
  }
  PQclear(r);
  ex_trace(ex, "%s", ex->dry_run ? "rolled back" : "committed");
  ex->committed = !ex->dry_run;
  return 0;
}

static void free_all(exporter *ex) {
  for (int i = 0; i < ex->n_tables; i++) {
    ex_table *t = &ex->tables[i];
    digest_state_free(t);
    free(t->ledger.summary_xmins);
    free(t->ledger.found_xmins);
    for (int j = 0; j < t->n_cols; j++) {
      free(t->cols[j].name);
      free(t->cols[j].pg_type);
    }
    for (int j = 0; j < t->n_fks; j++) free(t->fks[j].parent_col);
    for (int j = 0; j < t->n_src_cols; j++) free(t->src_cols[j]);
    free(t->src_cols);
    free(t->cols);
    free(t->fks);
    free(t->name);
  }
  free(ex->tables);
  for (int i = 0; i < ex->n_left_out; i++) free(ex->left_out[i].table);
  free(ex->left_out);
  for (int i = 0; i < ex->n_findings; i++) {
    free(ex->findings[i].table);
    free(ex->findings[i].id);
    free(ex->findings[i].column);
    free(ex->findings[i].reason);
  }
  free(ex->findings);
  ledger_free(ex);
  free(ex->failure);
  free(ex->target_desc);
}

int main(int argc, char **argv) {
  exporter ex;
  memset(&ex, 0, sizeof ex);
  if (sodium_init() < 0) {
    fputs("oauthdb-export: libsodium failed to initialize\n", stderr);
    return EXIT_TARGET;
  }
  int rc = parse_options(&ex, argc, argv);
  if (rc == 0) rc = run(&ex);
  progress_end(&ex);
  if (rc != 0 && ex.pg && ex.n_invalid == 0) ex_note(&ex, "nothing was committed");
  /* Closing the connection without COMMIT rolls back whatever was sent. */
  target_close(&ex);
  source_close(&ex);
  secrets_free(&ex);
  if (ex.json) report_json(&ex);
  else if (rc == 0) report_text(&ex);
  fflush(stdout);
  int code = rc == 0 ? EXIT_OK : (ex.exit_code ? ex.exit_code : EXIT_TARGET);
  free_all(&ex);
  return code;
}

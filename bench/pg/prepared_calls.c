/*
** prepared_calls N VALUES SQL...: runs each SQL N times through a prepared
** statement of its own over one libpq connection (from the PG* variables),
** and prints for each SQL, in order, a line
**
**   SECONDS ROWS
**
** the wall-clock seconds of its N executions and how many rows they
** returned with a non-NULL first column (the caller checks it: a lookup
** that finds nothing is not a fair measurement). VALUES is a file of one
** value per line, which each SQL takes as $1 (text), the executions cycling
** through them; or "-" for statements without parameters.
**
** Side by side: the statements take turns, a tenth of N each, so a load
** that comes and goes on a shared machine falls on all of them alike. The
** calls are pipelined in batches of 500 (libpq pipeline mode), so a figure
** is the server's work per call and not one socket round trip each. For
** bench/pg_lookups.sh.
*/
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 500
#define TURNS 10

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(PGconn *db, const char *what) {
  fprintf(stderr, "prepared_calls: %s: %s", what, PQerrorMessage(db));
  exit(1);
}

/* The lines of PATH, NUL-terminated in one buffer; *n of them. */
static char **read_values(const char *path, size_t *n) {
  FILE *f = fopen(path, "r");
  if (!f) { perror(path); exit(1); }
  size_t cap = 1024, count = 0;
  char **v = malloc(cap * sizeof *v);
  char line[256];
  while (v && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    if (!line[0]) continue;
    if (count == cap && !(v = realloc(v, (cap *= 2) * sizeof *v))) break;
    if (!(v[count++] = strdup(line))) { v = NULL; break; }
  }
  fclose(f);
  if (!v || count == 0) { fprintf(stderr, "prepared_calls: no values in %s\n", path); exit(1); }
  *n = count;
  return v;
}

/* Run statement NAME COUNT times from call FIRST on; returns the rows found. */
static long run_calls(PGconn *db, const char *name, long first, long count,
                      char **values, size_t n_values) {
  long found = 0;
  for (long done = 0; done < count;) {
    long batch = count - done < BATCH ? count - done : BATCH;
    for (long i = 0; i < batch; i++) {
      const char *param[1] = {values ? values[(first + done + i) % n_values] : NULL};
      if (!PQsendQueryPrepared(db, name, values ? 1 : 0, param, NULL, NULL, 0))
        die(db, "send");
    }
    if (!PQpipelineSync(db)) die(db, "sync");
    /* Each query's result, then the NULL that ends it; then the sync. */
    PGresult *r;
    for (long i = 0; i < batch; i++) {
      while ((r = PQgetResult(db)) != NULL) {
        if (PQresultStatus(r) != PGRES_TUPLES_OK) die(db, "execute");
        for (int row = 0; row < PQntuples(r); row++)
          if (!PQgetisnull(r, row, 0)) found++;
        PQclear(r);
      }
    }
    r = PQgetResult(db);
    if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC) die(db, "pipeline sync");
    PQclear(r);
    done += batch;
  }
  return found;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: prepared_calls N VALUES|- SQL...\n");
    return 2;
  }
  long n = strtol(argv[1], NULL, 10);
  size_t n_values = 0;
  char **values = strcmp(argv[2], "-") != 0 ? read_values(argv[2], &n_values) : NULL;
  int n_sql = argc - 3;
  double *seconds = calloc(n_sql, sizeof *seconds);
  long *found = calloc(n_sql, sizeof *found);
  if (!seconds || !found) return 1;

  PGconn *db = PQconnectdb("");
  if (PQstatus(db) != CONNECTION_OK) die(db, "connect");
  for (int q = 0; q < n_sql; q++) {
    char name[16];
    snprintf(name, sizeof name, "q%d", q);
    PGresult *r = PQprepare(db, name, argv[3 + q], values ? 1 : 0, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) die(db, "prepare");
    PQclear(r);
  }
  if (!PQenterPipelineMode(db)) die(db, "pipeline mode");

  long turn = n / TURNS > 0 ? n / TURNS : 1;
  for (long first = 0; first < n; first += turn) {
    long count = n - first < turn ? n - first : turn;
    for (int q = 0; q < n_sql; q++) {
      char name[16];
      snprintf(name, sizeof name, "q%d", q);
      double start = now_seconds();
      found[q] += run_calls(db, name, first, count, values, n_values);
      seconds[q] += now_seconds() - start;
    }
  }
  for (int q = 0; q < n_sql; q++) printf("%.6f %ld\n", seconds[q], found[q]);
  PQfinish(db);
  return 0;
}

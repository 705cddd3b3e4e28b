/*
** export_util.c: what every part of oauthdb-export calls: allocation that
** cannot fail, messages (failures, notes, invalid rows), the progress bar,
** the trace, the growable buffer and SQL identifier quoting. main() and
** the run itself are in export_main.c, which nothing else depends on.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "export.h"

#define MAX_FINDINGS 100   /* kept for --json; stderr gets all of them */

/* ---- messages --------------------------------------------------------- */

void *ex_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fputs("oauthdb-export: out of memory\n", stderr);
    exit(EXIT_TARGET);
  }
  return p;
}

void *ex_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fputs("oauthdb-export: out of memory\n", stderr);
    exit(EXIT_TARGET);
  }
  return q;
}

char *ex_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(ex_xmalloc(n), s, n);
}

static char *vprintf_dup(const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  char *s = ex_xmalloc((size_t)(n < 0 ? 0 : n) + 1);
  vsnprintf(s, (size_t)(n < 0 ? 0 : n) + 1, fmt, ap);
  return s;
}

char *ex_strdup_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = vprintf_dup(fmt, ap);
  va_end(ap);
  return s;
}

/* The progress line shares stderr: wipe it before a message. */
static void progress_clear(exporter *ex) {
  if (ex->progress && ex->progress_phase) fputs("\r\033[K", stderr);
}

int ex_fail(exporter *ex, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = vprintf_dup(fmt, ap);
  va_end(ap);
  progress_clear(ex);
  fprintf(stderr, "oauthdb-export: %s\n", msg);
  if (!ex->exit_code) {
    ex->exit_code = code;
    ex->failure = msg;
  } else {
    free(msg);
  }
  return -1;
}

void ex_note(exporter *ex, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = vprintf_dup(fmt, ap);
  va_end(ap);
  progress_clear(ex);
  fprintf(stderr, "oauthdb-export: %s\n", msg);
  free(msg);
}

void ex_invalid(exporter *ex, const ex_table *t, const char *id,
                const char *column, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *reason = vprintf_dup(fmt, ap);
  va_end(ap);
  ex->n_invalid++;
  progress_clear(ex);
  fprintf(stderr, "oauthdb-export: invalid row: %s id=%s column %s: %s\n",
          t->name, id, column, reason);
  if (ex->n_findings < MAX_FINDINGS) {
    ex->findings = ex_xrealloc(ex->findings,
                               sizeof *ex->findings * (size_t)(ex->n_findings + 1));
    ex_finding *f = &ex->findings[ex->n_findings++];
    f->table = ex_xstrdup(t->name);
    f->id = ex_xstrdup(id);
    f->column = ex_xstrdup(column);
    f->reason = reason;
  } else {
    free(reason);
  }
}

/* ---- progress --------------------------------------------------------- */

double ex_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_draw(exporter *ex) {
  int64_t total = ex->progress_total > 0 ? ex->progress_total : 1;
  int64_t done = ex->progress_done > total ? total : ex->progress_done;
  int width = 30, filled = (int)(done * width / total);
  char bar[31];
  for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '-';
  bar[width] = 0;
  fprintf(stderr, "\r\033[K%-9s %-18s [%s] %3d%% %lld/%lld rows",
          ex->progress_phase, ex->progress_table ? ex->progress_table : "",
          bar, (int)(done * 100 / total), (long long)done, (long long)total);
  fflush(stderr);
}

void progress_begin(exporter *ex, const char *phase, const char *table) {
  if (!ex->progress) return;
  if (!ex->progress_phase || strcmp(ex->progress_phase, phase) != 0) {
    ex->progress_done = 0;
  }
  ex->progress_phase = phase;
  ex->progress_table = table;
  progress_draw(ex);
  ex->progress_last = ex_now();
}

/* Called for every row: cheap unless a tenth of a second has passed. */
void progress_step(exporter *ex, int64_t rows) {
  if (!ex->progress) return;
  ex->progress_done += rows;
  if ((ex->progress_done & 1023) != 0) return;
  double t = ex_now();
  if (t - ex->progress_last < 0.1) return;
  ex->progress_last = t;
  progress_draw(ex);
}

void progress_end(exporter *ex) {
  if (!ex->progress || !ex->progress_phase) return;
  fputs("\r\033[K", stderr);
  fflush(stderr);
  ex->progress_phase = NULL;
}

/* ---- trace ------------------------------------------------------------ */

/*
** OAUTHDB_EXPORT_TRACE=1: for diagnosis, each phase and how each table was
** loaded, with the seconds since the start, on stderr. Never values.
*/
void ex_trace(exporter *ex, const char *fmt, ...) {
  static int on = -1;
  static double t0;
  if (on < 0) {
    const char *e = getenv("OAUTHDB_EXPORT_TRACE");
    on = e && *e && strcmp(e, "0") != 0;
    t0 = ex_now();
  }
  if (!on) return;
  va_list ap;
  va_start(ap, fmt);
  char *msg = vprintf_dup(fmt, ap);
  va_end(ap);
  progress_clear(ex);
  fprintf(stderr, "oauthdb-export: trace %7.3f s: %s\n", ex_now() - t0, msg);
  free(msg);
}

/* ---- buffers and identifiers ----------------------------------------- */

unsigned char *buf_reserve(ex_buf *b, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    b->p = ex_xrealloc(b->p, cap);
    b->cap = cap;
  }
  unsigned char *at = b->p + b->len;
  b->len += n;
  return at;
}

void buf_put(ex_buf *b, const void *data, size_t n) {
  if (n) memcpy(buf_reserve(b, n), data, n);
}

void buf_be(ex_buf *b, uint64_t v, int bytes) {
  unsigned char *at = buf_reserve(b, (size_t)bytes);
  for (int i = bytes - 1; i >= 0; i--, v >>= 8) at[i] = (unsigned char)(v & 0xff);
}

void buf_field(ex_buf *b, const void *data, size_t n) {
  unsigned char *at = buf_reserve(b, 4 + n);
  at[0] = (unsigned char)(n >> 24), at[1] = (unsigned char)(n >> 16);
  at[2] = (unsigned char)(n >> 8), at[3] = (unsigned char)n;
  if (n) memcpy(at + 4, data, n);
}

/* Append printf output, keeping the buffer NUL-terminated (SQL text). */
void buf_printf(ex_buf *b, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) n = 0;
  buf_reserve(b, (size_t)n + 1);
  vsnprintf((char *)b->p + b->len - (size_t)n - 1, (size_t)n + 1, fmt, ap);
  b->len -= 1;  /* the NUL stays, outside len */
  va_end(ap);
}

/* "name" with embedded quotes doubled (malloc'd): the same rules in
** PostgreSQL and SQLite, so both sides use this one. */
char *sql_ident(const char *name) {
  size_t n = strlen(name), k = 0;
  char *out = ex_xmalloc(2 * n + 3);
  out[k++] = '"';
  for (size_t i = 0; i < n; i++) {
    if (name[i] == '"') out[k++] = '"';
    out[k++] = name[i];
  }
  out[k++] = '"';
  out[k] = 0;
  return out;
}

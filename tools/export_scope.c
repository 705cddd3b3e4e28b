/*
** export_scope.c: what a promotion carries by default, and what only when
** asked for by name.
**
** By default the state an application needs to run against production:
** service_configs, users, user_preferences, user_providers, oauth_tokens.
** The other four tables of the schema are left out unless named with
** --include=TABLE[,TABLE...], and the report says so, with the reason:
**
**   user_sessions      a session row is a login: its token hash, created on
**                      a laptop (and perhaps pasted into a log or a test),
**                      would become a valid login to production;
**   token_refresh_log,
**   auth_audit_log,
**   sync_logs          history of what happened on the dev machine. In
**                      production it would read as production's own (an
**                      auditor would see logins that never happened there),
**                      and the retention jobs own these tables there.
**
** Tables the schema does not know (a newer source, a table of the
** developer's own) are promoted as before: only the four above are opt-in.
*/
#include <stdlib.h>
#include <string.h>
#include "export.h"

static const struct {
  const char *table, *reason;
} opt_in[] = {
    {"user_sessions",
     "sessions are logins: a dev session would become a valid login to production"},
    {"token_refresh_log", "dev history: production's logs record production's events"},
    {"auth_audit_log", "dev history: production's audit trail records production's events"},
    {"sync_logs", "dev history: production's logs record production's events"},
};
#define N_OPT_IN (sizeof opt_in / sizeof opt_in[0])

static int opt_in_index(const char *name, size_t n) {
  for (size_t i = 0; i < N_OPT_IN; i++)
    if (strlen(opt_in[i].table) == n && !strncmp(opt_in[i].table, name, n)) return (int)i;
  return -1;
}

/* --include=a,b: each must be one of the opt-in tables. */
int scope_parse_include(exporter *ex, const char *list) {
  const char *p = list;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    int i = opt_in_index(p, n);
    if (i < 0)
      return ex_fail(ex, EXIT_USAGE,
                     "--include: '%.*s' is not a table left out by default (those are "
                     "user_sessions, token_refresh_log, auth_audit_log, sync_logs)",
                     (int)n, p);
    ex->include_mask |= 1u << i;
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

/* After source_plan: drop the opt-in tables not asked for, and say why. */
int scope_apply(exporter *ex) {
  int k = 0;
  for (int i = 0; i < ex->n_tables; i++) {
    ex_table *t = &ex->tables[i];
    int o = opt_in_index(t->name, strlen(t->name));
    if (o >= 0 && !(ex->include_mask & (1u << o))) {
      ex->left_out = ex_xrealloc(ex->left_out, sizeof *ex->left_out * (size_t)(ex->n_left_out + 1));
      ex_left_out *l = &ex->left_out[ex->n_left_out++];
      l->table = t->name;
      l->rows = t->n_source;
      l->reason = opt_in[o].reason;
      for (int j = 0; j < t->n_src_cols; j++) free(t->src_cols[j]);
      free(t->src_cols);
      continue;
    }
    ex->tables[k++] = *t;
  }
  ex->n_tables = k;
  return 0;
}

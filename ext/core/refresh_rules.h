/*
** refresh_rules.h: what a refresh worker's claim is on every engine
** (docs/SQL.md, "Refresh workers"): the limits of the arguments, the
** default failure limit, the messages both adapters give word for word, and
** the details of the token.reconsent_required audit row.
** ext/sqlite/refresh.c and ext/postgres/refresh.c keep only their engine's
** statements and argument handling.
*/
#ifndef OAUTHDB_REFRESH_RULES_H
#define OAUTHDB_REFRESH_RULES_H

#include <stddef.h>
#include <stdint.h>

/*
** Five consecutive failures: enough to ride out a provider's outage of a
** few lease periods, few enough that a dead link stops costing requests.
** The setting (oauthdb_config('refresh_max_failures') in SQLite,
** oauthdb.refresh_max_failures in PostgreSQL) goes up to
** REFRESH_MAX_FAILURES_SETTING; 0 means this default.
*/
#define REFRESH_DEFAULT_MAX_FAILURES 5
#define REFRESH_MAX_FAILURES_SETTING 1000
/* A lease is for one token-endpoint call: a day is already absurd. */
#define REFRESH_MAX_LEASE 86400
/* Windows as long as a session's longest timeout (400 days). */
#define REFRESH_MAX_WITHIN (400 * 86400)
/* The worker's label and the provider's error message, in bytes. */
#define REFRESH_MAX_LABEL 200
#define REFRESH_MAX_ERROR 1000
/* A claim is a UUIDv7's text. */
#define REFRESH_CLAIM_LEN 36
/* The schema's timestamp range: up to 9999-12-31T23:59:59Z. */
#define REFRESH_MAX_TIME 253402300799LL

/* The messages both engines give (printf formats; the first %s: the function). */
#define REFRESH_MSG_WITHIN                                                   \
  "%s: within_seconds must be an integer from 0 to %d (the window given to " \
  "tokens_expiring)"
#define REFRESH_MSG_LEASE "%s: lease_seconds must be an integer from 1 to %d"
#define REFRESH_MSG_TEXT "%s: %s must be text of 1 to %d bytes"
#define REFRESH_MSG_LEASE_TOO_LATE "%s: the lease would end after 9999-12-31"
#define REFRESH_MSG_ACCESS_TEXT "%s: access_token must be text"
#define REFRESH_MSG_EXPIRES                                                  \
  "%s: expires_at must be unix seconds (an integer) or NULL"
#define REFRESH_MSG_REFRESH_TEXT                                             \
  "%s: refresh_token must be text, or NULL to keep the stored one"
#define REFRESH_MSG_INVALID_GRANT "%s: invalid_grant must be 0 or 1"
/* What the arguments are, in REFRESH_MSG_TEXT. */
#define REFRESH_ARG_TOKEN_ID "token_id (an oauth_tokens.id)"
#define REFRESH_ARG_CLAIM "claim (from token_claim_refresh)"
#define REFRESH_ARG_WORKER "worker"
#define REFRESH_ARG_ERROR "error_message (the provider's error, never a token)"
/* A claim that is not held (%s: the claim), after "<function>: ". */
#define REFRESH_MSG_NOT_HELD                                                 \
  "claim %s is not held: it was finished already, or its lease ran out "    \
  "and another worker claimed the token"
#define REFRESH_MSG_NOT_STORED "; the new tokens were not stored"
#define REFRESH_MSG_NOT_RECORDED "; nothing was recorded"

/* The failure limit in force for SETTING (0: the default). */
static inline int64_t refresh_failure_limit(int64_t setting) {
  return setting > 0 ? setting : REFRESH_DEFAULT_MAX_FAILURES;
}

/*
** The details of token.reconsent_required, a JSON object, into out[cap]:
**   {"token_id":"...","user_provider_id":"...","failures":5,"invalid_grant":false}
** Ids are uuids (no character needs escaping). Returns the length it needs,
** as snprintf does.
*/
int refresh_reconsent_details(char *out, size_t cap, const char *token_id,
                              const char *user_provider_id, int64_t failures,
                              int invalid_grant);

#endif /* OAUTHDB_REFRESH_RULES_H */

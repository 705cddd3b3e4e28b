/*
** refresh_rules.c: the one function of refresh_rules.h, the details of the
** audit row token.reconsent_required, the same bytes on both engines
** (PostgreSQL stores them as jsonb).
*/
#include <stdio.h>
#include "refresh_rules.h"

int refresh_reconsent_details(char *out, size_t cap, const char *token_id,
                              const char *user_provider_id, int64_t failures,
                              int invalid_grant) {
  return snprintf(out, cap,
                  "{\"token_id\":\"%s\",\"user_provider_id\":\"%s\","
                  "\"failures\":%lld,\"invalid_grant\":%s}",
                  token_id, user_provider_id, (long long)failures,
                  invalid_grant ? "true" : "false");
}

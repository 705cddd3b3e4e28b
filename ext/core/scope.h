/*
** scope.h: scope_has(scope, wanted), the same rule on both engines.
**
** An OAuth scope string is what the provider returned: scope tokens
** separated by spaces (RFC 6749 section 3.3), e.g.
** "openid https://www.googleapis.com/auth/gmail.readonly". `wanted` is one
** scope token; it is present when it equals one token exactly, byte for
** byte (scope tokens are case-sensitive). No LIKE, so "gmail" does not match
** "gmail.readonly" and '%' or '_' mean nothing. Runs of spaces are tolerated.
**
** An empty `wanted`, or one holding a space, can never be present: both
** engines refuse it with SCOPE_WANTED_ERROR rather than answer "no", since
** such a question is always a bug in the caller (scope_wanted_is_valid).
**
** Pure C: no engine headers.
*/
#ifndef OAUTHDB_SCOPE_H
#define OAUTHDB_SCOPE_H

#include <stddef.h>

#define SCOPE_WANTED_ERROR                                                    \
  "scope_has: wanted must be one scope, without spaces "                      \
  "(ask once per scope and combine with AND)"

/* Is `wanted` one scope token (non-empty, no space)? */
int scope_wanted_is_valid(const char *wanted, size_t m);

/* 1 when `wanted` is one of the tokens of `scope`, else 0 (also for an
** invalid `wanted`). */
int scope_has(const char *scope, size_t n, const char *wanted, size_t m);

#endif /* OAUTHDB_SCOPE_H */

/*
** scope.h: scope_has(scope, wanted), the same rule on both engines.
**
** An OAuth scope string is what the provider returned: scope tokens
** separated by spaces (RFC 6749 section 3.3), e.g.
** "openid https://www.googleapis.com/auth/gmail.readonly". `wanted` is one
** scope token; it is present when it equals one token exactly, byte for
** byte (scope tokens are case-sensitive). No LIKE, so "gmail" does not match
** "gmail.readonly" and '%' or '_' mean nothing. An empty `wanted`, or one
** holding a space, is never present. Runs of spaces are tolerated.
**
** Pure C: no engine headers.
*/
#ifndef OAUTHDB_SCOPE_H
#define OAUTHDB_SCOPE_H

#include <stddef.h>

int scope_has(const char *scope, size_t n, const char *wanted, size_t m);

#endif /* OAUTHDB_SCOPE_H */

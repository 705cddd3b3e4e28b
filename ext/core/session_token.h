/*
** session_token.h: what a session is on every engine (docs/SQL.md,
** "Sessions"): the token's format, how it is stored (SHA-256 of its text),
** the timeouts' defaults and limits, and the messages both adapters give.
** ext/sqlite/session.c and ext/postgres/session.c keep only their engine's
** statements and argument handling.
*/
#ifndef OAUTHDB_SESSION_TOKEN_H
#define OAUTHDB_SESSION_TOKEN_H

#include <stddef.h>
#include <stdint.h>

/*
** Defaults. Idle: 30 minutes, the upper end of OWASP's range for ordinary
** web applications. Absolute: 24 hours, so a stolen token is worth a day at
** most even if it is kept busy; a session reaches the user's mail and
** calendar through the stored OAuth tokens. An application that wants
** "remember me" passes a longer ttl to session_create (and a longer idle
** timeout through its settings).
*/
#define SESSION_DEFAULT_IDLE 1800
#define SESSION_DEFAULT_ABSOLUTE 86400
/*
** Upper bound of a ttl or timeout: 400 days, as browsers cap cookie
** lifetimes. Mostly it catches milliseconds passed for seconds.
*/
#define SESSION_MAX_SECONDS (400 * 86400)
/* The schema's timestamp range: up to 9999-12-31T23:59:59Z. */
#define SESSION_MAX_TIME 253402300799LL
/* Longest revocation reason: a label, not a story. */
#define SESSION_MAX_REASON 200
/* Longest client IP address and user agent session_create records. */
#define SESSION_MAX_IP 64
#define SESSION_MAX_USER_AGENT 1024

/* 32 random bytes in URL-safe base64 without padding: 43 characters. */
#define SESSION_TOKEN_BYTES 32
#define SESSION_TOKEN_TEXT_LEN 43
#define SESSION_HASH_BYTES 32

/* The messages both engines give, word for word (printf formats). */
#define SESSION_MSG_TTL                                                     \
  "session_create: ttl must be a whole number of seconds from 1 to %d "     \
  "(400 days)"
#define SESSION_MSG_TOO_LATE "session_create: the session would expire after 9999"
#define SESSION_MSG_NO_USER "session_create: no user with id '%s'"
#define SESSION_MSG_INACTIVE                                                \
  "session_create: user %s is inactive (users.is_active = 0)"
#define SESSION_MSG_CLIENT_TOO_LONG "session_create: %s is longer than %d bytes"
#define SESSION_MSG_REASON_TOO_LONG "%s: reason is longer than %d bytes"

/*
** A new session token (NUL-terminated text) and its SHA-256. The random
** bytes are zeroed; the caller zeroes token and hash when done.
*/
void session_token_new(char token[SESSION_TOKEN_TEXT_LEN + 1],
                       unsigned char hash[SESSION_HASH_BYTES]);

/*
** SHA-256 of a presented token's text. Returns 0, leaving hash untouched,
** when the text cannot be a token (wrong length): such a value is simply
** not a live session, and says so without an error.
*/
int session_token_hash(const unsigned char *text, size_t n,
                       unsigned char hash[SESSION_HASH_BYTES]);

#endif /* OAUTHDB_SESSION_TOKEN_H */

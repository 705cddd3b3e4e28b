/*
** associated_data.h: the associated data that binds a sealed value to its
** place, `<table>.<column>:<row id>` (docs/FORMAT.md), e.g.
** `oauth_tokens.refresh_token:0192f3c4-...`. Built here and nowhere else:
** the SQLite vault, the exporter's --secrets=reseal, the tool's rotation
** (through the SQL function token_ad) and the PostgreSQL extension all call
** this, so the engines cannot drift apart on a byte of it.
**
** Pure C: no engine headers.
*/
#ifndef OAUTHDB_ASSOCIATED_DATA_H
#define OAUTHDB_ASSOCIATED_DATA_H

#include <stddef.h>

/*
** Write `<table>.<column>:<id>` (id is n_id bytes, not necessarily
** terminated) into out[0..cap) with a terminating NUL when it fits.
** Returns the length without the NUL, whether or not it fit (as snprintf
** does): a result >= cap means nothing usable was written.
*/
size_t associated_data(char *out, size_t cap, const char *table,
                       const char *column, const char *id, size_t n_id);

#endif /* OAUTHDB_ASSOCIATED_DATA_H */

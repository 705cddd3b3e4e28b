/*
** associated_data.c: `<table>.<column>:<row id>` (associated_data.h).
*/
#include <string.h>
#include "associated_data.h"

size_t associated_data(char *out, size_t cap, const char *table,
                       const char *column, const char *id, size_t n_id) {
  size_t n_table = strlen(table), n_col = strlen(column);
  size_t n = n_table + 1 + n_col + 1 + n_id;
  if (n >= cap) return n;
  char *p = out;
  memcpy(p, table, n_table);
  p += n_table;
  *p++ = '.';
  memcpy(p, column, n_col);
  p += n_col;
  *p++ = ':';
  if (n_id) memcpy(p, id, n_id);
  out[n] = '\0';
  return n;
}

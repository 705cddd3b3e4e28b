/*
** scope.c: scope_has (scope.h).
*/
#include <string.h>
#include "scope.h"

int scope_wanted_is_valid(const char *wanted, size_t m) {
  return m > 0 && memchr(wanted, ' ', m) == NULL;
}

int scope_has(const char *scope, size_t n, const char *wanted, size_t m) {
  if (!scope_wanted_is_valid(wanted, m)) return 0;
  size_t i = 0;
  while (i < n) {
    while (i < n && scope[i] == ' ') i++;
    size_t start = i;
    while (i < n && scope[i] != ' ') i++;
    if (i - start == m && memcmp(scope + start, wanted, m) == 0) return 1;
  }
  return 0;
}

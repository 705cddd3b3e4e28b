/*
** export_json.c: JSON between SQLite and PostgreSQL's jsonb.
**
** json_valid() (SQLite) decides whether a value is JSON. jsonb is stricter
** in three ways a dev database can trip over, so they are checked here
** before anything is sent: a \u0000 escape (jsonb keeps strings as text,
** which cannot hold NUL), an unpaired UTF-16 surrogate escape, and numbers
** beyond numeric's range (131072 digits before the point, 16383 after).
**
** json_canonical() renders a value exactly as jsonb::text does, for
** --verify's digest on the source side: keys sorted by length then bytes,
** the last of duplicate keys kept, ", " and ": " separators, strings
** re-escaped as PostgreSQL's escape_json() does, numbers as numeric_out()
** prints them (no exponent; the scale the literal implies). The test suite
** checks this against a real server value by value.
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "export.h"

#define NUMERIC_MAX_INT_DIGITS 131072  /* weight limit: 32768 base-10000 digits */
#define NUMERIC_DSCALE_MAX 16383

/* Output text, kept NUL-terminated. */
static void jb_put(ex_buf *b, const void *s, size_t n) {
  buf_put(b, s, n);
  *buf_reserve(b, 1) = 0;
  b->len--;
}

static void jb_putc(ex_buf *b, char c) { jb_put(b, &c, 1); }

typedef struct jparse {
  const char *s;
  size_t n, i;
  const char *err;
} jparse;

static void skip_ws(jparse *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
                         p->s[p->i] == '\n' || p->s[p->i] == '\r'))
    p->i++;
}

static int hex4(const char *s, unsigned *out) {
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    char c = s[k];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static void put_utf8(ex_buf *b, unsigned cp) {
  char u[4];
  if (cp < 0x80) {
    u[0] = (char)cp;
    jb_put(b, u, 1);
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F));
    jb_put(b, u, 2);
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    jb_put(b, u, 3);
  } else {
    u[0] = (char)(0xF0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F));
    jb_put(b, u, 4);
  }
}

/* A string at p->i (the opening quote), decoded into out (may be NULL). */
static int parse_string(jparse *p, ex_buf *out) {
  if (p->i >= p->n || p->s[p->i] != '"') return p->err = "expected a string", -1;
  p->i++;
  while (p->i < p->n) {
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == '"') {
      p->i++;
      return 0;
    }
    if (c < 0x20) return p->err = "unescaped control character in a string", -1;
    if (c != '\\') {
      if (out) jb_putc(out, (char)c);
      p->i++;
      continue;
    }
    if (p->i + 1 >= p->n) break;
    char e = p->s[p->i + 1];
    p->i += 2;
    const char *simple = NULL;
    switch (e) {
    case '"': simple = "\""; break;
    case '\\': simple = "\\"; break;
    case '/': simple = "/"; break;
    case 'b': simple = "\b"; break;
    case 'f': simple = "\f"; break;
    case 'n': simple = "\n"; break;
    case 'r': simple = "\r"; break;
    case 't': simple = "\t"; break;
    case 'u': break;
    default: return p->err = "unknown escape in a string", -1;
    }
    if (simple) {
      if (out) jb_putc(out, simple[0]);
      continue;
    }
    unsigned cp;
    if (p->i + 4 > p->n || hex4(p->s + p->i, &cp)) return p->err = "bad \\u escape", -1;
    p->i += 4;
    if (cp == 0) return p->err = "\\u0000 escape (jsonb strings cannot hold NUL)", -1;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
      return p->err = "unpaired UTF-16 surrogate escape", -1;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      unsigned lo;
      if (p->i + 6 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' ||
          hex4(p->s + p->i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
        return p->err = "unpaired UTF-16 surrogate escape", -1;
      p->i += 6;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (out) put_utf8(out, cp);
  }
  return p->err = "unterminated string", -1;
}

/* PostgreSQL's escape_json(). */
static void put_escaped(ex_buf *b, const char *s, size_t n) {
  jb_putc(b, '"');
  for (size_t k = 0; k < n; k++) {
    unsigned char c = (unsigned char)s[k];
    switch (c) {
    case '\b': jb_put(b, "\\b", 2); break;
    case '\f': jb_put(b, "\\f", 2); break;
    case '\n': jb_put(b, "\\n", 2); break;
    case '\r': jb_put(b, "\\r", 2); break;
    case '\t': jb_put(b, "\\t", 2); break;
    case '"': jb_put(b, "\\\"", 2); break;
    case '\\': jb_put(b, "\\\\", 2); break;
    default:
      if (c < 0x20) {
        static const char hex[] = "0123456789abcdef";
        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        jb_put(b, u, 6);
      } else {
        jb_putc(b, (char)c);
      }
    }
  }
  jb_putc(b, '"');
}

/*
** A number: checks numeric's limits and, when out is given, writes it as
** numeric_out() would: sign, digits, and max(0, fraction digits - exponent)
** decimal places.
*/
static int parse_number(jparse *p, ex_buf *out) {
  size_t start = p->i;
  int neg = 0;
  if (p->i < p->n && p->s[p->i] == '-') neg = 1, p->i++;
  size_t int_start = p->i;
  while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
  size_t int_end = p->i, frac_start = p->i, frac_end = p->i;
  if (int_end == int_start) return p->err = "bad number", -1;
  if (p->i < p->n && p->s[p->i] == '.') {
    frac_start = ++p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    frac_end = p->i;
    if (frac_end == frac_start) return p->err = "bad number", -1;
  }
  long long exp = 0;
  if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
    p->i++;
    int eneg = 0;
    if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) eneg = p->s[p->i++] == '-';
    size_t e0 = p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
      if (exp < INT_MAX) exp = exp * 10 + (p->s[p->i] - '0');  /* saturates */
      p->i++;
    }
    if (p->i == e0) return p->err = "bad number", -1;
    if (eneg) exp = -exp;
  }
  (void)start;
  if (exp >= INT_MAX / 2 || exp <= -(INT_MAX / 2))
    return p->err = "number out of numeric's range", -1;
  long long n_int = (long long)(int_end - int_start), n_frac = (long long)(frac_end - frac_start);
  long long shift = exp - n_frac;   /* value = digits * 10^shift */
  long long dscale = shift < 0 ? -shift : 0;
  /* Position of the most significant non-zero digit, as a power of ten. */
  long long lead = -1, total = n_int + n_frac;
  for (long long k = 0; k < total; k++) {
    char d = k < n_int ? p->s[int_start + k] : p->s[frac_start + (k - n_int)];
    if (d != '0') {
      lead = k;
      break;
    }
  }
  int zero = lead < 0;
  if (!zero && (total - 1 - lead) + shift >= NUMERIC_MAX_INT_DIGITS)
    return p->err = "number too large for numeric", -1;
  if (dscale > NUMERIC_DSCALE_MAX)
    return p->err = "number has too many decimal places for numeric", -1;
  if (!out) return 0;

  /* digits (integer then fraction part), shifted into place */
  ex_buf d = {0, 0, 0};
  jb_put(&d, p->s + int_start, (size_t)n_int);
  jb_put(&d, p->s + frac_start, (size_t)n_frac);
  if (!zero && neg) jb_putc(out, '-');
  if (shift >= 0) {
    /* Zero stays "0" however big its exponent (0e400000000: no 400 MB of zeros). */
    if (!zero)
      for (long long k = 0; k < shift; k++) jb_putc(&d, '0');
    size_t s0 = 0;
    while (s0 + 1 < d.len && (char)d.p[s0] == '0') s0++;
    jb_put(out, d.p + s0, d.len - s0);
  } else {
    size_t k = (size_t)dscale;
    if (d.len < k + 1) {  /* left-pad so there is an integer digit */
      size_t pad = k + 1 - d.len;
      ex_buf e = {0, 0, 0};
      for (size_t z = 0; z < pad; z++) jb_putc(&e, '0');
      jb_put(&e, d.p, d.len);
      free(d.p);
      d = e;
    }
    size_t int_len = d.len - k, s0 = 0;
    while (s0 + 1 < int_len && (char)d.p[s0] == '0') s0++;
    jb_put(out, d.p + s0, int_len - s0);
    jb_putc(out, '.');
    jb_put(out, d.p + int_len, k);
  }
  free(d.p);
  return 0;
}

typedef struct jmember {
  ex_buf key, value;
  size_t order;
} jmember;

static int member_cmp(const void *a, const void *b) {
  const jmember *x = a, *y = b;
  if (x->key.len != y->key.len) return x->key.len < y->key.len ? -1 : 1;
  int c = memcmp((x->key.p ? (const char *)x->key.p : ""), (y->key.p ? (const char *)y->key.p : ""), x->key.len);
  if (c) return c;
  return x->order < y->order ? -1 : 1;  /* stable: duplicates in input order */
}

static int parse_value(jparse *p, ex_buf *out, int depth);

static int parse_object(jparse *p, ex_buf *out, int depth) {
  p->i++;  /* { */
  jmember *m = NULL;
  size_t nm = 0;
  int rc = 0;
  skip_ws(p);
  if (p->i < p->n && p->s[p->i] == '}') {
    p->i++;
  } else {
    for (;;) {
      skip_ws(p);
      m = ex_xrealloc(m, sizeof *m * (nm + 1));
      jmember *e = &m[nm++];
      memset(e, 0, sizeof *e);
      e->order = nm;
      if (parse_string(p, out ? &e->key : NULL)) { rc = -1; break; }
      skip_ws(p);
      if (p->i >= p->n || p->s[p->i] != ':') { p->err = "expected ':'"; rc = -1; break; }
      p->i++;
      if (parse_value(p, out ? &e->value : NULL, depth + 1)) { rc = -1; break; }
      skip_ws(p);
      if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
      if (p->i < p->n && p->s[p->i] == '}') { p->i++; break; }
      p->err = "expected ',' or '}'";
      rc = -1;
      break;
    }
  }
  if (rc == 0 && out) {
    if (nm > 1) qsort(m, nm, sizeof *m, member_cmp);
    jb_putc(out, '{');
    int first = 1;
    for (size_t k = 0; k < nm; k++) {
      /* jsonb keeps the last of equal keys */
      if (k + 1 < nm && m[k].key.len == m[k + 1].key.len &&
          memcmp((m[k].key.p ? (const char *)m[k].key.p : ""), (m[k + 1].key.p ? (const char *)m[k + 1].key.p : ""),
                 m[k].key.len) == 0)
        continue;
      if (!first) jb_put(out, ", ", 2);
      first = 0;
      put_escaped(out, (m[k].key.p ? (const char *)m[k].key.p : ""), m[k].key.len);
      jb_put(out, ": ", 2);
      jb_put(out, (m[k].value.p ? (const char *)m[k].value.p : ""), m[k].value.len);
    }
    jb_putc(out, '}');
  }
  for (size_t k = 0; k < nm; k++) free(m[k].key.p), free(m[k].value.p);
  free(m);
  return rc;
}

static int parse_array(jparse *p, ex_buf *out, int depth) {
  p->i++;  /* [ */
  skip_ws(p);
  if (out) jb_putc(out, '[');
  if (p->i < p->n && p->s[p->i] == ']') {
    p->i++;
  } else {
    for (int first = 1;; first = 0) {
      if (out && !first) jb_put(out, ", ", 2);
      if (parse_value(p, out, depth + 1)) return -1;
      skip_ws(p);
      if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
      if (p->i < p->n && p->s[p->i] == ']') { p->i++; break; }
      return p->err = "expected ',' or ']'", -1;
    }
  }
  if (out) jb_putc(out, ']');
  return 0;
}

static int parse_literal(jparse *p, ex_buf *out, const char *word) {
  size_t n = strlen(word);
  if (p->i + n > p->n || memcmp(p->s + p->i, word, n) != 0)
    return p->err = "unexpected character", -1;
  p->i += n;
  if (out) jb_put(out, word, n);
  return 0;
}

static int parse_value(jparse *p, ex_buf *out, int depth) {
  /* json_valid() limits nesting too; this keeps the C stack safe anyway. */
  if (depth > 2000) return p->err = "nested too deeply", -1;
  skip_ws(p);
  if (p->i >= p->n) return p->err = "unexpected end", -1;
  char c = p->s[p->i];
  if (c == '{') return parse_object(p, out, depth);
  if (c == '[') return parse_array(p, out, depth);
  if (c == '"') {
    if (!out) return parse_string(p, NULL);
    ex_buf s = {0, 0, 0};
    int rc = parse_string(p, &s);
    if (rc == 0) put_escaped(out, (s.p ? (const char *)s.p : ""), s.len);
    free(s.p);
    return rc;
  }
  if (c == 't') return parse_literal(p, out, "true");
  if (c == 'f') return parse_literal(p, out, "false");
  if (c == 'n') return parse_literal(p, out, "null");
  return parse_number(p, out);
}

static int parse_document(jparse *p, ex_buf *out) {
  if (parse_value(p, out, 0)) return -1;
  skip_ws(p);
  if (p->i != p->n) return p->err = "trailing characters", -1;
  return 0;
}

const char *json_pg_problem(const char *s, size_t n) {
  jparse p = {s, n, 0, NULL};
  return parse_document(&p, NULL) ? p.err : NULL;
}

int json_canonical(const char *s, size_t n, char **buf, size_t *len, size_t *cap) {
  jparse p = {s, n, 0, NULL};
  ex_buf b = {(unsigned char *)*buf, *len, *cap};
  int rc = parse_document(&p, &b);
  *buf = (char *)b.p, *len = b.len, *cap = b.cap;
  return rc;
}

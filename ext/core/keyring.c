/*
** keyring.c: load a keyring file into locked memory (docs/FORMAT.md,
** "Keyring").
**
**   # key id  key (32 bytes, hex)                                   status
**   9c0e51d2  5f1c...64 hex digits...                                primary
**   0a77b3e0  a3e9...                                                active
**
** From SQL the keyring is reached through $OAUTHDB_KEYRING or
**
**   SELECT oauthdb_keyring('/home/me/.config/oauthdb/keyring');   -- 2 keys
**
** (see tokens.c). This file is pure C over libc and libsodium, no SQLite:
** the exporter and the shell tool link it too.
**
** Why it is written the way it is:
**
**  - The file is opened with O_NOFOLLOW and every check is made on the
**    opened descriptor (fstat), so nothing can swap the file between the
**    check and the read. O_NONBLOCK keeps a FIFO from hanging the open; it
**    is then refused as "not a regular file".
**  - The file is read with read(2) straight into sodium_malloc'd memory, not
**    through stdio, whose buffers would leave key text in the ordinary heap.
**  - Error messages name the file, the line and the rule, and never any text
**    from the line: a key pasted into the wrong column must not end up in a
**    log. The only data they repeat is a key id that already parsed as one.
**  - Keys live in one sodium_malloc'd block (locked, out of core dumps,
**    guard pages) that is made read-only once loaded. One block, not one per
**    key: every sodium_malloc maps three pages and costs tens of
**    microseconds.
*/
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "keyring.h"

/* A keyring file is a few lines; anything bigger is a mistake. */
#define KEYRING_MAX_FILE (1024 * 1024)
/* A valid line is 82 bytes plus a comment; this leaves room for prose. */
#define KEYRING_MAX_LINE 4096
#define KEYRING_ID_HEX 8
#define KEYRING_KEY_HEX (2 * KEYRING_KEY_BYTES)

/* Smallest scratch buffer handed out: one page, so small tokens reuse it. */
#define SCRATCH_MIN 4096
/* A scratch buffer above this is given back once requests are small again. */
#define SCRATCH_KEEP (1024 * 1024)

/*
** What keyring_load returns. The public part comes first, so a keyring *
** is a keyring_impl *. This struct itself holds no secret (counts and
** pointers), so it lives in the ordinary heap; the keys and the scratch
** buffer are sodium_malloc'd.
*/
typedef struct keyring_impl {
  keyring pub;
  void *block;             /* keyring_key[n] then n keys: one sodium_malloc */
  unsigned char *scratch;  /* keyring_scratch(): sodium_malloc'd, or NULL */
  size_t scratch_len;
} keyring_impl;

/*
** Set *err to a malloc'd "keyring PATH: ..." message, sized to fit (the
** fixes repeat the path, which may be long). NULL only when out of
** memory: the caller reports that.
*/
static void set_err(char **err, const char *path, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n_body = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *msg = NULL;
  if (n_body >= 0) {
    size_t head = strlen(path) + sizeof "keyring : " - 1;
    msg = malloc(head + (size_t)n_body + 1);
    if (msg) {
      snprintf(msg, head + 1, "keyring %s: ", path);
      vsnprintf(msg + head, (size_t)n_body + 1, fmt, ap2);
    }
  }
  va_end(ap2);
  *err = msg;
}

const char *key_status_name(key_status s) {
  switch (s) {
    case KEY_PRIMARY: return "primary";
    case KEY_ACTIVE: return "active";
    case KEY_RETIRED: return "retired";
  }
  return "unknown";
}

/*
** Open PATH and check it on the descriptor: regular file, ours, no group or
** other bits, at most KEYRING_MAX_FILE bytes. Returns the fd or -1.
*/
static int open_checked(const char *path, off_t *size, char **err) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    struct stat lst;
    /* O_NOFOLLOW reports a symlink as ELOOP; say so plainly. */
    if (e == ELOOP && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
      set_err(err, path,
              "is a symbolic link; name the file it points to instead");
    } else if (e == ENOENT) {
      set_err(err, path, "no such file (oauthdb keygen creates one)");
    } else {
      set_err(err, path, "cannot open: %s", strerror(e));
    }
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    set_err(err, path, "cannot stat: %s", strerror(errno));
  } else if (S_ISDIR(st.st_mode)) {
    set_err(err, path, "is a directory, not a keyring file");
  } else if (!S_ISREG(st.st_mode)) {
    set_err(err, path, "is not a regular file");
  } else if (st.st_uid != geteuid()) {
    set_err(err, path,
            "owned by uid %lu, not by this user (uid %lu); run: chown %lu %s",
            (unsigned long)st.st_uid, (unsigned long)geteuid(),
            (unsigned long)geteuid(), path);
  } else if (st.st_mode & 077) {
    set_err(err, path,
            "mode %04o gives access to group or others; run: chmod 600 %s",
            (unsigned)(st.st_mode & 07777), path);
  } else if (st.st_size > KEYRING_MAX_FILE) {
    set_err(err, path, "%lld bytes; a keyring holds at most %d",
            (long long)st.st_size, KEYRING_MAX_FILE);
  } else {
    *size = st.st_size;
    return fd;
  }
  close(fd);
  return -1;
}

/*
** Read all of fd into a sodium_malloc'd buffer of size+1 bytes. The extra
** byte tells a file that grew since fstat from one that did not.
*/
static unsigned char *read_all(int fd, off_t size, size_t *n_out,
                               const char *path, char **err) {
  size_t cap = (size_t)size + 1;
  unsigned char *buf = sodium_malloc(cap);
  if (!buf) {
    set_err(err, path, "out of memory");
    return NULL;
  }
  size_t n = 0;
  while (n < cap) {
    ssize_t got = read(fd, buf + n, cap - n);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      set_err(err, path, "cannot read: %s", strerror(errno));
      sodium_free(buf);  /* sodium_free zeroes before it unmaps */
      return NULL;
    }
    if (got == 0) break;
    n += (size_t)got;
  }
  if (n == cap) {
    set_err(err, path, "changed while being read; try again");
    sodium_free(buf);
    return NULL;
  }
  *n_out = n;
  return buf;
}

static int is_blank(unsigned char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* The next field of [*p, end): a run of bytes up to a blank or '#'. */
static size_t next_field(const unsigned char **p, const unsigned char *end,
                         const unsigned char **field) {
  const unsigned char *s = *p;
  while (s < end && is_blank(*s)) s++;
  const unsigned char *f = s;
  while (s < end && !is_blank(*s) && *s != '#') s++;
  *field = f;
  *p = s;
  return (size_t)(s - f);
}

static int parse_id(const unsigned char *s, size_t n, uint32_t *id) {
  if (n != KEYRING_ID_HEX) return 0;
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    unsigned d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return 0;  /* upper case too: ids are compared as text elsewhere */
    v = v << 4 | d;
  }
  *id = v;
  return 1;
}

static int parse_status(const unsigned char *s, size_t n, key_status *st) {
  static const struct { const char *name; key_status st; } names[] = {
      {"primary", KEY_PRIMARY}, {"active", KEY_ACTIVE}, {"retired", KEY_RETIRED}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (n == strlen(names[i].name) && memcmp(s, names[i].name, n) == 0) {
      *st = names[i].st;
      return 1;
    }
  }
  return 0;
}

/* Is [s, end) nothing but blanks and maybe a comment? */
static int rest_is_empty(const unsigned char *s, const unsigned char *end) {
  while (s < end && is_blank(*s)) s++;
  return s == end || *s == '#';
}

/* Number of lines that hold a key (not blank, not a comment). */
static int count_key_lines(const unsigned char *buf, size_t n) {
  int count = 0;
  const unsigned char *p = buf, *end = buf + n;
  if (n >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) p += 3;  /* as parse() */
  while (p < end) {
    const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
    const unsigned char *eol = nl ? nl : end;
    if (!rest_is_empty(p, eol)) count++;
    p = nl ? nl + 1 : end;
  }
  return count;
}

/*
** Parse buf into kr, whose block has room for `room` keys. Returns 0 or -1
** with *err set. Lines are reported 1-based, as editors number them.
*/
static int parse(keyring_impl *kr, int room, const unsigned char *buf,
                 size_t n, const char *path, keyring_line *where, char **err) {
  keyring_key *keys = kr->pub.keys;
  unsigned char *key_bytes = (unsigned char *)(keys + room);
  int primary_line = 0;
  int lines_of[KEYRING_MAX_KEYS];  /* line number of each key, for messages */
  const unsigned char *p = buf, *end = buf + n;
  /* A byte order mark, as some editors write, is not part of line 1. */
  if (n >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) p += 3;
  for (int line = 1; p < end; line++) {
    const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
    const unsigned char *eol = nl ? nl : end;
    const unsigned char *next = nl ? nl + 1 : end;
    if (eol - p > KEYRING_MAX_LINE) {
      set_err(err, path, "line %d: longer than %d bytes", line, KEYRING_MAX_LINE);
      return -1;
    }
    if (rest_is_empty(p, eol)) {
      p = next;
      continue;
    }
    if (kr->pub.n_keys == KEYRING_MAX_KEYS) {
      set_err(err, path, "line %d: more than %d keys", line, KEYRING_MAX_KEYS);
      return -1;
    }
    const unsigned char *f_id, *f_key, *f_status;
    size_t n_id = next_field(&p, eol, &f_id);
    size_t n_key = next_field(&p, eol, &f_key);
    size_t n_status = next_field(&p, eol, &f_status);
    int fields = (n_id > 0) + (n_key > 0) + (n_status > 0);
    if (fields < 3) {
      set_err(err, path,
              "line %d: expected <key id> <key> <status>, found %d field%s",
              line, fields, fields == 1 ? "" : "s");
      return -1;
    }
    keyring_key *k = &keys[kr->pub.n_keys];
    if (!parse_id(f_id, n_id, &k->id)) {
      set_err(err, path, "line %d: bad key id (want 8 lowercase hex digits)", line);
      return -1;
    }
    /* Duplicates would make an open depend on line order. */
    for (int i = 0; i < kr->pub.n_keys; i++) {
      if (keys[i].id == k->id) {
        set_err(err, path, "line %d: duplicate key id %08x (also on line %d)",
                line, (unsigned)k->id, lines_of[i]);
        return -1;
      }
    }
    k->key = key_bytes + (size_t)kr->pub.n_keys * KEYRING_KEY_BYTES;
    size_t bin_len = 0;
    const char *hex_end = NULL;
    if (n_key != KEYRING_KEY_HEX ||
        sodium_hex2bin(k->key, KEYRING_KEY_BYTES, (const char *)f_key, n_key,
                       NULL, &bin_len, &hex_end) != 0 ||
        bin_len != KEYRING_KEY_BYTES || hex_end != (const char *)f_key + n_key) {
      set_err(err, path, "line %d: key is not %d hex digits", line, KEYRING_KEY_HEX);
      return -1;
    }
    if (sodium_is_zero(k->key, KEYRING_KEY_BYTES)) {
      set_err(err, path, "line %d: key is all zeros (oauthdb keygen makes real ones)",
              line);
      return -1;
    }
    if (where) {
      where[kr->pub.n_keys].status_off = (size_t)(f_status - buf);
      where[kr->pub.n_keys].status_len = n_status;
    }
    if (!parse_status(f_status, n_status, &k->status)) {
      set_err(err, path, "line %d: unknown status (want primary, active or retired)",
              line);
      return -1;
    }
    if (!rest_is_empty(p, eol)) {
      set_err(err, path,
              "line %d: unexpected text after the status (comments start with #)",
              line);
      return -1;
    }
    if (k->status == KEY_PRIMARY) {
      if (primary_line) {
        set_err(err, path,
                "lines %d and %d are both primary; exactly one key may be primary",
                primary_line, line);
        return -1;
      }
      primary_line = line;
    }
    lines_of[kr->pub.n_keys++] = line;
    p = next;
  }
  if (!primary_line) {
    set_err(err, path, kr->pub.n_keys == 0
                           ? "holds no key (oauthdb keygen adds one)"
                           : "no primary key; mark exactly one key primary");
    return -1;
  }
  return 0;
}

keyring *keyring_load(const char *path, char **err) {
  return keyring_load_text(path, NULL, err);
}

keyring *keyring_load_text(const char *path, keyring_text *text, char **err) {
  *err = NULL;
  if (text) memset(text, 0, sizeof *text);
  off_t size = 0;
  int fd = open_checked(path, &size, err);
  if (fd < 0) return NULL;
  size_t n = 0;
  unsigned char *buf = read_all(fd, size, &n, path, err);
  close(fd);
  if (!buf) return NULL;

  keyring_impl *kr = calloc(1, sizeof *kr);
  int room = count_key_lines(buf, n);
  if (room > KEYRING_MAX_KEYS) room = KEYRING_MAX_KEYS;  /* parse() says so */
  if (room == 0) room = 1;  /* so the block exists; parse() reports no key */
  /*
  ** keyring_key is 16 bytes and keys are 32: the total is a multiple of 16,
  ** which sodium_malloc needs for an aligned pointer (it places the block
  ** against the trailing guard page).
  */
  size_t block_size = (size_t)room * (sizeof(keyring_key) + KEYRING_KEY_BYTES);
  if (kr) kr->block = sodium_malloc(block_size);
  if (!kr || !kr->block) {
    set_err(err, path, "out of memory");
    free(kr);
    sodium_free(buf);
    return NULL;
  }
  kr->pub.keys = kr->block;
  keyring_line *where = text ? calloc((size_t)room, sizeof *where) : NULL;
  int rc = text && !where ? (set_err(err, path, "out of memory"), -1)
                          : parse(kr, room, buf, n, path, where, err);
  if (rc != 0 || !text) {
    sodium_free(buf);  /* zeroes the file's text */
    free(where);
  }
  if (rc != 0) {
    keyring_free(&kr->pub);
    return NULL;
  }
  if (text) {
    text->bytes = buf;
    text->len = n;
    text->lines = where;
    text->body = n >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
  }
  /* Nothing writes keys after this; a stray write now faults. */
  sodium_mprotect_readonly(kr->block);
  return &kr->pub;
}

void keyring_text_free(keyring_text *text) {
  if (!text) return;
  sodium_free(text->bytes);  /* zeroes the key text */
  free(text->lines);
  memset(text, 0, sizeof *text);
}

void keyring_free(keyring *pub) {
  if (!pub) return;
  keyring_impl *kr = (keyring_impl *)pub;
  sodium_free(kr->scratch);  /* sodium_free zeroes, even when read-only */
  sodium_free(kr->block);
  sodium_memzero(kr, sizeof *kr);
  free(kr);
}

/*
** Linear: a keyring holds a handful of keys (a rotation adds one), and
** these also work on a keyring not made by keyring_load. Even at the
** 1,024-key limit a scan is about a microsecond.
*/
const keyring_key *keyring_find(const keyring *kr, uint32_t id) {
  for (int i = 0; i < kr->n_keys; i++)
    if (kr->keys[i].id == id) return &kr->keys[i];
  return NULL;
}

const keyring_key *keyring_primary(const keyring *kr) {
  for (int i = 0; i < kr->n_keys; i++)
    if (kr->keys[i].status == KEY_PRIMARY) return &kr->keys[i];
  return NULL;
}

unsigned char *keyring_scratch(keyring *pub, size_t n) {
  keyring_impl *kr = (keyring_impl *)pub;
  if (kr->scratch && n <= kr->scratch_len &&
      !(kr->scratch_len > SCRATCH_KEEP && n <= SCRATCH_MIN))
    return kr->scratch;
  /* Round up to whole pages, which also keeps sodium_malloc's pointer aligned. */
  size_t want = n < SCRATCH_MIN ? SCRATCH_MIN : (n + SCRATCH_MIN - 1) / SCRATCH_MIN * SCRATCH_MIN;
  if (want < n) return NULL;  /* overflow */
  sodium_free(kr->scratch);
  kr->scratch = sodium_malloc(want);
  kr->scratch_len = kr->scratch ? want : 0;
  return kr->scratch;
}

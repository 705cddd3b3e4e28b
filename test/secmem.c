/*
** secmem.c: what happens to secrets in memory, checked from inside a process
** that loads the extension (test/zeroing.test runs it; docs/SECURITY.md,
** "Memory").
**
**   secmem zeroing EXT DIR   every block the extension allocates through
**                            SQLite is free of key and plaintext bytes when
**                            it is freed
**   secmem coredump EXT DIR  every copy of a key in the process is in memory
**                            excluded from core dumps, none is left after
**                            close, and the process's own core settings are
**                            unchanged
**   secmem pwhash N C        a cheap Argon2id hash (m=8 KiB, t=1) of N bytes
**                            of C, for tests of long passwords
**
** Prints one line per finding, "ok ..." or "FAIL ...", and exits 1 on any
** failure. The keys it makes live in sodium_malloc'd memory of its own, so
** they are not mistaken for a leak.
*/
#define _GNU_SOURCE /* memmem */
#define SQLITE_CORE 1 /* sqlite3ext.h: the struct, not its renaming macros */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sqlite3ext.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static int failures;

static void report(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs(ok ? "ok " : "FAIL ", stdout);
  vprintf(fmt, ap);
  fputc('\n', stdout);
  va_end(ap);
  if (!ok) failures++;
}

static void die(const char *what, const char *detail) {
  printf("FAIL %s: %s\n", what, detail ? detail : "");
  exit(1);
}

/* ---- secrets ------------------------------------------------------------ */

/* A secret and its name; the bytes live in sodium_malloc'd memory. */
typedef struct secret {
  const char *name;
  unsigned char *p;
  size_t n;
} secret;

enum { S_KEY1, S_KEY2, S_KEY1_HEX, S_KEY2_HEX, S_SUBKEY, S_PLAIN, S_PLAIN2, S_COUNT };
static secret secrets[S_COUNT];

static void secret_set(int i, const char *name, const void *p, size_t n) {
  secrets[i].name = name;
  secrets[i].p = sodium_malloc(n);
  if (!secrets[i].p) die("sodium_malloc", "out of memory");
  memcpy(secrets[i].p, p, n);
  secrets[i].n = n;
}

/* Which secret, if any, the n bytes at p contain (-1: none). */
static int holds_secret(const unsigned char *p, size_t n, const unsigned char **at) {
  for (int i = 0; i < S_COUNT; i++) {
    if (!secrets[i].p || secrets[i].n > n) continue;
    const unsigned char *hit = memmem(p, n, secrets[i].p, secrets[i].n);
    if (hit) {
      if (at) *at = hit;
      return i;
    }
  }
  return -1;
}

/*
** Two fresh keys and their keyring lines, written with write(2) from locked
** memory (no stdio buffer keeps them). Key 1 primary in ring1; in ring2 key
** 2 is primary and key 1 active, as in a rotation.
*/
static void make_keys(const char *dir, char *ring1, char *ring2, size_t cap) {
  for (int k = 0; k < 2; k++) {
    unsigned char key[32];
    char hex[65];
    randombytes_buf(key, sizeof key);
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    secret_set(k == 0 ? S_KEY1 : S_KEY2, k == 0 ? "key 1" : "key 2", key, 32);
    secret_set(k == 0 ? S_KEY1_HEX : S_KEY2_HEX, k == 0 ? "key 1 (hex)" : "key 2 (hex)",
               hex, 64);
    sodium_memzero(key, sizeof key);
    sodium_memzero(hex, sizeof hex);
  }
  snprintf(ring1, cap, "%s/ring1", dir);
  snprintf(ring2, cap, "%s/ring2", dir);
  const char *paths[2] = {ring1, ring2};
  for (int r = 0; r < 2; r++) {
    int fd = open(paths[r], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) die("open keyring", strerror(errno));
    /* "id hex status\n": ids 0000000a (key 1) and 0000000b (key 2). */
    struct { const char *id; int key; const char *status; } lines[2][2] = {
        {{"0000000a", S_KEY1_HEX, "primary"}, {NULL, 0, NULL}},
        {{"0000000b", S_KEY2_HEX, "primary"}, {"0000000a", S_KEY1_HEX, "active"}}};
    for (int l = 0; l < 2 && lines[r][l].id; l++) {
      if (write(fd, lines[r][l].id, 8) != 8 || write(fd, " ", 1) != 1 ||
          write(fd, secrets[lines[r][l].key].p, 64) != 64 || write(fd, " ", 1) != 1 ||
          write(fd, lines[r][l].status, strlen(lines[r][l].status)) !=
              (ssize_t)strlen(lines[r][l].status) ||
          write(fd, "\n", 1) != 1)
        die("write keyring", strerror(errno));
    }
    close(fd);
  }
}

/* The fingerprint subkey of key 1, as tokens.c derives it (FORMAT.md). */
static void make_subkey(void) {
  unsigned char sub[32];
  crypto_kdf_derive_from_key(sub, sizeof sub, 1, "oauthfp1", secrets[S_KEY1].p);
  secret_set(S_SUBKEY, "fingerprint subkey", sub, sizeof sub);
  sodium_memzero(sub, sizeof sub);
}

/* ---- running SQL ---------------------------------------------------------- */

static sqlite3 *db;

/* Run SQL, binding ?1..?n to the NUL-terminated texts given; die on error. */
static void run(const char *sql, int n, ...) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    die(sql, sqlite3_errmsg(db));
  va_list ap;
  va_start(ap, n);
  for (int i = 1; i <= n; i++) sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_STATIC);
  va_end(ap);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
  if (rc != SQLITE_DONE) die(sql, sqlite3_errmsg(db));
  sqlite3_finalize(st);
}

/* Like run, but the statement is expected to fail. */
static void run_failing(const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {}
  }
  sqlite3_finalize(st);
}

/* ---- zeroing: a SQLite allocator that looks at every freed block ---------- */

static sqlite3_mem_methods real_mem;

/*
** Blocks the extension allocated through its API table (a small open-
** addressing set of pointers). Everything else that SQLite frees is
** SQLite's own: values it copied, pages, statements.
*/
#define MARK_SLOTS (1 << 16)
static void *marked[MARK_SLOTS];
static int n_marked_allocs, n_marked_frees, n_marked_wiped;
static int n_ours_with_secret, n_sqlite_with_secret;
static int sqlite_secret_kinds[S_COUNT];
static int selftest; /* while set, findings are counted, not reported */

static size_t slot_of(void *p) { return ((uintptr_t)p >> 4) * 2654435761u % MARK_SLOTS; }
static void mark(void *p) {
  if (!p) return;
  n_marked_allocs++;
  for (size_t i = slot_of(p), k = 0; k < MARK_SLOTS; i = (i + 1) % MARK_SLOTS, k++) {
    if (!marked[i] || marked[i] == (void *)1) {
      marked[i] = p;
      return;
    }
  }
  die("mark", "set full");
}
/* Remove p from the set; 1 if it was there. Deleted slots keep a tombstone. */
static int unmark(void *p) {
  for (size_t i = slot_of(p), k = 0; k < MARK_SLOTS && marked[i]; i = (i + 1) % MARK_SLOTS, k++) {
    if (marked[i] == p) {
      marked[i] = (void *)1;
      return 1;
    }
  }
  return 0;
}

/* Every free, and every realloc that moves or shrinks, comes through here. */
static void inspect(void *p) {
  if (!p) return;
  int n = real_mem.xSize(p);
  int ours = unmark(p);
  const unsigned char *at = NULL;
  int which = holds_secret(p, (size_t)n, &at);
  if (ours) {
    n_marked_frees++;
    if (n > 0 && sodium_is_zero(p, (size_t)n)) n_marked_wiped++;
    if (which >= 0 && selftest) {
      n_ours_with_secret++;
    } else if (which >= 0) {
      n_ours_with_secret++;
      printf("FAIL a block the extension allocated (%d bytes) was freed holding %s at offset %ld\n",
             n, secrets[which].name, (long)(at - (const unsigned char *)p));
      failures++;
    }
  } else if (which >= 0) {
    n_sqlite_with_secret++;
    sqlite_secret_kinds[which]++;
  }
}

static void *mem_malloc(int n) { return real_mem.xMalloc(n); }
static void mem_free(void *p) {
  inspect(p);
  real_mem.xFree(p);
}
static void *mem_realloc(void *p, int n) {
  /* A realloc that moves leaves the old bytes behind: look at them first. */
  int was_ours = 0;
  if (p) {
    int which = holds_secret(p, (size_t)real_mem.xSize(p), NULL);
    was_ours = unmark(p);
    if (was_ours && which >= 0) {
      printf("FAIL a block the extension allocated was reallocated holding %s\n",
             secrets[which].name);
      failures++;
    } else if (which >= 0) {
      n_sqlite_with_secret++;
      sqlite_secret_kinds[which]++;
    }
  }
  void *q = real_mem.xRealloc(p, n);
  if (was_ours) {
    mark(q ? q : p);
    n_marked_allocs--; /* the same block, moved */
  }
  return q;
}
static int mem_size(void *p) { return real_mem.xSize(p); }
static int mem_roundup(int n) { return real_mem.xRoundup(n); }
static int mem_init(void *a) { return real_mem.xInit(a); }
static void mem_shutdown(void *a) { real_mem.xShutdown(a); }

/* ---- the extension's API table, with allocations marked ------------------ */

static const sqlite3_api_routines *real_api;
static sqlite3_api_routines fake_api;

static void *api_malloc(int n) { void *p = sqlite3_malloc(n); mark(p); return p; }
static void *api_malloc64(sqlite3_uint64 n) { void *p = sqlite3_malloc64(n); mark(p); return p; }
static void *api_realloc(void *p, int n) { return sqlite3_realloc(p, n); }
static void *api_realloc64(void *p, sqlite3_uint64 n) { return sqlite3_realloc64(p, n); }
static char *api_vmprintf(const char *f, va_list ap) { char *p = sqlite3_vmprintf(f, ap); mark(p); return p; }
static char *api_mprintf(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  char *p = sqlite3_vmprintf(f, ap);
  va_end(ap);
  mark(p);
  return p;
}

static int capture(sqlite3 *d, char **e, const sqlite3_api_routines *api) {
  (void)d; (void)e;
  real_api = api;
  return SQLITE_OK;
}

/*
** Load EXT by calling its entry point with our copy of the API table, so
** every block it allocates through SQLite is marked. (realloc keeps the mark
** through mem_realloc; msize and free need no wrapper.)
*/
static void load_marked(const char *ext) {
  sqlite3_auto_extension((void (*)(void))capture);
  sqlite3 *tmp;
  sqlite3_open(":memory:", &tmp);
  sqlite3_close(tmp);
  sqlite3_cancel_auto_extension((void (*)(void))capture);
  if (!real_api) die("capture", "no API table");
  fake_api = *real_api;
  fake_api.malloc = api_malloc;
  fake_api.malloc64 = api_malloc64;
  fake_api.realloc = api_realloc;
  fake_api.realloc64 = api_realloc64;
  fake_api.mprintf = api_mprintf;
  fake_api.vmprintf = api_vmprintf;
  void *h = dlopen(ext, RTLD_NOW | RTLD_LOCAL);
  if (!h) die("dlopen", dlerror());
  int (*init)(sqlite3 *, char **, const sqlite3_api_routines *) =
      (int (*)(sqlite3 *, char **, const sqlite3_api_routines *))dlsym(h, "sqlite3_oauthdb_init");
  if (!init) die("dlsym", dlerror());
  char *err = NULL;
  if (init(db, &err, &fake_api) != SQLITE_OK) die("sqlite3_oauthdb_init", err);
}

static int zeroing(const char *ext, const char *dir) {
  static sqlite3_mem_methods wrap = {mem_malloc, mem_free, mem_realloc, mem_size,
                                     mem_roundup, mem_init, mem_shutdown, NULL};
  if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem) != SQLITE_OK ||
      sqlite3_config(SQLITE_CONFIG_MALLOC, &wrap) != SQLITE_OK)
    die("sqlite3_config", "cannot install the allocator");

  char ring1[4096], ring2[4096], dbpath[4096];
  make_keys(dir, ring1, ring2, sizeof ring1);
  make_subkey();
  static const char plain[] = "ya29.zeroing-test-PLAINTEXT-0123456789abcdef";
  static const char plain2[] = "1//zeroing-test-REFRESH-PLAINTEXT-fedcba9876";
  secret_set(S_PLAIN, "the plaintext token", plain, sizeof plain - 1);
  secret_set(S_PLAIN2, "the second plaintext token", plain2, sizeof plain2 - 1);

  snprintf(dbpath, sizeof dbpath, "%s/zeroing.db", dir);
  unlink(dbpath);
  if (sqlite3_open(dbpath, &db) != SQLITE_OK) die("open", sqlite3_errmsg(db));
  /*
  ** Without lookaside every block SQLite frees reaches the allocator, so its
  ** own copies are counted too (and nothing hides in a lookaside slot).
  */
  sqlite3_db_config(db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 0, 0);

  /*
  ** The detector works: a marked block freed holding the plaintext is
  ** caught, and an unmarked one counts as SQLite's.
  */
  selftest = 1;
  void *probe = api_malloc(64);
  memcpy(probe, plain, sizeof plain - 1);
  sqlite3_free(probe);
  probe = sqlite3_malloc(64);
  memcpy(probe, secrets[S_KEY1].p, 32);
  sqlite3_free(probe);
  report(n_ours_with_secret == 1 && sqlite_secret_kinds[S_KEY1] == 1,
         "self-test: a block freed with a secret in it is caught, and told ours or SQLite's");
  selftest = 0;
  n_marked_allocs = n_marked_frees = n_marked_wiped = n_ours_with_secret = 0;
  n_sqlite_with_secret = 0;
  memset(sqlite_secret_kinds, 0, sizeof sqlite_secret_kinds);

  load_marked(ext);
  run("SELECT oauthdb_migrate()", 0);
  run("SELECT oauthdb_keyring(?1)", 1, ring1);
  run("INSERT INTO users(id, email) VALUES ('0192f3c4-0000-7000-8000-000000000001', 'a@b.c')", 0);
  run("INSERT INTO user_providers(id, user_id, provider, provider_id) VALUES "
      "('0192f3c4-0000-7000-8000-0000000000a1', '0192f3c4-0000-7000-8000-000000000001', "
      "'google', 'g')", 0);

  /* Each function, its error paths included. */
  run("CREATE TABLE kept(s BLOB)", 0);
  run("INSERT INTO kept SELECT token_seal(?1, 'ad')", 1, plain);
  run("SELECT token_open(s, 'ad') FROM kept", 0);
  run("SELECT token_open(s, 'wrong ad') FROM kept WHERE 0", 0);
  run_failing("SELECT token_open(s, 'wrong ad') FROM kept");
  run("SELECT token_fingerprint(?1)", 1, plain);
  run("SELECT password_hash(?1)", 1, plain);
  run("INSERT INTO oauth_token_vault(id, user_provider_id, access_token, refresh_token) "
      "VALUES ('0192f3c4-0000-7000-8000-0000000000c1', '0192f3c4-0000-7000-8000-0000000000a1', "
      "?1, ?2)", 2, plain, plain2);
  run("SELECT access_token, refresh_token FROM oauth_token_vault", 0);
  /* A refresh: the old token is opened to fingerprint it, then replaced. */
  run("UPDATE oauth_token_vault SET access_token = ?1 || '-new' WHERE id = "
      "'0192f3c4-0000-7000-8000-0000000000c1'", 1, plain);
  run("SELECT session_create('0192f3c4-0000-7000-8000-000000000001')", 0);
  /* Rotation: key 2 becomes primary, the replaced keyring is freed. */
  run("SELECT oauthdb_keyring(?1)", 1, ring2);
  run("UPDATE kept SET s = token_reseal(s, 'ad')", 0);
  run("UPDATE oauth_token_vault SET refresh_token = refresh_token", 0);
  run("SELECT * FROM oauth_token_vault", 0);
  run_failing("SELECT oauthdb_keyring('/nonexistent/keyring')");
  if (sqlite3_close(db) != SQLITE_OK) die("close", sqlite3_errmsg(db));
  sqlite3_shutdown();

  report(n_marked_allocs >= 10 && n_marked_frees == n_marked_allocs,
         "the extension allocated %d blocks through SQLite and all %d were freed",
         n_marked_allocs, n_marked_frees);
  report(n_marked_wiped > 0, "%d of them were zeroed before they were freed (plaintext results)",
         n_marked_wiped);
  report(n_ours_with_secret == 0,
         "none of them held a key, key text, the fingerprint subkey or a plaintext token "
         "when freed (%d did)", n_ours_with_secret);
  /* SQLite's own copies (results handed over SQLITE_TRANSIENT, bound values). */
  printf("info: %d blocks SQLite allocated itself held a secret when freed:", n_sqlite_with_secret);
  for (int i = 0; i < S_COUNT; i++)
    if (sqlite_secret_kinds[i]) printf(" %s x%d;", secrets[i].name, sqlite_secret_kinds[i]);
  printf("\n");
  report(sqlite_secret_kinds[S_KEY1] + sqlite_secret_kinds[S_KEY2] +
                 sqlite_secret_kinds[S_KEY1_HEX] + sqlite_secret_kinds[S_KEY2_HEX] +
                 sqlite_secret_kinds[S_SUBKEY] == 0,
         "no block of SQLite's ever held a key, key text or the subkey");
  return failures ? 1 : 0;
}

/* ---- core dumps ------------------------------------------------------------ */

/* A mapping of /proc/self/smaps: its range and whether it is excluded ("dd"). */
typedef struct mapping {
  uintptr_t lo, hi;
  int readable, dontdump, locked;
} mapping;

static int read_mappings(mapping *m, int cap) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) die("smaps", strerror(errno));
  char line[1024];
  int n = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) {
      if (++n >= cap) die("smaps", "too many mappings");
      m[n].lo = lo;
      m[n].hi = hi;
      m[n].readable = perms[0] == 'r';
      m[n].dontdump = m[n].locked = 0;
    } else if (n >= 0 && strncmp(line, "VmFlags:", 8) == 0) {
      m[n].dontdump = strstr(line, " dd") != NULL;
      m[n].locked = strstr(line, " lo") != NULL;
    }
  }
  fclose(f);
  return n + 1;
}

/*
** Look through every readable mapping (through /proc/self/mem, so an
** unreadable page is an error code, not a crash) for secret WHICH. Returns
** the number of copies found outside the helper's own buffers; *in_dd counts
** those in memory excluded from core dumps, *locked those also mlock'd.
*/
static int find_copies(int which, int *in_dd, int *locked, unsigned char *buf, size_t cap) {
  static mapping maps[4096];
  int n = read_mappings(maps, 4096);
  int fd = open("/proc/self/mem", O_RDONLY);
  if (fd < 0) die("/proc/self/mem", strerror(errno));
  int found = 0;
  *in_dd = *locked = 0;
  for (int i = 0; i < n; i++) {
    /* AddressSanitizer's shadow is terabytes of reserved zeros: not ours. */
    if (!maps[i].readable || maps[i].hi - maps[i].lo > ((uintptr_t)1 << 32)) continue;
    /* Skip the read buffer itself: it holds whatever it last read. */
    if ((uintptr_t)buf < maps[i].hi && (uintptr_t)buf + cap > maps[i].lo) continue;
    for (uintptr_t at = maps[i].lo; at < maps[i].hi; at += cap - 64) {
      size_t want = maps[i].hi - at < cap ? maps[i].hi - at : cap;
      ssize_t got = pread(fd, buf, want, (off_t)at);
      if (got <= 0) break;
      for (size_t off = 0; off + secrets[which].n <= (size_t)got;) {
        unsigned char *hit = memmem(buf + off, (size_t)got - off, secrets[which].p, secrets[which].n);
        if (!hit) break;
        uintptr_t addr = at + (uintptr_t)(hit - buf);
        off = (size_t)(hit - buf) + 1;
        /* Windows overlap by 64 bytes: a match wholly inside the overlap was
           counted in the previous window. */
        if (at != maps[i].lo && (size_t)(hit - buf) + secrets[which].n <= 64) continue;
        int own = 0;
        for (int s = 0; s < S_COUNT; s++)
          if (secrets[s].p && addr >= (uintptr_t)secrets[s].p &&
              addr < (uintptr_t)secrets[s].p + secrets[s].n)
            own = 1;
        if (own) continue;
        found++;
        if (maps[i].dontdump) (*in_dd)++;
        if (maps[i].dontdump && maps[i].locked) (*locked)++;
      }
      if ((size_t)got < want) break;
      if (want < cap) break;
    }
  }
  close(fd);
  return found;
}

static int coredump(const char *ext, const char *dir) {
  struct rlimit core_before, core_after;
  getrlimit(RLIMIT_CORE, &core_before);
  int dumpable_before = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);

  char ring1[4096], ring2[4096];
  make_keys(dir, ring1, ring2, sizeof ring1);
  size_t cap = 1 << 20;
  unsigned char *buf = sodium_malloc(cap);
  if (!buf) die("sodium_malloc", "out of memory");

  /* The scan works: a copy in the ordinary heap is found, outside "dd". */
  int in_dd, locked;
  unsigned char *heap_copy = malloc(32);
  if (!heap_copy) die("malloc", "");
  memcpy(heap_copy, secrets[S_KEY1].p, 32);
  int n = find_copies(S_KEY1, &in_dd, &locked, buf, cap);
  sodium_memzero(heap_copy, 32);
  free(heap_copy);
  report(n == 1 && in_dd == 0, "self-test: a copy of a key in the heap is found, outside dd");

  if (sqlite3_open(":memory:", &db) != SQLITE_OK) die("open", "");
  sqlite3_enable_load_extension(db, 1);
  char *err = NULL;
  if (sqlite3_load_extension(db, ext, NULL, &err) != SQLITE_OK) die("load", err);
  run("SELECT oauthdb_keyring(?1)", 1, ring2);
  run("SELECT token_open(token_seal('x', 'ad'), 'ad'), token_fingerprint('x')", 0);

  static const int keys[] = {S_KEY1, S_KEY2};
  for (int k = 0; k < 2; k++) {
    n = find_copies(keys[k], &in_dd, &locked, buf, cap);
    report(n >= 1 && in_dd == n,
           "%s: %d cop%s in the process, %d in memory excluded from core dumps (VmFlags dd), "
           "%d of them locked (lo)", secrets[keys[k]].name, n, n == 1 ? "y" : "ies", in_dd, locked);
    if (locked < n)
      printf("info: a copy is not mlock'd (RLIMIT_MEMLOCK?); it is still out of core dumps\n");
  }
  static const int texts[] = {S_KEY1_HEX, S_KEY2_HEX};
  for (int k = 0; k < 2; k++) {
    n = find_copies(texts[k], &in_dd, &locked, buf, cap);
    report(n == 0, "%s: the keyring file's text is nowhere in memory (%d copies)",
           secrets[texts[k]].name, n);
  }

  getrlimit(RLIMIT_CORE, &core_after);
  int dumpable_after = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  report(core_before.rlim_cur == core_after.rlim_cur && core_before.rlim_max == core_after.rlim_max,
         "RLIMIT_CORE unchanged (%lld/%lld)", (long long)core_after.rlim_cur,
         (long long)core_after.rlim_max);
  report(dumpable_before == dumpable_after,
         "the process's dumpable flag unchanged (PR_GET_DUMPABLE %d, was %d)",
         dumpable_after, dumpable_before);

  if (sqlite3_close(db) != SQLITE_OK) die("close", sqlite3_errmsg(db));
  for (int k = 0; k < 2; k++) {
    n = find_copies(keys[k], &in_dd, &locked, buf, cap);
    report(n == 0, "%s: no copy left once the connection closed (%d)", secrets[keys[k]].name, n);
  }
  return failures ? 1 : 0;
}

static int pwhash(int n, char c) {
  char *pw = malloc((size_t)n + 1);
  char out[crypto_pwhash_STRBYTES];
  if (!pw) die("malloc", "");
  memset(pw, c, (size_t)n);
  if (crypto_pwhash_str(out, pw, (unsigned long long)n, 1, 8192) != 0) die("pwhash", "");
  puts(out);
  free(pw);
  return 0;
}

int main(int argc, char **argv) {
  if (sodium_init() < 0) die("sodium_init", "");
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc == 4 && strcmp(argv[1], "zeroing") == 0) return zeroing(argv[2], argv[3]);
  if (argc == 4 && strcmp(argv[1], "coredump") == 0) return coredump(argv[2], argv[3]);
  if (argc == 4 && strcmp(argv[1], "pwhash") == 0) return pwhash(atoi(argv[2]), argv[3][0]);
  fprintf(stderr, "usage: secmem zeroing|coredump EXT DIR | secmem pwhash N CHAR\n");
  return 2;
}

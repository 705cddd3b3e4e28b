/*
** oauthdb_tool_keys.c: `oauthdb keygen` and `oauthdb rotate`, and the
** keyring file as the tool edits it.
**
**   $ oauthdb keygen ~/.config/oauthdb/keyring     # new keyring, one primary key
**   $ oauthdb keygen                               # add an active key to $OAUTHDB_KEYRING
**   $ oauthdb rotate app.db --batch 5000           # resumable after a crash or kill
**   $ oauthdb rotate app.db test.db                # every database sharing the keyring
**
** Reading and writing a keyring go through the core (ext/core/keyring.c,
** keyring_write.c): keyring_load_text is the one parser of the format and
** hands back the text with each key's status word located; keyring_write
** installs new text atomically (temporary file, mode 0600, fsync, checked
** by keyring_load, rename, directory fsync). Edits keep the user's comments
** and layout: the file's text is edited in place (in locked memory), not
** regenerated. What only the tool reads is the rotation marker line.
**
** Writers take an exclusive flock() on the keyring's directory (the file
** itself is replaced by each write, so its inode cannot carry the lock).
** A second keygen or rotate fails at once instead of interleaving.
**
** Rotation is a state machine kept in the keyring file itself, so the
** state and the keys change together in one atomic rename:
**
**   IDLE     primary P.
**   RESEAL   primary N, P active, and a marker comment line
**            "# oauthdb rotate: in progress from P to N since T ...".
**            Values are resealed in batches (one transaction each) until
**            none is under any key but N; a rerun continues here.
**   IDLE     N primary, P retired, marker gone.
**
** IDLE -> RESEAL writes N before any value is sealed with it; RESEAL ->
** IDLE happens only after a count shows no value left under another key,
** and after the 'key.rotated' audit row is committed (a rerun that finds
** that row does not write a second one). A kill at any instant leaves the
** keyring in one of the two states and the database with every value under
** P or N, both of which the RESEAL keyring opens. docs/OPERATIONS.md tells
** the same story for users.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "keyring.h"
#include "oauthdb_tool.h"

#define KEY_HEX (2 * KEYRING_KEY_BYTES)
#define MARKER_PREFIX "# oauthdb rotate: in progress from "
/* Passes over the table before rotate concludes an application keeps
** sealing under an old key (see reseal_all). */
#define RESEAL_MAX_PASSES 5
/*
** Rows per transaction. Each commit costs a few fsyncs (4 in rollback-journal
** mode), so small batches make a rotation I/O-bound; 5000 rows keep that
** near the cost of one big UPDATE while holding the write lock for a fraction
** of a second at a time.
*/
#define DEFAULT_BATCH 5000
#define ROTATE_CACHE_SIZE "-65536" /* KiB: 64 MiB, for this connection only */
#define MAX_BATCH 1000000

/* ---- the keyring file as text ------------------------------------------ */

typedef struct keyline {
  size_t status_off, status_len;  /* where the status word is in the text */
  uint32_t id;
  key_status status;
} keyline;

/*
** The keyring as keyring_load_text parsed it (ext/core/keyring.c: the one
** parser of the format), plus what only the tool reads: the marker line.
*/
struct keyfile {
  char *path;
  keyring_text file;    /* the file's bytes (locked) and each status word */
  unsigned char *text;  /* = file.bytes */
  size_t len;           /* = file.len */
  keyline *keys;        /* ids, statuses and offsets: no secret, ordinary heap */
  int n;
  int has_marker;
  size_t marker_off, marker_len;  /* the marker line, newline included */
  uint32_t rot_old, rot_new;
  sqlite3_int64 rot_started;
};

void keyfile_free(keyfile *kf) {
  if (!kf) return;
  keyring_text_free(&kf->file);  /* zeroes the key text */
  free(kf->keys);
  free(kf->path);
  free(kf);
}

int keyfile_count(const keyfile *kf) { return kf->n; }
uint32_t keyfile_id(const keyfile *kf, int i) { return kf->keys[i].id; }
const char *keyfile_status(const keyfile *kf, int i) {
  return key_status_name(kf->keys[i].status);
}

int keyfile_rotation(const keyfile *kf, uint32_t *old_id, uint32_t *new_id,
                     sqlite3_int64 *started) {
  if (!kf->has_marker) return 0;
  *old_id = kf->rot_old;
  *new_id = kf->rot_new;
  *started = kf->rot_started;
  return 1;
}

static const keyline *keyfile_find(const keyfile *kf, uint32_t id) {
  for (int i = 0; i < kf->n; i++)
    if (kf->keys[i].id == id) return &kf->keys[i];
  return NULL;
}

static uint32_t keyfile_primary(const keyfile *kf) {
  for (int i = 0; i < kf->n; i++)
    if (kf->keys[i].status == KEY_PRIMARY) return kf->keys[i].id;
  return 0;  /* keyring_load guarantees one */
}

static int parse_marker(keyfile *kf, size_t off, size_t eol) {
  char line[160];
  size_t n = eol - off;
  if (n >= sizeof line) return 0;
  memcpy(line, kf->text + off, n);
  line[n] = 0;
  char old_hex[9], new_hex[9];
  long long started;
  if (sscanf(line, MARKER_PREFIX "%8[0-9a-f] to %8[0-9a-f] since %lld", old_hex,
             new_hex, &started) != 3)
    return 0;
  kf->rot_old = (uint32_t)strtoul(old_hex, NULL, 16);
  kf->rot_new = (uint32_t)strtoul(new_hex, NULL, 16);
  kf->rot_started = started;
  return 1;
}

/*
** Find the marker among the comment lines. The key lines were parsed by
** keyring_load_text; a comment line is one whose first non-blank byte is
** '#', and the marker is one that starts with MARKER_PREFIX at column 0.
*/
static int find_marker(keyfile *kf) {
  size_t pos = kf->file.body, plen = strlen(MARKER_PREFIX);
  while (pos < kf->len) {
    const unsigned char *nl = memchr(kf->text + pos, '\n', kf->len - pos);
    size_t eol = nl ? (size_t)(nl - kf->text) : kf->len;
    size_t next = nl ? eol + 1 : kf->len;
    if (eol - pos >= plen && memcmp(kf->text + pos, MARKER_PREFIX, plen) == 0) {
      if (kf->has_marker || !parse_marker(kf, pos, eol)) return -1;
      kf->has_marker = 1;
      kf->marker_off = pos;
      kf->marker_len = next - pos;
    }
    pos = next;
  }
  return 0;
}

keyfile *keyfile_read(const char *path) {
  keyfile *kf = calloc(1, sizeof *kf);
  if (!kf || !(kf->path = strdup(path))) {
    tool_error("out of memory");
    keyfile_free(kf);
    return NULL;
  }
  char *err = NULL;
  keyring *kr = keyring_load_text(path, &kf->file, &err);
  if (!kr) {
    tool_error("%s", err ? err : "out of memory loading the keyring");
    free(err);
    keyfile_free(kf);
    return NULL;
  }
  kf->text = kf->file.bytes;
  kf->len = kf->file.len;
  kf->keys = calloc((size_t)kr->n_keys + 1, sizeof *kf->keys);
  if (!kf->keys) {
    tool_error("out of memory");
    goto fail;
  }
  for (int i = 0; i < kr->n_keys; i++) {
    kf->keys[i].id = kr->keys[i].id;
    kf->keys[i].status = kr->keys[i].status;
    kf->keys[i].status_off = kf->file.lines[i].status_off;
    kf->keys[i].status_len = kf->file.lines[i].status_len;
  }
  kf->n = kr->n_keys;
  if (find_marker(kf) != 0) {
    tool_error("keyring %s: has a malformed or second '" MARKER_PREFIX "...' line; "
               "restore the line oauthdb rotate wrote (or remove it if the rotation "
               "is abandoned)", path);
    goto fail;
  }
  keyring_free(kr);
  return kf;
fail:
  keyring_free(kr);
  keyfile_free(kf);
  return NULL;
}

/*
** New text for kf: each key in ids[] gets statuses[], the line ADD (key
** material: locked memory, or NULL) is appended, and the marker line is
** replaced by MARKER (NULL: removed). Returns a sodium_malloc'd buffer.
*/
static unsigned char *keyfile_render(const keyfile *kf, const uint32_t *ids,
                                     const key_status *statuses, int n_changes,
                                     const char *add, const char *marker,
                                     size_t *out_len) {
  size_t cap = kf->len + (size_t)kf->n + (add ? strlen(add) : 0) +
               (marker ? strlen(marker) : 0) + 2;
  unsigned char *out = sodium_malloc(cap);
  if (!out) return NULL;
  /* The marker goes on top, after a byte order mark (which stays first). */
  size_t pos = kf->file.body, o = pos;
  memcpy(out, kf->text, pos);
  if (marker) {
    memcpy(out + o, marker, strlen(marker));
    o += strlen(marker);
  }
  int next_key = 0;
  while (pos < kf->len) {
    /* Copy up to the next edit point: a status word, the marker, or the end. */
    size_t stop = kf->len;
    const keyline *k = NULL;
    while (next_key < kf->n && kf->keys[next_key].status_off < pos) next_key++;
    if (next_key < kf->n) {
      k = &kf->keys[next_key];
      stop = k->status_off;
    }
    int at_marker = kf->has_marker && kf->marker_off >= pos && kf->marker_off < stop;
    if (at_marker) stop = kf->marker_off;
    memcpy(out + o, kf->text + pos, stop - pos);
    o += stop - pos;
    pos = stop;
    if (at_marker) {
      pos += kf->marker_len;  /* dropped; a new one, if any, went on top */
      continue;
    }
    if (!k) break;
    const char *word = NULL;
    for (int i = 0; i < n_changes; i++)
      if (ids[i] == k->id) word = key_status_name(statuses[i]);
    if (!word) word = key_status_name(k->status);
    memcpy(out + o, word, strlen(word));
    o += strlen(word);
    pos += k->status_len;
    next_key++;
  }
  if (add) {
    if (o > 0 && out[o - 1] != '\n') out[o++] = '\n';
    memcpy(out + o, add, strlen(add));
    o += strlen(add);
  }
  *out_len = o;
  return out;
}

/* ---- writing, locking ---------------------------------------------------- */

/* keyring_write (ext/core/keyring_write.c), saying why on failure. */
static int keyfile_write(const char *path, const unsigned char *text, size_t len,
                         int create) {
  char *err = NULL;
  if (keyring_write(path, text, len, create, &err) == 0) return 0;
  tool_error("%s", err ? err : "out of memory");
  free(err);
  return -1;
}

/*
** Lock the keyring's directory against other oauthdb writers. Returns the
** fd (closing it releases the lock; so does death, even by SIGKILL).
*/
static int keyring_lock(const char *path) {
  char *copy = strdup(path);
  if (!copy) return -1;
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    tool_error("cannot open the directory of %s: %s", path, strerror(errno));
    free(copy);
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    tool_error("another oauthdb keygen or rotate is writing a keyring in %s; "
               "wait for it to finish and try again", copy);
    close(fd);
    free(copy);
    return -1;
  }
  free(copy);
  return fd;
}

/* mkdir -p for the keyring's directory, mode 0700 for what it creates. */
static int make_parent_dirs(const char *path) {
  char buf[PATH_MAX];
  if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf) return -1;
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return 0;
}

/* ---- new keys ------------------------------------------------------------ */

/* A random id not yet in kf (kf NULL: any). Ids are random so keyrings merge. */
static uint32_t fresh_id(const keyfile *kf) {
  uint32_t id;
  do {
    randombytes_buf(&id, sizeof id);
  } while (kf && keyfile_find(kf, id));
  return id;
}

/*
** "<id>  <64 hex>  <status>\n" for a fresh random key, in locked memory
** (sodium_free it). The key exists only there and in the file.
*/
static char *new_key_line(uint32_t id, key_status status) {
  size_t cap = 8 + 2 + KEY_HEX + 2 + 8 + 2;
  char *line = sodium_malloc(cap);
  unsigned char *key = sodium_malloc(KEYRING_KEY_BYTES);
  if (!line || !key) {
    sodium_free(line);
    sodium_free(key);
    return NULL;
  }
  /* keyring.c refuses an all-zero key; randombytes never gives one in practice. */
  do randombytes_buf(key, KEYRING_KEY_BYTES);
  while (sodium_is_zero(key, KEYRING_KEY_BYTES));
  char idhex[9];
  snprintf(idhex, sizeof idhex, "%08x", (unsigned)id);
  memcpy(line, idhex, 8);
  memcpy(line + 8, "  ", 2);
  sodium_bin2hex(line + 10, KEY_HEX + 1, key, KEYRING_KEY_BYTES);
  snprintf(line + 10 + KEY_HEX, cap - 10 - KEY_HEX, "  %s\n", key_status_name(status));
  sodium_free(key);
  return line;
}

/* ---- keygen -------------------------------------------------------------- */

static const char keygen_usage[] = "usage: oauthdb keygen [KEYRING]\n";
static const char keygen_help[] =
    "Create the keyring KEYRING (default $OAUTHDB_KEYRING) with one primary\n"
    "key, or add an `active` key (opens, does not seal) to an existing one.\n"
    "A key is 32 bytes from libsodium's randombytes_buf; its id is 8 random\n"
    "hex digits, unique in the file. Only the id is printed, never the key.\n"
    "The file is mode 0600 and written atomically (a temporary file in the\n"
    "same directory, fsync, rename); missing directories are created 0700.\n"
    "To make a new key primary and reseal every token, use oauthdb rotate.\n"
    "Exit: 0 done, 1 failed, 2 usage.\n";

static const struct option help_only[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int cmd_keygen(int argc, char **argv) {
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "h", help_only, NULL)) != -1) {
    if (c == 'h') {
      printf("%s\n%s", keygen_usage, keygen_help);
      return EXIT_OK;
    }
    return tool_usage_error(keygen_usage, "unknown option %s", argv[optind - 1]);
  }
  if (argc - optind > 1) return tool_usage_error(keygen_usage, "expected at most one keyring path");
  const char *path = argc - optind == 1 ? argv[optind] : getenv("OAUTHDB_KEYRING");
  if (!path || !*path)
    return tool_usage_error(keygen_usage, "no keyring: name one, or set OAUTHDB_KEYRING");

  struct stat st;
  int exists = lstat(path, &st) == 0;
  if (!exists && errno != ENOENT) {
    tool_error("cannot stat %s: %s", path, strerror(errno));
    return EXIT_FAIL;
  }
  if (!exists && make_parent_dirs(path) != 0) {
    tool_error("cannot create the directory of %s: %s", path, strerror(errno));
    return EXIT_FAIL;
  }
  int lock = keyring_lock(path);
  if (lock < 0) return EXIT_FAIL;

  int rc = EXIT_FAIL;
  keyfile *kf = NULL;
  char *line = NULL;
  unsigned char *text = NULL;
  size_t len = 0;
  uint32_t id;
  if (!exists) {
    id = fresh_id(NULL);
    line = new_key_line(id, KEY_PRIMARY);
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    char header[512];
    int hn = snprintf(header, sizeof header,
                      "# oauthdb keyring, created %s by oauthdb keygen.\n"
                      "# key id  key (32 bytes, hex)  status (primary|active|retired)\n"
                      "# Secret: keep it mode 0600, out of git and out of backups of the "
                      "database.\n", date);
    if (line) text = sodium_malloc((size_t)hn + strlen(line));
    if (text) {
      memcpy(text, header, (size_t)hn);
      memcpy(text + hn, line, strlen(line));
      len = (size_t)hn + strlen(line);
      if (keyfile_write(path, text, len, 1) == 0) {
        printf("created keyring %s: key %08x (primary)\n", path, (unsigned)id);
        rc = EXIT_OK;
      }
    } else {
      tool_error("out of memory");
    }
  } else if ((kf = keyfile_read(path)) != NULL) {
    id = fresh_id(kf);
    line = new_key_line(id, KEY_ACTIVE);
    text = line ? keyfile_render(kf, NULL, NULL, 0, line, NULL, &len) : NULL;
    if (!text) {
      tool_error("out of memory");
    } else if (keyfile_write(path, text, len, 0) == 0) {
      printf("added key %08x (active) to %s\n", (unsigned)id, path);
      rc = EXIT_OK;
    }
  }
  sodium_free(text);
  sodium_free(line);
  keyfile_free(kf);
  close(lock);
  return rc;
}

/* ---- rotate -------------------------------------------------------------- */

static const char rotate_usage[] =
    "usage: oauthdb rotate DB... [--keyring KEYRING] [--batch N]\n";
static const char rotate_help[] =
    "Rotate the keys of DB: add a key to the keyring and make it primary (the\n"
    "old primary becomes active), reseal every sealed token (access_token,\n"
    "refresh_token, id_token)\n"
    "of oauth_tokens under it in batches of N rows (default 5000), each batch\n"
    "its own transaction, check that no value is left under the old key, record\n"
    "'key.rotated' in auth_audit_log, and retire the old key. Name every\n"
    "database that shares the keyring: all are resealed before the old key is\n"
    "retired.\n"
    "Resumable: after a crash or kill at any point, run it again (with the same\n"
    "databases) and it carries on from where it was (docs/OPERATIONS.md,\n"
    "\"Rotation\"). Applications need not reload anything: a connection that\n"
    "stays open sees the keyring file change and follows it within about a\n"
    "second; rotate waits that long before it counts what is left.\n"
    "  -k, --keyring KEYRING  default $OAUTHDB_KEYRING\n"
    "  -b, --batch N          rows per transaction, 1 to 1000000\n"
    "Exit: 0 done, 1 failed, 2 usage, 3 refused (not an oauthdb database, or a\n"
    "keyring whose rotation marker does not match its keys).\n";

/* A row needs resealing when any of its values is under a key other than ?1. */
#define NEEDS_RESEAL                                                        \
  "(token_key_id(access_token) <> ?1 OR"                                    \
  " (refresh_token IS NOT NULL AND token_key_id(refresh_token) <> ?1) OR"    \
  " (id_token IS NOT NULL AND token_key_id(id_token) <> ?1))"

static const char batch_end_sql[] =
    "SELECT max(rowid) FROM (SELECT rowid FROM oauth_tokens WHERE rowid >= ?1"
    " ORDER BY rowid LIMIT ?2)";

/*
** token_reseal returns a value already under the primary unchanged, but the
** CASE spares it the open altogether. token_ad builds the associated data
** with the core's function (docs/FORMAT.md).
*/
static const char reseal_batch_sql[] =
    "UPDATE oauth_tokens SET"
    " access_token = CASE WHEN token_key_id(access_token) <> ?1"
    "   THEN token_reseal(access_token, token_ad('oauth_tokens', 'access_token', id))"
    "   ELSE access_token END,"
    " refresh_token = CASE WHEN refresh_token IS NOT NULL AND token_key_id(refresh_token) <> ?1"
    "   THEN token_reseal(refresh_token, token_ad('oauth_tokens', 'refresh_token', id))"
    "   ELSE refresh_token END,"
    " id_token = CASE WHEN id_token IS NOT NULL AND token_key_id(id_token) <> ?1"
    "   THEN token_reseal(id_token, token_ad('oauth_tokens', 'id_token', id))"
    "   ELSE id_token END"
    " WHERE rowid BETWEEN ?2 AND ?3 AND " NEEDS_RESEAL;

/*
** After a pass, in one scan: rows still needing a reseal (under any key but
** the new one ?1), and rows with a value under the old key ?2 (which must
** be none before the old key may retire).
*/
static const char remaining_sql[] =
    "SELECT coalesce(sum(" NEEDS_RESEAL "), 0),"
    " coalesce(sum(token_key_id(access_token) = ?2 OR token_key_id(refresh_token) IS ?2"
    " OR token_key_id(id_token) IS ?2), 0)"
    " FROM oauth_tokens";

/* Write the audit row unless a rerun already did, in one statement. */
static const char audit_sql[] =
    "INSERT INTO auth_audit_log(id, timestamp, action, actor, success, details)"
    " SELECT n.id, n.timestamp, 'key.rotated', ?1, 1, json_object('old_key_id', ?2,"
    "   'new_key_id', ?3, 'resealed_by_this_run', CAST(?4 AS INTEGER),"
    "   'batches_by_this_run', CAST(?5 AS INTEGER), 'keyring', ?6)"
    " FROM auth_audit_log_new_id AS n"
    " WHERE NOT EXISTS (SELECT 1 FROM auth_audit_log WHERE action = 'key.rotated'"
    "   AND timestamp >= CAST(?7 AS INTEGER) AND json_extract(details, '$.new_key_id') = ?3)";

/* What one rotation shares across its databases. */
typedef struct rotation {
  const char *keyring_path;
  char old_hex[9], new_hex[9];
  sqlite3_int64 started;
  sqlite3_int64 batch;
  int progress;  /* stderr is a terminal */
} rotation;

/* One database of the rotation. */
typedef struct rot_db {
  sqlite3 *db;
  const char *path;
  sqlite3_int64 todo;  /* values not under the new key at the start */
  sqlite3_int64 resealed, batches;
  int wal;  /* journal_mode is WAL (see relax_batch_durability) */
} rot_db;

static int step_done(sqlite3 *db, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) tool_error("%s", sqlite3_errmsg(db));
  return rc;
}

/*
** Check every key id D uses against the keyring: a value under a key the
** keyring lacks or has retired could not be resealed. d->todo gets the
** number of values not under NEW_HEX (all of them when NULL): the work
** left, for the progress line.
*/
static int check_key_ids(rotation *r, rot_db *d, const keyfile *kf, const char *new_hex) {
  key_count *counts = NULL;
  int n = tool_key_counts(d->db, &counts);
  if (n < 0) return EXIT_FAIL;
  int result = EXIT_OK;
  d->todo = 0;
  for (int i = 0; i < n; i++) {
    const char *hex = counts[i].id;
    if (!new_hex || strcmp(hex, new_hex) != 0) d->todo += counts[i].n;
    const keyline *k = keyfile_find(kf, (uint32_t)strtoul(hex, NULL, 16));
    if (!k || k->status == KEY_RETIRED) {
      tool_error("%lld values in %s are sealed under key %s, which keyring %s %s; "
                 "they cannot be resealed. Nothing was changed.",
                 (long long)counts[i].n, d->path, hex, r->keyring_path,
                 k ? "has retired (mark it active to reseal them)" : "does not hold");
      result = EXIT_FAIL;
    }
  }
  free(counts);
  return result;
}

/*
** Batch durability (docs/OPERATIONS.md, "Why the batches need not be
** durable"). A batch that a crash loses is redone by the next run: the old
** key stays active, so every value opens whichever batch survived. What must
** be durable is every batch before the old key retires. So the batches
** commit without waiting for the disk where that cannot corrupt the file,
** and make_batches_durable syncs once before the count that lets the old key
** retire.
**   WAL:      synchronous=NORMAL: a commit appends to the WAL without fsync;
**             a power loss drops the newest commits whole, never corrupts.
**   rollback: synchronous stays FULL (NORMAL could corrupt on power loss);
**             journal_mode=TRUNCATE spares each commit the journal's unlink
**             and re-creation. Both settings belong to this connection only.
*/
static int relax_batch_durability(rot_db *d) {
  char *mode = NULL;
  if (tool_query_text(d->db, &mode, "PRAGMA journal_mode", (char *)NULL) != SQLITE_OK)
    return -1;
  d->wal = mode && strcmp(mode, "wal") == 0;
  free(mode);
  mode = NULL;
  int rc = d->wal ? tool_exec(d->db, "PRAGMA synchronous = NORMAL")
                  : tool_query_text(d->db, &mode, "PRAGMA journal_mode = TRUNCATE",
                                    (char *)NULL);
  free(mode);
  return rc == SQLITE_OK ? 0 : -1;
}

/*
** Every committed batch on disk, before anything may retire the old key.
** In WAL mode one fsync of the WAL covers every frame committed so far
** (SQLite's own file handle, through SQLITE_FCNTL_JOURNAL_POINTER); the
** connection goes back to synchronous=FULL. In rollback mode each commit
** was already synced; the journal goes back to DELETE (removing the file).
*/
static int make_batches_durable(rot_db *d) {
  if (!d->wal) {
    char *mode = NULL;
    int rc = tool_query_text(d->db, &mode, "PRAGMA journal_mode = DELETE", (char *)NULL);
    free(mode);
    return rc == SQLITE_OK ? 0 : -1;
  }
  if (tool_exec(d->db, "PRAGMA synchronous = FULL") != SQLITE_OK) return -1;
  sqlite3_file *wal = NULL;
  int rc = sqlite3_file_control(d->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
  if (rc == SQLITE_OK && wal && wal->pMethods)
    rc = wal->pMethods->xSync(wal, SQLITE_SYNC_FULL);
  if (rc != SQLITE_OK) {
    tool_error("%s: cannot sync the WAL before retiring the old key (%s); nothing is "
               "retired, run oauthdb rotate again", d->path, sqlite3_errstr(rc));
    return -1;
  }
  return 0;
}

/* One pass over the table by rowid ranges, a transaction per batch. */
static int reseal_pass(rotation *r, rot_db *d, sqlite3_int64 todo) {
  sqlite3_stmt *end_st = NULL, *upd = NULL;
  int rc = sqlite3_prepare_v2(d->db, batch_end_sql, -1, &end_st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(d->db, reseal_batch_sql, -1, &upd, NULL);
  if (rc != SQLITE_OK) {
    tool_error("%s: %s", d->path, sqlite3_errmsg(d->db));
    sqlite3_finalize(end_st);
    return -1;
  }
  sqlite3_int64 lo = INT64_MIN;
  int result = 0;
  for (;;) {
    /* IMMEDIATE: take the write lock first, so the batch never has to upgrade. */
    if (tool_exec(d->db, "BEGIN IMMEDIATE") != SQLITE_OK) {
      result = -1;
      break;
    }
    sqlite3_bind_int64(end_st, 1, lo);
    sqlite3_bind_int64(end_st, 2, r->batch);
    rc = step_done(d->db, end_st);
    int empty = rc != SQLITE_ROW || sqlite3_column_type(end_st, 0) == SQLITE_NULL;
    sqlite3_int64 hi = empty ? 0 : sqlite3_column_int64(end_st, 0);
    sqlite3_reset(end_st);
    if (rc != SQLITE_ROW) {
      result = -1;
    } else if (!empty) {
      sqlite3_bind_text(upd, 1, r->new_hex, -1, SQLITE_STATIC);
      sqlite3_bind_int64(upd, 2, lo);
      sqlite3_bind_int64(upd, 3, hi);
      if (step_done(d->db, upd) != SQLITE_DONE) result = -1;
      sqlite3_reset(upd);
      if (result == 0) d->resealed += sqlite3_changes64(d->db);
    }
    if (result != 0) {
      sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
      break;
    }
    if (tool_exec(d->db, "COMMIT") != SQLITE_OK) {
      sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
      result = -1;
      break;
    }
    if (empty) break;
    d->batches++;
    if (r->progress)
      fprintf(stderr, "\roauthdb rotate: %s: resealed %lld of about %lld rows", d->path,
              (long long)d->resealed, (long long)todo);
    if (hi == INT64_MAX) break;
    lo = hi + 1;
  }
  if (r->progress) fputc('\n', stderr);
  sqlite3_finalize(end_st);
  sqlite3_finalize(upd);
  return result;
}

/* Rows left to reseal, and rows with a value under the old key. */
static int count_left(rotation *r, rot_db *d, sqlite3_int64 *left, sqlite3_int64 *old_left) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(d->db, remaining_sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, r->new_hex, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->old_hex, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
  }
  if (rc == SQLITE_ROW) {
    *left = sqlite3_column_int64(st, 0);
    *old_left = sqlite3_column_int64(st, 1);
    rc = SQLITE_OK;
  } else {
    tool_error("%s: %s", d->path, sqlite3_errmsg(d->db));
  }
  sqlite3_finalize(st);
  return rc == SQLITE_OK ? 0 : -1;
}

/*
** A connection compares its keyring file with the one it loaded at most
** once a second (ext/sqlite/connection_keyring.c), so until a little over a
** second after the new primary was written, an application may still seal
** with the old key. The count that lets the old key retire comes after
** that; a value sealed in the gap is found by it and resealed.
*/
#define KEYRING_RELOAD_SECONDS 1
static void wait_for_reloads(const rotation *r) {
  while ((sqlite3_int64)time(NULL) <= r->started + KEYRING_RELOAD_SECONDS) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

/*
** Passes until nothing is left under another key. A second pass finds only
** rows an application wrote meanwhile with a keyring loaded before the
** rotation; if they keep coming, give up and say so.
*/
static int reseal_all(rotation *r, rot_db *d) {
  sqlite3_int64 left = d->todo, old_left = 0;
  for (int pass = 0; pass < RESEAL_MAX_PASSES; pass++) {
    if (reseal_pass(r, d, left) != 0) return -1;
    wait_for_reloads(r);
    if (count_left(r, d, &left, &old_left) != 0) return -1;
    if (left == 0 && old_left == 0) return 0;  /* the second: belt and braces */
  }
  tool_error("%s: %lld rows are still under other keys (%lld under the old key %s) "
             "after %d passes: an application keeps sealing with a keyring loaded "
             "before the rotation. Make it reload (reopen its connections, or SELECT "
             "oauthdb_keyring(path)) and run oauthdb rotate again; it will carry on.",
             d->path, (long long)left, (long long)old_left, r->old_hex, RESEAL_MAX_PASSES);
  return -1;
}

/*
** Steps 3 to 5 for one database: reseal until a count shows nothing left
** under the old key (or any other), then commit the audit row (unless a
** rerun already did).
*/
static int rotate_one(rotation *r, rot_db *d) {
  /* The connection opens and seals with the keyring as it is now on disk. */
  char *nkeys = NULL;
  if (tool_query_text(d->db, &nkeys, "SELECT oauthdb_keyring(?1)", r->keyring_path,
                      (char *)NULL) != SQLITE_OK)
    return -1;
  free(nkeys);
  if (relax_batch_durability(d) != 0) return -1;
  if (reseal_all(r, d) != 0) return -1;
  if (make_batches_durable(d) != 0) return -1;
  char resealed[32], batches[32], started[32], actor[300];
  snprintf(resealed, sizeof resealed, "%lld", (long long)d->resealed);
  snprintf(batches, sizeof batches, "%lld", (long long)d->batches);
  snprintf(started, sizeof started, "%lld", (long long)(r->started - 1));
  snprintf(actor, sizeof actor, "oauthdb rotate (%s)", tool_user_name());
  sqlite3_int64 ignored;
  if (tool_query_int(d->db, &ignored, audit_sql, actor, r->old_hex, r->new_hex, resealed,
                     batches, r->keyring_path, started, (char *)NULL) != SQLITE_OK)
    return -1;
  return 0;
}

/* The marker line for a rotation from OLD to NEW, started at T. */
static void marker_line(char *out, size_t n, const char *old_hex, const char *new_hex,
                        sqlite3_int64 t) {
  snprintf(out, n,
           MARKER_PREFIX "%s to %s since %lld; run oauthdb rotate to finish. "
           "Do not edit.\n", old_hex, new_hex, (long long)t);
}

/* IDLE -> RESEAL: new primary N, P active, the marker. */
static int start_rotation(rotation *r, keyfile *kf) {
  uint32_t old_id = keyfile_primary(kf), new_id = fresh_id(kf);
  snprintf(r->old_hex, sizeof r->old_hex, "%08x", (unsigned)old_id);
  snprintf(r->new_hex, sizeof r->new_hex, "%08x", (unsigned)new_id);
  r->started = (sqlite3_int64)time(NULL);
  char marker[256];
  marker_line(marker, sizeof marker, r->old_hex, r->new_hex, r->started);
  char *line = new_key_line(new_id, KEY_PRIMARY);
  uint32_t ids[1] = {old_id};
  key_status statuses[1] = {KEY_ACTIVE};
  size_t len = 0;
  unsigned char *text = line ? keyfile_render(kf, ids, statuses, 1, line, marker, &len) : NULL;
  int rc = -1;
  if (!text) tool_error("out of memory");
  else rc = keyfile_write(r->keyring_path, text, len, 0);
  sodium_free(text);
  sodium_free(line);
  if (rc == 0)
    fprintf(stderr, "oauthdb rotate: new primary key %s in %s; %s is active until "
                    "every value is resealed\n", r->new_hex, r->keyring_path, r->old_hex);
  return rc;
}

/* RESEAL -> IDLE: retire P, drop the marker. */
static int finish_rotation(rotation *r, keyfile *kf) {
  uint32_t ids[1] = {(uint32_t)strtoul(r->old_hex, NULL, 16)};
  key_status statuses[1] = {KEY_RETIRED};
  size_t len = 0;
  unsigned char *text = keyfile_render(kf, ids, statuses, 1, NULL, NULL, &len);
  if (!text) {
    tool_error("out of memory");
    return -1;
  }
  int rc = keyfile_write(r->keyring_path, text, len, 0);
  sodium_free(text);
  return rc;
}

/* The whole state machine (see the top of this file) over N databases. */
static int rotate_dbs(rotation *r, rot_db *dbs, int n) {
  int rc = EXIT_FAIL;
  keyfile *kf = keyfile_read(r->keyring_path);
  if (!kf) return EXIT_FAIL;

  uint32_t old_id, new_id;
  if (!keyfile_rotation(kf, &old_id, &new_id, &r->started)) {
    /* IDLE: check before touching anything, then write the new key first. */
    for (int i = 0; i < n; i++)
      if (check_key_ids(r, &dbs[i], kf, NULL) != EXIT_OK) goto done;
    if (start_rotation(r, kf) != 0) goto done;
    keyfile_free(kf);
    if (!(kf = keyfile_read(r->keyring_path))) return EXIT_FAIL;
  } else {
    snprintf(r->old_hex, sizeof r->old_hex, "%08x", (unsigned)old_id);
    snprintf(r->new_hex, sizeof r->new_hex, "%08x", (unsigned)new_id);
    const keyline *o = keyfile_find(kf, old_id), *nk = keyfile_find(kf, new_id);
    if (!nk || nk->status != KEY_PRIMARY || !o || o->status != KEY_ACTIVE) {
      tool_error("keyring %s says a rotation from %s to %s is in progress, but %s; "
                 "restore that state by hand (or remove the marker line if the rotation "
                 "is abandoned) and run again",
                 r->keyring_path, r->old_hex, r->new_hex,
                 !nk ? "the new key is missing"
                 : nk->status != KEY_PRIMARY ? "the new key is not primary"
                 : !o ? "the old key is missing" : "the old key is not active");
      rc = EXIT_REFUSED;
      goto done;
    }
    fprintf(stderr, "oauthdb rotate: resuming the rotation from %s to %s\n",
            r->old_hex, r->new_hex);
    for (int i = 0; i < n; i++)
      if (check_key_ids(r, &dbs[i], kf, r->new_hex) != EXIT_OK) goto done;
  }

  for (int i = 0; i < n; i++)
    if (rotate_one(r, &dbs[i]) != 0) goto done;
  /* Every database is done: only now may the old key stop opening. */
  if (finish_rotation(r, kf) != 0) goto done;
  for (int i = 0; i < n; i++) {
    /*
    ** In WAL mode the old ciphertext still sits in WAL frames until they are
    ** overwritten; a truncating checkpoint drops them. Best effort: a reader
    ** that keeps an old snapshot open can make it wait and give up.
    */
    if (sqlite3_wal_checkpoint_v2(dbs[i].db, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL,
                                  NULL) != SQLITE_OK)
      fprintf(stderr, "oauthdb rotate: note: could not truncate the WAL of %s (%s); old "
                      "ciphertext stays in it until SQLite overwrites it\n",
              dbs[i].path, sqlite3_errmsg(dbs[i].db));
    printf("rotated %s: key %s is primary, %s retired; resealed %lld rows in %lld "
           "batch%s\n", dbs[i].path, r->new_hex, r->old_hex, (long long)dbs[i].resealed,
           (long long)dbs[i].batches, dbs[i].batches == 1 ? "" : "es");
  }
  rc = EXIT_OK;
done:
  keyfile_free(kf);
  return rc;
}

int cmd_rotate(int argc, char **argv) {
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'},
      {"keyring", required_argument, NULL, 'k'},
      {"batch", required_argument, NULL, 'b'},
      {NULL, 0, NULL, 0},
  };
  rotation r;
  memset(&r, 0, sizeof r);
  r.batch = DEFAULT_BATCH;
  r.keyring_path = getenv("OAUTHDB_KEYRING");
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "hk:b:", opts, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
      case 'h':
        printf("%s\n%s", rotate_usage, rotate_help);
        return EXIT_OK;
      case 'k':
        r.keyring_path = optarg;
        break;
      case 'b':
        errno = 0;
        r.batch = strtoll(optarg, &end, 10);
        if (errno || end == optarg || *end || r.batch < 1 || r.batch > MAX_BATCH)
          return tool_usage_error(rotate_usage, "--batch wants a number from 1 to %d, got '%s'",
                                  MAX_BATCH, optarg);
        break;
      default:
        if (optopt == 'k' || optopt == 'b')
          return tool_usage_error(rotate_usage, "%s needs a value", argv[optind - 1]);
        return tool_usage_error(rotate_usage, "unknown option %s", argv[optind - 1]);
    }
  }
  int n = argc - optind;
  if (n < 1) return tool_usage_error(rotate_usage, "expected at least one database path");
  if (!r.keyring_path || !*r.keyring_path)
    return tool_usage_error(rotate_usage, "no keyring: pass --keyring or set OAUTHDB_KEYRING");
  r.progress = isatty(STDERR_FILENO);

  rot_db *dbs = calloc((size_t)n, sizeof *dbs);
  if (!dbs) {
    tool_error("out of memory");
    return EXIT_FAIL;
  }
  int lock = keyring_lock(r.keyring_path);
  int rc = lock < 0 ? EXIT_FAIL : EXIT_OK;
  for (int i = 0; rc == EXIT_OK && i < n; i++) {
    rot_db *d = &dbs[i];
    d->path = argv[optind + i];
    d->db = tool_open(d->path, SQLITE_OPEN_READWRITE);
    if (!d->db) {
      rc = tool_open_exit();
      break;
    }
    /*
    ** A batch rewrites a few pages per row; with SQLite's default 2 MiB cache
    ** a batch would spill mid-transaction, and every spill syncs the journal
    ** once more (bench/rotate_vs_reseal.c).
    */
    if (tool_exec(d->db, "PRAGMA cache_size = " ROTATE_CACHE_SIZE) != SQLITE_OK) {
      rc = EXIT_FAIL;
      break;
    }
    sqlite3_int64 has_tokens = 0;
    if (tool_is_oauthdb(d->db) != 1 ||
        tool_query_int(d->db, &has_tokens,
                       "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
                       "AND name = 'oauth_tokens'", (char *)NULL) != SQLITE_OK ||
        !has_tokens) {
      tool_error("%s is not a migrated oauthdb database (no oauth_tokens table)", d->path);
      rc = EXIT_REFUSED;
    }
  }
  if (rc == EXIT_OK) rc = rotate_dbs(&r, dbs, n);
  for (int i = 0; i < n; i++) tool_close(dbs[i].db);
  free(dbs);
  if (lock >= 0) close(lock);
  return rc;
}

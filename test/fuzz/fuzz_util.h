/*
** fuzz_util.h: what the fuzz targets (test/fuzz/fuzz_*.c) share.
**
** Every target is built twice: with clang's libFuzzer for `make fuzz`, and
** with the plain C compiler and replay_main.c for `make check`, which runs
** each committed corpus file through it once. So nothing here may depend on
** libFuzzer; LLVMFuzzerInitialize is called by both mains.
**
** Keys in this directory are the published test vectors of docs/FORMAT.md
** or other made-up bytes: never a real secret.
*/
#ifndef OAUTHDB_FUZZ_UTIL_H
#define OAUTHDB_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
** The test keyring (FORMAT.md's vector keys): 9c0e51d2 primary, 0a77b3e0
** and e4d1c2b3 active, 3f2a9b10 retired. So vectors 2, 3 and 4 open and
** vector 1 names a retired key.
*/
extern const char fuzz_test_keyring_text[];
#define FUZZ_PRIMARY_ID 0x9c0e51d2u
#define FUZZ_RETIRED_ID 0x3f2a9b10u

/*
** A keyring with a primary key of its own (made-up bytes), as production
** would have for the exporter's --secrets=reseal.
*/
extern const char fuzz_prod_keyring_text[];

/*
** A directory of our own (mode 0700, made once per process with mkdtemp
** under $TMPDIR, else /dev/shm or /tmp; removed at exit), so that fuzz
** inputs written as keyring files never land in the corpus or anywhere
** shared.
*/
const char *fuzz_private_dir(void);

/*
** Write n bytes to NAME in the private directory with mode 0600 (what
** keyring_load demands) and return its path (a static buffer, valid
** until the next call). Aborts when the file cannot be written: a target
** that cannot set up its input tests nothing.
*/
const char *fuzz_write_file(const char *name, const void *data, size_t n);

/* Report a broken property and abort, so libFuzzer saves the input. */
void fuzz_fail(const char *target, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/*
** A cursor over the input, for targets that take it apart into fields.
** Reads past the end give zeros and empty fields, never an error: every
** byte string is a valid input.
*/
typedef struct fuzz_in {
  const uint8_t *p;
  size_t n;
} fuzz_in;

uint8_t fuzz_byte(fuzz_in *in);
uint16_t fuzz_u16(fuzz_in *in);   /* big-endian */
uint64_t fuzz_u64(fuzz_in *in);   /* big-endian */
/* The next len bytes, or fewer if the input ends first. */
const uint8_t *fuzz_take(fuzz_in *in, size_t len, size_t *got);

/* Valid UTF-8 (RFC 3629) without NUL: the reference for token_open's TEXT. */
int fuzz_is_text(const uint8_t *s, size_t n);

#endif /* OAUTHDB_FUZZ_UTIL_H */

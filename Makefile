# oauthdb: `make`, `make check`, `make demo`, `make bench`, `make install`.
# BUILD names the build directory, so the sanitizer build (build/asan) and
# several engineers' builds never share object files.

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Werror
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(SANITIZE_FLAGS) -Iext/core -Iext/sqlite -I$(BUILD) -I/usr/include/postgresql
LDLIBS_EXT = -lsodium -lm

ifeq ($(SANITIZE),1)
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif

UNAME_S := $(shell uname -s)
ifeq ($(UNAME_S),Darwin)
SO = dylib
else
SO = so
endif

# The core (ext/core: pure C, no engine headers) is shared by the SQLite
# extension, the PostgreSQL extension and the tools.
CORE_SRC = $(wildcard ext/core/*.c)
CORE_OBJ = $(patsubst ext/core/%.c,$(BUILD)/core/%.o,$(CORE_SRC))

# The SQLite extension: every ext/sqlite/*.c, the core, and the migrations
# embedded from sql/sqlite.
EXT_SRC  = $(wildcard ext/sqlite/*.c)
EXT_OBJ  = $(patsubst ext/sqlite/%.c,$(BUILD)/ext/%.o,$(EXT_SRC)) $(CORE_OBJ) $(BUILD)/ext/sqlite_migrations.o
EXT_HDR  = $(wildcard ext/core/*.h ext/sqlite/*.h)

EXPORT_SRC = $(wildcard tools/export*.c)
TOOL_SRC   = $(wildcard tools/oauthdb_tool*.c)

PROGRAMS = $(BUILD)/oauthdb.$(SO)

# The PostgreSQL extension (ext/postgres, PGXS), built when the server
# headers are installed -- asked of dpkg, as tools/deps.sh does.
# `make check` installs them first (deps.sh test), so it always builds it.
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
HAVE_PG_SERVER := $(shell dpkg-query -W -f='$${Status}' postgresql-server-dev-15 2>/dev/null | grep -q 'ok installed' && echo 1)
PG_EXT = $(BUILD)/postgres/oauthdb.so
PG_EXT_MAKE = $(MAKE) --no-print-directory -C $(BUILD)/postgres \
              -f $(CURDIR)/ext/postgres/Makefile VPATH=$(CURDIR)/ext/postgres \
              PG_CONFIG=$(PG_CONFIG)
ifeq ($(HAVE_PG_SERVER),1)
PROGRAMS += $(PG_EXT)
endif
ifneq ($(EXPORT_SRC),)
PROGRAMS += $(BUILD)/oauthdb-export
endif
ifneq ($(TOOL_SRC),)
PROGRAMS += $(BUILD)/oauthdb
endif

.PHONY: all loadable deps check check-normal check-asan check-valgrind demo bench install clean fuzz
all: $(PROGRAMS)
loadable: $(BUILD)/oauthdb.$(SO)

deps:
	@tools/deps.sh build

$(BUILD)/ext/%.o: ext/sqlite/%.c $(EXT_HDR) | $(BUILD)/ext
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(BUILD)/ext/sqlite_migrations.c: tools/embed_sql.sh $(wildcard sql/sqlite/*.sql) | $(BUILD)/ext
	tools/embed_sql.sh sqlite sql/sqlite > $@.tmp && mv $@.tmp $@
$(BUILD)/ext/postgres_migrations.c: tools/embed_sql.sh $(wildcard sql/postgres/*.sql) | $(BUILD)/ext
	tools/embed_sql.sh postgres sql/postgres > $@.tmp && mv $@.tmp $@
# The exporter's own ledger (sql/postgres/ledger): numbered apart from the
# schema's migrations, applied to every target whatever the source's version.
$(BUILD)/ext/ledger_migrations.c: tools/embed_sql.sh $(wildcard sql/postgres/ledger/*.sql) | $(BUILD)/ext
	tools/embed_sql.sh ledger sql/postgres/ledger > $@.tmp && mv $@.tmp $@
$(BUILD)/ext/%_migrations.o: $(BUILD)/ext/%_migrations.c ext/core/migrations.h
	$(CC) $(ALL_CFLAGS) -fPIC -c $< -o $@

$(BUILD)/oauthdb.$(SO): $(EXT_OBJ)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(EXT_OBJ) $(LDLIBS_EXT)

$(BUILD)/core/%.o: ext/core/%.c $(wildcard ext/core/*.h) | $(BUILD)/core
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

EXPORT_MIGRATIONS = $(BUILD)/ext/postgres_migrations.o $(BUILD)/ext/ledger_migrations.o
$(BUILD)/oauthdb-export: $(EXPORT_SRC) $(CORE_OBJ) $(EXPORT_MIGRATIONS) $(EXT_HDR) $(wildcard tools/*.h)
	$(CC) $(ALL_CFLAGS) -Itools -o $@ $(EXPORT_SRC) $(CORE_OBJ) $(EXPORT_MIGRATIONS) -lpq -lsqlite3 -lsodium -lm

$(BUILD)/oauthdb: $(TOOL_SRC) $(CORE_OBJ) $(EXT_HDR) $(wildcard tools/*.h)
	$(CC) $(ALL_CFLAGS) -Itools -DOAUTHDB_PREFIX='"$(PREFIX)"' -o $@ $(TOOL_SRC) $(CORE_OBJ) -lsqlite3 -lsodium -lm

$(BUILD)/ext $(BUILD)/core $(BUILD)/postgres:
	mkdir -p $@

# PGXS's own flags (pg_config's CFLAGS), not ours, in every build: the
# server that loads it is not instrumented. The extension's C is the core
# (covered by the sanitizer and valgrind passes through the SQLite
# extension, the tools and the fuzz targets) plus a thin adapter. Running
# the adapter itself under AddressSanitizer needs the runtime preloaded into
# the server, which hung at start on Debian's postgres 15 here; not done yet.
$(PG_EXT): $(wildcard ext/postgres/*) $(wildcard ext/core/*) | $(BUILD)/postgres
	$(PG_EXT_MAKE)

# Test helpers compiled from test/*.c (C clients of the public surface).
TEST_C   = $(wildcard test/*.c)
TEST_BIN = $(patsubst test/%.c,$(BUILD)/test/%,$(TEST_C))
$(BUILD)/test/%: test/%.c $(CORE_OBJ) | $(BUILD)/core
	@mkdir -p $(BUILD)/test
	$(CC) $(ALL_CFLAGS) -o $@ $< $(CORE_OBJ) -lsqlite3 -lsodium -lm

# `make check`: the whole suite on the normal build, then again on an
# AddressSanitizer + UndefinedBehaviorSanitizer build in build/asan, then a
# subset under valgrind (check-valgrind, below).
check:
	@tools/deps.sh test
	$(MAKE) --no-print-directory check-normal
	$(MAKE) --no-print-directory check-asan
	$(MAKE) --no-print-directory check-valgrind

check-normal: all $(TEST_BIN)
	test/run.sh $(BUILD)

check-asan:
	$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=1 all test-bins
	OAUTHDB_SANITIZE=1 test/run.sh build/asan

# `make check-recovery`: only the backup and recovery tests of PostgreSQL
# (docs/POSTGRES.md, "Backup and recovery"): the pg_dump / pg_restore round
# trip and the point-in-time recovery by WAL replay, on a throwaway server.
# Both also run in `make check`; this is the quick way to rerun them.
.PHONY: check-recovery
check-recovery: all
	@tools/deps.sh test
	test/run.sh $(BUILD) test/postgres_backup.test test/postgres_pitr.test

.PHONY: test-bins
test-bins: $(TEST_BIN)

# `make check-valgrind`: the extension under valgrind memcheck, on the normal
# build. tclsh runs under valgrind (test/run.sh's OAUTHDB_WRAPPER); the
# programs a test starts (the tool, the exporter, psql, other clients, the C
# helpers) do not (--trace-children=no). A file passes only with no memcheck
# error and no leak definitely or indirectly lost (--error-exitcode): run.sh
# counts a non-zero exit as a failure and prints valgrind's report. No
# suppression file: nothing from the host programs needed one.
#
# A subset, so that `make check` stays under 15 minutes on 2 cores (valgrind
# makes tclsh and the extension 20 to 50 times slower). It leaves out:
#   password.test   Argon2id: each hash fills 64 MiB, ~10 s a call here
#   limits.test     seals, opens and copies of 16 MiB values
#   rotate, backup, tool, export, export_crash, concurrency, fuzz_replay
#                   the work is in other programs (the tool, the exporter,
#                   worker processes, fuzz targets), which valgrind does not
#                   follow; the Tcl side only drives them
#   clients.test    the other clients (Python, sqlite3, Node) load the
#                   extension in their own processes
#   schema.test, postgres_schema.test, audit_events.test
#                   the schema's constraints and triggers, and PostgreSQL:
#                   SQLite's code and the server's, not ours
# PostgreSQL is not started (OAUTHDB_NO_POSTGRES): nothing in the subset needs
# it, and the parts that could use it skip.
VALGRIND_TESTS = seal vault session keyring keyring_reload keys close migrate \
                 expiring retention load uuid7 hostile zeroing
VALGRIND = valgrind --tool=memcheck --leak-check=full \
           --errors-for-leak-kinds=definite,indirect \
           --show-leak-kinds=definite,indirect --error-exitcode=99 \
           --trace-children=no --child-silent-after-fork=yes --num-callers=30
.PHONY: check-valgrind
check-valgrind: all $(TEST_BIN)
	OAUTHDB_NO_POSTGRES=1 OAUTHDB_WRAPPER="$(VALGRIND)" test/run.sh $(BUILD) \
	  $(filter $(wildcard test/*.test),$(patsubst %,test/%.test,$(VALGRIND_TESTS)))

demo: 
	@tools/deps.sh build
	$(MAKE) --no-print-directory all
	@tools/demo.sh $(BUILD)

bench:
	@tools/deps.sh bench
	$(MAKE) --no-print-directory all
	bench/run.sh $(BUILD)

# `make fuzz`: every libFuzzer target for FUZZ_SECONDS each, one after the
# other (see the Fuzzing section at the end and test/fuzz/README.md).
fuzz:
	@tools/deps.sh fuzz
	$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) SANITIZE=fuzz fuzz-bins
	test/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib/oauthdb $(DESTDIR)$(PREFIX)/bin
	install -m 0644 $(BUILD)/oauthdb.$(SO) $(DESTDIR)$(PREFIX)/lib/oauthdb/
	if [ -e $(BUILD)/oauthdb-export ]; then install -m 0755 $(BUILD)/oauthdb-export $(DESTDIR)$(PREFIX)/bin/; fi
	if [ -e $(BUILD)/oauthdb ]; then install -m 0755 $(BUILD)/oauthdb $(DESTDIR)$(PREFIX)/bin/; fi
	if [ -e $(PG_EXT) ]; then $(PG_EXT_MAKE) install DESTDIR=$(DESTDIR); fi

clean:
	rm -rf build

# ---- Fuzzing (test/fuzz/README.md) --------------------------------------
# Each target in test/fuzz is built twice from this tree's objects: as
# $(BUILD)/fuzz-replay/<target> with the plain compiler and
# test/fuzz/replay_main.c, which test/fuzz_replay.test runs over the
# committed corpora (so `make check` replays them in the normal and the
# sanitizer build), and as $(FUZZ_BUILD)/fuzz-bin/<target> with clang's
# libFuzzer under ASan and UBSan, for `make fuzz`.
FUZZ_TARGETS = fuzz_seal_open fuzz_keyring fuzz_sql_tokens fuzz_migrations fuzz_export_row
FUZZ_SECONDS ?= 60
FUZZ_BUILD   ?= build/fuzz
FUZZ_CC      ?= clang
FUZZ_SRC      = test/fuzz/fuzz_util.c
FUZZ_HDR      = test/fuzz/fuzz_util.h
FUZZ_REPLAY   = $(patsubst %,$(BUILD)/fuzz-replay/%,$(FUZZ_TARGETS))
FUZZ_BIN      = $(patsubst %,$(BUILD)/fuzz-bin/%,$(FUZZ_TARGETS))
FUZZ_LIBS     = -lpq -lsqlite3 -lsodium -lm

ifeq ($(SANITIZE),fuzz)
SANITIZE_FLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif

# The exporter's files as objects, so a target can call their functions;
# export_main.c holds main() alone, which no other file calls.
EXPORT_FUZZ_OBJ = $(patsubst tools/%.c,$(BUILD)/fuzz-obj/%.o,$(filter-out tools/export_main.c,$(EXPORT_SRC)))
.SECONDARY: $(EXPORT_FUZZ_OBJ)
$(BUILD)/fuzz-obj/%.o: tools/%.c $(EXT_HDR) $(wildcard tools/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itools -c $< -o $@

# What each target links besides its own file and fuzz_util.c.
FUZZ_LINK_fuzz_seal_open  = $(CORE_OBJ)
FUZZ_LINK_fuzz_keyring    = $(CORE_OBJ)
FUZZ_LINK_fuzz_sql_tokens = $(EXT_OBJ)
FUZZ_LINK_fuzz_migrations = $(EXT_OBJ)
FUZZ_LINK_fuzz_export_row = $(EXPORT_FUZZ_OBJ) $(CORE_OBJ) $(EXPORT_MIGRATIONS)

.PHONY: fuzz-bins fuzz-replay
fuzz-bins: $(FUZZ_BIN)
fuzz-replay: $(FUZZ_REPLAY)
	@for t in $(FUZZ_TARGETS); do \
	  out=$$($(BUILD)/fuzz-replay/$$t test/fuzz/corpus/$$t 2>&1) || \
	    { echo "$$out" | tail -5; echo "$$t: FAILED"; exit 1; }; \
	  echo "$$t: $$(echo "$$out" | tail -1)"; \
	done

# The replay binaries are test programs like $(TEST_BIN).
check-normal: $(FUZZ_REPLAY)
test-bins: $(FUZZ_REPLAY)

# Secondary expansion, for each target's own link list ($$*); kept last in
# this file so that it changes no other rule.
.SECONDEXPANSION:
$(BUILD)/fuzz-replay/%: test/fuzz/%.c test/fuzz/replay_main.c $(FUZZ_SRC) $(FUZZ_HDR) $(EXT_HDR) $$(FUZZ_LINK_$$*)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itools -Itest/fuzz -o $@ $< test/fuzz/replay_main.c $(FUZZ_SRC) $(FUZZ_LINK_$*) $(FUZZ_LIBS)
$(BUILD)/fuzz-bin/%: test/fuzz/%.c $(FUZZ_SRC) $(FUZZ_HDR) $(EXT_HDR) $$(FUZZ_LINK_$$*)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -Itools -Itest/fuzz -o $@ $< $(FUZZ_SRC) $(FUZZ_LINK_$*) $(FUZZ_LIBS)

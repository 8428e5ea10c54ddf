# hsmgate: one Makefile, out-of-tree objects under build/<flavour>/.
#   make            build build/release/hsmgate
#   make demo       install what is missing, build, provision a SoftHSM token in demo/, run the demo
#   make test       install what is missing, build, run every test (unit, fuzz corpora, integration)
#   make asan       the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make WOLFSSL=system ...   link Debian's libwolfssl-dev (no assembly: slower, see docs/building.md)
#   make install    PREFIX=/usr/local DESTDIR= ; make uninstall (docs/operations.md, "Installing")

FLAVOUR ?= release
WOLFSSL ?= local
B       := build/$(FLAVOUR)$(if $(filter system,$(WOLFSSL)),-system-wolfssl)
WOLFSSL_PREFIX ?= $(CURDIR)/build/wolfssl
PYTEST  ?= /usr/bin/python3 -m pytest
export WOLFSSL

CC      ?= gcc
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
           -Wno-missing-field-initializers
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -g $(WARN) -fstack-protector-strong -fPIE -MMD -MP \
           -I. $(shell pkg-config --cflags p11-kit-1 2>/dev/null)
LDFLAGS_COMMON := -pie -Wl,-z,relro,-z,now -pthread
LIBS    := $(shell pkg-config --libs p11-kit-1 2>/dev/null) -lyaml -ljansson -lsqlite3 -lhttp_parser -lmicrohttpd -lm -ldl \
           -lsystemd

ifeq ($(FLAVOUR),asan)
  CFLAGS_FL  := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  LDFLAGS_FL := -fsanitize=address,undefined
else ifeq ($(FLAVOUR),fuzz)
  # libFuzzer (Debian's clang): the library instrumented for coverage, the targets linked with the fuzzer.
  CC         := clang
  CFLAGS_FL  := -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
  LDFLAGS_FL := -fsanitize=address,undefined
else
  CFLAGS_FL  := -O2 -D_FORTIFY_SOURCE=2
  LDFLAGS_FL :=
endif

ifeq ($(WOLFSSL),system)
  WOLFSSL_DEP    :=
  WOLFSSL_CFLAGS := -DHSMGATE_WOLFSSL_SYSTEM $(shell pkg-config --cflags wolfssl 2>/dev/null)
  WOLFSSL_LIBS   := $(shell pkg-config --libs wolfssl 2>/dev/null)
else
  WOLFSSL_DEP    := $(WOLFSSL_PREFIX)/.hsmgate-stamp
  WOLFSSL_CFLAGS := -isystem $(WOLFSSL_PREFIX)/include
  # Static: never pick up the system's libwolfssl.so.35 by accident.
  WOLFSSL_LIBS   := $(WOLFSSL_PREFIX)/lib/libwolfssl.a
endif

CFLAGS  += $(CFLAGS_COMMON) $(CFLAGS_FL) $(WOLFSSL_CFLAGS)
LDFLAGS += $(LDFLAGS_COMMON) $(LDFLAGS_FL)
ALL_LIBS := $(WOLFSSL_LIBS) $(LIBS)

# Every module but main.c goes into one archive that the binary and the unit tests link.
LIB_SRCS := $(filter-out gateway/main.c,$(wildcard gateway/*.c pkcs11/*.c policies/*.c admin-api/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
SHIM      := $(B)/tests/libp11shim.so
FSFAULT   := $(B)/tests/libfsfault.so
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/tests/%)
BENCH_BINS := $(B)/tests/loadgen $(B)/tests/hsm_bench $(B)/tests/echod $(B)/tests/httpd $(B)/tests/pol_fill \
              $(B)/tests/test_pol_snapshot
# hsmgatectl, the admin API's client: its own folder, so the admin-api/*.c glob above leaves it out.
CTL_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(wildcard admin-api/ctl/*.c))

.PHONY: soak
.PHONY: all deps wolfssl test unit fuzz fuzz-replay integration asan demo demo-clean clean distclean bench-tools bench valgrind
all: $(B)/hsmgate $(SHIM) $(FSFAULT) $(B)/hsmgatectl

deps:
	@.ci/deps.sh

wolfssl: $(WOLFSSL_DEP)
$(WOLFSSL_PREFIX)/.hsmgate-stamp: .ci/wolfssl.sh
	.ci/wolfssl.sh $(WOLFSSL_PREFIX)

$(B)/obj/%.o: %.c | $(WOLFSSL_DEP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libhsmgate.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/hsmgate: $(B)/obj/gateway/main.o $(B)/libhsmgate.a
	$(CC) $(LDFLAGS) -o $@ $^ $(ALL_LIBS)

# libcurl and jansson only: no wolfSSL, no libhsmgate.a.
$(B)/hsmgatectl: $(CTL_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ -lcurl -ljansson

$(B)/tests/test_%: $(B)/obj/tests/unit/test_%.o $(B)/libhsmgate.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(ALL_LIBS) $(shell pkg-config --libs cmocka)
# The admin API's test drives the server over HTTP with libcurl.
$(B)/tests/test_adm: ALL_LIBS += -lcurl

# A PKCS#11 module for fault injection: forwards to SoftHSM, and loses the token while a trigger file exists.
$(SHIM): tests/fault/p11shim.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O1 -g -fPIC -shared $(shell pkg-config --cflags p11-kit-1) -o $@ $< -ldl -pthread

# An LD_PRELOAD library for fault injection: a file system full or read-only under a path prefix while a trigger file exists.
$(FSFAULT): tests/fault/fsfault.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O1 -g -fPIC -shared -o $@ $< -ldl -pthread

# Fuzz targets built with gcc as programs that read inputs from files: `make test` replays each corpus.
# With FLAVOUR=fuzz (make fuzz) the same sources link libFuzzer's main instead.
ifeq ($(FLAVOUR),fuzz)
$(B)/tests/fuzz_%: tests/fuzz/fuzz_%.c $(B)/libhsmgate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(B)/libhsmgate.a $(ALL_LIBS)
else
$(B)/tests/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/standalone.c $(B)/libhsmgate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DFUZZ_STANDALONE $(LDFLAGS) -o $@ $< tests/fuzz/standalone.c $(B)/libhsmgate.a $(ALL_LIBS)
endif

$(B)/tests/loadgen: tests/bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -o $@ $< -lssl -lcrypto -lm -pthread

$(B)/tests/echod: tests/bench/echod.c tests/bench/backend.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -o $@ $<

$(B)/tests/httpd: tests/bench/httpd.c tests/bench/backend.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -o $@ $<

$(B)/tests/hsm_bench: $(B)/obj/tests/bench/hsm_bench.o $(B)/libhsmgate.a
	$(CC) $(LDFLAGS) -o $@ $^ $(ALL_LIBS)

$(B)/tests/pol_fill: $(B)/obj/tests/bench/pol_fill.o $(B)/libhsmgate.a
	$(CC) $(LDFLAGS) -o $@ $^ $(ALL_LIBS)

unit: $(UNIT_BINS) $(SHIM)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; HSMGATE_SHIM=$(CURDIR)/$(SHIM) $$t; done

# libFuzzer on every target for FUZZ_TIME seconds each (not part of `make test`). The working corpus
# grows in build/fuzz/corpus/NAME (seeded from tests/fuzz/corpus/NAME); a finding is written to
# build/fuzz/findings/ and the run stops: fix it, then add the input to tests/fuzz/corpus/NAME.
FUZZ_TIME ?= 60
fuzz: deps
	.ci/deps.sh fuzz
	$(MAKE) wolfssl
	$(MAKE) FLAVOUR=fuzz $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/tests/%)
	@set -e; mkdir -p build/fuzz/findings; for src in $(FUZZ_SRCS); do n=$$(basename $$src .c); n=$${n#fuzz_}; \
	  mkdir -p build/fuzz/corpus/$$n; echo "== fuzz_$$n for $(FUZZ_TIME) s"; \
	  build/fuzz/tests/fuzz_$$n -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=4096 \
	    -artifact_prefix=build/fuzz/findings/$$n- build/fuzz/corpus/$$n tests/fuzz/corpus/$$n; done

fuzz-replay: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_BINS); do n=$$(basename $$t); n=$${n#fuzz_}; \
	  echo "== $$t tests/fuzz/corpus/$$n"; $$t tests/fuzz/corpus/$$n/*; done

integration: $(B)/hsmgate $(SHIM) $(FSFAULT) $(B)/hsmgatectl
	HSMGATE_BIN=$(CURDIR)/$(B)/hsmgate HSMGATE_SHIM=$(CURDIR)/$(SHIM) HSMGATE_FSFAULT=$(CURDIR)/$(FSFAULT) HSMGATE_FLAVOUR=$(FLAVOUR) \
	  $(PYTEST) -q -ra tests/integration

test: deps
	$(MAKE) wolfssl
	$(MAKE) all $(UNIT_BINS) $(FUZZ_BINS)
	$(MAKE) unit
	$(MAKE) fuzz-replay
	$(MAKE) integration

asan:
	$(MAKE) FLAVOUR=asan test

# The unit tests and the integration suite with the gateway under valgrind (slow; not part of `make test`).
VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
valgrind: deps
	$(MAKE) wolfssl
	$(MAKE) all $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== valgrind $$t"; HSMGATE_SHIM=$(CURDIR)/$(SHIM) $(VALGRIND) $$t; done
	HSMGATE_WRAPPER="$(VALGRIND)" $(MAKE) integration

bench-tools: $(BENCH_BINS)

# Not part of `make test`: numbers never fail the suite. QUICK=1 for a short run.
bench: deps
	.ci/deps.sh bench
	$(MAKE) wolfssl
	$(MAKE) all bench-tools
	/usr/bin/python3 tests/bench/run.py --build $(B) $(if $(QUICK),--quick)

# A steady mixed load with revocations arriving for SOAK_MINUTES; reports RSS growth and errors
# (tests/bench/soak.py; build/soak/report.md). Not part of `make test`.
SOAK_MINUTES ?= 60
soak: deps
	$(MAKE) wolfssl
	$(MAKE) all bench-tools
	/usr/bin/python3 tests/bench/soak.py --minutes $(SOAK_MINUTES) --build $(B)

demo: deps
	$(MAKE) wolfssl
	$(MAKE) all
	tests/demo/demo.sh $(CURDIR)/$(B)/hsmgate

demo-clean:
	-tests/demo/demo.sh --stop
	rm -rf demo

# make install [PREFIX=/usr/local] [DESTDIR=...]: the binaries of build/$(FLAVOUR) (release unless
# FLAVOUR says otherwise; built first if missing), the man pages, the examples, the systemd unit and
# its sysusers.d entry. The configuration goes to /etc with PREFIX=/usr, else to $(PREFIX)/etc; an
# operator's hsmgate.yaml is never touched. docs/operations.md, "Installing".
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/hsmgate
SYSCONFDIR  ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALLED := $(SBINDIR)/hsmgate $(BINDIR)/hsmgatectl $(MANDIR)/man8/hsmgate.8 $(MANDIR)/man1/hsmgatectl.1 \
             $(SYSCONFDIR)/hsmgate/hsmgate.yaml.example $(DOCDIR)/examples/hsmgate.yaml $(DOCDIR)/examples/policies.yaml \
             $(DOCDIR)/operations.md $(DOCDIR)/configuration.md $(DOCDIR)/policies.md $(DOCDIR)/pki.md \
             $(UNITDIR)/hsmgate.service $(SYSUSERSDIR)/hsmgate.conf

.PHONY: install uninstall
install: $(B)/hsmgate $(B)/hsmgatectl
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(SYSCONFDIR)/hsmgate $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 0755 $(B)/hsmgate $(DESTDIR)$(SBINDIR)/hsmgate
	install -m 0755 $(B)/hsmgatectl $(DESTDIR)$(BINDIR)/hsmgatectl
	install -m 0644 dist/hsmgate.8 $(DESTDIR)$(MANDIR)/man8/hsmgate.8
	install -m 0644 dist/hsmgatectl.1 $(DESTDIR)$(MANDIR)/man1/hsmgatectl.1
	install -m 0644 dist/examples/hsmgate.yaml $(DESTDIR)$(SYSCONFDIR)/hsmgate/hsmgate.yaml.example
	install -m 0644 dist/examples/hsmgate.yaml dist/examples/policies.yaml $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 docs/operations.md docs/configuration.md docs/policies.md docs/pki.md $(DESTDIR)$(DOCDIR)/
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
	  dist/hsmgate.service.in > $(DESTDIR)$(UNITDIR)/hsmgate.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/hsmgate.service
	install -m 0644 dist/hsmgate.sysusers $(DESTDIR)$(SYSUSERSDIR)/hsmgate.conf

# Removes what install wrote, then the directories of ours it leaves empty (never /etc/hsmgate's other files).
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/hsmgate 2>/dev/null

clean:
	rm -rf build/release build/asan build/fuzz build/*-system-wolfssl

distclean:
	rm -rf build demo

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

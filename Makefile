# hsmgate: one Makefile, out-of-tree objects under build/<flavour>/.
#   make            build build/release/hsmgate
#   make demo       install what is missing, build, provision a SoftHSM token in demo/, run the demo
#   make test       install what is missing, build, run every test (unit, fuzz corpora, integration)
#   make asan       the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make WOLFSSL=system ...   link Debian's libwolfssl-dev (no assembly: slower, see docs/building.md)

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
LIBS    := $(shell pkg-config --libs p11-kit-1 2>/dev/null) -lyaml -ljansson -lsqlite3 -lhttp_parser -lmicrohttpd -lm -ldl

ifeq ($(FLAVOUR),asan)
  CFLAGS_FL  := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
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
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/tests/%)
BENCH_BINS := $(B)/tests/loadgen $(B)/tests/hsm_bench $(B)/tests/echod $(B)/tests/pol_fill
# hsmgatectl, the admin API's client: its own folder, so the admin-api/*.c glob above leaves it out.
CTL_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(wildcard admin-api/ctl/*.c))

.PHONY: all deps wolfssl test unit fuzz-replay integration asan demo demo-clean clean distclean bench-tools bench valgrind
all: $(B)/hsmgate $(SHIM) $(B)/hsmgatectl

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

# Fuzz targets built with gcc as programs that read inputs from files: `make test` replays each corpus.
$(B)/tests/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/standalone.c $(B)/libhsmgate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DFUZZ_STANDALONE $(LDFLAGS) -o $@ $< tests/fuzz/standalone.c $(B)/libhsmgate.a $(ALL_LIBS)

$(B)/tests/loadgen: tests/bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -o $@ $< -lssl -lcrypto -lm -pthread

$(B)/tests/echod: tests/bench/echod.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -o $@ $<

$(B)/tests/hsm_bench: $(B)/obj/tests/bench/hsm_bench.o $(B)/libhsmgate.a
	$(CC) $(LDFLAGS) -o $@ $^ $(ALL_LIBS)

$(B)/tests/pol_fill: $(B)/obj/tests/bench/pol_fill.o $(B)/libhsmgate.a
	$(CC) $(LDFLAGS) -o $@ $^ $(ALL_LIBS)

unit: $(UNIT_BINS) $(SHIM)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; HSMGATE_SHIM=$(CURDIR)/$(SHIM) $$t; done

fuzz-replay: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_BINS); do n=$$(basename $$t); n=$${n#fuzz_}; \
	  echo "== $$t tests/fuzz/corpus/$$n"; $$t tests/fuzz/corpus/$$n/*; done

integration: $(B)/hsmgate $(SHIM) $(B)/hsmgatectl
	HSMGATE_BIN=$(CURDIR)/$(B)/hsmgate HSMGATE_SHIM=$(CURDIR)/$(SHIM) HSMGATE_FLAVOUR=$(FLAVOUR) \
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
	$(MAKE) wolfssl
	$(MAKE) all bench-tools
	/usr/bin/python3 tests/bench/run.py $(if $(QUICK),--quick)

demo: deps
	$(MAKE) wolfssl
	$(MAKE) all
	tests/demo/demo.sh $(CURDIR)/$(B)/hsmgate

demo-clean:
	-tests/demo/demo.sh --stop
	rm -rf demo

clean:
	rm -rf build/release build/asan build/*-system-wolfssl

distclean:
	rm -rf build demo

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

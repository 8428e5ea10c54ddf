/* test_config.c - unit tests for gateway/config.c: the YAML configuration parser.
 *
 * Positive cases check every field and default; negative cases check one error class each, with
 * the exact "file:line: " prefix and the part of the message an operator acts on. The last tests
 * feed prefixes, mutations and noise, and only ask for "no crash, and a message with a location".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/config.h"

#define NAME "/etc/hsmgate/hsmgate.yaml"

/* A complete, valid listener on lines 1-6; negative tests append from line 7. */
#define L_HEAD                                                                                     \
    "listeners:\n"                                                                                 \
    "  - name: payments\n"                                                                         \
    "    bind: 0.0.0.0:9444\n"                                                                     \
    "    certificate: /etc/c.pem\n"                                                                \
    "    key: \"pkcs11:token=t;object=k\"\n"                                                       \
    "    backends: [127.0.0.1:7000]\n"

static const char full_example[] =
    "hsm: { module: /usr/lib/softhsm/libsofthsm2.so, pin: \"file:/etc/hsmgate/hsm.pin\" }\n" /* 1 */
    "workers: 2\n"                                                                           /* 2 */
    "max_connections: 10000\n"                                                               /* 3 */
    "drain_timeout: 30s\n"                                                                   /* 4 */
    "log: { level: info, access_log: \"-\" }\n"                                              /* 5 */
    "pid_file: /run/hsmgate.pid\n"                                                           /* 6 */
    "listeners:\n"                                                                           /* 7 */
    "  - name: payments         # the card network\n"                                        /* 8 */
    "    type: tcp\n"                                                                        /* 9 */
    "    bind: 0.0.0.0:9444\n"                                                               /* 10 */
    "    auth: two-way\n"                                                                    /* 11 */
    "    certificate: /etc/hsmgate/server-chain.pem\n"                                       /* 12 */
    "    key: \"pkcs11:token=hsmgate;object=server\"\n"                                      /* 13 */
    "    client_ca: /etc/hsmgate/root-ca.pem\n"                                              /* 14 */
    "    backends: [127.0.0.1:7000]\n"                                                       /* 15 */
    "    min_tls: \"1.2\"\n"                                                                 /* 16 */
    "    ciphers: \"ECDHE-ECDSA-AES256-GCM-SHA384\"\n"                                       /* 17 */
    "    verify_depth: 4\n"                                                                  /* 18 */
    "    handshake_timeout: 10s\n"                                                           /* 19 */
    "    idle_timeout: 5m\n"                                                                 /* 20 */
    "    connect_timeout: 5s\n"                                                              /* 21 */
    "    max_connections: 0\n"                                                               /* 22 */
    "  - name: admin\n"                                                                      /* 23 */
    "    type: https\n"                                                                      /* 24 */
    "    bind: \"[::1]:9445\"\n"                                                             /* 25 */
    "    auth: optional\n"                                                                   /* 26 */
    "    certificate: admin.pem\n"                                                           /* 27 */
    "    key: keys/admin.key\n"                                                              /* 28 */
    "    client_ca: ca.pem\n"                                                                /* 29 */
    "    backends:\n"                                                                        /* 30 */
    "      - 127.0.0.1:8080\n"                                                               /* 31 */
    "      - \"[::1]:8081\"\n"                                                               /* 32 */
    "    min_tls: 1.3\n"                                                                     /* 33 */
    "    max_tls: \"1.3\"\n"                                                                 /* 34 */
    "    verify_depth: 16\n"                                                                 /* 35 */
    "    handshake_timeout: 250ms\n"                                                         /* 36 */
    "    idle_timeout: 1h\n"                                                                 /* 37 */
    "    connect_timeout: 2\n"                                                               /* 38 */
    "    max_connections: 500\n";                                                            /* 39 */

static struct gw_config *parse_ok_named(const char *name, const char *yaml)
{
    struct gw_config *cfg = NULL;
    char err[512] = "";

    if (gw_config_parse(name, yaml, strlen(yaml), &cfg, err, sizeof(err)) != 0)
        fail_msg("unexpected error: %s\n--- input ---\n%s", err, yaml);
    assert_non_null(cfg);
    return cfg;
}

static struct gw_config *parse_ok(const char *yaml)
{
    return parse_ok_named(NAME, yaml);
}

/* Fails unless yaml is refused with "NAME:line: " (line > 0) or "NAME: " (line 0) and needle. */
static void expect_err_len(const char *yaml, size_t len, int line, const char *needle)
{
    struct gw_config *cfg = (struct gw_config *)(uintptr_t)1;
    char err[512] = "";
    char prefix[128];

    if (gw_config_parse(NAME, yaml, len, &cfg, err, sizeof(err)) == 0) {
        gw_config_free(cfg);
        fail_msg("accepted, expected line %d \"%s\"\n--- input ---\n%s", line, needle, yaml);
    }
    assert_null(cfg);
    if (line > 0)
        snprintf(prefix, sizeof(prefix), "%s:%d: ", NAME, line);
    else
        snprintf(prefix, sizeof(prefix), "%s: ", NAME);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, needle) == NULL)
        fail_msg("got    \"%s\"\nwanted \"%s...%s\"", err, prefix, needle);
}

static void expect_err(const char *yaml, int line, const char *needle)
{
    expect_err_len(yaml, strlen(yaml), line, needle);
}

static unsigned port_of(const struct gw_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* ---- positive ---- */

static void test_full_example(void **state)
{
    struct gw_config *cfg = parse_ok(full_example);
    const struct gw_listener_cfg *l;
    (void)state;

    assert_string_equal(cfg->path, NAME);
    assert_string_equal(cfg->hsm_module, "/usr/lib/softhsm/libsofthsm2.so");
    assert_int_equal(cfg->hsm_module_line, 1);
    assert_string_equal(cfg->hsm_pin, "file:/etc/hsmgate/hsm.pin");
    assert_int_equal(cfg->hsm_pin_line, 1);
    assert_int_equal(cfg->workers, 2);
    assert_int_equal(cfg->max_connections, 10000);
    assert_int_equal(cfg->drain_timeout_ms, 30000);
    assert_string_equal(cfg->log_level, "info");
    assert_string_equal(cfg->access_log, "-");
    assert_string_equal(cfg->pid_file, "/run/hsmgate.pid");
    assert_int_equal(cfg->nlisteners, 2);

    l = &cfg->listeners[0];
    assert_string_equal(l->name, "payments");
    assert_int_equal(l->line, 8);
    assert_int_equal(l->name_line, 8);
    assert_int_equal(l->type, GW_LISTENER_TCP);
    assert_int_equal(l->type_line, 9);
    assert_string_equal(l->bind.text, "0.0.0.0:9444");
    assert_int_equal(l->bind.ss.ss_family, AF_INET);
    assert_int_equal(l->bind.len, sizeof(struct sockaddr_in));
    assert_int_equal(port_of(&l->bind), 9444);
    assert_int_equal(l->bind_line, 10);
    assert_int_equal(l->auth, GW_AUTH_TWO_WAY);
    assert_int_equal(l->auth_line, 11);
    assert_string_equal(l->certificate, "/etc/hsmgate/server-chain.pem");
    assert_int_equal(l->certificate_line, 12);
    assert_string_equal(l->key, "pkcs11:token=hsmgate;object=server");
    assert_int_equal(l->key_line, 13);
    assert_string_equal(l->client_ca, "/etc/hsmgate/root-ca.pem");
    assert_int_equal(l->client_ca_line, 14);
    assert_int_equal(l->nbackends, 1);
    assert_string_equal(l->backends[0].addr.text, "127.0.0.1:7000");
    assert_int_equal(l->backends[0].line, 15);
    assert_int_equal(l->backends_line, 15);
    assert_int_equal(l->min_tls, GW_TLS_1_2);
    assert_int_equal(l->max_tls, GW_TLS_1_3);
    assert_string_equal(l->ciphers, "ECDHE-ECDSA-AES256-GCM-SHA384");
    assert_int_equal(l->verify_depth, 4);
    assert_int_equal(l->handshake_timeout_ms, 10000);
    assert_int_equal(l->idle_timeout_ms, 300000);
    assert_int_equal(l->connect_timeout_ms, 5000);
    assert_int_equal(l->max_connections, 0);

    l = &cfg->listeners[1];
    assert_string_equal(l->name, "admin");
    assert_int_equal(l->line, 23);
    assert_int_equal(l->type, GW_LISTENER_HTTPS);
    assert_string_equal(l->bind.text, "[::1]:9445");
    assert_int_equal(l->bind.ss.ss_family, AF_INET6);
    assert_int_equal(l->bind.len, sizeof(struct sockaddr_in6));
    assert_int_equal(l->auth, GW_AUTH_OPTIONAL);
    assert_string_equal(l->certificate, "/etc/hsmgate/admin.pem");
    assert_string_equal(l->key, "/etc/hsmgate/keys/admin.key");
    assert_string_equal(l->client_ca, "/etc/hsmgate/ca.pem");
    assert_int_equal(l->nbackends, 2);
    assert_int_equal(l->backends_line, 30);
    assert_string_equal(l->backends[0].addr.text, "127.0.0.1:8080");
    assert_int_equal(l->backends[0].line, 31);
    assert_string_equal(l->backends[1].addr.text, "[::1]:8081");
    assert_int_equal(l->backends[1].addr.ss.ss_family, AF_INET6);
    assert_int_equal(l->backends[1].line, 32);
    assert_int_equal(l->min_tls, GW_TLS_1_3);
    assert_int_equal(l->max_tls, GW_TLS_1_3);
    assert_null(l->ciphers);
    assert_int_equal(l->verify_depth, 16);
    assert_int_equal(l->handshake_timeout_ms, 250);
    assert_int_equal(l->idle_timeout_ms, 3600000);
    assert_int_equal(l->connect_timeout_ms, 2000);
    assert_int_equal(l->max_connections, 500);
    gw_config_free(cfg);
}

static void test_defaults(void **state)
{
    struct gw_config *cfg = parse_ok(L_HEAD);
    const struct gw_listener_cfg *l = &cfg->listeners[0];
    (void)state;

    assert_null(cfg->hsm_module);
    assert_int_equal(cfg->hsm_module_line, 0);
    assert_null(cfg->hsm_pin);
    assert_int_equal(cfg->workers, 0);
    assert_int_equal(cfg->max_connections, 10000);
    assert_int_equal(cfg->drain_timeout_ms, 30000);
    assert_string_equal(cfg->log_level, "info");
    assert_string_equal(cfg->access_log, "-");
    assert_null(cfg->pid_file);
    assert_int_equal(cfg->nlisteners, 1);
    assert_int_equal(l->type, GW_LISTENER_TCP);
    assert_int_equal(l->auth, GW_AUTH_ONE_WAY);
    assert_null(l->client_ca);
    assert_null(l->ciphers);
    assert_int_equal(l->min_tls, GW_TLS_1_2);
    assert_int_equal(l->max_tls, GW_TLS_1_3);
    assert_int_equal(l->verify_depth, 4);
    assert_int_equal(l->handshake_timeout_ms, 10000);
    assert_int_equal(l->idle_timeout_ms, 300000);
    assert_int_equal(l->connect_timeout_ms, 5000);
    assert_int_equal(l->max_connections, 0);
    /* Absent settings point at the listener. */
    assert_int_equal(l->auth_line, 2);
    assert_int_equal(l->type_line, 2);
    gw_config_free(cfg);
}

static void test_optional_values(void **state)
{
    struct gw_config *cfg;
    (void)state;

    cfg = parse_ok("log: { level: debug, access_log: off }\nworkers: 0\n" L_HEAD);
    assert_string_equal(cfg->log_level, "debug");
    assert_null(cfg->access_log);
    gw_config_free(cfg);

    cfg = parse_ok("log:\n  access_log: false\n  level: error\nworkers: 256\n" L_HEAD);
    assert_null(cfg->access_log);
    assert_string_equal(cfg->log_level, "error");
    assert_int_equal(cfg->workers, 256);
    gw_config_free(cfg);

    /* A quoted "false" is a file name, not a boolean. */
    cfg = parse_ok("log: { access_log: \"false\", level: warning }\n" L_HEAD);
    assert_string_equal(cfg->access_log, "/etc/hsmgate/false");
    gw_config_free(cfg);

    cfg = parse_ok("hsm: { pin: \"env:HSMGATE_PIN\" }\n" L_HEAD);
    assert_null(cfg->hsm_module);
    assert_string_equal(cfg->hsm_pin, "env:HSMGATE_PIN");
    gw_config_free(cfg);

    /* RFC 7512: the scheme is case-insensitive, so this is a URI, not a relative path. */
    cfg = parse_ok("hsm: {}\nlisteners:\n"
                   "  - { name: a, bind: \"*:1\", certificate: /c, key: \"PKCS11:object=k\", backends: [\"localhost:2\"] }\n");
    assert_string_equal(cfg->listeners[0].key, "PKCS11:object=k");
    assert_string_equal(cfg->listeners[0].backends[0].addr.text, "127.0.0.1:2");
    gw_config_free(cfg);
}

static void test_relative_paths(void **state)
{
    static const char yaml[] = "hsm: { pin: file:secret/hsm.pin, module: libsofthsm2.so }\n"
                               "log: { access_log: logs/access.log }\n"
                               "pid_file: ./run//hsmgate.pid\n"
                               "listeners:\n"
                               "  - name: a\n"
                               "    bind: 127.0.0.1:1\n"
                               "    certificate: certs/server.pem\n"
                               "    key: ../keys/server.key\n"
                               "    client_ca: ./ca.pem\n"
                               "    auth: two-way\n"
                               "    backends: [127.0.0.1:2]\n";
    struct gw_config *cfg;
    char *cwd = getcwd(NULL, 0);
    char want[4096];
    (void)state;

    assert_non_null(cwd);
    cfg = parse_ok(yaml);
    assert_string_equal(cfg->hsm_pin, "file:/etc/hsmgate/secret/hsm.pin");
    assert_string_equal(cfg->hsm_module, "libsofthsm2.so"); /* the loader's search path applies */
    assert_string_equal(cfg->access_log, "/etc/hsmgate/logs/access.log");
    assert_string_equal(cfg->pid_file, "/etc/hsmgate/run/hsmgate.pid");
    assert_string_equal(cfg->listeners[0].certificate, "/etc/hsmgate/certs/server.pem");
    assert_string_equal(cfg->listeners[0].key, "/etc/hsmgate/../keys/server.key");
    assert_string_equal(cfg->listeners[0].client_ca, "/etc/hsmgate/ca.pem");
    gw_config_free(cfg);

    /* A relative file name: relative to the working directory. */
    cfg = parse_ok_named("conf/hsmgate.yaml", yaml);
    snprintf(want, sizeof(want), "%s/conf/certs/server.pem", strcmp(cwd, "/") == 0 ? "" : cwd);
    assert_string_equal(cfg->listeners[0].certificate, want);
    assert_string_equal(cfg->path, "conf/hsmgate.yaml");
    gw_config_free(cfg);

    cfg = parse_ok_named("hsmgate.yaml", yaml);
    snprintf(want, sizeof(want), "%s/certs/server.pem", strcmp(cwd, "/") == 0 ? "" : cwd);
    assert_string_equal(cfg->listeners[0].certificate, want);
    gw_config_free(cfg);

    cfg = parse_ok_named("/hsmgate.yaml", yaml);
    assert_string_equal(cfg->listeners[0].certificate, "/certs/server.pem");
    gw_config_free(cfg);
    free(cwd);
}

static void test_binds(void **state)
{
    static const struct {
        const char *in, *text;
        int family;
        unsigned port;
    } ok[] = {
        {"127.0.0.1:7000", "127.0.0.1:7000", AF_INET, 7000},
        {"*:9444", "0.0.0.0:9444", AF_INET, 9444},
        {"localhost:1", "127.0.0.1:1", AF_INET, 1},
        {"0.0.0.0:65535", "0.0.0.0:65535", AF_INET, 65535},
        {"[::1]:9444", "[::1]:9444", AF_INET6, 9444},
        {"[::]:443", "[::]:443", AF_INET6, 443},
        {"[0:0:0:0:0:0:0:1]:80", "[::1]:80", AF_INET6, 80},
        {"[2001:DB8::A]:0080", "[2001:db8::a]:80", AF_INET6, 80},
        {"[::ffff:10.0.0.1]:5", "[::ffff:10.0.0.1]:5", AF_INET6, 5},
    };
    static const char *const bad[] = {
        "", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:+80",
        "127.0.0.1:-1", "127.0.0.1: 80", "127.0.0.1:80 ", "example.com:80", "1.2.3:80",
        "256.1.1.1:80", "::1:80", "[::1]", "[::1]80", "[::1:80", "[1.2.3.4]:80", "[*]:80",
        "[fe80::1%eth0]:80", "127.0.0.1:99999999999999999999999", "LOCALHOST:80",
    };
    struct gw_config *cfg;
    (void)state;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct gw_addr a;
        memset(&a, 0, sizeof(a));
        if (gw_addr_parse(ok[i].in, &a) != 0)
            fail_msg("refused %s", ok[i].in);
        assert_string_equal(a.text, ok[i].text);
        assert_int_equal(a.ss.ss_family, ok[i].family);
        assert_int_equal(port_of(&a), ok[i].port);
        assert_int_equal(a.len, ok[i].family == AF_INET ? sizeof(struct sockaddr_in)
                                                        : sizeof(struct sockaddr_in6));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct gw_addr a;
        memset(&a, 0x5a, sizeof(a));
        if (gw_addr_parse(bad[i], &a) == 0)
            fail_msg("accepted \"%s\" as %s", bad[i], a.text);
    }
    {
        struct gw_addr a;
        assert_int_equal(gw_addr_parse(NULL, &a), -1);
    }

    /* The same port on both families is the data plane's business (IPV6_V6ONLY). */
    cfg = parse_ok(L_HEAD "  - name: v6\n"
                          "    bind: \"[::]:9444\"\n"
                          "    certificate: /c\n"
                          "    key: /k\n"
                          "    backends: [\"[::1]:7000\"]\n"
                          "  - name: v6-loop\n"
                          "    bind: \"[::1]:9445\"\n"
                          "    certificate: /c\n"
                          "    key: /k\n"
                          "    backends: [\"[::1]:7000\"]\n");
    assert_int_equal(cfg->nlisteners, 3);
    assert_string_equal(cfg->listeners[1].bind.text, "[::]:9444");
    assert_string_equal(cfg->listeners[2].bind.text, "[::1]:9445");
    assert_string_equal(cfg->listeners[2].backends[0].addr.text, "[::1]:7000");
    gw_config_free(cfg);
}

static void test_durations(void **state)
{
    static const struct {
        const char *in;
        unsigned ms;
    } ok[] = {
        {"250ms", 250}, {"10s", 10000}, {"5m", 300000}, {"1h", 3600000}, {"7", 7000},
        {"0", 0},       {"0ms", 0},     {"010s", 10000}, {"4294967295ms", 4294967295u},
        {"4294967s", 4294967000u}, {"1193h", 4294800000u},
    };
    static const char *const bad[] = {
        "", "s", "ms", "-1s", "+1s", " 1s", "1s ", "1 s", "1.5s", "1S", "1d", "1sec", "10x",
        "1m30s", "0x10", "4294967296ms", "4294968s", "1194h", "99999999999999999999999",
        "18446744073709551616ms",
    };
    unsigned ms;
    (void)state;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ms = 12345;
        if (gw_duration_parse(ok[i].in, &ms) != 0)
            fail_msg("refused \"%s\"", ok[i].in);
        assert_int_equal(ms, ok[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = 12345;
        if (gw_duration_parse(bad[i], &ms) == 0)
            fail_msg("accepted \"%s\" as %u", bad[i], ms);
        assert_int_equal(ms, 12345);
    }
    assert_int_equal(gw_duration_parse(NULL, &ms), -1);

    {
        struct gw_config *cfg = parse_ok("drain_timeout: 86399999ms\n" L_HEAD
                                         "    idle_timeout: 23h\n"
                                         "    connect_timeout: 1ms\n");
        assert_int_equal(cfg->drain_timeout_ms, 86399999u);
        assert_int_equal(cfg->listeners[0].idle_timeout_ms, 23u * 3600000u);
        assert_int_equal(cfg->listeners[0].connect_timeout_ms, 1);
        gw_config_free(cfg);
    }
}

/* gw_config_load reads the file and resolves paths from its directory. */
static void test_load(void **state)
{
    char dir[] = "/tmp/hsmgate-test-config-XXXXXX";
    char path[256], big[256], want[300], err[512];
    struct gw_config *cfg = NULL;
    FILE *f;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/hsmgate.yaml", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("listeners:\n  - name: x\n    bind: '*:1'\n    certificate: server.pem\n"
          "    key: server.key\n    backends: [localhost:2]\n",
          f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(gw_config_load(path, &cfg, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "%s/server.pem", dir);
    assert_string_equal(cfg->listeners[0].certificate, want);
    assert_string_equal(cfg->path, path);
    gw_config_free(cfg);
    cfg = NULL;

    /* Over the cap: refused before parsing. */
    snprintf(big, sizeof(big), "%s/big.yaml", dir);
    f = fopen(big, "w");
    assert_non_null(f);
    for (int i = 0; i < 1024 * 1024 / 16 + 1; i++)
        fputs("# padding......\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(gw_config_load(big, &cfg, err, sizeof(err)), -1);
    assert_null(cfg);
    snprintf(want, sizeof(want), "%s: larger than 1 MiB", big);
    assert_non_null(strstr(err, want));

    assert_int_equal(gw_config_load(dir, &cfg, err, sizeof(err)), -1);
    assert_null(cfg);
    snprintf(want, sizeof(want), "%s: cannot read", dir);
    assert_non_null(strstr(err, want));

    assert_int_equal(unlink(big), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(gw_config_load(path, &cfg, err, sizeof(err)), -1);
    assert_null(cfg);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
    assert_string_equal(err, want);
    assert_int_equal(rmdir(dir), 0);
}

/* ---- negative: one error class each ---- */

static void test_err_syntax(void **state)
{
    (void)state;
    expect_err("workers: 2\nlisteners: [a, b\n", 3, "YAML syntax error: did not find expected ',' or ']'");
    expect_err("workers: 2\n  max_connections: 3\n", 2, "YAML syntax error: mapping values are not allowed");
    expect_err("workers: 2\n\tlisteners: []\n", 2, "YAML syntax error: found a tab character that violates indentation");
    expect_err("workers: 2\n@x: 1\n", 2, "YAML syntax error: found character that cannot start any token");
    expect_err("a: 'unterminated\n", 2, "YAML syntax error: found unexpected end of stream");
    expect_err("workers: 2\nlog: \"a\x01\"\n", 2, "YAML syntax error: control characters are not allowed");
    expect_err("workers: 2\n\xff\xfe\n", 2, "YAML syntax error: invalid leading UTF-8 octet");
    expect_err_len("workers: 2\n\0\n", 13, 2, "YAML syntax error: control characters are not allowed");
}

static void test_err_empty(void **state)
{
    (void)state;
    expect_err("", 0, "empty configuration file");
    expect_err("# only a comment\n\n", 0, "empty configuration file");
    expect_err("---\n", 0, "empty configuration file");
    expect_err("~\n", 0, "empty configuration file");
    expect_err("{}\n", 0, "no listeners: at least one is required");
}

static void test_err_documents_and_aliases(void **state)
{
    (void)state;
    expect_err(L_HEAD "---\n" L_HEAD, 7, "only one YAML document is allowed");
    expect_err("x: &anchor 5\n" L_HEAD, 1, "unknown key \"x\"");
    expect_err("listeners:\n"
               "  - &l\n"
               "    name: payments\n"
               "    bind: 0.0.0.0:9444\n"
               "    certificate: /etc/c.pem\n"
               "    key: /k\n"
               "    backends: [127.0.0.1:7000]\n"
               "  - *l\n",
               8, "YAML aliases (*name) are not supported");
}

static void test_err_top_not_mapping(void **state)
{
    (void)state;
    expect_err("- a\n- b\n", 1, "the configuration must be a mapping of settings, not a sequence");
    expect_err("just words\n", 1, "the configuration must be a mapping of settings, not a scalar");
}

static void test_err_unknown_keys(void **state)
{
    (void)state;
    expect_err("workers: 1\nworker: 2\n" L_HEAD, 2,
               "unknown key \"worker\" (valid: hsm, log, workers, max_connections, drain_timeout, "
               "pid_file, listeners)");
    expect_err(L_HEAD "    authh: two-way\n", 7, "listener \"payments\": unknown key \"authh\" (valid: name, type, bind, auth,");
    expect_err("hsm:\n  module: /m.so\n  slot: 3\n" L_HEAD, 3, "hsm: unknown key \"slot\" (valid: module, pin)");
    expect_err("log: { level: info, format: json }\n" L_HEAD, 1, "log: unknown key \"format\" (valid: level, access_log)");
    /* A merge key is just another unknown key. */
    expect_err(L_HEAD "    <<: {}\n", 7, "unknown key \"<<\"");
    /* An unknown key in a listener without a valid name yet. */
    expect_err("listeners:\n  - bogus: 1\n", 2, "listener #1: unknown key \"bogus\"");
}

static void test_err_duplicate_keys(void **state)
{
    (void)state;
    expect_err("workers: 1\n" L_HEAD "workers: 2\n", 8, "duplicate key \"workers\" (first at line 1)");
    expect_err(L_HEAD "    bind: 0.0.0.0:9445\n", 7, "listener \"payments\": duplicate key \"bind\" (first at line 3)");
    expect_err("log:\n  level: info\n  level: debug\n" L_HEAD, 3, "log: duplicate key \"level\" (first at line 2)");
    expect_err(L_HEAD L_HEAD, 7, "duplicate key \"listeners\" (first at line 1)");
}

static void test_err_wrong_types(void **state)
{
    (void)state;
    expect_err("listeners: payments\n", 1, "listeners must be a sequence of listeners, not a scalar");
    expect_err("listeners:\n  payments: {}\n", 2, "listeners must be a sequence of listeners, not a mapping");
    expect_err("listeners:\n  - payments\n", 2, "listener #1 must be a mapping, not a scalar");
    expect_err("hsm: /usr/lib/softhsm/libsofthsm2.so\n" L_HEAD, 1, "hsm must be a mapping (module, pin), not a scalar");
    expect_err("log: [info]\n" L_HEAD, 1, "log must be a mapping (level, access_log), not a sequence");
    expect_err("workers: [1]\n" L_HEAD, 1, "workers must be a string, not a sequence");
    expect_err("pid_file: { a: b }\n" L_HEAD, 1, "pid_file must be a string, not a mapping");
    expect_err(L_HEAD "    ciphers: [a, b]\n", 7, "listener \"payments\": ciphers must be a string, not a sequence");
    expect_err("listeners:\n"
               "  - name: payments\n"
               "    bind: [0.0.0.0:9444]\n",
               3, "listener \"payments\": bind must be a string, not a sequence");
    expect_err("listeners:\n"
               "  - name: payments\n"
               "    bind: 0.0.0.0:9444\n"
               "    backends: 127.0.0.1:7000\n",
               4, "listener \"payments\": backends must be a sequence of \"host:port\", not a scalar");
    expect_err("listeners:\n"
               "  - name: payments\n"
               "    backends: [[127.0.0.1:7000]]\n",
               3, "listener \"payments\": backend must be a string, not a sequence");
    expect_err("listeners:\n  - name: {a: b}\n", 2, "listener #1: name must be a string, not a mapping");
    expect_err("? [a, b]\n: 1\n", 1, "keys must be strings, not a sequence");
    expect_err(L_HEAD "    ? {a: b}\n    : 1\n", 7, "listener \"payments\": keys must be strings, not a mapping");
}

static void test_err_bad_strings(void **state)
{
    (void)state;
    expect_err("pid_file:\n" L_HEAD, 1, "pid_file has no value");
    expect_err("pid_file: ~\n" L_HEAD, 1, "pid_file has no value");
    expect_err("pid_file: \"\"\n" L_HEAD, 1, "pid_file must not be empty");
    expect_err(L_HEAD "    certificate2: x\n", 7, "unknown key");
    expect_err("listeners:\n  - name: a\n    certificate: \"/etc/a\\tb.pem\"\n", 3,
               "listener \"a\": certificate must not contain control characters: \"/etc/a\\x09b.pem\"");
    expect_err("listeners:\n  - name: a\n    key: \"/etc/a\\0b.pem\"\n", 3,
               "listener \"a\": key must not contain control characters: \"/etc/a\\x00b.pem\"");
}

/* Values quoted in messages are escaped and cut, whatever their length and content. */
static void test_err_long_values(void **state)
{
    char yaml[4096], want[128];
    size_t o;
    (void)state;

    o = (size_t)snprintf(yaml, sizeof(yaml), "listeners:\n  - name: a\n    certificate: \"");
    for (int i = 0; i < 300; i++)
        o += (size_t)snprintf(yaml + o, sizeof(yaml) - o, "\\t");
    snprintf(yaml + o, sizeof(yaml) - o, "\"\n");
    snprintf(want, sizeof(want), "control characters: \"%s", "\\x09\\x09\\x09");
    expect_err(yaml, 3, want);
    expect_err(yaml, 3, "\\x09\"...");

    /* Two-byte characters, cut on a character boundary. */
    o = (size_t)snprintf(yaml, sizeof(yaml), "listeners:\n  - name: a\n    auth: ");
    for (int i = 0; i < 300; i++)
        o += (size_t)snprintf(yaml + o, sizeof(yaml) - o, "\xc3\xa9");
    snprintf(yaml + o, sizeof(yaml) - o, "\n");
    expect_err(yaml, 3, "\xc3\xa9\"...");
    expect_err(yaml, 3, "listener \"a\": auth must be one-way, two-way or optional, not \"\xc3\xa9");
}

static void test_err_names(void **state)
{
    (void)state;
    expect_err("listeners:\n  - name: \"pay ments\"\n", 2,
               "listener #1: name must be 1 to 64 characters from A-Z, a-z, 0-9, '_', '.', '-', not \"pay ments\"");
    expect_err("listeners:\n  - name: "
               "a123456789b123456789c123456789d123456789e123456789f123456789g1234\n",
               2, "listener #1: name must be 1 to 64 characters");
    expect_err("listeners:\n  - name: \"\"\n", 2, "listener #1: name must not be empty");
    expect_err("listeners:\n  - name: caf\xc3\xa9\n", 2, "name must be 1 to 64 characters");
    /* 64 characters is fine. */
    gw_config_free(parse_ok("listeners:\n  - name: "
                            "a123456789b123456789c123456789d123456789e123456789f123456789g123\n"
                            "    bind: 0.0.0.0:9444\n    certificate: /etc/c.pem\n    key: /k\n"
                            "    backends: [127.0.0.1:7000]\n"));
}

static void test_err_duplicate_listener(void **state)
{
    (void)state;
    expect_err(L_HEAD "  - name: payments\n"
                      "    bind: 0.0.0.0:9445\n"
                      "    certificate: /etc/c.pem\n"
                      "    key: /k\n"
                      "    backends: [127.0.0.1:7000]\n",
               7,
               "duplicate listener name \"payments\" (first at line 2)");
}

static void test_err_duplicate_bind(void **state)
{
    (void)state;
    expect_err(L_HEAD "  - name: other\n"
                      "    certificate: /c\n"
                      "    key: /k\n"
                      "    backends: [127.0.0.1:7001]\n"
                      "    bind: '*:9444'\n",
               11, "listener \"other\": bind 0.0.0.0:9444 is already used by listener \"payments\" (line 3)");
    expect_err(L_HEAD "  - name: other\n"
                      "    bind: 127.0.0.1:9444\n"
                      "    certificate: /c\n"
                      "    key: /k\n"
                      "    backends: [127.0.0.1:7001]\n",
               8, "listener \"other\": bind 127.0.0.1:9444 overlaps the bind of listener \"payments\" (line 3)");
    expect_err("listeners:\n"
               "  - { name: a, bind: \"[::1]:1\", certificate: /c, key: /k, backends: [\"[::1]:2\"] }\n"
               "  - { name: b, bind: \"[0::1]:1\", certificate: /c, key: /k, backends: [\"[::1]:2\"] }\n",
               3, "listener \"b\": bind [::1]:1 is already used by listener \"a\" (line 2)");
}

static void test_err_missing_required(void **state)
{
    (void)state;
    expect_err("workers: 1\n", 0, "no listeners: at least one is required under \"listeners\"");
    expect_err("listeners: []\n", 1, "listeners must not be empty");
    expect_err("workers: 1\nlisteners:\n", 2, "listeners must be a sequence of listeners, not a scalar");
    expect_err("listeners:\n  - bind: 0.0.0.0:1\n    key: /k\n", 2, "listener #1: name is required");
    expect_err("listeners:\n  - name: a\n    certificate: /c\n    key: /k\n    backends: [127.0.0.1:1]\n",
               2, "listener \"a\": bind is required");
    expect_err("listeners:\n  - name: a\n    bind: '*:1'\n    key: /k\n    backends: [127.0.0.1:1]\n",
               2, "listener \"a\": certificate is required");
    expect_err("listeners:\n  - name: a\n    bind: '*:1'\n    certificate: /c\n    backends: [127.0.0.1:1]\n",
               2, "listener \"a\": key is required");
    expect_err("listeners:\n  - name: a\n    bind: '*:1'\n    certificate: /c\n    key: /k\n",
               2, "listener \"a\": backends is required");
    expect_err("listeners:\n  - name: a\n    bind: '*:1'\n    certificate: /c\n    key: /k\n    backends: []\n",
               6, "listener \"a\": backends must not be empty");
    expect_err(L_HEAD "    auth: two-way\n", 7, "listener \"payments\": client_ca is required when auth is two-way");
    expect_err(L_HEAD "    auth: optional\n", 7, "listener \"payments\": client_ca is required when auth is optional");
}

static void test_err_enums(void **state)
{
    struct gw_config *cfg = NULL;
    char err[512];
    static const char yaml[] = L_HEAD "    auth: both\n";
    (void)state;

    /* The message, exactly as an operator sees it. */
    assert_int_equal(gw_config_parse("hsmgate.yaml", yaml, strlen(yaml), &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "hsmgate.yaml:7: listener \"payments\": auth must be one-way, two-way or "
                             "optional, not \"both\"");
    assert_null(cfg);

    expect_err(L_HEAD "    type: udp\n", 7, "listener \"payments\": type must be tcp or https, not \"udp\"");
    expect_err(L_HEAD "    min_tls: \"1.1\"\n", 7, "listener \"payments\": min_tls must be 1.2 or 1.3, not \"1.1\"");
    expect_err(L_HEAD "    max_tls: 1.20\n", 7, "max_tls must be 1.2 or 1.3, not \"1.20\"");
    expect_err(L_HEAD "    min_tls: \"1.3\"\n    max_tls: \"1.2\"\n", 8,
               "listener \"payments\": min_tls 1.3 is above max_tls 1.2");
    expect_err("log: { level: verbose }\n" L_HEAD, 1,
               "log: level must be error, warning, info or debug, not \"verbose\"");
    expect_err("log: { level: INFO }\n" L_HEAD, 1, "log: level must be");
}

static void test_err_ranges(void **state)
{
    (void)state;
    expect_err("workers: 257\n" L_HEAD, 1, "workers must be a number from 0 to 256, not \"257\"");
    expect_err("workers: -1\n" L_HEAD, 1, "workers must be a number from 0 to 256, not \"-1\"");
    expect_err("workers: +1\n" L_HEAD, 1, "workers must be a number from 0 to 256, not \"+1\"");
    expect_err("workers: \" 1\"\n" L_HEAD, 1, "workers must be a number");
    expect_err("workers: 0x10\n" L_HEAD, 1, "workers must be a number");
    expect_err("workers: 1.0\n" L_HEAD, 1, "workers must be a number");
    expect_err("workers: 99999999999999999999999\n" L_HEAD, 1, "workers must be a number");
    expect_err("workers: 18446744073709551617\n" L_HEAD, 1, "workers must be a number");
    expect_err("max_connections: 0\n" L_HEAD, 1, "max_connections must be a number from 1 to 1000000");
    expect_err("max_connections: 1000001\n" L_HEAD, 1, "max_connections must be a number from 1 to 1000000");
    expect_err(L_HEAD "    max_connections: 1000001\n", 7,
               "listener \"payments\": max_connections must be a number from 0 to 1000000");
    expect_err(L_HEAD "    verify_depth: 0\n", 7, "listener \"payments\": verify_depth must be a number from 1 to 16, not \"0\"");
    expect_err(L_HEAD "    verify_depth: 17\n", 7, "verify_depth must be a number from 1 to 16, not \"17\"");
    expect_err("listeners:\n  - name: a\n    bind: 0.0.0.0:0\n", 3,
               "listener \"a\": bind \"0.0.0.0:0\": port must be a number from 1 to 65535");
    expect_err("listeners:\n  - name: a\n    bind: 0.0.0.0:65536\n", 3, "port must be a number from 1 to 65535");
    expect_err("listeners:\n  - name: a\n    backends: [127.0.0.1:70000]\n", 3,
               "listener \"a\": backend \"127.0.0.1:70000\": port must be a number from 1 to 65535");
}

static void test_err_durations(void **state)
{
    (void)state;
    expect_err("drain_timeout: 0s\n" L_HEAD, 1, "drain_timeout must be more than 0 and less than a day, not \"0s\"");
    expect_err("drain_timeout: 24h\n" L_HEAD, 1, "drain_timeout must be more than 0 and less than a day");
    expect_err("drain_timeout: 86400\n" L_HEAD, 1, "drain_timeout must be more than 0 and less than a day");
    expect_err("drain_timeout: 30 s\n" L_HEAD, 1,
               "drain_timeout must be a duration such as 250ms, 10s, 5m or 1h, not \"30 s\"");
    expect_err(L_HEAD "    handshake_timeout: 10x\n", 7,
               "listener \"payments\": handshake_timeout must be a duration such as 250ms, 10s, 5m or 1h, not \"10x\"");
    expect_err(L_HEAD "    idle_timeout: -5m\n", 7, "listener \"payments\": idle_timeout must be a duration");
    expect_err(L_HEAD "    connect_timeout: 99999999999999h\n", 7, "listener \"payments\": connect_timeout must be a duration");
    expect_err(L_HEAD "    connect_timeout: 0\n", 7, "connect_timeout must be more than 0");
}

static void test_err_addresses(void **state)
{
    (void)state;
    expect_err("listeners:\n  - name: a\n    bind: example.com:443\n", 3,
               "listener \"a\": bind \"example.com:443\": not a numeric IPv4 address (host names are not resolved)");
    expect_err("listeners:\n  - name: a\n    bind: \"::1:443\"\n", 3,
               "bind \"::1:443\": IPv6 addresses must be in brackets, as in [::1]:9444");
    expect_err("listeners:\n  - name: a\n    bind: \"[::1]\"\n", 3, "bind \"[::1]\": missing port after ']'");
    expect_err("listeners:\n  - name: a\n    bind: \"[::g]:1\"\n", 3, "bind \"[::g]:1\": not a numeric IPv6 address");
    expect_err("listeners:\n  - name: a\n    bind: 10.0.0.1\n", 3, "bind \"10.0.0.1\": missing port");
    expect_err("listeners:\n  - name: a\n    backends:\n      - 127.0.0.1:1\n      - \"*:7000\"\n", 5,
               "listener \"a\": backend \"*:7000\": the wildcard address cannot be connected to");
    expect_err("listeners:\n  - name: a\n    backends: [\"[::]:7000\"]\n", 3, "the wildcard address cannot be connected to");
}

static void test_err_pin(void **state)
{
    struct gw_config *cfg = NULL;
    char err[512];
    static const char yaml[] = "hsm: { pin: \"123456\" }\n" L_HEAD;
    (void)state;

    /* The refused value may be the PIN itself: it must not end up in a log. */
    assert_int_equal(gw_config_parse(NAME, yaml, strlen(yaml), &cfg, err, sizeof(err)), -1);
    assert_null(strstr(err, "123456"));
    expect_err(yaml, 1, "hsm: pin must be \"file:PATH\" or \"env:NAME\"");
    expect_err("hsm: { pin: 123456 }\n" L_HEAD, 1, "hsm: pin must be");
    expect_err("hsm: { pin: [1, 2] }\n" L_HEAD, 1, "hsm: pin must be");
    expect_err("hsm: { pin: \"file:\" }\n" L_HEAD, 1, "hsm: pin must be");
    expect_err("hsm: { pin: \"env:1X\" }\n" L_HEAD, 1, "hsm: pin must be");
    expect_err("hsm: { pin: \"env:A-B\" }\n" L_HEAD, 1, "hsm: pin must be");
    expect_err("hsm:\n  pin:\n" L_HEAD, 2, "hsm: pin must be");
    expect_err("hsm: { module: \"\" }\n" L_HEAD, 1, "hsm: module must not be empty");
}

static void test_err_size_cap(void **state)
{
    size_t len = 1024 * 1024 + 1;
    char *buf = malloc(len);
    (void)state;

    assert_non_null(buf);
    memset(buf, '#', len);
    expect_err_len(buf, len, 0, "larger than 1 MiB");
    /* At the cap it is read (and here found to be one long comment). */
    expect_err_len(buf, len - 1, 0, "empty configuration file");
    free(buf);
}

/* libyaml's scanner is quadratic in flow nesting: deep input is cut off at once, not after minutes. */
static void test_err_nesting(void **state)
{
    size_t len = 1024 * 1024;
    char *buf = malloc(len);
    (void)state;

    assert_non_null(buf);
    memset(buf, '[', len);
    expect_err_len(buf, len, 1, "nested more than 16 levels deep");
    free(buf);
    expect_err("a:\n b:\n  c:\n   d:\n    e:\n     f:\n      g:\n       h:\n        i:\n"
               "         j:\n          k:\n           l:\n            m:\n             n:\n"
               "              o:\n               p:\n                q: 1\n",
               17, "nested more than 16 levels deep");
    /* Sixteen levels are still only a wrong shape. */
    expect_err("[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]\n", 1, "must be a mapping of settings, not a sequence");
}

/* Odd arguments never crash: a NULL or tiny error buffer, a NULL name. */
static void test_api_edges(void **state)
{
    struct gw_config *cfg = NULL;
    char err[8];
    (void)state;

    assert_int_equal(gw_config_parse(NAME, "x", 1, &cfg, NULL, 0), -1);
    assert_null(cfg);
    assert_int_equal(gw_config_parse(NAME, "x", 1, &cfg, err, 1), -1);
    assert_string_equal(err, "");
    assert_int_equal(gw_config_parse(NAME, "x", 1, &cfg, err, sizeof(err)), -1);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_int_equal(gw_config_parse(NAME, NULL, 0, &cfg, err, sizeof(err)), -1);
    assert_int_equal(gw_config_parse(NAME, NULL, 5, &cfg, err, sizeof(err)), -1);
    assert_int_equal(gw_config_parse(NAME, "x", 1, NULL, err, sizeof(err)), -1);
    assert_int_equal(gw_config_parse(NULL, L_HEAD, strlen(L_HEAD), &cfg, err, sizeof(err)), 0);
    gw_config_free(cfg);
    gw_config_free(NULL);
}

/* ---- robustness: whatever comes in, a config or a located message ---- */

static void check_any(const char *buf, size_t len)
{
    struct gw_config *cfg = NULL;
    char err[512] = "";
    const char prefix[] = "fz.yaml:";

    if (gw_config_parse("fz.yaml", buf, len, &cfg, err, sizeof(err)) == 0) {
        assert_non_null(cfg);
        assert_true(cfg->nlisteners > 0);
        gw_config_free(cfg);
        return;
    }
    assert_null(cfg);
    /* "fz.yaml:7: ..." or "fz.yaml: ..." */
    if (strncmp(err, prefix, sizeof(prefix) - 1) != 0 || strlen(err) <= sizeof(prefix))
        fail_msg("no location in \"%s\" for input of %zu bytes", err, len);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    /* xorshift64: deterministic, so a failure reproduces. */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_prefixes(void **state)
{
    size_t len = strlen(full_example);
    (void)state;

    /* A heap copy of exactly len bytes, so that ASan sees any read past the end. */
    for (size_t i = 0; i <= len; i++) {
        char *buf = malloc(i ? i : 1);
        assert_non_null(buf);
        memcpy(buf, full_example, i);
        check_any(buf, i);
        free(buf);
    }
}

static void test_mutations(void **state)
{
    static const char alphabet[] = ":-[]{}&*!|>'\"#\n \t,?%@`\\~0123456789abcxyz.\x01\x80\xff";
    size_t len = strlen(full_example);
    (void)state;

    for (int iter = 0; iter < 3000; iter++) {
        char *buf = malloc(len);
        size_t n = len;
        assert_non_null(buf);
        memcpy(buf, full_example, len);
        for (int k = 1 + (int)(rng() % 4); k > 0; k--) {
            size_t at = (size_t)(rng() % n);
            switch (rng() % 3) {
            case 0: /* replace a byte */
                buf[at] = alphabet[rng() % (sizeof(alphabet) - 1)];
                break;
            case 1: /* delete a byte */
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            default: /* swap two bytes */
                {
                    size_t b = (size_t)(rng() % n);
                    char t = buf[at];
                    buf[at] = buf[b];
                    buf[b] = t;
                }
            }
        }
        check_any(buf, n);
        free(buf);
    }
    for (int iter = 0; iter < 500; iter++) {
        size_t n = (size_t)(rng() % 200);
        char *buf = malloc(n ? n : 1);
        assert_non_null(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (rng() & 1) ? alphabet[rng() % (sizeof(alphabet) - 1)] : (char)rng();
        check_any(buf, n);
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_optional_values),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_binds),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_err_syntax),
        cmocka_unit_test(test_err_empty),
        cmocka_unit_test(test_err_documents_and_aliases),
        cmocka_unit_test(test_err_top_not_mapping),
        cmocka_unit_test(test_err_unknown_keys),
        cmocka_unit_test(test_err_duplicate_keys),
        cmocka_unit_test(test_err_wrong_types),
        cmocka_unit_test(test_err_bad_strings),
        cmocka_unit_test(test_err_long_values),
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_err_duplicate_listener),
        cmocka_unit_test(test_err_duplicate_bind),
        cmocka_unit_test(test_err_missing_required),
        cmocka_unit_test(test_err_enums),
        cmocka_unit_test(test_err_ranges),
        cmocka_unit_test(test_err_durations),
        cmocka_unit_test(test_err_addresses),
        cmocka_unit_test(test_err_pin),
        cmocka_unit_test(test_err_size_cap),
        cmocka_unit_test(test_err_nesting),
        cmocka_unit_test(test_api_edges),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

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
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/config.h"
#include "policies/pol.h"

#define NAME "/etc/hsmgate/hsmgate.yaml"

/* A complete, valid listener on lines 1-6; negative tests append from line 7. */
#define L_HEAD                                                                                     \
    "listeners:\n"                                                                                 \
    "  - name: payments\n"                                                                         \
    "    bind: 0.0.0.0:9444\n"                                                                     \
    "    certificate: /etc/c.pem\n"                                                                \
    "    key: \"pkcs11:token=t;object=k\"\n"                                                       \
    "    backends: [127.0.0.1:7000]\n"

/* The same as an https listener, on lines 1-7; negative tests append from line 8. */
#define H_HEAD L_HEAD "    type: https\n"

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
    "    max_connections: 500\n"                                                             /* 39 */
    "    balance: least-connections\n"                                                       /* 40 */
    "    health_check:\n"                                                                    /* 41 */
    "      type: http\n"                                                                     /* 42 */
    "      path: /healthz?full=1\n"                                                          /* 43 */
    "      interval: 10s\n"                                                                  /* 44 */
    "      timeout: 1500ms\n"                                                                /* 45 */
    "      rise: 1\n"                                                                        /* 46 */
    "      fall: 100\n"                                                                      /* 47 */
    "    identity_headers:\n"                                                                /* 48 */
    "      client_cert_chain: Client-Cert-Chain\n"                                           /* 49 */
    "      subject: X-Subject\n"                                                             /* 50 */
    "      serial: off\n"                                                                    /* 51 */
    "      forwarded_for: false\n"                                                           /* 52 */
    "    strip_headers: [X-Internal-User, x-debug-auth]\n"                                   /* 53 */
    "    backend_timeout: 2m\n"                                                              /* 54 */
    "    max_header_bytes: 1024\n"                                                           /* 55 */
    "    max_headers: 1000\n"                                                                /* 56 */
    "  - name: relay\n"                                                                      /* 57 */
    "    bind: 127.0.0.1:9446\n"                                                             /* 58 */
    "    certificate: /c.pem\n"                                                              /* 59 */
    "    key: /k.pem\n"                                                                      /* 60 */
    "    backends:\n"                                                                        /* 61 */
    "      - 127.0.0.1:7001\n"                                                               /* 62 */
    "      - { address: 127.0.0.1:7002, weight: 3 }\n"                                       /* 63 */
    "      - address: \"[::1]:7003\"\n"                                                      /* 64 */
    "        weight: 256\n"                                                                  /* 65 */
    "    health_check: { type: tcp }\n"                                                      /* 66 */
    "    proxy_protocol: v2\n"                                                               /* 67 */
    "    proxy_protocol_cert: true\n";                                                       /* 68 */

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
    assert_int_equal(cfg->nlisteners, 3);

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
    assert_int_equal(l->balance, GW_BALANCE_LEAST_CONN);
    assert_int_equal(l->health.type, GW_HEALTH_HTTP);
    assert_string_equal(l->health.path, "/healthz?full=1");
    assert_int_equal(l->health.interval_ms, 10000);
    assert_int_equal(l->health.timeout_ms, 1500);
    assert_int_equal(l->health.rise, 1);
    assert_int_equal(l->health.fall, 100);
    assert_int_equal(l->health.line, 41);
    assert_int_equal(l->proxy_protocol, GW_PROXY_NONE);
    assert_string_equal(l->headers.client_cert, "Client-Cert");
    assert_string_equal(l->headers.client_cert_chain, "Client-Cert-Chain");
    assert_string_equal(l->headers.subject, "X-Subject");
    assert_string_equal(l->headers.issuer, "X-Client-Cert-Issuer");
    assert_null(l->headers.serial);
    assert_null(l->headers.forwarded_for);
    assert_string_equal(l->headers.forwarded_proto, "X-Forwarded-Proto");
    assert_int_equal(l->nstrip_headers, 2);
    assert_string_equal(l->strip_headers[0], "X-Internal-User");
    assert_string_equal(l->strip_headers[1], "x-debug-auth");
    assert_int_equal(l->backend_timeout_ms, 120000);
    assert_int_equal(l->max_header_bytes, 1024);
    assert_int_equal(l->max_headers, 1000);
    assert_int_equal(l->backends[0].weight, 1);
    assert_int_equal(l->backends[1].weight, 1);

    l = &cfg->listeners[2];
    assert_string_equal(l->name, "relay");
    assert_int_equal(l->type, GW_LISTENER_TCP);
    assert_int_equal(l->nbackends, 3);
    assert_string_equal(l->backends[0].addr.text, "127.0.0.1:7001");
    assert_int_equal(l->backends[0].weight, 1);
    assert_int_equal(l->backends[0].line, 62);
    assert_string_equal(l->backends[1].addr.text, "127.0.0.1:7002");
    assert_int_equal(l->backends[1].weight, 3);
    assert_int_equal(l->backends[1].line, 63);
    assert_string_equal(l->backends[2].addr.text, "[::1]:7003");
    assert_int_equal(l->backends[2].addr.ss.ss_family, AF_INET6);
    assert_int_equal(l->backends[2].weight, 256);
    assert_int_equal(l->backends[2].line, 64);
    assert_int_equal(l->balance, GW_BALANCE_ROUND_ROBIN);
    assert_int_equal(l->health.type, GW_HEALTH_TCP);
    assert_null(l->health.path);
    assert_int_equal(l->health.interval_ms, 5000);
    assert_int_equal(l->health.timeout_ms, 2000);
    assert_int_equal(l->health.rise, 2);
    assert_int_equal(l->health.fall, 3);
    assert_int_equal(l->health.line, 66);
    assert_int_equal(l->proxy_protocol, GW_PROXY_V2);
    assert_int_equal(l->proxy_protocol_cert, 1);
    assert_null(l->headers.client_cert);
    assert_null(l->strip_headers);
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
    assert_int_equal(l->backends[0].weight, 1);
    assert_int_equal(l->balance, GW_BALANCE_ROUND_ROBIN);
    assert_int_equal(l->health.type, GW_HEALTH_NONE);
    assert_null(l->health.path);
    assert_int_equal(l->health.interval_ms, 5000);
    assert_int_equal(l->health.timeout_ms, 2000);
    assert_int_equal(l->health.rise, 2);
    assert_int_equal(l->health.fall, 3);
    assert_int_equal(l->health.line, 2);
    assert_int_equal(l->proxy_protocol, GW_PROXY_NONE);
    assert_int_equal(l->proxy_protocol_cert, 0);
    /* A tcp listener forwards no headers: every name is NULL. */
    assert_null(l->headers.client_cert);
    assert_null(l->headers.client_cert_chain);
    assert_null(l->headers.subject);
    assert_null(l->headers.issuer);
    assert_null(l->headers.serial);
    assert_null(l->headers.fingerprint);
    assert_null(l->headers.not_after);
    assert_null(l->headers.verify);
    assert_null(l->headers.forwarded_for);
    assert_null(l->headers.forwarded_proto);
    assert_null(l->strip_headers);
    assert_int_equal(l->nstrip_headers, 0);
    assert_int_equal(l->backend_timeout_ms, 60000);
    assert_int_equal(l->max_header_bytes, 16384);
    assert_int_equal(l->max_headers, 100);
    gw_config_free(cfg);
}

static void test_https_defaults(void **state)
{
    struct gw_config *cfg = parse_ok(H_HEAD);
    const struct gw_listener_cfg *l = &cfg->listeners[0];
    (void)state;

    assert_int_equal(l->type, GW_LISTENER_HTTPS);
    assert_string_equal(l->headers.client_cert, "Client-Cert");
    assert_null(l->headers.client_cert_chain);
    assert_string_equal(l->headers.subject, "X-Client-Cert-Subject");
    assert_string_equal(l->headers.issuer, "X-Client-Cert-Issuer");
    assert_string_equal(l->headers.serial, "X-Client-Cert-Serial");
    assert_string_equal(l->headers.fingerprint, "X-Client-Cert-Fingerprint-SHA256");
    assert_string_equal(l->headers.not_after, "X-Client-Cert-Not-After");
    assert_string_equal(l->headers.verify, "X-Client-Verify");
    assert_string_equal(l->headers.forwarded_for, "X-Forwarded-For");
    assert_string_equal(l->headers.forwarded_proto, "X-Forwarded-Proto");
    assert_null(l->strip_headers);
    assert_int_equal(l->nstrip_headers, 0);
    assert_int_equal(l->backend_timeout_ms, 60000);
    assert_int_equal(l->max_header_bytes, 16384);
    assert_int_equal(l->max_headers, 100);
    assert_int_equal(l->proxy_protocol, GW_PROXY_NONE);
    assert_int_equal(l->health.type, GW_HEALTH_NONE);
    gw_config_free(cfg);

    /* An empty mapping keeps the defaults; an empty list strips nothing extra. */
    cfg = parse_ok(H_HEAD "    identity_headers: {}\n    strip_headers: []\n");
    l = &cfg->listeners[0];
    assert_string_equal(l->headers.verify, "X-Client-Verify");
    assert_null(l->headers.client_cert_chain);
    assert_null(l->strip_headers);
    assert_int_equal(l->nstrip_headers, 0);
    gw_config_free(cfg);
}

static void test_backends_weighted(void **state)
{
    struct gw_config *cfg;
    const struct gw_listener_cfg *l;
    (void)state;

    cfg = parse_ok("listeners:\n"
                   "  - name: a\n"
                   "    bind: '*:1'\n"
                   "    certificate: /c\n"
                   "    key: /k\n"
                   "    balance: round-robin\n"
                   "    backends:\n"
                   "      - { weight: 1, address: localhost:7001 }\n"   /* 8 */
                   "      - {address: \"[::1]:7002\"}\n"                /* 9 */
                   "      - address: 10.0.0.1:7003\n"                   /* 10 */
                   "        weight: 100\n");
    l = &cfg->listeners[0];
    assert_int_equal(l->nbackends, 3);
    assert_int_equal(l->balance, GW_BALANCE_ROUND_ROBIN);
    assert_string_equal(l->backends[0].addr.text, "127.0.0.1:7001");
    assert_int_equal(l->backends[0].weight, 1);
    assert_int_equal(l->backends[0].line, 8);
    assert_string_equal(l->backends[1].addr.text, "[::1]:7002");
    assert_int_equal(l->backends[1].weight, 1);
    assert_int_equal(l->backends[1].line, 9);
    assert_string_equal(l->backends[2].addr.text, "10.0.0.1:7003");
    assert_int_equal(l->backends[2].weight, 100);
    assert_int_equal(l->backends[2].line, 10);
    gw_config_free(cfg);
}

static void test_health_check(void **state)
{
    struct gw_config *cfg;
    const struct gw_health_cfg *h;
    (void)state;

    /* http without a path checks "/". */
    cfg = parse_ok(L_HEAD "    health_check: { type: http }\n");
    h = &cfg->listeners[0].health;
    assert_int_equal(h->type, GW_HEALTH_HTTP);
    assert_string_equal(h->path, "/");
    assert_int_equal(h->interval_ms, 5000);
    assert_int_equal(h->timeout_ms, 2000);
    assert_int_equal(h->rise, 2);
    assert_int_equal(h->fall, 3);
    assert_int_equal(h->line, 7);
    gw_config_free(cfg);

    cfg = parse_ok(H_HEAD "    health_check:\n"
                          "      type: http\n"
                          "      path: \"/status/%7Eall?x=1&y=%20\"\n"
                          "      interval: 1h\n"
                          "      timeout: 59m\n"
                          "      rise: 100\n"
                          "      fall: 1\n");
    h = &cfg->listeners[0].health;
    assert_int_equal(h->type, GW_HEALTH_HTTP);
    assert_string_equal(h->path, "/status/%7Eall?x=1&y=%20");
    assert_int_equal(h->interval_ms, 3600000);
    assert_int_equal(h->timeout_ms, 59 * 60000);
    assert_int_equal(h->rise, 100);
    assert_int_equal(h->fall, 1);
    assert_int_equal(h->line, 8);
    gw_config_free(cfg);

    /* A shorter interval is fine as long as the timeout is shorter still. */
    cfg = parse_ok(L_HEAD "    health_check: { type: tcp, interval: 500ms, timeout: 499ms }\n");
    h = &cfg->listeners[0].health;
    assert_int_equal(h->type, GW_HEALTH_TCP);
    assert_null(h->path);
    assert_int_equal(h->interval_ms, 500);
    assert_int_equal(h->timeout_ms, 499);
    gw_config_free(cfg);
}

static void test_proxy_protocol(void **state)
{
    struct gw_config *cfg;
    (void)state;

    cfg = parse_ok(L_HEAD "    proxy_protocol: v2\n");
    assert_int_equal(cfg->listeners[0].proxy_protocol, GW_PROXY_V2);
    assert_int_equal(cfg->listeners[0].proxy_protocol_cert, 0);
    gw_config_free(cfg);

    cfg = parse_ok(L_HEAD "    proxy_protocol_cert: True\n    proxy_protocol: v2\n");
    assert_int_equal(cfg->listeners[0].proxy_protocol, GW_PROXY_V2);
    assert_int_equal(cfg->listeners[0].proxy_protocol_cert, 1);
    gw_config_free(cfg);

    /* Turning the certificate off needs no header. */
    cfg = parse_ok(L_HEAD "    proxy_protocol: none\n    proxy_protocol_cert: false\n");
    assert_int_equal(cfg->listeners[0].proxy_protocol, GW_PROXY_NONE);
    assert_int_equal(cfg->listeners[0].proxy_protocol_cert, 0);
    gw_config_free(cfg);
}

static void test_http_settings(void **state)
{
    struct gw_config *cfg;
    const struct gw_listener_cfg *l;
    (void)state;

    cfg = parse_ok(H_HEAD "    identity_headers:\n"
                          "      client_cert: X-SSL-Client-Cert\n"
                          "      client_cert_chain: \"!#$%&'*+-.^_`|~09az\"\n"
                          "      subject: off\n"
                          "      issuer: FALSE\n"
                          "      serial: serial\n"
                          "      fingerprint: X-Fp\n"
                          "      not_after: X-Na\n"
                          "      verify: \"off\"\n"
                          "      forwarded_for: X-Real-IP\n"
                          "      forwarded_proto: X-Proto\n"
                          "    strip_headers:\n"
                          "      - X-Internal-User\n"
                          "      - Authorization\n"
                          "    backend_timeout: 250ms\n"
                          "    max_header_bytes: 1048576\n"
                          "    max_headers: 1\n");
    l = &cfg->listeners[0];
    assert_string_equal(l->headers.client_cert, "X-SSL-Client-Cert");
    assert_string_equal(l->headers.client_cert_chain, "!#$%&'*+-.^_`|~09az");
    assert_null(l->headers.subject);
    assert_null(l->headers.issuer);
    assert_string_equal(l->headers.serial, "serial");
    assert_string_equal(l->headers.fingerprint, "X-Fp");
    assert_string_equal(l->headers.not_after, "X-Na");
    assert_null(l->headers.verify);
    assert_string_equal(l->headers.forwarded_for, "X-Real-IP");
    assert_string_equal(l->headers.forwarded_proto, "X-Proto");
    assert_int_equal(l->nstrip_headers, 2);
    assert_string_equal(l->strip_headers[0], "X-Internal-User");
    assert_string_equal(l->strip_headers[1], "Authorization");
    assert_int_equal(l->backend_timeout_ms, 250);
    assert_int_equal(l->max_header_bytes, 1048576);
    assert_int_equal(l->max_headers, 1);
    gw_config_free(cfg);

    /* Everything off, and swapping two default names is no clash. 64 characters is the limit. */
    cfg = parse_ok(H_HEAD "    identity_headers: { client_cert: off, subject: off, issuer: off, serial: off,"
                          " fingerprint: off, not_after: off, verify: X-Forwarded-Proto,"
                          " forwarded_for: off, forwarded_proto: X-Client-Verify }\n"
                          "    max_header_bytes: 1024\n    max_headers: 1000\n"
                          "    strip_headers: [a123456789b123456789c123456789d123456789e123456789f123456789g123]\n");
    l = &cfg->listeners[0];
    assert_null(l->headers.client_cert);
    assert_null(l->headers.forwarded_for);
    assert_string_equal(l->headers.verify, "X-Forwarded-Proto");
    assert_string_equal(l->headers.forwarded_proto, "X-Client-Verify");
    assert_int_equal(l->max_header_bytes, 1024);
    assert_int_equal(l->max_headers, 1000);
    assert_int_equal(strlen(l->strip_headers[0]), 64);
    gw_config_free(cfg);

    /* Every header off: every name NULL (the data plane sends none). */
    cfg = parse_ok(H_HEAD "    identity_headers:\n"
                          "      client_cert: off\n      client_cert_chain: off\n      subject: off\n"
                          "      issuer: off\n      serial: off\n      fingerprint: off\n"
                          "      not_after: off\n      verify: off\n      forwarded_for: off\n"
                          "      forwarded_proto: false\n");
    l = &cfg->listeners[0];
    assert_null(l->headers.client_cert);
    assert_null(l->headers.client_cert_chain);
    assert_null(l->headers.subject);
    assert_null(l->headers.issuer);
    assert_null(l->headers.serial);
    assert_null(l->headers.fingerprint);
    assert_null(l->headers.not_after);
    assert_null(l->headers.verify);
    assert_null(l->headers.forwarded_for);
    assert_null(l->headers.forwarded_proto);
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

/* The process settings (config_process.c): log destination and privileges. */
static void test_process_settings(void **state)
{
    struct gw_config *cfg;
    (void)state;

    cfg = parse_ok(L_HEAD);
    assert_int_equal(cfg->log_syslog, 0);
    assert_int_equal(cfg->log_facility, LOG_DAEMON);
    assert_null(cfg->user);
    assert_null(cfg->group);
    assert_int_equal(cfg->allow_root, 0);
    gw_config_free(cfg);

    cfg = parse_ok("log: { to: syslog, facility: local3 }\nuser: hsmgate\ngroup: \"998\"\nallow_root: false\n" L_HEAD);
    assert_int_equal(cfg->log_syslog, 1);
    assert_int_equal(cfg->log_facility, LOG_LOCAL3);
    assert_string_equal(cfg->user, "hsmgate");
    assert_int_equal(cfg->user_line, 2);
    assert_string_equal(cfg->group, "998");
    assert_int_equal(cfg->group_line, 3);
    gw_config_free(cfg);

    cfg = parse_ok("log: { to: stderr }\nallow_root: true\n" L_HEAD);
    assert_int_equal(cfg->log_syslog, 0);
    assert_int_equal(cfg->allow_root, 1);
    gw_config_free(cfg);

    expect_err("log: { to: journal }\n" L_HEAD, 1, "log: to must be stderr or syslog, not \"journal\"");
    expect_err("log: { facility: local0 }\n" L_HEAD, 1, "log: facility needs to: syslog");
    expect_err("log: { to: syslog, facility: kern }\n" L_HEAD, 1, "log: facility must be daemon, local0,");
    expect_err("user: \"-rf\"\n" L_HEAD, 1, "user must be a user name");
    expect_err("user: \"a b\"\n" L_HEAD, 1, "user must be a user name");
    expect_err("user: [a]\n" L_HEAD, 1, "user must be a string, not a sequence");
    expect_err("user:\n" L_HEAD, 1, "user has no value");
    expect_err("group: adm\n" L_HEAD, 1, "group needs user:");
    expect_err("user: a\ngroup: \"x/y\"\n" L_HEAD, 2, "group must be a group name");
    expect_err("allow_root: yes\n" L_HEAD, 1, "allow_root must be true or false");
    expect_err("allow_root: \"true\"\n" L_HEAD, 1, "allow_root must be true or false");
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

/* Per-address limits (top level): defaults, values, ranges. */
static void test_per_address_limits(void **state)
{
    struct gw_config *cfg;
    (void)state;

    cfg = parse_ok(L_HEAD);
    assert_int_equal(cfg->max_connections_per_address, 0);     /* off by default: NAT'd clients */
    assert_int_equal(cfg->max_handshakes_per_address, 256);
    assert_int_equal(cfg->max_handshake_rate_per_address, 0);
    gw_config_free(cfg);
    cfg = parse_ok("max_connections_per_address: 100\nmax_handshakes_per_address: 0\n" L_HEAD);
    assert_int_equal(cfg->max_connections_per_address, 100);
    assert_int_equal(cfg->max_handshakes_per_address, 0);
    gw_config_free(cfg);
    cfg = parse_ok("max_handshake_rate_per_address: 20\n" L_HEAD);
    assert_int_equal(cfg->max_handshake_rate_per_address, 20);
    gw_config_free(cfg);
    expect_err("max_handshakes_per_address: -1\n" L_HEAD, 1, "max_handshakes_per_address");
    expect_err("max_handshake_rate_per_address: 2000000\n" L_HEAD, 1, "max_handshake_rate_per_address");
    expect_err("max_connections_per_address: lots\n" L_HEAD, 1, "max_connections_per_address");
}

static void test_err_unknown_keys(void **state)
{
    (void)state;
    expect_err("workers: 1\nworker: 2\n" L_HEAD, 2,
               "unknown key \"worker\" (valid: hsm, log, workers, max_connections, max_connections_per_address, "
               "max_handshakes_per_address, max_handshake_rate_per_address, drain_timeout, pid_file, user, group, allow_root, "
               "policy_store, policies, "
               "admin, listeners)");
    expect_err(L_HEAD "    authh: two-way\n", 7, "listener \"payments\": unknown key \"authh\" (valid: name, type, bind, auth,");
    expect_err("hsm:\n  module: /m.so\n  slot: 3\n" L_HEAD, 3, "hsm: unknown key \"slot\" (valid: module, pin)");
    expect_err("log: { level: info, format: json }\n" L_HEAD, 1, "log: unknown key \"format\" (valid: level, access_log, to, facility)");
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
    expect_err("log: [info]\n" L_HEAD, 1, "log must be a mapping (level, access_log, to, facility), not a sequence");
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
               3, "listener \"payments\": backend must be \"host:port\" or a mapping (address, weight), not a sequence");
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
    expect_err(L_HEAD "    auth: two-way\n", 7, "listener \"payments\": client_ca (or a policy) is required when auth is two-way");
    expect_err(L_HEAD "    auth: optional\n", 7, "listener \"payments\": client_ca (or a policy) is required when auth is optional");
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

/* ---- negative: the forwarding settings (backends, balance, health_check, proxy_protocol, http) ---- */

static void test_err_backends_weighted(void **state)
{
    (void)state;
    expect_err("listeners:\n  - name: a\n    backends:\n      - 127.0.0.1:1\n      - { weight: 2 }\n", 5,
               "listener \"a\": backend #2: address is required");
    expect_err("listeners:\n  - name: a\n    backends:\n      - weight: 2\n        port: 1\n", 5,
               "listener \"a\": backend #1: unknown key \"port\" (valid: address, weight)");
    expect_err("listeners:\n  - name: a\n    backends: [{ address: 127.0.0.1:1, weight: 0 }]\n", 3,
               "listener \"a\": backend #1: weight must be a number from 1 to 256, not \"0\"");
    expect_err("listeners:\n  - name: a\n    backends:\n      - address: 127.0.0.1:1\n        weight: 257\n", 5,
               "backend #1: weight must be a number from 1 to 256, not \"257\"");
    expect_err("listeners:\n  - name: a\n    backends:\n      - address: 127.0.0.1:1\n        weight: -1\n", 5,
               "backend #1: weight must be a number from 1 to 256, not \"-1\"");
    expect_err("listeners:\n  - name: a\n    backends: [{ address: 127.0.0.1:1, weight: [1] }]\n", 3,
               "backend #1: weight must be a string, not a sequence");
    expect_err("listeners:\n  - name: a\n    backends:\n      - { address: 127.0.0.1:1, address: 127.0.0.1:2 }\n", 4,
               "backend #1: duplicate key \"address\" (first at line 4)");
    expect_err("listeners:\n  - name: a\n    backends:\n      - address: example.com:80\n", 4,
               "listener \"a\": backend \"example.com:80\": not a numeric IPv4 address");
    expect_err("listeners:\n  - name: a\n    backends:\n      - address: \"*:80\"\n", 4,
               "listener \"a\": backend \"*:80\": the wildcard address cannot be connected to");
    expect_err("listeners:\n  - name: a\n    backends:\n      - address: [127.0.0.1:80]\n", 4,
               "listener \"a\": backend must be a string, not a sequence");
}

static void test_err_balance(void **state)
{
    (void)state;
    expect_err(L_HEAD "    balance: random\n", 7,
               "listener \"payments\": balance must be round-robin or least-connections, not \"random\"");
    expect_err(L_HEAD "    balance: [round-robin]\n", 7, "listener \"payments\": balance must be a string, not a sequence");
    expect_err(L_HEAD "    balance:\n", 7, "listener \"payments\": balance has no value");
    expect_err(L_HEAD "    balance: Round-Robin\n", 7, "balance must be round-robin or least-connections");
}

static void test_err_health_check(void **state)
{
    (void)state;
    expect_err(L_HEAD "    health_check: http\n", 7,
               "listener \"payments\": health_check must be a mapping (type, path, interval, timeout, rise, fall), not a scalar");
    expect_err(L_HEAD "    health_check: { path: / }\n", 7, "listener \"payments\": health_check: type is required (tcp or http)");
    expect_err(L_HEAD "    health_check:\n      interval: 5s\n", 7, "health_check: type is required");
    expect_err(L_HEAD "    health_check: { type: icmp }\n", 7,
               "listener \"payments\": health_check: type must be tcp or http, not \"icmp\"");
    expect_err(L_HEAD "    health_check:\n      type: http\n      method: HEAD\n", 9,
               "health_check: unknown key \"method\" (valid: type, path, interval, timeout, rise, fall)");
    expect_err(L_HEAD "    health_check:\n      type: http\n      type: tcp\n", 9,
               "health_check: duplicate key \"type\" (first at line 8)");
    /* path */
    expect_err(L_HEAD "    health_check:\n      type: tcp\n      path: /healthz\n", 9,
               "listener \"payments\": health_check: path is only for type http");
    expect_err(L_HEAD "    health_check:\n      type: http\n      path: healthz\n", 9,
               "listener \"payments\": health_check: path must start with \"/\", not \"healthz\"");
    expect_err(L_HEAD "    health_check:\n      type: http\n      path: /a b\n", 9,
               "health_check: path must not contain spaces or non-ASCII characters (percent-encode them), not \"/a b\"");
    expect_err(L_HEAD "    health_check:\n      type: http\n      path: /caf\xc3\xa9\n", 9,
               "health_check: path must not contain spaces or non-ASCII characters");
    expect_err(L_HEAD "    health_check:\n      type: http\n      path: \"/a\\tb\"\n", 9,
               "health_check: path must not contain control characters: \"/a\\x09b\"");
    expect_err(L_HEAD "    health_check:\n      type: http\n      path: \"\"\n", 9, "health_check: path must not be empty");
    expect_err(L_HEAD "    health_check:\n      type: http\n      path: [/]\n", 9,
               "health_check: path must be a string, not a sequence");
    {
        char yaml[2048];
        int o = snprintf(yaml, sizeof(yaml), "%s", L_HEAD "    health_check:\n      type: http\n      path: /");
        for (int i = 0; i < 1024; i++)
            yaml[o++] = 'a';
        snprintf(yaml + o, sizeof(yaml) - (size_t)o, "\n");
        expect_err(yaml, 9, "health_check: path must be at most 1024 characters, not 1025");
    }
    /* durations and counts */
    expect_err(L_HEAD "    health_check:\n      type: tcp\n      timeout: 5s\n", 9,
               "listener \"payments\": health_check: timeout 5s must be shorter than interval 5s");
    expect_err(L_HEAD "    health_check:\n      type: tcp\n      interval: 1s\n", 9,
               "health_check: timeout 2s must be shorter than interval 1s");
    expect_err(L_HEAD "    health_check:\n      type: tcp\n      interval: 1s\n      timeout: 1500ms\n", 10,
               "health_check: timeout 1500ms must be shorter than interval 1s");
    expect_err(L_HEAD "    health_check:\n      type: tcp\n      interval: 0s\n", 9,
               "health_check: interval must be more than 0 and less than a day, not \"0s\"");
    expect_err(L_HEAD "    health_check:\n      type: tcp\n      timeout: soon\n", 9,
               "health_check: timeout must be a duration such as 250ms, 10s, 5m or 1h, not \"soon\"");
    expect_err(L_HEAD "    health_check:\n      type: tcp\n      rise: 0\n", 9,
               "listener \"payments\": health_check: rise must be a number from 1 to 100, not \"0\"");
    expect_err(L_HEAD "    health_check:\n      type: tcp\n      fall: 101\n", 9,
               "health_check: fall must be a number from 1 to 100, not \"101\"");
    expect_err(L_HEAD "    health_check:\n      type: tcp\n      fall: {}\n", 9,
               "health_check: fall must be a string, not a mapping");
}

static void test_err_typed_keys(void **state)
{
    (void)state;
    /* https-only settings on a tcp listener (the default type, or written out). */
    expect_err(L_HEAD "    identity_headers: {}\n", 7,
               "listener \"payments\": identity_headers is only for https listeners, and this one is tcp");
    expect_err(L_HEAD "    strip_headers: [X-A]\n", 7, "listener \"payments\": strip_headers is only for https listeners");
    expect_err(L_HEAD "    backend_timeout: 10s\n", 7, "listener \"payments\": backend_timeout is only for https listeners");
    expect_err(L_HEAD "    max_header_bytes: 4096\n", 7, "listener \"payments\": max_header_bytes is only for https listeners");
    expect_err(L_HEAD "    type: tcp\n    max_headers: 10\n", 8, "listener \"payments\": max_headers is only for https listeners");
    /* tcp-only settings on an https listener, whatever their value. */
    expect_err(H_HEAD "    proxy_protocol: v2\n", 8,
               "listener \"payments\": proxy_protocol is only for tcp listeners, and this one is https");
    expect_err(H_HEAD "    proxy_protocol: none\n", 8, "listener \"payments\": proxy_protocol is only for tcp listeners");
    expect_err(H_HEAD "    proxy_protocol_cert: false\n", 8, "listener \"payments\": proxy_protocol_cert is only for tcp listeners");
    /* The type may come after the key: the key's line is named. */
    expect_err("listeners:\n  - name: a\n    proxy_protocol: v2\n    type: https\n", 3,
               "listener \"a\": proxy_protocol is only for tcp listeners");
}

static void test_err_proxy_protocol(void **state)
{
    (void)state;
    expect_err(L_HEAD "    proxy_protocol: v1\n", 7, "listener \"payments\": proxy_protocol must be v2 or none, not \"v1\"");
    expect_err(L_HEAD "    proxy_protocol: 2\n", 7, "proxy_protocol must be v2 or none, not \"2\"");
    expect_err(L_HEAD "    proxy_protocol_cert: true\n", 7,
               "listener \"payments\": proxy_protocol_cert needs proxy_protocol: v2");
    expect_err(L_HEAD "    proxy_protocol: none\n    proxy_protocol_cert: true\n", 8,
               "proxy_protocol_cert needs proxy_protocol: v2");
    expect_err(L_HEAD "    proxy_protocol: v2\n    proxy_protocol_cert: \"true\"\n", 8,
               "listener \"payments\": proxy_protocol_cert must be true or false, not \"true\"");
    expect_err(L_HEAD "    proxy_protocol: v2\n    proxy_protocol_cert: yes\n", 8,
               "proxy_protocol_cert must be true or false, not \"yes\"");
    expect_err(L_HEAD "    proxy_protocol: v2\n    proxy_protocol_cert: [true]\n", 8,
               "proxy_protocol_cert must be true or false, not a sequence");
    expect_err(L_HEAD "    proxy_protocol: v2\n    proxy_protocol_cert:\n", 8,
               "proxy_protocol_cert must be true or false, not \"\"");
}

static void test_err_identity_headers(void **state)
{
    (void)state;
    expect_err(H_HEAD "    identity_headers: [Client-Cert]\n", 8,
               "listener \"payments\": identity_headers must be a mapping of setting: header name, not a sequence");
    expect_err(H_HEAD "    identity_headers:\n      cert: X-Cert\n", 9,
               "listener \"payments\": identity_headers: unknown key \"cert\" (valid: client_cert, client_cert_chain,");
    expect_err(H_HEAD "    identity_headers:\n      subject: X-A\n      subject: X-B\n", 10,
               "identity_headers: duplicate key \"subject\" (first at line 9)");
    /* Not a token (RFC 9110 5.6.2). */
    expect_err(H_HEAD "    identity_headers:\n      subject: X Subject\n", 9,
               "listener \"payments\": identity_headers: subject must be a header name of 1 to 64 characters from "
               "A-Z, a-z, 0-9 and !#$%&'*+-.^_`|~ (RFC 9110 5.1), not \"X Subject\"");
    expect_err(H_HEAD "    identity_headers:\n      verify: \"X-Verify:\"\n", 9,
               "identity_headers: verify must be a header name");
    expect_err(H_HEAD "    identity_headers:\n      issuer: X-(Issuer)\n", 9, "identity_headers: issuer must be a header name");
    expect_err(H_HEAD "    identity_headers:\n      issuer: X-\xc3\xa9\n", 9, "identity_headers: issuer must be a header name");
    expect_err(H_HEAD "    identity_headers:\n      issuer: \"X-A\\r\\nX-B\"\n", 9,
               "identity_headers: issuer must not contain control characters");
    expect_err(H_HEAD "    identity_headers:\n      serial: \"\"\n", 9, "identity_headers: serial must not be empty");
    expect_err(H_HEAD "    identity_headers:\n      serial:\n", 9, "identity_headers: serial has no value");
    expect_err(H_HEAD "    identity_headers:\n      serial: { a: b }\n", 9,
               "identity_headers: serial must be a string, not a mapping");
    expect_err(H_HEAD "    identity_headers:\n      not_after: "
                      "a123456789b123456789c123456789d123456789e123456789f123456789g1234\n",
               9, "identity_headers: not_after must be a header name of 1 to 64 characters");
    /* Duplicates, case-insensitively: between two settings, or with a default. */
    expect_err(H_HEAD "    identity_headers:\n      subject: X-Name\n      issuer: x-name\n", 10,
               "listener \"payments\": identity_headers: subject and issuer both use the header \"x-name\"");
    expect_err(H_HEAD "    identity_headers:\n      client_cert_chain: client-cert\n", 9,
               "identity_headers: client_cert and client_cert_chain both use the header \"client-cert\" "
               "(one of them by default)");
    expect_err(H_HEAD "    identity_headers:\n      not_after: X_Client_Cert_Serial\n", 9,
               "identity_headers: serial and not_after both use the header \"X_Client_Cert_Serial\" "
               "(one of them by default)");
    expect_err(H_HEAD "    identity_headers:\n      subject: X-CLIENT-VERIFY\n", 9,
               "identity_headers: subject and verify both use the header \"X-CLIENT-VERIFY\" (one of them by default)");
}

static void test_err_http_settings(void **state)
{
    (void)state;
    expect_err(H_HEAD "    strip_headers: X-Debug\n", 8,
               "listener \"payments\": strip_headers must be a sequence of header names, not a scalar");
    expect_err(H_HEAD "    strip_headers: [[X-Debug]]\n", 8,
               "listener \"payments\": strip_headers: an item must be a header name, not a sequence");
    expect_err(H_HEAD "    strip_headers:\n      - X-A\n      - \"X B\"\n", 10,
               "listener \"payments\": strip_headers item must be a header name of 1 to 64 characters");
    expect_err(H_HEAD "    strip_headers: [X-A, \"\"]\n", 8, "strip_headers item must not be empty");
    expect_err(H_HEAD "    strip_headers:\n      - X-Debug\n      - x-debug\n", 10,
               "listener \"payments\": strip_headers: \"x-debug\" is listed twice");
    expect_err(H_HEAD "    strip_headers:\n      - content-length\n", 9,
               "listener \"payments\": strip_headers: \"content-length\" cannot be stripped");
    expect_err(H_HEAD "    strip_headers: [Host]\n", 8, "strip_headers: \"Host\" cannot be stripped");
    expect_err(H_HEAD "    strip_headers: [content_length]\n", 8, "strip_headers: \"content_length\" cannot be stripped");
    expect_err(H_HEAD "    strip_headers: [X-Debug-Auth, X_DEBUG_AUTH]\n", 8, "strip_headers: \"X_DEBUG_AUTH\" is listed twice");
    expect_err(H_HEAD "    strip_headers: [Transfer-Encoding]\n", 8, "strip_headers: \"Transfer-Encoding\" cannot be stripped");
    expect_err(H_HEAD "    backend_timeout: 0s\n", 8,
               "listener \"payments\": backend_timeout must be more than 0 and less than a day, not \"0s\"");
    expect_err(H_HEAD "    backend_timeout: 1 minute\n", 8, "backend_timeout must be a duration such as");
    expect_err(H_HEAD "    max_header_bytes: 1023\n", 8,
               "listener \"payments\": max_header_bytes must be a number from 1024 to 1048576, not \"1023\"");
    expect_err(H_HEAD "    max_header_bytes: 1048577\n", 8, "max_header_bytes must be a number from 1024 to 1048576, not \"1048577\"");
    expect_err(H_HEAD "    max_header_bytes: 16k\n", 8, "max_header_bytes must be a number from 1024 to 1048576, not \"16k\"");
    expect_err(H_HEAD "    max_headers: 0\n", 8, "listener \"payments\": max_headers must be a number from 1 to 1000, not \"0\"");
    expect_err(H_HEAD "    max_headers: 1001\n", 8, "max_headers must be a number from 1 to 1000, not \"1001\"");
    expect_err(H_HEAD "    max_headers: [1]\n", 8, "max_headers must be a string, not a sequence");
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

/* ---- policies: (gateway/config_policy.c) ---- */

/* Two policies, every key set in the first, and three listeners: two with a policy, one without. */
static const char policies_example[] =
    "policy_store: /var/lib/hsmgate/policy.db\n"                                              /* 1 */
    "policies:\n"                                                                             /* 2 */
    "  partners:\n"                                                                           /* 3 */
    "    client_ca: [partners-ca.pem, {file: /etc/other-ca.pem, crl: required},\n"            /* 4 */
    "                {file: third.pem, crl: optional}]\n"                                     /* 5 */
    "    require_allowlist: true\n"                                                           /* 6 */
    "    allowlist: partner-list.v2\n"                                                        /* 7 */
    "    revocation: soft-fail\n"                                                             /* 8 */
    "    stale_crl: 6h\n"                                                                     /* 9 */
    "    required_eku: [clientAuth, serverAuth, codeSigning, emailProtection, timeStamping, OCSPSigning]\n" /* 10 */
    "    max_chain_depth: 7\n"                                                                /* 11 */
    "  internal_2:\n"                                                                         /* 12 */
    "    client_ca:\n"                                                                        /* 13 */
    "      - file: internal-ca.pem\n"                                                         /* 14 */
    "        crl: required\n"                                                                 /* 15 */
    "    revocation: hard-fail\n"                                                             /* 16 */
    "    stale_crl: 2d\n"                                                                     /* 17 */
    "    required_eku: []\n"                                                                  /* 18 */
    "    max_chain_depth: 16\n"                                                               /* 19 */
    "listeners:\n"                                                                            /* 20 */
    "  - name: api\n"                                                                         /* 21 */
    "    bind: 0.0.0.0:9444\n"                                                                /* 22 */
    "    auth: two-way\n"                                                                     /* 23 */
    "    certificate: /etc/c.pem\n"                                                           /* 24 */
    "    key: \"pkcs11:token=t;object=k\"\n"                                                  /* 25 */
    "    backends: [127.0.0.1:7000]\n"                                                        /* 26 */
    "    policy: partners\n"                                                                  /* 27 */
    "  - name: internal\n"                                                                    /* 28 */
    "    bind: 0.0.0.0:9445\n"                                                                /* 29 */
    "    auth: optional\n"                                                                    /* 30 */
    "    certificate: /etc/c.pem\n"                                                           /* 31 */
    "    key: \"pkcs11:token=t;object=k\"\n"                                                  /* 32 */
    "    backends: [127.0.0.1:7001]\n"                                                        /* 33 */
    "    policy: internal_2\n"                                                                /* 34 */
    "  - name: legacy\n"                                                                      /* 35 */
    "    bind: 0.0.0.0:9446\n"                                                                /* 36 */
    "    auth: two-way\n"                                                                     /* 37 */
    "    certificate: /etc/c.pem\n"                                                           /* 38 */
    "    key: \"pkcs11:token=t;object=k\"\n"                                                  /* 39 */
    "    client_ca: /etc/legacy-ca.pem\n"                                                     /* 40 */
    "    verify_depth: 2\n"                                                                   /* 41 */
    "    backends: [127.0.0.1:7002]\n";                                                       /* 42 */

static void test_policies_full(void **state)
{
    struct gw_config *cfg = parse_ok(policies_example);
    const struct gw_policy_cfg *p;
    const struct gw_listener_cfg *l;
    (void)state;

    assert_string_equal(cfg->policy_store, "/var/lib/hsmgate/policy.db");
    assert_int_equal(cfg->policy_store_line, 1);
    assert_int_equal(cfg->npolicies, 2);

    p = &cfg->policies[0];
    assert_string_equal(p->name, "partners");
    assert_int_equal(p->line, 3);
    assert_int_equal(p->ncas, 3);
    assert_string_equal(p->cas[0].file, "/etc/hsmgate/partners-ca.pem");   /* relative to the file */
    assert_int_equal(p->cas[0].crl_required, 0);
    assert_int_equal(p->cas[0].line, 4);
    assert_string_equal(p->cas[1].file, "/etc/other-ca.pem");
    assert_int_equal(p->cas[1].crl_required, 1);
    assert_int_equal(p->cas[1].line, 4);
    assert_string_equal(p->cas[2].file, "/etc/hsmgate/third.pem");
    assert_int_equal(p->cas[2].crl_required, 0);
    assert_int_equal(p->cas[2].line, 5);
    assert_int_equal(p->require_allowlist, 1);
    assert_string_equal(p->allowlist, "partner-list.v2");
    assert_int_equal(p->soft_fail, 1);
    assert_int_equal(p->crl_grace_s, 6 * 3600);
    assert_int_equal(p->required_eku, POL_EKU_CLIENT_AUTH | POL_EKU_SERVER_AUTH | POL_EKU_CODE_SIGNING |
                                      POL_EKU_EMAIL | POL_EKU_TIME_STAMPING | POL_EKU_OCSP_SIGNING);
    assert_int_equal(p->max_chain_depth, 7);

    p = &cfg->policies[1];
    assert_string_equal(p->name, "internal_2");
    assert_int_equal(p->line, 12);
    assert_int_equal(p->ncas, 1);
    assert_string_equal(p->cas[0].file, "/etc/hsmgate/internal-ca.pem");
    assert_int_equal(p->cas[0].crl_required, 1);
    assert_int_equal(p->cas[0].line, 14);
    assert_int_equal(p->require_allowlist, 0);
    assert_string_equal(p->allowlist, "internal_2");
    assert_int_equal(p->soft_fail, 0);
    assert_int_equal(p->crl_grace_s, 2 * 86400);
    assert_int_equal(p->required_eku, 0);
    assert_int_equal(p->max_chain_depth, 16);

    /* A listener with a policy takes its chain depth from it. */
    l = &cfg->listeners[0];
    assert_string_equal(l->policy, "partners");
    assert_int_equal(l->policy_line, 27);
    assert_int_equal(l->policy_idx, 0);
    assert_null(l->client_ca);
    assert_int_equal(l->verify_depth, 7);
    l = &cfg->listeners[1];
    assert_string_equal(l->policy, "internal_2");
    assert_int_equal(l->policy_line, 34);
    assert_int_equal(l->policy_idx, 1);
    assert_int_equal(l->auth, GW_AUTH_OPTIONAL);
    assert_int_equal(l->verify_depth, 16);
    /* One without keeps its own client_ca and verify_depth. */
    l = &cfg->listeners[2];
    assert_null(l->policy);
    assert_int_equal(l->policy_idx, -1);
    assert_string_equal(l->client_ca, "/etc/legacy-ca.pem");
    assert_int_equal(l->verify_depth, 2);
    gw_config_free(cfg);
}

static void test_policies_defaults(void **state)
{
    static const struct {
        const char *text;
        unsigned s;
    } grace[] = { {"1s", 1}, {"90s", 90}, {"30m", 1800}, {"1d", 86400}, {"90d", 90u * 86400u}, {"3600", 3600},
                  {"1440h", 60u * 86400u}, {"2160h", 90u * 86400u} };
    struct gw_config *cfg;
    const struct gw_policy_cfg *p;
    (void)state;

    /* No policies: section at all. */
    cfg = parse_ok(L_HEAD);
    assert_null(cfg->policy_store);
    assert_int_equal(cfg->npolicies, 0);
    assert_null(cfg->policies);
    assert_null(cfg->listeners[0].policy);
    assert_int_equal(cfg->listeners[0].policy_idx, -1);
    gw_config_free(cfg);

    /* client_ca alone: hard-fail, fail-closed, clientAuth, depth 4, allowlist named after the policy
     * (and not required), no policy_store needed. A single file needs no list. */
    cfg = parse_ok("policies:\n  p:\n    client_ca: ca.pem\n" L_HEAD "    auth: two-way\n    policy: p\n");
    assert_null(cfg->policy_store);
    assert_int_equal(cfg->npolicies, 1);
    p = &cfg->policies[0];
    assert_string_equal(p->name, "p");
    assert_int_equal(p->line, 2);
    assert_int_equal(p->ncas, 1);
    assert_string_equal(p->cas[0].file, "/etc/hsmgate/ca.pem");
    assert_int_equal(p->cas[0].crl_required, 0);
    assert_int_equal(p->cas[0].line, 3);
    assert_int_equal(p->require_allowlist, 0);
    assert_string_equal(p->allowlist, "p");
    assert_int_equal(p->soft_fail, 0);
    assert_int_equal(p->crl_grace_s, 0);
    assert_int_equal(p->required_eku, POL_EKU_CLIENT_AUTH);
    assert_int_equal(p->max_chain_depth, 4);
    assert_int_equal(cfg->listeners[0].policy_idx, 0);
    assert_int_equal(cfg->listeners[0].verify_depth, 4);
    gw_config_free(cfg);

    /* The defaults spelt out, a single {file} mapping, require_allowlist without allowlist (the
     * policy's name), and a policy no listener uses. */
    cfg = parse_ok("policy_store: store.db\n"
                   "policies:\n"
                   "  p.1:\n"
                   "    client_ca: {file: ca.pem}\n"
                   "    require_allowlist: true\n"
                   "    revocation: hard-fail\n"
                   "    stale_crl: fail-closed\n"
                   "    required_eku: [clientAuth]\n"
                   "    max_chain_depth: 4\n"
                   "  unused:\n"
                   "    client_ca: [other.pem]\n"
                   "    require_allowlist: false\n" L_HEAD);
    assert_string_equal(cfg->policy_store, "/etc/hsmgate/store.db");
    p = &cfg->policies[0];
    assert_int_equal(p->ncas, 1);
    assert_string_equal(p->cas[0].file, "/etc/hsmgate/ca.pem");
    assert_int_equal(p->cas[0].line, 4);
    assert_int_equal(p->require_allowlist, 1);
    assert_string_equal(p->allowlist, "p.1");
    assert_int_equal(p->soft_fail, 0);
    assert_int_equal(p->crl_grace_s, 0);
    assert_int_equal(p->required_eku, POL_EKU_CLIENT_AUTH);
    assert_int_equal(p->max_chain_depth, 4);
    assert_int_equal(cfg->policies[1].require_allowlist, 0);
    assert_string_equal(cfg->policies[1].allowlist, "unused");
    gw_config_free(cfg);

    cfg = parse_ok("policies: {}\n" L_HEAD);
    assert_int_equal(cfg->npolicies, 0);
    gw_config_free(cfg);

    /* Grace periods: a second to 90 days. */
    for (size_t i = 0; i < sizeof(grace) / sizeof(grace[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), "policies:\n  p:\n    client_ca: ca.pem\n    stale_crl: \"%s\"\n" L_HEAD,
                 grace[i].text);
        cfg = parse_ok(yaml);
        assert_int_equal(cfg->policies[0].crl_grace_s, grace[i].s);
        gw_config_free(cfg);
    }
}

/* A valid policy on lines 1-3; negative tests add to it from line 4 (then L_HEAD follows). */
#define P_HEAD "policies:\n  p:\n    client_ca: ca.pem\n"

static void test_err_policies(void **state)
{
    static const char *const bad_grace[] = { "soon", "0d", "91d", "500ms", "0s", "-1d", "d", "1.5d", "fail-open", "2161h",
                                             "129601m", "99999999999999d" };
    (void)state;

    /* Unknown and duplicate keys, in a policy and in a client_ca item. */
    expect_err(P_HEAD "    client_cas: [x.pem]\n" L_HEAD, 4,
               "policy \"p\": unknown key \"client_cas\" (valid: client_ca, require_allowlist, allowlist, "
               "revocation, stale_crl, required_eku, max_chain_depth)");
    expect_err("policies:\n  p:\n    client_ca: [{file: a.pem, crl: required, ocsp: yes}]\n" L_HEAD, 3,
               "policy \"p\": unknown key \"ocsp\" (valid: file, crl)");
    expect_err(P_HEAD "    revocation: hard-fail\n    revocation: soft-fail\n" L_HEAD, 5,
               "policy \"p\": duplicate key \"revocation\" (first at line 4)");

    /* A listener naming a policy that is not there. */
    expect_err(P_HEAD L_HEAD "    auth: two-way\n    policy: partner\n", 11,
               "listener \"payments\": no policy named \"partner\" under policies");
    expect_err(L_HEAD "    auth: two-way\n    policy: p\n", 8, "listener \"payments\": no policy named \"p\" under policies");
    expect_err(P_HEAD L_HEAD "    auth: two-way\n    policy: [p]\n", 11,
               "listener \"payments\": policy must be a string, not a sequence");
    /* A policy on a one-way listener (said, or by default). */
    expect_err(P_HEAD L_HEAD "    auth: one-way\n    policy: p\n", 11,
               "listener \"payments\": a policy decides on client certificates, and auth one-way asks for none "
               "(use two-way or optional)");
    expect_err(P_HEAD L_HEAD "    policy: p\n", 10, "listener \"payments\": a policy decides on client certificates");
    /* client_ca and verify_depth come from the policy. */
    expect_err(P_HEAD L_HEAD "    auth: two-way\n    client_ca: /etc/ca.pem\n    policy: p\n", 11,
               "listener \"payments\": client_ca comes from policy \"p\" and cannot be set here too");
    expect_err(P_HEAD L_HEAD "    auth: two-way\n    policy: p\n    verify_depth: 5\n", 11,
               "listener \"payments\": verify_depth comes from policy \"p\" (max_chain_depth)");
    /* written, even with the default's value: it would be overridden without a word */
    expect_err(P_HEAD L_HEAD "    auth: two-way\n    policy: p\n    verify_depth: 4\n", 11,
               "listener \"payments\": verify_depth comes from policy \"p\" (max_chain_depth)");
    /* a policy name that is not a string is named by its kind (it used to be quoted as one: an over-read) */
    expect_err("policies:\n  ? [a, b]\n  : {client_ca: ca.pem}\n" L_HEAD, 2,
               "policies: a policy name is a string, not a sequence");

    /* stale_crl: fail-closed, or 1s to 90d. */
    for (size_t i = 0; i < sizeof(bad_grace) / sizeof(bad_grace[0]); i++) {
        char yaml[512], needle[200];
        snprintf(yaml, sizeof(yaml), P_HEAD "    stale_crl: \"%s\"\n" L_HEAD, bad_grace[i]);
        snprintf(needle, sizeof(needle), "policy \"p\": stale_crl must be fail-closed or a grace period from 1s to "
                 "90d (\"6h\", \"2d\"), not \"%s\"", bad_grace[i]);
        expect_err(yaml, 4, needle);
    }
    expect_err(P_HEAD "    stale_crl: [6h]\n" L_HEAD, 4, "policy \"p\": stale_crl must be a string, not a sequence");
    expect_err(P_HEAD "    revocation: none\n" L_HEAD, 4, "policy \"p\": revocation must be");

    /* required_eku: a list of known names (case matters: RFC 5280's spelling). */
    expect_err(P_HEAD "    required_eku: [clientAuth, anyExtendedKeyUsage]\n" L_HEAD, 4,
               "policy \"p\": required_eku: unknown usage \"anyExtendedKeyUsage\" (clientAuth, serverAuth, "
               "codeSigning, emailProtection, timeStamping, OCSPSigning)");
    expect_err(P_HEAD "    required_eku:\n      - clientAuth\n      - clientauth\n" L_HEAD, 6,
               "policy \"p\": required_eku: unknown usage \"clientauth\"");
    expect_err(P_HEAD "    required_eku: clientAuth\n" L_HEAD, 4,
               "policy \"p\": required_eku must be a list such as [clientAuth] ([] for none), not a scalar");

    /* What needs a policy_store. */
    expect_err(P_HEAD "    require_allowlist: true\n" L_HEAD, 2,
               "policy \"p\": require_allowlist needs a policy_store to hold the allowlist");
    expect_err("policies:\n  p:\n    client_ca:\n      - a.pem\n      - {file: b.pem, crl: required}\n" L_HEAD, 5,
               "policy \"p\": crl: required needs a policy_store to hold the CRLs");
    /* An allowlist that would never be consulted. */
    expect_err("policy_store: /s.db\n" P_HEAD "    allowlist: partners\n" L_HEAD, 5,
               "policy \"p\": allowlist is named but require_allowlist is not true: it would not be consulted");
    expect_err("policy_store: /s.db\n" P_HEAD "    allowlist: partners\n    require_allowlist: false\n" L_HEAD, 5,
               "policy \"p\": allowlist is named but require_allowlist is not true");
    expect_err("policy_store: /s.db\n" P_HEAD "    require_allowlist: true\n    allowlist: \"bad name\"\n" L_HEAD, 6,
               "policy \"p\": allowlist: a list name is 1 to 64 characters");
    expect_err(P_HEAD "    require_allowlist: yes please\n" L_HEAD, 4, "policy \"p\": require_allowlist must be true or false");

    /* Names, duplicates, shapes. */
    expect_err(P_HEAD "  p:\n    client_ca: other.pem\n" L_HEAD, 4, "duplicate policy name \"p\" (first at line 2)");
    expect_err("policies:\n  \"a b\":\n    client_ca: ca.pem\n" L_HEAD, 2,
               "policies: a policy name is 1 to 64 characters from A-Z, a-z, 0-9, '_', '.', '-', not \"a b\"");
    expect_err("policies:\n  p: ca.pem\n" L_HEAD, 2, "policy \"p\": must be a mapping, not a scalar");
    expect_err("policies: [p]\n" L_HEAD, 1, "policies must be a mapping of policy names to policies, not a sequence");
    expect_err("policies:\n  p:\n    revocation: soft-fail\n" L_HEAD, 2,
               "policy \"p\": client_ca is required (the CAs whose client certificates it admits)");

    /* client_ca: at least one file, each a name or {file, crl}. */
    expect_err("policies:\n  p:\n    client_ca: []\n" L_HEAD, 3, "policy \"p\": client_ca must name at least one CA file");
    expect_err("policies:\n  p:\n    client_ca: [{crl: required}]\n" L_HEAD, 3, "policy \"p\": client_ca: file is required");
    expect_err("policies:\n  p:\n    client_ca: [[a.pem]]\n" L_HEAD, 3,
               "policy \"p\": client_ca items are file names or {file, crl}, not a sequence");
    expect_err("policies:\n  p:\n    client_ca: [{file: a.pem, crl: maybe}]\n" L_HEAD, 3, "policy \"p\": crl must be");

    /* max_chain_depth: 1 to 16. */
    expect_err(P_HEAD "    max_chain_depth: 0\n" L_HEAD, 4,
               "policy \"p\": max_chain_depth must be a number from 1 to 16, not \"0\"");
    expect_err(P_HEAD "    max_chain_depth: 17\n" L_HEAD, 4,
               "policy \"p\": max_chain_depth must be a number from 1 to 16, not \"17\"");
}

/* admin: tls: becomes the https listener "admin-tls" in front of the API's private socket. */
static void test_admin_tls(void **state)
{
    struct gw_config *cfg;
    (void)state;

    cfg = parse_ok("admin:\n"
                   "  bind: off\n"
                   "  tls:\n"
                   "    bind: 127.0.0.1:9441\n"
                   "    certificate: a.pem\n"
                   "    key: \"pkcs11:object=a\"\n"
                   "    client_ca: admins.pem\n"
                   "    min_tls: \"1.3\"\n" L_HEAD);
    assert_true(cfg->admin.enabled && cfg->admin.tls && !cfg->admin.tcp);
    assert_int_equal(cfg->nlisteners, 2);
    const struct gw_listener_cfg *l = &cfg->listeners[1];
    assert_string_equal(l->name, "admin-tls");
    assert_true(l->admin_front);
    assert_false(cfg->listeners[0].admin_front);
    assert_int_equal(l->type, GW_LISTENER_HTTPS);
    assert_int_equal(l->auth, GW_AUTH_TWO_WAY);
    assert_int_equal(l->min_tls, GW_TLS_1_3);
    assert_string_equal(l->bind.text, "127.0.0.1:9441");
    assert_string_equal(l->client_ca, "/etc/hsmgate/admins.pem");
    assert_int_equal(l->nbackends, 1);
    assert_int_equal(l->backends[0].addr.ss.ss_family, AF_UNIX);
    assert_string_equal(l->headers.fingerprint, "X-Client-Cert-Fingerprint-SHA256");
    assert_int_equal(l->line, 3);
    gw_config_free(cfg);

    expect_err("admin:\n  tls:\n    bind: 127.0.0.1:9441\n    certificate: a.pem\n    key: k.pem\n"
               "    client_ca: c.pem\n    balance: least-connections\n" L_HEAD, 7,
               "admin: tls: balance is not a setting of the admin API's TLS front");
    expect_err("admin:\n  tls:\n    bind: 127.0.0.1:9441\n    certificate: a.pem\n    key: k.pem\n" L_HEAD, 2,
               "admin: tls: client_ca (or policy) is required");
    expect_err("admin:\n  tls:\n    bind: 127.0.0.1:9441\n    certificate: a.pem\n    key: k.pem\n"
               "    client_ca: c.pem\n    colour: blue\n" L_HEAD, 7, "admin: tls: unknown key \"colour\"");
    expect_err("admin:\n  tls: yes\n" L_HEAD, 2, "admin: tls must be a mapping");
    expect_err("admin:\n  bind: off\n" L_HEAD, 1, "the API would listen nowhere");
}

/* admin: the certificate authority's keys (config_admin.c). */
static void test_admin_ca(void **state)
{
    struct gw_config *cfg;
    (void)state;

    cfg = parse_ok("admin: { tokens_file: t }\n" L_HEAD);
    assert_null(cfg->admin.ca_certificate);
    assert_null(cfg->admin.ca_key);
    assert_int_equal(cfg->admin.client_validity_days, 365);
    assert_int_equal(cfg->admin.crl_validity_s, 7 * 86400);
    gw_config_free(cfg);

    cfg = parse_ok("admin:\n"
                   "  ca_certificate: pki/root.pem\n"
                   "  ca_key: \"pkcs11:token=hsmgate;object=root\"\n"
                   "  client_validity: 825d\n"
                   "  crl_validity: 12h\n" L_HEAD);
    assert_string_equal(cfg->admin.ca_certificate, "/etc/hsmgate/pki/root.pem");
    assert_string_equal(cfg->admin.ca_key, "pkcs11:token=hsmgate;object=root");
    assert_int_equal(cfg->admin.ca_key_line, 3);
    assert_int_equal(cfg->admin.client_validity_days, 825);
    assert_int_equal(cfg->admin.crl_validity_s, 12 * 3600);
    gw_config_free(cfg);

    cfg = parse_ok("admin: { ca_certificate: /r.pem, ca_key: \"PKCS11:object=r\", client_validity: 30, "
                   "crl_validity: 3600 }\n" L_HEAD);
    assert_int_equal(cfg->admin.client_validity_days, 30);     /* a bare number of days */
    assert_int_equal(cfg->admin.crl_validity_s, 3600);         /* a bare number of seconds */
    gw_config_free(cfg);

    /* crl_url: an http:// URL, for a CA only. */
    cfg = parse_ok("admin: { ca_certificate: /r.pem, ca_key: \"pkcs11:object=r\", "
                   "crl_url: \"http://gw.example:9440/crl\" }\n" L_HEAD);
    assert_string_equal(cfg->admin.crl_url, "http://gw.example:9440/crl");
    gw_config_free(cfg);
    static const char *const bad_url[] = { "https://gw.example/crl", "ldap://x/", "http://", "http://a b/crl",
                                           "gw.example/crl" };
    for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), "admin:\n  ca_certificate: /r.pem\n  ca_key: \"pkcs11:object=r\"\n"
                 "  crl_url: \"%s\"\n" L_HEAD, bad_url[i]);
        expect_err(yaml, 4, "admin: crl_url must be an http:// URL");
    }
    expect_err("admin:\n  crl_url: http://gw/crl\n" L_HEAD, 2, "admin: crl_url goes into the certificates the CA "
               "issues: it needs ca_key and ca_certificate");
    /* Both or neither; the key stays in the HSM. */
    expect_err("admin:\n  ca_key: \"pkcs11:object=r\"\n" L_HEAD, 2, "admin: ca_key needs ca_certificate");
    expect_err("admin:\n  ca_certificate: /r.pem\n" L_HEAD, 2, "admin: ca_certificate needs ca_key");
    expect_err("admin:\n  ca_certificate: /r.pem\n  ca_key: /etc/root.key\n" L_HEAD, 3,
               "admin: ca_key must be a pkcs11: URI of the root CA's key in the HSM, not \"/etc/root.key\"");
    expect_err("admin:\n  ca_certificate: [a]\n" L_HEAD, 2, "admin: ca_certificate must be a string");
    /* Validities: ranges and units. */
    static const char *const bad_client[] = { "0d", "826d", "12h", "d", "-5d", "1y", "365 d" };
    for (size_t i = 0; i < sizeof(bad_client) / sizeof(bad_client[0]); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), "admin:\n  client_validity: \"%s\"\n" L_HEAD, bad_client[i]);
        expect_err(yaml, 2, "admin: client_validity must be a number of days from 1d to 825d");
    }
    expect_err("admin:\n  client_validity: \"\"\n" L_HEAD, 2, "admin: client_validity must not be empty");
    static const char *const bad_crl[] = { "59s", "0", "366d", "7w", "h", "99999999999999d" };
    for (size_t i = 0; i < sizeof(bad_crl) / sizeof(bad_crl[0]); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), "admin:\n  crl_validity: %s\n" L_HEAD, bad_crl[i]);
        expect_err(yaml, 2, "admin: crl_validity must be a duration from 1m to 365d");
    }
    expect_err("admin:\n  crl_validity: { a: 1 }\n" L_HEAD, 2, "admin: crl_validity must be a string");
    expect_err("admin:\n  ca_cert: /r.pem\n" L_HEAD, 2,
               "admin: unknown key \"ca_cert\" (valid: bind, unix_socket, tokens_file, ca_certificate, ca_key, "
               "client_validity, crl_validity, tls, crl_url)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_https_defaults),
        cmocka_unit_test(test_backends_weighted),
        cmocka_unit_test(test_health_check),
        cmocka_unit_test(test_proxy_protocol),
        cmocka_unit_test(test_http_settings),
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
        cmocka_unit_test(test_process_settings),
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
        cmocka_unit_test(test_err_backends_weighted),
        cmocka_unit_test(test_err_balance),
        cmocka_unit_test(test_err_health_check),
        cmocka_unit_test(test_err_typed_keys),
        cmocka_unit_test(test_err_proxy_protocol),
        cmocka_unit_test(test_err_identity_headers),
        cmocka_unit_test(test_err_http_settings),
        cmocka_unit_test(test_err_pin),
        cmocka_unit_test(test_err_size_cap),
        cmocka_unit_test(test_err_nesting),
        cmocka_unit_test(test_api_edges),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_policies_full),
        cmocka_unit_test(test_policies_defaults),
        cmocka_unit_test(test_err_policies),
        cmocka_unit_test(test_admin_ca),
        cmocka_unit_test(test_admin_tls),
        cmocka_unit_test(test_per_address_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_ca_crl.c - unit tests for pkcs11/ca_crl.c (CRLs signed in the HSM), hsm_ca_cert_check,
 * hsm_ca_subject_check (the admin API's subject profile) and the CSR's CA request flag.
 *
 * A real SoftHSM2 token in a temporary directory holds the CA keys. Every CRL made is read back by two
 * parsers that share no code with the encoder: the policy store's own CRL decoder and verifier
 * (pol_crl_parse: RFC 5280 checks, issuer and signature against the root) and OpenSSL's CLI
 * (`openssl crl -verify`, `-text`). Negative cases: every argument the encoder refuses, and CA
 * certificates that may not sign CRLs or do not hold the key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11/ca.h"
#include "pkcs11/hsm.h"
#include "policies/pol_int.h"

#define TOKEN_URI "pkcs11:token=hsmgate"
#define DAY 86400

static char g_dir[48];
static struct hsm_ctx *g_ctx;
static struct hsm_key *g_ec, *g_rsa, *g_other;
static uint8_t *g_root_ec, *g_root_rsa, *g_leaf;
static size_t g_root_ec_len, g_root_rsa_len, g_leaf_len;

static const char *path_of(const char *name)
{
    static char bufs[8][256];
    static int next;
    char *p = bufs[next++ % 8];
    snprintf(p, 256, "%s/%s", g_dir, name);
    return p;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

static char *capture(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *capture(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd) - 8, fmt, ap);
    va_end(ap);
    strcat(cmd, " 2>&1");
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0, n;
    char *out = malloc(cap);
    assert_non_null(out);
    while ((n = fread(out + len, 1, cap - len - 1, f)) > 0)
        len += n;
    out[len] = '\0';
    pclose(f);
    return out;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL) {
        print_error("expected \"%s\" in:\n%s\n", needle, hay);
        fail();
    }
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void save_pem(const char *path, const char *label, const uint8_t *der, size_t len)
{
    char *pem = NULL;
    size_t n = 0;
    assert_int_equal(hsm_ca_pem_encode(label, der, len, &pem, &n), 0);
    write_file(path, pem, n);
    free(pem);
}

/* A certificate for key, signed by ca (ca_der NULL: self-signed). */
static uint8_t *issue(struct hsm_key *ca, const uint8_t *ca_der, size_t ca_len, struct hsm_key *key, const char *subject,
                      int is_ca, size_t *len)
{
    struct hsm_ca_spec spec;
    size_t spki_len = 0;
    uint8_t *der = NULL;
    char err[256] = "";
    memset(&spec, 0, sizeof(spec));
    spec.subject = subject;
    spec.spki_der = hsm_key_spki(key, &spki_len);
    spec.spki_len = spki_len;
    spec.not_before = time(NULL) - 60;
    spec.not_after = time(NULL) + 365 * DAY;
    spec.is_ca = is_ca;
    spec.path_len = -1;
    spec.eku = is_ca ? 0 : HSM_CA_EKU_CLIENT_AUTH;
    int rc = hsm_ca_issue(ca, ca_der, ca_len, &spec, &der, len, err, sizeof(err));
    if (rc != 0)
        print_error("issue %s: %s\n", subject, err);
    assert_int_equal(rc, 0);
    return der;
}

static int setup(void **state)
{
    char conf[512], err[256], pin[192];
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/hsmgate-test-crl.XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    snprintf(conf, sizeof(conf), "directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n", g_dir);
    mkdir(path_of("tokens"), 0700);
    write_file(path_of("softhsm2.conf"), conf, strlen(conf));
    setenv("SOFTHSM2_CONF", path_of("softhsm2.conf"), 1);
    if (run("softhsm2-util --init-token --free --label hsmgate --so-pin 12345678 --pin 1234 >/dev/null") != 0)
        return -1;
    int fd = open(path_of("pin"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, "1234\n", 5) != 5)
        return -1;
    close(fd);
    snprintf(pin, sizeof(pin), "file:%s", path_of("pin"));
    const char *mod = getenv("HSMGATE_SOFTHSM_MODULE");
    if (hsm_ctx_new(&g_ctx, mod ? mod : "/usr/lib/softhsm/libsofthsm2.so", pin, err, sizeof(err)) != 0 ||
        hsm_key_generate(g_ctx, TOKEN_URI, "ca-ec", "ec:P-256", &g_ec, err, sizeof(err)) != 0 ||
        hsm_key_generate(g_ctx, TOKEN_URI, "ca-rsa", "rsa:2048", &g_rsa, err, sizeof(err)) != 0 ||
        hsm_key_generate(g_ctx, TOKEN_URI, "other", "ec:P-384", &g_other, err, sizeof(err)) != 0) {
        fprintf(stderr, "test_ca_crl: %s\n", err);
        return -1;
    }
    if (hsm_thread_attach(g_ctx, 0, 1) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(g_root_ec);
    free(g_root_rsa);
    free(g_leaf);
    hsm_thread_detach(g_ctx);
    hsm_ctx_free(g_ctx);
    if (g_dir[0] != '\0' && getenv("HSMGATE_KEEP_TMP") == NULL)
        run("rm -rf '%s'", g_dir);
    return 0;
}

static void roots(void)
{
    if (g_root_ec != NULL)
        return;
    g_root_ec = issue(g_ec, NULL, 0, g_ec, "/O=hsmgate tests/CN=CRL root EC", 1, &g_root_ec_len);
    g_root_rsa = issue(g_rsa, NULL, 0, g_rsa, "/O=hsmgate tests/CN=CRL root RSA", 1, &g_root_rsa_len);
    g_leaf = issue(g_ec, g_root_ec, g_root_ec_len, g_other, "/CN=not a CA", 0, &g_leaf_len);
    save_pem(path_of("root-ec.pem"), "CERTIFICATE", g_root_ec, g_root_ec_len);
    save_pem(path_of("root-rsa.pem"), "CERTIFICATE", g_root_rsa, g_root_rsa_len);
}

/* Entries covering the encoder's cases: a serial whose top bit needs a sign octet, a long one, the
 * reasons with and without an extension (unspecified: none). */
static const uint8_t S1[] = { 0x01 };
static const uint8_t S2[] = { 0x00, 0x8f, 0x12, 0x34 };
static const uint8_t S3[] = { 0x3a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f };
static const uint8_t S4[] = { 0x7f, 0xff };

static void check_crl(struct hsm_key *key, const uint8_t *root, size_t root_len, const char *root_pem, const char *sigalg)
{
    time_t now = time(NULL);
    const struct hsm_ca_crl_entry entries[] = {
        { S1, sizeof(S1), now - 3 * DAY, 0 },
        { S2, sizeof(S2), now - 2 * DAY, 1 },               /* keyCompromise */
        { S3, sizeof(S3), now - DAY, 6 },                   /* certificateHold */
        { S4, sizeof(S4), now - 60, 10 },                   /* aACompromise */
    };
    const uint8_t number[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x65, 0x00, 0x00, 0x01 };
    struct hsm_ca_crl_spec spec = { now - 300, now - 300 + 7 * DAY, number, sizeof(number), entries, 4 };
    uint8_t *der = NULL;
    size_t len = 0;
    char err[256] = "";

    int rc = hsm_ca_crl_make(key, root, root_len, &spec, &der, &len, err, sizeof(err));
    if (rc != 0)
        print_error("crl: %s\n", err);
    assert_int_equal(rc, 0);

    /* The policy store's decoder and verifier: RFC 5280 5.1 syntax, issuer and signature. */
    struct pol_crl *crl = NULL;
    rc = pol_crl_parse(der, len, root, root_len, &crl, err, sizeof(err));
    if (rc != 0)
        print_error("pol_crl_parse: %s\n", err);
    assert_int_equal(rc, 0);
    struct pol_crl_info info;
    pol_crl_get_info(crl, &info);
    assert_int_equal(info.entries, 4);
    assert_int_equal(info.this_update, spec.this_update);
    assert_int_equal(info.next_update, spec.next_update);
    /* The number's leading zeros are dropped: 0x056500000001. */
    static const uint8_t want_number[] = { 0x05, 0x65, 0x00, 0x00, 0x01 };
    assert_int_equal(info.number_len, sizeof(want_number));
    assert_memory_equal(info.number, want_number, sizeof(want_number));
    for (size_t i = 0; i < 4; i++) {
        const struct pol_crl_entry *e = NULL;
        for (size_t j = 0; j < crl->nentries && e == NULL; j++)
            if (crl->entries[j].serial_len == entries[i].serial_len &&
                memcmp(crl->entries[j].serial, entries[i].serial, entries[i].serial_len) == 0)
                e = &crl->entries[j];
        assert_non_null(e);
        assert_int_equal(e->reason, entries[i].reason);
        assert_int_equal(e->revoked_at, entries[i].revoked_at);
    }
    pol_crl_free(crl);

    /* OpenSSL: the signature, the version, the extensions, the reasons as it names them. */
    write_file(path_of("crl.der"), der, len);
    char *text = capture("openssl crl -inform DER -in %s -CAfile %s -noout -verify", path_of("crl.der"), root_pem);
    assert_contains(text, "verify OK");
    free(text);
    text = capture("openssl crl -inform DER -in %s -noout -text", path_of("crl.der"));
    assert_contains(text, "Version 2 (0x1)");
    assert_contains(text, sigalg);
    assert_contains(text, "X509v3 Authority Key Identifier");
    assert_contains(text, "X509v3 CRL Number");
    assert_contains(text, "Serial Number: 01\n        Revocation Date");
    assert_contains(text, "Serial Number: 8F1234");
    assert_contains(text, "Key Compromise");
    assert_contains(text, "Certificate Hold");
    assert_contains(text, "AA Compromise");
    assert_contains(text, "Serial Number: 3A0102030405060708090A0B0C0D0E0F");
    free(text);
    free(der);

    /* No entries: the list is absent (RFC 5280 5.1.2.6), and the CRL still verifies. */
    spec.nentries = 0;
    spec.entries = NULL;
    assert_int_equal(hsm_ca_crl_make(key, root, root_len, &spec, &der, &len, err, sizeof(err)), 0);
    assert_int_equal(pol_crl_parse(der, len, root, root_len, &crl, err, sizeof(err)), 0);
    pol_crl_get_info(crl, &info);
    assert_int_equal(info.entries, 0);
    pol_crl_free(crl);
    write_file(path_of("empty.der"), der, len);
    text = capture("openssl crl -inform DER -in %s -CAfile %s -noout -verify -text", path_of("empty.der"), root_pem);
    assert_contains(text, "verify OK");
    assert_contains(text, "No Revoked Certificates");
    free(text);
    free(der);
}

static void test_crl_ec(void **state)
{
    (void)state;
    roots();
    check_crl(g_ec, g_root_ec, g_root_ec_len, path_of("root-ec.pem"), "ecdsa-with-SHA256");
}

static void test_crl_rsa(void **state)
{
    (void)state;
    roots();
    check_crl(g_rsa, g_root_rsa, g_root_rsa_len, path_of("root-rsa.pem"), "sha256WithRSAEncryption");
}

static void test_crl_refusals(void **state)
{
    (void)state;
    roots();
    time_t now = time(NULL);
    static const uint8_t one[] = { 1 };
    static const uint8_t neg[] = { 0x80 };
    static const uint8_t not_minimal[] = { 0x00, 0x01 };
    static const uint8_t n21[21] = { 1 };
    static const uint8_t n20_top[20] = { 0x80 };
    static const uint8_t n20[20] = { 0x7f };
    struct hsm_ca_crl_entry e = { one, 1, now, 0 };
    struct hsm_ca_crl_spec spec = { now, now + DAY, one, 1, &e, 1 };
    uint8_t *der = NULL;
    size_t len = 0;
    char err[256];

#define REFUSED(key, root, root_len, want, text)                                                   \
    do {                                                                                           \
        err[0] = '\0';                                                                             \
        assert_int_equal(hsm_ca_crl_make(key, root, root_len, &spec, &der, &len, err, sizeof(err)), want); \
        assert_null(der);                                                                          \
        assert_int_equal(len, 0);                                                                  \
        assert_contains(err, text);                                                                \
    } while (0)

    spec.next_update = now;
    REFUSED(g_ec, g_root_ec, g_root_ec_len, HSM_E_ARG, "thisUpdate must be earlier");
    spec.next_update = now + DAY;
    e.reason = 7;
    REFUSED(g_ec, g_root_ec, g_root_ec_len, HSM_E_ARG, "not a CRLReason");
    e.reason = 8;                                            /* removeFromCRL: delta CRLs only */
    REFUSED(g_ec, g_root_ec, g_root_ec_len, HSM_E_ARG, "not a CRLReason");
    e.reason = 0;
    e.serial = neg;
    REFUSED(g_ec, g_root_ec, g_root_ec_len, HSM_E_ARG, "serial");
    e.serial = not_minimal;
    e.serial_len = 2;
    REFUSED(g_ec, g_root_ec, g_root_ec_len, HSM_E_ARG, "serial");
    e.serial_len = 0;
    REFUSED(g_ec, g_root_ec, g_root_ec_len, HSM_E_ARG, "serial");
    e.serial = one;
    e.serial_len = 1;
    spec.number = n21;
    spec.number_len = sizeof(n21);
    REFUSED(g_ec, g_root_ec, g_root_ec_len, HSM_E_ARG, "CRL number");
    spec.number = n20_top;                                   /* 21 octets once the sign octet is added */
    spec.number_len = sizeof(n20_top);
    REFUSED(g_ec, g_root_ec, g_root_ec_len, HSM_E_ARG, "CRL number");
    spec.number_len = 0;
    REFUSED(g_ec, g_root_ec, g_root_ec_len, HSM_E_ARG, "CRL number");
    spec.number = n20;
    spec.number_len = sizeof(n20);
    /* The issuer: another key's certificate, a leaf, something that is not a certificate. */
    REFUSED(g_rsa, g_root_ec, g_root_ec_len, HSM_E_ARG, "does not hold the CA certificate's public key");
    REFUSED(g_other, g_leaf, g_leaf_len, HSM_E_ARG, "basicConstraints cA is not TRUE");
    REFUSED(g_ec, g_leaf, g_leaf_len - 1, HSM_E_ARG, "not a DER X.509 certificate");
    REFUSED(g_ec, NULL, 0, HSM_E_ARG, "missing argument");
    spec.entries = NULL;
    REFUSED(g_ec, g_root_ec, g_root_ec_len, HSM_E_ARG, "missing argument");
    spec.nentries = 0;
    spec.this_update = (time_t)-700000000000LL;              /* before 1950 */
    REFUSED(g_ec, g_root_ec, g_root_ec_len, HSM_E_ARG, "1950-9999");
#undef REFUSED
    /* And the largest number accepted works. */
    spec.this_update = now;
    assert_int_equal(hsm_ca_crl_make(g_ec, g_root_ec, g_root_ec_len, &spec, &der, &len, err, sizeof(err)), 0);
    free(der);

    /* hsm_ca_cert_check: what the admin API runs at start. */
    assert_int_equal(hsm_ca_cert_check(g_ec, g_root_ec, g_root_ec_len, err, sizeof(err)), 0);
    assert_int_equal(hsm_ca_cert_check(g_rsa, g_root_rsa, g_root_rsa_len, err, sizeof(err)), 0);
    assert_int_equal(hsm_ca_cert_check(g_rsa, g_root_ec, g_root_ec_len, err, sizeof(err)), HSM_E_ARG);
    assert_int_equal(hsm_ca_cert_check(g_other, g_leaf, g_leaf_len, err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "not TRUE");
    assert_int_equal(hsm_ca_cert_check(g_ec, (const uint8_t *)"junk", 4, err, sizeof(err)), HSM_E_ARG);
    /* A CA certificate (made by OpenSSL) whose keyUsage lacks cRLSign. */
    assert_int_equal(run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s -out %s "
                         "-subj /CN=nocrl -days 2 -addext basicConstraints=critical,CA:TRUE "
                         "-addext keyUsage=critical,keyCertSign 2>/dev/null",
                         path_of("nocrl.key"), path_of("nocrl.pem")), 0);
    assert_int_equal(run("openssl x509 -in %s -outform DER -out %s", path_of("nocrl.pem"), path_of("nocrl.der")), 0);
    size_t n = 0;
    uint8_t *nocrl = read_file(path_of("nocrl.der"), &n);
    spec.nentries = 0;
    err[0] = '\0';
    assert_int_equal(hsm_ca_crl_make(g_ec, nocrl, n, &spec, &der, &len, err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "cRLSign");
    free(nocrl);
}

/* A DER Name of one RDN per (oid, tag, value) triple. */
static size_t name_der(uint8_t *out, const uint8_t *const oids[], const uint8_t tags[], const char *const vals[], size_t n)
{
    uint8_t body[2048];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t vl = strlen(vals[i]), ol = oids[i][0];
        size_t atv = 2 + ol + 2 + vl;
        body[k++] = 0x31;
        body[k++] = (uint8_t)(atv + 2);
        body[k++] = 0x30;
        body[k++] = (uint8_t)atv;
        body[k++] = 0x06;
        body[k++] = (uint8_t)ol;
        memcpy(body + k, oids[i] + 1, ol);
        k += ol;
        body[k++] = tags[i];
        body[k++] = (uint8_t)vl;
        memcpy(body + k, vals[i], vl);
        k += vl;
    }
    size_t h = 0;
    out[h++] = 0x30;
    if (k < 0x80) {
        out[h++] = (uint8_t)k;
    } else if (k < 0x100) {
        out[h++] = 0x81;
        out[h++] = (uint8_t)k;
    } else {
        out[h++] = 0x82;
        out[h++] = (uint8_t)(k >> 8);
        out[h++] = (uint8_t)k;
    }
    memcpy(out + h, body, k);
    return h + k;
}

static void test_subject_profile(void **state)
{
    (void)state;
    static const uint8_t CN[] = { 3, 0x55, 0x04, 0x03 }, O[] = { 3, 0x55, 0x04, 0x0a }, C[] = { 3, 0x55, 0x04, 0x06 };
    static const uint8_t UID[] = { 10, 0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01 };
    char cn[128], err[256], long_cn[70];
    uint8_t der[4096];
    size_t n;

    memset(long_cn, 'x', 65);
    long_cn[65] = '\0';
    {
        const uint8_t *oids[] = { C, O, CN, CN };
        const uint8_t tags[] = { 0x13, 0x0c, 0x0c, 0x0c };
        const char *vals[] = { "CH", "Bank", "outer", "client-1" };
        n = name_der(der, oids, tags, vals, 4);
        assert_int_equal(hsm_ca_subject_check(der, n, cn, sizeof(cn), err, sizeof(err)), 0);
        assert_string_equal(cn, "client-1");         /* the most specific: the last */
        /* A small buffer truncates, always terminated. */
        assert_int_equal(hsm_ca_subject_check(der, n, cn, 4, err, sizeof(err)), 0);
        assert_string_equal(cn, "cli");
    }
    struct {
        const uint8_t *oid;
        uint8_t tag;
        const char *val;
        const char *why;
    } bad[] = {
        { O, 0x0c, "only an O", "no commonName" },
        { CN, 0x0c, long_cn, "65 characters long" },
        { CN, 0x0c, "tab\there", "not printable" },
        { CN, 0x0c, "nl\nhere", "not printable" },
        { CN, 0x14, "t61", "not printable" },                 /* TeletexString */
        { CN, 0x13, "under_score", "not printable" },         /* not in the PrintableString alphabet */
        { CN, 0x0c, "", "not printable" },
        { UID, 0x0c, "u1", "0.9.2342.19200300.100.1.1" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const uint8_t *oids[] = { bad[i].oid };
        const uint8_t tags[] = { bad[i].tag };
        const char *vals[] = { bad[i].val };
        n = name_der(der, oids, tags, vals, 1);
        err[0] = '\0';
        int rc = hsm_ca_subject_check(der, n, cn, sizeof(cn), err, sizeof(err));
        if (rc != HSM_E_ARG)
            print_error("case %zu accepted\n", i);
        assert_int_equal(rc, HSM_E_ARG);
        assert_contains(err, bad[i].why);
    }
    /* Too many RDNs, and a Name too large. */
    {
        const uint8_t *oids[17];
        uint8_t tags[17];
        const char *vals[17];
        for (int i = 0; i < 17; i++) {
            oids[i] = i == 16 ? CN : O;
            tags[i] = 0x0c;
            vals[i] = "o";
        }
        n = name_der(der, oids, tags, vals, 17);
        assert_int_equal(hsm_ca_subject_check(der, n, cn, sizeof(cn), err, sizeof(err)), HSM_E_ARG);
        assert_contains(err, "more than 16 RDNs");
        static char big[15][64];
        for (int i = 0; i < 15; i++) {
            memset(big[i], 'a', 63);
            big[i][63] = '\0';
            vals[i] = big[i];
        }
        oids[14] = CN;
        n = name_der(der, oids, tags, vals, 15);
        assert_int_equal(hsm_ca_subject_check(der, n, cn, sizeof(cn), err, sizeof(err)), HSM_E_ARG);
        assert_contains(err, "bytes long");
    }
    /* Not a Name at all. */
    assert_int_equal(hsm_ca_subject_check((const uint8_t *)"\x30\x03\x31\x00\x00", 5, cn, sizeof(cn), err, sizeof(err)),
                     HSM_E_ARG);
    assert_int_equal(hsm_ca_subject_check(NULL, 0, cn, sizeof(cn), err, sizeof(err)), HSM_E_ARG);
    n = 0;
    der[0] = 0x30;
    der[1] = 0x00;
    assert_int_equal(hsm_ca_subject_check(der, 2, cn, sizeof(cn), err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "no commonName");
}

static void test_csr_requests_ca(void **state)
{
    (void)state;
    struct {
        const char *name, *ext;
        int ca;
    } cases[] = {
        { "plain", "", 0 },
        { "ee", "-addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=clientAuth", 0 },
        { "ca", "-addext basicConstraints=critical,CA:TRUE", 1 },
        { "ca-san", "-addext subjectAltName=DNS:x.example -addext basicConstraints=CA:TRUE,pathlen:0", 1 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char csr_path[128], err[256];
        struct hsm_ca_csr csr;
        size_t len = 0;
        snprintf(csr_path, sizeof(csr_path), "%s", path_of(cases[i].name));
        assert_int_equal(run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key "
                             "-subj /CN=%s %s -out %s 2>/dev/null", csr_path, cases[i].name, cases[i].ext, csr_path), 0);
        uint8_t *in = read_file(csr_path, &len);
        int rc = hsm_ca_csr_parse(in, len, &csr, err, sizeof(err));
        if (rc != 0)
            print_error("%s: %s\n", cases[i].name, err);
        assert_int_equal(rc, 0);
        assert_int_equal(csr.requests_ca, cases[i].ca);
        hsm_ca_csr_clear(&csr);
        free(in);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crl_ec),
        cmocka_unit_test(test_crl_rsa),
        cmocka_unit_test(test_crl_refusals),
        cmocka_unit_test(test_subject_profile),
        cmocka_unit_test(test_csr_requests_ca),
    };
    return cmocka_run_group_tests_name("ca_crl", tests, setup, teardown);
}

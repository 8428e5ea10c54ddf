/* test_ca.c - unit tests for pkcs11/ca*.c and `hsmgate pki` (gateway/cmd_pki.c).
 *
 * Runs against a real SoftHSM2 token in a temporary directory: CA and leaf keys are generated in
 * the token, certificates are signed there, and every outcome is checked with OpenSSL's CLI
 * (openssl verify, openssl x509 -text), which shares no code with ours. Negative tests cover
 * malformed subjects and SANs, CSRs with bad signatures, garbage and unsupported keys, and issuers
 * that cannot issue. The second group drives the CLI in-process, after the first has closed its
 * HSM context, so only one context ever has the module loaded.
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

#include "gateway/cmd.h"
#include "pkcs11/ca.h"
#include "pkcs11/hsm.h"

#define TOKEN_URI "pkcs11:token=hsmgate"
#define DAY 86400

static char g_dir[48];
static char g_module[256];
static char g_pin_source[192];

/* --- helpers --- */

static const char *path_of(const char *name)
{
    /* Rotating buffers so one call can take a few paths. */
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

/* Runs a shell command and returns its stdout and stderr (malloc'd, NUL-terminated). */
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
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t n;
    while ((n = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
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

static void assert_not_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) != NULL) {
        print_error("did not expect \"%s\" in:\n%s\n", needle, hay);
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
    uint8_t *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void save_pem(const char *path, const char *label, const uint8_t *der, size_t len)
{
    char *pem = NULL;
    size_t pem_len = 0;
    assert_int_equal(hsm_ca_pem_encode(label, der, len, &pem, &pem_len), 0);
    write_file(path, pem, pem_len);
    free(pem);
}

/* OpenSSL's rendering of a time in `x509 -enddate`: "Nov  6 21:29:00 2027 GMT". */
static void openssl_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%b %e %H:%M:%S %Y GMT", &tm);
}

/* --- fixtures shared by both groups --- */

static int global_setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/hsmgate-test-ca.XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    const char *mod = getenv("HSMGATE_SOFTHSM_MODULE");
    snprintf(g_module, sizeof(g_module), "%s", mod ? mod : "/usr/lib/softhsm/libsofthsm2.so");
    char conf[512];
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
    snprintf(g_pin_source, sizeof(g_pin_source), "file:%s", path_of("pin"));

    /* Requests made by OpenSSL, the way a client would make them. */
    static const struct { const char *name, *newkey, *subj; } csrs[] = {
        { "ec256", "-newkey ec -pkeyopt ec_paramgen_curve:P-256", "/CN=alice/O=Bank" },
        { "ec384", "-newkey ec -pkeyopt ec_paramgen_curve:P-384", "/CN=bob/O=Bank" },
        { "rsa2048", "-newkey rsa:2048", "/CN=carol/O=Bank/C=CH" },
        { "p521", "-newkey ec -pkeyopt ec_paramgen_curve:P-521", "/CN=p521" },
        { "k256", "-newkey ec -pkeyopt ec_paramgen_curve:secp256k1", "/CN=k256" },
        { "rsa1024", "-newkey rsa:1024", "/CN=small" },
        { "ed25519", "-newkey ed25519", "/CN=ed" },
    };
    for (size_t i = 0; i < sizeof(csrs) / sizeof(csrs[0]); i++) {
        if (run("openssl req -new %s -nodes -keyout %s/%s.key -subj '%s' -out %s/%s.csr 2>/dev/null", csrs[i].newkey,
                g_dir, csrs[i].name, csrs[i].subj, g_dir, csrs[i].name) != 0)
            return -1;
        if (run("openssl req -in %s/%s.csr -outform DER -out %s/%s.der", g_dir, csrs[i].name, g_dir, csrs[i].name) != 0)
            return -1;
    }
    return 0;
}

static void global_teardown(void)
{
    if (g_dir[0] != '\0' && getenv("HSMGATE_KEEP_TMP") == NULL)
        run("rm -rf '%s'", g_dir);
}

/* --- group 1: the API with an HSM context --- */

static const struct key_kind {
    const char *spec;           /* hsm_key_generate */
    const char *name;
    const char *sigalg;         /* as openssl prints it */
    int rsa;
} kinds[] = {
    { "ec:P-256", "ec256", "ecdsa-with-SHA256", 0 },
    { "ec:P-384", "ec384", "ecdsa-with-SHA384", 0 },
    { "rsa:2048", "rsa2048", "sha256WithRSAEncryption", 1 },
};
#define NKINDS 3

struct api_state {
    struct hsm_ctx *ctx;
    struct hsm_key *ca[NKINDS];
    struct hsm_key *leaf[NKINDS];
};
static struct api_state g_api;

static int api_setup(void **state)
{
    char err[256], label[64];
    if (hsm_ctx_new(&g_api.ctx, g_module, g_pin_source, err, sizeof(err)) != 0) {
        fprintf(stderr, "hsm_ctx_new: %s\n", err);
        return -1;
    }
    for (int i = 0; i < NKINDS; i++) {
        snprintf(label, sizeof(label), "ca-%s", kinds[i].name);
        if (hsm_key_generate(g_api.ctx, TOKEN_URI, label, kinds[i].spec, &g_api.ca[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "keygen %s: %s\n", label, err);
            return -1;
        }
        snprintf(label, sizeof(label), "leaf-%s", kinds[i].name);
        if (hsm_key_generate(g_api.ctx, TOKEN_URI, label, kinds[i].spec, &g_api.leaf[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "keygen %s: %s\n", label, err);
            return -1;
        }
    }
    if (hsm_thread_attach(g_api.ctx, 0, 1) != 0)
        return -1;
    *state = &g_api;
    return 0;
}

static int api_teardown(void **state)
{
    (void)state;
    hsm_thread_detach(g_api.ctx);
    hsm_ctx_free(g_api.ctx);
    g_api.ctx = NULL;
    return 0;
}

static void spec_for_key(struct hsm_ca_spec *spec, struct hsm_key *key)
{
    size_t len = 0;
    memset(spec, 0, sizeof(*spec));
    spec->spki_der = hsm_key_spki(key, &len);
    spec->spki_len = len;
    spec->not_before = time(NULL) - 60;
    spec->not_after = time(NULL) + 365 * DAY;
    spec->path_len = -1;
}

/* A fresh root for CA key i, written to root-<name>.pem; returns its DER (caller frees). */
static uint8_t *make_root(int i, size_t *len)
{
    struct hsm_ca_spec spec;
    char subject[96], err[256] = "";
    uint8_t *der = NULL;
    spec_for_key(&spec, g_api.ca[i]);
    snprintf(subject, sizeof(subject), "/C=CH/O=hsmgate tests/CN=Root %s", kinds[i].name);
    spec.subject = subject;
    spec.is_ca = 1;
    spec.path_len = 1;
    spec.not_after = time(NULL) + 3650 * DAY;
    int rc = hsm_ca_issue(g_api.ca[i], NULL, 0, &spec, &der, len, err, sizeof(err));
    if (rc != 0)
        print_error("root %s: %s\n", kinds[i].name, err);
    assert_int_equal(rc, 0);
    char name[64];
    snprintf(name, sizeof(name), "root-%s.pem", kinds[i].name);
    save_pem(path_of(name), "CERTIFICATE", der, *len);
    return der;
}

static void check_chain(int i)
{
    const struct key_kind *k = &kinds[i];
    size_t root_len = 0, leaf_len = 0;
    uint8_t *root = make_root(i, &root_len), *leaf = NULL;
    char root_pem[128], leaf_pem[128], err[256] = "", date[64], want[128];
    snprintf(root_pem, sizeof(root_pem), "%s/root-%s.pem", g_dir, k->name);
    snprintf(leaf_pem, sizeof(leaf_pem), "%s/leaf-%s.pem", g_dir, k->name);

    /* The root: self-signed, a critical CA:TRUE with the path length, CA key usages. */
    char *text = capture("openssl x509 -in %s -noout -text", root_pem);
    snprintf(want, sizeof(want), "Signature Algorithm: %s", k->sigalg);
    assert_contains(text, want);
    assert_contains(text, "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:1\n");
    assert_contains(text, "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign\n");
    snprintf(want, sizeof(want), "Subject: C = CH, O = hsmgate tests, CN = Root %s\n", k->name);
    assert_contains(text, want);
    snprintf(want, sizeof(want), "Issuer: C = CH, O = hsmgate tests, CN = Root %s\n", k->name);
    assert_contains(text, want);
    assert_not_contains(text, "Extended Key Usage");
    free(text);
    assert_int_equal(run("openssl verify -CAfile %s %s >/dev/null 2>&1", root_pem, root_pem), 0);

    /* The leaf: an HSM-held key, every SAN kind, both EKUs. */
    static const char *const sans[] = { "DNS:leaf.example", "DNS:*.leaf.example", "IP:127.0.0.1", "IP:::1",
                                        "URI:spiffe://test/leaf", "email:ops@example.com" };
    struct hsm_ca_spec spec;
    spec_for_key(&spec, g_api.leaf[i]);
    spec.subject = "/CN=leaf.example/O=hsmgate tests";
    spec.sans = sans;
    spec.nsans = 6;
    spec.eku = HSM_CA_EKU_SERVER_AUTH | HSM_CA_EKU_CLIENT_AUTH;
    int rc = hsm_ca_issue(g_api.ca[i], root, root_len, &spec, &leaf, &leaf_len, err, sizeof(err));
    if (rc != 0)
        print_error("leaf %s: %s\n", k->name, err);
    assert_int_equal(rc, 0);
    save_pem(leaf_pem, "CERTIFICATE", leaf, leaf_len);

    assert_int_equal(run("openssl verify -CAfile %s %s >/dev/null 2>&1", root_pem, leaf_pem), 0);
    assert_int_equal(run("openssl verify -purpose sslserver -CAfile %s %s >/dev/null 2>&1", root_pem, leaf_pem), 0);
    assert_int_equal(run("openssl verify -purpose sslclient -CAfile %s %s >/dev/null 2>&1", root_pem, leaf_pem), 0);
    /* Another root does not vouch for it. */
    char other[128];
    snprintf(other, sizeof(other), "%s/root-%s.pem", g_dir, kinds[(i + 1) % NKINDS].name);
    if (access(other, R_OK) == 0)
        assert_int_not_equal(run("openssl verify -CAfile %s %s >/dev/null 2>&1", other, leaf_pem), 0);

    text = capture("openssl x509 -in %s -noout -text", leaf_pem);
    snprintf(want, sizeof(want), "Signature Algorithm: %s", k->sigalg);
    assert_contains(text, want);
    assert_contains(text, "X509v3 Basic Constraints: critical\n                CA:FALSE\n");
    assert_contains(text, k->rsa ? "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment\n"
                                 : "X509v3 Key Usage: critical\n                Digital Signature\n");
    assert_contains(text, "TLS Web Server Authentication, TLS Web Client Authentication");
    assert_contains(text, "DNS:leaf.example, DNS:*.leaf.example, IP Address:127.0.0.1, "
                          "IP Address:0:0:0:0:0:0:0:1, URI:spiffe://test/leaf, email:ops@example.com");
    assert_contains(text, "Subject: CN = leaf.example, O = hsmgate tests\n");
    snprintf(want, sizeof(want), "Issuer: C = CH, O = hsmgate tests, CN = Root %s\n", k->name);
    assert_contains(text, want);
    assert_contains(text, "X509v3 Subject Key Identifier");
    assert_contains(text, "X509v3 Authority Key Identifier");
    free(text);

    text = capture("openssl x509 -in %s -noout -startdate -enddate", leaf_pem);
    openssl_date(spec.not_before, date, sizeof(date));
    snprintf(want, sizeof(want), "notBefore=%s", date);
    assert_contains(text, want);
    openssl_date(spec.not_after, date, sizeof(date));
    snprintf(want, sizeof(want), "notAfter=%s", date);
    assert_contains(text, want);
    free(text);

    /* RFC 5280 4.1.2.2: 16 random octets, positive, minimal. */
    char serial[80];
    assert_int_equal(hsm_ca_cert_serial(leaf, leaf_len, serial, sizeof(serial)), 0);
    assert_int_equal(strlen(serial), 32);
    assert_true(serial[0] >= '0' && serial[0] <= '7');
    assert_false(serial[0] == '0' && serial[1] == '0');

    free(root);
    free(leaf);
}

static void test_chain_ec256(void **state) { (void)state; check_chain(0); }
static void test_chain_ec384(void **state) { (void)state; check_chain(1); }
static void test_chain_rsa2048(void **state) { (void)state; check_chain(2); }

/* Client certificates from OpenSSL-made CSRs of each accepted key type, issued by the P-384 CA. */
static void test_client_from_csr(void **state)
{
    (void)state;
    size_t root_len = 0;
    uint8_t *root = make_root(1, &root_len);
    static const struct { const char *name, *subject, *kutext; } reqs[] = {
        { "ec256", "Subject: CN = alice, O = Bank\n", "Digital Signature\n" },
        { "ec384", "Subject: CN = bob, O = Bank\n", "Digital Signature\n" },
        /* No keyEncipherment: that is for RSA servers only. */
        { "rsa2048", "Subject: CN = carol, O = Bank, C = CH\n", "Digital Signature\n" },
    };
    for (size_t r = 0; r < 3; r++) {
        char csr_path[128], crt[128], err[256] = "";
        /* The PEM for the first two, DER for the third: both are accepted. */
        snprintf(csr_path, sizeof(csr_path), "%s/%s.%s", g_dir, reqs[r].name, r < 2 ? "csr" : "der");
        snprintf(crt, sizeof(crt), "%s/client-%s.crt", g_dir, reqs[r].name);
        size_t in_len = 0, cert_len = 0;
        uint8_t *in = read_file(csr_path, &in_len), *cert = NULL;
        struct hsm_ca_csr csr;
        int rc = hsm_ca_csr_parse(in, in_len, &csr, err, sizeof(err));
        if (rc != 0)
            print_error("csr %s: %s\n", reqs[r].name, err);
        assert_int_equal(rc, 0);
        struct hsm_ca_spec spec;
        spec_for_key(&spec, g_api.ca[1]);
        spec.subject_der = csr.subject_der;
        spec.subject_der_len = csr.subject_len;
        spec.spki_der = csr.spki_der;
        spec.spki_len = csr.spki_len;
        spec.eku = HSM_CA_EKU_CLIENT_AUTH;
        assert_int_equal(hsm_ca_issue(g_api.ca[1], root, root_len, &spec, &cert, &cert_len, err, sizeof(err)), 0);
        save_pem(crt, "CERTIFICATE", cert, cert_len);
        assert_int_equal(run("openssl verify -purpose sslclient -CAfile %s/root-ec384.pem %s >/dev/null 2>&1", g_dir, crt), 0);
        /* clientAuth only: not good for a server. */
        assert_int_not_equal(run("openssl verify -purpose sslserver -CAfile %s/root-ec384.pem %s >/dev/null 2>&1", g_dir, crt), 0);
        /* The certificate holds the CSR's key: the private key OpenSSL made matches it. */
        assert_int_equal(run("test \"$(openssl x509 -in %s -noout -pubkey)\" = \"$(openssl pkey -in %s/%s.key -pubout)\"",
                             crt, g_dir, reqs[r].name), 0);
        char *text = capture("openssl x509 -in %s -noout -text", crt);
        assert_contains(text, reqs[r].subject);
        assert_contains(text, "Signature Algorithm: ecdsa-with-SHA384");
        assert_contains(text, "TLS Web Client Authentication\n");
        assert_not_contains(text, "TLS Web Server Authentication");
        assert_contains(text, reqs[r].kutext);
        assert_not_contains(text, "Subject Alternative Name");
        free(text);
        hsm_ca_csr_clear(&csr);
        assert_null(csr.subject_der);
        free(cert);
        free(in);
    }
    free(root);
}

static void test_validity(void **state)
{
    (void)state;
    size_t root_len = 0, len = 0;
    uint8_t *root = make_root(0, &root_len), *cert = NULL;
    char err[256], path[128], date[64], want[96];
    struct hsm_ca_spec spec;
    time_t now = time(NULL);

    /* Expired. */
    spec_for_key(&spec, g_api.leaf[0]);
    spec.subject = "/CN=expired";
    spec.eku = HSM_CA_EKU_CLIENT_AUTH;
    spec.not_before = 1577836800;       /* 2020-01-01T00:00:00Z */
    spec.not_after = now - 2 * DAY;
    assert_int_equal(hsm_ca_issue(g_api.ca[0], root, root_len, &spec, &cert, &len, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/expired.pem", g_dir);
    save_pem(path, "CERTIFICATE", cert, len);
    free(cert);
    char *text = capture("openssl verify -CAfile %s/root-ec256.pem %s", g_dir, path);
    assert_contains(text, "certificate has expired");
    free(text);
    text = capture("openssl x509 -in %s -noout -startdate", path);
    assert_contains(text, "notBefore=Jan  1 00:00:00 2020 GMT");
    free(text);

    /* Not yet valid. */
    spec.subject = "/CN=future";
    spec.not_before = now + 2 * DAY;
    spec.not_after = now + 30 * DAY;
    assert_int_equal(hsm_ca_issue(g_api.ca[0], root, root_len, &spec, &cert, &len, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/future.pem", g_dir);
    save_pem(path, "CERTIFICATE", cert, len);
    free(cert);
    text = capture("openssl verify -CAfile %s/root-ec256.pem %s", g_dir, path);
    assert_contains(text, "certificate is not yet valid");
    free(text);

    /* From 2050 on, GeneralizedTime (RFC 5280 4.1.2.5). */
    spec.subject = "/CN=long";
    spec.not_before = now - 60;
    spec.not_after = 2556144000;        /* 2051-01-01T00:00:00Z */
    assert_int_equal(hsm_ca_issue(g_api.ca[0], root, root_len, &spec, &cert, &len, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/long.pem", g_dir);
    save_pem(path, "CERTIFICATE", cert, len);
    free(cert);
    text = capture("openssl asn1parse -in %s", path);
    assert_contains(text, "prim: UTCTIME ");
    assert_contains(text, "prim: GENERALIZEDTIME   :20510101000000Z");
    free(text);
    text = capture("openssl x509 -in %s -noout -enddate", path);
    openssl_date(spec.not_after, date, sizeof(date));
    snprintf(want, sizeof(want), "notAfter=%s", date);
    assert_contains(text, want);
    free(text);

    /* Refused: empty or reversed period, years before 1950. */
    cert = NULL;
    spec.not_before = now;
    spec.not_after = now;
    assert_int_equal(hsm_ca_issue(g_api.ca[0], root, root_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    assert_null(cert);
    spec.not_before = -700000000;       /* 1947 */
    spec.not_after = now;
    assert_int_equal(hsm_ca_issue(g_api.ca[0], root, root_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "1950");
    assert_null(cert);
    free(root);
}

static void test_subject_parse(void **state)
{
    (void)state;
    uint8_t *der = NULL;
    size_t len = 0;
    char err[256], text[256];
    assert_int_equal(hsm_ca_subject_parse("/C=ch/O=x+y/OU=Ops\\/Risk/CN=a\\\\b/L=Z\xc3\xbcrich/ST=ZH"
                                          "/emailAddress=a@b.example/DC=example/serialNumber=42",
                                          &der, &len, err, sizeof(err)), 0);
    assert_int_equal(hsm_ca_name_format(der, len, text, sizeof(text)), 0);
    assert_string_equal(text, "/C=CH/O=x\\+y/OU=Ops\\/Risk/CN=a\\\\b/L=Z\xc3\xbcrich/ST=ZH"
                              "/emailAddress=a@b.example/DC=example/serialNumber=42");
    free(der);

    /* Each malformed subject is refused with a message, and nothing is returned. */
    static const char *const bad[] = {
        "", "CN=x", "/", "/CN", "/=x", "/CN=", "/XX=y", "/CN=a/", "/CN=a//O=b", "/C=CHE", "/C=1X",
        "/CN=a\\", "/CN=tab\there", "/CN=\x7f", "/CN=\xff\xfe", "/CN=\xc0\xaf", "/O=\xed\xa0\x80",
        "/emailAddress=nobody", "/emailAddress=caf\xc3\xa9@x.example", "/serialNumber=a*b",
        "/CN=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 */
        "/CN\\=x=y",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        der = (uint8_t *)"sentinel";
        int rc = hsm_ca_subject_parse(bad[i], &der, &len, err, sizeof(err));
        if (rc != HSM_E_ARG)
            print_error("subject \"%s\" was accepted\n", bad[i]);
        assert_int_equal(rc, HSM_E_ARG);
        assert_null(der);
        assert_contains(err, "malformed subject");
    }
    assert_int_equal(hsm_ca_subject_parse("/XX=y", &der, &len, err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "unknown attribute \"XX\"");
    assert_int_equal(hsm_ca_subject_parse("CN=x", &der, &len, err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "must start with '/'");
    assert_int_equal(hsm_ca_subject_parse(NULL, &der, &len, err, sizeof(err)), HSM_E_ARG);

    /* Exactly 64 characters is the limit, counted in characters, not bytes. */
    char cn[200] = "/CN=";
    for (int i = 0; i < 64; i++)
        strcat(cn, "\xc3\xa9");
    assert_int_equal(hsm_ca_subject_parse(cn, &der, &len, err, sizeof(err)), 0);
    free(der);

    /* hsm_ca_issue refuses a malformed subject the same way. */
    struct hsm_ca_spec spec;
    uint8_t *cert = NULL;
    spec_for_key(&spec, g_api.ca[0]);
    spec.subject = "/CN=ok/Bogus";
    spec.is_ca = 1;
    assert_int_equal(hsm_ca_issue(g_api.ca[0], NULL, 0, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "malformed subject");
    assert_null(cert);
}

static void test_csr_bad_signature(void **state)
{
    (void)state;
    static const char *const names[] = { "ec256", "rsa2048" };
    for (size_t n = 0; n < 2; n++) {
        char path[128], err[256];
        size_t len = 0;
        struct hsm_ca_csr csr;
        snprintf(path, sizeof(path), "%s/%s.der", g_dir, names[n]);
        uint8_t *der = read_file(path, &len);
        assert_int_equal(hsm_ca_csr_parse(der, len, &csr, err, sizeof(err)), 0);
        hsm_ca_csr_clear(&csr);

        /* A flipped bit in the signature, or in the signed subject: both must fail verification. */
        der[len - 1] ^= 0x01;
        err[0] = '\0';
        assert_int_equal(hsm_ca_csr_parse(der, len, &csr, err, sizeof(err)), HSM_E_SIGN);
        assert_contains(err, "signature does not verify");
        assert_null(csr.subject_der);
        assert_null(csr.spki_der);
        /* Same in PEM. */
        char *pem = NULL;
        size_t pem_len = 0;
        assert_int_equal(hsm_ca_pem_encode("CERTIFICATE REQUEST", der, len, &pem, &pem_len), 0);
        assert_int_equal(hsm_ca_csr_parse((uint8_t *)pem, pem_len, &csr, err, sizeof(err)), HSM_E_SIGN);
        free(pem);
        der[len - 1] ^= 0x01;

        uint8_t *cn = memmem(der, len, "Bank", 4);
        assert_non_null(cn);
        cn[0] = 'T';
        assert_int_equal(hsm_ca_csr_parse(der, len, &csr, err, sizeof(err)), HSM_E_SIGN);
        free(der);
    }
}

static void test_csr_garbage(void **state)
{
    (void)state;
    char err[256];
    struct hsm_ca_csr csr;
    size_t len = 0;
    char path[128];
    snprintf(path, sizeof(path), "%s/ec256.der", g_dir);
    uint8_t *good = read_file(path, &len);

    /* A bit of everything that is not a CSR. */
    uint8_t noise[300];
    srand(7);
    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = (uint8_t)rand();
    noise[0] = 0x30;
    static const char bad_b64[] = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB!!!!\n-----END CERTIFICATE REQUEST-----\n";
    static const char no_end[] = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAAAA\n";
    static const char headers[] = "-----BEGIN CERTIFICATE REQUEST-----\nProc-Type: 4,ENCRYPTED\n\nMIIB\n-----END CERTIFICATE REQUEST-----\n";
    static const uint8_t indefinite[] = { 0x30, 0x80, 0x02, 0x01, 0x00, 0x00, 0x00 };
    static const uint8_t empty_seq[] = { 0x30, 0x00 };
    struct { const void *p; size_t n; int rc; } cases[] = {
        { "", 0, HSM_E_ARG },
        { "hello", 5, HSM_E_ARG },
        { noise, sizeof(noise), HSM_E_ARG },
        { bad_b64, sizeof(bad_b64) - 1, HSM_E_ARG },
        { no_end, sizeof(no_end) - 1, HSM_E_ARG },
        { headers, sizeof(headers) - 1, HSM_E_ARG },
        { indefinite, sizeof(indefinite), HSM_E_ARG },
        { empty_seq, sizeof(empty_seq), HSM_E_ARG },
        { good, len / 2, HSM_E_ARG },                  /* truncated */
        { good, len - 1, HSM_E_ARG },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        int rc = hsm_ca_csr_parse(cases[i].p, cases[i].n, &csr, err, sizeof(err));
        if (rc != cases[i].rc)
            print_error("case %zu: rc %d (%s)\n", i, rc, err);
        assert_int_equal(rc, cases[i].rc);
        assert_true(err[0] != '\0');
        assert_null(csr.subject_der);
    }
    /* Trailing bytes after the DER value. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, good, len);
    longer[len] = 0;
    assert_int_equal(hsm_ca_csr_parse(longer, len + 1, &csr, err, sizeof(err)), HSM_E_ARG);
    free(longer);
    /* A certificate is not a request, in PEM or DER. */
    size_t crt_len = 0;
    uint8_t *crt = make_root(0, &crt_len);
    assert_int_equal(hsm_ca_csr_parse(crt, crt_len, &csr, err, sizeof(err)), HSM_E_ARG);
    free(crt);
    snprintf(path, sizeof(path), "%s/root-ec256.pem", g_dir);
    crt = read_file(path, &crt_len);
    assert_int_equal(hsm_ca_csr_parse(crt, crt_len, &csr, err, sizeof(err)), HSM_E_ARG);
    free(crt);
    /* Every single-byte truncation and bit flip of a good CSR fails cleanly (and never crashes). */
    for (size_t i = 0; i < len; i++) {
        assert_int_not_equal(hsm_ca_csr_parse(good, i, &csr, err, sizeof(err)), 0);
        good[i] ^= 0x80;
        int rc = hsm_ca_csr_parse(good, len, &csr, err, sizeof(err));
        good[i] ^= 0x80;
        if (rc == 0)
            hsm_ca_csr_clear(&csr);
        /* Flipping inside the key may still give a valid key, but then the signature fails. */
        assert_int_not_equal(rc, 0);
    }
    free(good);
}

static void test_unsupported_keys(void **state)
{
    (void)state;
    static const char *const names[] = { "p521", "k256", "rsa1024", "ed25519" };
    char path[128], err[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t len = 0;
        struct hsm_ca_csr csr;
        snprintf(path, sizeof(path), "%s/%s.csr", g_dir, names[i]);
        uint8_t *in = read_file(path, &len);
        err[0] = '\0';
        int rc = hsm_ca_csr_parse(in, len, &csr, err, sizeof(err));
        if (rc != HSM_E_KEYTYPE)
            print_error("%s: rc %d (%s)\n", names[i], rc, err);
        assert_int_equal(rc, HSM_E_KEYTYPE);
        assert_contains(err, "unsupported");
        free(in);
    }
    /* The same key given directly as the subject key. */
    size_t root_len = 0, len = 0;
    uint8_t *root = make_root(0, &root_len), *cert = NULL;
    char *spki = capture("openssl pkey -in %s/p521.key -pubout -outform DER | od -An -tx1 -v", g_dir);
    uint8_t der[400];
    size_t n = 0;
    for (char *p = spki; n < sizeof(der);) {
        unsigned v;
        int used;
        if (sscanf(p, "%2x%n", &v, &used) != 1)
            break;
        der[n++] = (uint8_t)v;
        p += used;
    }
    free(spki);
    assert_true(n > 100);
    struct hsm_ca_spec spec;
    spec_for_key(&spec, g_api.leaf[0]);
    spec.subject = "/CN=p521";
    spec.spki_der = der;
    spec.spki_len = n;
    assert_int_equal(hsm_ca_issue(g_api.ca[0], root, root_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_KEYTYPE);
    assert_null(cert);
    spec.spki_len = n - 1;
    assert_int_equal(hsm_ca_issue(g_api.ca[0], root, root_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    free(root);
}

static void test_issue_refusals(void **state)
{
    (void)state;
    size_t r0_len = 0, r1_len = 0, len = 0, leaf_len = 0;
    uint8_t *r0 = make_root(0, &r0_len), *r1 = make_root(1, &r1_len), *cert = NULL, *leaf = NULL;
    char err[256];
    struct hsm_ca_spec spec;

    spec_for_key(&spec, g_api.leaf[0]);
    spec.subject = "/CN=x";
    /* The CA key does not hold the CA certificate's key. */
    assert_int_equal(hsm_ca_issue(g_api.ca[0], r1, r1_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "does not hold the CA certificate's public key");
    /* A self-signed certificate for some other key. */
    assert_int_equal(hsm_ca_issue(g_api.ca[0], NULL, 0, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "self-signed");
    /* An end-entity certificate cannot issue. */
    assert_int_equal(hsm_ca_issue(g_api.ca[0], r0, r0_len, &spec, &leaf, &leaf_len, err, sizeof(err)), 0);
    assert_int_equal(hsm_ca_issue(g_api.leaf[0], leaf, leaf_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "not a CA");
    /* Garbage as the CA certificate. */
    assert_int_equal(hsm_ca_issue(g_api.ca[0], (const uint8_t *)"\x30\x03\x02\x01\x00", 5, &spec, &cert, &len, err,
                                  sizeof(err)), HSM_E_ARG);
    /* Bad SANs. */
    static const char *const bad_sans[] = { "DNS:bad_name.example", "DNS:*.com", "DNS:-x.example", "DNS:a..b",
                                            "IP:999.1.1.1", "IP:::g", "URI:no-scheme", "URI:http://a b",
                                            "email:nobody", "foo:bar", "nocolon", "DNS:" };
    for (size_t i = 0; i < sizeof(bad_sans) / sizeof(bad_sans[0]); i++) {
        spec.sans = &bad_sans[i];
        spec.nsans = 1;
        err[0] = '\0';
        int rc = hsm_ca_issue(g_api.ca[0], r0, r0_len, &spec, &cert, &len, err, sizeof(err));
        if (rc != HSM_E_ARG)
            print_error("SAN \"%s\" was accepted\n", bad_sans[i]);
        assert_int_equal(rc, HSM_E_ARG);
        assert_contains(err, "SAN");
        assert_null(cert);
    }
    /* Unknown EKU bits, an out-of-range path length. */
    spec.nsans = 0;
    spec.eku = 0x80;
    assert_int_equal(hsm_ca_issue(g_api.ca[0], r0, r0_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    spec.eku = 0;
    spec.is_ca = 1;
    spec.path_len = 1000;
    assert_int_equal(hsm_ca_issue(g_api.ca[0], r0, r0_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    spec.is_ca = 0;
    spec.path_len = -1;

    /* Empty subject: refused without a SAN; with one, the SAN becomes critical (RFC 5280 4.2.1.6). */
    static const uint8_t empty_name[] = { 0x30, 0x00 };
    static const char *const san[] = { "DNS:nameless.example" };
    spec.subject = NULL;
    spec.subject_der = empty_name;
    spec.subject_der_len = sizeof(empty_name);
    assert_int_equal(hsm_ca_issue(g_api.ca[0], r0, r0_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "empty");
    spec.sans = san;
    spec.nsans = 1;
    assert_int_equal(hsm_ca_issue(g_api.ca[0], r0, r0_len, &spec, &cert, &len, err, sizeof(err)), 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/nameless.pem", g_dir);
    save_pem(path, "CERTIFICATE", cert, len);
    free(cert);
    cert = NULL;
    char *text = capture("openssl x509 -in %s -noout -text", path);
    assert_contains(text, "X509v3 Subject Alternative Name: critical\n                DNS:nameless.example");
    free(text);
    assert_int_equal(run("openssl verify -CAfile %s/root-ec256.pem %s >/dev/null 2>&1", g_dir, path), 0);
    /* Values that could inject into logs or identity headers, or that are not text, are not signed. */
    static const uint8_t crlf_name[] = { 0x30, 0x0f, 0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03,
                                         0x0c, 0x04, 'a', '\r', '\n', 'b' };
    static const uint8_t bmp_name[] = { 0x30, 0x0f, 0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03,
                                        0x1e, 0x04, 0x00, 'a', 0x00, 'b' };
    spec.subject_der = crlf_name;
    spec.subject_der_len = sizeof(crlf_name);
    assert_int_equal(hsm_ca_issue(g_api.ca[0], r0, r0_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    assert_contains(err, "not printable text");
    assert_null(cert);
    spec.subject_der = bmp_name;
    spec.subject_der_len = sizeof(bmp_name);
    assert_int_equal(hsm_ca_issue(g_api.ca[0], r0, r0_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);
    /* A subject that is not a Name. */
    spec.subject_der = (const uint8_t *)"\x31\x00";
    spec.subject_der_len = 2;
    assert_int_equal(hsm_ca_issue(g_api.ca[0], r0, r0_len, &spec, &cert, &len, err, sizeof(err)), HSM_E_ARG);

    free(leaf);
    free(r0);
    free(r1);
}

/* A CSR for an HSM key, made by us, read by OpenSSL and by us. */
static void test_csr_make(void **state)
{
    (void)state;
    static const char *const sans[] = { "DNS:srv.example", "IP:10.0.0.1" };
    for (int i = 0; i < NKINDS; i++) {
        uint8_t *der = NULL;
        size_t len = 0;
        char err[256] = "", path[128];
        int rc = hsm_ca_csr_make(g_api.leaf[i], "/CN=srv.example/O=hsmgate tests", sans, 2, &der, &len, err, sizeof(err));
        if (rc != 0)
            print_error("csr %s: %s\n", kinds[i].name, err);
        assert_int_equal(rc, 0);
        snprintf(path, sizeof(path), "%s/made-%s.csr", g_dir, kinds[i].name);
        save_pem(path, "CERTIFICATE REQUEST", der, len);
        char *text = capture("openssl req -in %s -verify -noout -text", path);
        assert_contains(text, "self-signature verify OK");
        assert_contains(text, "Subject: CN = srv.example, O = hsmgate tests");
        assert_contains(text, "DNS:srv.example, IP Address:10.0.0.1");
        free(text);
        struct hsm_ca_csr csr;
        assert_int_equal(hsm_ca_csr_parse(der, len, &csr, err, sizeof(err)), 0);
        size_t spki_len = 0;
        const uint8_t *spki = hsm_key_spki(g_api.leaf[i], &spki_len);
        assert_int_equal(csr.spki_len, spki_len);
        assert_memory_equal(csr.spki_der, spki, spki_len);
        hsm_ca_csr_clear(&csr);
        free(der);
    }
}

static void test_pem(void **state)
{
    (void)state;
    static const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
    static const char *const cert_label[] = { "CERTIFICATE", NULL };
    static const char *const other_label[] = { "X509 CRL", NULL };
    char *pem = NULL;
    size_t pem_len = 0, out_len = 0;
    uint8_t *out = NULL;
    char err[128];
    assert_int_equal(hsm_ca_pem_encode("CERTIFICATE", der, sizeof(der), &pem, &pem_len), 0);
    assert_string_equal(pem, "-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END CERTIFICATE-----\n");
    assert_int_equal(pem_len, strlen(pem));
    assert_int_equal(hsm_ca_pem_decode((uint8_t *)pem, pem_len, cert_label, &out, &out_len, err, sizeof(err)), 0);
    assert_int_equal(out_len, sizeof(der));
    assert_memory_equal(out, der, sizeof(der));
    free(out);
    assert_int_equal(hsm_ca_pem_decode((uint8_t *)pem, pem_len, other_label, &out, &out_len, err, sizeof(err)), HSM_E_ARG);
    assert_null(out);
    free(pem);
    /* 64-character lines (RFC 7468 2). */
    uint8_t big[100];
    memset(big, 0xab, sizeof(big));
    big[0] = 0x04;
    big[1] = 98;
    assert_int_equal(hsm_ca_pem_encode("X", big, sizeof(big), &pem, &pem_len), 0);
    char *line = strchr(pem, '\n') + 1;
    assert_int_equal(strchr(line, '\n') - line, 64);
    free(pem);
}

/* --- group 2: the CLI, in-process --- */

/* Runs `hsmgate pki ARGS...` (NULL-terminated) and returns its exit status; stdout goes to out. */
static int pki(char *out, size_t cap, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    va_start(ap, cap);
    argv[argc++] = "pki";
    for (char *s; argc < 63 && (s = va_arg(ap, char *)) != NULL;)
        argv[argc++] = s;
    va_end(ap);
    argv[argc] = NULL;

    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(path_of("stdout"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    int rc = gw_cmd_pki(argc, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    if (out != NULL && cap > 0) {
        ssize_t n = pread(fd, out, cap - 1, 0);
        out[n > 0 ? n : 0] = '\0';
    }
    close(fd);
    return rc;
}

#define MOD "--module", g_module, "--pin", g_pin_source

static void test_cli(void **state)
{
    (void)state;
    char out[512], root[128], server[128], client[128], cfg[128], csr[128];
    snprintf(root, sizeof(root), "%s/cli-root.pem", g_dir);
    snprintf(server, sizeof(server), "%s/cli-server.pem", g_dir);
    snprintf(client, sizeof(client), "%s/cli-client.crt", g_dir);
    snprintf(csr, sizeof(csr), "%s/ec256.csr", g_dir);

    assert_int_equal(pki(out, sizeof(out), "keygen", MOD, "--token-uri", TOKEN_URI, "--label", "cli-root", "--type",
                         "ec:P-384", NULL), 0);
    assert_string_equal(out, "pkcs11:token=hsmgate;object=cli-root;type=private\n");
    assert_int_equal(pki(out, sizeof(out), "keygen", MOD, "--token-uri", TOKEN_URI, "--label", "cli server",
                         "--type", "rsa:2048", NULL), 0);
    assert_string_equal(out, "pkcs11:token=hsmgate;object=cli%20server;type=private\n");
    /* The same label again is refused. */
    assert_int_equal(pki(out, sizeof(out), "keygen", MOD, "--token-uri", TOKEN_URI, "--label", "cli-root", "--type",
                         "ec:P-256", NULL), 1);

    assert_int_equal(pki(NULL, 0, "root", MOD, "--key", "pkcs11:token=hsmgate;object=cli-root;type=private",
                         "--subject", "/CN=hsmgate CLI Root CA", "--out", root, NULL), 0);
    char *text = capture("openssl x509 -in %s -noout -text -enddate", root);
    assert_contains(text, "CA:TRUE");
    assert_contains(text, "Signature Algorithm: ecdsa-with-SHA384");
    char date[64], want[96];
    openssl_date(time(NULL) + 3650 * DAY, date, sizeof(date));
    snprintf(want, sizeof(want), "notAfter=%.7s", date);    /* same month and day, 10 years on */
    assert_contains(text, want);
    free(text);

    assert_int_equal(pki(NULL, 0, "server", MOD, "--ca-key", "pkcs11:token=hsmgate;object=cli-root;type=private",
                         "--ca-cert", root, "--key", "pkcs11:token=hsmgate;object=cli%20server;type=private",
                         "--subject", "/CN=localhost", "--san", "DNS:localhost", "--san", "IP:127.0.0.1", "--days", "30",
                         "--chain", "--out", server, NULL), 0);
    assert_int_equal(run("openssl verify -purpose sslserver -CAfile %s %s >/dev/null 2>&1", root, server), 0);
    text = capture("openssl x509 -in %s -noout -text", server);
    assert_contains(text, "DNS:localhost, IP Address:127.0.0.1");
    assert_contains(text, "Digital Signature, Key Encipherment");
    assert_contains(text, "TLS Web Server Authentication\n");
    free(text);
    text = capture("grep -c 'BEGIN CERTIFICATE' %s", server);
    assert_string_equal(text, "2\n");
    free(text);
    /* Without --san the CN is the SAN. */
    assert_int_equal(pki(NULL, 0, "server", MOD, "--ca-key", "pkcs11:token=hsmgate;object=cli-root;type=private",
                         "--ca-cert", root, "--key", "pkcs11:token=hsmgate;object=cli%20server;type=private",
                         "--subject", "/CN=gw.example/O=X", "--out", server, NULL), 0);
    text = capture("openssl x509 -in %s -noout -ext subjectAltName", server);
    assert_contains(text, "DNS:gw.example");
    free(text);

    /* Client certificates from a CSR: normal, expired, not yet valid, CA, no EKU, subject override. */
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", "pkcs11:token=hsmgate;object=cli-root;type=private",
                         "--ca-cert", root, "--csr", csr, "--san", "email:alice@bank.example", "--out", client, NULL), 0);
    assert_int_equal(run("openssl verify -purpose sslclient -CAfile %s %s >/dev/null 2>&1", root, client), 0);
    text = capture("openssl x509 -in %s -noout -subject -ext extendedKeyUsage,subjectAltName", client);
    assert_contains(text, "subject=CN = alice, O = Bank");
    assert_contains(text, "TLS Web Client Authentication");
    assert_contains(text, "email:alice@bank.example");
    free(text);

    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", "pkcs11:token=hsmgate;object=cli-root;type=private",
                         "--ca-cert", root, "--csr", csr, "--not-before", "2020-01-01T00:00:00Z", "--not-after", "-2d",
                         "--out", client, NULL), 0);
    text = capture("openssl verify -CAfile %s %s", root, client);
    assert_contains(text, "certificate has expired");
    free(text);
    text = capture("openssl x509 -in %s -noout -startdate", client);
    assert_contains(text, "notBefore=Jan  1 00:00:00 2020 GMT");
    free(text);

    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", "pkcs11:token=hsmgate;object=cli-root;type=private",
                         "--ca-cert", root, "--csr", csr, "--not-before", "+1d", "--out", client, NULL), 0);
    text = capture("openssl verify -CAfile %s %s", root, client);
    assert_contains(text, "certificate is not yet valid");
    free(text);

    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", "pkcs11:token=hsmgate;object=cli-root;type=private",
                         "--ca-cert", root, "--csr", csr, "--ca", "--out", client, NULL), 0);
    text = capture("openssl x509 -in %s -noout -text", client);
    assert_contains(text, "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0");
    assert_contains(text, "TLS Web Client Authentication");
    free(text);

    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", "pkcs11:token=hsmgate;object=cli-root;type=private",
                         "--ca-cert", root, "--csr", csr, "--eku", "none", "--subject", "/CN=mallory", "--out", client,
                         NULL), 0);
    text = capture("openssl x509 -in %s -noout -text", client);
    assert_not_contains(text, "Extended Key Usage");
    assert_contains(text, "Subject: CN = mallory\n");
    free(text);
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", "pkcs11:token=hsmgate;object=cli-root;type=private",
                         "--ca-cert", root, "--csr", csr, "--eku", "serverAuth,clientAuth", "--out", client, NULL), 0);
    assert_int_equal(run("openssl verify -purpose sslserver -CAfile %s %s >/dev/null 2>&1", root, client), 0);

    /* The csr sub-command, then its request through client. */
    char made[128];
    snprintf(made, sizeof(made), "%s/cli-made.csr", g_dir);
    assert_int_equal(pki(NULL, 0, "csr", MOD, "--key", "pkcs11:token=hsmgate;object=cli%20server;type=private",
                         "--subject", "/CN=made", "--out", made, NULL), 0);
    assert_int_equal(run("openssl req -in %s -verify -noout >/dev/null 2>&1", made), 0);
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", "pkcs11:token=hsmgate;object=cli-root;type=private",
                         "--ca-cert", root, "--csr", made, "--out", client, NULL), 0);

    /* -c FILE supplies the module and the pin source. */
    snprintf(cfg, sizeof(cfg), "%s/hsmgate.yaml", g_dir);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "hsm: { module: \"%s\", pin: \"%s\" }\n"
             "listeners:\n"
             "  - name: web\n"
             "    bind: 127.0.0.1:9443\n"
             "    certificate: %s\n"
             "    key: \"pkcs11:token=hsmgate;object=cli%%20server;type=private\"\n"
             "    backends: [127.0.0.1:9080]\n",
             g_module, g_pin_source, server);
    write_file(cfg, yaml, strlen(yaml));
    assert_int_equal(pki(NULL, 0, "client", "-c", cfg, "--ca-key", "pkcs11:token=hsmgate;object=cli-root;type=private",
                         "--ca-cert", root, "--csr", csr, "--out", client, NULL), 0);
    assert_int_equal(run("openssl verify -CAfile %s %s >/dev/null 2>&1", root, client), 0);
}

static void test_cli_errors(void **state)
{
    (void)state;
    char root[128], bad[128], csr[128], out_path[128];
    snprintf(root, sizeof(root), "%s/cli-root.pem", g_dir);
    snprintf(csr, sizeof(csr), "%s/ec256.csr", g_dir);
    snprintf(bad, sizeof(bad), "%s/bad.csr", g_dir);
    snprintf(out_path, sizeof(out_path), "%s/never.pem", g_dir);
    write_file(bad, "garbage\n", 8);
    const char *ca = "pkcs11:token=hsmgate;object=cli-root;type=private";

    /* Usage errors: 2. */
    assert_int_equal(pki(NULL, 0, NULL), 2);
    assert_int_equal(pki(NULL, 0, "frobnicate", NULL), 2);
    assert_int_equal(pki(NULL, 0, "root", MOD, "--subject", "/CN=x", "--out", out_path, NULL), 2);   /* no --key */
    assert_int_equal(pki(NULL, 0, "root", MOD, "--key", ca, "--subject", "/CN=x", "--out", out_path, "--bogus", NULL), 2);
    assert_int_equal(pki(NULL, 0, "root", MOD, "--key", ca, "--subject", "/CN=x", "--out", out_path, "--csr", csr, NULL), 2);
    assert_int_equal(pki(NULL, 0, "root", MOD, "--key", ca, "--subject", "/CN=x", "--out", out_path, "--days", "0", NULL), 2);
    assert_int_equal(pki(NULL, 0, "root", MOD, "--key", ca, "--subject", "/CN=x", "--out", out_path, "extra", NULL), 2);
    assert_int_equal(pki(NULL, 0, "root", "--module", g_module, "--pin", "1234", "--key", ca, "--subject", "/CN=x",
                         "--out", out_path, NULL), 2);
    assert_int_equal(pki(NULL, 0, "keygen", MOD, "--token-uri", TOKEN_URI, "--label", "x", "--type", "ec:P-521", NULL), 2);
    assert_int_equal(pki(NULL, 0, "keygen", MOD, "--token-uri", "pkcs11:token=hsmgate;object=y", "--label", "x",
                         "--type", "ec:P-256", NULL), 2);
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", ca, "--ca-cert", root, "--csr", csr, "--out", out_path,
                         "--eku", "codeSigning", NULL), 2);
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", ca, "--ca-cert", root, "--csr", csr, "--out", out_path,
                         "--not-before", "yesterday", NULL), 2);
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", ca, "--ca-cert", root, "--csr", csr, "--out", out_path,
                         "--not-before", "2021-02-30T00:00:00Z", NULL), 2);
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", ca, "--ca-cert", root, "--csr", csr, "--out", out_path,
                         "--days", "5", "--not-after", "+3d", NULL), 2);
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", ca, "--ca-cert", root, "--csr", csr, "--out", out_path,
                         "--not-before", "+3d", "--not-after", "+1d", NULL), 2);
    /* --help: 0. */
    assert_int_equal(pki(NULL, 0, "--help", NULL), 0);
    assert_int_equal(pki(NULL, 0, "client", "--help", NULL), 0);

    /* Failures: 1, and no output file. */
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", ca, "--ca-cert", root, "--csr", bad, "--out", out_path, NULL), 1);
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", ca, "--ca-cert", root, "--csr", csr, "--subject", "CN=x",
                         "--out", out_path, NULL), 1);
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", ca, "--ca-cert", csr, "--csr", csr, "--out", out_path, NULL), 1);
    assert_int_equal(pki(NULL, 0, "client", MOD, "--ca-key", "pkcs11:token=hsmgate;object=nothere;type=private",
                         "--ca-cert", root, "--csr", csr, "--out", out_path, NULL), 1);
    assert_int_equal(pki(NULL, 0, "root", MOD, "--key", ca, "--subject", "/CN=x", "--out", "/nonexistent/dir/x.pem", NULL), 1);
    assert_int_not_equal(access(out_path, F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest api[] = {
        cmocka_unit_test(test_chain_ec256),
        cmocka_unit_test(test_chain_ec384),
        cmocka_unit_test(test_chain_rsa2048),
        cmocka_unit_test(test_client_from_csr),
        cmocka_unit_test(test_validity),
        cmocka_unit_test(test_subject_parse),
        cmocka_unit_test(test_csr_bad_signature),
        cmocka_unit_test(test_csr_garbage),
        cmocka_unit_test(test_unsupported_keys),
        cmocka_unit_test(test_issue_refusals),
        cmocka_unit_test(test_csr_make),
        cmocka_unit_test(test_pem),
    };
    const struct CMUnitTest cli[] = {
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_cli_errors),
    };
    if (global_setup() != 0) {
        fprintf(stderr, "test_ca: cannot set up a SoftHSM token in %s\n", g_dir);
        global_teardown();
        return 1;
    }
    int failed = cmocka_run_group_tests_name("ca", api, api_setup, api_teardown);
    failed += cmocka_run_group_tests_name("pki cli", cli, NULL, NULL);
    global_teardown();
    return failed == 0 ? 0 : 1;
}

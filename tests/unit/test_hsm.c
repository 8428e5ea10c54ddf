/* test_hsm.c - the HSM layer against a real SoftHSM2 token in a temporary directory.
 *
 * Signatures are checked with wolfCrypt from the public key hsm_key_spki returns. Session loss is made
 * real by the fault shim (tests/fault/p11shim.c): it closes SoftHSM's sessions while its trigger file
 * exists. The shim is found through HSMGATE_SHIM or next to this binary (build/<flavour>/tests/).
 * No two contexts live at once: they share SoftHSM, and with it the token's login state. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/sha512.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11/hsm.h"
#include "pkcs11/internal.h"   /* white-box checks: per-thread sessions, key attributes */

#define SOFTHSM "/usr/lib/softhsm/libsofthsm2.so"
#define TOKEN "pkcs11:token=hsmgate"

static char tmpdir[64];
static char pinfile[PATH_MAX];
static char pinsrc[PATH_MAX + 8];
static char faultfile[PATH_MAX];
static char shim[PATH_MAX];

/* Every log line, to check what was said and that no PIN was. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char logbuf[64 * 1024];
static size_t loglen;

static void test_logger(int level, const char *msg)
{
    if (getenv("HSMTEST_VERBOSE") != NULL)
        fprintf(stderr, "log[%d]: %s\n", level, msg);
    pthread_mutex_lock(&log_mu);
    loglen += (size_t)snprintf(logbuf + loglen, sizeof(logbuf) - loglen, "%s\n", msg);
    if (loglen >= sizeof(logbuf) - 1)
        loglen = 0;
    pthread_mutex_unlock(&log_mu);
}

static void log_clear(void)
{
    pthread_mutex_lock(&log_mu);
    loglen = 0;
    logbuf[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

static int log_has(const char *s)
{
    int r;

    pthread_mutex_lock(&log_mu);
    r = strstr(logbuf, s) != NULL;
    pthread_mutex_unlock(&log_mu);
    return r;
}

#define assert_hsm_ok(expr, err)                                                      \
    do {                                                                              \
        int rc_ = (expr);                                                             \
        if (rc_ != 0)                                                                 \
            fail_msg("%s = %d (%s): %s", #expr, rc_, hsm_strerror(rc_), (err));       \
    } while (0)

static void write_file(const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    close(fd);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static struct hsm_ctx *ctx_open(const char *module, const char *pin)
{
    struct hsm_ctx *ctx = NULL;
    char err[256] = "";

    assert_hsm_ok(hsm_ctx_new(&ctx, module, pin, err, sizeof(err)), err);
    return ctx;
}

static struct hsm_key *key_open(struct hsm_ctx *ctx, const char *uri)
{
    struct hsm_key *key = NULL;
    char err[512] = "";

    assert_hsm_ok(hsm_key_open(ctx, uri, &key, err, sizeof(err)), err);
    assert_non_null(key);
    return key;
}

/* --- signature checks with wolfCrypt --- */

static const uint8_t di_sha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

static void hash_of(const char *msg, unsigned bits, uint8_t *out)
{
    const uint8_t *m = (const uint8_t *)msg;
    word32 n = (word32)strlen(msg);

    if (bits == 256)
        assert_int_equal(wc_Sha256Hash(m, n, out), 0);
    else if (bits == 384)
        assert_int_equal(wc_Sha384Hash(m, n, out), 0);
    else
        assert_int_equal(wc_Sha512Hash(m, n, out), 0);
}

static int ecdsa_ok(const struct hsm_key *key, const uint8_t *hash, size_t hlen, const uint8_t *sig, size_t slen)
{
    size_t spki_len;
    const uint8_t *spki = hsm_key_spki(key, &spki_len);
    ecc_key ec;
    word32 idx = 0;
    int res = 0;

    assert_int_equal(wc_ecc_init(&ec), 0);
    assert_int_equal(wc_EccPublicKeyDecode(spki, &idx, &ec, (word32)spki_len), 0);
    assert_int_equal(idx, spki_len);
    if (wc_ecc_verify_hash(sig, (word32)slen, hash, (word32)hlen, &res, &ec) != 0)
        res = 0;
    wc_ecc_free(&ec);
    return res == 1;
}

static void rsa_decode(const struct hsm_key *key, RsaKey *rsa)
{
    size_t spki_len;
    const uint8_t *spki = hsm_key_spki(key, &spki_len);
    word32 idx = 0;

    assert_int_equal(wc_InitRsaKey(rsa, NULL), 0);
    assert_int_equal(wc_RsaPublicKeyDecode(spki, &idx, rsa, (word32)spki_len), 0);
    assert_int_equal(idx, spki_len);
    assert_int_equal(wc_RsaEncryptSize(rsa) * 8, (int)hsm_key_bits(key));
}

static int rsa_pkcs1_ok(const struct hsm_key *key, const uint8_t *di, size_t dlen, const uint8_t *sig, size_t slen)
{
    RsaKey rsa;
    uint8_t out[512];
    int n;

    rsa_decode(key, &rsa);
    n = wc_RsaSSL_Verify(sig, (word32)slen, out, sizeof(out), &rsa);
    wc_FreeRsaKey(&rsa);
    return n == (int)dlen && memcmp(out, di, dlen) == 0;
}

static int rsa_pss_ok(const struct hsm_key *key, unsigned bits, const uint8_t *hash, const uint8_t *sig, size_t slen)
{
    RsaKey rsa;
    uint8_t in[512], out[512];
    enum wc_HashType ht = bits == 256 ? WC_HASH_TYPE_SHA256 : bits == 384 ? WC_HASH_TYPE_SHA384 : WC_HASH_TYPE_SHA512;
    int mgf = bits == 256 ? WC_MGF1SHA256 : bits == 384 ? WC_MGF1SHA384 : WC_MGF1SHA512;
    int n;

    memcpy(in, sig, slen);
    rsa_decode(key, &rsa);
    n = wc_RsaPSS_VerifyCheck(in, (word32)slen, out, sizeof(out), hash, bits / 8, ht, mgf, &rsa);
    wc_FreeRsaKey(&rsa);
    return n > 0;
}

/* Signs hash(msg) with ECDSA and checks it, and that a flipped bit fails. */
static void check_ecdsa(struct hsm_key *key, unsigned hbits, const char *msg)
{
    uint8_t hash[64], sig[160];
    size_t slen = sizeof(sig);

    hash_of(msg, hbits, hash);
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, hbits / 8, sig, &slen), 0);
    assert_true(slen > 8 && slen <= 2 * (hsm_key_bits(key) / 8 + 2) + 6);
    assert_int_equal(sig[0], 0x30);
    assert_true(ecdsa_ok(key, hash, hbits / 8, sig, slen));
    hash[0] ^= 1;
    assert_false(ecdsa_ok(key, hash, hbits / 8, sig, slen));
}

static void check_rsa_pkcs1(struct hsm_key *key, const char *msg)
{
    uint8_t di[sizeof(di_sha256) + 32], sig[512];
    size_t slen = sizeof(sig);

    memcpy(di, di_sha256, sizeof(di_sha256));
    hash_of(msg, 256, di + sizeof(di_sha256));
    assert_int_equal(hsm_sign(key, HSM_SIG_RSA_PKCS1, 0, di, sizeof(di), sig, &slen), 0);
    assert_int_equal(slen, hsm_key_bits(key) / 8);
    assert_true(rsa_pkcs1_ok(key, di, sizeof(di), sig, slen));
    sig[slen / 2] ^= 1;
    assert_false(rsa_pkcs1_ok(key, di, sizeof(di), sig, slen));
}

static void check_rsa_pss(struct hsm_key *key, unsigned bits, const char *msg)
{
    uint8_t hash[64], sig[512];
    size_t slen = sizeof(sig);

    hash_of(msg, bits, hash);
    assert_int_equal(hsm_sign(key, HSM_SIG_RSA_PSS, bits, hash, bits / 8, sig, &slen), 0);
    assert_int_equal(slen, hsm_key_bits(key) / 8);
    assert_true(rsa_pss_ok(key, bits, hash, sig, slen));
    hash[1] ^= 1;
    assert_false(rsa_pss_ok(key, bits, hash, sig, slen));
}

/* --- setup --- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    char path[PATH_MAX + 64], cmd[PATH_MAX * 2];
    const char *env_shim = getenv("HSMGATE_SHIM");
    struct hsm_ctx *ctx = NULL;
    char err[512] = "";
    static const char *const keys[][2] = {{"ec256", "ec:P-256"}, {"ec384", "ec:P-384"}, {"rsa2048", "rsa:2048"}};

    (void)state;
    hsm_set_logger(test_logger);
    wolfCrypt_Init();
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/hsmtest.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/tokens", tmpdir);
    if (mkdir(path, 0700) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/softhsm2.conf", tmpdir);
    snprintf(cmd, sizeof(cmd), "directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
             tmpdir);
    write_file(path, cmd, 0600);
    setenv("SOFTHSM2_CONF", path, 1);
    if (system("softhsm2-util --init-token --free --label hsmgate --so-pin 12345678 --pin 1234 >/dev/null") != 0) {
        fprintf(stderr, "softhsm2-util --init-token failed\n");
        return -1;
    }
    snprintf(pinfile, sizeof(pinfile), "%s/pin", tmpdir);
    write_file(pinfile, "1234\n", 0600);
    snprintf(pinsrc, sizeof(pinsrc), "file:%s", pinfile);
    snprintf(faultfile, sizeof(faultfile), "%s/fault", tmpdir);
    setenv("P11SHIM_FAULT", faultfile, 1);
    setenv("HSMTEST_PIN", "1234", 1);

    if (env_shim != NULL && env_shim[0] != '\0') {
        snprintf(shim, sizeof(shim), "%s", env_shim);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        if (n < 0)
            return -1;
        self[n] = '\0';
        snprintf(shim, sizeof(shim), "%s/libp11shim.so", dirname(self));
    }
    if (access(shim, R_OK) != 0) {
        fprintf(stderr, "fault shim %s not found: build it (make %s) or set HSMGATE_SHIM\n", shim, "build/<flavour>/tests/libp11shim.so");
        return -1;
    }

    /* The keys most tests use; generation itself is tested below with other labels. */
    if (hsm_ctx_new(&ctx, SOFTHSM, pinsrc, err, sizeof(err)) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (hsm_key_generate(ctx, TOKEN, keys[i][0], keys[i][1], NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "setup: %s\n", err);
            hsm_ctx_free(ctx);
            return -1;
        }
    }
    hsm_ctx_free(ctx);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (tmpdir[0] != '\0')
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    wolfCrypt_Cleanup();
    return 0;
}

/* --- pin sources --- */

static void test_pin_file_ok(void **state)
{
    char pin[64], err[256] = "", path[PATH_MAX + 16], src[PATH_MAX + 32];
    size_t len = 0;

    (void)state;
    assert_hsm_ok(hsm_pin_read(pinsrc, pin, sizeof(pin), &len, err, sizeof(err)), err);
    assert_string_equal(pin, "1234");
    assert_int_equal(len, 4);
    /* Only the first line, CRLF stripped. */
    snprintf(path, sizeof(path), "%s/pin-crlf", tmpdir);
    write_file(path, "s3cr3t\r\nsecond line\n", 0400);
    snprintf(src, sizeof(src), "file:%s", path);
    assert_hsm_ok(hsm_pin_read(src, pin, sizeof(pin), &len, err, sizeof(err)), err);
    assert_string_equal(pin, "s3cr3t");
    assert_int_equal(len, 6);
    hsm_wipe(pin, sizeof(pin));
    assert_int_equal(pin[0], 0);
}

static void test_pin_file_refused(void **state)
{
    char pin[64], err[256] = "", path[PATH_MAX + 16], src[PATH_MAX + 32];
    size_t len = 0;

    (void)state;
    snprintf(path, sizeof(path), "%s/pin-644", tmpdir);
    write_file(path, "4321\n", 0644);
    snprintf(src, sizeof(src), "file:%s", path);
    assert_int_equal(hsm_pin_read(src, pin, sizeof(pin), &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
    assert_non_null(strstr(err, "readable by group or others"));
    assert_null(strstr(err, "4321"));
    /* Group-readable alone is refused too. */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(hsm_pin_read(src, pin, sizeof(pin), &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
    /* Missing file, relative path, empty file, too long for the buffer. */
    snprintf(src, sizeof(src), "file:%s/nonexistent", tmpdir);
    assert_int_equal(hsm_pin_read(src, pin, sizeof(pin), &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(hsm_pin_read("file:pin.txt", pin, sizeof(pin), &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
    snprintf(path, sizeof(path), "%s/pin-empty", tmpdir);
    write_file(path, "\n", 0600);
    snprintf(src, sizeof(src), "file:%s", path);
    assert_int_equal(hsm_pin_read(src, pin, sizeof(pin), &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
    assert_int_equal(hsm_pin_read(pinsrc, pin, 4, &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
    assert_int_equal(len, 0);
}

static void test_pin_env(void **state)
{
    char pin[64], err[256] = "";
    size_t len = 0;

    (void)state;
    setenv("HSMTEST_PIN2", "98765", 1);
    assert_hsm_ok(hsm_pin_read("env:HSMTEST_PIN2", pin, sizeof(pin), &len, err, sizeof(err)), err);
    assert_string_equal(pin, "98765");
    assert_int_equal(len, 5);
    unsetenv("HSMTEST_PIN2");
    assert_int_equal(hsm_pin_read("env:HSMTEST_PIN2", pin, sizeof(pin), &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
    assert_non_null(strstr(err, "not set"));
    assert_int_equal(hsm_pin_read("env:", pin, sizeof(pin), &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
}

static void test_pin_bad_scheme(void **state)
{
    char pin[64], err[256] = "";
    size_t len = 0;

    (void)state;
    /* The value is never echoed: it might be the PIN pasted in the wrong place. */
    assert_int_equal(hsm_pin_read("1234", pin, sizeof(pin), &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
    assert_null(strstr(err, "1234"));
    assert_int_equal(hsm_pin_read("exec:/bin/echo", pin, sizeof(pin), &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
    assert_int_equal(hsm_pin_read("", pin, sizeof(pin), &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
    assert_int_equal(hsm_pin_read(NULL, pin, sizeof(pin), &len, err, sizeof(err)), HSM_E_PIN_SOURCE);
    assert_int_equal(hsm_pin_read("env:X", pin, 1, &len, err, sizeof(err)), HSM_E_ARG);
}

/* --- URIs --- */

static void test_uri_errors(void **state)
{
    struct hsm_ctx *ctx = ctx_open(SOFTHSM, pinsrc);
    struct hsm_key *key = NULL;
    char err[512] = "";

    (void)state;
    assert_int_equal(hsm_key_open(ctx, "garbage", &key, err, sizeof(err)), HSM_E_URI);
    assert_null(key);
    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=hsmgate;object=%zz", &key, err, sizeof(err)), HSM_E_URI);
    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=hsmgate;objekt=ec256", &key, err, sizeof(err)), HSM_E_URI);
    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=hsmgate;object=ec256;type=cert", &key, err, sizeof(err)), HSM_E_URI);
    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=hsmgate;object=ec256?module-path=/nonexistent/mod.so", &key, err,
                                  sizeof(err)),
                     HSM_E_MODULE);
    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=hsmgate;object=ec256?module-name=no-such-module", &key, err,
                                  sizeof(err)),
                     HSM_E_MODULE);

    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=nosuch;object=ec256", &key, err, sizeof(err)), HSM_E_TOKEN);
    assert_non_null(strstr(err, "token=nosuch"));
    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=hsmgate;object=nosuch", &key, err, sizeof(err)), HSM_E_KEY);
    assert_non_null(strstr(err, "object=nosuch"));
    assert_non_null(strstr(err, "no private key"));
    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=hsmgate;type=private", &key, err, sizeof(err)), HSM_E_KEY);
    assert_non_null(strstr(err, "more than one"));
    /* A public key is not a private key. */
    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=hsmgate;object=ec256;type=public", &key, err, sizeof(err)),
                     HSM_E_URI);
    assert_null(key);
    hsm_ctx_free(ctx);

    /* No module anywhere. */
    ctx = ctx_open(NULL, pinsrc);
    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=hsmgate;object=ec256", &key, err, sizeof(err)), HSM_E_URI);
    assert_non_null(strstr(err, "module"));
    hsm_ctx_free(ctx);

    /* Login required and no pin source. */
    ctx = ctx_open(SOFTHSM, NULL);
    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=hsmgate;object=ec256", &key, err, sizeof(err)), HSM_E_PIN_SOURCE);
    hsm_ctx_free(ctx);
}

static void test_wrong_pin(void **state)
{
    struct hsm_ctx *ctx;
    struct hsm_key *key = NULL;
    char err[512] = "";

    (void)state;
    log_clear();
    setenv("HSMTEST_WRONG", "98765432", 1);
    ctx = ctx_open(SOFTHSM, "env:HSMTEST_WRONG");
    assert_int_equal(hsm_key_open(ctx, "pkcs11:token=hsmgate;object=ec256", &key, err, sizeof(err)), HSM_E_PIN);
    assert_null(key);
    assert_non_null(strstr(err, "CKR_PIN_INCORRECT"));
    assert_null(strstr(err, "98765432"));
    assert_false(log_has("98765432"));
    hsm_ctx_free(ctx);
    unsetenv("HSMTEST_WRONG");

    /* The right PIN still works afterwards (no retry burned it). */
    ctx = ctx_open(SOFTHSM, "env:HSMTEST_PIN");
    key = key_open(ctx, "pkcs11:token=hsmgate;object=ec256");
    hsm_ctx_free(ctx);
}

static void test_uri_query_attributes(void **state)
{
    struct hsm_ctx *ctx;
    struct hsm_key *key, *again;
    char uri[PATH_MAX + 128];

    (void)state;
    /* module-name through p11-kit's registry, pin-source in the URI, no context defaults. */
    ctx = ctx_open(NULL, NULL);
    snprintf(uri, sizeof(uri), "pkcs11:token=hsmgate;object=ec256;type=private?module-name=softhsm2&pin-source=%s",
             pinsrc);
    key = key_open(ctx, uri);
    assert_int_equal(hsm_key_type(key), HSM_KEY_EC);
    assert_int_equal(hsm_key_bits(key), 256);
    hsm_ctx_free(ctx);

    /* pin-value works, is warned about, and never shows in the key's URI or the log. */
    log_clear();
    ctx = ctx_open(NULL, NULL);
    key = key_open(ctx, "pkcs11:token=hsmgate;object=rsa2048?module-path=" SOFTHSM "&pin-value=1234");
    assert_true(log_has("pin-value in the URI is discouraged"));
    assert_null(strstr(hsm_key_uri(key), "pin-value"));
    assert_false(log_has("pin-value=1234"));
    assert_int_equal(hsm_key_type(key), HSM_KEY_RSA);
    /* The same URI, or the key's own canonical URI, gives the same key. */
    again = key_open(ctx, "pkcs11:token=hsmgate;object=rsa2048?module-path=" SOFTHSM "&pin-value=1234");
    assert_ptr_equal(again, key);
    again = key_open(ctx, hsm_key_uri(key));
    assert_ptr_equal(again, key);
    hsm_ctx_free(ctx);
}

/* --- key generation and signatures --- */

/* The private half must be sensitive, unextractable, a token object (PKCS#11 v2.40 4.9). */
static void check_private_attrs(struct hsm_key *key)
{
    CK_BBOOL sens = CK_FALSE, extr = CK_TRUE, tokn = CK_FALSE, priv = CK_FALSE;
    CK_ATTRIBUTE a[] = {
        {CKA_SENSITIVE, &sens, sizeof(sens)},
        {CKA_EXTRACTABLE, &extr, sizeof(extr)},
        {CKA_TOKEN, &tokn, sizeof(tokn)},
        {CKA_PRIVATE, &priv, sizeof(priv)},
    };

    assert_int_equal(key->tok->mod->fl->C_GetAttributeValue(key->tok->main_sess, key->main_h, a, 4), CKR_OK);
    assert_true(sens == CK_TRUE && extr == CK_FALSE && tokn == CK_TRUE && priv == CK_TRUE);
}

static void test_keygen_ec(void **state)
{
    struct hsm_ctx *ctx = ctx_open(SOFTHSM, pinsrc);
    struct hsm_key *k256 = NULL, *k384 = NULL;
    char err[512] = "";

    (void)state;
    assert_hsm_ok(hsm_key_generate(ctx, TOKEN, "gen-p256", "ec:P-256", &k256, err, sizeof(err)), err);
    assert_hsm_ok(hsm_key_generate(ctx, TOKEN, "gen-p384", "ec:P-384", &k384, err, sizeof(err)), err);
    assert_int_equal(hsm_key_type(k256), HSM_KEY_EC);
    assert_int_equal(hsm_key_bits(k256), 256);
    assert_int_equal(hsm_key_bits(k384), 384);
    assert_string_equal(hsm_key_path(k256, HSM_SIG_ECDSA), "CKM_ECDSA");
    assert_non_null(strstr(hsm_key_path(k256, HSM_SIG_RSA_PSS), "unavailable"));
    check_private_attrs(k256);
    check_private_attrs(k384);
    assert_hsm_ok(hsm_thread_attach(ctx, 0, 0), "attach");
    check_ecdsa(k256, 256, "hello p-256");
    check_ecdsa(k384, 384, "hello p-384");
    check_ecdsa(k384, 256, "a shorter hash on P-384");
    hsm_thread_detach(ctx);
    hsm_ctx_free(ctx);

    /* A fresh context finds them by label. */
    ctx = ctx_open(SOFTHSM, pinsrc);
    k256 = key_open(ctx, "pkcs11:token=hsmgate;object=gen-p256;type=private");
    assert_hsm_ok(hsm_thread_attach(ctx, 3, 1), "attach");
    check_ecdsa(k256, 256, "again");
    hsm_ctx_free(ctx);
}

static void test_keygen_rsa(void **state)
{
    struct hsm_ctx *ctx = ctx_open(SOFTHSM, pinsrc);
    static const char *const specs[][2] = {{"gen-rsa2048", "rsa:2048"}, {"gen-rsa3072", "rsa:3072"},
                                           {"gen-rsa4096", "rsa:4096"}};
    char err[512] = "";

    (void)state;
    assert_hsm_ok(hsm_thread_attach(ctx, 0, 0), "attach");
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        struct hsm_key *key = NULL;

        assert_hsm_ok(hsm_key_generate(ctx, TOKEN, specs[i][0], specs[i][1], &key, err, sizeof(err)), err);
        assert_int_equal(hsm_key_type(key), HSM_KEY_RSA);
        assert_int_equal(hsm_key_bits(key), (unsigned)atoi(specs[i][1] + 4));
        assert_string_equal(hsm_key_path(key, HSM_SIG_RSA_PKCS1), "CKM_RSA_PKCS");
        assert_string_equal(hsm_key_path(key, HSM_SIG_RSA_PSS), "CKM_RSA_PKCS_PSS");
        check_private_attrs(key);
        check_rsa_pkcs1(key, specs[i][0]);
        check_rsa_pss(key, 256, specs[i][0]);
        check_rsa_pss(key, 384, specs[i][0]);
        check_rsa_pss(key, 512, specs[i][0]);
    }
    hsm_ctx_free(ctx);
}

static void test_keygen_errors(void **state)
{
    struct hsm_ctx *ctx = ctx_open(SOFTHSM, pinsrc);
    struct hsm_key *key = NULL;
    char err[512] = "";

    (void)state;
    assert_int_equal(hsm_key_generate(ctx, TOKEN, "ec256", "ec:P-256", &key, err, sizeof(err)), HSM_E_EXISTS);
    assert_non_null(strstr(err, "ec256"));
    assert_null(key);
    assert_int_equal(hsm_key_generate(ctx, TOKEN, "x", "ec:P-521", &key, err, sizeof(err)), HSM_E_KEYTYPE);
    assert_int_equal(hsm_key_generate(ctx, TOKEN, "x", "rsa:1024", &key, err, sizeof(err)), HSM_E_KEYTYPE);
    assert_int_equal(hsm_key_generate(ctx, TOKEN, "x", "dsa:2048", &key, err, sizeof(err)), HSM_E_KEYTYPE);
    assert_int_equal(hsm_key_generate(ctx, TOKEN, "", "ec:P-256", &key, err, sizeof(err)), HSM_E_ARG);
    assert_int_equal(hsm_key_generate(ctx, "pkcs11:token=nosuch", "x", "ec:P-256", &key, err, sizeof(err)),
                     HSM_E_TOKEN);
    assert_int_equal(hsm_key_generate(ctx, "nonsense", "x", "ec:P-256", &key, err, sizeof(err)), HSM_E_URI);
    hsm_ctx_free(ctx);
}

static void test_sign_errors(void **state)
{
    struct hsm_ctx *ctx = ctx_open(SOFTHSM, pinsrc);
    struct hsm_key *ec = key_open(ctx, "pkcs11:token=hsmgate;object=ec256");
    struct hsm_key *rsa = key_open(ctx, "pkcs11:token=hsmgate;object=rsa2048");
    uint8_t hash[32] = {1, 2, 3}, sig[512];
    size_t slen = sizeof(sig);
    struct hsm_stats st;

    (void)state;
    assert_int_equal(hsm_sign(ec, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_NOT_ATTACHED);
    assert_int_equal(hsm_thread_attach(ctx, HSM_MAX_THREADS, 0), HSM_E_ARG);
    assert_int_equal(hsm_thread_attach(NULL, 0, 0), HSM_E_ARG);
    assert_hsm_ok(hsm_thread_attach(ctx, 7, 0), "attach");
    assert_int_equal(hsm_sign(ec, HSM_SIG_RSA_PSS, 256, hash, 32, sig, &slen), HSM_E_ARG);
    assert_int_equal(hsm_sign(rsa, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_ARG);
    assert_int_equal(hsm_sign(rsa, HSM_SIG_RSA_PSS, 256, hash, 20, sig, &slen), HSM_E_ARG);
    assert_int_equal(hsm_sign(rsa, HSM_SIG_RSA_PSS, 224, hash, 28, sig, &slen), HSM_E_ARG);
    slen = 255;
    assert_int_equal(hsm_sign(rsa, HSM_SIG_RSA_PSS, 256, hash, 32, sig, &slen), HSM_E_ARG);
    slen = 16;
    assert_int_equal(hsm_sign(ec, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_ARG);
    slen = sizeof(sig);
    assert_int_equal(hsm_sign(ec, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), 0);
    assert_true(ecdsa_ok(ec, hash, 32, sig, slen));
    hsm_stats_get(ctx, &st);
    assert_int_equal(st.signs, 1);
    assert_int_equal(st.sign_errors, 7);
    assert_int_equal(st.session_lost, 0);
    assert_string_equal(hsm_strerror(HSM_E_PIN), "the token refused the PIN");
    assert_non_null(hsm_strerror(12345));
    hsm_thread_detach(ctx);
    slen = sizeof(sig);
    assert_int_equal(hsm_sign(ec, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_NOT_ATTACHED);
    hsm_ctx_free(ctx);
}

/* --- threads --- */

struct other_attach {
    struct hsm_ctx *ctx;
    unsigned index;
    int rc;
};

static void *other_attach_main(void *p)
{
    struct other_attach *oa = p;

    oa->rc = hsm_thread_attach(oa->ctx, oa->index, 0);
    if (oa->rc == 0)
        hsm_thread_detach(oa->ctx);
    return NULL;
}

static void test_attach_index_owned(void **state)
{
    struct hsm_ctx *ctx = ctx_open(SOFTHSM, pinsrc);
    struct other_attach oa = {ctx, 0, 1};
    pthread_t t;

    (void)state;
    assert_hsm_ok(hsm_thread_attach(ctx, 0, 0), "attach");
    assert_int_equal(pthread_create(&t, NULL, other_attach_main, &oa), 0);
    pthread_join(t, NULL);
    assert_int_equal(oa.rc, HSM_E_ARG);
    oa.index = 1;
    assert_int_equal(pthread_create(&t, NULL, other_attach_main, &oa), 0);
    pthread_join(t, NULL);
    assert_int_equal(oa.rc, 0);
    hsm_thread_detach(ctx);
    oa.index = 0;
    assert_int_equal(pthread_create(&t, NULL, other_attach_main, &oa), 0);
    pthread_join(t, NULL);
    assert_int_equal(oa.rc, 0);
    hsm_ctx_free(ctx);
}

#define THREAD_SIGNS 300

struct worker {
    struct hsm_key *key;
    unsigned index;
    int ok, bad;
    CK_SESSION_HANDLE sess;
};

static void *worker_main(void *p)
{
    struct worker *w = p;
    uint8_t hash[32], sig[80];

    if (hsm_thread_attach(w->key->ctx, w->index, 1) != 0) {
        w->bad = THREAD_SIGNS;
        return NULL;
    }
    for (int i = 0; i < THREAD_SIGNS; i++) {
        size_t slen = sizeof(sig);
        char msg[64];

        snprintf(msg, sizeof(msg), "thread %u message %d", w->index, i);
        wc_Sha256Hash((const uint8_t *)msg, (word32)strlen(msg), hash);
        if (hsm_sign(w->key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen) == 0 &&
            (i % 30 != 0 || ecdsa_ok(w->key, hash, 32, sig, slen)))
            w->ok++;
        else
            w->bad++;
    }
    w->sess = w->key->tok->sess[w->index].h;
    hsm_thread_detach(w->key->ctx);
    return NULL;
}

static void test_two_threads(void **state)
{
    struct hsm_ctx *ctx = ctx_open(SOFTHSM, pinsrc);
    struct hsm_key *key = key_open(ctx, "pkcs11:token=hsmgate;object=ec256");
    struct worker w[2] = {{key, 0, 0, 0, 0}, {key, 1, 0, 0, 0}};
    pthread_t t[2];
    struct hsm_stats st;

    (void)state;
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(w[i].ok, THREAD_SIGNS);
        assert_int_equal(w[i].bad, 0);
    }
    /* Each thread had its own session, distinct from the main one. */
    assert_true(w[0].sess != w[1].sess);
    assert_true(w[0].sess != key->tok->main_sess && w[1].sess != key->tok->main_sess);
    hsm_stats_get(ctx, &st);
    assert_int_equal(st.signs, 2 * THREAD_SIGNS);
    assert_int_equal(st.sign_errors, 0);
    hsm_ctx_free(ctx);
}

/* Two threads opening sessions, finding the key and copying it at the same time, over and over (what
 * two workers do at start): SoftHSM 2.6.1 lets a search that runs during another session's object
 * creation miss the key, which made a worker "cannot find it in the token" now and then. */
#define ATTACH_ROUNDS 400
struct attacher {
    struct hsm_ctx *ctx;
    unsigned index;
    int failed;
};

static void *attacher_main(void *p)
{
    struct attacher *a = p;
    for (int i = 0; i < ATTACH_ROUNDS; i++) {
        if (hsm_thread_attach(a->ctx, a->index, 1) != 0)
            a->failed++;
        hsm_thread_detach(a->ctx);
    }
    return NULL;
}

static void test_concurrent_attach(void **state)
{
    struct hsm_ctx *ctx = ctx_open(SOFTHSM, pinsrc);
    struct hsm_key *key = key_open(ctx, "pkcs11:token=hsmgate;object=ec256");
    struct attacher a[2] = {{ctx, 0, 0}, {ctx, 1, 0}};
    pthread_t t[2];

    (void)state;
    (void)key;
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, attacher_main, &a[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(a[0].failed, 0);
    assert_int_equal(a[1].failed, 0);
    hsm_ctx_free(ctx);
}

/* --- loss and recovery --- */

static void fault_on(void)
{
    write_file(faultfile, "", 0600);
}

static void fault_off(void)
{
    assert_int_equal(unlink(faultfile), 0);
}

static void test_session_loss_and_recovery(void **state)
{
    struct hsm_ctx *ctx = ctx_open(shim, pinsrc);
    struct hsm_key *key = key_open(ctx, "pkcs11:token=hsmgate;object=ec256"), *rsa;
    uint8_t hash[32] = {9, 9, 9}, sig[80];
    size_t slen = sizeof(sig);
    struct hsm_stats st;

    (void)state;
    log_clear();
    assert_hsm_ok(hsm_thread_attach(ctx, 0, 1), "attach");
    check_ecdsa(key, 256, "before the fault");

    fault_on();
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_SESSION);
    hsm_stats_get(ctx, &st);
    assert_int_equal(st.session_lost, 1);
    assert_int_equal(st.reopened, 0);
    assert_true(log_has("CKR_DEVICE_REMOVED"));
    /* Within 100 ms: no attempt at all. After: an attempt, which fails while the token is away. */
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_SESSION);
    sleep_ms(120);
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_SESSION);
    hsm_stats_get(ctx, &st);
    assert_int_equal(st.session_lost, 1);
    assert_int_equal(st.sign_errors, 3);

    fault_off();
    /* Back, but the last failed attempt was less than 100 ms ago. */
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_SESSION);
    sleep_ms(120);
    check_ecdsa(key, 256, "after the fault");
    hsm_stats_get(ctx, &st);
    assert_int_equal(st.session_lost, 1);
    assert_int_equal(st.reopened, 1);
    assert_int_equal(st.signs, 2);
    assert_true(log_has("reopened"));

    /* The main session recovers too: opening another key works. */
    rsa = key_open(ctx, "pkcs11:token=hsmgate;object=rsa2048");
    check_rsa_pss(rsa, 256, "after the fault");
    hsm_ctx_free(ctx);
}

static void test_first_session_lost(void **state)
{
    struct hsm_ctx *ctx = ctx_open(shim, pinsrc);
    struct hsm_key *key = key_open(ctx, "pkcs11:token=hsmgate;object=ec256");
    uint8_t hash[32] = {7}, sig[80];
    size_t slen = sizeof(sig);
    struct hsm_stats st;

    (void)state;
    /* Lazy attach: the first session is opened while the token is away. */
    assert_hsm_ok(hsm_thread_attach(ctx, 5, 0), "attach");
    fault_on();
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_SESSION);
    fault_off();
    sleep_ms(120);
    check_ecdsa(key, 256, "first session after the fault");
    hsm_stats_get(ctx, &st);
    assert_int_equal(st.signs, 1);
    assert_int_equal(st.sign_errors, 1);
    hsm_ctx_free(ctx);
}

static void test_login_lost(void **state)
{
    struct hsm_ctx *ctx = ctx_open(SOFTHSM, pinsrc);
    struct hsm_key *key = key_open(ctx, "pkcs11:token=hsmgate;object=ec256");
    uint8_t hash[32] = {5}, sig[80];
    size_t slen = sizeof(sig);
    struct hsm_stats st;
    int rc;

    (void)state;
    assert_hsm_ok(hsm_thread_attach(ctx, 2, 1), "attach");
    check_ecdsa(key, 256, "logged in");
    /* The module forgets the login (as after a token reset): the next signature must log in again,
     * reading the PIN from its file. */
    assert_int_equal(key->tok->mod->fl->C_Logout(key->tok->main_sess), CKR_OK);
    rc = hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen);
    assert_int_equal(rc, HSM_E_SESSION);
    sleep_ms(120);
    check_ecdsa(key, 256, "logged in again");
    hsm_stats_get(ctx, &st);
    assert_int_equal(st.session_lost, 1);
    assert_int_equal(st.reopened, 1);
    hsm_ctx_free(ctx);
}

static int count_in_log(const char *s)
{
    int n = 0;

    pthread_mutex_lock(&log_mu);
    for (const char *p = logbuf; (p = strstr(p, s)) != NULL; p += strlen(s))
        n++;
    pthread_mutex_unlock(&log_mu);
    return n;
}

/* The PIN is not kept: a re-login reads its source again. A PIN refused then is never tried again. */
static void test_relogin_rereads_pin(void **state)
{
    char path[PATH_MAX + 16], src[PATH_MAX + 32];
    struct hsm_ctx *ctx;
    struct hsm_key *key;
    uint8_t hash[32] = {4}, sig[80];
    size_t slen = sizeof(sig);

    (void)state;
    snprintf(path, sizeof(path), "%s/pin-relogin", tmpdir);
    write_file(path, "1234\n", 0600);
    snprintf(src, sizeof(src), "file:%s", path);
    ctx = ctx_open(SOFTHSM, src);
    key = key_open(ctx, "pkcs11:token=hsmgate;object=ec256");
    assert_hsm_ok(hsm_thread_attach(ctx, 4, 1), "attach");
    check_ecdsa(key, 256, "first login");

    log_clear();
    write_file(path, "0000\n", 0600);
    assert_int_equal(key->tok->mod->fl->C_Logout(key->tok->main_sess), CKR_OK);
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_SESSION);
    sleep_ms(120);
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_PIN);
    assert_int_equal(count_in_log("no further login attempts"), 1);
    /* Even with the right PIN back in the file and the retry delay passed: no second attempt. */
    write_file(path, "1234\n", 0600);
    sleep_ms(120);
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_PIN);
    assert_int_equal(count_in_log("no further login attempts"), 1);
    hsm_ctx_free(ctx);
}

/* A key deleted under a running thread: the thread's session copy signs on until its session is
 * reopened (as a key loaded in memory would until a reload); then the re-lookup finds nothing
 * (HSM_E_KEY, logged once), and lookups are then retried at most every 100 ms. */
static void test_key_vanishes(void **state)
{
    struct hsm_ctx *ctx = ctx_open(SOFTHSM, pinsrc);
    struct hsm_key *key = NULL;
    CK_FUNCTION_LIST *f;
    CK_SESSION_HANDLE rw;
    uint8_t hash[32] = {6}, sig[80];
    size_t slen = sizeof(sig);
    char err[512] = "";

    (void)state;
    log_clear();
    assert_hsm_ok(hsm_key_generate(ctx, TOKEN, "doomed", "ec:P-256", &key, err, sizeof(err)), err);
    assert_hsm_ok(hsm_thread_attach(ctx, 6, 1), "attach");
    check_ecdsa(key, 256, "before deletion");
    f = key->tok->mod->fl;
    assert_int_equal(f->C_OpenSession(key->tok->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw), CKR_OK);
    assert_int_equal(f->C_DestroyObject(rw, key->main_h), CKR_OK);
    f->C_CloseSession(rw);
    check_ecdsa(key, 256, "session copy after deletion");
    assert_int_equal(f->C_CloseSession(key->tok->sess[6].h), CKR_OK);

    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_SESSION);
    sleep_ms(120);
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_KEY);
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_KEY);
    sleep_ms(120);
    assert_int_equal(hsm_sign(key, HSM_SIG_ECDSA, 0, hash, 32, sig, &slen), HSM_E_KEY);
    assert_int_equal(count_in_log("cannot find it in the token any more"), 1);
    hsm_ctx_free(ctx);
}

/* A token without CKM_RSA_PKCS and CKM_RSA_PKCS_PSS: PKCS#1 v1.5 is padded here over CKM_RSA_X_509,
 * PSS is refused. */
static void test_rsa_fallbacks(void **state)
{
    struct hsm_ctx *ctx;
    struct hsm_key *key;
    uint8_t hash[32] = {3}, sig[512];
    size_t slen = sizeof(sig);

    (void)state;
    setenv("P11SHIM_HIDE_MECHS", "0x1,0xd", 1);
    ctx = ctx_open(shim, pinsrc);
    key = key_open(ctx, "pkcs11:token=hsmgate;object=rsa2048");
    assert_string_equal(hsm_key_path(key, HSM_SIG_RSA_PKCS1), "CKM_RSA_X_509 (raw, padded here)");
    assert_non_null(strstr(hsm_key_path(key, HSM_SIG_RSA_PSS), "unavailable"));
    assert_hsm_ok(hsm_thread_attach(ctx, 0, 1), "attach");
    check_rsa_pkcs1(key, "raw RSA, padded here");
    assert_int_equal(hsm_sign(key, HSM_SIG_RSA_PSS, 256, hash, 32, sig, &slen), HSM_E_MECH);
    hsm_ctx_free(ctx);
    unsetenv("P11SHIM_HIDE_MECHS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pin_file_ok),
        cmocka_unit_test(test_pin_file_refused),
        cmocka_unit_test(test_pin_env),
        cmocka_unit_test(test_pin_bad_scheme),
        cmocka_unit_test(test_uri_errors),
        cmocka_unit_test(test_wrong_pin),
        cmocka_unit_test(test_uri_query_attributes),
        cmocka_unit_test(test_keygen_ec),
        cmocka_unit_test(test_keygen_rsa),
        cmocka_unit_test(test_keygen_errors),
        cmocka_unit_test(test_sign_errors),
        cmocka_unit_test(test_attach_index_owned),
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_concurrent_attach),
        cmocka_unit_test(test_session_loss_and_recovery),
        cmocka_unit_test(test_first_session_lost),
        cmocka_unit_test(test_login_lost),
        cmocka_unit_test(test_relogin_rereads_pin),
        cmocka_unit_test(test_key_vanishes),
        cmocka_unit_test(test_rsa_fallbacks),
    };

    return cmocka_run_group_tests_name("hsm", tests, group_setup, group_teardown);
}

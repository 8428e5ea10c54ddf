/* test_pol_crl.c - importing CRLs of other CAs (policies/crl.c, the store's crl_import).
 *
 * CRLs are made by `openssl ca -gencrl` from temporary CAs (EC P-256 and RSA-2048), so the
 * signatures and encodings are OpenSSL's, not ours. Covered: PEM and DER, entries and reasons
 * merged into the revocation index, a newer CRL replacing an older one's entries, CRL Number
 * rollback, bad signatures (a flipped bit, and a CA with the same name and another key), wrong
 * issuer, a CA without cRLSign, unknown critical extensions at list level (OpenSSL) and entry level
 * (hand-built DER, checked before any signature), delta and scoped CRLs, and every truncation.
 */
#include "test_pol_util.h"

#include <time.h>

#include "policies/pol_int.h"

static struct pol_store *g_st;
static uint8_t *g_ca, *g_ca2, *g_rsaca, *g_nocrlsign, *g_leaf;
static size_t g_ca_len, g_ca2_len, g_rsaca_len, g_nocrlsign_len, g_leaf_len;

static int setup(void **state)
{
    (void)state;
    char err[256];
    make_tmpdir();
    make_pki();
    g_ca = load_der("ca.pem", "CERTIFICATE", &g_ca_len);
    g_ca2 = load_der("ca2.pem", "CERTIFICATE", &g_ca2_len);
    g_rsaca = load_der("rsaca.pem", "CERTIFICATE", &g_rsaca_len);
    g_nocrlsign = load_der("nocrlsign.pem", "CERTIFICATE", &g_nocrlsign_len);
    g_leaf = load_der("client.pem", "CERTIFICATE", &g_leaf_len);
    if (!g_ca || !g_ca2 || !g_rsaca || !g_nocrlsign || !g_leaf)
        return -1;
    return pol_store_open_sqlite(P("crl.db"), &g_st, err, sizeof(err)) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pol_store_close(g_st);
    free(g_ca);
    free(g_ca2);
    free(g_rsaca);
    free(g_nocrlsign);
    free(g_leaf);
    remove_tmpdir();
    return 0;
}

/* One revoked entry for index.txt: serial (hex), reason ("" for none). */
#define ENTRY(serial, reason) "R\t301231235959Z\t250101000000Z" reason "\t" serial "\tunknown\t/CN=x\n"

/* `openssl ca -gencrl` as <ca> with CRL Number <number> (hex; NULL for none), the given index.txt
 * lines and extra crl_extensions lines; writes crl-<out>.pem and crl-<out>.der. */
static void make_crl(const char *ca, const char *number, const char *index, const char *ext, int hours, const char *out)
{
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/gen-%s", g_dir, out);
    assert_int_equal(sh("rm -rf '%s' && mkdir -p '%s'", dir, dir), 0);
    FILE *f = fopen(P("tmp.cnf"), "w");
    assert_non_null(f);
    fprintf(f,
            "[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\n%s%s%snew_certs_dir = %s\n"
            "certificate = %s/%s.pem\nprivate_key = %s/%s.key\ndefault_md = sha256\ndefault_crl_hours = %d\n"
            "crl_extensions = crl_ext\n[crl_ext]\nauthorityKeyIdentifier = keyid:always\n%s\n",
            dir, number ? "crlnumber = " : "", number ? dir : "", number ? "/crlnumber\n" : "", dir, g_dir, ca, g_dir,
            ca, hours, ext ? ext : "");
    fclose(f);
    assert_int_equal(sh("mv '%s' '%s/openssl.cnf' && printf '%%b' '%s' > '%s/index.txt'", P("tmp.cnf"), dir, index, dir), 0);
    if (number != NULL)
        assert_int_equal(sh("echo %s > '%s/crlnumber'", number, dir), 0);
    assert_int_equal(sh("openssl ca -gencrl -config '%s/openssl.cnf' -out '%s/crl-%s.pem' 2>'%s/log' && "
                        "openssl crl -in '%s/crl-%s.pem' -outform DER -out '%s/crl-%s.der'",
                        dir, g_dir, out, dir, g_dir, out, g_dir, out),
                     0);
}

static int parse_file(const char *name, const uint8_t *ca, size_t ca_len, struct pol_crl **crl, char *err, size_t errlen)
{
    size_t len;
    uint8_t *buf = load_der(name, NULL, &len);
    assert_non_null(buf);
    int rc = pol_crl_parse(buf, len, ca, ca_len, crl, err, errlen);
    free(buf);
    return rc;
}

/* Parses with ca and imports; returns the first failure. */
static int import(const char *name, const uint8_t *ca, size_t ca_len, int *unchanged, char *err, size_t errlen)
{
    struct pol_crl *crl = NULL;
    int rc = parse_file(name, ca, ca_len, &crl, err, errlen);
    if (rc == 0)
        rc = pol_store_crl_import(g_st, crl, &test_actor, unchanged, NULL, err, errlen);
    pol_crl_free(crl);
    return rc;
}

static int revoked(struct pol_snapshot *s, const uint8_t *ca_der, size_t ca_len, const char *serial_hex, int *reason)
{
    struct pol_cert *ca = NULL;
    uint8_t serial[POL_SERIAL_MAX];
    size_t n;
    assert_int_equal(pol_cert_from_der(ca_der, ca_len, &ca), 0);
    assert_int_equal(pol_serial_parse(serial_hex, serial, &n), 0);
    int r = pol_snapshot_is_revoked(s, pol_cert_subject_hash(ca), serial, n, reason);
    pol_cert_free(ca);
    return r;
}

static struct pol_snapshot *build(void)
{
    struct pol_snapshot *s = NULL;
    char err[256];
    assert_int_equal(pol_snapshot_build(g_st, &s, err, sizeof(err)), 0);
    return s;
}

/* ---------------------------------------------------------------- good CRLs */

static void test_import_pem_then_der(void **state)
{
    (void)state;
    char err[512];
    int unchanged = -1, reason = -1;
    make_crl("ca", "05",
             ENTRY("8F1234", ",keyCompromise") ENTRY("1001", ",certificateHold") ENTRY("0A0B0C", ""), NULL, 48, "c5");
    struct pol_crl *crl = NULL;
    assert_int_equal(parse_file("crl-c5.pem", g_ca, g_ca_len, &crl, err, sizeof(err)), 0);
    struct pol_crl_info info;
    pol_crl_get_info(crl, &info);
    assert_int_equal(info.entries, 3);
    assert_string_equal(info.issuer_text, "CN=Test Client CA,O=Test Bank");
    assert_int_equal(info.number_len, 1);
    assert_int_equal(info.number[0], 5);
    assert_true(info.next_update - info.this_update == 48 * 3600);
    assert_true(info.this_update <= time(NULL) && info.this_update > time(NULL) - 600);
    pol_crl_free(crl);

    assert_int_equal(import("crl-c5.pem", g_ca, g_ca_len, &unchanged, err, sizeof(err)), 0);
    assert_int_equal(unchanged, 0);
    uint64_t g = 0;
    assert_int_equal(pol_store_generation(g_st, &g), 0);
    /* The same CRL in DER: recognized, nothing changes, the counter stays. */
    assert_int_equal(import("crl-c5.der", g_ca, g_ca_len, &unchanged, err, sizeof(err)), 0);
    assert_int_equal(unchanged, 1);
    uint64_t g2 = 0;
    assert_int_equal(pol_store_generation(g_st, &g2), 0);
    assert_int_equal(g2, g);

    struct pol_snapshot *s = build();
    assert_int_equal(revoked(s, g_ca, g_ca_len, "8F1234", &reason), 1);
    assert_int_equal(reason, POL_REASON_KEY_COMPROMISE);
    assert_int_equal(revoked(s, g_ca, g_ca_len, "1001", &reason), 1);
    assert_int_equal(reason, POL_REASON_CERTIFICATE_HOLD);
    assert_int_equal(revoked(s, g_ca, g_ca_len, "0a0b0c", &reason), 1);
    assert_int_equal(reason, POL_REASON_UNSPECIFIED);
    assert_int_equal(revoked(s, g_ca, g_ca_len, "1002", NULL), 0);
    assert_int_equal(revoked(s, g_ca2, g_ca2_len, "8F1234", NULL), 0);   /* another issuer */
    /* the CRL's times are in the snapshot for the staleness rule */
    struct pol_cert *ca = NULL;
    assert_int_equal(pol_cert_from_der(g_ca, g_ca_len, &ca), 0);
    const struct pol_snap_issuer *is = pol_snapshot_issuer(s, pol_cert_subject_hash(ca));
    assert_non_null(is);
    assert_true(is->has_crl);
    assert_int_equal(is->next_update - is->this_update, 48 * 3600);
    pol_cert_free(ca);
    pol_snapshot_free(s);
}

/* A newer CRL replaces what the older one listed (a hold the CA lifted goes away); revocations
 * made here stay whatever CRLs say. */
static void test_newer_crl_replaces(void **state)
{
    (void)state;
    char err[512];
    struct pol_cert *ca = NULL;
    uint8_t serial[POL_SERIAL_MAX];
    size_t n;
    struct pol_revocation r;
    assert_int_equal(pol_cert_from_der(g_ca, g_ca_len, &ca), 0);
    assert_int_equal(pol_serial_parse("0A0B0C", serial, &n), 0);
    pol_revocation_of_issuer(ca, serial, n, &r);
    r.reason = POL_REASON_AFFILIATION_CHANGED;
    assert_int_equal(pol_store_revoke(g_st, &r, &test_actor, NULL, err, sizeof(err)), 0);

    make_crl("ca", "06", ENTRY("8F1234", ",keyCompromise") ENTRY("2002", ",superseded"), NULL, 48, "c6");
    assert_int_equal(import("crl-c6.der", g_ca, g_ca_len, NULL, err, sizeof(err)), 0);
    struct pol_snapshot *s = build();
    int reason = -1;
    assert_int_equal(revoked(s, g_ca, g_ca_len, "8F1234", NULL), 1);
    assert_int_equal(revoked(s, g_ca, g_ca_len, "2002", &reason), 1);
    assert_int_equal(reason, POL_REASON_SUPERSEDED);
    assert_int_equal(revoked(s, g_ca, g_ca_len, "1001", NULL), 0);              /* hold lifted by the CA */
    assert_int_equal(revoked(s, g_ca, g_ca_len, "0A0B0C", &reason), 1);         /* ours, not the CRL's */
    assert_int_equal(reason, POL_REASON_AFFILIATION_CHANGED);
    struct pol_snapshot_stats st;
    pol_snapshot_get_stats(s, &st);
    assert_int_equal(st.revocations, 3);
    assert_int_equal(st.crls, 1);
    pol_snapshot_free(s);
    /* a hold listed only by a CRL cannot be lifted here */
    make_crl("ca", "07", ENTRY("3003", ",certificateHold"), NULL, 48, "c7");
    assert_int_equal(import("crl-c7.pem", g_ca, g_ca_len, NULL, err, sizeof(err)), 0);
    assert_int_equal(pol_serial_parse("3003", serial, &n), 0);
    pol_revocation_of_issuer(ca, serial, n, &r);
    assert_int_equal(pol_store_lift(g_st, &r, &test_actor, NULL, err, sizeof(err)), POL_E_NOT_FOUND);
    assert_non_null(strstr(err, "imported CRL"));
    pol_cert_free(ca);
}

static void test_crl_number_rollback(void **state)
{
    (void)state;
    char err[512];
    /* stored: #07 */
    make_crl("ca", "04", ENTRY("8F1234", ""), NULL, 48, "c4");
    assert_int_equal(import("crl-c4.pem", g_ca, g_ca_len, NULL, err, sizeof(err)), POL_E_CRL_ROLLBACK);
    assert_non_null(strstr(err, "lower"));
    make_crl("ca", "07", ENTRY("4004", ""), NULL, 48, "c7b");      /* same number, other content */
    assert_int_equal(import("crl-c7b.pem", g_ca, g_ca_len, NULL, err, sizeof(err)), POL_E_CRL_ROLLBACK);
    make_crl("ca", NULL, ENTRY("4004", ""), NULL, 48, "cnone");     /* no number at all: refused as such */
    assert_int_equal(import("crl-cnone.pem", g_ca, g_ca_len, NULL, err, sizeof(err)), POL_E_DER);
    assert_non_null(strstr(err, "without cRLNumber"));
    make_crl("ca", "08", ENTRY("4004", ""), "crlNumber = critical,ASN1:INTEGER:8", 48, "ccrit"); /* 5.2.3: non-critical */
    assert_int_equal(import("crl-ccrit.pem", g_ca, g_ca_len, NULL, err, sizeof(err)), POL_E_CRL_CRITICAL);
    /* numbers compare as numbers, not as strings: 0x0100 > 0x07 */
    make_crl("ca", "0100", ENTRY("8F1234", ""), NULL, 48, "c256");
    assert_int_equal(import("crl-c256.pem", g_ca, g_ca_len, NULL, err, sizeof(err)), 0);
    make_crl("ca", "FF", ENTRY("8F1234", ""), NULL, 48, "c255");
    assert_int_equal(import("crl-c255.pem", g_ca, g_ca_len, NULL, err, sizeof(err)), POL_E_CRL_ROLLBACK);
    /* the refused ones changed nothing */
    struct pol_snapshot *s = build();
    assert_int_equal(revoked(s, g_ca, g_ca_len, "4004", NULL), 0);
    pol_snapshot_free(s);
}

static void test_rsa_ca(void **state)
{
    (void)state;
    char err[512];
    make_crl("rsaca", "01", ENTRY("3001", ",cessationOfOperation"), NULL, 24, "rsa1");
    assert_int_equal(import("crl-rsa1.der", g_rsaca, g_rsaca_len, NULL, err, sizeof(err)), 0);
    struct pol_snapshot *s = build();
    int reason = -1;
    assert_int_equal(revoked(s, g_rsaca, g_rsaca_len, "3001", &reason), 1);
    assert_int_equal(reason, POL_REASON_CESSATION);
    pol_snapshot_free(s);
    /* an RSA CRL checked against the EC CA: the wrong issuer */
    struct pol_crl *crl = NULL;
    assert_int_equal(parse_file("crl-rsa1.pem", g_ca, g_ca_len, &crl, err, sizeof(err)), POL_E_CRL_ISSUER);
}

/* ---------------------------------------------------------------- refused CRLs */

static void test_bad_signatures(void **state)
{
    (void)state;
    char err[512];
    struct pol_crl *crl = NULL;
    size_t len;
    make_crl("ca", "0200", ENTRY("5005", ""), NULL, 48, "good");
    uint8_t *der = load_der("crl-good.der", NULL, &len);
    assert_non_null(der);
    /* a bit of the signature */
    der[len - 3] ^= 0x01;
    assert_int_equal(pol_crl_parse(der, len, g_ca, g_ca_len, &crl, err, sizeof(err)), POL_E_CRL_SIGNATURE);
    assert_null(crl);
    der[len - 3] ^= 0x01;
    assert_int_equal(pol_crl_parse(der, len, g_ca, g_ca_len, &crl, err, sizeof(err)), 0);
    pol_crl_free(crl);
    crl = NULL;
    /* a bit of a revoked serial inside the signed part */
    uint8_t *p = memmem(der, len, "\x02\x02\x50\x05", 4);
    assert_non_null(p);
    p[3] ^= 0x01;
    assert_int_equal(pol_crl_parse(der, len, g_ca, g_ca_len, &crl, err, sizeof(err)), POL_E_CRL_SIGNATURE);
    free(der);
    /* a CA with the very same name and another key */
    make_crl("evil", "0300", ENTRY("8F1234", ""), NULL, 48, "evil");
    assert_int_equal(parse_file("crl-evil.pem", g_ca, g_ca_len, &crl, err, sizeof(err)), POL_E_CRL_SIGNATURE);
    assert_int_equal(import("crl-evil.pem", g_ca, g_ca_len, NULL, err, sizeof(err)), POL_E_CRL_SIGNATURE);
}

static void test_wrong_issuer_or_signer(void **state)
{
    (void)state;
    char err[512];
    struct pol_crl *crl = NULL;
    make_crl("ca2", "01", ENTRY("2001", ""), NULL, 48, "ca2");
    assert_int_equal(parse_file("crl-ca2.pem", g_ca, g_ca_len, &crl, err, sizeof(err)), POL_E_CRL_ISSUER);
    assert_non_null(strstr(err, "Test Client CA"));
    assert_int_equal(parse_file("crl-ca2.der", g_ca2, g_ca2_len, &crl, err, sizeof(err)), 0);   /* its own CA: fine */
    pol_crl_free(crl);
    crl = NULL;
    make_crl("nocrlsign", "01", ENTRY("01", ""), NULL, 48, "nocrlsign");
    assert_int_equal(parse_file("crl-nocrlsign.pem", g_nocrlsign, g_nocrlsign_len, &crl, err, sizeof(err)), POL_E_CRL_ISSUER);
    assert_non_null(strstr(err, "cRLSign"));
    /* a leaf certificate given as the CA */
    assert_int_equal(parse_file("crl-ca2.pem", g_leaf, g_leaf_len, &crl, err, sizeof(err)), POL_E_CERT);
    /* not a certificate, not a CRL */
    assert_int_equal(parse_file("crl-ca2.pem", (const uint8_t *)"xx", 2, &crl, err, sizeof(err)), POL_E_DER);
    assert_int_equal(parse_file("pki.sh", g_ca, g_ca_len, &crl, err, sizeof(err)), POL_E_DER);
    assert_int_equal(parse_file("ca.pem", g_ca, g_ca_len, &crl, err, sizeof(err)), POL_E_DER);   /* a certificate */
    assert_null(crl);
}

static void test_extensions(void **state)
{
    (void)state;
    char err[512];
    struct pol_crl *crl = NULL;
    /* RFC 5280 5.2: an unknown critical extension refuses the CRL; a non-critical one is ignored */
    make_crl("ca2", "02", ENTRY("2001", ""), "1.3.6.1.4.1.99999.1 = critical,ASN1:UTF8String:must-understand", 48, "crit");
    assert_int_equal(parse_file("crl-crit.pem", g_ca2, g_ca2_len, &crl, err, sizeof(err)), POL_E_CRL_CRITICAL);
    assert_int_equal(import("crl-crit.pem", g_ca2, g_ca2_len, NULL, err, sizeof(err)), POL_E_CRL_CRITICAL);
    make_crl("ca2", "03", ENTRY("2001", ""), "1.3.6.1.4.1.99999.1 = ASN1:UTF8String:may-ignore", 48, "noncrit");
    assert_int_equal(parse_file("crl-noncrit.pem", g_ca2, g_ca2_len, &crl, err, sizeof(err)), 0);
    pol_crl_free(crl);
    crl = NULL;
    /* delta CRLs (5.2.4) */
    make_crl("ca2", "04", ENTRY("2001", ""), "2.5.29.27 = critical,ASN1:INTEGER:3", 48, "delta");
    assert_int_equal(parse_file("crl-delta.pem", g_ca2, g_ca2_len, &crl, err, sizeof(err)), POL_E_UNSUPPORTED);
    assert_non_null(strstr(err, "delta"));
    /* issuingDistributionPoint (5.2.5): a scope that leaves certificates out is refused */
    make_crl("ca2", "05", ENTRY("2001", ""), "issuingDistributionPoint = critical,@idp\n[idp]\nonlyCA = TRUE", 48, "onlyca");
    assert_int_equal(parse_file("crl-onlyca.pem", g_ca2, g_ca2_len, &crl, err, sizeof(err)), POL_E_UNSUPPORTED);
    make_crl("ca2", "06", ENTRY("2001", ""),
             "issuingDistributionPoint = critical,@idp\n[idp]\nonlysomereasons = keyCompromise", 48, "somereasons");
    assert_int_equal(parse_file("crl-somereasons.pem", g_ca2, g_ca2_len, &crl, err, sizeof(err)), POL_E_UNSUPPORTED);
    make_crl("ca2", "07", ENTRY("2001", ""),
             "issuingDistributionPoint = critical,@idp\n[idp]\nfullname = URI:http://crl.example/p.crl\nonlyuser = TRUE",
             48, "userdp");
    assert_int_equal(parse_file("crl-userdp.pem", g_ca2, g_ca2_len, &crl, err, sizeof(err)), 0);
    pol_crl_free(crl);
}

/* Hand-built DER for what OpenSSL will not make: entry extensions. Only the structure is checked
 * (pol_crl_decode), which runs before the signature is. */
static size_t tlv(uint8_t *out, uint8_t tag, const uint8_t *v, size_t n)
{
    size_t h = 0;
    out[h++] = tag;
    if (n < 0x80) {
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = 0x82;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    if (n > 0)
        memmove(out + h, v, n);
    return h + n;
}

static int decode_with_entry_ext(const uint8_t *ext, size_t ext_len, int version, char *err, size_t errlen)
{
    uint8_t exts[256], entry[300], list[320], tbs[400], all[512], tmp[512];
    static const uint8_t alg[] = { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 };
    static const uint8_t when[] = { 0x17, 0x0d, '2', '5', '0', '1', '0', '1', '0', '0', '0', '0', '0', '0', 'Z' };
    size_t n;

    size_t ne = tlv(exts, 0x30, ext, ext_len);
    n = 0;
    n += tlv(tmp + n, 0x02, (const uint8_t *)"\x01", 1);
    memcpy(tmp + n, when, sizeof(when));
    n += sizeof(when);
    memcpy(tmp + n, exts, ne);
    n += ne;
    size_t nentry = tlv(entry, 0x30, tmp, n);
    size_t nlist = tlv(list, 0x30, entry, nentry);
    n = 0;
    if (version)
        n += tlv(tmp + n, 0x02, (const uint8_t *)"\x01", 1);
    memcpy(tmp + n, alg, sizeof(alg));
    n += sizeof(alg);
    n += tlv(tmp + n, 0x30, NULL, 0);           /* empty issuer Name */
    memcpy(tmp + n, when, sizeof(when));
    n += sizeof(when);
    memcpy(tmp + n, list, nlist);
    n += nlist;
    if (version) {
        /* crlExtensions: cRLNumber 1, which a v2 CRL must have (RFC 5280 5.2.3) */
        static const uint8_t number[] = { 0xa0, 0x0e, 0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x14,
                                          0x04, 0x03, 0x02, 0x01, 0x01 };
        memcpy(tmp + n, number, sizeof(number));
        n += sizeof(number);
    }
    size_t ntbs = tlv(tbs, 0x30, tmp, n);
    n = 0;
    memcpy(tmp, tbs, ntbs);
    n = ntbs;
    memcpy(tmp + n, alg, sizeof(alg));
    n += sizeof(alg);
    n += tlv(tmp + n, 0x03, (const uint8_t *)"\x00\x01\x02", 3);
    size_t nall = tlv(all, 0x30, tmp, n);
    uint8_t *der = malloc(nall);
    assert_non_null(der);
    memcpy(der, all, nall);
    struct pol_crl *crl = NULL;
    int rc = pol_crl_decode(der, nall, &crl, err, errlen);   /* takes der */
    pol_crl_free(crl);
    return rc;
}

static void test_entry_extensions(void **state)
{
    (void)state;
    char err[512];
    /* unknown, critical: 1.2.3.4 */
    static const uint8_t crit[] = { 0x30, 0x0b, 0x06, 0x03, 0x2a, 0x03, 0x04, 0x01, 0x01, 0xff, 0x04, 0x01, 0x00 };
    static const uint8_t noncrit[] = { 0x30, 0x08, 0x06, 0x03, 0x2a, 0x03, 0x04, 0x04, 0x01, 0x00 };
    /* reasonCode keyCompromise; removeFromCRL; certificateIssuer (indirect) */
    static const uint8_t reason[] = { 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01, 0x01 };
    static const uint8_t remove[] = { 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01, 0x08 };
    static const uint8_t badreason[] = { 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01, 0x07 };
    static const uint8_t issuer[] = { 0x30, 0x0d, 0x06, 0x03, 0x55, 0x1d, 0x1d, 0x01, 0x01, 0xff, 0x04, 0x03, 0x30, 0x01, 0x00 };
    static const uint8_t badbool[] = { 0x30, 0x0b, 0x06, 0x03, 0x2a, 0x03, 0x04, 0x01, 0x01, 0x01, 0x04, 0x01, 0x00 };
    assert_int_equal(decode_with_entry_ext(crit, sizeof(crit), 1, err, sizeof(err)), POL_E_CRL_CRITICAL);
    assert_non_null(strstr(err, "entry"));
    assert_int_equal(decode_with_entry_ext(noncrit, sizeof(noncrit), 1, err, sizeof(err)), 0);
    assert_int_equal(decode_with_entry_ext(reason, sizeof(reason), 1, err, sizeof(err)), 0);
    assert_int_equal(decode_with_entry_ext(remove, sizeof(remove), 1, err, sizeof(err)), POL_E_UNSUPPORTED);
    assert_int_equal(decode_with_entry_ext(badreason, sizeof(badreason), 1, err, sizeof(err)), POL_E_DER);
    assert_int_equal(decode_with_entry_ext(issuer, sizeof(issuer), 1, err, sizeof(err)), POL_E_UNSUPPORTED);
    assert_int_equal(decode_with_entry_ext(badbool, sizeof(badbool), 1, err, sizeof(err)), POL_E_DER);
    /* entry extensions need a v2 CRL (RFC 5280 5.1.2.1) */
    assert_int_equal(decode_with_entry_ext(reason, sizeof(reason), 0, err, sizeof(err)), POL_E_DER);
}

/* Every truncation and many single-byte changes of a good CRL: an error each time, never a crash
 * and never an accepted CRL that differs from the signed one. */
static void test_mutations(void **state)
{
    (void)state;
    char err[512];
    size_t len;
    struct pol_crl *crl = NULL;
    uint8_t *der = load_der("crl-good.der", NULL, &len);
    assert_non_null(der);
    for (size_t n = 0; n < len; n++) {
        assert_int_not_equal(pol_crl_parse(der, n, g_ca, g_ca_len, &crl, err, sizeof(err)), 0);
        assert_null(crl);
    }
    uint32_t x = 12345;
    int accepted = 0;
    for (int i = 0, rounds = under_valgrind() ? 300 : 3000; i < rounds; i++) {
        x = x * 1103515245u + 12345u;
        size_t at = (x >> 8) % len;
        uint8_t old = der[at];
        der[at] ^= (uint8_t)(1u << ((x >> 3) & 7));
        if (pol_crl_parse(der, len, g_ca, g_ca_len, &crl, err, sizeof(err)) == 0) {
            accepted++;
            pol_crl_free(crl);
            crl = NULL;
        }
        der[at] = old;
    }
    /* ECDSA signatures are malleable in no byte we flip; nothing changed may pass. */
    assert_int_equal(accepted, 0);
    free(der);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_pem_then_der),
        cmocka_unit_test(test_newer_crl_replaces),
        cmocka_unit_test(test_crl_number_rollback),
        cmocka_unit_test(test_rsa_ca),
        cmocka_unit_test(test_bad_signatures),
        cmocka_unit_test(test_wrong_issuer_or_signer),
        cmocka_unit_test(test_extensions),
        cmocka_unit_test(test_entry_extensions),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

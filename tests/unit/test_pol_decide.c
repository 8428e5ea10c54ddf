/* test_pol_decide.c - certificates decoded for policy decisions, and every decision rule, each
 * positive and negative (policies/cert.c, allow.c, policy.c).
 *
 * Certificates come from OpenSSL's CLI, and what we decode is compared with what OpenSSL prints
 * (subject in RFC 2253/4514 form, fingerprint, SPKI hash). Revocations and allowlist entries go
 * through a real SQLite store in a temporary directory; CRL times are set through the snapshot
 * builder so that staleness can be tested at exact instants. The last test measures the cost of
 * decoding a certificate and deciding (printed, never asserted).
 */
#include "test_pol_util.h"

#include <time.h>

#include "policies/pol_int.h"

static struct pol_store *g_st;
static struct pol_cert *g_client, *g_client2, *g_server, *g_noeku, *g_anyeku, *g_subca, *g_partner, *g_ca;
static uint8_t *g_ca_der;
static size_t g_ca_len;

static int setup(void **state)
{
    (void)state;
    char err[256];
    make_tmpdir();
    make_pki();
    g_client = load_cert("client.pem");
    g_client2 = load_cert("client2.pem");
    g_server = load_cert("server.pem");
    g_noeku = load_cert("noeku.pem");
    g_anyeku = load_cert("anyeku.pem");
    g_subca = load_cert("subca.pem");
    g_partner = load_cert("partner.pem");
    g_ca = load_cert("ca.pem");
    g_ca_der = load_der("ca.pem", "CERTIFICATE", &g_ca_len);
    if (!g_client || !g_client2 || !g_server || !g_noeku || !g_anyeku || !g_subca || !g_partner || !g_ca || !g_ca_der)
        return -1;
    if (pol_store_open_sqlite(P("s.db"), &g_st, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pol_store_close(g_st);
    struct pol_cert *all[] = { g_client, g_client2, g_server, g_noeku, g_anyeku, g_subca, g_partner, g_ca };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        pol_cert_free(all[i]);
    free(g_ca_der);
    remove_tmpdir();
    return 0;
}

/* A policy trusting ca.pem, with the given allowlist (NULL: none required). */
static struct pol_policy *policy(const char *list, int crl_required, enum pol_revocation_mode mode, unsigned grace)
{
    struct pol_policy_spec spec;
    struct pol_ca_spec ca = { g_ca_der, g_ca_len, crl_required };
    struct pol_policy *p = NULL;
    char err[256];
    pol_policy_spec_init(&spec);
    spec.name = "test";
    spec.cas = &ca;
    spec.ncas = 1;
    spec.allowlist_required = list != NULL;
    spec.allowlist = list;
    spec.revocation = mode;
    spec.crl_grace_s = grace;
    assert_int_equal(pol_policy_new(&spec, &p, err, sizeof(err)), 0);
    return p;
}

static struct pol_snapshot *build(void)
{
    struct pol_snapshot *s = NULL;
    char err[256];
    assert_int_equal(pol_snapshot_build(g_st, &s, err, sizeof(err)), 0);
    return s;
}

/* The other tests start again from an empty store. */
static void reset_store(void)
{
    char err[256];
    pol_store_close(g_st);
    g_st = NULL;
    assert_int_equal(sh("rm -f '%s' '%s-wal' '%s-shm'", P("s.db"), P("s.db"), P("s.db")), 0);
    assert_int_equal(pol_store_open_sqlite(P("s.db"), &g_st, err, sizeof(err)), 0);
}

static time_t now_ok(void)
{
    return time(NULL);
}

/* ---------------------------------------------------------------- certificates */

static void test_cert_fields_match_openssl(void **state)
{
    (void)state;
    char want[1024], hex[2 * POL_HASH_LEN + 1], buf[POL_VALUE_MAX];
    size_t slen;

    /* openssl prints "subject=CN=client1,O=Client\, Inc.,C=CH" with -nameopt RFC2253 */
    sh_out(want, sizeof(want), "openssl x509 -in '%s' -noout -subject -nameopt RFC2253 | sed 's/^subject=//'", P("client.pem"));
    assert_string_equal(pol_cert_subject(g_client), want);
    assert_string_equal(pol_cert_subject(g_client), "CN=client1,O=Client\\, Inc.,C=CH");
    sh_out(want, sizeof(want), "openssl x509 -in '%s' -noout -issuer -nameopt RFC2253 | sed 's/^issuer=//'", P("client.pem"));
    assert_string_equal(pol_cert_issuer(g_client), want);
    assert_string_equal(pol_cert_cn(g_client), "client1");

    const uint8_t *serial = pol_cert_serial(g_client, &slen);
    pol_serial_format(serial, slen, buf, sizeof(buf));
    sh_out(want, sizeof(want), "openssl x509 -in '%s' -noout -serial | sed 's/^serial=//'", P("client.pem"));
    assert_string_equal(buf, want);
    assert_string_equal(buf, "8F1234");

    sh_out(want, sizeof(want), "openssl x509 -in '%s' -noout -fingerprint -sha256 | sed 's/^.*=//; s/://g' | tr A-F a-f",
           P("client.pem"));
    pol_hex(pol_cert_fingerprint(g_client), POL_HASH_LEN, hex, sizeof(hex));
    assert_string_equal(hex, want);
    sh_out(want, sizeof(want), "openssl x509 -in '%s' -noout -pubkey | openssl pkey -pubin -outform DER | "
                               "openssl dgst -sha256 -r | cut -d' ' -f1", P("client.pem"));
    pol_hex(pol_cert_spki_hash(g_client), POL_HASH_LEN, hex, sizeof(hex));
    assert_string_equal(hex, want);
    assert_memory_equal(pol_cert_issuer_hash(g_client), pol_cert_subject_hash(g_ca), POL_HASH_LEN);

    /* SANs in canonical form: DNS lower-cased, the email's domain lower-cased, URIs exact. */
    assert_int_equal(pol_allow_value_of_cert(g_client, POL_MATCH_SAN_DNS, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "client1.example.com");
    assert_int_equal(pol_allow_value_of_cert(g_client, POL_MATCH_SAN_URI, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "spiffe://bank/client1");
    assert_int_equal(pol_allow_value_of_cert(g_client, POL_MATCH_SAN_EMAIL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "Ops@example.com");
    assert_int_equal(pol_allow_value_of_cert(g_client2, POL_MATCH_SAN_DNS, buf, sizeof(buf)), POL_E_NOT_FOUND);

    assert_true(pol_cert_is_ca(g_ca));
    assert_true(pol_cert_is_ca(g_subca));
    assert_false(pol_cert_is_ca(g_client));
    assert_true(pol_cert_not_after(g_client) > time(NULL) + 29 * 86400);
}

static void test_cert_malformed(void **state)
{
    (void)state;
    struct pol_cert *c = NULL;
    size_t len;
    uint8_t *der = load_der("client.der", NULL, &len);
    assert_non_null(der);
    /* Every truncation is refused, without a crash. */
    for (size_t n = 0; n < len; n++) {
        assert_int_not_equal(pol_cert_from_der(der, n, &c), 0);
        assert_null(c);
    }
    /* Trailing bytes: not exactly one certificate. */
    uint8_t *more = malloc(len + 1);
    assert_non_null(more);
    memcpy(more, der, len);
    more[len] = 0;
    assert_int_equal(pol_cert_from_der(more, len + 1, &c), POL_E_DER);
    /* A flipped length octet. */
    memcpy(more, der, len);
    more[1] ^= 0x01;
    assert_int_not_equal(pol_cert_from_der(more, len, &c), 0);
    assert_int_equal(pol_cert_from_der(NULL, 10, &c), POL_E_DER);
    assert_int_equal(pol_cert_from_der((const uint8_t *)"garbage", 7, &c), POL_E_DER);
    assert_int_equal(pol_cert_from_der(der, len, &c), 0);
    pol_cert_free(c);
    free(more);
    free(der);
    char err[256];
    assert_int_not_equal(pol_cert_load(P("nonexistent.pem"), &c, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "nonexistent.pem"));
    assert_int_not_equal(pol_cert_load(P("pki.sh"), &c, err, sizeof(err)), 0);
}

/* ---------------------------------------------------------------- rules */

static void test_admit_and_basic_refusals(void **state)
{
    (void)state;
    struct pol_snapshot *s = build();
    struct pol_policy *p = policy(NULL, 0, POL_REVOCATION_HARD_FAIL, 0);
    struct pol_verdict v;
    time_t now = now_ok();

    assert_int_equal(pol_decide(s, p, g_client, 1, now, &v), POL_ADMIT);
    assert_int_equal(v.generation, pol_snapshot_generation(s));
    assert_int_equal(pol_decide(s, p, g_client, 1, now, NULL), POL_ADMIT);
    /* issuer: the partner's CA is not this listener's */
    assert_int_equal(pol_decide(s, p, g_partner, 1, now, &v), POL_R_ISSUER_NOT_TRUSTED);
    /* chain depth: 4 allowed by default */
    assert_int_equal(pol_decide(s, p, g_client, 4, now, &v), POL_ADMIT);
    assert_int_equal(pol_decide(s, p, g_client, 5, now, &v), POL_R_CHAIN_TOO_LONG);
    /* validity, inclusive at both ends (RFC 5280 4.1.2.5) */
    time_t na = pol_cert_not_after(g_client);
    assert_int_equal(pol_decide(s, p, g_client, 1, na, &v), POL_ADMIT);
    assert_int_equal(pol_decide(s, p, g_client, 1, na + 1, &v), POL_R_EXPIRED);
    assert_int_equal(pol_decide(s, p, g_client, 1, now - 86400, &v), POL_R_NOT_YET_VALID);
    /* a CA certificate presented as a client */
    assert_int_equal(pol_decide(s, p, g_subca, 1, now, &v), POL_R_CERT_IS_CA);
    /* EKU: serverAuth only, and none at all, lack clientAuth; anyExtendedKeyUsage stands for it */
    assert_int_equal(pol_decide(s, p, g_server, 1, now, &v), POL_R_EKU_MISSING);
    assert_int_equal(pol_decide(s, p, g_noeku, 1, now, &v), POL_R_EKU_MISSING);
    assert_int_equal(pol_decide(s, p, g_anyeku, 1, now, &v), POL_ADMIT);
    /* fail closed without a snapshot or a policy; a missing certificate is its own reason */
    assert_int_equal(pol_decide(NULL, p, g_client, 1, now, &v), POL_R_NO_POLICY);
    assert_int_equal(pol_decide(s, NULL, g_client, 1, now, &v), POL_R_NO_POLICY);
    assert_int_equal(pol_decide(s, p, NULL, 1, now, &v), POL_R_NO_CERT);
    pol_policy_free(p);

    /* A policy without CAs, EKU or depth limits admits what the others refused for those. */
    struct pol_policy_spec spec;
    char err[256];
    pol_policy_spec_init(&spec);
    spec.required_eku = 0;
    spec.max_chain_depth = 0;
    assert_int_equal(pol_policy_new(&spec, &p, err, sizeof(err)), 0);
    assert_int_equal(pol_decide(s, p, g_partner, 9, now, &v), POL_ADMIT);
    assert_int_equal(pol_decide(s, p, g_noeku, 1, now, &v), POL_ADMIT);
    assert_int_equal(pol_decide(s, p, g_server, 1, now, &v), POL_ADMIT);
    pol_policy_free(p);
    /* Requiring serverAuth as well refuses a clientAuth-only certificate. */
    pol_policy_spec_init(&spec);
    spec.required_eku = POL_EKU_CLIENT_AUTH | POL_EKU_SERVER_AUTH;
    assert_int_equal(pol_policy_new(&spec, &p, err, sizeof(err)), 0);
    assert_int_equal(pol_decide(s, p, g_client, 1, now, &v), POL_R_EKU_MISSING);
    assert_int_equal(pol_decide(s, p, g_anyeku, 1, now, &v), POL_ADMIT);
    pol_policy_free(p);
    pol_snapshot_free(s);
}

/* Paths: leaf <- subca <- ca, the policy trusting ca. The CA is found up the chain, the anchor's
 * depth is counted from it, and an intermediate below the policy's CA is checked for revocation. */
static void test_decide_chain(void **state)
{
    (void)state;
    struct pol_cert *leaf = load_cert("subleaf.pem");
    assert_non_null(leaf);
    struct pol_verdict v;
    char err[256];
    struct pol_snapshot *s = build();
    struct pol_policy *p = policy(NULL, 0, POL_REVOCATION_HARD_FAIL, 0);
    time_t now = now_ok();
    const struct pol_cert *path[] = { leaf, g_subca, g_ca };
    assert_int_equal(pol_decide_chain(s, p, path, 2, now, &v), POL_ADMIT);
    assert_int_equal(pol_decide_chain(s, p, path, 3, now, &v), POL_ADMIT);     /* anchor included: same */
    assert_int_equal(pol_decide_chain(s, p, path, 1, now, &v), POL_R_ISSUER_NOT_TRUSTED); /* subca not sent */
    assert_int_equal(pol_decide_chain(s, p, path, 0, now, &v), POL_R_NO_CERT);
    const struct pol_cert *direct[] = { g_client };
    assert_int_equal(pol_decide_chain(s, p, direct, 1, now, &v), POL_ADMIT);
    /* depth: the anchor (ca) is 2 above the leaf */
    struct pol_policy_spec spec;
    struct pol_ca_spec ca = { g_ca_der, g_ca_len, 0 };
    struct pol_policy *p1 = NULL;
    pol_policy_spec_init(&spec);
    spec.cas = &ca;
    spec.ncas = 1;
    spec.max_chain_depth = 1;
    assert_int_equal(pol_policy_new(&spec, &p1, err, sizeof(err)), 0);
    assert_int_equal(pol_decide_chain(s, p1, path, 2, now, &v), POL_R_CHAIN_TOO_LONG);
    assert_int_equal(pol_decide_chain(s, p1, direct, 1, now, &v), POL_ADMIT);
    /* no CA in the policy: the last certificate's issuer is the anchor */
    struct pol_policy *pany = NULL;
    spec.ncas = 0;
    spec.cas = NULL;
    spec.max_chain_depth = 2;
    assert_int_equal(pol_policy_new(&spec, &pany, err, sizeof(err)), 0);
    assert_int_equal(pol_decide_chain(s, pany, path, 2, now, &v), POL_ADMIT);
    spec.max_chain_depth = 1;
    pol_policy_free(pany);
    pany = NULL;
    assert_int_equal(pol_policy_new(&spec, &pany, err, sizeof(err)), 0);
    assert_int_equal(pol_decide_chain(s, pany, path, 2, now, &v), POL_R_CHAIN_TOO_LONG);
    assert_int_equal(pol_decide_chain(s, pany, path, 3, now, &v), POL_R_CHAIN_TOO_LONG); /* self-issued top: the anchor */
    pol_snapshot_free(s);

    /* the intermediate revoked (by ca): every leaf under it is refused; the leaf itself is not listed */
    struct pol_revocation r;
    pol_revocation_of_cert(g_subca, &r);
    r.reason = POL_REASON_CA_COMPROMISE;
    assert_int_equal(pol_store_revoke(g_st, &r, &test_actor, NULL, err, sizeof(err)), 0);
    s = build();
    assert_int_equal(pol_decide_chain(s, p, path, 2, now, &v), POL_R_REVOKED);
    assert_int_equal(v.crl_reason, POL_REASON_CA_COMPROMISE);
    assert_int_equal(pol_decide_chain(s, p, direct, 1, now, &v), POL_ADMIT);
    pol_snapshot_free(s);
    pol_policy_free(p);
    pol_policy_free(p1);
    pol_policy_free(pany);
    pol_cert_free(leaf);
    reset_store();
}

static void test_revoked(void **state)
{
    (void)state;
    struct pol_revocation r;
    struct pol_verdict v;
    char err[256];
    pol_revocation_of_cert(g_client, &r);
    r.reason = POL_REASON_KEY_COMPROMISE;
    assert_int_equal(pol_store_revoke(g_st, &r, &test_actor, NULL, err, sizeof(err)), 0);
    struct pol_snapshot *s = build();
    struct pol_policy *p = policy(NULL, 0, POL_REVOCATION_SOFT_FAIL, 0);
    assert_int_equal(pol_decide(s, p, g_client, 1, now_ok(), &v), POL_R_REVOKED);
    assert_int_equal(v.crl_reason, POL_REASON_KEY_COMPROMISE);
    assert_int_equal(pol_decide(s, p, g_client2, 1, now_ok(), &v), POL_ADMIT);
    size_t slen;
    const uint8_t *serial = pol_cert_serial(g_client, &slen);
    int reason = -1;
    assert_int_equal(pol_snapshot_is_revoked(s, pol_cert_issuer_hash(g_client), serial, slen, &reason), 1);
    assert_int_equal(reason, POL_REASON_KEY_COMPROMISE);
    /* Same serial under another issuer is another certificate. */
    assert_int_equal(pol_snapshot_is_revoked(s, pol_cert_subject_hash(g_client), serial, slen, NULL), 0);
    pol_snapshot_free(s);

    /* A final revocation cannot be undone (only holds can be lifted). */
    reset_store();
    pol_policy_free(p);
}

static void test_crl_missing_and_stale(void **state)
{
    (void)state;
    struct pol_verdict v;
    struct pol_snapshot *s = NULL;
    size_t ix;
    time_t now = now_ok();
    time_t next = now + 3600;

    /* crl_required, no CRL: hard-fail refuses, soft-fail admits and says so. */
    struct pol_policy *hard = policy(NULL, 1, POL_REVOCATION_HARD_FAIL, 0);
    struct pol_policy *soft = policy(NULL, 1, POL_REVOCATION_SOFT_FAIL, 0);
    struct pol_policy *grace = policy(NULL, 1, POL_REVOCATION_HARD_FAIL, 600);
    struct pol_policy *plain = policy(NULL, 0, POL_REVOCATION_HARD_FAIL, 0);
    s = build();
    assert_int_equal(pol_decide(s, hard, g_client, 1, now, &v), POL_R_CRL_MISSING);
    assert_int_equal(pol_decide(s, soft, g_client, 1, now, &v), POL_ADMIT);
    assert_int_equal(v.status_unknown, 1);
    assert_int_equal(pol_decide(s, plain, g_client, 1, now, &v), POL_ADMIT);
    assert_int_equal(v.status_unknown, 0);
    pol_snapshot_free(s);

    /* A CRL for the issuer, nextUpdate in an hour; it lists client2. */
    size_t slen;
    const uint8_t *serial2 = pol_cert_serial(g_client2, &slen);
    assert_int_equal(pol_builder_new(&s), 0);
    assert_int_equal(pol_builder_issuer(s, pol_cert_subject_hash(g_ca), &ix), 0);
    assert_int_equal(pol_builder_crl(s, ix, now - 3600, next), 0);
    assert_int_equal(pol_builder_revoked(s, ix, serial2, slen, POL_REASON_SUPERSEDED, now - 60), 0);
    assert_int_equal(pol_builder_finish(s, 7, NULL, 0), 0);

    assert_int_equal(pol_decide(s, hard, g_client, 1, now, &v), POL_ADMIT);
    assert_int_equal(pol_decide(s, hard, g_client, 1, next, &v), POL_ADMIT);          /* at nextUpdate: fresh */
    assert_int_equal(pol_decide(s, hard, g_client, 1, next + 1, &v), POL_R_CRL_STALE);
    assert_int_equal(pol_decide(s, plain, g_client, 1, next + 1, &v), POL_R_CRL_STALE); /* any imported CRL */
    assert_int_equal(pol_decide(s, grace, g_client, 1, next + 600, &v), POL_ADMIT);
    assert_int_equal(pol_decide(s, grace, g_client, 1, next + 601, &v), POL_R_CRL_STALE);
    assert_int_equal(pol_decide(s, soft, g_client, 1, next + 86400, &v), POL_ADMIT);
    assert_int_equal(v.status_unknown, 1);
    /* A stale CRL still proves revocation. */
    assert_int_equal(pol_decide(s, soft, g_client2, 1, next + 86400, &v), POL_R_REVOKED);
    assert_int_equal(v.crl_reason, POL_REASON_SUPERSEDED);
    assert_int_equal(pol_decide(s, hard, g_client2, 1, now, &v), POL_R_REVOKED);
    assert_int_equal(v.generation, 7);
    pol_snapshot_free(s);

    /* A CRL without nextUpdate never goes stale by date. */
    assert_int_equal(pol_builder_new(&s), 0);
    assert_int_equal(pol_builder_issuer(s, pol_cert_subject_hash(g_ca), &ix), 0);
    assert_int_equal(pol_builder_crl(s, ix, now - 3600, 0), 0);
    assert_int_equal(pol_builder_finish(s, 8, NULL, 0), 0);
    assert_int_equal(pol_decide(s, hard, g_client, 1, now + 365 * 86400, &v), POL_R_EXPIRED);
    assert_int_equal(pol_decide(s, hard, g_client, 1, now + 86400, &v), POL_ADMIT);
    pol_snapshot_free(s);
    pol_policy_free(hard);
    pol_policy_free(soft);
    pol_policy_free(grace);
    pol_policy_free(plain);
}

/* Each match type admits the client through an entry made from the certificate, and only it. */
static void test_allowlist_each_match(void **state)
{
    (void)state;
    struct pol_policy *p = policy("partners", 0, POL_REVOCATION_HARD_FAIL, 0);
    struct pol_verdict v;
    char value[POL_VALUE_MAX], err[512];
    int64_t id = 0;
    time_t now = now_ok();
    /* The operator's spelling for each, as typed (normalized on the way in). */
    const char *typed[POL_MATCH_COUNT] = {
        [POL_MATCH_SUBJECT] = "CN=client1,O=Client\\, Inc.,C=CH",
        [POL_MATCH_CN] = "client1",
        [POL_MATCH_SAN_DNS] = "CLIENT1.example.com",
        [POL_MATCH_SAN_URI] = "spiffe://bank/client1",
        [POL_MATCH_SAN_EMAIL] = "Ops@EXAMPLE.com",
    };

    for (unsigned m = 0; m < POL_MATCH_COUNT; m++) {
        struct pol_snapshot *s = build();
        assert_int_equal(pol_decide(s, p, g_client, 1, now, &v), POL_R_NOT_ALLOWLISTED);
        pol_snapshot_free(s);

        assert_int_equal(pol_allow_value_of_cert(g_client, (enum pol_match)m, value, sizeof(value)), 0);
        struct pol_allow_entry e = { "partners", (enum pol_match)m, typed[m] ? typed[m] : value, 0 };
        assert_int_equal(pol_store_allow_add(g_st, &e, &test_actor, &id, NULL, err, sizeof(err)), 0);
        s = build();
        assert_int_equal(pol_decide(s, p, g_client, 1, now, &v), POL_ADMIT);
        assert_int_equal(v.allow_entry_id, id);
        /* another client of the same CA is not let in by it */
        assert_int_equal(pol_decide(s, p, g_client2, 1, now, &v), POL_R_NOT_ALLOWLISTED);
        pol_snapshot_free(s);
        /* a list of another name does not count */
        struct pol_policy *other = policy("others", 0, POL_REVOCATION_HARD_FAIL, 0);
        s = build();
        assert_int_equal(pol_decide(s, other, g_client, 1, now, &v), POL_R_NOT_ALLOWLISTED);
        pol_snapshot_free(s);
        pol_policy_free(other);
        assert_int_equal(pol_store_allow_remove(g_st, id, NULL, &test_actor, NULL, err, sizeof(err)), 0);
    }
    /* The issuer-serial form from the CA certificate and a typed serial equals the client's. */
    uint8_t serial[POL_SERIAL_MAX];
    size_t slen;
    char from_ca[POL_VALUE_MAX];
    assert_int_equal(pol_serial_parse("8f:12:34", serial, &slen), 0);
    pol_issuer_serial_value(g_ca, serial, slen, from_ca, sizeof(from_ca));
    assert_int_equal(pol_allow_value_of_cert(g_client, POL_MATCH_ISSUER_SERIAL, value, sizeof(value)), 0);
    assert_string_equal(from_ca, value);
    pol_policy_free(p);
}

static void test_allowlist_expiry(void **state)
{
    (void)state;
    struct pol_policy *p = policy("partners", 0, POL_REVOCATION_HARD_FAIL, 0);
    struct pol_verdict v;
    char err[256];
    int64_t id_cn = 0, id_fp = 0;
    time_t now = now_ok();
    struct pol_allow_entry e = { "partners", POL_MATCH_CN, "client1", now + 100 };
    assert_int_equal(pol_store_allow_add(g_st, &e, &test_actor, &id_cn, NULL, err, sizeof(err)), 0);
    struct pol_snapshot *s = build();
    assert_int_equal(pol_decide(s, p, g_client, 1, now + 99, &v), POL_ADMIT);
    assert_int_equal(pol_decide(s, p, g_client, 1, now + 100, &v), POL_R_ALLOWLIST_EXPIRED);
    assert_int_equal(v.allow_entry_id, id_cn);
    pol_snapshot_free(s);
    /* Another, unexpired entry for the same client wins over the expired one. */
    char fp[2 * POL_HASH_LEN + 1];
    assert_int_equal(pol_allow_value_of_cert(g_client, POL_MATCH_FINGERPRINT, fp, sizeof(fp)), 0);
    struct pol_allow_entry e2 = { "partners", POL_MATCH_FINGERPRINT, fp, 0 };
    assert_int_equal(pol_store_allow_add(g_st, &e2, &test_actor, &id_fp, NULL, err, sizeof(err)), 0);
    s = build();
    assert_int_equal(pol_decide(s, p, g_client, 1, now + 1000, &v), POL_ADMIT);
    assert_int_equal(v.allow_entry_id, id_fp);
    pol_snapshot_free(s);
    assert_int_equal(pol_store_allow_remove(g_st, id_cn, NULL, &test_actor, NULL, err, sizeof(err)), 0);
    assert_int_equal(pol_store_allow_remove(g_st, id_fp, NULL, &test_actor, NULL, err, sizeof(err)), 0);
    pol_policy_free(p);
}

static void test_policy_new_refusals(void **state)
{
    (void)state;
    struct pol_policy_spec spec;
    struct pol_policy *p = NULL;
    char err[256];
    size_t leaf_len;
    uint8_t *leaf = load_der("client.der", NULL, &leaf_len);
    struct pol_ca_spec notca = { leaf, leaf_len, 0 };
    struct pol_ca_spec garbage = { (const uint8_t *)"xx", 2, 0 };

    pol_policy_spec_init(&spec);
    spec.allowlist_required = 1;
    assert_int_equal(pol_policy_new(&spec, &p, err, sizeof(err)), POL_E_ARG);
    spec.allowlist = "bad name!";
    assert_int_equal(pol_policy_new(&spec, &p, err, sizeof(err)), POL_E_ARG);
    assert_non_null(strstr(err, "bad name!"));
    pol_policy_spec_init(&spec);
    spec.revocation = (enum pol_revocation_mode)7;
    assert_int_equal(pol_policy_new(&spec, &p, err, sizeof(err)), POL_E_ARG);
    pol_policy_spec_init(&spec);
    spec.cas = &notca;
    spec.ncas = 1;
    assert_int_equal(pol_policy_new(&spec, &p, err, sizeof(err)), POL_E_CERT);
    assert_non_null(strstr(err, "not a CA"));
    spec.cas = &garbage;
    assert_int_equal(pol_policy_new(&spec, &p, err, sizeof(err)), POL_E_DER);
    spec.cas = NULL;
    assert_int_equal(pol_policy_new(&spec, &p, err, sizeof(err)), POL_E_ARG);
    pol_policy_spec_init(&spec);
    spec.required_eku = 0x4000;
    assert_int_equal(pol_policy_new(&spec, &p, err, sizeof(err)), POL_E_ARG);
    assert_null(p);
    free(leaf);
}

/* ---------------------------------------------------------------- overlays */

/* What the live snapshot says of the test certificates, and what a whole snapshot built from the
 * store now says: they must agree after every kind of change. */
static void expect_same(struct pol_live *live, struct pol_policy *p, size_t want_overlay_keys)
{
    const struct pol_snapshot *cur = pol_snapshot_current(live, 0);
    struct pol_snapshot *whole = build();
    struct pol_snapshot_stats st, ws;
    struct pol_verdict a, b;
    time_t now = now_ok();
    pol_snapshot_get_stats(cur, &st);
    pol_snapshot_get_stats(whole, &ws);
    assert_int_equal(st.generation, ws.generation);
    assert_int_equal(st.overlay_keys, want_overlay_keys);
    assert_int_equal(st.revocations, ws.revocations);
    assert_int_equal(st.allow_entries, ws.allow_entries);
    struct pol_cert *certs[] = { g_client, g_client2, g_anyeku, g_noeku };
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++) {
        assert_int_equal(pol_decide(cur, p, certs[i], 1, now, &a), pol_decide(whole, p, certs[i], 1, now, &b));
        assert_int_equal(a.crl_reason, b.crl_reason);
        assert_int_equal(a.allow_entry_id, b.allow_entry_id);
    }
    pol_snapshot_free(whole);
    pol_quiescent(live, 0);
}

static int refresh(struct pol_live *live)
{
    char err[256];
    int published = 0;
    assert_int_equal(pol_live_refresh(live, g_st, &published, err, sizeof(err)), 0);
    return published;
}

static void test_overlay_matches_whole_snapshot(void **state)
{
    (void)state;
    struct pol_live *live = NULL;
    struct pol_revocation r;
    struct pol_verdict v;
    char err[256];
    int64_t id = 0, id2 = 0;
    struct pol_policy *p = policy("ov", 0, POL_REVOCATION_HARD_FAIL, 0);
    assert_int_equal(pol_live_new(1, NULL, &live), 0);
    assert_int_equal(pol_reader_register(live, 0), 0);

    /* the first change after the empty start: a whole snapshot */
    struct pol_allow_entry e = { "ov", POL_MATCH_CN, "client1", 0 };
    assert_int_equal(pol_store_allow_add(g_st, &e, &test_actor, &id, NULL, err, sizeof(err)), 0);
    assert_true(refresh(live));
    expect_same(live, p, 0);
    assert_int_equal(pol_decide(pol_snapshot_current(live, 0), p, g_client, 1, now_ok(), &v), POL_ADMIT);
    pol_quiescent(live, 0);
    /* single changes: overlays over it */
    pol_revocation_of_cert(g_client2, &r);
    r.reason = POL_REASON_CERTIFICATE_HOLD;
    assert_int_equal(pol_store_revoke(g_st, &r, &test_actor, NULL, err, sizeof(err)), 0);
    assert_true(refresh(live));
    expect_same(live, p, 1);
    struct pol_allow_entry e2 = { "ov", POL_MATCH_CN, "client2", 0 };
    assert_int_equal(pol_store_allow_add(g_st, &e2, &test_actor, &id2, NULL, err, sizeof(err)), 0);
    assert_true(refresh(live));
    expect_same(live, p, 2);
    assert_int_equal(pol_decide(pol_snapshot_current(live, 0), p, g_client2, 1, now_ok(), &v), POL_R_REVOKED);
    assert_int_equal(v.crl_reason, POL_REASON_CERTIFICATE_HOLD);
    pol_quiescent(live, 0);
    /* a hold lifted, and an entry of the base removed: the overlay says "not any more" */
    assert_int_equal(pol_store_lift(g_st, &r, &test_actor, NULL, err, sizeof(err)), 0);
    assert_int_equal(pol_store_allow_remove(g_st, id, NULL, &test_actor, NULL, err, sizeof(err)), 0);
    assert_true(refresh(live));
    expect_same(live, p, 3);
    assert_int_equal(pol_decide(pol_snapshot_current(live, 0), p, g_client2, 1, now_ok(), &v), POL_ADMIT);
    assert_int_equal(v.allow_entry_id, id2);
    assert_int_equal(pol_decide(pol_snapshot_current(live, 0), p, g_client, 1, now_ok(), &v), POL_R_NOT_ALLOWLISTED);
    pol_quiescent(live, 0);
    /* nothing changed: nothing published */
    assert_false(refresh(live));
    /* a batch: the whole store again */
    struct pol_revocation rb[2];
    pol_revocation_of_cert(g_anyeku, &rb[0]);
    pol_revocation_of_cert(g_noeku, &rb[1]);
    assert_int_equal(pol_store_revoke_batch(g_st, rb, 2, &test_actor, NULL, err, sizeof(err)), 0);
    assert_true(refresh(live));
    expect_same(live, p, 0);
    /* and single changes start a new overlay over that one */
    pol_revocation_of_cert(g_client, &r);
    r.reason = POL_REASON_KEY_COMPROMISE;
    assert_int_equal(pol_store_revoke(g_st, &r, &test_actor, NULL, err, sizeof(err)), 0);
    assert_true(refresh(live));
    expect_same(live, p, 1);

    pol_reader_unregister(live, 0);
    pol_live_free(live);
    pol_policy_free(p);
    reset_store();
}

/* Revokes serials n .. n + count - 1 of g_ca's (4 bytes each): one change, or one batch. */
static void revoke_serials(uint32_t n, size_t count)
{
    char err[256];
    uint8_t(*serials)[4] = calloc(count, 4);
    struct pol_revocation *r = calloc(count, sizeof(*r));
    assert_non_null(serials);
    assert_non_null(r);
    for (size_t i = 0; i < count; i++) {
        uint32_t v = n + (uint32_t)i;
        serials[i][0] = (uint8_t)(0x40 | (v >> 24));
        serials[i][1] = (uint8_t)(v >> 16);
        serials[i][2] = (uint8_t)(v >> 8);
        serials[i][3] = (uint8_t)v;
        pol_revocation_of_issuer(g_ca, serials[i], 4, &r[i]);
        r[i].reason = POL_REASON_SUPERSEDED;
    }
    if (count == 1)
        assert_int_equal(pol_store_revoke(g_st, r, &test_actor, NULL, err, sizeof(err)), 0);
    else
        assert_int_equal(pol_store_revoke_batch(g_st, r, count, &test_actor, NULL, err, sizeof(err)), 0);
    free(r);
    free(serials);
}

/* The live snapshot's overlay keys and revocations, and its overlay limit. */
static size_t live_stats(struct pol_live *live, size_t *revocations, size_t *limit)
{
    struct pol_snapshot_stats st;
    const struct pol_snapshot *cur = pol_snapshot_current(live, 0);
    pol_snapshot_get_stats(cur, &st);
    if (revocations != NULL)
        *revocations = st.revocations;
    if (limit != NULL)
        *limit = pol_overlay_limit(cur);
    pol_quiescent(live, 0);
    return st.overlay_keys;
}

/* Single changes one by one up to the live snapshot's overlay limit are overlays; the next one
 * rebuilds the whole snapshot. Returns the next serial. */
static uint32_t fill_overlay(struct pol_live *live, uint32_t next, size_t limit)
{
    for (size_t i = 1; i <= limit; i++) {
        revoke_serials(next++, 1);
        assert_true(refresh(live));
        assert_int_equal(live_stats(live, NULL, NULL), i);
    }
    revoke_serials(next++, 1);
    assert_true(refresh(live));
    assert_int_equal(live_stats(live, NULL, NULL), 0);
    return next;
}

/* An overlay holds at most an eighth of its base's keys, and at least 64: a small store does not
 * carry thousands of overlay keys (and what the allocator keeps of their predecessors) for hours. */
static void test_overlay_limit_scales_with_the_base(void **state)
{
    (void)state;
    struct pol_live *live = NULL;
    size_t limit = 0, revs = 0;
    uint32_t next = 1;
    assert_int_equal(pol_live_new(1, NULL, &live), 0);
    assert_int_equal(pol_reader_register(live, 0), 0);

    revoke_serials(next++, 1);
    assert_true(refresh(live));
    assert_int_equal(live_stats(live, &revs, &limit), 0);
    assert_int_equal(limit, POL_OVERLAY_MIN);
    next = fill_overlay(live, next, limit);

    /* a batch to 2,000 revocations (a whole rebuild): the limit is 250 */
    revoke_serials(next, 2001 - next);
    next = 2001;
    assert_true(refresh(live));
    assert_int_equal(live_stats(live, &revs, &limit), 0);
    assert_int_equal(revs, 2000);
    assert_int_equal(limit, 2000 / POL_OVERLAY_SHARE);
    next = fill_overlay(live, next, limit);
    assert_int_equal(live_stats(live, &revs, NULL), 0);
    assert_int_equal(revs, next - 1);

    /* a base of a million keys would be capped */
    struct pol_snapshot *whole = build();
    assert_int_equal(whole->revocations, next - 1);
    whole->revocations = 1000000;
    assert_int_equal(pol_overlay_limit(whole), POL_OVERLAY_MAX);
    pol_snapshot_free(whole);

    pol_reader_unregister(live, 0);
    pol_live_free(live);
    reset_store();
}

/* ---------------------------------------------------------------- names and small values */

static void test_names_are_stable(void **state)
{
    (void)state;
    static const char *const want[POL_REASON_COUNT] = {
        "admit", "policy_unavailable", "no_client_certificate", "issuer_not_trusted", "chain_too_long",
        "certificate_not_yet_valid", "certificate_expired", "client_certificate_is_ca", "eku_missing", "revoked",
        "crl_missing", "crl_stale", "not_allowlisted", "allowlist_entry_expired",
    };
    for (int i = 0; i < POL_REASON_COUNT; i++)
        assert_string_equal(pol_reason_name((enum pol_reason)i), want[i]);
    assert_string_equal(pol_reason_name((enum pol_reason)99), "unknown");
    for (int e = 0; e >= POL_E_CERT; e--) {
        assert_string_not_equal(pol_errname(e), "unknown");
        assert_string_not_equal(pol_strerror(e), "unknown policy error");
    }
    assert_string_equal(pol_strerror(-999), "unknown policy error");
    int r;
    assert_int_equal(pol_reason_code_parse("KEYCOMPROMISE", &r), 0);
    assert_int_equal(r, 1);
    assert_int_equal(pol_reason_code_parse("certificateHold", &r), 0);
    assert_int_equal(r, 6);
    assert_int_equal(pol_reason_code_parse("removeFromCRL", &r), POL_E_ARG);
    assert_int_equal(pol_reason_code_parse("", &r), POL_E_ARG);
    assert_string_equal(pol_reason_code_name(9), "privilegeWithdrawn");
    assert_string_equal(pol_reason_code_name(7), "unknown");
    enum pol_match m;
    for (unsigned i = 0; i < POL_MATCH_COUNT; i++) {
        assert_int_equal(pol_match_parse(pol_match_name((enum pol_match)i), &m), 0);
        assert_int_equal(m, i);
    }
    assert_int_equal(pol_match_parse("SAN-DNS", &m), POL_E_ARG);
}

static void test_value_formats(void **state)
{
    (void)state;
    uint8_t s[POL_SERIAL_MAX];
    size_t n;
    char out[POL_VALUE_MAX], err[256];
    time_t t;

    /* serials: minimal positive INTEGER content */
    assert_int_equal(pol_serial_parse("8F1234", s, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(s[0], 0);
    assert_int_equal(pol_serial_parse("0x0001", s, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(s[0], 1);
    assert_int_equal(pol_serial_parse("0", s, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(pol_serial_parse("abc", s, &n), 0);
    assert_int_equal(n, 2);
    pol_serial_format(s, n, out, sizeof(out));
    assert_string_equal(out, "0ABC");
    assert_int_equal(pol_serial_parse("", s, &n), POL_E_ARG);
    assert_int_equal(pol_serial_parse("xyz", s, &n), POL_E_ARG);
    assert_int_equal(pol_serial_parse("-1", s, &n), POL_E_ARG);
    assert_int_equal(pol_serial_parse("7f" "00000000000000000000000000000000000000000000000000000000000000", s, &n), 0);
    assert_int_equal(pol_serial_parse("80" "00000000000000000000000000000000000000000000000000000000000000", s, &n),
                     POL_E_ARG);     /* 33 octets with the sign octet */

    /* times */
    assert_int_equal(pol_time_parse("2026-01-31T12:00:00Z", 0, &t), 0);
    assert_int_equal(t, 1769860800);
    pol_time_format(t, out, sizeof(out));
    assert_string_equal(out, "2026-01-31T12:00:00Z");
    assert_int_equal(pol_time_parse("+30d", 1000, &t), 0);
    assert_int_equal(t, 1000 + 30 * 86400);
    assert_int_equal(pol_time_parse("-2h", 10000, &t), 0);
    assert_int_equal(t, 10000 - 7200);
    const char *bad_times[] = { "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "2026-01-31 12:00:00", "+5y", "+",
                                "+5dd", "2026-01-31T24:00:00Z", "", "99999999999999999999d" };
    for (size_t i = 0; i < sizeof(bad_times) / sizeof(bad_times[0]); i++)
        assert_int_equal(pol_time_parse(bad_times[i], 0, &t), POL_E_ARG);
    assert_int_equal(pol_time_parse("2024-02-29T00:00:00Z", 0, &t), 0);

    /* allowlist values: canonical forms, and what is refused */
    assert_int_equal(pol_allow_value_normalize(POL_MATCH_FINGERPRINT,
                                               "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:"
                                               "AB:CD:EF:01:23:45:67:89", out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    assert_int_equal(pol_allow_value_normalize(POL_MATCH_SPKI, "abcd", out, sizeof(out), err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_allow_value_normalize(POL_MATCH_SAN_DNS, "Host.Example", out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "host.example");
    assert_int_equal(pol_allow_value_normalize(POL_MATCH_SAN_DNS, "a b", out, sizeof(out), err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_allow_value_normalize(POL_MATCH_SAN_EMAIL, "A.B@Ex.COM", out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "A.B@ex.com");
    assert_int_equal(pol_allow_value_normalize(POL_MATCH_SAN_EMAIL, "nobody", out, sizeof(out), err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_allow_value_normalize(POL_MATCH_SAN_URI, "relative/path", out, sizeof(out), err, sizeof(err)),
                     POL_E_ARG);
    assert_int_equal(pol_allow_value_normalize(POL_MATCH_CN, "", out, sizeof(out), err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_allow_value_normalize(POL_MATCH_SUBJECT, "CN=a\nb", out, sizeof(out), err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_allow_value_normalize(POL_MATCH_ISSUER_SERIAL, "00:11", out, sizeof(out), err, sizeof(err)),
                     POL_E_ARG);
    assert_int_equal(pol_allow_value_normalize(POL_MATCH_ISSUER_SERIAL,
                                               "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789:00:8F",
                                               out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789:8f");
    assert_int_equal(pol_allow_value_normalize((enum pol_match)42, "x", out, sizeof(out), err, sizeof(err)), POL_E_ARG);
}

/* What a handshake pays: decode the client certificate, decide with an allowlist and 100k revocations. */
static void test_speed(void **state)
{
    (void)state;
    size_t len;
    uint8_t *der = load_der("client.der", NULL, &len);
    struct pol_snapshot *s = NULL;
    size_t ix;
    uint8_t serial[8];
    struct timespec a, b;
    const int N = under_valgrind() ? 200 : 20000;

    assert_int_equal(pol_builder_new(&s), 0);
    assert_int_equal(pol_builder_issuer(s, pol_cert_subject_hash(g_ca), &ix), 0);
    for (uint32_t i = 0; i < 100000; i++) {
        serial[0] = 0x40;
        memcpy(serial + 1, &i, sizeof(i));
        assert_int_equal(pol_builder_revoked(s, ix, serial, 5, 1, 0), 0);
    }
    char fp[2 * POL_HASH_LEN + 1];
    assert_int_equal(pol_allow_value_of_cert(g_client, POL_MATCH_FINGERPRINT, fp, sizeof(fp)), 0);
    assert_int_equal(pol_builder_allow(s, "partners", "san-email", "ops@example.com", 0, 1), 0);
    assert_int_equal(pol_builder_allow(s, "partners", "fingerprint", fp, 0, 2), 0);
    assert_int_equal(pol_builder_finish(s, 1, NULL, 0), 0);
    struct pol_policy *p = policy("partners", 0, POL_REVOCATION_HARD_FAIL, 0);

    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < N; i++) {
        struct pol_cert *c = NULL;
        assert_int_equal(pol_cert_from_der(der, len, &c), 0);
        pol_cert_free(c);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double parse_us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / N;
    time_t now = now_ok();
    enum pol_reason r = POL_ADMIT;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < N * 10; i++)
        r |= pol_decide(s, p, g_client, 1, now, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double decide_ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (N * 10);
    assert_int_equal(r, POL_ADMIT);
    printf("[ MEASURE  ] pol_cert_from_der: %.1f us per certificate (%zu bytes, 3 SANs, ECDSA P-256)\n", parse_us, len);
    printf("[ MEASURE  ] pol_decide (100k revocations, allowlist admit by fingerprint): %.0f ns\n", decide_ns);
    pol_policy_free(p);
    pol_snapshot_free(s);
    free(der);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_fields_match_openssl),
        cmocka_unit_test(test_cert_malformed),
        cmocka_unit_test(test_admit_and_basic_refusals),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_decide_chain),
        cmocka_unit_test(test_overlay_matches_whole_snapshot),
        cmocka_unit_test(test_overlay_limit_scales_with_the_base),
        cmocka_unit_test(test_crl_missing_and_stale),
        cmocka_unit_test(test_allowlist_each_match),
        cmocka_unit_test(test_allowlist_expiry),
        cmocka_unit_test(test_policy_new_refusals),
        cmocka_unit_test(test_names_are_stable),
        cmocka_unit_test(test_value_formats),
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

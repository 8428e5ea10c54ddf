/* test_pol_issued.c - the store's record of certificates our CA issued (schema 4, table `issued`;
 * pol_store_issued_add / pol_store_issued_query): what is recorded is read from the certificate, each
 * record is an audited change on the hash chain, listings page by id and show the revocation state,
 * a running gateway's delta passes over it, and bad input changes nothing. A v3 store migrates.
 * Certificates come from OpenSSL's CLI (test_pol_util.h); the schema is inspected with SQLite directly.
 */
#include "test_pol_util.h"

#include <sqlite3.h>
#include <time.h>

#include "policies/pol_int.h"

static struct pol_cert *g_client, *g_client2;
static uint8_t *g_der, *g_der2;
static size_t g_len, g_len2;

static int setup(void **state)
{
    (void)state;
    make_tmpdir();
    make_pki();
    g_client = load_cert("client.pem");
    g_client2 = load_cert("client2.pem");
    g_der = load_der("client.der", "CERTIFICATE", &g_len);
    g_der2 = load_der("client2.der", "CERTIFICATE", &g_len2);
    return g_client && g_client2 && g_der && g_der2 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pol_cert_free(g_client);
    pol_cert_free(g_client2);
    free(g_der);
    free(g_der2);
    remove_tmpdir();
    return 0;
}

static struct pol_store *open_store(const char *name)
{
    struct pol_store *st = NULL;
    char err[512];
    if (pol_store_open_sqlite(P(name), &st, err, sizeof(err)) != 0)
        fprintf(stderr, "%s\n", err);
    assert_non_null(st);
    return st;
}

static uint64_t generation(struct pol_store *st)
{
    uint64_t g = 0;
    assert_int_equal(pol_store_generation(st, &g), 0);
    return g;
}

/* The rows of a query, copied out. */
struct got {
    size_t n;
    int64_t id[8];
    char subject[8][256], actor[8][64], comment[8][64], request_id[8][64];
    uint8_t serial[8][POL_SERIAL_MAX];
    size_t serial_len[8], der_len[8];
    time_t not_before[8], not_after[8], created_at[8];
    int revoked[8], reason[8];
    int stop_after;             /* return 7 after this many rows (0: never) */
};

static int collect(void *arg, const struct pol_issued_row *r)
{
    struct got *g = arg;
    size_t i = g->n++;
    assert_true(i < 8);
    g->id[i] = r->id;
    snprintf(g->subject[i], sizeof(g->subject[i]), "%s", r->subject);
    snprintf(g->actor[i], sizeof(g->actor[i]), "%s", r->actor);
    snprintf(g->comment[i], sizeof(g->comment[i]), "%s", r->comment ? r->comment : "(null)");
    snprintf(g->request_id[i], sizeof(g->request_id[i]), "%s", r->request_id ? r->request_id : "(null)");
    memcpy(g->serial[i], r->serial, r->serial_len);
    g->serial_len[i] = r->serial_len;
    g->der_len[i] = r->der_len;
    g->not_before[i] = r->not_before;
    g->not_after[i] = r->not_after;
    g->created_at[i] = r->created_at;
    g->revoked[i] = r->revoked;
    g->reason[i] = r->reason;
    assert_non_null(r->issuer_hash);
    return g->stop_after != 0 && g->n == (size_t)g->stop_after ? 7 : 0;
}

static struct got query(struct pol_store *st, int64_t after, size_t limit, const uint8_t *serial, size_t slen)
{
    struct got g;
    struct pol_issued_query q = { after, limit, serial, slen };
    char err[256];
    memset(&g, 0, sizeof(g));
    assert_int_equal(pol_store_issued_query(st, &q, collect, &g, err, sizeof(err)), 0);
    return g;
}

static void test_add_list_get(void **state)
{
    (void)state;
    struct pol_store *st = open_store("a.db");
    struct pol_actor who = { "token:alice", "ticket 7", "req-1", "127.0.0.1:5000" };
    int64_t id = 0;
    uint64_t gen = 0;
    char err[256] = "";
    time_t t0 = time(NULL);

    assert_int_equal(pol_store_issued_add(st, g_der, g_len, &who, &id, &gen, err, sizeof(err)), 0);
    assert_int_equal(id, 1);
    assert_int_equal(gen, 1);
    assert_int_equal(generation(st), 1);
    assert_int_equal(pol_store_issued_add(st, g_der2, g_len2, &(struct pol_actor){ "cli:root" }, &id, &gen, err,
                                          sizeof(err)), 0);
    assert_int_equal(id, 2);
    assert_int_equal(gen, 2);
    /* The same certificate again: refused, nothing changes. */
    assert_int_equal(pol_store_issued_add(st, g_der, g_len, &who, &id, &gen, err, sizeof(err)), POL_E_EXISTS);
    assert_non_null(strstr(err, "recorded already"));
    assert_int_equal(generation(st), 2);

    struct got g = query(st, 0, 0, NULL, 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.id[0], 1);
    assert_string_equal(g.subject[0], pol_cert_subject(g_client));
    assert_string_equal(g.actor[0], "token:alice");
    assert_string_equal(g.comment[0], "ticket 7");
    assert_string_equal(g.request_id[0], "req-1");
    assert_string_equal(g.comment[1], "(null)");
    assert_string_equal(g.request_id[1], "(null)");
    size_t slen = 0;
    const uint8_t *serial = pol_cert_serial(g_client, &slen);
    assert_int_equal(g.serial_len[0], slen);
    assert_memory_equal(g.serial[0], serial, slen);
    assert_int_equal(g.der_len[0], g_len);
    assert_int_equal(g.not_before[0], pol_cert_not_before(g_client));
    assert_int_equal(g.not_after[0], pol_cert_not_after(g_client));
    assert_true(g.created_at[0] >= t0 && g.created_at[0] <= time(NULL));
    assert_int_equal(g.revoked[0], 0);

    /* By serial; pages by id; a callback that stops. */
    g = query(st, 0, 0, serial, slen);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.id[0], 1);
    static const uint8_t none[] = { 0x42 };
    assert_int_equal(query(st, 0, 0, none, 1).n, 0);
    g = query(st, 1, 1, NULL, 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.id[0], 2);
    assert_int_equal(query(st, 0, 1, NULL, 0).n, 1);
    assert_int_equal(query(st, 2, 0, NULL, 0).n, 0);
    struct pol_issued_query q = { 0, 0, NULL, 0 };
    memset(&g, 0, sizeof(g));
    g.stop_after = 1;
    assert_int_equal(pol_store_issued_query(st, &q, collect, &g, err, sizeof(err)), 7);
    assert_int_equal(g.n, 1);

    /* Durable: another handle (a CLI) sees the same. */
    pol_store_close(st);
    st = open_store("a.db");
    assert_int_equal(query(st, 0, 0, NULL, 0).n, 2);
    pol_store_close(st);
}

static void test_revocation_state_shown(void **state)
{
    (void)state;
    struct pol_store *st = open_store("r.db");
    struct pol_actor who = { "token:alice" };
    struct pol_revocation r;
    char err[256];

    assert_int_equal(pol_store_issued_add(st, g_der, g_len, &who, NULL, NULL, err, sizeof(err)), 0);
    pol_revocation_of_cert(g_client, &r);
    r.reason = POL_REASON_CERTIFICATE_HOLD;
    r.revoked_at = 1700000000;
    assert_int_equal(pol_store_revoke(st, &r, &who, NULL, err, sizeof(err)), 0);
    struct got g = query(st, 0, 0, NULL, 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.revoked[0], 1);
    assert_int_equal(g.reason[0], POL_REASON_CERTIFICATE_HOLD);
    assert_int_equal(pol_store_lift(st, &r, &who, NULL, err, sizeof(err)), 0);
    g = query(st, 0, 0, NULL, 0);
    assert_int_equal(g.revoked[0], 0);
    pol_store_close(st);
}

struct audit_find {
    int found;
    char target[256], after[512];
};

static int find_issue(void *arg, const struct pol_audit_record *rec)
{
    struct audit_find *f = arg;
    if (strcmp(rec->action, "cert-issue") == 0) {
        f->found++;
        snprintf(f->target, sizeof(f->target), "%s", rec->target);
        snprintf(f->after, sizeof(f->after), "%s", rec->after ? rec->after : "");
    }
    return 0;
}

static void test_audited_and_passed_over_by_delta(void **state)
{
    (void)state;
    struct pol_store *st = open_store("d.db");
    struct pol_actor who = { "token:alice", NULL, "req-9", "unix" };
    struct pol_revocation r;
    struct pol_delta d;
    struct audit_find f;
    uint64_t gen = 0, dg = 0, records = 0;
    int full = 1;
    char err[256];

    /* A first change so that the delta starts from a real snapshot generation. */
    pol_revocation_of_cert(g_client2, &r);
    assert_int_equal(pol_store_revoke(st, &r, &who, &gen, err, sizeof(err)), 0);
    assert_int_equal(pol_store_issued_add(st, g_der, g_len, &who, NULL, NULL, err, sizeof(err)), 0);
    memset(&d, 0, sizeof(d));
    assert_int_equal(pol_store_delta(st, gen, POL_OVERLAY_MAX, &d, &dg, &full, err, sizeof(err)), 0);
    assert_int_equal(full, 0);                  /* no full rebuild for an issued certificate */
    assert_int_equal(dg, gen + 1);
    assert_int_equal(d.nrev, 0);
    assert_int_equal(d.nallow, 0);
    pol_delta_clear(&d);
    /* Mixed with a revocation: just that key. */
    pol_revocation_of_cert(g_client, &r);
    assert_int_equal(pol_store_revoke(st, &r, &who, NULL, err, sizeof(err)), 0);
    assert_int_equal(pol_store_delta(st, gen, POL_OVERLAY_MAX, &d, &dg, &full, err, sizeof(err)), 0);
    assert_int_equal(full, 0);
    assert_int_equal(dg, gen + 2);
    assert_int_equal(d.nrev, 1);
    pol_delta_clear(&d);

    memset(&f, 0, sizeof(f));
    assert_int_equal(pol_store_audit_each(st, 0, 0, find_issue, &f, err, sizeof(err)), 0);
    assert_int_equal(f.found, 1);
    assert_non_null(strstr(f.target, "serial=8F1234"));
    assert_non_null(strstr(f.target, "subject=CN=client1"));
    assert_non_null(strstr(f.after, "\"serial\":\"8F1234\""));
    assert_non_null(strstr(f.after, "\"fingerprint\":\""));
    assert_int_equal(pol_store_audit_verify(st, &records, NULL, err, sizeof(err)), 0);
    assert_int_equal(records, 3);
    pol_store_close(st);
}

static void test_refusals_change_nothing(void **state)
{
    (void)state;
    struct pol_store *st = open_store("x.db");
    struct pol_actor who = { "token:alice" };
    uint8_t junk[64];
    char err[256];
    int64_t id = 99;

    memset(junk, 0x30, sizeof(junk));
    assert_int_equal(pol_store_issued_add(NULL, g_der, g_len, &who, &id, NULL, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_issued_add(st, NULL, 0, &who, &id, NULL, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_issued_add(st, junk, sizeof(junk), &who, &id, NULL, err, sizeof(err)), POL_E_DER);
    assert_int_equal(pol_store_issued_add(st, g_der, g_len - 1, &who, &id, NULL, err, sizeof(err)), POL_E_DER);
    assert_int_equal(pol_store_issued_add(st, g_der, g_len, &(struct pol_actor){ "" }, &id, NULL, err, sizeof(err)),
                     POL_E_ARG);
    assert_int_equal(pol_store_issued_add(st, g_der, g_len, &(struct pol_actor){ "a\nb" }, &id, NULL, err, sizeof(err)),
                     POL_E_ARG);
    assert_int_equal(pol_store_issued_add(st, g_der, g_len, NULL, &id, NULL, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_issued_add(st, g_der, 70000, &who, &id, NULL, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(id, 99);
    assert_int_equal(generation(st), 0);
    assert_int_equal(query(st, 0, 0, NULL, 0).n, 0);

    struct got g;
    struct pol_issued_query q = { -1, 0, NULL, 0 };
    assert_int_equal(pol_store_issued_query(st, &q, collect, &g, err, sizeof(err)), POL_E_ARG);
    uint8_t big[POL_SERIAL_MAX + 1] = { 1 };
    struct pol_issued_query q2 = { 0, 0, big, sizeof(big) };
    assert_int_equal(pol_store_issued_query(st, &q2, collect, &g, err, sizeof(err)), POL_E_ARG);
    struct pol_issued_query q3 = { 0, 0, big, 0 };
    assert_int_equal(pol_store_issued_query(st, &q3, collect, &g, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_issued_query(st, NULL, collect, &g, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_issued_query(st, &q, NULL, &g, err, sizeof(err)), POL_E_ARG);
    pol_store_close(st);
}

static void test_v3_store_migrates(void **state)
{
    (void)state;
    struct pol_store *st = open_store("v3.db");
    struct pol_actor who = { "cli:root" };
    struct pol_revocation r;
    char err[256];
    int v = 0;

    pol_revocation_of_cert(g_client, &r);
    assert_int_equal(pol_store_revoke(st, &r, &who, NULL, err, sizeof(err)), 0);
    pol_store_close(st);
    /* What a version 3 file looks like: no `issued` table. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(P("v3.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE issued; UPDATE schema_version SET version = 3;", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    st = open_store("v3.db");
    assert_int_equal(pol_store_schema_version(st, &v), 0);
    assert_int_equal(v, 4);
    assert_int_equal(pol_store_issued_add(st, g_der, g_len, &who, NULL, NULL, err, sizeof(err)), 0);
    struct got g = query(st, 0, 0, NULL, 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.revoked[0], 1);          /* the revocation made before the migration */
    uint64_t records = 0;
    assert_int_equal(pol_store_audit_verify(st, &records, NULL, err, sizeof(err)), 0);
    assert_int_equal(records, 2);
    pol_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_list_get),
        cmocka_unit_test(test_revocation_state_shown),
        cmocka_unit_test(test_audited_and_passed_over_by_delta),
        cmocka_unit_test(test_refusals_change_nothing),
        cmocka_unit_test(test_v3_store_migrates),
    };
    return cmocka_run_group_tests_name("pol_issued", tests, setup, teardown);
}

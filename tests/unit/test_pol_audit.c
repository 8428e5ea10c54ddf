/* test_pol_audit.c - the policy store's audit trail (schema version 3; policies/audit.c,
 * store_sqlite_audit.c) and the store functions the admin API's policy routes use.
 *
 * Covered: one record per change kind (revoke, hold made final, lift, batch, allow add and remove,
 * CRL import named and unnamed, CRL rename, CRL removal) with who, request id, source, comment, before
 * and after; the chain links; pol_store_audit_verify passing, then failing on the right record for a
 * changed field (each of them, NULL versus empty included), a removed record (first, middle, last),
 * reordered records; chunked verification; a version 2 store migrated to 3 with its old records
 * chained; `hsmgate audit verify` and `audit ls` (gateway/cmd_audit.c); revocation pages and their
 * cursors, allowlist pages and counts, named CRLs (names bound to one CA, import by the kept CA,
 * removal by name and by id). Real SQLite files; tampering is done with SQLite directly, as an
 * attacker with the file would.
 */
#include "test_pol_util.h"

#include <fcntl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <time.h>

#include "gateway/cmd.h"
#include "policies/store_int.h"

static struct pol_cert *g_ca, *g_ca2, *g_client, *g_client2, *g_partner;
static uint8_t *g_ca_der, *g_ca2_der;
static size_t g_ca_len, g_ca2_len;

static const struct pol_actor api_actor = { "token:alice", "ticket 42", "req-0001", "127.0.0.1:51234" };

static int setup(void **state)
{
    (void)state;
    make_tmpdir();
    make_pki();
    g_ca = load_cert("ca.pem");
    g_ca2 = load_cert("ca2.pem");
    g_client = load_cert("client.pem");
    g_client2 = load_cert("client2.pem");
    g_partner = load_cert("partner.pem");
    g_ca_der = load_der("ca.pem", "CERTIFICATE", &g_ca_len);
    g_ca2_der = load_der("ca2.pem", "CERTIFICATE", &g_ca2_len);
    return g_ca && g_ca2 && g_client && g_client2 && g_partner && g_ca_der && g_ca2_der ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pol_cert_free(g_ca);
    pol_cert_free(g_ca2);
    pol_cert_free(g_client);
    pol_cert_free(g_client2);
    pol_cert_free(g_partner);
    free(g_ca_der);
    free(g_ca2_der);
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

static void sql_exec(const char *name, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(P(name), &db), SQLITE_OK);
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, msg);
    sqlite3_free(msg);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

static long long sql_int(const char *name, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    assert_int_equal(sqlite3_open_v2(P(name), &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Verifies the store file: 0 or POL_E_AUDIT (then *bad and err); asserts no other failure. */
static int verify_file(const char *name, uint64_t *n, int64_t *bad, char *err, size_t errlen)
{
    struct pol_store *st = open_store(name);
    int rc = pol_store_audit_verify(st, n, bad, err, errlen);
    pol_store_close(st);
    if (rc != 0 && rc != POL_E_AUDIT)
        fprintf(stderr, "verify: %s\n", err);
    assert_true(rc == 0 || rc == POL_E_AUDIT);
    return rc;
}

/* ---------------------------------------------------------------- records, copied out */

struct rec {
    int64_t id;
    uint64_t gen;
    char actor[64], action[32], target[600], before[1024], after[1024], rid[64], src[64], comment[64];
    int has_before, has_rid, has_src, has_comment;
    uint8_t prev[POL_HASH_LEN], hash[POL_HASH_LEN];
};

struct recs {
    struct rec r[64];
    size_t n;
};

static void cp(char *dst, size_t cap, const char *s, int *has)
{
    if (has != NULL)
        *has = s != NULL;
    snprintf(dst, cap, "%s", s ? s : "");
}

static int collect(void *arg, const struct pol_audit_record *a)
{
    struct recs *rs = arg;
    if (rs->n == sizeof(rs->r) / sizeof(rs->r[0]))
        return -1;
    struct rec *r = &rs->r[rs->n++];
    memset(r, 0, sizeof(*r));
    r->id = a->id;
    r->gen = a->generation;
    cp(r->actor, sizeof(r->actor), a->actor, NULL);
    cp(r->action, sizeof(r->action), a->action, NULL);
    cp(r->target, sizeof(r->target), a->target, NULL);
    cp(r->before, sizeof(r->before), a->before, &r->has_before);
    cp(r->after, sizeof(r->after), a->after, NULL);
    cp(r->rid, sizeof(r->rid), a->request_id, &r->has_rid);
    cp(r->src, sizeof(r->src), a->source, &r->has_src);
    cp(r->comment, sizeof(r->comment), a->comment, &r->has_comment);
    assert_non_null(a->prev_hash);
    assert_non_null(a->hash);
    memcpy(r->prev, a->prev_hash, POL_HASH_LEN);
    memcpy(r->hash, a->hash, POL_HASH_LEN);
    return 0;
}

static void records(struct pol_store *st, int64_t after, size_t limit, struct recs *rs)
{
    char err[256];
    memset(rs, 0, sizeof(*rs));
    assert_int_equal(pol_store_audit_each(st, after, limit, collect, rs, err, sizeof(err)), 0);
}

/* The JSON text parses, and its field key is the string want (NULL: JSON null). */
static void json_has(const char *text, const char *key, const char *want)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (o == NULL)
        fail_msg("not JSON: %s (%s)", text, je.text);
    json_t *v = json_object_get(o, key);
    if (want == NULL) {
        assert_true(json_is_null(v));
    } else {
        if (!json_is_string(v))
            fail_msg("%s: no string \"%s\"", text, key);
        assert_string_equal(json_string_value(v), want);
    }
    json_decref(o);
}

static long long json_int_of(const char *text, const char *key)
{
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    json_t *v = json_object_get(o, key);
    assert_true(json_is_integer(v));
    long long x = (long long)json_integer_value(v);
    json_decref(o);
    return x;
}

/* ---------------------------------------------------------------- CRLs (openssl ca -gencrl) */

#define ENTRY(serial, reason) "R\t301231235959Z\t250101000000Z" reason "\t" serial "\tunknown\t/CN=x\n"

static void make_crl(const char *ca, const char *number, const char *index, const char *out)
{
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/gen-%s", g_dir, out);
    assert_int_equal(sh("rm -rf '%s' && mkdir -p '%s'", dir, dir), 0);
    FILE *f = fopen(P("tmp.cnf"), "w");
    assert_non_null(f);
    fprintf(f,
            "[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\ncrlnumber = %s/crlnumber\nnew_certs_dir = %s\n"
            "certificate = %s/%s.pem\nprivate_key = %s/%s.key\ndefault_md = sha256\ndefault_crl_hours = 48\n"
            "crl_extensions = crl_ext\n[crl_ext]\nauthorityKeyIdentifier = keyid:always\n",
            dir, dir, dir, g_dir, ca, g_dir, ca);
    fclose(f);
    assert_int_equal(sh("mv '%s' '%s/openssl.cnf' && printf '%%b' '%s' > '%s/index.txt' && echo %s > '%s/crlnumber'",
                        P("tmp.cnf"), dir, index, dir, number, dir), 0);
    assert_int_equal(sh("openssl ca -gencrl -config '%s/openssl.cnf' -out '%s/crl-%s.pem' 2>'%s/log'", dir, g_dir, out,
                        dir), 0);
}

static struct pol_crl *parse_crl(const char *out, const uint8_t *ca, size_t ca_len)
{
    char name[64], err[512];
    size_t len;
    struct pol_crl *crl = NULL;
    snprintf(name, sizeof(name), "crl-%s.pem", out);
    uint8_t *buf = load_der(name, NULL, &len);
    assert_non_null(buf);
    if (pol_crl_parse(buf, len, ca, ca_len, &crl, err, sizeof(err)) != 0)
        fail_msg("%s: %s", name, err);
    free(buf);
    return crl;
}

/* ---------------------------------------------------------------- one store with every change */

/* Makes every kind of change on a fresh store file; returns how many records it made. */
static size_t make_history(const char *name)
{
    struct pol_store *st = open_store(name);
    struct pol_revocation r, b[3];
    char err[512];
    uint64_t g = 0;
    int64_t id = 0;
    int unchanged = -1;
    size_t applied = 99;
    uint8_t serials[3][2] = { { 0x11, 0x01 }, { 0x11, 0x02 }, { 0x11, 0x03 } };

    pol_revocation_of_cert(g_client, &r);
    r.reason = POL_REASON_CERTIFICATE_HOLD;
    assert_int_equal(pol_store_revoke(st, &r, &api_actor, &g, err, sizeof(err)), 0);          /* 1 hold */
    r.reason = POL_REASON_KEY_COMPROMISE;
    assert_int_equal(pol_store_revoke(st, &r, &api_actor, &g, err, sizeof(err)), 0);          /* 2 final */
    pol_revocation_of_cert(g_client2, &r);
    r.reason = POL_REASON_CERTIFICATE_HOLD;
    assert_int_equal(pol_store_revoke(st, &r, &test_actor, &g, err, sizeof(err)), 0);         /* 3 hold */
    assert_int_equal(pol_store_lift(st, &r, &api_actor, &g, err, sizeof(err)), 0);            /* 4 lift */
    for (int i = 0; i < 3; i++) {
        pol_revocation_of_issuer(g_ca, serials[i], 2, &b[i]);
        b[i].reason = POL_REASON_SUPERSEDED;
    }
    b[2] = b[1];                                                                              /* a repeat */
    assert_int_equal(pol_store_revoke_batch_count(st, b, 3, &api_actor, &applied, &g, err, sizeof(err)), 0); /* 5 */
    assert_int_equal(applied, 2);
    struct pol_allow_entry e = { "partners", POL_MATCH_SUBJECT, "CN=a \"quoted\" \\ name,O=X", 0 };
    assert_int_equal(pol_store_allow_add(st, &e, &api_actor, &id, &g, err, sizeof(err)), 0);  /* 6 */
    assert_int_equal(pol_store_allow_remove(st, id, NULL, &api_actor, &g, err, sizeof(err)), 0); /* 7 */
    make_crl("ca2", "07", ENTRY("2001", ",keyCompromise") ENTRY("2002", ""), "h7");
    struct pol_crl *crl = parse_crl("h7", g_ca2_der, g_ca2_len);
    assert_int_equal(pol_store_crl_import(st, crl, &test_actor, &unchanged, &g, err, sizeof(err)), 0); /* 8 */
    assert_int_equal(unchanged, 0);
    /* the same CRL again, now with a name: only the name is recorded */
    assert_int_equal(pol_store_crl_import_named(st, "partner", g_ca2_der, g_ca2_len, crl, &api_actor, &unchanged, &g,
                                                err, sizeof(err)), 0);                          /* 9 */
    assert_int_equal(unchanged, 1);
    pol_crl_free(crl);
    assert_int_equal(pol_store_crl_remove(st, "partner", 0, &api_actor, &g, err, sizeof(err)), 0); /* 10 */
    pol_store_close(st);
    return 10;
}

static void test_every_change_recorded(void **state)
{
    (void)state;
    struct recs rs;
    char err[512];
    uint64_t n = 0;
    int64_t bad = -1;

    assert_int_equal(sh("rm -f '%s'*", P("h.db")), 0);
    size_t made = make_history("h.db");
    struct pol_store *st = open_store("h.db");
    records(st, 0, 0, &rs);
    assert_int_equal(rs.n, made);
    static const char *const actions[] = { "revoke", "revoke", "revoke", "lift", "revoke-batch", "allow-add",
                                           "allow-remove", "crl-import", "crl-name", "crl-remove" };
    uint8_t zero[POL_HASH_LEN] = { 0 };
    for (size_t i = 0; i < rs.n; i++) {
        struct rec *r = &rs.r[i];
        assert_int_equal(r->id, (int64_t)i + 1);
        assert_int_equal(r->gen, i + 1);
        assert_string_equal(r->action, actions[i]);
        /* the chain: each prev_hash is the hash before it */
        assert_memory_equal(r->prev, i == 0 ? zero : rs.r[i - 1].hash, POL_HASH_LEN);
        assert_true(r->has_before);
        if (i == 2 || i == 7) {
            assert_string_equal(r->actor, "test:unit");
            assert_false(r->has_rid);
            assert_false(r->has_src);
        } else {
            assert_string_equal(r->actor, "token:alice");
            assert_string_equal(r->rid, "req-0001");
            assert_string_equal(r->src, "127.0.0.1:51234");
            assert_string_equal(r->comment, "ticket 42");
        }
    }
    /* revoke: nothing before, the revocation after */
    assert_string_equal(rs.r[0].before, "null");
    json_has(rs.r[0].after, "reason", "certificateHold");
    assert_non_null(strstr(rs.r[0].target, "serial=8F1234"));
    /* a hold made final: the hold before, the final reason after */
    json_has(rs.r[1].before, "reason", "certificateHold");
    json_has(rs.r[1].after, "reason", "keyCompromise");
    /* lift: the hold before, nothing after */
    json_has(rs.r[3].before, "reason", "certificateHold");
    assert_string_equal(rs.r[3].after, "null");
    /* batch: counts */
    assert_int_equal(json_int_of(rs.r[4].after, "requested"), 3);
    assert_int_equal(json_int_of(rs.r[4].after, "applied"), 2);
    assert_int_equal(json_int_of(rs.r[4].after, "skipped"), 1);
    /* allow add and remove: the entry, quotes and backslashes escaped as JSON */
    assert_string_equal(rs.r[5].before, "null");
    json_has(rs.r[5].after, "value", "CN=a \"quoted\" \\ name,O=X");
    json_has(rs.r[5].after, "expires_at", NULL);
    json_has(rs.r[6].before, "value", "CN=a \"quoted\" \\ name,O=X");
    json_has(rs.r[6].before, "actor", "token:alice");
    json_has(rs.r[6].before, "comment", "ticket 42");
    assert_int_equal(json_int_of(rs.r[6].before, "id"), json_int_of(rs.r[5].after, "id"));
    assert_string_equal(rs.r[6].after, "null");
    /* CRL import, name, removal */
    assert_string_equal(rs.r[7].before, "null");
    json_has(rs.r[7].after, "crl_number", "07");
    assert_int_equal(json_int_of(rs.r[7].after, "entries"), 2);
    json_has(rs.r[8].before, "name", NULL);
    json_has(rs.r[8].after, "name", "partner");
    json_has(rs.r[9].before, "name", "partner");
    json_has(rs.r[9].before, "issuer", "CN=Partner CA,O=Partner");
    assert_string_equal(rs.r[9].after, "null");
    /* listing in pages */
    records(st, 3, 2, &rs);
    assert_int_equal(rs.n, 2);
    assert_int_equal(rs.r[0].id, 4);
    assert_int_equal(rs.r[1].id, 5);
    records(st, 10, 5, &rs);
    assert_int_equal(rs.n, 0);
    assert_int_equal(pol_store_audit_each(st, -1, 0, collect, &rs, err, sizeof(err)), POL_E_ARG);

    assert_int_equal(pol_store_audit_verify(st, &n, &bad, err, sizeof(err)), 0);
    assert_int_equal(n, made);
    assert_int_equal(bad, 0);
    /* verification in small chunks (the backend step), as if records came between them */
    struct pol_audit_walk v;
    memset(&v, 0, sizeof(v));
    int steps = 0;
    while (!v.done) {
        assert_int_equal(st->ops->audit_verify(st, &v, 3, err, sizeof(err)), 0);
        steps++;
    }
    assert_int_equal(steps, 4);
    assert_int_equal(v.records, made);
    pol_store_close(st);
    /* nothing was left half-done: the rows are what the store says */
    assert_int_equal(sql_int("h.db", "SELECT count(*) FROM changes WHERE hash IS NULL OR length(hash) <> 32"), 0);
    assert_int_equal(sql_int("h.db", "SELECT count(*) FROM crls"), 0);
    assert_int_equal(sql_int("h.db", "SELECT count(*) FROM revocations WHERE source <> 0"), 0);
}

/* Refused actor fields: controls and overlong values. */
static void test_actor_checked(void **state)
{
    (void)state;
    struct pol_store *st = open_store("a.db");
    struct pol_revocation r;
    char err[256], longid[200];
    pol_revocation_of_cert(g_client, &r);
    struct pol_actor bad_rid = { "token:x", NULL, "a\nb", NULL }, bad_src = { "token:x", NULL, NULL, "\x01" };
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    struct pol_actor long_rid = { "token:x", NULL, longid, NULL };
    assert_int_equal(pol_store_revoke(st, &r, &bad_rid, NULL, err, sizeof(err)), POL_E_ARG);
    assert_non_null(strstr(err, "request id"));
    assert_int_equal(pol_store_revoke(st, &r, &bad_src, NULL, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_revoke(st, &r, &long_rid, NULL, err, sizeof(err)), POL_E_ARG);
    uint64_t g = 1;
    assert_int_equal(pol_store_generation(st, &g), 0);
    assert_int_equal(g, 0);
    pol_store_close(st);
}

/* ---------------------------------------------------------------- tampering */

/* A fresh copy of the history for each tampering. */
static void fresh(const char *name)
{
    static int made;
    if (!made) {
        assert_int_equal(sh("rm -f '%s'*", P("base.db")), 0);
        make_history("base.db");
        made = 1;
    }
    /* The WAL is checkpointed at close; copy the main file only. */
    assert_int_equal(sh("rm -f '%s'* && cp '%s' '%s'", P(name), P("base.db"), P(name)), 0);
}

static void expect_bad(const char *name, const char *sql, int64_t want_bad, const char *want_msg)
{
    char err[512] = "";
    uint64_t n = 0;
    int64_t bad = 0;
    fresh(name);
    sql_exec(name, sql);
    if (verify_file(name, &n, &bad, err, sizeof(err)) != POL_E_AUDIT)
        fail_msg("not detected: %s", sql);
    if (bad != want_bad)
        fail_msg("%s: first bad record %lld, expected %lld (%s)", sql, (long long)bad, (long long)want_bad, err);
    assert_true(n < 10);
    char idtext[48];
    snprintf(idtext, sizeof(idtext), "audit record %lld", (long long)want_bad);
    assert_non_null(strstr(err, idtext));
    if (want_msg != NULL && strstr(err, want_msg) == NULL)
        fail_msg("%s: message \"%s\" lacks \"%s\"", sql, err, want_msg);
}

static void test_tampering_detected(void **state)
{
    (void)state;
    /* each field of a record, changed */
    expect_bad("t.db", "UPDATE changes SET actor = 'token:mallory' WHERE id = 3", 3, "changed");
    expect_bad("t.db", "UPDATE changes SET action = 'lift' WHERE id = 2", 2, "changed");
    expect_bad("t.db", "UPDATE changes SET target = target || ' ' WHERE id = 5", 5, "changed");
    expect_bad("t.db", "UPDATE changes SET before_json = 'null' WHERE id = 2", 2, "changed");
    expect_bad("t.db", "UPDATE changes SET after_json = replace(after_json, 'keyCompromise', 'superseded') "
                       "WHERE id = 2", 2, "changed");
    expect_bad("t.db", "UPDATE changes SET request_id = 'req-0002' WHERE id = 6", 6, "changed");
    expect_bad("t.db", "UPDATE changes SET source = '10.0.0.1:1' WHERE id = 7", 7, "changed");
    expect_bad("t.db", "UPDATE changes SET comment = 'nothing to see' WHERE id = 1", 1, "changed");
    expect_bad("t.db", "UPDATE changes SET at = at - 3600 WHERE id = 4", 4, "changed");
    expect_bad("t.db", "UPDATE changes SET generation = 40 WHERE id = 10", 10, "changed");
    /* NULL and empty are told apart (length-prefixed fields with a presence octet) */
    expect_bad("t.db", "UPDATE changes SET request_id = '' WHERE id = 3", 3, "changed");
    /* a NUL inside a text does not hide what follows it */
    expect_bad("t.db", "UPDATE changes SET target = CAST(target || x'00' || 'x' AS TEXT) WHERE id = 4", 4, NULL);
    /* moving bytes from one field to the next */
    expect_bad("t.db", "UPDATE changes SET actor = 'token:alic', action = 'erevoke' WHERE id = 1", 1, NULL);
    /* the hashes themselves */
    expect_bad("t.db", "UPDATE changes SET hash = zeroblob(32) WHERE id = 8", 8, NULL);
    expect_bad("t.db", "UPDATE changes SET prev_hash = NULL WHERE id = 9", 9, "prev_hash");
    /* a record re-hashed by someone who can compute SHA-256 but not rewrite every later record */
    expect_bad("t.db", "UPDATE changes SET hash = (SELECT hash FROM changes WHERE id = 5) WHERE id = 4", 4, NULL);
}

static void test_removal_and_reorder_detected(void **state)
{
    (void)state;
    /* a record in the middle: the one after it names the gap */
    expect_bad("t.db", "DELETE FROM changes WHERE id = 5", 6, "were removed");
    /* the first */
    expect_bad("t.db", "DELETE FROM changes WHERE id = 1", 2, "starts at id 2");
    /* the last: the store's generation says there was one */
    expect_bad("t.db", "DELETE FROM changes WHERE id = 10", 10, "missing");
    /* the last two */
    expect_bad("t.db", "DELETE FROM changes WHERE id >= 9", 9, "missing");
    /* removed, and the ids renumbered to hide the gap */
    expect_bad("t.db", "DELETE FROM changes WHERE id = 5; UPDATE changes SET id = id - 1 WHERE id > 5", 5,
               "prev_hash");
    /* two records swapped */
    expect_bad("t.db", "UPDATE changes SET id = 100 WHERE id = 3; UPDATE changes SET id = 3 WHERE id = 4; "
                       "UPDATE changes SET id = 4 WHERE id = 100", 3, "prev_hash");
    /* a record slipped in before the first */
    expect_bad("t.db", "INSERT INTO changes(id, at, generation, actor, action, target) "
                       "VALUES (0, 0, 0, 'x', 'revoke', 'x')", 0, "not 1");
    /* and the untouched copy passes */
    char err[256];
    uint64_t n = 0;
    int64_t bad = -1;
    fresh("t.db");
    assert_int_equal(verify_file("t.db", &n, &bad, err, sizeof(err)), 0);
    assert_int_equal(n, 10);
    assert_int_equal(bad, 0);
}

/* A damaged record does not block the next change (a revocation must never wait on the log); the
 * new record chains on and verification still names the damaged one. */
static void test_damaged_log_still_takes_changes(void **state)
{
    (void)state;
    char err[512];
    uint64_t n = 0;
    int64_t bad = 0;
    fresh("d.db");
    sql_exec("d.db", "UPDATE changes SET hash = NULL WHERE id = 10");
    struct pol_store *st = open_store("d.db");
    struct pol_revocation r;
    pol_revocation_of_cert(g_client2, &r);
    assert_int_equal(pol_store_revoke(st, &r, &api_actor, NULL, err, sizeof(err)), 0);
    assert_int_equal(pol_store_audit_verify(st, &n, &bad, err, sizeof(err)), POL_E_AUDIT);
    assert_int_equal(bad, 10);
    pol_store_close(st);
}

/* ---------------------------------------------------------------- migration from version 2 */

static void test_v2_store_migrated(void **state)
{
    (void)state;
    char err[512];
    uint64_t n = 0;
    int64_t bad = -1;
    int v = 0;

    /* A version 2 file: this binary's history with every version 3 column and index (and the version 4
     * table) taken away. */
    assert_int_equal(sh("rm -f '%s'*", P("v2.db")), 0);
    make_history("v2.db");
    sql_exec("v2.db", "DROP TABLE issued; DROP INDEX crls_name;"
                      "ALTER TABLE changes DROP COLUMN before_json; ALTER TABLE changes DROP COLUMN after_json;"
                      "ALTER TABLE changes DROP COLUMN request_id; ALTER TABLE changes DROP COLUMN source;"
                      "ALTER TABLE changes DROP COLUMN prev_hash; ALTER TABLE changes DROP COLUMN hash;"
                      "ALTER TABLE crls DROP COLUMN name; ALTER TABLE crls DROP COLUMN ca_der;"
                      "UPDATE schema_version SET version = 2;");
    assert_int_equal(sql_int("v2.db", "SELECT count(*) FROM pragma_table_info('changes') WHERE name = 'hash'"), 0);
    assert_int_equal(sql_int("v2.db", "SELECT count(*) FROM changes"), 10);

    struct pol_store *st = open_store("v2.db");
    assert_int_equal(pol_store_schema_version(st, &v), 0);
    assert_int_equal(v, POL_SCHEMA_VERSION);
    /* every old record chained, in id order, with what it had then */
    struct recs rs;
    records(st, 0, 0, &rs);
    assert_int_equal(rs.n, 10);
    uint8_t zero[POL_HASH_LEN] = { 0 };
    for (size_t i = 0; i < rs.n; i++) {
        assert_memory_equal(rs.r[i].prev, i == 0 ? zero : rs.r[i - 1].hash, POL_HASH_LEN);
        assert_false(rs.r[i].has_before);
        assert_false(rs.r[i].has_rid);
    }
    assert_string_equal(rs.r[0].actor, "token:alice");
    assert_string_equal(rs.r[0].comment, "ticket 42");
    assert_int_equal(pol_store_audit_verify(st, &n, &bad, err, sizeof(err)), 0);
    assert_int_equal(n, 10);
    /* a new change continues the chain */
    struct pol_revocation r;
    pol_revocation_of_cert(g_partner, &r);
    assert_int_equal(pol_store_revoke(st, &r, &api_actor, NULL, err, sizeof(err)), 0);
    records(st, 10, 0, &rs);
    assert_int_equal(rs.n, 1);
    assert_true(rs.r[0].has_before);
    assert_string_equal(rs.r[0].rid, "req-0001");
    assert_int_equal(pol_store_audit_verify(st, &n, &bad, err, sizeof(err)), 0);
    assert_int_equal(n, 11);
    pol_store_close(st);
    /* and an old record tampered after the migration is caught */
    sql_exec("v2.db", "UPDATE changes SET actor = 'token:mallory' WHERE id = 2");
    assert_int_equal(verify_file("v2.db", &n, &bad, err, sizeof(err)), POL_E_AUDIT);
    assert_int_equal(bad, 2);
}

/* ---------------------------------------------------------------- hsmgate audit */

static char g_out[1 << 16], g_errs[1 << 14];

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* gw_cmd_audit with the NULL-terminated arguments, stdout into g_out and stderr into g_errs. */
static int run_audit(const char *first, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    argv[argc++] = (char *)"audit";
    va_start(ap, first);
    for (const char *a = first; argc < 31 && a != NULL; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    char outp[300], errp[300];
    snprintf(outp, sizeof(outp), "%s/out.txt", g_dir);
    snprintf(errp, sizeof(errp), "%s/err.txt", g_dir);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600), fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(so >= 0 && se >= 0 && fo >= 0 && fe >= 0);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    int rc = gw_cmd_audit(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    slurp(outp, g_out, sizeof(g_out));
    slurp(errp, g_errs, sizeof(g_errs));
    return rc;
}

static void test_cli(void **state)
{
    (void)state;
    fresh("c.db");
    const char *db = P("c.db");
    assert_int_equal(run_audit("verify", "--store", db, NULL), 0);
    assert_non_null(strstr(g_out, "audit trail intact: 10 records"));

    /* ls: text, one line per record */
    assert_int_equal(run_audit("ls", "--store", db, NULL), 0);
    size_t lines = 0;
    for (const char *p = g_out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    assert_int_equal(lines, 10);
    assert_non_null(strstr(g_out, "revoke-batch"));
    /* --json, a page */
    assert_int_equal(run_audit("ls", "--store", db, "--json", "--after", "2", "--limit", "3", NULL), 0);
    json_error_t je;
    json_t *a = json_loads(g_out, 0, &je);
    if (a == NULL)
        fail_msg("ls --json: %s: %s", je.text, g_out);
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), 3);
    json_t *r0 = json_array_get(a, 0);
    assert_int_equal(json_integer_value(json_object_get(r0, "id")), 3);
    assert_string_equal(json_string_value(json_object_get(r0, "action")), "revoke");
    assert_int_equal(strlen(json_string_value(json_object_get(r0, "hash"))), 64);
    assert_true(json_is_object(json_object_get(r0, "after")));           /* JSON, not a string of it */
    assert_true(json_is_null(json_object_get(r0, "before")));
    assert_true(json_is_null(json_object_get(r0, "request_id")));        /* test_actor gives none */
    json_t *r1 = json_array_get(a, 1);
    assert_string_equal(json_string_value(json_object_get(r1, "request_id")), "req-0001");
    assert_string_equal(json_string_value(json_object_get(r1, "source")), "127.0.0.1:51234");
    json_decref(a);

    /* a tampered trail: exit 1 naming the record */
    sql_exec("c.db", "UPDATE changes SET comment = 'edited' WHERE id = 6");
    assert_int_equal(run_audit("verify", "--store", db, NULL), 1);
    assert_non_null(strstr(g_errs, "audit record 6"));
    assert_null(strstr(g_out, "intact"));

    /* usage errors: 2 */
    assert_int_equal(run_audit("verify", NULL), 2);
    assert_int_equal(run_audit("nonsense", "--store", db, NULL), 2);
    assert_int_equal(run_audit("ls", "--store", db, "--limit", "x", NULL), 2);
    assert_int_equal(run_audit("ls", "--store", db, "--after", "-1", NULL), 2);
    assert_int_equal(run_audit("verify", "--store", db, "--json", NULL), 2);
    assert_int_equal(run_audit("verify", "--store", db, "extra", NULL), 2);
    assert_int_equal(run_audit(NULL), 2);
    assert_int_equal(run_audit("--help", NULL), 0);
    /* a store that does not exist is not created */
    assert_int_equal(run_audit("verify", "--store", P("none.db"), NULL), 1);
    assert_int_equal(access(P("none.db"), F_OK), -1);
}

/* ---------------------------------------------------------------- queries for the admin API */

struct rev_page {
    char serials[16][2 * POL_SERIAL_MAX + 1];
    int64_t crl[16];
    size_t n;
};

static int rev_collect(void *arg, const struct pol_revocation_row *row)
{
    struct rev_page *p = arg;
    if (p->n == 16)
        return -1;
    pol_serial_format(row->serial, row->serial_len, p->serials[p->n], sizeof(p->serials[0]));
    p->crl[p->n++] = row->crl_id;
    return 0;
}

static void test_revocation_pages(void **state)
{
    (void)state;
    struct pol_store *st = open_store("q.db");
    struct pol_revocation b[7];
    uint8_t serials[7][1];
    char err[512], next[POL_CURSOR_MAX], cursor[POL_CURSOR_MAX];
    for (int i = 0; i < 7; i++) {
        serials[i][0] = (uint8_t)(0x10 + i);
        pol_revocation_of_issuer(g_ca, serials[i], 1, &b[i]);
    }
    assert_int_equal(pol_store_revoke_batch(st, b, 7, &test_actor, NULL, err, sizeof(err)), 0);
    struct pol_revocation pr;
    pol_revocation_of_cert(g_partner, &pr);
    assert_int_equal(pol_store_revoke(st, &pr, &test_actor, NULL, err, sizeof(err)), 0);

    /* pages of 3: 3, 3, 2, then no cursor */
    struct pol_revocation_query q = { NULL, 3, NULL, NULL, 0 };
    struct rev_page p;
    size_t total = 0, pages = 0;
    cursor[0] = '\0';
    do {
        memset(&p, 0, sizeof(p));
        q.after = cursor;
        assert_int_equal(pol_store_revocations_query(st, &q, rev_collect, &p, next, err, sizeof(err)), 0);
        total += p.n;
        pages++;
        snprintf(cursor, sizeof(cursor), "%s", next);
    } while (cursor[0] != '\0' && pages < 10);
    assert_int_equal(total, 8);
    assert_int_equal(pages, 3);
    /* a page that ends exactly at the last row has no next */
    q.after = NULL;
    q.limit = 8;
    memset(&p, 0, sizeof(p));
    assert_int_equal(pol_store_revocations_query(st, &q, rev_collect, &p, next, err, sizeof(err)), 0);
    assert_int_equal(p.n, 8);
    assert_string_equal(next, "");
    /* one issuer, one serial */
    q.limit = 0;
    q.issuer_hash = pol_cert_subject_hash(g_ca2);
    memset(&p, 0, sizeof(p));
    assert_int_equal(pol_store_revocations_query(st, &q, rev_collect, &p, next, err, sizeof(err)), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.serials[0], "2001");
    q.issuer_hash = NULL;
    q.serial = serials[3];
    q.serial_len = 1;
    memset(&p, 0, sizeof(p));
    assert_int_equal(pol_store_revocations_query(st, &q, rev_collect, &p, next, err, sizeof(err)), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.serials[0], "13");
    /* cursors this store did not make */
    static const char *const bad[] = { "x", "1.zz.0", "0.10.0", "1.10", "1.10.0.", "-1.10.0", "1..0", "1.10.-1" };
    memset(&q, 0, sizeof(q));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        q.after = bad[i];
        if (pol_store_revocations_query(st, &q, rev_collect, &p, next, err, sizeof(err)) != POL_E_ARG)
            fail_msg("cursor \"%s\" accepted", bad[i]);
    }
    pol_store_close(st);
}

struct allow_page {
    int64_t ids[16];
    size_t n;
    char lists[256];
};

static int allow_collect(void *arg, const struct pol_allow_row *row)
{
    struct allow_page *p = arg;
    if (p->n < 16)
        p->ids[p->n++] = row->id;
    return 0;
}

static int lists_collect(void *arg, const struct pol_allow_list_row *row)
{
    struct allow_page *p = arg;
    size_t l = strlen(p->lists);
    snprintf(p->lists + l, sizeof(p->lists) - l, "%s:%zu:%zu;", row->list, row->entries, row->expired);
    return 0;
}

static void test_allow_pages(void **state)
{
    (void)state;
    struct pol_store *st = open_store("al.db");
    char err[512], cn[16];
    int64_t id = 0;
    for (int i = 0; i < 5; i++) {
        snprintf(cn, sizeof(cn), "c%d", i);
        struct pol_allow_entry e = { i < 3 ? "a" : "b", POL_MATCH_CN, cn, i == 4 ? time(NULL) + 1 : 0 };
        assert_int_equal(pol_store_allow_add(st, &e, &test_actor, &id, NULL, err, sizeof(err)), 0);
    }
    struct allow_page p;
    memset(&p, 0, sizeof(p));
    assert_int_equal(pol_store_allow_page(st, "a", 1, 1, allow_collect, &p, err, sizeof(err)), 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.ids[0], 2);
    memset(&p, 0, sizeof(p));
    assert_int_equal(pol_store_allow_page(st, "b", 0, 0, allow_collect, &p, err, sizeof(err)), 0);
    assert_int_equal(p.n, 2);
    assert_int_equal(pol_store_allow_page(st, "bad name", 0, 0, allow_collect, &p, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_allow_page(st, NULL, 0, 0, allow_collect, &p, err, sizeof(err)), POL_E_ARG);
    sleep(2);      /* entry 5 expires */
    memset(&p, 0, sizeof(p));
    assert_int_equal(pol_store_allow_lists(st, lists_collect, &p, err, sizeof(err)), 0);
    assert_string_equal(p.lists, "a:3:0;b:2:1;");
    pol_store_close(st);
}

struct crl_list {
    char names[256];
    size_t n;
    int has_ca;
};

static int crl_collect(void *arg, const struct pol_crl_row *row)
{
    struct crl_list *c = arg;
    size_t l = strlen(c->names);
    snprintf(c->names + l, sizeof(c->names) - l, "%lld=%s;", (long long)row->id, row->name ? row->name : "-");
    c->n++;
    c->has_ca += row->ca_der != NULL && row->issuer_hash != NULL;
    return 0;
}

static void test_named_crls(void **state)
{
    (void)state;
    struct pol_store *st = open_store("n.db");
    char err[512];
    int unchanged = -1;
    uint64_t g = 0, g2 = 0;

    assert_true(pol_crl_name_ok("partner-bank.v1"));
    assert_false(pol_crl_name_ok("123"));
    assert_false(pol_crl_name_ok(""));
    assert_false(pol_crl_name_ok("a/b"));
    assert_false(pol_crl_name_ok(NULL));

    make_crl("ca2", "01", ENTRY("2001", ""), "n1");
    make_crl("ca2", "02", ENTRY("2001", "") ENTRY("2002", ""), "n2");
    make_crl("ca", "01", ENTRY("0A", ""), "m1");
    struct pol_crl *n1 = parse_crl("n1", g_ca2_der, g_ca2_len), *n2 = parse_crl("n2", g_ca2_der, g_ca2_len);
    struct pol_crl *m1 = parse_crl("m1", g_ca_der, g_ca_len);

    /* the CA certificate must be the CRL's issuer, the name well formed */
    assert_int_equal(pol_store_crl_import_named(st, "partner", g_ca_der, g_ca_len, n1, &api_actor, NULL, NULL, err,
                                                sizeof(err)), POL_E_CRL_ISSUER);
    assert_int_equal(pol_store_crl_import_named(st, "partner", (const uint8_t *)"x", 1, n1, &api_actor, NULL, NULL, err,
                                                sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_crl_import_named(st, "42", g_ca2_der, g_ca2_len, n1, &api_actor, NULL, NULL, err,
                                                sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_crl_import_named(st, "partner", g_ca2_der, g_ca2_len, n1, &api_actor, &unchanged, &g,
                                                err, sizeof(err)), 0);
    assert_int_equal(unchanged, 0);
    /* the name belongs to that CA; that CA's CRL has that name */
    assert_int_equal(pol_store_crl_import_named(st, "partner", g_ca_der, g_ca_len, m1, &api_actor, NULL, NULL, err,
                                                sizeof(err)), POL_E_EXISTS);
    assert_non_null(strstr(err, "Partner CA"));
    assert_int_equal(pol_store_crl_import_named(st, "other", g_ca2_der, g_ca2_len, n2, &api_actor, NULL, NULL, err,
                                                sizeof(err)), POL_E_EXISTS);
    assert_non_null(strstr(err, "\"partner\""));
    /* the same CRL and name again: nothing changes */
    assert_int_equal(pol_store_crl_import_named(st, "partner", g_ca2_der, g_ca2_len, n1, &api_actor, &unchanged, &g2,
                                                err, sizeof(err)), 0);
    assert_int_equal(unchanged, 1);
    assert_int_equal(g2, g);
    /* an unnamed import (the CLI) keeps the name and the CA */
    assert_int_equal(pol_store_crl_import(st, n2, &test_actor, &unchanged, &g, err, sizeof(err)), 0);
    assert_int_equal(pol_store_crl_import(st, m1, &test_actor, &unchanged, &g, err, sizeof(err)), 0);
    struct crl_list c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(pol_store_crls_each(st, crl_collect, &c, err, sizeof(err)), 0);
    assert_string_equal(c.names, "1=partner;2=-;");
    assert_int_equal(c.has_ca, 1);
    /* removal: by name, by id; the revocations it listed go with it */
    assert_int_equal(pol_store_crl_remove(st, "nope", 0, &api_actor, NULL, err, sizeof(err)), POL_E_NOT_FOUND);
    assert_int_equal(pol_store_crl_remove(st, NULL, 99, &api_actor, NULL, err, sizeof(err)), POL_E_NOT_FOUND);
    assert_int_equal(pol_store_crl_remove(st, NULL, 0, &api_actor, NULL, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_crl_remove(st, "partner", 0, &api_actor, NULL, err, sizeof(err)), 0);
    assert_int_equal(pol_store_crl_remove(st, NULL, 2, &api_actor, NULL, err, sizeof(err)), 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(pol_store_crls_each(st, crl_collect, &c, err, sizeof(err)), 0);
    assert_int_equal(c.n, 0);
    struct rev_page p;
    memset(&p, 0, sizeof(p));
    assert_int_equal(pol_store_revocations_each(st, rev_collect, &p, err, sizeof(err)), 0);
    assert_int_equal(p.n, 0);
    /* the snapshot agrees: nothing revoked, no CRL */
    struct pol_snapshot *s = NULL;
    assert_int_equal(pol_snapshot_build(st, &s, err, sizeof(err)), 0);
    struct pol_snapshot_stats stats;
    pol_snapshot_get_stats(s, &stats);
    assert_int_equal(stats.revocations, 0);
    assert_int_equal(stats.crls, 0);
    pol_snapshot_free(s);
    /* a name freed by removal can be taken by another CA */
    assert_int_equal(pol_store_crl_import_named(st, "partner", g_ca_der, g_ca_len, m1, &api_actor, NULL, NULL, err,
                                                sizeof(err)), 0);
    uint64_t n = 0;
    int64_t bad = 0;
    assert_int_equal(pol_store_audit_verify(st, &n, &bad, err, sizeof(err)), 0);
    pol_crl_free(n1);
    pol_crl_free(n2);
    pol_crl_free(m1);
    pol_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_change_recorded),
        cmocka_unit_test(test_actor_checked),
        cmocka_unit_test(test_tampering_detected),
        cmocka_unit_test(test_removal_and_reorder_detected),
        cmocka_unit_test(test_damaged_log_still_takes_changes),
        cmocka_unit_test(test_v2_store_migrated),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_revocation_pages),
        cmocka_unit_test(test_allow_pages),
        cmocka_unit_test(test_named_crls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* test_pol_store.c - the SQLite policy store (policies/store*.c): schema migration from an empty
 * file and on re-open, refusal of newer or foreign files, a failed migration leaving the file as it
 * was, durability across close/re-open, another process's change noticed through the generation
 * counter, the revocation and allowlist rules, the change log, and store rows that cannot be read.
 * Real SQLite files in a temporary directory; the schema is inspected with SQLite directly.
 */
#include "test_pol_util.h"

#include "policies/store_sqlite_int.h"

#include <sqlite3.h>
#include <time.h>

static struct pol_cert *g_ca, *g_client, *g_client2;

static int setup(void **state)
{
    (void)state;
    make_tmpdir();
    make_pki();
    g_ca = load_cert("ca.pem");
    g_client = load_cert("client.pem");
    g_client2 = load_cert("client2.pem");
    return g_ca && g_client && g_client2 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pol_cert_free(g_ca);
    pol_cert_free(g_client);
    pol_cert_free(g_client2);
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

/* One integer from SQL run directly on the file (outside our code). */
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

static void sql_exec(const char *name, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(P(name), &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, msg);
    sqlite3_free(msg);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

static uint64_t generation(struct pol_store *st)
{
    uint64_t g = 0;
    assert_int_equal(pol_store_generation(st, &g), 0);
    return g;
}

static int count_rev(void *arg, const struct pol_revocation_row *row)
{
    (void)row;
    (*(int *)arg)++;
    return 0;
}

static int count_revocations(struct pol_store *st)
{
    int n = 0;
    char err[256];
    assert_int_equal(pol_store_revocations_each(st, count_rev, &n, err, sizeof(err)), 0);
    return n;
}

/* ---------------------------------------------------------------- schema */

static void test_migrate_empty_file_and_reopen(void **state)
{
    (void)state;
    int v = 0;
    assert_int_equal(sh("rm -f '%s'* && : > '%s'", P("m.db"), P("m.db")), 0);   /* an empty file */
    struct pol_store *st = open_store("m.db");
    assert_int_equal(pol_store_schema_version(st, &v), 0);
    assert_int_equal(v, POL_SCHEMA_VERSION);
    assert_int_equal(generation(st), 0);
    pol_store_close(st);
    assert_int_equal(sql_int("m.db", "SELECT version FROM schema_version"), POL_SCHEMA_VERSION);
    assert_int_equal(sql_int("m.db", "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(sql_int("m.db", "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                                     "('meta','issuers','revocations','crls','allowlist','changes')"), 6);
    /* WAL is a property of the file: a fresh connection finds it. */
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_open(P("m.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);
    /* Re-open: nothing to migrate, same version, data kept. */
    st = open_store("m.db");
    assert_int_equal(pol_store_schema_version(st, &v), 0);
    assert_int_equal(v, POL_SCHEMA_VERSION);
    /* The connection's page cache is 512 KiB, not SQLite's 2 MiB (a gateway's RSS crept up by it
     * for hours as the store grew: the soak). */
    assert_int_equal(sqlite3_prepare_v2(((struct sq *)st)->db, "PRAGMA cache_size", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), -512);
    sqlite3_finalize(q);
    pol_store_close(st);
    /* A store that does not exist yet is created (0640). */
    st = open_store("new.db");
    pol_store_close(st);
    char perm[16];
    sh_out(perm, sizeof(perm), "stat -c %%a '%s'", P("new.db"));
    assert_string_equal(perm, "640");
}

static void test_newer_or_foreign_file_refused(void **state)
{
    (void)state;
    struct pol_store *st = open_store("newer.db");
    pol_store_close(st);
    sql_exec("newer.db", "UPDATE schema_version SET version = 99");
    char err[512];
    st = NULL;
    assert_int_equal(pol_store_open_sqlite(P("newer.db"), &st, err, sizeof(err)), POL_E_SCHEMA);
    assert_null(st);
    assert_non_null(strstr(err, "newer"));
    /* Not a database at all. */
    assert_int_equal(sh("head -c 8192 /dev/urandom > '%s'", P("junk.db")), 0);
    int rc = pol_store_open_sqlite(P("junk.db"), &st, err, sizeof(err));
    assert_true(rc == POL_E_SCHEMA || rc == POL_E_STORE);
    assert_null(st);
    /* A directory, and no path. */
    assert_int_not_equal(pol_store_open_sqlite(g_dir, &st, err, sizeof(err)), 0);
    assert_int_equal(pol_store_open_sqlite("", &st, err, sizeof(err)), POL_E_ARG);
}

/* A migration that fails leaves the file at its old version, with nothing half-made. */
static void test_failed_migration_rolls_back(void **state)
{
    (void)state;
    char err[512];
    struct pol_store *st = NULL;
    assert_int_equal(sh("rm -f '%s'*", P("clash.db")), 0);
    sql_exec("clash.db", "CREATE TABLE allowlist(x INTEGER)");     /* migration 1 creates this table */
    assert_int_equal(pol_store_open_sqlite(P("clash.db"), &st, err, sizeof(err)), POL_E_STORE);
    assert_non_null(strstr(err, "migration to version 1"));
    assert_null(st);
    assert_int_equal(sql_int("clash.db", "SELECT count(*) FROM sqlite_master WHERE name IN ('meta','issuers')"), 0);
    /* even the version table is gone: the whole open ran in the one transaction */
    assert_int_equal(sql_int("clash.db", "SELECT count(*) FROM sqlite_master WHERE name = 'schema_version'"), 0);
    assert_int_equal(sql_int("clash.db", "SELECT count(*) FROM allowlist"), 0);
}

/* ---------------------------------------------------------------- durability */

static void test_durable_across_reopen(void **state)
{
    (void)state;
    struct pol_store *st = open_store("d.db");
    struct pol_revocation r;
    uint64_t g1 = 0, g2 = 0;
    int64_t id = 0;
    char err[512];
    pol_revocation_of_cert(g_client, &r);
    r.reason = POL_REASON_KEY_COMPROMISE;
    assert_int_equal(pol_store_revoke(st, &r, &test_actor, &g1, err, sizeof(err)), 0);
    assert_int_equal(g1, 1);
    struct pol_allow_entry e = { "partners", POL_MATCH_CN, "client2", 0 };
    assert_int_equal(pol_store_allow_add(st, &e, &test_actor, &id, &g2, err, sizeof(err)), 0);
    assert_int_equal(g2, 2);
    assert_int_equal(generation(st), 2);
    pol_store_close(st);

    st = open_store("d.db");
    assert_int_equal(generation(st), 2);
    assert_int_equal(count_revocations(st), 1);
    struct pol_snapshot *s = NULL;
    assert_int_equal(pol_snapshot_build(st, &s, err, sizeof(err)), 0);
    size_t slen;
    const uint8_t *serial = pol_cert_serial(g_client, &slen);
    assert_int_equal(pol_snapshot_is_revoked(s, pol_cert_issuer_hash(g_client), serial, slen, NULL), 1);
    struct pol_snapshot_stats stats;
    pol_snapshot_get_stats(s, &stats);
    assert_int_equal(stats.generation, 2);
    assert_int_equal(stats.revocations, 1);
    assert_int_equal(stats.allow_entries, 1);
    assert_int_equal(stats.lists, 1);
    pol_snapshot_free(s);
    pol_store_close(st);
    /* The change log has both, with who and why. */
    assert_int_equal(sql_int("d.db", "SELECT count(*) FROM changes WHERE actor = 'test:unit' AND "
                                     "comment = 'made by a unit test'"), 2);
    assert_int_equal(sql_int("d.db", "SELECT max(generation) FROM changes"), 2);
}

/* A CLI in another process writes; a gateway holding the store open notices by the counter. */
static void test_other_process_change_noticed(void **state)
{
    (void)state;
    int go[2], done[2];
    struct pol_store *st = NULL;
    char err[512];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(done), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child: no cmocka here, only an exit status. */
        char c;
        struct pol_store *cs = NULL;
        struct pol_revocation r;
        if (read(go[0], &c, 1) != 1 || pol_store_open_sqlite(P("x.db"), &cs, NULL, 0) != 0)
            _exit(10);
        pol_revocation_of_cert(g_client2, &r);
        int rc = pol_store_revoke(cs, &r, &test_actor, NULL, NULL, 0);
        pol_store_close(cs);
        _exit(rc == 0 && write(done[1], "x", 1) == 1 ? 0 : 11);
    }
    assert_int_equal(pol_store_open_sqlite(P("x.db"), &st, err, sizeof(err)), 0);
    uint64_t before = generation(st);
    assert_int_equal(generation(st), before);       /* cheap path: nothing changed */
    assert_int_equal(write(go[1], "g", 1), 1);
    char c;
    assert_int_equal(read(done[0], &c, 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(generation(st), before + 1);
    struct pol_snapshot *s = NULL;
    assert_int_equal(pol_snapshot_build(st, &s, err, sizeof(err)), 0);
    size_t slen;
    const uint8_t *serial = pol_cert_serial(g_client2, &slen);
    assert_int_equal(pol_snapshot_is_revoked(s, pol_cert_issuer_hash(g_client2), serial, slen, NULL), 1);
    assert_int_equal(pol_snapshot_generation(s), before + 1);
    pol_snapshot_free(s);
    pol_store_close(st);
    close(go[0]);
    close(go[1]);
    close(done[0]);
    close(done[1]);
}

/* ---------------------------------------------------------------- rules */

static void test_revoke_rules(void **state)
{
    (void)state;
    struct pol_store *st = open_store("r.db");
    struct pol_revocation r, bad;
    char err[512];
    uint64_t g = 0;

    pol_revocation_of_cert(g_client, &r);
    r.reason = POL_REASON_CERTIFICATE_HOLD;
    assert_int_equal(pol_store_revoke(st, &r, &test_actor, &g, err, sizeof(err)), 0);
    /* on hold again: already there */
    assert_int_equal(pol_store_revoke(st, &r, &test_actor, &g, err, sizeof(err)), POL_E_EXISTS);
    assert_non_null(strstr(err, "certificateHold"));
    /* lift the hold, then it can be revoked again */
    assert_int_equal(pol_store_lift(st, &r, &test_actor, &g, err, sizeof(err)), 0);
    assert_int_equal(count_revocations(st), 0);
    assert_int_equal(pol_store_lift(st, &r, &test_actor, &g, err, sizeof(err)), POL_E_NOT_FOUND);
    assert_int_equal(pol_store_revoke(st, &r, &test_actor, &g, err, sizeof(err)), 0);
    /* a hold may become final (RFC 5280 5.3.1), a final one cannot be lifted nor changed */
    r.reason = POL_REASON_KEY_COMPROMISE;
    assert_int_equal(pol_store_revoke(st, &r, &test_actor, &g, err, sizeof(err)), 0);
    assert_int_equal(pol_store_lift(st, &r, &test_actor, &g, err, sizeof(err)), POL_E_NOT_HOLD);
    assert_non_null(strstr(err, "keyCompromise"));
    r.reason = POL_REASON_CERTIFICATE_HOLD;
    assert_int_equal(pol_store_revoke(st, &r, &test_actor, &g, err, sizeof(err)), POL_E_EXISTS);
    assert_int_equal(count_revocations(st), 1);

    /* the same serial through the issuer's certificate is the same revocation */
    size_t slen;
    const uint8_t *serial = pol_cert_serial(g_client, &slen);
    struct pol_revocation byca;
    pol_revocation_of_issuer(g_ca, serial, slen, &byca);
    assert_int_equal(pol_store_revoke(st, &byca, &test_actor, &g, err, sizeof(err)), POL_E_EXISTS);

    /* refused input */
    struct pol_actor noone = { "", NULL }, ctrl = { "a\x01", NULL };
    assert_int_equal(pol_store_revoke(st, &r, &noone, &g, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_revoke(st, &r, &ctrl, &g, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_revoke(st, &r, NULL, &g, err, sizeof(err)), POL_E_ARG);
    bad = r;
    bad.reason = POL_REASON_REMOVE_FROM_CRL;
    assert_int_equal(pol_store_revoke(st, &bad, &test_actor, &g, err, sizeof(err)), POL_E_ARG);
    bad.reason = 7;
    assert_int_equal(pol_store_revoke(st, &bad, &test_actor, &g, err, sizeof(err)), POL_E_ARG);
    bad = r;
    bad.serial_len = 0;
    assert_int_equal(pol_store_revoke(st, &bad, &test_actor, &g, err, sizeof(err)), POL_E_ARG);
    bad.serial_len = POL_SERIAL_MAX + 1;
    assert_int_equal(pol_store_revoke(st, &bad, &test_actor, &g, err, sizeof(err)), POL_E_ARG);
    bad = r;
    bad.issuer_der = (const uint8_t *)"\x04\x01x";
    bad.issuer_der_len = 3;
    assert_int_equal(pol_store_revoke(st, &bad, &test_actor, &g, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_revoke(st, NULL, &test_actor, &g, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_revoke(NULL, &r, &test_actor, &g, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(count_revocations(st), 1);

    /* a batch skips what is revoked already and lands in one transaction */
    uint8_t serials[100][3];
    struct pol_revocation batch[101];
    for (int i = 0; i < 100; i++) {
        serials[i][0] = 0x10;
        serials[i][1] = (uint8_t)i;
        serials[i][2] = (uint8_t)(i % 7);
        pol_revocation_of_issuer(g_ca, serials[i], 3, &batch[i]);
        batch[i].reason = POL_REASON_SUPERSEDED;
    }
    batch[100] = byca;
    uint64_t before = generation(st);
    assert_int_equal(pol_store_revoke_batch(st, batch, 101, &test_actor, &g, err, sizeof(err)), 0);
    assert_int_equal(g, before + 1);
    assert_int_equal(count_revocations(st), 101);
    /* a bad entry refuses the whole batch */
    batch[50].serial_len = 0;
    assert_int_equal(pol_store_revoke_batch(st, batch, 101, &test_actor, &g, err, sizeof(err)), POL_E_ARG);
    assert_non_null(strstr(err, "#51"));
    pol_store_close(st);
}

static int collect_allow(void *arg, const struct pol_allow_row *row)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 4096 - n, "%s/%s/%s;", row->list, pol_match_name(row->match), row->value);
    return 0;
}

static void test_allow_rules(void **state)
{
    (void)state;
    struct pol_store *st = open_store("a.db");
    char err[512], seen[4096] = "";
    int64_t id1 = 0, id2 = 0;

    struct pol_allow_entry e1 = { "partners", POL_MATCH_SAN_DNS, "Client1.Example.COM", 0 };
    struct pol_allow_entry e2 = { "admins", POL_MATCH_CN, "alice", time(NULL) + 3600 };
    assert_int_equal(pol_store_allow_add(st, &e1, &test_actor, &id1, NULL, err, sizeof(err)), 0);
    assert_int_equal(pol_store_allow_add(st, &e2, &test_actor, &id2, NULL, err, sizeof(err)), 0);
    assert_true(id2 > id1);
    /* the same entry again, even spelled differently */
    struct pol_allow_entry e1b = { "partners", POL_MATCH_SAN_DNS, "client1.example.com", 0 };
    assert_int_equal(pol_store_allow_add(st, &e1b, &test_actor, NULL, NULL, err, sizeof(err)), POL_E_EXISTS);
    assert_int_equal(pol_store_allow_each(st, NULL, collect_allow, seen, err, sizeof(err)), 0);
    assert_string_equal(seen, "admins/cn/alice;partners/san-dns/client1.example.com;");
    seen[0] = '\0';
    assert_int_equal(pol_store_allow_each(st, "partners", collect_allow, seen, err, sizeof(err)), 0);
    assert_string_equal(seen, "partners/san-dns/client1.example.com;");
    /* refused input */
    struct pol_allow_entry bad = e1;
    bad.list = "no spaces";
    assert_int_equal(pol_store_allow_add(st, &bad, &test_actor, NULL, NULL, err, sizeof(err)), POL_E_ARG);
    bad = e1;
    bad.match = (enum pol_match)99;
    assert_int_equal(pol_store_allow_add(st, &bad, &test_actor, NULL, NULL, err, sizeof(err)), POL_E_ARG);
    bad = e1;
    bad.value = "";
    assert_int_equal(pol_store_allow_add(st, &bad, &test_actor, NULL, NULL, err, sizeof(err)), POL_E_ARG);
    bad.match = POL_MATCH_FINGERPRINT;
    bad.value = "not hex";
    assert_int_equal(pol_store_allow_add(st, &bad, &test_actor, NULL, NULL, err, sizeof(err)), POL_E_ARG);
    bad = e1;
    bad.expires_at = -5;
    assert_int_equal(pol_store_allow_add(st, &bad, &test_actor, NULL, NULL, err, sizeof(err)), POL_E_ARG);
    assert_int_equal(pol_store_allow_each(st, "bad list!", collect_allow, seen, err, sizeof(err)), POL_E_ARG);
    /* removal by value (normalized the same way) and by id */
    assert_int_equal(pol_store_allow_remove(st, 0, &e1b, &test_actor, NULL, err, sizeof(err)), 0);
    assert_int_equal(pol_store_allow_remove(st, 0, &e1b, &test_actor, NULL, err, sizeof(err)), POL_E_NOT_FOUND);
    assert_int_equal(pol_store_allow_remove(st, id2, NULL, &test_actor, NULL, err, sizeof(err)), 0);
    assert_int_equal(pol_store_allow_remove(st, id2, NULL, &test_actor, NULL, err, sizeof(err)), POL_E_NOT_FOUND);
    assert_int_equal(pol_store_allow_remove(st, 0, NULL, &test_actor, NULL, err, sizeof(err)), POL_E_ARG);
    seen[0] = '\0';
    assert_int_equal(pol_store_allow_each(st, NULL, collect_allow, seen, err, sizeof(err)), 0);
    assert_string_equal(seen, "");
    /* a failed change does not move the counter */
    uint64_t g = generation(st);
    assert_int_equal(pol_store_allow_remove(st, 12345, NULL, &test_actor, NULL, err, sizeof(err)), POL_E_NOT_FOUND);
    assert_int_equal(generation(st), g);
    pol_store_close(st);
}

/* Rows another version (or a hand edit) left behind: allowlist rows that cannot match are skipped
 * (that can only refuse), a revocation row that cannot be read fails the build (skipping it would
 * un-revoke). */
static void test_unreadable_rows(void **state)
{
    (void)state;
    struct pol_store *st = open_store("bad.db");
    struct pol_snapshot *s = NULL;
    struct pol_snapshot_stats stats;
    char err[512];
    struct pol_allow_entry e = { "partners", POL_MATCH_CN, "client1", 0 };
    assert_int_equal(pol_store_allow_add(st, &e, &test_actor, NULL, NULL, err, sizeof(err)), 0);
    pol_store_close(st);
    sql_exec("bad.db", "INSERT INTO allowlist(list, match, value, actor, created_at) VALUES "
                       "('partners', 'fingerprint', 'zz', 'x', 0), ('partners', 'telepathy', 'x', 'x', 0), "
                       "('bad list', 'cn', 'x', 'x', 0), ('partners', 'issuer-serial', 'ab:cd', 'x', 0)");
    st = open_store("bad.db");
    assert_int_equal(pol_snapshot_build(st, &s, err, sizeof(err)), 0);
    pol_snapshot_get_stats(s, &stats);
    assert_int_equal(stats.allow_entries, 1);
    assert_int_equal(stats.skipped_rows, 4);
    pol_snapshot_free(s);
    pol_store_close(st);
    sql_exec("bad.db", "INSERT INTO issuers(id, name_hash, name_der, name_text) VALUES (77, zeroblob(32), x'3000', '');"
                       "INSERT INTO revocations VALUES (77, zeroblob(40), 0, 1, 0, 0)");
    st = open_store("bad.db");
    assert_int_equal(pol_snapshot_build(st, &s, err, sizeof(err)), POL_E_SCHEMA);
    assert_null(s);
    assert_non_null(strstr(err, "revocation"));
    pol_store_close(st);
    sql_exec("bad.db", "DELETE FROM revocations; INSERT INTO revocations VALUES (78, x'01', 0, 1, 0, 0)");
    st = open_store("bad.db");
    assert_int_equal(pol_snapshot_build(st, &s, err, sizeof(err)), POL_E_SCHEMA);   /* unknown issuer */
    pol_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_empty_file_and_reopen),
        cmocka_unit_test(test_newer_or_foreign_file_refused),
        cmocka_unit_test(test_failed_migration_rolls_back),
        cmocka_unit_test(test_durable_across_reopen),
        cmocka_unit_test(test_other_process_change_noticed),
        cmocka_unit_test(test_revoke_rules),
        cmocka_unit_test(test_allow_rules),
        cmocka_unit_test(test_unreadable_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

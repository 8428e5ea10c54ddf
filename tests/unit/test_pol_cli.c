/* test_pol_cli.c - `hsmgate revoke`, `revocations`, `allow` and `crl` (gateway/cmd_policy.c),
 * driven in-process with stdout and stderr captured: exit codes 0/1/2, what is printed, JSON that
 * parses, and the main case end to end: a CLI in another process revokes on the store of a
 * "running gateway" (a store handle and a live snapshot here), which notices through the
 * generation counter, publishes, and refuses the client at its next decision.
 */
#include "test_pol_util.h"

#include <fcntl.h>
#include <jansson.h>
#include <time.h>

#include "gateway/cmd.h"

static char g_out[1 << 16], g_errs[1 << 14];
static uint8_t *g_ca_der;
static size_t g_ca_len;

static int setup(void **state)
{
    (void)state;
    make_tmpdir();
    make_pki();
    g_ca_der = load_der("ca.pem", "CERTIFICATE", &g_ca_len);
    return g_ca_der ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(g_ca_der);
    remove_tmpdir();
    return 0;
}

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Runs fn with the NULL-terminated arguments, stdout into g_out and stderr into g_errs. */
static int run(int (*fn)(int, char **), ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, fn);
    for (char *a; argc < 31 && (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    /* Own buffers: P()'s rotate, and the arguments may be P() results. */
    char outp[300], errp[300];
    snprintf(outp, sizeof(outp), "%s/out.txt", g_dir);
    snprintf(errp, sizeof(errp), "%s/err.txt", g_dir);
    int o = dup(1), e = dup(2);
    int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(o >= 0 && e >= 0 && fo >= 0 && fe >= 0);
    dup2(fo, 1);
    dup2(fe, 2);
    int rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(o, 1);
    dup2(e, 2);
    close(o);
    close(e);
    close(fo);
    close(fe);
    slurp(outp, g_out, sizeof(g_out));
    slurp(errp, g_errs, sizeof(g_errs));
    return rc;
}

#define STORE "--store", (char *)P("cli.db")

static void test_revoke_and_list(void **state)
{
    (void)state;
    assert_int_equal(run(gw_cmd_revoke, "revoke", STORE, "--cert", P("client.pem"), "--reason", "keyCompromise",
                         "--actor", "alice", "--comment", "laptop stolen", NULL), 0);
    assert_non_null(strstr(g_errs, "revoked serial 8F1234 of CN=Test Client CA,O=Test Bank (keyCompromise"));
    assert_int_equal(run(gw_cmd_revocations, "revocations", STORE, NULL), 0);
    assert_non_null(strstr(g_out, "CN=Test Client CA,O=Test Bank\t8F1234\tkeyCompromise\t"));
    assert_non_null(strstr(g_out, "\tlocal\talice\tlaptop stolen\n"));
    assert_int_equal(run(gw_cmd_revocations, "revocations", STORE, "--json", NULL), 0);
    json_error_t je;
    json_t *j = json_loads(g_out, 0, &je);
    assert_non_null(j);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "serial")), "8F1234");
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "reason")), "keyCompromise");
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "actor")), "alice");
    json_decref(j);
    /* again: refused, exit 1 */
    assert_int_equal(run(gw_cmd_revoke, "revoke", STORE, "--cert", P("client.pem"), NULL), 1);
    assert_non_null(strstr(g_errs, "already revoked"));
    /* a final revocation cannot be lifted */
    assert_int_equal(run(gw_cmd_revoke, "revoke", "--lift", STORE, "--cert", P("client.pem"), NULL), 1);
    assert_non_null(strstr(g_errs, "only certificateHold can be lifted"));
    /* a hold by issuer and serial, lifted, then nothing to lift */
    assert_int_equal(run(gw_cmd_revoke, "revoke", STORE, "--issuer-cert", P("ca.pem"), "--serial", "0a",
                         "--reason", "certificateHold", NULL), 0);
    assert_int_equal(run(gw_cmd_revoke, "revoke", "--lift", STORE, "--issuer-cert", P("ca.pem"), "--serial", "0A", NULL), 0);
    assert_non_null(strstr(g_errs, "lifted the hold on serial 0A"));
    assert_int_equal(run(gw_cmd_revoke, "revoke", "--lift", STORE, "--issuer-cert", P("ca.pem"), "--serial", "0A", NULL), 1);
    assert_non_null(strstr(g_errs, "not revoked"));
    /* the empty listing of another store is valid JSON too */
    assert_int_equal(run(gw_cmd_allow, "allow", "add", "--store", P("empty.db"), "--list", "x", "--match", "cn",
                         "--value", "y", NULL), 0);
    assert_int_equal(run(gw_cmd_revocations, "revocations", "--store", P("empty.db"), "--json", NULL), 0);
    assert_string_equal(g_out, "[]\n");
}

static void test_usage_errors(void **state)
{
    (void)state;
    struct {
        int want;
        const char *needle;
        int (*fn)(int, char **);
        char *argv[14];
    } cases[] = {
        { 2, "--store FILE is required", gw_cmd_revoke, { "revoke", "--cert", "x.pem" } },
        { 2, "either --cert", gw_cmd_revoke, { "revoke", STORE, "--cert", "c.pem", "--serial", "01" } },
        { 2, "either --cert", gw_cmd_revoke, { "revoke", STORE } },
        { 2, "go together", gw_cmd_revoke, { "revoke", STORE, "--serial", "01" } },
        { 2, "--serial: expected", gw_cmd_revoke, { "revoke", STORE, "--issuer-cert", "ca.pem", "--serial", "xyz" } },
        { 2, "unknown reason", gw_cmd_revoke, { "revoke", STORE, "--cert", (char *)P("client.pem"), "--reason", "bored" } },
        { 2, "unknown reason", gw_cmd_revoke, { "revoke", STORE, "--cert", (char *)P("client.pem"), "--reason", "removeFromCRL" } },
        { 2, "--time", gw_cmd_revoke, { "revoke", STORE, "--cert", (char *)P("client.pem"), "--time", "yesterday" } },
        { 2, "takes no --reason", gw_cmd_revoke, { "revoke", "--lift", STORE, "--cert", "c.pem", "--reason", "keyCompromise" } },
        { 2, "unknown option", gw_cmd_revoke, { "revoke", STORE, "--frobnicate" } },
        { 2, "given twice", gw_cmd_revoke, { "revoke", STORE, STORE } },
        { 2, "cannot open", gw_cmd_revoke, { "revoke", "-c", (char *)P("missing.yaml"), "--cert", "c.pem" } },
        { 2, "names no policy_store", gw_cmd_revoke, { "revoke", "-c", (char *)P("nostore.yaml"), "--cert", "c.pem" } },
        { 2, "either -c FILE", gw_cmd_revoke, { "revoke", "-c", (char *)P("store.yaml"), STORE, "--cert", "c.pem" } },
        { 2, "does not apply", gw_cmd_revocations, { "revocations", STORE, "--cert", "c.pem" } },
        { 1, "No such file", gw_cmd_revocations, { "revocations", "--store", (char *)P("missing.db") } },
        { 1, "cannot open", gw_cmd_revoke, { "revoke", STORE, "--cert", (char *)P("missing.pem") } },
        { 1, "not a CA", gw_cmd_revoke, { "revoke", STORE, "--issuer-cert", (char *)P("client.pem"), "--serial", "01" } },
        { 2, "unknown command", gw_cmd_allow, { "allow", "frob", STORE } },
        { 2, "--list and --match", gw_cmd_allow, { "allow", "add", STORE, "--value", "x" } },
        { 2, "unknown type", gw_cmd_allow, { "allow", "add", STORE, "--list", "l", "--match", "colour", "--value", "x" } },
        { 2, "give one of", gw_cmd_allow, { "allow", "add", STORE, "--list", "l", "--match", "cn" } },
        { 2, "in the past", gw_cmd_allow, { "allow", "add", STORE, "--list", "l", "--match", "cn", "--value", "x", "--expires", "-1d" } },
        { 2, "expected a SHA-256", gw_cmd_allow, { "allow", "add", STORE, "--list", "l", "--match", "spki", "--value", "abc" } },
        { 2, "bad list name", gw_cmd_allow, { "allow", "add", STORE, "--list", "a b", "--match", "cn", "--value", "x" } },
        { 2, "use --match issuer-serial", gw_cmd_allow, { "allow", "add", STORE, "--list", "l", "--match", "cn", "--issuer-cert", "ca.pem", "--serial", "1" } },
        { 2, "--id: expected", gw_cmd_allow, { "allow", "rm", STORE, "--id", "x1" } },
        { 2, "give --id N", gw_cmd_allow, { "allow", "rm", STORE } },
        { 1, "no such allowlist entry", gw_cmd_allow, { "allow", "rm", STORE, "--id", "999" } },
        { 2, "--ca CA.pem is required", gw_cmd_crl, { "crl", "import", STORE, "x.crl" } },
        { 2, "which file", gw_cmd_crl, { "crl", "import", STORE, "--ca", "ca.pem" } },
        { 2, "unknown command", gw_cmd_crl, { "crl", "export", STORE } },
        { 1, "refused", gw_cmd_crl, { "crl", "import", STORE, "--ca", (char *)P("ca.pem"), (char *)P("ca.pem") } },
    };
    static const char listener[] = "listeners:\n  - {name: a, bind: '127.0.0.1:1', certificate: c.pem, "
                                   "key: 'pkcs11:object=k', backends: ['127.0.0.1:2']}\n";
    FILE *f = fopen(P("nostore.yaml"), "w");
    assert_non_null(f);
    fputs(listener, f);
    fclose(f);
    f = fopen(P("store.yaml"), "w");
    assert_non_null(f);
    fprintf(f, "policy_store: cli-c.db\n%s", listener);
    fclose(f);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char **a = cases[i].argv;
        int rc = run(cases[i].fn, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13]);
        if (rc != cases[i].want || strstr(g_errs, cases[i].needle) == NULL)
            fail_msg("case %zu (%s %s): exit %d, want %d; stderr: %s", i, a[0], a[1] ? a[1] : "", rc, cases[i].want, g_errs);
    }
    assert_int_equal(run(gw_cmd_revoke, "revoke", "--help", NULL), 0);
    assert_non_null(strstr(g_out, "certificateHold"));
    assert_int_equal(run(gw_cmd_allow, "allow", "--help", NULL), 0);
    assert_int_equal(run(gw_cmd_crl, "crl", "--help", NULL), 0);
    assert_int_equal(run(gw_cmd_allow, "allow", NULL), 2);
    /* -c FILE: the store its policy_store names (relative to the file's folder) */
    assert_int_equal(run(gw_cmd_revoke, "revoke", "-c", P("store.yaml"), "--cert", P("client.pem"), NULL), 0);
    assert_int_equal(access(P("cli-c.db"), F_OK), 0);
    assert_int_equal(run(gw_cmd_revocations, "revocations", "-c", P("store.yaml"), NULL), 0);
    assert_non_null(strstr(g_out, "8F1234"));
}

static void test_allow(void **state)
{
    (void)state;
    assert_int_equal(run(gw_cmd_allow, "allow", "add", STORE, "--list", "partners", "--match", "san-dns", "--value",
                         "Client1.EXAMPLE.com", "--expires", "+30d", "--comment", "onboarding", NULL), 0);
    assert_non_null(strstr(g_errs, "san-dns client1.example.com"));
    long id1 = atol(g_out);
    assert_true(id1 > 0);
    assert_int_equal(run(gw_cmd_allow, "allow", "add", STORE, "--list", "partners", "--match", "fingerprint", "--cert",
                         P("client2.pem"), NULL), 0);
    assert_int_equal(run(gw_cmd_allow, "allow", "add", STORE, "--list", "partners", "--match", "issuer-serial",
                         "--issuer-cert", P("ca.pem"), "--serial", "8F:12:34", NULL), 0);
    assert_int_equal(run(gw_cmd_allow, "allow", "add", STORE, "--list", "partners", "--match", "san-uri", "--cert",
                         P("client2.pem"), NULL), 1);
    assert_non_null(strstr(g_errs, "has no san-uri"));
    assert_int_equal(run(gw_cmd_allow, "allow", "add", STORE, "--list", "partners", "--match", "san-dns", "--value",
                         "client1.example.com", NULL), 1);
    assert_non_null(strstr(g_errs, "exists already"));
    assert_int_equal(run(gw_cmd_allow, "allow", "ls", STORE, "--list", "partners", NULL), 0);
    assert_non_null(strstr(g_out, "\tpartners\tsan-dns\tclient1.example.com\t20"));
    assert_non_null(strstr(g_out, "\tonboarding\n"));
    assert_non_null(strstr(g_out, "\tissuer-serial\t"));
    assert_non_null(strstr(g_out, ":8f1234\tnever\t"));
    assert_int_equal(run(gw_cmd_allow, "allow", "ls", STORE, "--json", NULL), 0);
    json_error_t je;
    json_t *j = json_loads(g_out, 0, &je);
    assert_non_null(j);
    assert_true(json_array_size(j) >= 3);
    json_decref(j);
    char idbuf[32];
    snprintf(idbuf, sizeof(idbuf), "%ld", id1);
    assert_int_equal(run(gw_cmd_allow, "allow", "rm", STORE, "--id", idbuf, NULL), 0);
    assert_int_equal(run(gw_cmd_allow, "allow", "rm", STORE, "--list", "partners", "--match", "issuer-serial", "--value",
                         "d0:", NULL), 2);
    assert_int_equal(run(gw_cmd_allow, "allow", "ls", STORE, "--list", "partners", NULL), 0);
    assert_null(strstr(g_out, "san-dns"));
}

static void test_crl(void **state)
{
    (void)state;
    /* a CRL from the test CA by openssl ca */
    FILE *f = fopen(P("crl.cnf"), "w");
    assert_non_null(f);
    fprintf(f, "[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\ncrlnumber = %s/crlnumber\ncertificate = %s/ca.pem\n"
               "private_key = %s/ca.key\ndefault_md = sha256\ndefault_crl_days = 7\n", g_dir, g_dir, g_dir, g_dir);
    fclose(f);
    assert_int_equal(sh("cd '%s' && printf 'R\\t301231235959Z\\t250101000000Z,superseded\\t2002\\tunknown\\t/CN=x\\n' > index.txt"
                        " && echo 10 > crlnumber && openssl ca -gencrl -config crl.cnf -out a.crl 2>/dev/null"
                        " && echo 09 > crlnumber && openssl ca -gencrl -config crl.cnf -out old.crl 2>/dev/null"
                        " && openssl crl -in a.crl -outform DER -out a.der", g_dir), 0);
    assert_int_equal(run(gw_cmd_crl, "crl", "import", STORE, "--ca", P("ca.pem"), P("a.crl"), NULL), 0);
    assert_non_null(strstr(g_errs, "1 revocations from CN=Test Client CA,O=Test Bank, CRL Number 10"));
    assert_int_equal(run(gw_cmd_crl, "crl", "import", STORE, "--ca", P("ca.pem"), P("a.der"), NULL), 0);
    assert_non_null(strstr(g_errs, "already imported"));
    assert_int_equal(run(gw_cmd_crl, "crl", "import", STORE, "--ca", P("ca.pem"), P("old.crl"), NULL), 1);
    assert_non_null(strstr(g_errs, "lower than the stored"));
    assert_int_equal(run(gw_cmd_crl, "crl", "import", STORE, "--ca", P("ca2.pem"), P("a.crl"), NULL), 1);
    assert_non_null(strstr(g_errs, "not the CA's subject"));
    assert_int_equal(run(gw_cmd_crl, "crl", "ls", STORE, NULL), 0);
    assert_non_null(strstr(g_out, "\tCN=Test Client CA,O=Test Bank\t10\t"));
    assert_int_equal(run(gw_cmd_crl, "crl", "ls", STORE, "--json", NULL), 0);
    json_error_t je;
    json_t *j = json_loads(g_out, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "entries")), 1);
    json_decref(j);
    assert_int_equal(run(gw_cmd_revocations, "revocations", STORE, NULL), 0);
    assert_non_null(strstr(g_out, "\t2002\tsuperseded\t2025-01-01T00:00:00Z\tcrl:1\t"));
}

/* The case the feature exists for: a revocation by the CLI applies to the running gateway's next
 * decision, with no restart and no lock shared with the workers. */
static void test_cli_revocation_reaches_running_gateway(void **state)
{
    (void)state;
    struct pol_store *st = NULL;
    struct pol_live *live = NULL;
    struct pol_policy *pol = NULL;
    struct pol_policy_spec spec;
    struct pol_ca_spec ca = { g_ca_der, g_ca_len, 0 };
    char err[512];
    int published = 0;
    struct pol_cert *c = load_cert("client2.pem");
    assert_non_null(c);

    assert_int_equal(pol_store_open_sqlite(P("gw.db"), &st, err, sizeof(err)), 0);
    assert_int_equal(pol_live_new(1, NULL, &live), 0);
    assert_int_equal(pol_reader_register(live, 0), 0);
    pol_policy_spec_init(&spec);
    spec.cas = &ca;
    spec.ncas = 1;
    assert_int_equal(pol_policy_new(&spec, &pol, err, sizeof(err)), 0);
    assert_int_equal(pol_live_refresh(live, st, &published, err, sizeof(err)), 0);
    assert_int_equal(pol_decide(pol_snapshot_current(live, 0), pol, c, 1, time(NULL), NULL), POL_ADMIT);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = { "revoke", "--store", (char *)P("gw.db"), "--cert", (char *)P("client2.pem"), "--reason",
                         "privilegeWithdrawn", NULL };
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        /* The parent's memory is not the child's business (valgrind counts it at exit); its SQLite
         * connection is left alone: a connection must not be used across fork. */
        pol_cert_free(c);
        pol_policy_free(pol);
        pol_live_free(live);
        _exit(gw_cmd_revoke(7, argv));
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* the gateway's poll: cheap check, build, publish; the worker's next turn sees it */
    assert_int_equal(pol_live_refresh(live, st, &published, err, sizeof(err)), 0);
    assert_int_equal(published, 1);
    pol_quiescent(live, 0);
    struct pol_verdict v;
    assert_int_equal(pol_decide(pol_snapshot_current(live, 0), pol, c, 1, time(NULL), &v), POL_R_REVOKED);
    assert_int_equal(v.crl_reason, POL_REASON_PRIVILEGE_WITHDRAWN);
    assert_string_equal(pol_reason_name(v.reason), "revoked");
    pol_reader_unregister(live, 0);
    pol_live_free(live);
    pol_policy_free(pol);
    pol_store_close(st);
    pol_cert_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revoke_and_list),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_allow),
        cmocka_unit_test(test_crl),
        cmocka_unit_test(test_cli_revocation_reaches_running_gateway),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

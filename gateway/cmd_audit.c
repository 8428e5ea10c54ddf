/* cmd_audit.c - `hsmgate audit verify` and `hsmgate audit ls`: the policy store's audit trail from
 * the command line (policies/pol.h, pol_store_audit_*), on the store file of a running or a stopped
 * gateway.
 *
 *   verify   checks the hash chain of every record; exit 0 "audit trail intact: N records", or exit 1
 *            naming the first record that was changed, removed or reordered
 *   ls       lists records (text, or --json with their hashes), --after ID --limit N for a page
 *
 * verify also prints the last record's hash: kept somewhere the store's writers cannot reach (a
 * ticket, a remote log), it shows later that the trail was not rewritten as a whole, which a hash
 * chain alone cannot (policies/README.md, "Audit trail").
 *
 * Exit status: 0 done (verify: intact), 1 failed or broken (message on stderr), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/cmd.h"
#include "gateway/config.h"
#include "policies/pol.h"

enum { A_STORE = 1 << 0, A_CONFIG = 1 << 1, A_JSON = 1 << 2, A_AFTER = 1 << 3, A_LIMIT = 1 << 4 };

static const struct option audit_opts[] = {
    { "store", required_argument, NULL, 's' },
    { "config", required_argument, NULL, 'c' },
    { "json", no_argument, NULL, 'j' },
    { "after", required_argument, NULL, 'a' },
    { "limit", required_argument, NULL, 'n' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

struct aargs {
    const char *cmd;                    /* "audit verify", "audit ls" */
    unsigned seen;
    const char *store, *config, *after, *limit;
    char store_buf[4096];
};

static void aerr(const struct aargs *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void aerr(const struct aargs *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hsmgate %s: ", a->cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void usage_audit(FILE *f)
{
    fprintf(f, "usage: hsmgate audit verify --store FILE\n"
               "       hsmgate audit ls --store FILE [--json] [--after ID] [--limit N]\n"
               "  (-c CONFIG instead of --store FILE: that configuration's policy_store)\n"
               "  verify  checks the hash chain over every change made to the policy store: exit 0 when\n"
               "          intact, 1 naming the first record that was changed, removed or reordered\n"
               "  ls      lists the records from the oldest: who, when, what, before and after, request id,\n"
               "          source address, comment (--json adds the generation and the hashes);\n"
               "          --after ID starts after that record, --limit N lists at most N\n");
}

/* Options of one sub-command; 0, 1 for --help, -1 for a usage error (reported). */
static int aparse(struct aargs *a, int argc, char **argv, unsigned allowed)
{
    int c;
    optind = 0;         /* glibc: start afresh, whatever parsed argv before */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", audit_opts, NULL)) != -1) {
        unsigned bit = 0;
        switch (c) {
        case 's': bit = A_STORE; a->store = optarg; break;
        case 'c': bit = A_CONFIG; a->config = optarg; break;
        case 'j': bit = A_JSON; break;
        case 'a': bit = A_AFTER; a->after = optarg; break;
        case 'n': bit = A_LIMIT; a->limit = optarg; break;
        case 'h': return 1;
        case ':': aerr(a, "option %s needs a value", argv[optind - 1]); return -1;
        default: aerr(a, "unknown option %s", argv[optind - 1]); return -1;
        }
        if (!(bit & allowed)) {
            aerr(a, "option %s does not apply here", argv[optind - 1]);
            return -1;
        }
        if (a->seen & bit) {
            aerr(a, "option %s given twice", argv[optind - 1]);
            return -1;
        }
        a->seen |= bit;
    }
    if (optind != argc) {
        aerr(a, "unexpected argument \"%s\"", argv[optind]);
        return -1;
    }
    if (a->config != NULL && a->store != NULL) {
        aerr(a, "give either -c FILE (its policy_store) or --store FILE");
        return -1;
    }
    if (a->config != NULL) {
        char err[1024];
        struct gw_config *cfg = NULL;
        if (gw_config_load(a->config, &cfg, err, sizeof(err)) != 0) {
            aerr(a, "%s", err);
            return -1;
        }
        int ok = cfg->policy_store != NULL && strlen(cfg->policy_store) < sizeof(a->store_buf);
        if (ok)
            snprintf(a->store_buf, sizeof(a->store_buf), "%s", cfg->policy_store);
        gw_config_free(cfg);
        if (!ok) {
            aerr(a, "-c: %s names no policy_store; give --store FILE", a->config);
            return -1;
        }
        a->store = a->store_buf;
    }
    if (a->store == NULL) {
        aerr(a, "--store FILE is required");
        return -1;
    }
    return 0;
}

/* A non-negative decimal number (positive when positive is set), or -1. */
static long long number_of(const char *s, int positive)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || (positive && v == 0) || s[0] == '+' || s[0] == ' ')
        return -1;
    return v;
}

/* Reading commands never create a store that is not there. */
static int open_existing(const struct aargs *a, struct pol_store **st)
{
    char err[512];
    if (access(a->store, F_OK) != 0) {
        aerr(a, "%s: %s", a->store, strerror(errno));
        return -1;
    }
    if (pol_store_open_sqlite(a->store, st, err, sizeof(err)) != 0) {
        aerr(a, "%s", err);
        return -1;
    }
    return 0;
}

/* --- ls --- */

struct ls_ctx {
    int json;
    size_t n;
    int64_t last_id;
    char last_hash[2 * POL_HASH_LEN + 1];
};

/* A JSON string of a stored text: jansson takes UTF-8 only, and a text written by another tool may
 * not be; such bytes show as '?' rather than losing the record. */
static json_t *text_json(const char *s)
{
    if (s == NULL)
        return json_null();
    json_t *v = json_string(s);
    if (v != NULL)
        return v;
    char *copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

static json_t *hash_json(const uint8_t *h)
{
    char hex[2 * POL_HASH_LEN + 1];
    static const char digits[] = "0123456789abcdef";
    if (h == NULL)
        return json_null();
    for (size_t i = 0; i < POL_HASH_LEN; i++) {
        hex[2 * i] = digits[h[i] >> 4];
        hex[2 * i + 1] = digits[h[i] & 15];
    }
    hex[2 * POL_HASH_LEN] = '\0';
    return json_string(hex);
}

/* before/after are JSON texts the store wrote; shown as JSON (a text that does not parse, which only
 * a hand edit can make, is shown as a string so that nothing is hidden). */
static json_t *state_json(const char *text)
{
    if (text == NULL)
        return json_null();
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v != NULL ? v : text_json(text);
}

static int print_record(void *arg, const struct pol_audit_record *r)
{
    struct ls_ctx *lc = arg;
    char at[32];
    pol_time_format(r->at, at, sizeof(at));
    if (lc->json) {
        json_t *o = json_pack("{s:I, s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                              (json_int_t)r->id, "at", at, "generation", (json_int_t)r->generation, "actor",
                              text_json(r->actor), "action", text_json(r->action), "target", text_json(r->target),
                              "before", state_json(r->before), "after", state_json(r->after), "request_id",
                              text_json(r->request_id), "source", text_json(r->source), "comment",
                              text_json(r->comment), "prev_hash", hash_json(r->prev_hash), "hash", hash_json(r->hash));
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(o);
        if (s == NULL)
            return -1;
        printf("%s%s", lc->n ? ",\n" : "", s);
        free(s);
        s = NULL;
    } else {
        printf("%lld\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", (long long)r->id, at, r->actor, r->action, r->target,
               r->before ? r->before : "-", r->after ? r->after : "-", r->request_id ? r->request_id : "-",
               r->source ? r->source : "-", r->comment ? r->comment : "");
    }
    lc->n++;
    return ferror(stdout) ? -1 : 0;
}

static int audit_ls(struct aargs *a)
{
    struct pol_store *st = NULL;
    struct ls_ctx lc = { 0 };
    char err[512] = "";
    long long after = 0, limit = 0;
    int rc = 2;

    if (a->after != NULL && (after = number_of(a->after, 0)) < 0) {
        aerr(a, "--after: expected a record id (0 or more), got \"%s\"", a->after);
        goto out;
    }
    if (a->limit != NULL && (limit = number_of(a->limit, 1)) < 0) {
        aerr(a, "--limit: expected a positive number, got \"%s\"", a->limit);
        goto out;
    }
    rc = 1;
    if (open_existing(a, &st) != 0)
        goto out;
    lc.json = (a->seen & A_JSON) != 0;
    if (lc.json)
        printf("[");
    int prc = pol_store_audit_each(st, (int64_t)after, (size_t)limit, print_record, &lc, err, sizeof(err));
    if (lc.json)
        printf("%s]\n", lc.n ? "\n" : "");
    if (prc != 0) {
        aerr(a, "%s", err[0] ? err : "cannot write the listing");
        goto out;
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    pol_store_close(st);
    st = NULL;
    return rc;
}

/* --- verify --- */

static int keep_last(void *arg, const struct pol_audit_record *r)
{
    struct ls_ctx *lc = arg;
    static const char digits[] = "0123456789abcdef";
    lc->last_id = r->id;
    snprintf(lc->last_hash, sizeof(lc->last_hash), "missing");
    if (r->hash != NULL) {
        for (size_t i = 0; i < POL_HASH_LEN; i++) {
            lc->last_hash[2 * i] = digits[r->hash[i] >> 4];
            lc->last_hash[2 * i + 1] = digits[r->hash[i] & 15];
        }
        lc->last_hash[2 * POL_HASH_LEN] = '\0';
    }
    return 0;
}

static int audit_verify(struct aargs *a)
{
    struct pol_store *st = NULL;
    struct ls_ctx lc = { 0 };
    char err[1024] = "";
    uint64_t n = 0;
    int rc = 1;

    if (open_existing(a, &st) != 0)
        goto out;
    int prc = pol_store_audit_verify(st, &n, NULL, err, sizeof(err));
    if (prc == POL_E_AUDIT) {
        aerr(a, "audit trail broken: %s", err);      /* err names the record: "audit record 6: ..." */
        goto out;
    }
    if (prc != 0) {
        aerr(a, "%s", err[0] ? err : pol_strerror(prc));
        goto out;
    }
    printf("audit trail intact: %llu records\n", (unsigned long long)n);
    /* The last record's hash, to be kept apart from the store (records are ids 1..n). */
    if (n > 0 && pol_store_audit_each(st, (int64_t)n - 1, 1, keep_last, &lc, err, sizeof(err)) == 0 &&
        lc.last_id != 0)
        printf("last record: %lld, hash %s\n", (long long)lc.last_id, lc.last_hash);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    pol_store_close(st);
    st = NULL;
    return rc;
}

int gw_cmd_audit(int argc, char **argv)
{
    struct aargs a;

    memset(&a, 0, sizeof(a));
    a.cmd = "audit";
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_audit(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int ls = strcmp(argv[1], "ls") == 0;
    if (!ls && strcmp(argv[1], "verify") != 0) {
        fprintf(stderr, "hsmgate audit: unknown command \"%s\" (verify or ls)\n", argv[1]);
        return 2;
    }
    a.cmd = ls ? "audit ls" : "audit verify";
    int p = aparse(&a, argc - 1, argv + 1, ls ? A_STORE | A_CONFIG | A_JSON | A_AFTER | A_LIMIT : A_STORE | A_CONFIG);
    if (p != 0) {
        usage_audit(p > 0 ? stdout : stderr);
        return p > 0 ? 0 : 2;
    }
    return ls ? audit_ls(&a) : audit_verify(&a);
}

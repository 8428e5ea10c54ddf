/* cmd_policy.c - `hsmgate revoke`, `revocations`, `allow` and `crl`: the policy store from the
 * command line, on the store file of a running or a stopped gateway (policies/pol.h). A running
 * gateway notices each change through the store's generation counter and applies it to its next
 * handshakes; a change is on disk before the command says it is done.
 *
 *   revoke       revoke a client certificate (by issuer and serial, or given the certificate);
 *                --lift lifts a certificateHold
 *   revocations  list revocations (text or --json)
 *   allow        add / rm / ls allowlist entries
 *   crl          import / ls CRLs of other CAs
 *
 * Exit status: 0 done, 1 failed (message on stderr), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway/cmd.h"
#include "gateway/config.h"
#include "policies/pol.h"

#define CRL_FILE_MAX (512u << 20)     /* a CRL of a few million entries */
#define CA_FILE_MAX (1u << 20)

enum {
    O_STORE = 1 << 0, O_CONFIG = 1 << 1, O_ISSUER_CERT = 1 << 2, O_SERIAL = 1 << 3, O_CERT = 1 << 4,
    O_REASON = 1 << 5, O_ACTOR = 1 << 6, O_COMMENT = 1 << 7, O_LIFT = 1 << 8, O_JSON = 1 << 9, O_LIST = 1 << 10,
    O_MATCH = 1 << 11, O_VALUE = 1 << 12, O_EXPIRES = 1 << 13, O_ID = 1 << 14, O_CA = 1 << 15, O_TIME = 1 << 16,
};

static const struct option long_opts[] = {
    { "store", required_argument, NULL, 's' },
    { "config", required_argument, NULL, 'c' },
    { "issuer-cert", required_argument, NULL, 'I' },
    { "serial", required_argument, NULL, 'n' },
    { "cert", required_argument, NULL, 'C' },
    { "reason", required_argument, NULL, 'r' },
    { "actor", required_argument, NULL, 'a' },
    { "comment", required_argument, NULL, 'm' },
    { "lift", no_argument, NULL, 'L' },
    { "json", no_argument, NULL, 'j' },
    { "list", required_argument, NULL, 'l' },
    { "match", required_argument, NULL, 'M' },
    { "value", required_argument, NULL, 'v' },
    { "expires", required_argument, NULL, 'e' },
    { "id", required_argument, NULL, 'i' },
    { "ca", required_argument, NULL, 'A' },
    { "time", required_argument, NULL, 't' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

struct pargs {
    const char *cmd;            /* "revoke", "allow add", ... for messages */
    unsigned seen;
    const char *store, *config, *issuer_cert, *serial, *cert, *reason, *actor, *comment, *list, *match, *value;
    const char *expires, *id, *ca, *time;
    const char *file;           /* crl import: the positional CRL file */
};

static void perr(const struct pargs *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void perr(const struct pargs *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hsmgate %s: ", a->cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Parses options; allowed is the set this sub-command takes, positional says whether it takes one
 * file argument. Returns 0, 1 for --help, -1 for a usage error (already reported). */
static int parse(struct pargs *a, int argc, char **argv, unsigned allowed, int positional)
{
    int c;
    optind = 0;         /* glibc: start afresh, whatever parsed argv before */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", long_opts, NULL)) != -1) {
        unsigned bit = 0;
        switch (c) {
        case 's': bit = O_STORE; a->store = optarg; break;
        case 'c': bit = O_CONFIG; a->config = optarg; break;
        case 'I': bit = O_ISSUER_CERT; a->issuer_cert = optarg; break;
        case 'n': bit = O_SERIAL; a->serial = optarg; break;
        case 'C': bit = O_CERT; a->cert = optarg; break;
        case 'r': bit = O_REASON; a->reason = optarg; break;
        case 'a': bit = O_ACTOR; a->actor = optarg; break;
        case 'm': bit = O_COMMENT; a->comment = optarg; break;
        case 'L': bit = O_LIFT; break;
        case 'j': bit = O_JSON; break;
        case 'l': bit = O_LIST; a->list = optarg; break;
        case 'M': bit = O_MATCH; a->match = optarg; break;
        case 'v': bit = O_VALUE; a->value = optarg; break;
        case 'e': bit = O_EXPIRES; a->expires = optarg; break;
        case 'i': bit = O_ID; a->id = optarg; break;
        case 'A': bit = O_CA; a->ca = optarg; break;
        case 't': bit = O_TIME; a->time = optarg; break;
        case 'h': return 1;
        case ':': perr(a, "option %s needs a value", argv[optind - 1]); return -1;
        default: perr(a, "unknown option %s", argv[optind - 1]); return -1;
        }
        if (!(bit & allowed)) {
            perr(a, "option %s does not apply here", argv[optind - 1]);
            return -1;
        }
        if (a->seen & bit) {
            perr(a, "option %s given twice", argv[optind - 1]);
            return -1;
        }
        a->seen |= bit;
    }
    if (positional && optind + 1 == argc) {
        a->file = argv[optind];
    } else if (optind != argc) {
        perr(a, "unexpected argument \"%s\"", argv[optind]);
        return -1;
    } else if (positional) {
        perr(a, "which file?");
        return -1;
    }
    if (a->config != NULL && a->store != NULL) {
        perr(a, "give either -c FILE (its policy_store) or --store FILE");
        return -1;
    }
    if (a->config != NULL) {
        /* The store the gateway of that configuration uses. */
        static char store[4096];
        char err[1024];
        struct gw_config *cfg = NULL;
        if (gw_config_load(a->config, &cfg, err, sizeof(err)) != 0) {
            perr(a, "%s", err);
            return -1;
        }
        int ok = cfg->policy_store != NULL && strlen(cfg->policy_store) < sizeof(store);
        if (ok)
            snprintf(store, sizeof(store), "%s", cfg->policy_store);
        gw_config_free(cfg);
        if (!ok) {
            perr(a, "-c: %s names no policy_store; give --store FILE", a->config);
            return -1;
        }
        a->store = store;
    }
    if (a->store == NULL) {
        perr(a, "--store FILE is required");
        return -1;
    }
    return 0;
}

/* "cli:<login>" unless --actor says otherwise: the change log records who acted. */
static const char *actor_of(const struct pargs *a, char *buf, size_t cap)
{
    if (a->actor != NULL)
        return a->actor;
    const char *name = getenv("SUDO_USER");
    struct passwd *pw = NULL;
    if (name == NULL || *name == '\0') {
        pw = getpwuid(getuid());
        name = pw ? pw->pw_name : NULL;
    }
    snprintf(buf, cap, "cli:%s", name ? name : "unknown");
    return buf;
}

/* Read commands on a store that does not exist would create an empty one: say so instead. */
static int open_store(const struct pargs *a, int must_exist, struct pol_store **st)
{
    char err[512];
    if (must_exist && access(a->store, F_OK) != 0) {
        perr(a, "%s: %s", a->store, strerror(errno));
        return -1;
    }
    if (pol_store_open_sqlite(a->store, st, err, sizeof(err)) != 0) {
        perr(a, "%s", err);
        return -1;
    }
    return 0;
}

/* The revocation target from --cert, or --issuer-cert and --serial. Certificates are loaded into
 * *c1 (the caller frees it); serial is the caller's buffer. */
static int target_of(const struct pargs *a, struct pol_cert **c1, uint8_t serial[POL_SERIAL_MAX],
                     struct pol_revocation *r)
{
    char err[512];
    size_t slen = 0;
    if ((a->cert != NULL) == (a->issuer_cert != NULL || a->serial != NULL)) {
        perr(a, "give either --cert CLIENT.pem, or --issuer-cert CA.pem and --serial HEX");
        return 2;
    }
    if (a->cert != NULL) {
        if (pol_cert_load(a->cert, c1, err, sizeof(err)) != 0) {
            perr(a, "%s", err);
            return 1;
        }
        pol_revocation_of_cert(*c1, r);
        return 0;
    }
    if (a->issuer_cert == NULL || a->serial == NULL) {
        perr(a, "--issuer-cert and --serial go together");
        return 2;
    }
    if (pol_serial_parse(a->serial, serial, &slen) != 0) {
        perr(a, "--serial: expected a positive hex number of at most %d octets, got \"%s\"", POL_SERIAL_MAX, a->serial);
        return 2;
    }
    if (pol_cert_load(a->issuer_cert, c1, err, sizeof(err)) != 0) {
        perr(a, "%s", err);
        return 1;
    }
    if (!pol_cert_is_ca(*c1)) {
        perr(a, "%s is not a CA certificate", a->issuer_cert);
        return 1;
    }
    pol_revocation_of_issuer(*c1, serial, slen, r);
    return 0;
}

static void usage_revoke(FILE *f)
{
    fprintf(f, "usage: hsmgate revoke --store FILE (--issuer-cert CA.pem --serial HEX | --cert CLIENT.pem)\n"
               "                      [--reason REASON] [--time TIME] [--actor NAME] [--comment TEXT]\n"
               "       hsmgate revoke --lift --store FILE (--issuer-cert CA.pem --serial HEX | --cert CLIENT.pem)\n"
               "                      [--actor NAME] [--comment TEXT]\n"
               "  Revokes a client certificate at once (the running gateway refuses it from its next handshake on).\n"
               "  --reason   RFC 5280 CRLReason: unspecified (default), keyCompromise, cACompromise,\n"
               "             affiliationChanged, superseded, cessationOfOperation, certificateHold,\n"
               "             privilegeWithdrawn, aACompromise\n"
               "  --time     when it was revoked: 2026-01-31T12:00:00Z or -2h (default now)\n"
               "  --lift     lifts a certificateHold (only a hold can be lifted)\n"
               "  --actor    who does this, for the change log (default cli:<login>)\n"
               "  -c CONFIG  instead of --store: the policy_store of that gateway configuration\n");
}

int gw_cmd_revoke(int argc, char **argv)
{
    struct pargs a = { .cmd = "revoke" };
    struct pol_store *st = NULL;
    struct pol_cert *c1 = NULL;
    struct pol_revocation r;
    uint8_t serial[POL_SERIAL_MAX];
    char err[1024], abuf[300], sx[2 * POL_SERIAL_MAX + 1];
    uint64_t gen = 0;
    int rc = 2;

    int p = parse(&a, argc, argv, O_STORE | O_CONFIG | O_ISSUER_CERT | O_SERIAL | O_CERT | O_REASON | O_ACTOR |
                  O_COMMENT | O_LIFT | O_TIME, 0);
    if (p != 0) {
        usage_revoke(p > 0 ? stdout : stderr);
        return p > 0 ? 0 : 2;
    }
    if ((a.seen & O_LIFT) && (a.seen & (O_REASON | O_TIME))) {
        perr(&a, "--lift takes no --reason or --time");
        goto out;
    }
    if ((rc = target_of(&a, &c1, serial, &r)) != 0)
        goto out;
    rc = 2;
    if (a.reason != NULL && pol_reason_code_parse(a.reason, &r.reason) != 0) {
        perr(&a, "--reason: unknown reason \"%s\" (see --help)", a.reason);
        goto out;
    }
    if (a.time != NULL && pol_time_parse(a.time, time(NULL), &r.revoked_at) != 0) {
        perr(&a, "--time: expected 2026-01-31T12:00:00Z or [+-]N(d|h|m|s), got \"%s\"", a.time);
        goto out;
    }
    rc = 1;
    if (open_store(&a, 0, &st) != 0)
        goto out;
    struct pol_actor who = { actor_of(&a, abuf, sizeof(abuf)), a.comment };
    int prc = (a.seen & O_LIFT) ? pol_store_lift(st, &r, &who, &gen, err, sizeof(err))
                                : pol_store_revoke(st, &r, &who, &gen, err, sizeof(err));
    if (prc != 0) {
        perr(&a, "%s", err);
        rc = prc == POL_E_ARG ? 2 : 1;
        goto out;
    }
    pol_serial_format(r.serial, r.serial_len, sx, sizeof(sx));
    if (a.seen & O_LIFT)
        fprintf(stderr, "hsmgate revoke: lifted the hold on serial %s of %s (store generation %llu)\n", sx,
                r.issuer_text, (unsigned long long)gen);
    else
        fprintf(stderr, "hsmgate revoke: revoked serial %s of %s (%s; store generation %llu)\n", sx, r.issuer_text,
                pol_reason_code_name(r.reason), (unsigned long long)gen);
    rc = 0;
out:
    pol_cert_free(c1);
    c1 = NULL;
    pol_store_close(st);
    st = NULL;
    return rc;
}

/* --- listings --- */

struct list_ctx {
    int json;
    size_t n;
};

static void json_row(struct list_ctx *lc, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    printf("%s%s", lc->n++ ? ",\n" : "", s ? s : "null");
    free(s);
    s = NULL;
    json_decref(o);
}

static int print_revocation(void *arg, const struct pol_revocation_row *row)
{
    struct list_ctx *lc = arg;
    char serial[2 * POL_SERIAL_MAX + 1], at[32], src[32];
    pol_serial_format(row->serial, row->serial_len, serial, sizeof(serial));
    pol_time_format(row->revoked_at, at, sizeof(at));
    if (row->crl_id == 0)
        snprintf(src, sizeof(src), "local");
    else
        snprintf(src, sizeof(src), "crl:%lld", (long long)row->crl_id);
    if (lc->json) {
        json_row(lc, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?}", "issuer", row->issuer_text, "serial", serial,
                               "reason", pol_reason_code_name(row->reason), "revoked_at", at, "source", src, "actor",
                               row->actor, "comment", row->comment));
    } else {
        printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row->issuer_text, serial, pol_reason_code_name(row->reason), at, src,
               row->actor, row->comment ? row->comment : "");
        lc->n++;
    }
    return ferror(stdout) ? -1 : 0;
}

int gw_cmd_revocations(int argc, char **argv)
{
    struct pargs a = { .cmd = "revocations" };
    struct pol_store *st = NULL;
    struct list_ctx lc = { 0, 0 };
    char err[512] = "";
    int rc = 1;

    int p = parse(&a, argc, argv, O_STORE | O_CONFIG | O_JSON, 0);
    if (p != 0) {
        fprintf(p > 0 ? stdout : stderr,
                "usage: hsmgate revocations --store FILE [--json]\n"
                "  Lists revocations: issuer, serial, reason, time, source (local or crl:ID), actor, comment.\n");
        return p > 0 ? 0 : 2;
    }
    lc.json = (a.seen & O_JSON) != 0;
    if (open_store(&a, 1, &st) != 0)
        goto out;
    if (lc.json)
        printf("[");
    int prc = pol_store_revocations_each(st, print_revocation, &lc, err, sizeof(err));
    if (lc.json)
        printf("%s]\n", lc.n ? "\n" : "");
    if (prc != 0) {
        perr(&a, "%s", err[0] ? err : "cannot write the listing");
        goto out;
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    pol_store_close(st);
    st = NULL;
    return rc;
}

/* --- allow --- */

static int print_allow(void *arg, const struct pol_allow_row *row)
{
    struct list_ctx *lc = arg;
    char exp[32] = "never", at[32];
    if (row->expires_at != 0)
        pol_time_format(row->expires_at, exp, sizeof(exp));
    pol_time_format(row->created_at, at, sizeof(at));
    if (lc->json) {
        json_row(lc, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s?}", "id", (json_int_t)row->id, "list", row->list,
                               "match", pol_match_name(row->match), "value", row->value, "expires", exp, "created", at,
                               "actor", row->actor, "comment", row->comment));
    } else {
        printf("%lld\t%s\t%s\t%s\t%s\t%s\t%s\n", (long long)row->id, row->list, pol_match_name(row->match), row->value,
               exp, row->actor, row->comment ? row->comment : "");
        lc->n++;
    }
    return ferror(stdout) ? -1 : 0;
}

static void usage_allow(FILE *f)
{
    fprintf(f, "usage: hsmgate allow add --store FILE --list NAME --match TYPE --value V [--expires TIME]\n"
               "                         [--comment TEXT] [--actor NAME]\n"
               "       hsmgate allow add --store FILE --list NAME --match TYPE --cert CLIENT.pem [...]\n"
               "       hsmgate allow add --store FILE --list NAME --match issuer-serial --issuer-cert CA.pem\n"
               "                         --serial HEX [...]\n"
               "       hsmgate allow rm --store FILE (--id N | --list NAME --match TYPE --value V) [--actor NAME]\n"
               "       hsmgate allow ls --store FILE [--list NAME] [--json]\n"
               "  (-c CONFIG instead of --store FILE: that configuration's policy_store)\n"
               "  TYPE: fingerprint (SHA-256 of the certificate, hex), spki (SHA-256 of its public key, hex),\n"
               "        subject (exact RFC 4514 DN, as in the access log), cn, san-dns, san-uri, san-email,\n"
               "        issuer-serial; with --cert the value is taken from the certificate.\n"
               "  --expires  2026-01-31T12:00:00Z or +30d; the entry stops matching then (default never)\n");
}

static int allow_add(struct pargs *a, struct pol_store *st, const char *actor)
{
    struct pol_cert *c = NULL;
    struct pol_allow_entry e;
    enum pol_match m;
    uint8_t serial[POL_SERIAL_MAX];
    size_t slen = 0;
    char value[POL_VALUE_MAX], err[POL_VALUE_MAX + 256];
    int64_t id = 0;
    uint64_t gen = 0;
    time_t expires = 0;
    int rc = 2, sources = (a->value != NULL) + (a->cert != NULL) + (a->issuer_cert != NULL);

    if (a->list == NULL || a->match == NULL) {
        perr(a, "--list and --match are required");
        goto out;
    }
    if (pol_match_parse(a->match, &m) != 0) {
        perr(a, "--match: unknown type \"%s\" (see --help)", a->match);
        goto out;
    }
    if (sources != 1 || ((a->issuer_cert != NULL) != (a->serial != NULL))) {
        perr(a, "give one of --value V, --cert CLIENT.pem, or --issuer-cert CA.pem with --serial HEX");
        goto out;
    }
    if (a->issuer_cert != NULL && m != POL_MATCH_ISSUER_SERIAL) {
        perr(a, "--issuer-cert/--serial make an issuer-serial entry; use --match issuer-serial");
        goto out;
    }
    if (a->expires != NULL && pol_time_parse(a->expires, time(NULL), &expires) != 0) {
        perr(a, "--expires: expected 2026-01-31T12:00:00Z or +N(d|h|m|s), got \"%s\"", a->expires);
        goto out;
    }
    if (a->expires != NULL && expires <= time(NULL)) {
        perr(a, "--expires is in the past");
        goto out;
    }
    if (a->serial != NULL && pol_serial_parse(a->serial, serial, &slen) != 0) {
        perr(a, "--serial: expected a positive hex number, got \"%s\"", a->serial);
        goto out;
    }
    rc = 1;
    if (a->cert != NULL || a->issuer_cert != NULL) {
        const char *path = a->cert ? a->cert : a->issuer_cert;
        if (pol_cert_load(path, &c, err, sizeof(err)) != 0) {
            perr(a, "%s", err);
            goto out;
        }
        if (a->cert != NULL) {
            int vrc = pol_allow_value_of_cert(c, m, value, sizeof(value));
            if (vrc != 0) {
                perr(a, "%s has no %s to match", a->cert, pol_match_name(m));
                goto out;
            }
        } else {
            pol_issuer_serial_value(c, serial, slen, value, sizeof(value));
        }
    } else {
        snprintf(value, sizeof(value), "%s", a->value);
    }
    /* Canonical now, so that what is printed is what is stored. */
    char canon[POL_VALUE_MAX];
    if (pol_allow_value_normalize(m, value, canon, sizeof(canon), err, sizeof(err)) != 0) {
        perr(a, "%s", err);
        rc = 2;
        goto out;
    }
    e.list = a->list;
    e.match = m;
    e.value = canon;
    e.expires_at = expires;
    struct pol_actor who = { actor, a->comment };
    int prc = pol_store_allow_add(st, &e, &who, &id, &gen, err, sizeof(err));
    if (prc != 0) {
        perr(a, "%s", err);
        rc = prc == POL_E_ARG ? 2 : 1;
        goto out;
    }
    fprintf(stderr, "hsmgate allow add: entry %lld in list %s: %s %s (store generation %llu)\n", (long long)id, a->list,
            pol_match_name(m), canon, (unsigned long long)gen);
    printf("%lld\n", (long long)id);
    rc = 0;
out:
    pol_cert_free(c);
    c = NULL;
    return rc;
}

static int allow_rm(struct pargs *a, struct pol_store *st, const char *actor)
{
    struct pol_allow_entry e;
    char err[POL_VALUE_MAX + 256], *end = NULL;
    long long id = 0;
    uint64_t gen = 0;

    memset(&e, 0, sizeof(e));
    if (a->id != NULL) {
        if (a->seen & (O_LIST | O_MATCH | O_VALUE)) {
            perr(a, "give --id, or --list, --match and --value, not both");
            return 2;
        }
        errno = 0;
        id = strtoll(a->id, &end, 10);
        if (errno != 0 || end == a->id || *end != '\0' || id <= 0) {
            perr(a, "--id: expected a positive entry id, got \"%s\"", a->id);
            return 2;
        }
    } else {
        if (a->list == NULL || a->match == NULL || a->value == NULL || pol_match_parse(a->match, &e.match) != 0) {
            perr(a, "give --id N, or --list NAME --match TYPE --value V");
            return 2;
        }
        e.list = a->list;
        e.value = a->value;
    }
    struct pol_actor who = { actor, a->comment };
    int prc = pol_store_allow_remove(st, id, id ? NULL : &e, &who, &gen, err, sizeof(err));
    if (prc != 0) {
        perr(a, "%s", err);
        return prc == POL_E_ARG ? 2 : 1;
    }
    fprintf(stderr, "hsmgate allow rm: removed (store generation %llu)\n", (unsigned long long)gen);
    return 0;
}

int gw_cmd_allow(int argc, char **argv)
{
    struct pargs a = { .cmd = "allow" };
    struct pol_store *st = NULL;
    struct list_ctx lc = { 0, 0 };
    char err[512] = "", abuf[300];
    unsigned allowed;
    int rc = 2;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_allow(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "add") == 0) {
        a.cmd = "allow add";
        allowed = O_STORE | O_CONFIG | O_LIST | O_MATCH | O_VALUE | O_CERT | O_ISSUER_CERT | O_SERIAL | O_EXPIRES |
                  O_COMMENT | O_ACTOR;
    } else if (strcmp(sub, "rm") == 0) {
        a.cmd = "allow rm";
        allowed = O_STORE | O_CONFIG | O_ID | O_LIST | O_MATCH | O_VALUE | O_COMMENT | O_ACTOR;
    } else if (strcmp(sub, "ls") == 0) {
        a.cmd = "allow ls";
        allowed = O_STORE | O_CONFIG | O_LIST | O_JSON;
    } else {
        fprintf(stderr, "hsmgate allow: unknown command \"%s\" (add, rm or ls)\n", sub);
        return 2;
    }
    int p = parse(&a, argc - 1, argv + 1, allowed, 0);
    if (p != 0) {
        usage_allow(p > 0 ? stdout : stderr);
        return p > 0 ? 0 : 2;
    }
    if (a.list != NULL && strcmp(sub, "ls") == 0 && a.list[0] == '\0') {
        perr(&a, "--list: empty name");
        return 2;
    }
    rc = 1;
    if (open_store(&a, strcmp(sub, "ls") == 0, &st) != 0)
        goto out;
    if (strcmp(sub, "add") == 0) {
        rc = allow_add(&a, st, actor_of(&a, abuf, sizeof(abuf)));
    } else if (strcmp(sub, "rm") == 0) {
        rc = allow_rm(&a, st, actor_of(&a, abuf, sizeof(abuf)));
    } else {
        lc.json = (a.seen & O_JSON) != 0;
        if (lc.json)
            printf("[");
        int prc = pol_store_allow_each(st, a.list, print_allow, &lc, err, sizeof(err));
        if (lc.json)
            printf("%s]\n", lc.n ? "\n" : "");
        if (prc != 0) {
            perr(&a, "%s", err[0] ? err : "cannot write the listing");
            rc = prc == POL_E_ARG ? 2 : 1;
            goto out;
        }
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
out:
    pol_store_close(st);
    st = NULL;
    return rc;
}

/* --- crl --- */

static int print_crl(void *arg, const struct pol_crl_row *row)
{
    struct list_ctx *lc = arg;
    char num[2 * 21 + 1] = "-", tu[32], nu[32] = "-", im[32];
    if (row->number != NULL && row->number_len > 0 && row->number_len <= 21)
        pol_serial_format(row->number, row->number_len, num, sizeof(num));
    pol_time_format(row->this_update, tu, sizeof(tu));
    if (row->next_update != 0)
        pol_time_format(row->next_update, nu, sizeof(nu));
    pol_time_format(row->imported_at, im, sizeof(im));
    if (lc->json) {
        json_row(lc, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I}", "id", (json_int_t)row->id, "issuer",
                               row->issuer_text, "crl_number", num, "this_update", tu, "next_update", nu, "imported",
                               im, "entries", (json_int_t)row->entries));
    } else {
        printf("%lld\t%s\t%s\t%s\t%s\t%zu\n", (long long)row->id, row->issuer_text, num, tu, nu, row->entries);
        lc->n++;
    }
    return ferror(stdout) ? -1 : 0;
}

static void usage_crl(FILE *f)
{
    fprintf(f, "usage: hsmgate crl import --store FILE --ca CA.pem CRL.(pem|der) [--actor NAME] [--comment TEXT]\n"
               "       hsmgate crl ls --store FILE [--json]\n"
               "  (every command: -c CONFIG instead of --store FILE takes that configuration's policy_store)\n"
               "  import: accepts a CRL of another CA only if its signature verifies with CA.pem, its CRL Number\n"
               "  is higher than the stored one's and it has no unknown critical extension (RFC 5280 5.2, 5.3);\n"
               "  its revocations replace those of that CA's previous CRL.\n");
}

static int crl_import(struct pargs *a, struct pol_store *st, const char *actor)
{
    uint8_t *crl_buf = NULL, *ca_der = NULL;
    size_t crl_len = 0, ca_len = 0;
    struct pol_crl *crl = NULL;
    struct pol_crl_info info;
    char err[1024], num[48] = "none", nu[32] = "none";
    uint64_t gen = 0;
    int rc = 1, unchanged = 0;

    if (pol_file_load(a->ca, "CERTIFICATE", CA_FILE_MAX, &ca_der, &ca_len, err, sizeof(err)) != 0 ||
        pol_file_load(a->file, NULL, CRL_FILE_MAX, &crl_buf, &crl_len, err, sizeof(err)) != 0) {
        perr(a, "%s", err);
        goto out;
    }
    if (pol_crl_parse(crl_buf, crl_len, ca_der, ca_len, &crl, err, sizeof(err)) != 0) {
        perr(a, "%s: refused: %s", a->file, err);
        goto out;
    }
    pol_crl_get_info(crl, &info);
    struct pol_actor who = { actor, a->comment };
    if (pol_store_crl_import(st, crl, &who, &unchanged, &gen, err, sizeof(err)) != 0) {
        perr(a, "%s: refused: %s", a->file, err);
        goto out;
    }
    if (info.number != NULL)
        pol_serial_format(info.number, info.number_len, num, sizeof(num));
    if (info.next_update != 0)
        pol_time_format(info.next_update, nu, sizeof(nu));
    if (unchanged)
        fprintf(stderr, "hsmgate crl import: %s is already imported (CRL Number %s); nothing changed\n", a->file, num);
    else
        fprintf(stderr, "hsmgate crl import: %s: %zu revocations from %s, CRL Number %s, next update %s "
                        "(store generation %llu)\n", a->file, info.entries, info.issuer_text, num, nu,
                (unsigned long long)gen);
    if (info.next_update != 0 && info.next_update < time(NULL))
        fprintf(stderr, "hsmgate crl import: warning: this CRL is past its nextUpdate (%s): listeners that need it "
                        "refuse clients as crl_stale unless they allow a grace period\n", nu);
    rc = 0;
out:
    pol_crl_free(crl);
    crl = NULL;
    free(crl_buf);
    crl_buf = NULL;
    free(ca_der);
    ca_der = NULL;
    return rc;
}

int gw_cmd_crl(int argc, char **argv)
{
    struct pargs a = { .cmd = "crl" };
    struct pol_store *st = NULL;
    struct list_ctx lc = { 0, 0 };
    char err[512] = "", abuf[300];
    int rc = 2, import;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_crl(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "import") == 0) {
        import = 1;
        a.cmd = "crl import";
    } else if (strcmp(argv[1], "ls") == 0) {
        import = 0;
        a.cmd = "crl ls";
    } else {
        fprintf(stderr, "hsmgate crl: unknown command \"%s\" (import or ls)\n", argv[1]);
        return 2;
    }
    int p = parse(&a, argc - 1, argv + 1,
                  import ? O_STORE | O_CONFIG | O_CA | O_ACTOR | O_COMMENT : O_STORE | O_CONFIG | O_JSON, import);
    if (p != 0) {
        usage_crl(p > 0 ? stdout : stderr);
        return p > 0 ? 0 : 2;
    }
    if (import && a.ca == NULL) {
        perr(&a, "--ca CA.pem is required: a CRL is accepted only with its CA's signature");
        return 2;
    }
    rc = 1;
    if (open_store(&a, !import, &st) != 0)
        goto out;
    if (import) {
        rc = crl_import(&a, st, actor_of(&a, abuf, sizeof(abuf)));
    } else {
        lc.json = (a.seen & O_JSON) != 0;
        if (lc.json)
            printf("[");
        int prc = pol_store_crls_each(st, print_crl, &lc, err, sizeof(err));
        if (lc.json)
            printf("%s]\n", lc.n ? "\n" : "");
        if (prc != 0) {
            perr(&a, "%s", err[0] ? err : "cannot write the listing");
            goto out;
        }
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
out:
    pol_store_close(st);
    st = NULL;
    return rc;
}

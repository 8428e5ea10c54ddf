/* hsmgatectl.c - the admin API's command-line client: options, usage, dispatch to the commands.
 *
 * Everything it does is one or a few HTTP requests to the routes of admin-api/README.md; the server
 * decides and says why (problem documents), this program only shapes the requests and the answers.
 * The token is read from a file (--token-file or $HSMGATE_TOKEN_FILE), never from the command line,
 * which any user can read in ps or /proc/PID/cmdline.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "admin-api/ctl/ctl.h"

#define DEFAULT_URL "http://127.0.0.1:9440"
#define DEFAULT_TIMEOUT_MS 30000L

static const char usage_main[] =
    "usage: hsmgatectl [OPTIONS] COMMAND ...\n"
    "\n"
    "The hsmgate admin API from the command line (admin-api/README.md, \"hsmgatectl\").\n"
    "\n"
    "Commands:\n"
    "  status                                health of the gateway, its HSM and store, and the listeners\n"
    "  revoke TARGET [--reason R] [--revoked-at T] [--comment C]\n"
    "  revoke --lift TARGET [--comment C]    lift a certificateHold\n"
    "         TARGET: --cert FILE, or --issuer-cert FILE --serial HEX\n"
    "  revocations ls [--issuer-hash H] [--serial HEX] [PAGES]\n"
    "  allow add LIST --match TYPE (--value V | --cert FILE | --issuer-cert FILE --serial HEX)\n"
    "            [--expires T] [--comment C]\n"
    "  allow rm LIST ID [--comment C]\n"
    "  allow ls [LIST] [PAGES]               the lists, or one list's entries\n"
    "  crl import NAME [--ca CA.pem] CRL [--comment C]\n"
    "  crl ls [PAGES]\n"
    "  crl rm NAME [--comment C]\n"
    "  audit ls [PAGES]\n"
    "  audit verify                          exit status 1 when the trail is broken\n"
    "  conns ls [--listener L] [PAGES]       live client connections\n"
    "  conns kill ID [--comment C]           close one\n"
    "  cert issue --csr FILE [--days N] [--profile P] [--comment C] [--out FILE]\n"
    "         PAGES: [--limit N] [--after CURSOR] [--all]\n"
    "\n"
    "Options (anywhere on the line):\n"
    "  --url URL           the API (default: $HSMGATE_URL, else " DEFAULT_URL ")\n"
    "  --unix-socket PATH  reach the API through its Unix socket (the URL's host is then ignored)\n"
    "  --token-file FILE   the file holding the bearer token (default: $HSMGATE_TOKEN_FILE); it must\n"
    "                      not be readable by others; there is no way to give a token on the command line\n"
    "  --timeout S         give up after S seconds (default 30)\n"
    "  --request-id ID     X-Request-Id of the requests, for the audit trail (1-64 of A-Za-z0-9._-)\n"
    "  --cacert FILE       the CA certificates that vouch for an https URL's server (default: the system's)\n"
    "  --json              print the API's JSON instead of tables\n"
    "  -h, --help          this text; COMMAND --help: that command's\n"
    "\n"
    "Exit status: 0 done; 1 the server refused or failed; 2 usage error; 3 the server cannot be reached.\n";

int ctl_usage_error(const struct ctl *c, const char *fmt, ...)
{
    va_list ap;

    fputs(CTL_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (c != NULL && c->cmd != NULL)
        fprintf(stderr, " (see: " CTL_NAME " %s --help)\n", c->cmd);
    else
        fputs(" (see: " CTL_NAME " --help)\n", stderr);
    return CTL_USAGE;
}

static int request_id_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > 64)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* The global options, wherever they appear: --name=inline, or --name next. Returns 0 (*used_next
 * says whether next was its value), 1 (not one of them) or CTL_USAGE. */
static int global_opt(struct ctl *c, const char *name, const char *inline_value, const char *next, int *used_next)
{
    const char *value = inline_value != NULL ? inline_value : next;

    *used_next = 0;
    if (strcmp(name, "json") == 0) {
        if (inline_value != NULL)
            return ctl_usage_error(c, "--json takes no value");
        c->json = 1;
        return 0;
    }
    if (strcmp(name, "token") == 0 || strcmp(name, "bearer") == 0)
        return ctl_usage_error(c, "--%s: a token is never taken from the command line (any user can read it in ps); "
                               "put it in a file only you can read and give --token-file FILE", name);
    static const char *const with_value[] = { "url", "unix-socket", "token-file", "timeout", "request-id", "cacert", NULL };
    size_t k;
    for (k = 0; with_value[k] != NULL && strcmp(name, with_value[k]) != 0; k++)
        ;
    if (with_value[k] == NULL)
        return 1;
    if (value == NULL)
        return ctl_usage_error(c, "--%s needs a value", name);
    *used_next = inline_value == NULL;
    switch (k) {
    case 0: c->url = value; break;
    case 1: c->unix_socket = value; break;
    case 2: c->token_file = value; break;
    case 3: {
        char *end = NULL;
        double s = strtod(value, &end);
        if (end == value || *end != '\0' || !(s > 0) || s > 86400)
            return ctl_usage_error(c, "--timeout: expected seconds between 0 and 86400, got \"%s\"", value);
        c->timeout_ms = (long)(s * 1000) > 0 ? (long)(s * 1000) : 1;
        break;
    }
    case 4:
        if (!request_id_ok(value))
            return ctl_usage_error(c, "--request-id: 1 to 64 letters, digits, '.', '_' or '-'");
        c->request_id = value;
        break;
    case 5: c->cacert = value; break;
    }
    return 0;
}

/* One option at argv[*i] (which starts with "--", or is -h). Returns 0 (consumed), CTL_HELP or
 * CTL_USAGE. */
static int one_opt(struct ctl *c, int argc, char **argv, int *i, const struct ctl_opt *opts, unsigned *seen)
{
    const char *arg = argv[*i], *name = arg + 2, *eq = strchr(arg, '='), *value = NULL;
    char nbuf[64];
    int used = 0, rc;

    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        fputs(c->usage, stdout);
        return CTL_HELP;
    }
    if (arg[1] != '-' || arg[2] == '\0')
        return ctl_usage_error(c, "unknown option %s", arg);
    if (eq != NULL) {
        size_t n = (size_t)(eq - name);
        if (n >= sizeof(nbuf))
            return ctl_usage_error(c, "unknown option %.60s", arg);
        memcpy(nbuf, name, n);
        nbuf[n] = '\0';
        name = nbuf;
        value = eq + 1;
    }
    for (size_t k = 0; opts != NULL && opts[k].name != NULL; k++) {
        if (strcmp(opts[k].name, name) != 0)
            continue;
        if (*seen & (1u << k))
            return ctl_usage_error(c, "--%s is given twice", name);
        *seen |= 1u << k;
        if (opts[k].flag != NULL) {
            if (value != NULL)
                return ctl_usage_error(c, "--%s takes no value", name);
            *opts[k].flag = 1;
            return 0;
        }
        if (value == NULL) {
            if (*i + 1 >= argc)
                return ctl_usage_error(c, "--%s needs a value", name);
            value = argv[++*i];
        }
        *opts[k].value = value;
        return 0;
    }
    rc = global_opt(c, name, value, *i + 1 < argc ? argv[*i + 1] : NULL, &used);
    if (rc == 1)
        return ctl_usage_error(c, "unknown option --%s", name);
    if (rc == 0 && used)
        ++*i;
    return rc;
}

int ctl_args(struct ctl *c, int argc, char **argv, const struct ctl_opt *opts, const char **pos, size_t maxpos,
             size_t *npos)
{
    unsigned seen = 0;
    int only_pos = 0;

    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0') {
            int rc = one_opt(c, argc, argv, &i, opts, &seen);
            if (rc != 0)
                return rc;
            continue;
        }
        if (*npos == maxpos)
            return ctl_usage_error(c, "unexpected argument \"%.200s\"", a);
        pos[(*npos)++] = a;
    }
    return 0;
}

struct cmd {
    const char *name, *sub;
    int (*run)(struct ctl *c, int argc, char **argv);
};

static const struct cmd cmds[] = {
    { "status", NULL, ctl_cmd_status },
    { "revoke", NULL, ctl_cmd_revoke },
    { "revocations", "ls", ctl_cmd_revocations_ls },
    { "allow", "add", ctl_cmd_allow_add },
    { "allow", "rm", ctl_cmd_allow_rm },
    { "allow", "ls", ctl_cmd_allow_ls },
    { "crl", "import", ctl_cmd_crl_import },
    { "crl", "ls", ctl_cmd_crl_ls },
    { "crl", "rm", ctl_cmd_crl_rm },
    { "audit", "ls", ctl_cmd_audit_ls },
    { "audit", "verify", ctl_cmd_audit_verify },
    { "conns", "ls", ctl_cmd_conns_ls },
    { "conns", "kill", ctl_cmd_conns_kill },
    { "cert", "issue", ctl_cmd_cert_issue },
    { NULL, NULL, NULL },
};

/* The subcommands of name, "add, rm, ls", for a message. */
static void subs_of(const char *name, char *buf, size_t n)
{
    size_t used = 0;

    buf[0] = '\0';
    for (const struct cmd *k = cmds; k->name != NULL; k++)
        if (k->sub != NULL && strcmp(k->name, name) == 0 && used < n) {
            int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", k->sub);
            if (w > 0)
                used += (size_t)w;
        }
}

static int dispatch(struct ctl *c, int argc, char **argv)
{
    char cmdname[64], subs[128];
    const struct cmd *found = NULL;
    int known = 0, i = 0;
    unsigned seen = 0;

    /* Global options before the command. */
    while (i < argc && argv[i][0] == '-' && argv[i][1] != '\0' && strcmp(argv[i], "--") != 0) {
        int rc = one_opt(c, argc, argv, &i, NULL, &seen);
        if (rc != 0)
            return rc;
        i++;
    }
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    if (i >= argc)
        return ctl_usage_error(c, "no command");
    for (const struct cmd *k = cmds; k->name != NULL; k++) {
        if (strcmp(k->name, argv[i]) != 0)
            continue;
        known = 1;
        if (k->sub == NULL || (i + 1 < argc && strcmp(k->sub, argv[i + 1]) == 0)) {
            found = k;
            break;
        }
    }
    if (!known)
        return ctl_usage_error(c, "unknown command \"%.60s\"", argv[i]);
    if (found == NULL) {
        subs_of(argv[i], subs, sizeof(subs));
        if (i + 1 < argc && (strcmp(argv[i + 1], "--help") == 0 || strcmp(argv[i + 1], "-h") == 0)) {
            fputs(c->usage, stdout);
            return CTL_HELP;
        }
        if (i + 1 >= argc)
            return ctl_usage_error(c, "%s needs a subcommand: %s", argv[i], subs);
        return ctl_usage_error(c, "%s has no subcommand \"%.60s\" (it has %s)", argv[i], argv[i + 1], subs);
    }
    snprintf(cmdname, sizeof(cmdname), "%s%s%s", found->name, found->sub ? " " : "", found->sub ? found->sub : "");
    c->cmd = cmdname;
    i += found->sub ? 2 : 1;
    int rc = found->run(c, argc - i, argv + i);
    c->cmd = NULL;
    return rc;
}

int main(int argc, char **argv)
{
    struct ctl c;
    const char *env;
    int rc;

    memset(&c, 0, sizeof(c));
    c.url = (env = getenv("HSMGATE_URL")) != NULL && *env ? env : DEFAULT_URL;
    c.token_file = (env = getenv("HSMGATE_TOKEN_FILE")) != NULL && *env ? env : NULL;
    c.timeout_ms = DEFAULT_TIMEOUT_MS;
    c.usage = usage_main;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs(CTL_NAME ": libcurl cannot start\n", stderr);
        return CTL_REFUSED;
    }
    rc = dispatch(&c, argc - 1, argv + 1);
    ctl_http_free(&c);
    curl_global_cleanup();
    if (fflush(stdout) != 0 && rc == CTL_OK) {
        perror(CTL_NAME ": stdout");
        rc = CTL_REFUSED;
    }
    return rc == CTL_HELP ? CTL_OK : rc;
}

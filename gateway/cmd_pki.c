/* cmd_pki.c - `hsmgate pki`: keys and certificates whose private keys stay in the HSM.
 *
 *   keygen  generate a key pair in a token, print its RFC 7512 URI
 *   root    self-signed root CA certificate for an HSM key
 *   server  server certificate for an HSM key, issued by the HSM-held CA key
 *   client  certificate for a PKCS#10 request (client certificates and test fixtures)
 *   csr     PKCS#10 request for an HSM key, for an outside CA
 *
 * Exit status: 0 done, 1 failed (message on stderr), 2 usage error. Nothing secret is printed: PINs
 * are only ever named by their source (file:/path or env:NAME), never given on the command line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "gateway/cmd.h"
#include "gateway/config.h"
#include "pkcs11/ca.h"
#include "pkcs11/hsm.h"

#define PKI_FILE_MAX (1u << 20)         /* certificates and CSRs are a few KiB */
#define PKI_BACKDATE_S 300              /* notBefore a little in the past: peers' clocks drift */
#define PKI_MAX_DAYS 36500

enum pki_sub { SUB_KEYGEN, SUB_ROOT, SUB_SERVER, SUB_CLIENT, SUB_CSR };

/* Options, each a bit so every sub-command can say which it takes. */
enum {
    O_MODULE = 1 << 0, O_PIN = 1 << 1, O_CONFIG = 1 << 2, O_TOKEN_URI = 1 << 3, O_LABEL = 1 << 4,
    O_TYPE = 1 << 5, O_KEY = 1 << 6, O_CA_KEY = 1 << 7, O_CA_CERT = 1 << 8, O_CSR = 1 << 9,
    O_SUBJECT = 1 << 10, O_SAN = 1 << 11, O_DAYS = 1 << 12, O_NOT_BEFORE = 1 << 13, O_NOT_AFTER = 1 << 14,
    O_EKU = 1 << 15, O_CA = 1 << 16, O_CHAIN = 1 << 17, O_PATH_LEN = 1 << 18, O_OUT = 1 << 19,
    O_CRL_URL = 1 << 20,
};
#define O_COMMON (O_MODULE | O_PIN | O_CONFIG)
#define O_VALIDITY (O_DAYS | O_NOT_BEFORE | O_NOT_AFTER)

static const struct option long_opts[] = {
    { "module", required_argument, NULL, 'M' },
    { "pin", required_argument, NULL, 'P' },
    { "config", required_argument, NULL, 'c' },
    { "token-uri", required_argument, NULL, 'T' },
    { "label", required_argument, NULL, 'l' },
    { "type", required_argument, NULL, 't' },
    { "key", required_argument, NULL, 'k' },
    { "ca-key", required_argument, NULL, 'K' },
    { "ca-cert", required_argument, NULL, 'C' },
    { "csr", required_argument, NULL, 'r' },
    { "subject", required_argument, NULL, 's' },
    { "san", required_argument, NULL, 'S' },
    { "days", required_argument, NULL, 'd' },
    { "not-before", required_argument, NULL, 'b' },
    { "not-after", required_argument, NULL, 'a' },
    { "eku", required_argument, NULL, 'e' },
    { "ca", no_argument, NULL, 'A' },
    { "chain", no_argument, NULL, 'N' },
    { "path-len", required_argument, NULL, 'p' },
    { "crl-url", required_argument, NULL, 'U' },
    { "out", required_argument, NULL, 'o' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static const struct pki_cmd {
    const char *name;
    enum pki_sub sub;
    unsigned allowed;
    unsigned required;
    const char *usage;
} pki_cmds[] = {
    { "keygen", SUB_KEYGEN, O_COMMON | O_TOKEN_URI | O_LABEL | O_TYPE, O_TOKEN_URI | O_LABEL | O_TYPE,
      "usage: hsmgate pki keygen --token-uri URI --label NAME --type TYPE [COMMON]\n"
      "  Generates a key pair inside the token (private half sensitive, never extractable) and prints\n"
      "  its URI, e.g. pkcs11:token=hsmgate;object=server;type=private\n"
      "  --token-uri URI   the token, e.g. \"pkcs11:token=hsmgate\"\n"
      "  --label NAME      CKA_LABEL of the new key; refused if a key with that label exists\n"
      "  --type TYPE       ec:P-256, ec:P-384, rsa:2048, rsa:3072 or rsa:4096\n" },
    { "root", SUB_ROOT, O_COMMON | O_KEY | O_SUBJECT | O_SAN | O_VALIDITY | O_PATH_LEN | O_OUT, O_KEY | O_SUBJECT | O_OUT,
      "usage: hsmgate pki root --key URI --subject SUBJECT --out FILE [--days N] [--path-len N] [COMMON]\n"
      "  Makes a self-signed root CA certificate (PEM) for the HSM key, signed in the HSM.\n"
      "  --key URI             the CA's private key, e.g. \"pkcs11:token=hsmgate;object=root;type=private\"\n"
      "  --subject SUBJECT     e.g. \"/CN=hsmgate Root CA/O=Example\"\n"
      "  --days N              validity (default 3650); or --not-before/--not-after TIME\n"
      "  --path-len N          basicConstraints pathLenConstraint (default: none)\n"
      "  --out FILE            where to write the PEM (\"-\" for stdout)\n" },
    { "server", SUB_SERVER,
      O_COMMON | O_CA_KEY | O_CA_CERT | O_KEY | O_SUBJECT | O_SAN | O_VALIDITY | O_CHAIN | O_CRL_URL | O_OUT,
      O_CA_KEY | O_CA_CERT | O_KEY | O_SUBJECT | O_OUT,
      "usage: hsmgate pki server --ca-key URI --ca-cert FILE --key URI --subject SUBJECT --out FILE\n"
      "                          [--san TYPE:VALUE ...] [--days N] [--chain] [--crl-url URL] [COMMON]\n"
      "  Issues a server certificate (serverAuth) for an HSM-held key; its public key is read from the HSM.\n"
      "  --san TYPE:VALUE      DNS:name, IP:address, URI:uri or email:address; repeatable. Without any,\n"
      "                        the CN becomes the only SAN (clients match names against SANs only)\n"
      "  --days N              validity (default 365); or --not-before/--not-after TIME\n"
      "  --chain               append the CA certificate after the leaf\n"
      "  --crl-url URL         cRLDistributionPoints: where clients fetch the CA's CRL (http://..., e.g. the\n"
      "                        admin API's /crl)\n" },
    { "client", SUB_CLIENT,
      O_COMMON | O_CA_KEY | O_CA_CERT | O_CSR | O_SUBJECT | O_SAN | O_VALIDITY | O_EKU | O_CA | O_PATH_LEN | O_CHAIN |
      O_CRL_URL | O_OUT,
      O_CA_KEY | O_CA_CERT | O_CSR | O_OUT,
      "usage: hsmgate pki client --ca-key URI --ca-cert FILE --csr FILE --out FILE [--days N]\n"
      "                          [--not-before TIME] [--not-after TIME] [--eku LIST] [--ca] [--san TYPE:VALUE ...]\n"
      "                          [--subject SUBJECT] [--chain] [--crl-url URL] [COMMON]\n"
      "  Issues a certificate for the key in a PKCS#10 request (PEM or DER) after checking its signature.\n"
      "  The subject is the request's unless --subject is given; requested extensions are ignored.\n"
      "  --eku LIST            clientAuth (default), serverAuth, clientAuth,serverAuth, or none\n"
      "  --ca                  basicConstraints CA:TRUE (pathlen 0 unless --path-len): for negative tests\n"
      "  --not-before TIME     2020-01-01T00:00:00Z, or relative to now: -2d, +30d (units d, h, m, s)\n"
      "  --not-after TIME      same; default notBefore + --days (365)\n" },
    { "csr", SUB_CSR, O_COMMON | O_KEY | O_SUBJECT | O_SAN | O_OUT, O_KEY | O_SUBJECT | O_OUT,
      "usage: hsmgate pki csr --key URI --subject SUBJECT [--san TYPE:VALUE ...] --out FILE [COMMON]\n"
      "  Makes a PKCS#10 request for an HSM-held key, signed in the HSM, for an outside CA.\n" },
};
#define NCMDS (sizeof(pki_cmds) / sizeof(pki_cmds[0]))

static const char common_usage[] =
    "common options:\n"
    "  --module PATH         PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so)\n"
    "  --pin SOURCE          where the user PIN is read: file:/path (mode 0600) or env:NAME\n"
    "  -c, --config FILE     take hsm.module and hsm.pin from an hsmgate config file\n"
    "                        (--module and --pin win over it)\n"
    "  -h, --help            this help\n";

struct pki_args {
    unsigned seen;
    const char *module, *pin, *config, *token_uri, *label, *type, *key, *ca_key, *ca_cert, *csr;
    const char *subject, *not_before, *not_after, *eku, *out, *crl_url;
    const char *sans[HSM_CA_MAX_SANS];
    size_t nsans;
    long days;
    int path_len;
};

static void pki_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void pki_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hsmgate pki: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* The HSM layer's warnings and errors; its info and debug lines are noise for a one-shot command. */
static void pki_hsm_log(int level, const char *msg)
{
    if (level <= LOG_WARNING)
        fprintf(stderr, "hsmgate pki: hsm: %s\n", msg);
}

static void usage_top(FILE *f)
{
    fprintf(f, "usage: hsmgate pki COMMAND [OPTIONS]\n"
               "\n"
               "commands:\n"
               "  keygen   generate a key pair in the HSM and print its PKCS#11 URI\n"
               "  root     make a self-signed root CA certificate for an HSM key\n"
               "  server   issue a server certificate for an HSM key\n"
               "  client   issue a certificate for a PKCS#10 request (client certificates)\n"
               "  csr      make a PKCS#10 request for an HSM key\n"
               "\n"
               "hsmgate pki COMMAND --help describes each.\n");
}

static void usage_cmd(FILE *f, const struct pki_cmd *cmd)
{
    fprintf(f, "%s\n%s", cmd->usage, common_usage);
}

/* --- small parsers (operator input: every failure is a usage error with a message) --- */

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* "2020-01-01T00:00:00Z", or [+-]N followed by d, h, m or s, relative to now. */
static int parse_time(const char *s, time_t now, time_t *out)
{
    if (s[0] == '+' || s[0] == '-') {
        char *end = NULL;
        errno = 0;
        long long n = strtoll(s + 1, &end, 10);
        if (errno != 0 || end == s + 1 || n < 0 || n > 36500LL * 86400 || end[0] == '\0' || end[1] != '\0')
            return -1;
        long long unit = end[0] == 'd' ? 86400 : end[0] == 'h' ? 3600 : end[0] == 'm' ? 60 : end[0] == 's' ? 1 : 0;
        if (unit == 0 || n > 36500LL * 86400 / unit)
            return -1;
        *out = now + (time_t)(s[0] == '-' ? -n * unit : n * unit);
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0' || strlen(s) != 20)
        return -1;
    /* strptime accepts 2021-02-30; a round trip through timegm catches it. */
    struct tm check = tm;
    time_t t = timegm(&check);
    if (t == (time_t)-1 || check.tm_mday != tm.tm_mday || check.tm_mon != tm.tm_mon)
        return -1;
    *out = t;
    return 0;
}

static int parse_eku(const char *s, unsigned *out)
{
    char buf[64];
    unsigned eku = 0;
    if (strlen(s) >= sizeof(buf))
        return -1;
    if (strcasecmp(s, "none") == 0) {
        *out = 0;
        return 0;
    }
    strcpy(buf, s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (strcasecmp(tok, "clientAuth") == 0)
            eku |= HSM_CA_EKU_CLIENT_AUTH;
        else if (strcasecmp(tok, "serverAuth") == 0)
            eku |= HSM_CA_EKU_SERVER_AUTH;
        else
            return -1;
    }
    if (eku == 0)
        return -1;
    *out = eku;
    return 0;
}

/* The option bit of a long_opts val. */
static unsigned opt_bit(int val)
{
    static const struct { int val; unsigned bit; } map[] = {
        { 'M', O_MODULE }, { 'P', O_PIN }, { 'c', O_CONFIG }, { 'T', O_TOKEN_URI }, { 'l', O_LABEL },
        { 't', O_TYPE }, { 'k', O_KEY }, { 'K', O_CA_KEY }, { 'C', O_CA_CERT }, { 'r', O_CSR },
        { 's', O_SUBJECT }, { 'S', O_SAN }, { 'd', O_DAYS }, { 'b', O_NOT_BEFORE }, { 'a', O_NOT_AFTER },
        { 'e', O_EKU }, { 'A', O_CA }, { 'N', O_CHAIN }, { 'p', O_PATH_LEN }, { 'o', O_OUT }, { 'U', O_CRL_URL },
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (map[i].val == val)
            return map[i].bit;
    return 0;
}

static int parse_args(const struct pki_cmd *cmd, int argc, char **argv, struct pki_args *a)
{
    memset(a, 0, sizeof(*a));
    a->days = -1;
    a->path_len = -1;
    /* optind = 0 makes glibc's getopt start afresh, whatever parsed argv before us. */
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:ho:", long_opts, NULL)) != -1) {
        unsigned bit = 0;
        switch (c) {
        case 'M': bit = O_MODULE; a->module = optarg; break;
        case 'P': bit = O_PIN; a->pin = optarg; break;
        case 'c': bit = O_CONFIG; a->config = optarg; break;
        case 'T': bit = O_TOKEN_URI; a->token_uri = optarg; break;
        case 'l': bit = O_LABEL; a->label = optarg; break;
        case 't': bit = O_TYPE; a->type = optarg; break;
        case 'k': bit = O_KEY; a->key = optarg; break;
        case 'K': bit = O_CA_KEY; a->ca_key = optarg; break;
        case 'C': bit = O_CA_CERT; a->ca_cert = optarg; break;
        case 'r': bit = O_CSR; a->csr = optarg; break;
        case 's': bit = O_SUBJECT; a->subject = optarg; break;
        case 'b': bit = O_NOT_BEFORE; a->not_before = optarg; break;
        case 'a': bit = O_NOT_AFTER; a->not_after = optarg; break;
        case 'e': bit = O_EKU; a->eku = optarg; break;
        case 'A': bit = O_CA; break;
        case 'N': bit = O_CHAIN; break;
        case 'o': bit = O_OUT; a->out = optarg; break;
        case 'U':
            bit = O_CRL_URL;
            if (!hsm_ca_crl_url_ok(optarg)) {
                pki_err("%s: --crl-url takes an http:// URL: printable ASCII, no spaces, at most 1024 characters "
                        "(RFC 5280 4.2.1.13)", cmd->name);
                return -1;
            }
            a->crl_url = optarg;
            break;
        case 'S':
            bit = O_SAN;
            if (a->nsans == HSM_CA_MAX_SANS) {
                pki_err("%s: at most %d --san", cmd->name, HSM_CA_MAX_SANS);
                return -1;
            }
            a->sans[a->nsans++] = optarg;
            break;
        case 'd':
            bit = O_DAYS;
            if (parse_long(optarg, 1, PKI_MAX_DAYS, &a->days) != 0) {
                pki_err("%s: --days takes a number of days from 1 to %d", cmd->name, PKI_MAX_DAYS);
                return -1;
            }
            break;
        case 'p': {
            long v;
            bit = O_PATH_LEN;
            if (parse_long(optarg, 0, 255, &v) != 0) {
                pki_err("%s: --path-len takes a number from 0 to 255", cmd->name);
                return -1;
            }
            a->path_len = (int)v;
            break;
        }
        case 'h':
            return 1;
        case ':':
            pki_err("%s: option %s needs a value", cmd->name, argv[optind - 1]);
            return -1;
        default:
            pki_err("%s: unknown option %s", cmd->name, argv[optind - 1]);
            return -1;
        }
        if (!(bit & cmd->allowed)) {
            pki_err("%s: option %s does not apply here", cmd->name, argv[optind - 1]);
            return -1;
        }
        if ((a->seen & bit) && bit != O_SAN) {
            pki_err("%s: option %s given twice", cmd->name, argv[optind - 1]);
            return -1;
        }
        a->seen |= bit;
    }
    if (optind != argc) {
        pki_err("%s: unexpected argument \"%s\"", cmd->name, argv[optind]);
        return -1;
    }
    unsigned missing = cmd->required & ~a->seen;
    if (missing) {
        for (size_t i = 0; long_opts[i].name != NULL; i++) {
            if (missing & opt_bit(long_opts[i].val)) {
                pki_err("%s: --%s is required", cmd->name, long_opts[i].name);
                break;
            }
        }
        return -1;
    }
    if ((a->seen & O_DAYS) && (a->seen & O_NOT_AFTER)) {
        pki_err("%s: give --days or --not-after, not both", cmd->name);
        return -1;
    }
    if ((a->seen & O_PATH_LEN) && cmd->sub == SUB_CLIENT && !(a->seen & O_CA)) {
        pki_err("%s: --path-len needs --ca", cmd->name);
        return -1;
    }
    /* A PIN on the command line would sit in ps output and shell history. */
    if (a->pin != NULL && strncmp(a->pin, "file:", 5) != 0 && strncmp(a->pin, "env:", 4) != 0) {
        pki_err("%s: --pin takes a pin source (file:/path or env:NAME), never the PIN itself", cmd->name);
        return -1;
    }
    if (a->type != NULL) {
        static const char *const types[] = { "ec:P-256", "ec:P-384", "rsa:2048", "rsa:3072", "rsa:4096" };
        int ok = 0;
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            ok |= strcmp(a->type, types[i]) == 0;
        if (!ok) {
            pki_err("%s: --type must be ec:P-256, ec:P-384, rsa:2048, rsa:3072 or rsa:4096", cmd->name);
            return -1;
        }
    }
    return 0;
}

/* --- files --- */

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    int rc = -1;
    uint8_t *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        pki_err("cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    buf = malloc(PKI_FILE_MAX);
    if (buf == NULL) {
        pki_err("out of memory");
        goto out;
    }
    size_t n = fread(buf, 1, PKI_FILE_MAX, f);
    if (ferror(f)) {
        pki_err("cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (n == PKI_FILE_MAX) {
        pki_err("%s is too large (over %u bytes)", path, PKI_FILE_MAX);
        goto out;
    }
    if (n == 0) {
        pki_err("%s is empty", path);
        goto out;
    }
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    buf = NULL;
    if (f != NULL)
        fclose(f);
    return rc;
}

/* Writes text to path through a temporary file and rename, so a reader never sees half a file
 * and a failure leaves the old file in place. "-" is stdout. */
static int write_file(const char *path, const char *text, size_t len)
{
    if (strcmp(path, "-") == 0) {
        if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
            pki_err("cannot write to stdout: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    int rc = -1, fd = -1, made = 0;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (tmp == NULL) {
        pki_err("out of memory");
        goto out;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        pki_err("cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    made = 1;
    /* Certificates and requests are public; 0644 like any certificate file. */
    int ok = fchmod(fd, 0644) == 0;
    for (size_t off = 0; ok && off < len;) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        if (ok)
            off += (size_t)w;
    }
    ok = ok && fsync(fd) == 0;
    int cfd = fd;
    fd = -1;
    ok = (close(cfd) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        pki_err("cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    made = 0;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (made)
        unlink(tmp);
    free(tmp);
    tmp = NULL;
    return rc;
}

/* --- helpers shared by the sub-commands --- */

/* The certificate validity from the options: notBefore defaults to now minus PKI_BACKDATE_S,
 * notAfter to notBefore (as given, or now) plus the days. */
static int validity(const struct pki_args *a, long default_days, time_t *nb, time_t *na)
{
    time_t now = time(NULL);
    long days = a->days > 0 ? a->days : default_days;
    time_t base = now;
    *nb = now - PKI_BACKDATE_S;
    if (a->not_before != NULL) {
        if (parse_time(a->not_before, now, nb) != 0) {
            pki_err("--not-before: expected 2020-01-01T00:00:00Z or [+-]N(d|h|m|s), got \"%s\"", a->not_before);
            return -1;
        }
        base = *nb;
    }
    *na = base + (time_t)days * 86400;
    if (a->not_after != NULL && parse_time(a->not_after, now, na) != 0) {
        pki_err("--not-after: expected 2020-01-01T00:00:00Z or [+-]N(d|h|m|s), got \"%s\"", a->not_after);
        return -1;
    }
    if (*na <= *nb) {
        pki_err("the validity period is empty (notAfter is not after notBefore)");
        return -1;
    }
    return 0;
}

/* RFC 7512 2.3: percent-encode what may not appear in a path attribute value. */
static void uri_put_value(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~:[]@!$'()*+,=&", *p) != NULL)
            fputc(*p, f);
        else
            fprintf(f, "%%%02X", *p);
    }
}

/* 1 if the URI path (attributes separated by ';') has attribute name. */
static int uri_has_attr(const char *path, size_t len, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && path[j] != ';')
            j++;
        if (j - i > n && path[i + n] == '=' && strncmp(path + i, name, n) == 0)
            return 1;
        i = j + 1;
    }
    return 0;
}

/* If the subject has a CN that is a host name or an address, the SAN it implies ("DNS:x"/"IP:x"). */
static int san_from_cn(const char *subject, char *out, size_t cap)
{
    char val[256];
    const char *p = subject;
    while (p != NULL && *p == '/') {
        p++;
        size_t n = 0;
        int is_cn = strncasecmp(p, "CN=", 3) == 0 || strncasecmp(p, "commonName=", 11) == 0;
        const char *q = strchr(p, '=');
        if (q == NULL)
            return -1;
        for (q++; *q && *q != '/'; q++) {
            if (*q == '\\' && q[1])
                q++;
            if (n + 1 < sizeof(val))
                val[n++] = *q;
        }
        val[n] = '\0';
        if (is_cn) {
            unsigned char addr[16];
            if (inet_pton(AF_INET, val, addr) == 1 || inet_pton(AF_INET6, val, addr) == 1) {
                snprintf(out, cap, "IP:%s", val);
                return 0;
            }
            if (n == 0 || strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.*") != n)
                return -1;
            snprintf(out, cap, "DNS:%s", val);
            return 0;
        }
        p = q;
    }
    return -1;
}

/* Writes cert (and the CA after it with --chain) as PEM and says what was issued. */
static int write_cert(const struct pki_args *a, const uint8_t *der, size_t len, const uint8_t *ca_der, size_t ca_len,
                      time_t nb, time_t na)
{
    char *pem = NULL, *ca_pem = NULL, *all = NULL;
    size_t pem_len = 0, ca_pem_len = 0;
    int rc = -1;
    if (hsm_ca_pem_encode("CERTIFICATE", der, len, &pem, &pem_len) != 0 ||
        ((a->seen & O_CHAIN) && hsm_ca_pem_encode("CERTIFICATE", ca_der, ca_len, &ca_pem, &ca_pem_len) != 0)) {
        pki_err("out of memory");
        goto out;
    }
    all = malloc(pem_len + ca_pem_len + 1);
    if (all == NULL) {
        pki_err("out of memory");
        goto out;
    }
    memcpy(all, pem, pem_len);
    if (ca_pem != NULL)
        memcpy(all + pem_len, ca_pem, ca_pem_len);
    if (write_file(a->out, all, pem_len + ca_pem_len) != 0)
        goto out;
    char serial[80] = "?", b1[32], b2[32];
    struct tm tm;
    if (hsm_ca_cert_serial(der, len, serial, sizeof(serial)) != 0)
        snprintf(serial, sizeof(serial), "?");
    strftime(b1, sizeof(b1), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&nb, &tm));
    strftime(b2, sizeof(b2), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&na, &tm));
    fprintf(stderr, "hsmgate pki: wrote %s: serial %s, valid %s to %s%s\n", a->out, serial, b1, b2,
            ca_pem ? ", CA certificate appended" : "");
    rc = 0;
out:
    free(pem);
    pem = NULL;
    free(ca_pem);
    ca_pem = NULL;
    free(all);
    all = NULL;
    return rc;
}

static int open_key(struct hsm_ctx *ctx, const char *uri, struct hsm_key **key)
{
    char err[256];
    int rc = hsm_key_open(ctx, uri, key, err, sizeof(err));
    if (rc != 0)
        pki_err("%s", err);
    return rc;
}

static int load_ca_cert(const char *path, uint8_t **der, size_t *len)
{
    static const char *const labels[] = { "CERTIFICATE", NULL };
    uint8_t *buf = NULL;
    size_t n = 0;
    char err[256];
    if (read_file(path, &buf, &n) != 0)
        return -1;
    int rc = hsm_ca_pem_decode(buf, n, labels, der, len, err, sizeof(err));
    if (rc != 0)
        pki_err("%s: %s", path, err);
    free(buf);
    buf = NULL;
    return rc;
}

/* --- sub-commands --- */

static int do_keygen(struct hsm_ctx *ctx, const struct pki_args *a)
{
    char err[256];
    /* The token URI names a token; the object part is ours to add. */
    const char *q = strchr(a->token_uri, '?');
    size_t path_len = q ? (size_t)(q - a->token_uri) : strlen(a->token_uri);
    if (strncmp(a->token_uri, "pkcs11:", 7) != 0 || uri_has_attr(a->token_uri + 7, path_len - 7, "object") ||
        uri_has_attr(a->token_uri + 7, path_len - 7, "id") || uri_has_attr(a->token_uri + 7, path_len - 7, "type")) {
        pki_err("keygen: --token-uri must be a pkcs11: URI naming a token only (no object, id or type)");
        return 2;
    }
    if (a->label[0] == '\0') {
        pki_err("keygen: --label must not be empty");
        return 2;
    }
    struct hsm_key *key = NULL;
    int rc = hsm_key_generate(ctx, a->token_uri, a->label, a->type, &key, err, sizeof(err));
    if (rc == HSM_E_EXISTS) {
        pki_err("keygen: a key labelled \"%s\" already exists in that token; choose another --label", a->label);
        return 1;
    }
    if (rc != 0) {
        pki_err("keygen: %s", err);
        return 1;
    }
    fwrite(a->token_uri, 1, path_len, stdout);
    fputs(path_len > 7 ? ";object=" : "object=", stdout);
    uri_put_value(stdout, a->label);
    fputs(";type=private", stdout);
    if (q != NULL)
        fputs(q, stdout);
    fputc('\n', stdout);
    fprintf(stderr, "hsmgate pki: generated %s key \"%s\"\n", a->type, a->label);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int do_issue(struct hsm_ctx *ctx, const struct pki_cmd *cmd, const struct pki_args *a)
{
    struct hsm_key *ca_key = NULL, *key = NULL;
    uint8_t *ca_der = NULL, *cert = NULL, *csr_buf = NULL;
    size_t ca_len = 0, cert_len = 0, csr_len = 0, spki_len = 0;
    struct hsm_ca_csr csr = { 0 };
    struct hsm_ca_spec spec;
    const char *sans[HSM_CA_MAX_SANS + 1];
    char cn_san[300], err[512];
    int rc = 1;

    memset(&spec, 0, sizeof(spec));
    if (validity(a, cmd->sub == SUB_ROOT ? 3650 : 365, &spec.not_before, &spec.not_after) != 0) {
        rc = 2;
        goto out;
    }
    for (size_t i = 0; i < a->nsans; i++)
        sans[i] = a->sans[i];
    spec.sans = sans;
    spec.nsans = a->nsans;
    spec.crl_url = a->crl_url;
    spec.subject = a->subject;
    spec.path_len = a->path_len;

    /* Keys first: a wrong URI or PIN should fail before any file is read or written. */
    if (open_key(ctx, cmd->sub == SUB_ROOT ? a->key : a->ca_key, &ca_key) != 0)
        goto out;
    if (cmd->sub == SUB_SERVER && open_key(ctx, a->key, &key) != 0)
        goto out;
    if (cmd->sub != SUB_ROOT && load_ca_cert(a->ca_cert, &ca_der, &ca_len) != 0)
        goto out;

    switch (cmd->sub) {
    case SUB_ROOT:
        spec.is_ca = 1;
        spec.spki_der = hsm_key_spki(ca_key, &spki_len);
        spec.spki_len = spki_len;
        break;
    case SUB_SERVER:
        spec.eku = HSM_CA_EKU_SERVER_AUTH;
        spec.spki_der = hsm_key_spki(key, &spki_len);
        spec.spki_len = spki_len;
        if (a->nsans == 0 && san_from_cn(a->subject, cn_san, sizeof(cn_san)) == 0) {
            sans[0] = cn_san;
            spec.nsans = 1;
            fprintf(stderr, "hsmgate pki: no --san given; using %s from the CN\n", cn_san);
        }
        break;
    case SUB_CLIENT:
        spec.eku = HSM_CA_EKU_CLIENT_AUTH;
        if (a->eku != NULL && parse_eku(a->eku, &spec.eku) != 0) {
            pki_err("client: --eku takes clientAuth, serverAuth, clientAuth,serverAuth or none");
            rc = 2;
            goto out;
        }
        if (a->seen & O_CA) {
            spec.is_ca = 1;
            spec.path_len = a->path_len >= 0 ? a->path_len : 0;
        }
        if (read_file(a->csr, &csr_buf, &csr_len) != 0)
            goto out;
        if (hsm_ca_csr_parse(csr_buf, csr_len, &csr, err, sizeof(err)) != 0) {
            pki_err("%s: %s", a->csr, err);
            goto out;
        }
        if (a->subject == NULL) {
            spec.subject_der = csr.subject_der;
            spec.subject_der_len = csr.subject_len;
        }
        spec.spki_der = csr.spki_der;
        spec.spki_len = csr.spki_len;
        break;
    default:
        goto out;
    }

    /* Signing needs this thread's own session (hsm.h); eager, so a lost token shows up here. */
    int hrc = hsm_thread_attach(ctx, 0, 1);
    if (hrc != 0) {
        pki_err("cannot open an HSM session: %s", hsm_strerror(hrc));
        goto out;
    }
    hrc = hsm_ca_issue(ca_key, ca_der, ca_len, &spec, &cert, &cert_len, err, sizeof(err));
    hsm_thread_detach(ctx);
    if (hrc != 0) {
        pki_err("%s: %s", cmd->name, err);
        goto out;
    }
    if (write_cert(a, cert, cert_len, ca_der, ca_len, spec.not_before, spec.not_after) != 0)
        goto out;
    rc = 0;
out:
    free(ca_der);
    ca_der = NULL;
    free(cert);
    cert = NULL;
    free(csr_buf);
    csr_buf = NULL;
    hsm_ca_csr_clear(&csr);
    return rc;
}

static int do_csr(struct hsm_ctx *ctx, const struct pki_args *a)
{
    struct hsm_key *key = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0, pem_len = 0;
    char *pem = NULL, err[512];
    int rc = 1;

    if (open_key(ctx, a->key, &key) != 0)
        goto out;
    int hrc = hsm_thread_attach(ctx, 0, 1);
    if (hrc != 0) {
        pki_err("cannot open an HSM session: %s", hsm_strerror(hrc));
        goto out;
    }
    hrc = hsm_ca_csr_make(key, a->subject, a->sans, a->nsans, &der, &der_len, err, sizeof(err));
    hsm_thread_detach(ctx);
    if (hrc != 0) {
        pki_err("csr: %s", err);
        goto out;
    }
    if (hsm_ca_pem_encode("CERTIFICATE REQUEST", der, der_len, &pem, &pem_len) != 0) {
        pki_err("out of memory");
        goto out;
    }
    if (write_file(a->out, pem, pem_len) != 0)
        goto out;
    fprintf(stderr, "hsmgate pki: wrote %s\n", a->out);
    rc = 0;
out:
    free(der);
    der = NULL;
    free(pem);
    pem = NULL;
    return rc;
}

int gw_cmd_pki(int argc, char **argv)
{
    const struct pki_cmd *cmd = NULL;
    struct pki_args a;
    struct gw_config *cfg = NULL;
    struct hsm_ctx *ctx = NULL;
    char err[512];
    int rc = 2;

    if (argc < 2) {
        usage_top(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage_top(stdout);
        return 0;
    }
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(argv[1], pki_cmds[i].name) == 0)
            cmd = &pki_cmds[i];
    if (cmd == NULL) {
        pki_err("unknown command \"%s\"", argv[1]);
        usage_top(stderr);
        return 2;
    }
    int prc = parse_args(cmd, argc - 1, argv + 1, &a);
    if (prc == 1) {
        usage_cmd(stdout, cmd);
        return 0;
    }
    if (prc != 0) {
        fprintf(stderr, "see: hsmgate pki %s --help\n", cmd->name);
        return 2;
    }

    rc = 1;
    const char *module = a.module, *pin = a.pin;
    if (a.config != NULL) {
        if (gw_config_load(a.config, &cfg, err, sizeof(err)) != 0) {
            pki_err("%s", err);
            goto out;
        }
        if (module == NULL)
            module = cfg->hsm_module;
        if (pin == NULL)
            pin = cfg->hsm_pin;
    }
    hsm_set_logger(pki_hsm_log);
    if (hsm_ctx_new(&ctx, module, pin, err, sizeof(err)) != 0) {
        pki_err("%s", err);
        goto out;
    }
    switch (cmd->sub) {
    case SUB_KEYGEN:
        rc = do_keygen(ctx, &a);
        break;
    case SUB_CSR:
        rc = do_csr(ctx, &a);
        break;
    default:
        rc = do_issue(ctx, cmd, &a);
        break;
    }
out:
    hsm_ctx_free(ctx);
    ctx = NULL;
    gw_config_free(cfg);
    cfg = NULL;
    return rc;
}

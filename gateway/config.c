/* config.c - the YAML configuration file, parsed strictly into the plain structs of config.h.
 *
 * The text goes through libyaml twice. The event parser comes first, because only its events still
 * show what the loaded document hides: aliases (already resolved into shared nodes) and a second
 * document (silently left unread). It also finds every syntax error, with its line. The document
 * loader then builds the node tree, whose nodes carry the line of every key and value, and the walk
 * below reads only the shapes it expects: it never recurses into an arbitrary node. The event pass
 * also caps nesting, which bounds libyaml's own work on hostile input (see yaml_prescan).
 *
 * Relative paths in the file are taken from the directory of the name given to gw_config_parse
 * (the file's path for gw_config_load), made absolute with the working directory if need be.
 *
 * Every mapping is first collected into one slot per known key, which is where unknown keys, keys
 * that are not scalars and duplicate keys are refused; the values are then checked key by key.
 * The first error wins, and every error names file:line, so the operator can go straight to it.
 */
#include "gateway/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

/* A configuration file is a few kilobytes; a cap keeps a wrong path (a log, a disk image) from being
 * slurped whole into memory before the first syntax error. */
#define GW_CONFIG_MAX_BYTES (1024u * 1024u)
/* The deepest valid configuration has four levels (listeners, a listener, its backends). */
#define GW_CONFIG_MAX_DEPTH 16
#define GW_DAY_MS 86400000u
/* Two descriptors per connection (client and backend) stay well under any nr_open we will meet. */
#define GW_MAX_CONNECTIONS 1000000u
#define GW_MAX_WORKERS 256u
#define GW_NAME_MAX 64u

struct cfg_ctx {
    const char *name;           /* the file name used in messages */
    char *dir;                  /* absolute directory of the file, computed when first needed */
    yaml_document_t *doc;
    struct gw_config *cfg;
    char *err;
    size_t errlen;
    bool failed;
};

/* One slot per known key of a mapping: the value node and the line of the key. */
struct keyslot {
    const yaml_node_t *val;
    int line;
};

/* A value quoted for a message: control characters escaped (they would garble a log line) and long
 * values cut, since the message has to fit an error buffer of a few hundred bytes. */
struct qbuf {
    char s[96];
};

static void cfg_fail(struct cfg_ctx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error only: later ones are usually consequences of it. */
static void cfg_fail(struct cfg_ctx *c, int line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (c->failed)
        return;
    c->failed = true;
    if (c->err == NULL || c->errlen == 0)
        return;
    if (line > 0)
        n = snprintf(c->err, c->errlen, "%s:%d: ", c->name, line);
    else
        n = snprintf(c->err, c->errlen, "%s: ", c->name);
    if (n < 0 || (size_t)n >= c->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static const char *quote(struct qbuf *q, const unsigned char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* Room kept at the end for an escaped byte, the closing quote, "..." and the NUL. */
    const size_t limit = sizeof(q->s) - 4 - 1 - 3 - 1;
    size_t o = 0, i;

    q->s[o++] = '"';
    for (i = 0; i < len && o <= limit; i++) {
        unsigned char ch = s[i];
        if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') {
            q->s[o++] = '\\';
            q->s[o++] = 'x';
            q->s[o++] = hex[ch >> 4];
            q->s[o++] = hex[ch & 0xf];
        } else {
            q->s[o++] = (char)ch;
        }
    }
    if (i < len) {
        /* Not half a UTF-8 character before the "..." (libyaml has checked the encoding). */
        size_t j = o;
        while (j > 1 && ((unsigned char)q->s[j - 1] & 0xc0) == 0x80)
            j--;
        if (j > 1 && (unsigned char)q->s[j - 1] >= 0xc0) {
            unsigned char lead = (unsigned char)q->s[j - 1];
            size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
            if (o - (j - 1) < need)
                o = j - 1;
        }
    }
    q->s[o++] = '"';
    if (i < len) {
        memcpy(q->s + o, "...", 3);
        o += 3;
    }
    q->s[o] = '\0';
    return q->s;
}

static const char *quote_node(struct qbuf *q, const yaml_node_t *n)
{
    return quote(q, n->data.scalar.value, n->data.scalar.length);
}

static int mark_line(yaml_mark_t m)
{
    return m.line >= (size_t)INT_MAX ? INT_MAX : (int)m.line + 1;
}

static int node_line(const yaml_node_t *n)
{
    return mark_line(n->start_mark);
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a sequence";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static bool scalar_eq(const yaml_node_t *n, const char *s)
{
    size_t len = strlen(s);
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
           memcmp(n->data.scalar.value, s, len) == 0;
}

/* YAML 1.1's spellings of null, which only a plain (unquoted) scalar can have. */
static bool scalar_is_null(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (n->data.scalar.length == 0 || scalar_eq(n, "~") || scalar_eq(n, "null") ||
            scalar_eq(n, "Null") || scalar_eq(n, "NULL"));
}

static char *cfg_strdup(struct cfg_ctx *c, const char *s, int line)
{
    char *d = strdup(s);
    if (d == NULL)
        cfg_fail(c, line, "out of memory");
    return d;
}

static bool has_control(const yaml_node_t *n)
{
    for (size_t i = 0; i < n->data.scalar.length; i++) {
        unsigned char ch = n->data.scalar.value[i];
        if (ch < 0x20 || ch == 0x7f)
            return true;
    }
    return false;
}

/* The text of a scalar that must be a non-empty string. Control characters (a NUL from a "\0"
 * escape included) are refused: they have no business in a path, a name or an address, and a NUL
 * would silently cut the value short. The pointer stays valid while the document lives. */
static int get_string(struct cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                      const char **out)
{
    if (n->type != YAML_SCALAR_NODE) {
        cfg_fail(c, node_line(n), "%s%s must be a string, not %s", where, key, node_kind(n));
        return -1;
    }
    if (scalar_is_null(n)) {
        cfg_fail(c, node_line(n), "%s%s has no value", where, key);
        return -1;
    }
    if (n->data.scalar.length == 0) {
        cfg_fail(c, node_line(n), "%s%s must not be empty", where, key);
        return -1;
    }
    if (has_control(n)) {
        struct qbuf q;
        cfg_fail(c, node_line(n), "%s%s must not contain control characters: %s", where, key,
                 quote_node(&q, n));
        return -1;
    }
    *out = (const char *)n->data.scalar.value;
    return 0;
}

/* Digits only, then strtoul: strtoul alone would take blanks, a sign and wrap "-1" round. */
static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long v;
    char *end = NULL;
    size_t n = strlen(s);

    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int get_uint(struct cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                    unsigned min, unsigned max, unsigned *out)
{
    const char *s;
    unsigned long v;
    struct qbuf q;

    if (get_string(c, where, key, n, &s) < 0)
        return -1;
    if (parse_uint(s, ULONG_MAX, &v) < 0 || v < min || v > max) {
        cfg_fail(c, node_line(n), "%s%s must be a number from %u to %u, not %s", where, key, min, max,
                 quote_node(&q, n));
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* Timeouts of zero would fire at once, and a day or more is a typo for something else. */
static int get_duration(struct cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                        unsigned *out)
{
    const char *s;
    unsigned ms;
    struct qbuf q;

    if (get_string(c, where, key, n, &s) < 0)
        return -1;
    if (gw_duration_parse(s, &ms) < 0) {
        cfg_fail(c, node_line(n), "%s%s must be a duration such as 250ms, 10s, 5m or 1h, not %s",
                 where, key, quote_node(&q, n));
        return -1;
    }
    if (ms == 0 || ms >= GW_DAY_MS) {
        cfg_fail(c, node_line(n), "%s%s must be more than 0 and less than a day, not %s", where, key,
                 quote_node(&q, n));
        return -1;
    }
    *out = ms;
    return 0;
}

/* One of a few words; the message lists them as "a, b or c". */
static int get_enum(struct cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                    const char *const names[], const int values[], size_t count, int *out)
{
    const char *s;
    char list[128];
    size_t o = 0;
    struct qbuf q;

    if (get_string(c, where, key, n, &s) < 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = values[i];
            return 0;
        }
    }
    list[0] = '\0';
    for (size_t i = 0; i < count && o < sizeof(list); i++) {
        const char *sep = i == 0 ? "" : i + 1 == count ? " or " : ", ";
        int w = snprintf(list + o, sizeof(list) - o, "%s%s", sep, names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    cfg_fail(c, node_line(n), "%s%s must be %s, not %s", where, key, list, quote_node(&q, n));
    return -1;
}

/* The absolute directory of the configuration file. Purely lexical: the files it names need not
 * exist yet ("hsmgate check" reports those later, with their own line). */
static const char *cfg_dir(struct cfg_ctx *c, int line)
{
    const char *slash;
    char *cwd = NULL;
    size_t dlen;

    if (c->dir != NULL)
        return c->dir;
    slash = strrchr(c->name, '/');
    dlen = slash == NULL ? 0 : (size_t)(slash - c->name);
    if (c->name[0] == '/') {
        c->dir = dlen == 0 ? strdup("/") : strndup(c->name, dlen);
    } else {
        cwd = getcwd(NULL, 0);
        if (cwd == NULL) {
            cfg_fail(c, line, "cannot resolve a relative path: getcwd: %s", strerror(errno));
            return NULL;
        }
        if (dlen == 0) {
            c->dir = cwd;
            cwd = NULL;
        } else if (asprintf(&c->dir, "%s/%.*s", strcmp(cwd, "/") == 0 ? "" : cwd, (int)dlen,
                            c->name) < 0) {
            c->dir = NULL;
        }
        free(cwd);
        cwd = NULL;
    }
    if (c->dir == NULL)
        cfg_fail(c, line, "out of memory");
    return c->dir;
}

/* Drops "." components and repeated slashes, in place. ".." stays: behind a symbolic link it does
 * not mean the lexical parent, and keeping it is never wrong. */
static void path_clean(char *p)
{
    char *r = p, *w = p;

    while (*r != '\0') {
        if (r[0] == '/' && (r[1] == '/' || (r[1] == '.' && (r[2] == '/' || r[2] == '\0')))) {
            r += r[1] == '/' ? 1 : 2;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
    if (p[0] == '\0') {
        p[0] = '/';
        p[1] = '\0';
    }
}

/* A file path, relative ones taken from the configuration file's directory (not the working
 * directory, which differs between "hsmgate check" in a shell and the service manager). */
static int resolve_path(struct cfg_ctx *c, const char *path, int line, char **out)
{
    const char *dir;
    char *res = NULL;

    if (path[0] == '/') {
        *out = cfg_strdup(c, path, line);
        return *out == NULL ? -1 : 0;
    }
    dir = cfg_dir(c, line);
    if (dir == NULL)
        return -1;
    if (asprintf(&res, "%s/%s", dir, path) < 0) {
        cfg_fail(c, line, "out of memory");
        return -1;
    }
    path_clean(res);
    *out = res;
    return 0;
}

static int get_path(struct cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                    char **out)
{
    const char *s;

    if (get_string(c, where, key, n, &s) < 0)
        return -1;
    return resolve_path(c, s, node_line(n), out);
}

/* Checks that node is a mapping, then files each value under its key's index in keys[]. */
static int map_collect(struct cfg_ctx *c, const yaml_node_t *map, const char *where,
                       const char *const keys[], size_t nkeys, struct keyslot slots[])
{
    memset(slots, 0, nkeys * sizeof(*slots));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        size_t i;
        struct qbuf q;

        if (k == NULL || v == NULL) {
            cfg_fail(c, node_line(map), "%sbroken YAML document", where);
            return -1;
        }
        if (k->type != YAML_SCALAR_NODE) {
            cfg_fail(c, node_line(k), "%skeys must be strings, not %s", where, node_kind(k));
            return -1;
        }
        for (i = 0; i < nkeys; i++)
            if (scalar_eq(k, keys[i]))
                break;
        if (i == nkeys) {
            char list[256];
            size_t o = 0;
            list[0] = '\0';
            for (size_t j = 0; j < nkeys && o < sizeof(list); j++) {
                int w = snprintf(list + o, sizeof(list) - o, "%s%s", j == 0 ? "" : ", ", keys[j]);
                if (w < 0)
                    break;
                o += (size_t)w;
            }
            cfg_fail(c, node_line(k), "%sunknown key %s (valid: %s)", where, quote_node(&q, k), list);
            return -1;
        }
        if (slots[i].val != NULL) {
            cfg_fail(c, node_line(k), "%sduplicate key \"%s\" (first at line %d)", where, keys[i],
                     slots[i].line);
            return -1;
        }
        slots[i].val = v;
        slots[i].line = node_line(k);
    }
    return 0;
}

static bool addr_is_wildcard(const struct gw_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->ss.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
    return false;
}

static unsigned addr_port(const struct gw_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* gw_addr_parse, with the reason for a refusal, for the configuration's messages. */
static int addr_parse(const char *text, struct gw_addr *out, const char **why)
{
    struct gw_addr a;
    char host[64];
    const char *colon, *hs, *he;
    unsigned long port;
    bool v6 = false;
    char ntop[INET6_ADDRSTRLEN];

    memset(&a, 0, sizeof(a));
    if (text == NULL || text[0] == '\0') {
        *why = "empty address";
        return -1;
    }
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL) {
            *why = "missing ']'";
            return -1;
        }
        if (close[1] != ':') {
            *why = "missing port after ']'";
            return -1;
        }
        hs = text + 1;
        he = close;
        colon = close + 1;
        v6 = true;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) {
            *why = "missing port";
            return -1;
        }
        hs = text;
        he = colon;
        if (memchr(hs, ':', (size_t)(he - hs)) != NULL) {
            *why = "IPv6 addresses must be in brackets, as in [::1]:9444";
            return -1;
        }
    }
    if (he == hs) {
        *why = "missing host";
        return -1;
    }
    if ((size_t)(he - hs) >= sizeof(host)) {
        *why = "host too long";
        return -1;
    }
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    if (parse_uint(colon + 1, 65535, &port) < 0 || port == 0) {
        *why = "port must be a number from 1 to 65535";
        return -1;
    }

    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.ss;
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
            *why = "not a numeric IPv6 address";
            return -1;
        }
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        a.len = sizeof(*s6);
        if (inet_ntop(AF_INET6, &s6->sin6_addr, ntop, sizeof(ntop)) == NULL) {
            *why = "not a numeric IPv6 address";
            return -1;
        }
        snprintf(a.text, sizeof(a.text), "[%s]:%u", ntop, (unsigned)(uint16_t)port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a.ss;
        /* Only the two names operators write everywhere; anything else would need a resolver,
         * whose answer can change between "check" and "run". */
        const char *numeric = strcmp(host, "*") == 0           ? "0.0.0.0"
                              : strcmp(host, "localhost") == 0 ? "127.0.0.1"
                                                               : host;
        if (inet_pton(AF_INET, numeric, &s4->sin_addr) != 1) {
            *why = "not a numeric IPv4 address (host names are not resolved)";
            return -1;
        }
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        a.len = sizeof(*s4);
        if (inet_ntop(AF_INET, &s4->sin_addr, ntop, sizeof(ntop)) == NULL) {
            *why = "not a numeric IPv4 address";
            return -1;
        }
        snprintf(a.text, sizeof(a.text), "%s:%u", ntop, (unsigned)(uint16_t)port);
    }
    *out = a;
    return 0;
}

int gw_addr_parse(const char *text, struct gw_addr *out)
{
    const char *why = NULL;
    return addr_parse(text, out, &why);
}

int gw_duration_parse(const char *text, unsigned *ms_out)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t v = 0;
    const char *p = text;

    if (text == NULL || ms_out == NULL || *p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT_MAX)
            return -1;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].suffix) == 0) {
            if (v * units[i].ms > UINT_MAX)
                return -1;
            *ms_out = (unsigned)(v * units[i].ms);
            return 0;
        }
    }
    return -1;
}

/* hsm: { module, pin }. The pin is a source, never the PIN itself, and a refused value is not
 * echoed: it may well be the PIN. */
static int parse_hsm(struct cfg_ctx *c, const yaml_node_t *n)
{
    static const char *const keys[] = {"module", "pin"};
    struct keyslot s[2];
    struct gw_config *cfg = c->cfg;
    const char *v;

    if (n->type != YAML_MAPPING_NODE) {
        cfg_fail(c, node_line(n), "hsm must be a mapping (module, pin), not %s", node_kind(n));
        return -1;
    }
    if (map_collect(c, n, "hsm: ", keys, 2, s) < 0)
        return -1;
    if (s[0].val != NULL) {
        if (get_string(c, "hsm: ", "module", s[0].val, &v) < 0)
            return -1;
        cfg->hsm_module = cfg_strdup(c, v, s[0].line);
        if (cfg->hsm_module == NULL)
            return -1;
        cfg->hsm_module_line = s[0].line;
    }
    if (s[1].val != NULL) {
        const yaml_node_t *pn = s[1].val;
        if (pn->type != YAML_SCALAR_NODE || scalar_is_null(pn) || pn->data.scalar.length == 0 ||
            has_control(pn)) {
            cfg_fail(c, node_line(pn), "hsm: pin must be \"file:PATH\" or \"env:NAME\"");
            return -1;
        }
        v = (const char *)pn->data.scalar.value;
        if (strncmp(v, "file:", 5) == 0 && v[5] != '\0') {
            char *path = NULL;
            if (resolve_path(c, v + 5, s[1].line, &path) < 0)
                return -1;
            if (asprintf(&cfg->hsm_pin, "file:%s", path) < 0) {
                cfg->hsm_pin = NULL;
                free(path);
                path = NULL;
                cfg_fail(c, s[1].line, "out of memory");
                return -1;
            }
            free(path);
            path = NULL;
        } else if (strncmp(v, "env:", 4) == 0 && v[4] != '\0' &&
                   strspn(v + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") ==
                       strlen(v + 4) &&
                   !(v[4] >= '0' && v[4] <= '9')) {
            cfg->hsm_pin = cfg_strdup(c, v, s[1].line);
            if (cfg->hsm_pin == NULL)
                return -1;
        } else {
            cfg_fail(c, node_line(pn),
                     "hsm: pin must be \"file:PATH\" or \"env:NAME\" (the PIN itself does not "
                     "belong in the configuration)");
            return -1;
        }
        cfg->hsm_pin_line = s[1].line;
    }
    return 0;
}

static int parse_log(struct cfg_ctx *c, const yaml_node_t *n)
{
    static const char *const keys[] = {"level", "access_log"};
    static const char *const levels[] = {"error", "warning", "info", "debug"};
    static const int lv[] = {0, 1, 2, 3};
    struct keyslot s[2];
    struct gw_config *cfg = c->cfg;
    int level;

    if (n->type != YAML_MAPPING_NODE) {
        cfg_fail(c, node_line(n), "log must be a mapping (level, access_log), not %s", node_kind(n));
        return -1;
    }
    if (map_collect(c, n, "log: ", keys, 2, s) < 0)
        return -1;
    if (s[0].val != NULL) {
        if (get_enum(c, "log: ", "level", s[0].val, levels, lv, 4, &level) < 0)
            return -1;
        free(cfg->log_level);
        cfg->log_level = cfg_strdup(c, levels[level], s[0].line);
        if (cfg->log_level == NULL)
            return -1;
    }
    if (s[1].val != NULL) {
        const yaml_node_t *an = s[1].val;
        const char *v;
        free(cfg->access_log);
        cfg->access_log = NULL;
        /* "off", or YAML's false written plainly, turns the access log off. */
        if (scalar_eq(an, "off") ||
            (an->type == YAML_SCALAR_NODE && an->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
             (scalar_eq(an, "false") || scalar_eq(an, "False") || scalar_eq(an, "FALSE"))))
            return 0;
        if (get_string(c, "log: ", "access_log", an, &v) < 0)
            return -1;
        if (strcmp(v, "-") == 0)
            cfg->access_log = cfg_strdup(c, v, s[1].line);
        else
            (void)resolve_path(c, v, node_line(an), &cfg->access_log);
        if (cfg->access_log == NULL)
            return -1;
    }
    return 0;
}

enum {
    LK_NAME, LK_TYPE, LK_BIND, LK_AUTH, LK_CERTIFICATE, LK_KEY, LK_CLIENT_CA, LK_BACKENDS,
    LK_MIN_TLS, LK_MAX_TLS, LK_CIPHERS, LK_VERIFY_DEPTH, LK_HANDSHAKE_TIMEOUT, LK_IDLE_TIMEOUT,
    LK_CONNECT_TIMEOUT, LK_MAX_CONNECTIONS, LK_COUNT
};

static const char *const listener_keys[LK_COUNT] = {
    "name", "type", "bind", "auth", "certificate", "key", "client_ca", "backends",
    "min_tls", "max_tls", "ciphers", "verify_depth", "handshake_timeout", "idle_timeout",
    "connect_timeout", "max_connections",
};

static int parse_backends(struct cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                          const struct keyslot *s)
{
    const yaml_node_t *n = s->val;
    size_t count;

    l->backends_line = s->line;
    if (n->type != YAML_SEQUENCE_NODE) {
        cfg_fail(c, node_line(n), "%sbackends must be a sequence of \"host:port\", not %s", where,
                 node_kind(n));
        return -1;
    }
    count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0) {
        cfg_fail(c, s->line, "%sbackends must not be empty", where);
        return -1;
    }
    l->backends = calloc(count, sizeof(*l->backends));
    if (l->backends == NULL) {
        cfg_fail(c, s->line, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        struct gw_backend_cfg *b = &l->backends[i];
        const char *v, *why = NULL;
        struct qbuf q;

        if (item == NULL) {
            cfg_fail(c, s->line, "%sbroken YAML document", where);
            return -1;
        }
        if (get_string(c, where, "backend", item, &v) < 0)
            return -1;
        if (addr_parse(v, &b->addr, &why) < 0) {
            cfg_fail(c, node_line(item), "%sbackend %s: %s", where, quote_node(&q, item), why);
            return -1;
        }
        if (addr_is_wildcard(&b->addr)) {
            cfg_fail(c, node_line(item), "%sbackend %s: the wildcard address cannot be connected to",
                     where, quote_node(&q, item));
            return -1;
        }
        b->line = node_line(item);
        l->nbackends++;
    }
    return 0;
}

static bool name_ok(const unsigned char *v, size_t len)
{
    if (len == 0 || len > GW_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = v[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

/* The listener's name when it has a valid one, found before the mapping is checked, so that even
 * the first message about the listener (an unknown key above its "name:") can say which it is. */
static const char *peek_name(struct cfg_ctx *c, const yaml_node_t *map, char *buf, size_t len)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        if (k != NULL && v != NULL && scalar_eq(k, "name") && v->type == YAML_SCALAR_NODE &&
            name_ok(v->data.scalar.value, v->data.scalar.length)) {
            snprintf(buf, len, "listener \"%s\": ", (const char *)v->data.scalar.value);
            return buf;
        }
    }
    return NULL;
}

/* A listener's name is read before its other settings so that every later message can name it. */
static int parse_listener_name(struct cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                               const struct keyslot *s)
{
    const char *v;
    struct qbuf q;

    if (get_string(c, where, "name", s->val, &v) < 0)
        return -1;
    if (!name_ok((const unsigned char *)v, strlen(v))) {
        cfg_fail(c, node_line(s->val),
                 "%sname must be 1 to 64 characters from A-Z, a-z, 0-9, '_', '.', '-', not %s", where,
                 quote_node(&q, s->val));
        return -1;
    }
    l->name = cfg_strdup(c, v, s->line);
    if (l->name == NULL)
        return -1;
    l->name_line = s->line;
    return 0;
}

static int parse_listener_values(struct cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                                 const struct keyslot s[])
{
    static const char *const types[] = {"tcp", "https"};
    static const int tv[] = {GW_LISTENER_TCP, GW_LISTENER_HTTPS};
    static const char *const auths[] = {"one-way", "two-way", "optional"};
    static const int av[] = {GW_AUTH_ONE_WAY, GW_AUTH_TWO_WAY, GW_AUTH_OPTIONAL};
    static const char *const tlss[] = {"1.2", "1.3"};
    static const int tlv[] = {GW_TLS_1_2, GW_TLS_1_3};
    const char *v, *why = NULL;
    struct qbuf q;
    int e;

    if (s[LK_TYPE].val != NULL) {
        if (get_enum(c, where, "type", s[LK_TYPE].val, types, tv, 2, &e) < 0)
            return -1;
        l->type = (enum gw_ltype)e;
        l->type_line = s[LK_TYPE].line;
    }
    if (s[LK_BIND].val != NULL) {
        if (get_string(c, where, "bind", s[LK_BIND].val, &v) < 0)
            return -1;
        if (addr_parse(v, &l->bind, &why) < 0) {
            cfg_fail(c, node_line(s[LK_BIND].val), "%sbind %s: %s", where,
                     quote_node(&q, s[LK_BIND].val), why);
            return -1;
        }
        l->bind_line = s[LK_BIND].line;
    }
    if (s[LK_AUTH].val != NULL) {
        if (get_enum(c, where, "auth", s[LK_AUTH].val, auths, av, 3, &e) < 0)
            return -1;
        l->auth = (enum gw_auth)e;
        l->auth_line = s[LK_AUTH].line;
    }
    if (s[LK_CERTIFICATE].val != NULL) {
        if (get_path(c, where, "certificate", s[LK_CERTIFICATE].val, &l->certificate) < 0)
            return -1;
        l->certificate_line = s[LK_CERTIFICATE].line;
    }
    if (s[LK_KEY].val != NULL) {
        if (get_string(c, where, "key", s[LK_KEY].val, &v) < 0)
            return -1;
        /* RFC 7512 3: the scheme name is case-insensitive; a URI is kept exactly as written. */
        if (strncasecmp(v, "pkcs11:", 7) == 0)
            l->key = cfg_strdup(c, v, s[LK_KEY].line);
        else
            (void)resolve_path(c, v, s[LK_KEY].line, &l->key);
        if (l->key == NULL)
            return -1;
        l->key_line = s[LK_KEY].line;
    }
    if (s[LK_CLIENT_CA].val != NULL) {
        if (get_path(c, where, "client_ca", s[LK_CLIENT_CA].val, &l->client_ca) < 0)
            return -1;
        l->client_ca_line = s[LK_CLIENT_CA].line;
    }
    if (s[LK_BACKENDS].val != NULL && parse_backends(c, where, l, &s[LK_BACKENDS]) < 0)
        return -1;
    if (s[LK_MIN_TLS].val != NULL) {
        if (get_enum(c, where, "min_tls", s[LK_MIN_TLS].val, tlss, tlv, 2, &e) < 0)
            return -1;
        l->min_tls = (enum gw_tls_version)e;
    }
    if (s[LK_MAX_TLS].val != NULL) {
        if (get_enum(c, where, "max_tls", s[LK_MAX_TLS].val, tlss, tlv, 2, &e) < 0)
            return -1;
        l->max_tls = (enum gw_tls_version)e;
    }
    if (s[LK_CIPHERS].val != NULL) {
        if (get_string(c, where, "ciphers", s[LK_CIPHERS].val, &v) < 0)
            return -1;
        l->ciphers = cfg_strdup(c, v, s[LK_CIPHERS].line);
        if (l->ciphers == NULL)
            return -1;
    }
    if (s[LK_VERIFY_DEPTH].val != NULL &&
        get_uint(c, where, "verify_depth", s[LK_VERIFY_DEPTH].val, 1, 16, &l->verify_depth) < 0)
        return -1;
    if (s[LK_HANDSHAKE_TIMEOUT].val != NULL &&
        get_duration(c, where, "handshake_timeout", s[LK_HANDSHAKE_TIMEOUT].val,
                     &l->handshake_timeout_ms) < 0)
        return -1;
    if (s[LK_IDLE_TIMEOUT].val != NULL &&
        get_duration(c, where, "idle_timeout", s[LK_IDLE_TIMEOUT].val, &l->idle_timeout_ms) < 0)
        return -1;
    if (s[LK_CONNECT_TIMEOUT].val != NULL &&
        get_duration(c, where, "connect_timeout", s[LK_CONNECT_TIMEOUT].val,
                     &l->connect_timeout_ms) < 0)
        return -1;
    if (s[LK_MAX_CONNECTIONS].val != NULL &&
        get_uint(c, where, "max_connections", s[LK_MAX_CONNECTIONS].val, 0, GW_MAX_CONNECTIONS,
                 &l->max_connections) < 0)
        return -1;
    return 0;
}

/* Whether two binds could not both be listening: the same address, or the same port under a
 * wildcard of the same family (Linux refuses that even with SO_REUSEADDR). Across families it
 * depends on IPV6_V6ONLY, which is the data plane's to choose. */
static bool binds_clash(const struct gw_addr *a, const struct gw_addr *b)
{
    if (strcmp(a->text, b->text) == 0)
        return true;
    return a->ss.ss_family == b->ss.ss_family && addr_port(a) == addr_port(b) &&
           (addr_is_wildcard(a) || addr_is_wildcard(b));
}

/* Listener number idx (0-based) of the sequence; the ones before it are complete. */
static int parse_listener(struct cfg_ctx *c, const yaml_node_t *n, size_t idx)
{
    struct gw_listener_cfg *l = &c->cfg->listeners[idx];
    struct keyslot s[LK_COUNT];
    char where[96];
    const char *missing = NULL;

    snprintf(where, sizeof(where), "listener #%zu: ", idx + 1);
    l->line = node_line(n);
    /* Defaults: see config.h. Lines of absent settings point at the listener itself. */
    l->type = GW_LISTENER_TCP;
    l->auth = GW_AUTH_ONE_WAY;
    l->min_tls = GW_TLS_1_2;
    l->max_tls = GW_TLS_1_3;
    l->verify_depth = 4;
    l->handshake_timeout_ms = 10000;
    l->idle_timeout_ms = 300000;
    l->connect_timeout_ms = 5000;
    l->max_connections = 0;
    l->name_line = l->type_line = l->bind_line = l->auth_line = l->line;
    l->certificate_line = l->key_line = l->client_ca_line = l->backends_line = l->line;

    if (n->type != YAML_MAPPING_NODE) {
        cfg_fail(c, node_line(n), "listener #%zu must be a mapping, not %s", idx + 1, node_kind(n));
        return -1;
    }
    (void)peek_name(c, n, where, sizeof(where));
    if (map_collect(c, n, where, listener_keys, LK_COUNT, s) < 0)
        return -1;
    if (s[LK_NAME].val == NULL) {
        cfg_fail(c, l->line, "%sname is required", where);
        return -1;
    }
    if (parse_listener_name(c, where, l, &s[LK_NAME]) < 0)
        return -1;
    snprintf(where, sizeof(where), "listener \"%s\": ", l->name);
    for (size_t i = 0; i < idx; i++) {
        if (strcmp(c->cfg->listeners[i].name, l->name) == 0) {
            cfg_fail(c, l->name_line, "duplicate listener name \"%s\" (first at line %d)", l->name,
                     c->cfg->listeners[i].name_line);
            return -1;
        }
    }
    if (parse_listener_values(c, where, l, s) < 0)
        return -1;

    if (s[LK_BIND].val == NULL)
        missing = "bind";
    else if (s[LK_CERTIFICATE].val == NULL)
        missing = "certificate";
    else if (s[LK_KEY].val == NULL)
        missing = "key";
    else if (s[LK_BACKENDS].val == NULL)
        missing = "backends";
    if (missing != NULL) {
        cfg_fail(c, l->line, "%s%s is required", where, missing);
        return -1;
    }
    if (l->auth != GW_AUTH_ONE_WAY && l->client_ca == NULL) {
        cfg_fail(c, l->auth_line, "%sclient_ca is required when auth is %s", where,
                 l->auth == GW_AUTH_TWO_WAY ? "two-way" : "optional");
        return -1;
    }
    if (l->min_tls > l->max_tls) {
        cfg_fail(c, s[LK_MAX_TLS].val != NULL ? s[LK_MAX_TLS].line : s[LK_MIN_TLS].line,
                 "%smin_tls 1.%d is above max_tls 1.%d", where, (int)l->min_tls % 10,
                 (int)l->max_tls % 10);
        return -1;
    }
    for (size_t i = 0; i < idx; i++) {
        const struct gw_listener_cfg *o = &c->cfg->listeners[i];
        if (binds_clash(&o->bind, &l->bind)) {
            cfg_fail(c, l->bind_line, "%sbind %s %s listener \"%s\" (line %d)", where, l->bind.text,
                     strcmp(o->bind.text, l->bind.text) == 0 ? "is already used by"
                                                              : "overlaps the bind of",
                     o->name, o->bind_line);
            return -1;
        }
    }
    return 0;
}

static int parse_listeners(struct cfg_ctx *c, const struct keyslot *s)
{
    const yaml_node_t *n = s->val;
    size_t count;

    if (n->type != YAML_SEQUENCE_NODE) {
        cfg_fail(c, node_line(n), "listeners must be a sequence of listeners, not %s", node_kind(n));
        return -1;
    }
    count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0) {
        cfg_fail(c, s->line, "listeners must not be empty");
        return -1;
    }
    c->cfg->listeners = calloc(count, sizeof(*c->cfg->listeners));
    if (c->cfg->listeners == NULL) {
        cfg_fail(c, s->line, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        if (item == NULL) {
            cfg_fail(c, s->line, "broken YAML document");
            return -1;
        }
        /* Counted first, so that gw_config_free also frees a listener that failed half-way. */
        c->cfg->nlisteners++;
        if (parse_listener(c, item, i) < 0)
            return -1;
    }
    return 0;
}

static int parse_top(struct cfg_ctx *c, const yaml_node_t *root)
{
    static const char *const keys[] = {"hsm", "log", "workers", "max_connections", "drain_timeout",
                                       "pid_file", "listeners"};
    enum { TK_HSM, TK_LOG, TK_WORKERS, TK_MAXCONN, TK_DRAIN, TK_PID, TK_LISTENERS, TK_COUNT };
    struct keyslot s[TK_COUNT];
    struct gw_config *cfg = c->cfg;

    if (root->type != YAML_MAPPING_NODE) {
        cfg_fail(c, node_line(root), "the configuration must be a mapping of settings, not %s",
                 node_kind(root));
        return -1;
    }
    if (map_collect(c, root, "", keys, TK_COUNT, s) < 0)
        return -1;
    if (s[TK_HSM].val != NULL && parse_hsm(c, s[TK_HSM].val) < 0)
        return -1;
    if (s[TK_LOG].val != NULL && parse_log(c, s[TK_LOG].val) < 0)
        return -1;
    if (s[TK_WORKERS].val != NULL &&
        get_uint(c, "", "workers", s[TK_WORKERS].val, 0, GW_MAX_WORKERS, &cfg->workers) < 0)
        return -1;
    if (s[TK_MAXCONN].val != NULL && get_uint(c, "", "max_connections", s[TK_MAXCONN].val, 1,
                                              GW_MAX_CONNECTIONS, &cfg->max_connections) < 0)
        return -1;
    if (s[TK_DRAIN].val != NULL &&
        get_duration(c, "", "drain_timeout", s[TK_DRAIN].val, &cfg->drain_timeout_ms) < 0)
        return -1;
    if (s[TK_PID].val != NULL && get_path(c, "", "pid_file", s[TK_PID].val, &cfg->pid_file) < 0)
        return -1;
    if (s[TK_LISTENERS].val == NULL) {
        cfg_fail(c, 0, "no listeners: at least one is required under \"listeners\"");
        return -1;
    }
    return parse_listeners(c, &s[TK_LISTENERS]);
}

static void report_yaml_error(struct cfg_ctx *c, const yaml_parser_t *p, const char *buf, size_t len)
{
    int line;

    if (p->error == YAML_MEMORY_ERROR) {
        cfg_fail(c, 0, "out of memory");
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* The reader knows a byte offset only. */
        size_t end = p->problem_offset < len ? p->problem_offset : len;
        line = 1;
        for (size_t i = 0; i < end; i++)
            if (buf[i] == '\n' && line < INT_MAX)
                line++;
        cfg_fail(c, line, "YAML syntax error: %s", p->problem != NULL ? p->problem : "unreadable input");
        return;
    }
    line = mark_line(p->problem_mark);
    if (p->context != NULL)
        cfg_fail(c, line, "YAML syntax error: %s (%s at line %d)",
                 p->problem != NULL ? p->problem : "invalid YAML", p->context,
                 mark_line(p->context_mark));
    else
        cfg_fail(c, line, "YAML syntax error: %s", p->problem != NULL ? p->problem : "invalid YAML");
}

/* The event pass: syntax errors, aliases, more than one document, and nesting. Returns 1 for an
 * empty stream.
 *
 * The nesting cap is not about our walk (which never recurses) but about libyaml: its scanner
 * rechecks every open flow level for each token, so 1 MiB of "[" costs it minutes of CPU. Stopping
 * at the first event past the cap bounds that work, and the loader then only ever sees shallow text. */
static int yaml_prescan(struct cfg_ctx *c, const char *buf, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int docs = 0, depth = 0, rc = -1;

    if (!yaml_parser_initialize(&p)) {
        cfg_fail(c, 0, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    for (;;) {
        yaml_event_type_t type;
        if (!yaml_parser_parse(&p, &ev)) {
            report_yaml_error(c, &p, buf, len);
            goto out;
        }
        type = ev.type;
        if (type == YAML_ALIAS_EVENT) {
            cfg_fail(c, mark_line(ev.start_mark), "YAML aliases (*name) are not supported");
            yaml_event_delete(&ev);
            goto out;
        }
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > GW_CONFIG_MAX_DEPTH) {
                cfg_fail(c, mark_line(ev.start_mark),
                         "nested more than %d levels deep: this is not a configuration file",
                         GW_CONFIG_MAX_DEPTH);
                yaml_event_delete(&ev);
                goto out;
            }
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        if (type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            cfg_fail(c, mark_line(ev.start_mark), "only one YAML document is allowed");
            yaml_event_delete(&ev);
            goto out;
        }
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT)
            break;
    }
    rc = docs == 0 ? 1 : 0;
out:
    yaml_parser_delete(&p);
    return rc;
}

void gw_config_free(struct gw_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        struct gw_listener_cfg *l = &cfg->listeners[i];
        free(l->name);
        l->name = NULL;
        free(l->certificate);
        l->certificate = NULL;
        free(l->key);
        l->key = NULL;
        free(l->client_ca);
        l->client_ca = NULL;
        free(l->backends);
        l->backends = NULL;
        free(l->ciphers);
        l->ciphers = NULL;
    }
    free(cfg->listeners);
    cfg->listeners = NULL;
    free(cfg->path);
    cfg->path = NULL;
    free(cfg->hsm_module);
    cfg->hsm_module = NULL;
    free(cfg->hsm_pin);
    cfg->hsm_pin = NULL;
    free(cfg->log_level);
    cfg->log_level = NULL;
    free(cfg->access_log);
    cfg->access_log = NULL;
    free(cfg->pid_file);
    cfg->pid_file = NULL;
    free(cfg);
}

int gw_config_parse(const char *name, const char *buf, size_t len, struct gw_config **out,
                    char *err, size_t errlen)
{
    struct cfg_ctx c = {.name = name != NULL ? name : "(config)", .err = err, .errlen = errlen};
    yaml_parser_t parser;
    yaml_document_t doc;
    bool parser_ok = false, doc_ok = false;
    const yaml_node_t *root;
    int rc = -1, scan;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL)
        return -1;
    *out = NULL;
    if (buf == NULL && len > 0) {
        cfg_fail(&c, 0, "no input");
        goto out;
    }
    if (len > GW_CONFIG_MAX_BYTES) {
        cfg_fail(&c, 0, "larger than 1 MiB: this is not a configuration file");
        goto out;
    }
    scan = yaml_prescan(&c, buf != NULL ? buf : "", len);
    if (scan < 0)
        goto out;
    if (scan == 1) {
        cfg_fail(&c, 0, "empty configuration file");
        goto out;
    }

    if (!yaml_parser_initialize(&parser)) {
        cfg_fail(&c, 0, "out of memory");
        goto out;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        report_yaml_error(&c, &parser, buf, len);
        goto out;
    }
    doc_ok = true;
    c.doc = &doc;
    root = yaml_document_get_root_node(&doc);
    if (root == NULL || scalar_is_null(root)) {
        cfg_fail(&c, 0, "empty configuration file");
        goto out;
    }

    c.cfg = calloc(1, sizeof(*c.cfg));
    if (c.cfg == NULL) {
        cfg_fail(&c, 0, "out of memory");
        goto out;
    }
    c.cfg->max_connections = 10000;
    c.cfg->drain_timeout_ms = 30000;
    c.cfg->path = strdup(c.name);
    c.cfg->log_level = strdup("info");
    c.cfg->access_log = strdup("-");
    if (c.cfg->path == NULL || c.cfg->log_level == NULL || c.cfg->access_log == NULL) {
        cfg_fail(&c, 0, "out of memory");
        goto out;
    }
    if (parse_top(&c, root) < 0)
        goto out;
    *out = c.cfg;
    c.cfg = NULL;
    rc = 0;
out:
    gw_config_free(c.cfg);
    c.cfg = NULL;
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    free(c.dir);
    c.dir = NULL;
    /* Every failure path writes a message; this catches one that would not. */
    if (rc < 0 && !c.failed)
        cfg_fail(&c, 0, "invalid configuration");
    return rc;
}

int gw_config_load(const char *path, struct gw_config **out, char *err, size_t errlen)
{
    struct cfg_ctx c = {.name = path != NULL ? path : "(null)", .err = err, .errlen = errlen};
    char *buf = NULL;
    size_t len = 0;
    int fd = -1, rc = -1;

    if (out == NULL)
        return -1;
    *out = NULL;
    if (path == NULL) {
        cfg_fail(&c, 0, "no configuration file given");
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cfg_fail(&c, 0, "cannot open: %s", strerror(errno));
        goto out;
    }
    /* One byte over the cap tells a file at the cap from a larger one. */
    buf = malloc(GW_CONFIG_MAX_BYTES + 1);
    if (buf == NULL) {
        cfg_fail(&c, 0, "out of memory");
        goto out;
    }
    while (len < GW_CONFIG_MAX_BYTES + 1) {
        ssize_t r = read(fd, buf + len, GW_CONFIG_MAX_BYTES + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            cfg_fail(&c, 0, "cannot read: %s", strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (len > GW_CONFIG_MAX_BYTES) {
        cfg_fail(&c, 0, "larger than 1 MiB: this is not a configuration file");
        goto out;
    }
    rc = gw_config_parse(path, buf, len, out, err, errlen);
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    buf = NULL;
    return rc;
}

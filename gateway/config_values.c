/* config_values.c - the scalar values of the configuration file, and its error messages.
 *
 * Each gw_cfg_get_* takes a node of the document and either stores the value or records an error
 * naming the node's line and quoting the value as written (escaped and cut: see gw_cfg_quote).
 * gw_addr_parse and gw_duration_parse are also public (config.h), for the command line.
 */
#include "gateway/config_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Records the first error only: later ones are usually consequences of it. */
void gw_cfg_fail(struct gw_cfg_ctx *c, int line, const char *fmt, ...)
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

const char *gw_cfg_quote(struct gw_cfg_qbuf *q, const unsigned char *s, size_t len)
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

const char *gw_cfg_quote_node(struct gw_cfg_qbuf *q, const yaml_node_t *n)
{
    return gw_cfg_quote(q, n->data.scalar.value, n->data.scalar.length);
}

int gw_cfg_mark_line(yaml_mark_t m)
{
    return m.line >= (size_t)INT_MAX ? INT_MAX : (int)m.line + 1;
}

int gw_cfg_node_line(const yaml_node_t *n)
{
    return gw_cfg_mark_line(n->start_mark);
}

const char *gw_cfg_node_kind(const yaml_node_t *n)
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

bool gw_cfg_scalar_eq(const yaml_node_t *n, const char *s)
{
    size_t len = strlen(s);
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
           memcmp(n->data.scalar.value, s, len) == 0;
}

/* YAML 1.1's spellings of null, which only a plain (unquoted) scalar can have. */
bool gw_cfg_scalar_is_null(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (n->data.scalar.length == 0 || gw_cfg_scalar_eq(n, "~") ||
            gw_cfg_scalar_eq(n, "null") || gw_cfg_scalar_eq(n, "Null") ||
            gw_cfg_scalar_eq(n, "NULL"));
}

char *gw_cfg_strdup(struct gw_cfg_ctx *c, const char *s, int line)
{
    char *d = strdup(s);
    if (d == NULL)
        gw_cfg_fail(c, line, "out of memory");
    return d;
}

bool gw_cfg_has_control(const yaml_node_t *n)
{
    for (size_t i = 0; i < n->data.scalar.length; i++) {
        unsigned char ch = n->data.scalar.value[i];
        if (ch < 0x20 || ch == 0x7f)
            return true;
    }
    return false;
}

size_t gw_cfg_seq_count(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

const yaml_node_t *gw_cfg_seq_item(struct gw_cfg_ctx *c, const yaml_node_t *n, size_t i)
{
    const yaml_node_t *item = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
    if (item == NULL)
        gw_cfg_fail(c, gw_cfg_node_line(n), "broken YAML document");
    return item;
}

/* The text of a scalar that must be a non-empty string. Control characters (a NUL from a "\0"
 * escape included) are refused: they have no business in a path, a name or an address, and a NUL
 * would silently cut the value short. The pointer stays valid while the document lives. */
int gw_cfg_get_string(struct gw_cfg_ctx *c, const char *where, const char *key,
                      const yaml_node_t *n, const char **out)
{
    if (n->type != YAML_SCALAR_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%s%s must be a string, not %s", where, key,
                    gw_cfg_node_kind(n));
        return -1;
    }
    if (gw_cfg_scalar_is_null(n)) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%s%s has no value", where, key);
        return -1;
    }
    if (n->data.scalar.length == 0) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%s%s must not be empty", where, key);
        return -1;
    }
    if (gw_cfg_has_control(n)) {
        struct gw_cfg_qbuf q;
        gw_cfg_fail(c, gw_cfg_node_line(n), "%s%s must not contain control characters: %s", where,
                    key, gw_cfg_quote_node(&q, n));
        return -1;
    }
    *out = (const char *)n->data.scalar.value;
    return 0;
}

/* Digits only, then strtoul: strtoul alone would take blanks, a sign and wrap "-1" round. */
int gw_cfg_parse_uint(const char *s, unsigned long max, unsigned long *out)
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

int gw_cfg_get_uint(struct gw_cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                    unsigned min, unsigned max, unsigned *out)
{
    const char *s;
    unsigned long v;
    struct gw_cfg_qbuf q;

    if (gw_cfg_get_string(c, where, key, n, &s) < 0)
        return -1;
    if (gw_cfg_parse_uint(s, ULONG_MAX, &v) < 0 || v < min || v > max) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%s%s must be a number from %u to %u, not %s", where,
                    key, min, max, gw_cfg_quote_node(&q, n));
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* Timeouts of zero would fire at once, and a day or more is a typo for something else. */
int gw_cfg_get_duration(struct gw_cfg_ctx *c, const char *where, const char *key,
                        const yaml_node_t *n, unsigned *out)
{
    const char *s;
    unsigned ms;
    struct gw_cfg_qbuf q;

    if (gw_cfg_get_string(c, where, key, n, &s) < 0)
        return -1;
    if (gw_duration_parse(s, &ms) < 0) {
        gw_cfg_fail(c, gw_cfg_node_line(n),
                    "%s%s must be a duration such as 250ms, 10s, 5m or 1h, not %s", where, key,
                    gw_cfg_quote_node(&q, n));
        return -1;
    }
    if (ms == 0 || ms >= GW_DAY_MS) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%s%s must be more than 0 and less than a day, not %s",
                    where, key, gw_cfg_quote_node(&q, n));
        return -1;
    }
    *out = ms;
    return 0;
}

/* One of a few words; the message lists them as "a, b or c". */
int gw_cfg_get_enum(struct gw_cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                    const char *const names[], const int values[], size_t count, int *out)
{
    const char *s;
    char list[128];
    size_t o = 0;
    struct gw_cfg_qbuf q;

    if (gw_cfg_get_string(c, where, key, n, &s) < 0)
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
    gw_cfg_fail(c, gw_cfg_node_line(n), "%s%s must be %s, not %s", where, key, list,
                gw_cfg_quote_node(&q, n));
    return -1;
}


void gw_cfg_format_duration(unsigned ms, char *buf, size_t len)
{
    if (ms != 0 && ms % 3600000u == 0)
        snprintf(buf, len, "%uh", ms / 3600000u);
    else if (ms != 0 && ms % 60000u == 0)
        snprintf(buf, len, "%um", ms / 60000u);
    else if (ms != 0 && ms % 1000u == 0)
        snprintf(buf, len, "%us", ms / 1000u);
    else
        snprintf(buf, len, "%ums", ms);
}

/* YAML 1.1 has more spellings (yes, on, y...), which are as likely to be typos as intent. */
int gw_cfg_get_bool(struct gw_cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                    int *out)
{
    struct gw_cfg_qbuf q;

    if (n->type != YAML_SCALAR_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%s%s must be true or false, not %s", where, key,
                    gw_cfg_node_kind(n));
        return -1;
    }
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (gw_cfg_scalar_eq(n, "true") || gw_cfg_scalar_eq(n, "True") ||
            gw_cfg_scalar_eq(n, "TRUE")) {
            *out = 1;
            return 0;
        }
        if (gw_cfg_scalar_eq(n, "false") || gw_cfg_scalar_eq(n, "False") ||
            gw_cfg_scalar_eq(n, "FALSE")) {
            *out = 0;
            return 0;
        }
    }
    gw_cfg_fail(c, gw_cfg_node_line(n), "%s%s must be true or false, not %s", where, key,
                gw_cfg_quote_node(&q, n));
    return -1;
}

bool gw_cfg_is_off(const yaml_node_t *n)
{
    return gw_cfg_scalar_eq(n, "off") ||
           (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
            (gw_cfg_scalar_eq(n, "false") || gw_cfg_scalar_eq(n, "False") ||
             gw_cfg_scalar_eq(n, "FALSE")));
}

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" /
 * "`" / "|" / "~" / DIGIT / ALPHA. Anything else (a space, a colon, a non-ASCII byte) would let
 * a configured name break the header block it is written into. */
bool gw_cfg_header_name_ok(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > GW_HEADER_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL)))
            return false;
    }
    return true;
}

int gw_cfg_get_header_name(struct gw_cfg_ctx *c, const char *where, const char *key,
                           const yaml_node_t *n, const char **out)
{
    const char *s;
    struct gw_cfg_qbuf q;

    if (gw_cfg_get_string(c, where, key, n, &s) < 0)
        return -1;
    if (!gw_cfg_header_name_ok(s)) {
        gw_cfg_fail(c, gw_cfg_node_line(n),
                    "%s%s must be a header name of 1 to %u characters from A-Z, a-z, 0-9 and "
                    "!#$%%&'*+-.^_`|~ (RFC 9110 5.1), not %s",
                    where, key, GW_HEADER_NAME_MAX, gw_cfg_quote_node(&q, n));
        return -1;
    }
    *out = s;
    return 0;
}

bool gw_cfg_addr_is_wildcard(const struct gw_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->ss.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
    return false;
}

unsigned gw_cfg_addr_port(const struct gw_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* gw_addr_parse, with the reason for a refusal, for the configuration's messages. */
int gw_cfg_addr_parse(const char *text, struct gw_addr *out, const char **why)
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
    if (gw_cfg_parse_uint(colon + 1, 65535, &port) < 0 || port == 0) {
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
    return gw_cfg_addr_parse(text, out, &why);
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


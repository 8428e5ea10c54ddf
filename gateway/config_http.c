/* config_http.c - the settings of https listeners: the identity headers, strip_headers, and the
 * limits on requests and on the backend's answer.
 *
 * An https listener forwards the client's identity in request headers (RFC 9440 for the
 * certificate, de-facto X- names for the rest). Every name can be changed or turned off ("off" or
 * false); two settings may not share a name, since the backend could not tell which value is which.
 * Names are compared as the data plane strips them (http.h): case-insensitively (RFC 9110 5.1), and
 * with '_' equal to '-', which CGI-style backends merge.
 */
#include "gateway/config_int.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_IDENTITY_COUNT 10
#define GW_HEADER_BYTES_MIN 1024u
#define GW_HEADER_BYTES_MAX (1024u * 1024u)
#define GW_HEADERS_MAX 1000u

/* The identity_headers keys, their defaults (NULL: off unless configured), in struct order. */
static const struct {
    const char *key;
    const char *dflt;
} identity[GW_IDENTITY_COUNT] = {
    {"client_cert", "Client-Cert"},
    {"client_cert_chain", NULL},
    {"subject", "X-Client-Cert-Subject"},
    {"issuer", "X-Client-Cert-Issuer"},
    {"serial", "X-Client-Cert-Serial"},
    {"fingerprint", "X-Client-Cert-Fingerprint-SHA256"},
    {"not_after", "X-Client-Cert-Not-After"},
    {"verify", "X-Client-Verify"},
    {"forwarded_for", "X-Forwarded-For"},
    {"forwarded_proto", "X-Forwarded-Proto"},
};

/* The fields of h in the order of identity[]. */
static void identity_fields(struct gw_identity_headers *h, char **f[GW_IDENTITY_COUNT])
{
    f[0] = &h->client_cert;
    f[1] = &h->client_cert_chain;
    f[2] = &h->subject;
    f[3] = &h->issuer;
    f[4] = &h->serial;
    f[5] = &h->fingerprint;
    f[6] = &h->not_after;
    f[7] = &h->verify;
    f[8] = &h->forwarded_for;
    f[9] = &h->forwarded_proto;
}

/* Removing these would change how the request is framed or routed (RFC 9112 6.1-6.3, RFC 9110
 * 7.2): the backend would read a different request from the one the gateway checked. */
static const char *const unstrippable[] = {"Host", "Content-Length", "Transfer-Encoding"};

static bool name_eq(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char)(*a == '_' ? '-' : *a);
        unsigned char y = (unsigned char)(*b == '_' ? '-' : *b);
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
        if (x == '\0')
            return true;
    }
}

/* names[i]: the header of identity[i] (pointing into the document or at a default), NULL when off;
 * lines[i]: the line it was set on, 0 for a default. Fills l->headers from names. */
static int parse_identity(struct gw_cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                          const struct gw_cfg_keyslot *s)
{
    const char *keys[GW_IDENTITY_COUNT];
    const char *names[GW_IDENTITY_COUNT];
    int lines[GW_IDENTITY_COUNT];
    struct gw_cfg_keyslot hs[GW_IDENTITY_COUNT];
    char **fields[GW_IDENTITY_COUNT];
    char w2[160];

    for (size_t i = 0; i < GW_IDENTITY_COUNT; i++) {
        keys[i] = identity[i].key;
        names[i] = identity[i].dflt;
        lines[i] = 0;
    }
    if (s->val != NULL) {
        const yaml_node_t *n = s->val;
        if (n->type != YAML_MAPPING_NODE) {
            gw_cfg_fail(c, gw_cfg_node_line(n),
                        "%sidentity_headers must be a mapping of setting: header name, not %s",
                        where, gw_cfg_node_kind(n));
            return -1;
        }
        snprintf(w2, sizeof(w2), "%sidentity_headers: ", where);
        if (gw_cfg_map_collect(c, n, w2, keys, GW_IDENTITY_COUNT, hs) < 0)
            return -1;
        for (size_t i = 0; i < GW_IDENTITY_COUNT; i++) {
            if (hs[i].val == NULL)
                continue;
            lines[i] = hs[i].line;
            if (gw_cfg_is_off(hs[i].val))
                names[i] = NULL;
            else if (gw_cfg_get_header_name(c, w2, keys[i], hs[i].val, &names[i]) < 0)
                return -1;
        }
        for (size_t j = 1; j < GW_IDENTITY_COUNT; j++) {
            for (size_t i = 0; i < j; i++) {
                /* The defaults differ, so at least one of the two was configured. */
                if (names[i] == NULL || names[j] == NULL || !name_eq(names[i], names[j]))
                    continue;
                /* Named as written where it was written. */
                gw_cfg_fail(c, lines[j] != 0 ? lines[j] : lines[i],
                            "%s%s and %s both use the header \"%s\"%s", w2, keys[i], keys[j],
                            lines[j] != 0 ? names[j] : names[i],
                            lines[i] == 0 || lines[j] == 0 ? " (one of them by default)" : "");
                return -1;
            }
        }
    }
    identity_fields(&l->headers, fields);
    for (size_t i = 0; i < GW_IDENTITY_COUNT; i++) {
        if (names[i] == NULL)
            continue;
        *fields[i] = gw_cfg_strdup(c, names[i], lines[i] != 0 ? lines[i] : s->line);
        if (*fields[i] == NULL)
            return -1;
    }
    return 0;
}

static int parse_strip(struct gw_cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                       const struct gw_cfg_keyslot *s)
{
    const yaml_node_t *n = s->val;
    size_t count;

    if (n->type != YAML_SEQUENCE_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n),
                    "%sstrip_headers must be a sequence of header names, not %s", where,
                    gw_cfg_node_kind(n));
        return -1;
    }
    count = gw_cfg_seq_count(n);
    if (count == 0)
        return 0;
    l->strip_headers = calloc(count, sizeof(*l->strip_headers));
    if (l->strip_headers == NULL) {
        gw_cfg_fail(c, s->line, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = gw_cfg_seq_item(c, n, i);
        const char *v;
        struct gw_cfg_qbuf q;

        if (item == NULL)
            return -1;
        if (item->type != YAML_SCALAR_NODE) {
            gw_cfg_fail(c, gw_cfg_node_line(item),
                        "%sstrip_headers: an item must be a header name, not %s", where,
                        gw_cfg_node_kind(item));
            return -1;
        }
        if (gw_cfg_get_header_name(c, where, "strip_headers item", item, &v) < 0)
            return -1;
        for (size_t k = 0; k < sizeof(unstrippable) / sizeof(unstrippable[0]); k++) {
            if (name_eq(v, unstrippable[k])) {
                gw_cfg_fail(c, gw_cfg_node_line(item),
                            "%sstrip_headers: %s cannot be stripped (the request would change "
                            "its meaning)",
                            where, gw_cfg_quote_node(&q, item));
                return -1;
            }
        }
        for (size_t k = 0; k < l->nstrip_headers; k++) {
            if (name_eq(v, l->strip_headers[k])) {
                gw_cfg_fail(c, gw_cfg_node_line(item), "%sstrip_headers: %s is listed twice", where,
                            gw_cfg_quote_node(&q, item));
                return -1;
            }
        }
        l->strip_headers[i] = gw_cfg_strdup(c, v, gw_cfg_node_line(item));
        if (l->strip_headers[i] == NULL)
            return -1;
        l->nstrip_headers++;
    }
    return 0;
}

int gw_cfg_parse_http(struct gw_cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                      const struct gw_cfg_keyslot s[])
{
    if (parse_identity(c, where, l, &s[LK_IDENTITY_HEADERS]) < 0)
        return -1;
    if (s[LK_STRIP_HEADERS].val != NULL && parse_strip(c, where, l, &s[LK_STRIP_HEADERS]) < 0)
        return -1;
    if (s[LK_BACKEND_TIMEOUT].val != NULL &&
        gw_cfg_get_duration(c, where, "backend_timeout", s[LK_BACKEND_TIMEOUT].val,
                            &l->backend_timeout_ms) < 0)
        return -1;
    if (s[LK_MAX_HEADER_BYTES].val != NULL &&
        gw_cfg_get_uint(c, where, "max_header_bytes", s[LK_MAX_HEADER_BYTES].val,
                        GW_HEADER_BYTES_MIN, GW_HEADER_BYTES_MAX, &l->max_header_bytes) < 0)
        return -1;
    if (s[LK_MAX_HEADERS].val != NULL &&
        gw_cfg_get_uint(c, where, "max_headers", s[LK_MAX_HEADERS].val, 1, GW_HEADERS_MAX,
                        &l->max_headers) < 0)
        return -1;
    return 0;
}

void gw_cfg_http_free(struct gw_listener_cfg *l)
{
    char **fields[GW_IDENTITY_COUNT];

    identity_fields(&l->headers, fields);
    for (size_t i = 0; i < GW_IDENTITY_COUNT; i++) {
        free(*fields[i]);
        *fields[i] = NULL;
    }
    for (size_t i = 0; i < l->nstrip_headers; i++) {
        free(l->strip_headers[i]);
        l->strip_headers[i] = NULL;
    }
    free(l->strip_headers);
    l->strip_headers = NULL;
    l->nstrip_headers = 0;
}

/* config_backends.c - a listener's backends and their health check.
 *
 *   backends:
 *     - 127.0.0.1:7001                              weight 1
 *     - { address: 127.0.0.1:7002, weight: 3 }      weight 1..256
 *   health_check: { type: http, path: /healthz, interval: 5s, timeout: 2s, rise: 2, fall: 3 }
 *
 * The weights are for balance: round-robin (a backend of weight 3 gets three connections for every
 * one of a backend of weight 1); least-connections ignores them.
 */
#include "gateway/config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_WEIGHT_MAX 256u
#define GW_HEALTH_COUNT_MAX 100u
/* A request line has to fit the backend's limit; 1 KiB of path is far beyond any health URL. */
#define GW_HEALTH_PATH_MAX 1024u

/* address: "host:port", refused for a wildcard, which cannot be connected to. */
static int backend_addr(struct gw_cfg_ctx *c, const char *where, const yaml_node_t *n,
                        struct gw_backend_cfg *b)
{
    const char *v, *why = NULL;
    struct gw_cfg_qbuf q;

    if (gw_cfg_get_string(c, where, "backend", n, &v) < 0)
        return -1;
    if (gw_cfg_addr_parse(v, &b->addr, &why) < 0) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%sbackend %s: %s", where, gw_cfg_quote_node(&q, n),
                    why);
        return -1;
    }
    if (gw_cfg_addr_is_wildcard(&b->addr)) {
        gw_cfg_fail(c, gw_cfg_node_line(n),
                    "%sbackend %s: the wildcard address cannot be connected to", where,
                    gw_cfg_quote_node(&q, n));
        return -1;
    }
    return 0;
}

/* { address: "host:port", weight: N }; the message prefix names the backend by its position. */
static int backend_map(struct gw_cfg_ctx *c, const char *where, const yaml_node_t *n, size_t idx,
                       struct gw_backend_cfg *b)
{
    static const char *const keys[] = {"address", "weight"};
    struct gw_cfg_keyslot s[2];
    char w2[160];

    snprintf(w2, sizeof(w2), "%sbackend #%zu: ", where, idx + 1);
    if (gw_cfg_map_collect(c, n, w2, keys, 2, s) < 0)
        return -1;
    if (s[0].val == NULL) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%saddress is required", w2);
        return -1;
    }
    if (backend_addr(c, where, s[0].val, b) < 0)
        return -1;
    if (s[1].val != NULL &&
        gw_cfg_get_uint(c, w2, "weight", s[1].val, 1, GW_WEIGHT_MAX, &b->weight) < 0)
        return -1;
    return 0;
}

int gw_cfg_parse_backends(struct gw_cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                          const struct gw_cfg_keyslot *s)
{
    const yaml_node_t *n = s->val;
    size_t count;

    l->backends_line = s->line;
    if (n->type != YAML_SEQUENCE_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n),
                    "%sbackends must be a sequence of \"host:port\", not %s", where,
                    gw_cfg_node_kind(n));
        return -1;
    }
    count = gw_cfg_seq_count(n);
    if (count == 0) {
        gw_cfg_fail(c, s->line, "%sbackends must not be empty", where);
        return -1;
    }
    l->backends = calloc(count, sizeof(*l->backends));
    if (l->backends == NULL) {
        gw_cfg_fail(c, s->line, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = gw_cfg_seq_item(c, n, i);
        struct gw_backend_cfg *b = &l->backends[i];

        if (item == NULL)
            return -1;
        b->weight = 1;
        b->line = gw_cfg_node_line(item);
        if (item->type == YAML_MAPPING_NODE) {
            if (backend_map(c, where, item, i, b) < 0)
                return -1;
        } else if (item->type == YAML_SCALAR_NODE) {
            if (backend_addr(c, where, item, b) < 0)
                return -1;
        } else {
            gw_cfg_fail(c, gw_cfg_node_line(item),
                        "%sbackend must be \"host:port\" or a mapping (address, weight), not %s",
                        where, gw_cfg_node_kind(item));
            return -1;
        }
        l->nbackends++;
    }
    return 0;
}

/* The path goes into "GET path HTTP/1.1" as it is (RFC 9112 3.2.1, origin-form): a space would
 * end the request-target, and a control or non-ASCII byte has no place in a request line. */
static int health_path(struct gw_cfg_ctx *c, const char *where, const yaml_node_t *n,
                       struct gw_health_cfg *h)
{
    const char *v;
    size_t len;
    struct gw_cfg_qbuf q;

    if (gw_cfg_get_string(c, where, "path", n, &v) < 0)
        return -1;
    len = strlen(v);
    if (v[0] != '/') {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%spath must start with \"/\", not %s", where,
                    gw_cfg_quote_node(&q, n));
        return -1;
    }
    if (len > GW_HEALTH_PATH_MAX) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%spath must be at most %u characters, not %zu", where,
                    GW_HEALTH_PATH_MAX, len);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            gw_cfg_fail(c, gw_cfg_node_line(n),
                        "%spath must not contain spaces or non-ASCII characters (percent-encode "
                        "them), not %s",
                        where, gw_cfg_quote_node(&q, n));
            return -1;
        }
    }
    h->path = gw_cfg_strdup(c, v, gw_cfg_node_line(n));
    return h->path == NULL ? -1 : 0;
}

int gw_cfg_parse_health(struct gw_cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                        const struct gw_cfg_keyslot *s)
{
    static const char *const keys[] = {"type", "path", "interval", "timeout", "rise", "fall"};
    enum { HK_TYPE, HK_PATH, HK_INTERVAL, HK_TIMEOUT, HK_RISE, HK_FALL, HK_COUNT };
    static const char *const types[] = {"tcp", "http"};
    static const int tv[] = {GW_HEALTH_TCP, GW_HEALTH_HTTP};
    struct gw_health_cfg *h = &l->health;
    const yaml_node_t *n = s->val;
    struct gw_cfg_keyslot hs[HK_COUNT];
    char w2[160];
    int e;

    h->line = s->line;
    if (n->type != YAML_MAPPING_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n),
                    "%shealth_check must be a mapping (type, path, interval, timeout, rise, fall), "
                    "not %s",
                    where, gw_cfg_node_kind(n));
        return -1;
    }
    snprintf(w2, sizeof(w2), "%shealth_check: ", where);
    if (gw_cfg_map_collect(c, n, w2, keys, HK_COUNT, hs) < 0)
        return -1;
    /* No default type: "tcp" and "http" check different things, and the operator should choose. */
    if (hs[HK_TYPE].val == NULL) {
        gw_cfg_fail(c, s->line, "%stype is required (tcp or http)", w2);
        return -1;
    }
    if (gw_cfg_get_enum(c, w2, "type", hs[HK_TYPE].val, types, tv, 2, &e) < 0)
        return -1;
    h->type = (enum gw_health_type)e;
    if (hs[HK_PATH].val != NULL && h->type != GW_HEALTH_HTTP) {
        gw_cfg_fail(c, hs[HK_PATH].line, "%spath is only for type http", w2);
        return -1;
    }
    if (hs[HK_PATH].val != NULL) {
        if (health_path(c, w2, hs[HK_PATH].val, h) < 0)
            return -1;
    } else if (h->type == GW_HEALTH_HTTP) {
        h->path = gw_cfg_strdup(c, "/", s->line);
        if (h->path == NULL)
            return -1;
    }
    if (hs[HK_INTERVAL].val != NULL &&
        gw_cfg_get_duration(c, w2, "interval", hs[HK_INTERVAL].val, &h->interval_ms) < 0)
        return -1;
    if (hs[HK_TIMEOUT].val != NULL &&
        gw_cfg_get_duration(c, w2, "timeout", hs[HK_TIMEOUT].val, &h->timeout_ms) < 0)
        return -1;
    /* A probe still running when the next one is due would pile up on a slow backend. */
    if (h->timeout_ms >= h->interval_ms) {
        char t[24], i[24];
        gw_cfg_format_duration(h->timeout_ms, t, sizeof(t));
        gw_cfg_format_duration(h->interval_ms, i, sizeof(i));
        gw_cfg_fail(c, hs[HK_TIMEOUT].val != NULL ? hs[HK_TIMEOUT].line : hs[HK_INTERVAL].line,
                    "%stimeout %s must be shorter than interval %s", w2, t, i);
        return -1;
    }
    if (hs[HK_RISE].val != NULL &&
        gw_cfg_get_uint(c, w2, "rise", hs[HK_RISE].val, 1, GW_HEALTH_COUNT_MAX, &h->rise) < 0)
        return -1;
    if (hs[HK_FALL].val != NULL &&
        gw_cfg_get_uint(c, w2, "fall", hs[HK_FALL].val, 1, GW_HEALTH_COUNT_MAX, &h->fall) < 0)
        return -1;
    return 0;
}

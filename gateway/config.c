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
 *
 * This file holds the walk over the document; the values, the backends and health check, and the
 * settings of https listeners have files of their own (see config_int.h).
 */
#include "gateway/config.h"
#include "gateway/config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>
#include <yaml.h>

/* A configuration file is a few kilobytes; a cap keeps a wrong path (a log, a disk image) from being
 * slurped whole into memory before the first syntax error. */
#define GW_CONFIG_MAX_BYTES (1024u * 1024u)
/* The deepest valid configuration has five levels (the top, listeners, a listener, its backends, a
 * backend written as a mapping). */
#define GW_CONFIG_MAX_DEPTH 16
/* Two descriptors per connection (client and backend) stay well under any nr_open we will meet. */
#define GW_MAX_CONNECTIONS 1000000u
#define GW_MAX_WORKERS 256u
#define GW_NAME_MAX 64u

/* The absolute directory of the configuration file. Purely lexical: the files it names need not
 * exist yet ("hsmgate check" reports those later, with their own line). */
static const char *cfg_dir(struct gw_cfg_ctx *c, int line)
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
            gw_cfg_fail(c, line, "cannot resolve a relative path: getcwd: %s", strerror(errno));
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
        gw_cfg_fail(c, line, "out of memory");
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
static int resolve_path(struct gw_cfg_ctx *c, const char *path, int line, char **out)
{
    const char *dir;
    char *res = NULL;

    if (path[0] == '/') {
        *out = gw_cfg_strdup(c, path, line);
        return *out == NULL ? -1 : 0;
    }
    dir = cfg_dir(c, line);
    if (dir == NULL)
        return -1;
    if (asprintf(&res, "%s/%s", dir, path) < 0) {
        gw_cfg_fail(c, line, "out of memory");
        return -1;
    }
    path_clean(res);
    *out = res;
    return 0;
}

int gw_cfg_get_path(struct gw_cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                    char **out)
{
    const char *s;

    if (gw_cfg_get_string(c, where, key, n, &s) < 0)
        return -1;
    return resolve_path(c, s, gw_cfg_node_line(n), out);
}

/* map is a mapping (the caller has checked, to say what it should hold); each value is filed under
 * its key's index in keys[]. */
int gw_cfg_map_collect(struct gw_cfg_ctx *c, const yaml_node_t *map, const char *where,
                       const char *const keys[], size_t nkeys, struct gw_cfg_keyslot slots[])
{
    memset(slots, 0, nkeys * sizeof(*slots));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        size_t i;
        struct gw_cfg_qbuf q;

        if (k == NULL || v == NULL) {
            gw_cfg_fail(c, gw_cfg_node_line(map), "%sbroken YAML document", where);
            return -1;
        }
        if (k->type != YAML_SCALAR_NODE) {
            gw_cfg_fail(c, gw_cfg_node_line(k), "%skeys must be strings, not %s", where,
                        gw_cfg_node_kind(k));
            return -1;
        }
        for (i = 0; i < nkeys; i++)
            if (gw_cfg_scalar_eq(k, keys[i]))
                break;
        if (i == nkeys) {
            char list[512];
            size_t o = 0;
            list[0] = '\0';
            for (size_t j = 0; j < nkeys && o < sizeof(list); j++) {
                int w = snprintf(list + o, sizeof(list) - o, "%s%s", j == 0 ? "" : ", ", keys[j]);
                if (w < 0)
                    break;
                o += (size_t)w;
            }
            gw_cfg_fail(c, gw_cfg_node_line(k), "%sunknown key %s (valid: %s)", where,
                        gw_cfg_quote_node(&q, k), list);
            return -1;
        }
        if (slots[i].val != NULL) {
            gw_cfg_fail(c, gw_cfg_node_line(k), "%sduplicate key \"%s\" (first at line %d)", where,
                        keys[i], slots[i].line);
            return -1;
        }
        slots[i].val = v;
        slots[i].line = gw_cfg_node_line(k);
    }
    return 0;
}

/* hsm: { module, pin }. The pin is a source, never the PIN itself, and a refused value is not
 * echoed: it may well be the PIN. */
static int parse_hsm(struct gw_cfg_ctx *c, const yaml_node_t *n)
{
    static const char *const keys[] = {"module", "pin"};
    struct gw_cfg_keyslot s[2];
    struct gw_config *cfg = c->cfg;
    const char *v;

    if (n->type != YAML_MAPPING_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "hsm must be a mapping (module, pin), not %s",
                    gw_cfg_node_kind(n));
        return -1;
    }
    if (gw_cfg_map_collect(c, n, "hsm: ", keys, 2, s) < 0)
        return -1;
    if (s[0].val != NULL) {
        if (gw_cfg_get_string(c, "hsm: ", "module", s[0].val, &v) < 0)
            return -1;
        cfg->hsm_module = gw_cfg_strdup(c, v, s[0].line);
        if (cfg->hsm_module == NULL)
            return -1;
        cfg->hsm_module_line = s[0].line;
    }
    if (s[1].val != NULL) {
        const yaml_node_t *pn = s[1].val;
        if (pn->type != YAML_SCALAR_NODE || gw_cfg_scalar_is_null(pn) ||
            pn->data.scalar.length == 0 || gw_cfg_has_control(pn)) {
            gw_cfg_fail(c, gw_cfg_node_line(pn), "hsm: pin must be \"file:PATH\" or \"env:NAME\"");
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
                gw_cfg_fail(c, s[1].line, "out of memory");
                return -1;
            }
            free(path);
            path = NULL;
        } else if (strncmp(v, "env:", 4) == 0 && v[4] != '\0' &&
                   strspn(v + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") ==
                       strlen(v + 4) &&
                   !(v[4] >= '0' && v[4] <= '9')) {
            cfg->hsm_pin = gw_cfg_strdup(c, v, s[1].line);
            if (cfg->hsm_pin == NULL)
                return -1;
        } else {
            gw_cfg_fail(c, gw_cfg_node_line(pn),
                        "hsm: pin must be \"file:PATH\" or \"env:NAME\" (the PIN itself does not "
                        "belong in the configuration)");
            return -1;
        }
        cfg->hsm_pin_line = s[1].line;
    }
    return 0;
}

static int parse_log(struct gw_cfg_ctx *c, const yaml_node_t *n)
{
    static const char *const keys[] = {"level", "access_log", "to", "facility"};
    static const char *const levels[] = {"error", "warning", "info", "debug"};
    static const int lv[] = {0, 1, 2, 3};
    struct gw_cfg_keyslot s[4];
    struct gw_config *cfg = c->cfg;
    int level;

    if (n->type != YAML_MAPPING_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "log must be a mapping (level, access_log, to, facility), not %s",
                    gw_cfg_node_kind(n));
        return -1;
    }
    if (gw_cfg_map_collect(c, n, "log: ", keys, 4, s) < 0)
        return -1;
    /* Before access_log, whose "off" returns early. */
    if (gw_cfg_parse_log_dest(c, &s[2], &s[3]) < 0)
        return -1;
    if (s[0].val != NULL) {
        if (gw_cfg_get_enum(c, "log: ", "level", s[0].val, levels, lv, 4, &level) < 0)
            return -1;
        free(cfg->log_level);
        cfg->log_level = gw_cfg_strdup(c, levels[level], s[0].line);
        if (cfg->log_level == NULL)
            return -1;
    }
    if (s[1].val != NULL) {
        const yaml_node_t *an = s[1].val;
        const char *v;
        free(cfg->access_log);
        cfg->access_log = NULL;
        /* "off", or YAML's false written plainly, turns the access log off. */
        if (gw_cfg_is_off(an))
            return 0;
        if (gw_cfg_get_string(c, "log: ", "access_log", an, &v) < 0)
            return -1;
        if (strcmp(v, "-") == 0)
            cfg->access_log = gw_cfg_strdup(c, v, s[1].line);
        else
            (void)resolve_path(c, v, gw_cfg_node_line(an), &cfg->access_log);
        if (cfg->access_log == NULL)
            return -1;
    }
    return 0;
}

static const char *const listener_keys[LK_COUNT] = {
    "name", "type", "bind", "auth", "certificate", "key", "client_ca", "backends",
    "min_tls", "max_tls", "ciphers", "verify_depth", "handshake_timeout", "idle_timeout",
    "connect_timeout", "max_connections", "balance", "health_check", "proxy_protocol",
    "proxy_protocol_cert", "identity_headers", "strip_headers", "backend_timeout",
    "max_header_bytes", "max_headers", "policy",
};

/* Settings that mean something for one type of listener only. Given for the other type they are
 * refused rather than ignored: the operator expects them to act. */
static const struct {
    int key;
    enum gw_ltype type;
    const char *why;
} typed_keys[] = {
    {LK_PROXY_PROTOCOL, GW_LISTENER_TCP,
     "an https listener passes the client's address in X-Forwarded-For"},
    {LK_PROXY_PROTOCOL_CERT, GW_LISTENER_TCP,
     "an https listener passes the client certificate in identity_headers"},
    {LK_IDENTITY_HEADERS, GW_LISTENER_HTTPS, "a tcp listener does not read HTTP"},
    {LK_STRIP_HEADERS, GW_LISTENER_HTTPS, "a tcp listener does not read HTTP"},
    {LK_BACKEND_TIMEOUT, GW_LISTENER_HTTPS, "a tcp listener uses idle_timeout"},
    {LK_MAX_HEADER_BYTES, GW_LISTENER_HTTPS, "a tcp listener does not read HTTP"},
    {LK_MAX_HEADERS, GW_LISTENER_HTTPS, "a tcp listener does not read HTTP"},
};


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
static const char *peek_name(struct gw_cfg_ctx *c, const yaml_node_t *map, char *buf, size_t len)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        if (k != NULL && v != NULL && gw_cfg_scalar_eq(k, "name") && v->type == YAML_SCALAR_NODE &&
            name_ok(v->data.scalar.value, v->data.scalar.length)) {
            snprintf(buf, len, "listener \"%s\": ", (const char *)v->data.scalar.value);
            return buf;
        }
    }
    return NULL;
}

/* A listener's name is read before its other settings so that every later message can name it. */
static int parse_listener_name(struct gw_cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                               const struct gw_cfg_keyslot *s)
{
    const char *v;
    struct gw_cfg_qbuf q;

    if (gw_cfg_get_string(c, where, "name", s->val, &v) < 0)
        return -1;
    if (!name_ok((const unsigned char *)v, strlen(v))) {
        gw_cfg_fail(c, gw_cfg_node_line(s->val),
                    "%sname must be 1 to 64 characters from A-Z, a-z, 0-9, '_', '.', '-', not %s",
                    where, gw_cfg_quote_node(&q, s->val));
        return -1;
    }
    l->name = gw_cfg_strdup(c, v, s->line);
    if (l->name == NULL)
        return -1;
    l->name_line = s->line;
    return 0;
}

static int parse_listener_values(struct gw_cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                                 const struct gw_cfg_keyslot s[])
{
    static const char *const types[] = {"tcp", "https"};
    static const int tv[] = {GW_LISTENER_TCP, GW_LISTENER_HTTPS};
    static const char *const auths[] = {"one-way", "two-way", "optional"};
    static const int av[] = {GW_AUTH_ONE_WAY, GW_AUTH_TWO_WAY, GW_AUTH_OPTIONAL};
    static const char *const tlss[] = {"1.2", "1.3"};
    static const int tlv[] = {GW_TLS_1_2, GW_TLS_1_3};
    const char *v, *why = NULL;
    struct gw_cfg_qbuf q;
    int e;

    if (s[LK_TYPE].val != NULL) {
        if (gw_cfg_get_enum(c, where, "type", s[LK_TYPE].val, types, tv, 2, &e) < 0)
            return -1;
        l->type = (enum gw_ltype)e;
        l->type_line = s[LK_TYPE].line;
    }
    for (size_t i = 0; i < sizeof(typed_keys) / sizeof(typed_keys[0]); i++) {
        int k = typed_keys[i].key;
        if (s[k].val != NULL && l->type != typed_keys[i].type) {
            gw_cfg_fail(c, s[k].line, "%s%s is only for %s listeners, and this one is %s (%s)",
                        where, listener_keys[k],
                        typed_keys[i].type == GW_LISTENER_TCP ? "tcp" : "https",
                        l->type == GW_LISTENER_TCP ? "tcp" : "https", typed_keys[i].why);
            return -1;
        }
    }
    if (s[LK_BIND].val != NULL) {
        if (gw_cfg_get_string(c, where, "bind", s[LK_BIND].val, &v) < 0)
            return -1;
        if (gw_cfg_addr_parse(v, &l->bind, &why) < 0) {
            gw_cfg_fail(c, gw_cfg_node_line(s[LK_BIND].val), "%sbind %s: %s", where,
                        gw_cfg_quote_node(&q, s[LK_BIND].val), why);
            return -1;
        }
        l->bind_line = s[LK_BIND].line;
    }
    if (s[LK_AUTH].val != NULL) {
        if (gw_cfg_get_enum(c, where, "auth", s[LK_AUTH].val, auths, av, 3, &e) < 0)
            return -1;
        l->auth = (enum gw_auth)e;
        l->auth_line = s[LK_AUTH].line;
    }
    if (s[LK_CERTIFICATE].val != NULL) {
        if (gw_cfg_get_path(c, where, "certificate", s[LK_CERTIFICATE].val, &l->certificate) < 0)
            return -1;
        l->certificate_line = s[LK_CERTIFICATE].line;
    }
    if (s[LK_KEY].val != NULL) {
        if (gw_cfg_get_string(c, where, "key", s[LK_KEY].val, &v) < 0)
            return -1;
        /* RFC 7512 3: the scheme name is case-insensitive; a URI is kept exactly as written. */
        if (strncasecmp(v, "pkcs11:", 7) == 0)
            l->key = gw_cfg_strdup(c, v, s[LK_KEY].line);
        else
            (void)resolve_path(c, v, s[LK_KEY].line, &l->key);
        if (l->key == NULL)
            return -1;
        l->key_line = s[LK_KEY].line;
    }
    if (s[LK_CLIENT_CA].val != NULL) {
        if (gw_cfg_get_path(c, where, "client_ca", s[LK_CLIENT_CA].val, &l->client_ca) < 0)
            return -1;
        l->client_ca_line = s[LK_CLIENT_CA].line;
    }
    if (s[LK_BACKENDS].val != NULL && gw_cfg_parse_backends(c, where, l, &s[LK_BACKENDS]) < 0)
        return -1;
    if (s[LK_POLICY].val != NULL) {
        if (gw_cfg_get_string(c, where, "policy", s[LK_POLICY].val, &v) < 0)
            return -1;
        l->policy = gw_cfg_strdup(c, v, s[LK_POLICY].line);
        if (l->policy == NULL)
            return -1;
        l->policy_line = s[LK_POLICY].line;
    }
    if (s[LK_MIN_TLS].val != NULL) {
        if (gw_cfg_get_enum(c, where, "min_tls", s[LK_MIN_TLS].val, tlss, tlv, 2, &e) < 0)
            return -1;
        l->min_tls = (enum gw_tls_version)e;
    }
    if (s[LK_MAX_TLS].val != NULL) {
        if (gw_cfg_get_enum(c, where, "max_tls", s[LK_MAX_TLS].val, tlss, tlv, 2, &e) < 0)
            return -1;
        l->max_tls = (enum gw_tls_version)e;
    }
    if (s[LK_CIPHERS].val != NULL) {
        if (gw_cfg_get_string(c, where, "ciphers", s[LK_CIPHERS].val, &v) < 0)
            return -1;
        l->ciphers = gw_cfg_strdup(c, v, s[LK_CIPHERS].line);
        if (l->ciphers == NULL)
            return -1;
    }
    if (s[LK_VERIFY_DEPTH].val != NULL) {
        if (gw_cfg_get_uint(c, where, "verify_depth", s[LK_VERIFY_DEPTH].val, 1, 16, &l->verify_depth) < 0)
            return -1;
        l->verify_depth_set = 1;
    }
    if (s[LK_HANDSHAKE_TIMEOUT].val != NULL &&
        gw_cfg_get_duration(c, where, "handshake_timeout", s[LK_HANDSHAKE_TIMEOUT].val,
                            &l->handshake_timeout_ms) < 0)
        return -1;
    if (s[LK_IDLE_TIMEOUT].val != NULL &&
        gw_cfg_get_duration(c, where, "idle_timeout", s[LK_IDLE_TIMEOUT].val,
                            &l->idle_timeout_ms) < 0)
        return -1;
    if (s[LK_CONNECT_TIMEOUT].val != NULL &&
        gw_cfg_get_duration(c, where, "connect_timeout", s[LK_CONNECT_TIMEOUT].val,
                            &l->connect_timeout_ms) < 0)
        return -1;
    if (s[LK_MAX_CONNECTIONS].val != NULL &&
        gw_cfg_get_uint(c, where, "max_connections", s[LK_MAX_CONNECTIONS].val, 0,
                        GW_MAX_CONNECTIONS, &l->max_connections) < 0)
        return -1;
    return 0;
}

/* How connections reach the backends: balance, health_check, the PROXY protocol header of tcp
 * listeners and the HTTP settings of https ones. typed_keys has already refused a setting given for
 * the wrong type of listener. */
static int parse_listener_forwarding(struct gw_cfg_ctx *c, const char *where,
                                     struct gw_listener_cfg *l, const struct gw_cfg_keyslot s[])
{
    static const char *const balances[] = {"round-robin", "least-connections"};
    static const int bv[] = {GW_BALANCE_ROUND_ROBIN, GW_BALANCE_LEAST_CONN};
    static const char *const proxies[] = {"v2", "none"};
    static const int pv[] = {GW_PROXY_V2, GW_PROXY_NONE};
    int e;

    if (s[LK_BALANCE].val != NULL) {
        if (gw_cfg_get_enum(c, where, "balance", s[LK_BALANCE].val, balances, bv, 2, &e) < 0)
            return -1;
        l->balance = (enum gw_balance)e;
    }
    if (s[LK_HEALTH_CHECK].val != NULL && gw_cfg_parse_health(c, where, l, &s[LK_HEALTH_CHECK]) < 0)
        return -1;
    if (s[LK_PROXY_PROTOCOL].val != NULL) {
        if (gw_cfg_get_enum(c, where, "proxy_protocol", s[LK_PROXY_PROTOCOL].val, proxies, pv, 2,
                            &e) < 0)
            return -1;
        l->proxy_protocol = (enum gw_proxy_protocol)e;
    }
    if (s[LK_PROXY_PROTOCOL_CERT].val != NULL) {
        if (gw_cfg_get_bool(c, where, "proxy_protocol_cert", s[LK_PROXY_PROTOCOL_CERT].val,
                            &l->proxy_protocol_cert) < 0)
            return -1;
        /* The certificate travels in a TLV of the v2 header; without the header it has no way. */
        if (l->proxy_protocol_cert && l->proxy_protocol != GW_PROXY_V2) {
            gw_cfg_fail(c, s[LK_PROXY_PROTOCOL_CERT].line,
                        "%sproxy_protocol_cert needs proxy_protocol: v2", where);
            return -1;
        }
    }
    if (l->type == GW_LISTENER_HTTPS && gw_cfg_parse_http(c, where, l, s) < 0)
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
    return a->ss.ss_family == b->ss.ss_family && gw_cfg_addr_port(a) == gw_cfg_addr_port(b) &&
           (gw_cfg_addr_is_wildcard(a) || gw_cfg_addr_is_wildcard(b));
}

/* Defaults: see config.h. Lines of absent settings point at the listener itself (line). */
static void listener_defaults(struct gw_listener_cfg *l, int line)
{
    l->line = line;
    l->type = GW_LISTENER_TCP;
    l->auth = GW_AUTH_ONE_WAY;
    l->min_tls = GW_TLS_1_2;
    l->max_tls = GW_TLS_1_3;
    l->verify_depth = 4;
    l->handshake_timeout_ms = 10000;
    l->idle_timeout_ms = 300000;
    l->connect_timeout_ms = 5000;
    l->max_connections = 0;
    l->balance = GW_BALANCE_ROUND_ROBIN;
    l->health.type = GW_HEALTH_NONE;
    l->health.interval_ms = 5000;
    l->health.timeout_ms = 2000;
    l->health.rise = 2;
    l->health.fall = 3;
    l->proxy_protocol = GW_PROXY_NONE;
    l->proxy_protocol_cert = 0;
    /* The HTTP limits are set on tcp listeners too (unused there): every field has a sane value.
     * The identity header names are set for https listeners only (gw_cfg_parse_http). */
    l->backend_timeout_ms = 60000;
    l->max_header_bytes = 16384;
    l->max_headers = 100;
    l->name_line = l->type_line = l->bind_line = l->auth_line = l->line;
    l->certificate_line = l->key_line = l->client_ca_line = l->backends_line = l->line;
    l->health.line = l->line;
    l->policy_idx = -1;
    l->policy_line = l->line;
}

/* What every listener goes through after its name: its values and forwarding settings, the required
 * ones (bind, certificate, key, and `last`, present when have_last), the TLS version range, and a bind
 * that must not clash with the `before` listeners already parsed. */
static int listener_finish(struct gw_cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                           const struct gw_cfg_keyslot s[], const char *last, int have_last, size_t before)
{
    const char *missing = NULL;

    if (parse_listener_values(c, where, l, s) < 0 || parse_listener_forwarding(c, where, l, s) < 0)
        return -1;
    if (s[LK_BIND].val == NULL)
        missing = "bind";
    else if (s[LK_CERTIFICATE].val == NULL)
        missing = "certificate";
    else if (s[LK_KEY].val == NULL)
        missing = "key";
    else if (!have_last)
        missing = last;
    if (missing != NULL) {
        gw_cfg_fail(c, l->line, "%s%s is required", where, missing);
        return -1;
    }
    if (l->min_tls > l->max_tls) {
        gw_cfg_fail(c, s[LK_MAX_TLS].val != NULL ? s[LK_MAX_TLS].line : s[LK_MIN_TLS].line,
                    "%smin_tls 1.%d is above max_tls 1.%d", where, (int)l->min_tls % 10, (int)l->max_tls % 10);
        return -1;
    }
    for (size_t i = 0; i < before; i++) {
        const struct gw_listener_cfg *o = &c->cfg->listeners[i];
        if (binds_clash(&o->bind, &l->bind)) {
            gw_cfg_fail(c, l->bind_line, "%sbind %s %s listener \"%s\" (line %d)", where, l->bind.text,
                        strcmp(o->bind.text, l->bind.text) == 0 ? "is already used by" : "overlaps the bind of",
                        o->name, o->bind_line);
            return -1;
        }
    }
    return 0;
}

/* Listener number idx (0-based) of the sequence; the ones before it are complete. */
static int parse_listener(struct gw_cfg_ctx *c, const yaml_node_t *n, size_t idx)
{
    struct gw_listener_cfg *l = &c->cfg->listeners[idx];
    struct gw_cfg_keyslot s[LK_COUNT];
    char where[96];

    snprintf(where, sizeof(where), "listener #%zu: ", idx + 1);
    listener_defaults(l, gw_cfg_node_line(n));

    if (n->type != YAML_MAPPING_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "listener #%zu must be a mapping, not %s", idx + 1,
                    gw_cfg_node_kind(n));
        return -1;
    }
    (void)peek_name(c, n, where, sizeof(where));
    if (gw_cfg_map_collect(c, n, where, listener_keys, LK_COUNT, s) < 0)
        return -1;
    if (s[LK_NAME].val == NULL) {
        gw_cfg_fail(c, l->line, "%sname is required", where);
        return -1;
    }
    if (parse_listener_name(c, where, l, &s[LK_NAME]) < 0)
        return -1;
    snprintf(where, sizeof(where), "listener \"%s\": ", l->name);
    for (size_t i = 0; i < idx; i++) {
        if (strcmp(c->cfg->listeners[i].name, l->name) == 0) {
            gw_cfg_fail(c, l->name_line, "duplicate listener name \"%s\" (first at line %d)",
                        l->name, c->cfg->listeners[i].name_line);
            return -1;
        }
    }
    if (listener_finish(c, where, l, s, "backends", s[LK_BACKENDS].val != NULL, idx) < 0)
        return -1;
    if (l->auth != GW_AUTH_ONE_WAY && l->client_ca == NULL && l->policy == NULL) {
        gw_cfg_fail(c, l->auth_line, "%sclient_ca (or a policy) is required when auth is %s", where,
                    l->auth == GW_AUTH_TWO_WAY ? "two-way" : "optional");
        return -1;
    }
    return 0;
}

/* admin: tls: {...} - the admin API's mutual-TLS front, made an https listener (GW_ADMIN_TLS_LISTENER)
 * after the others: the handshake, the key in the HSM, the client CA, revocation and the identity
 * headers are the data plane's own code, and the admin API reads the identity from those headers on
 * its private socket (admin-api/http.c). Settings that would change what the front is (its name,
 * type, backends, identity headers) are the gateway's, not the operator's. */
static int parse_admin_front(struct gw_cfg_ctx *c)
{
    static const int fixed[] = {LK_NAME, LK_TYPE, LK_AUTH, LK_BACKENDS, LK_CONNECT_TIMEOUT, LK_BALANCE,
                                LK_HEALTH_CHECK, LK_PROXY_PROTOCOL, LK_PROXY_PROTOCOL_CERT, LK_IDENTITY_HEADERS,
                                LK_STRIP_HEADERS, LK_BACKEND_TIMEOUT};
    const char *where = "admin: tls: ";
    struct gw_cfg_keyslot s[LK_COUNT];
    struct gw_config *cfg = c->cfg;
    const yaml_node_t *n = c->admin_tls;

    if (gw_cfg_map_collect(c, n, where, listener_keys, LK_COUNT, s) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (s[fixed[i]].val != NULL) {
            gw_cfg_fail(c, s[fixed[i]].line, "%s%s is not a setting of the admin API's TLS front (it is an https "
                        "listener named \"%s\" with two-way authentication in front of the API)", where,
                        listener_keys[fixed[i]], GW_ADMIN_TLS_LISTENER);
            return -1;
        }
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (strcmp(cfg->listeners[i].name, GW_ADMIN_TLS_LISTENER) == 0) {
            gw_cfg_fail(c, cfg->listeners[i].name_line, "the listener name \"%s\" is the admin API's TLS front's "
                        "(admin: tls: at line %d); choose another", GW_ADMIN_TLS_LISTENER, c->admin_tls_line);
            return -1;
        }
    }
    struct gw_listener_cfg *bigger = realloc(cfg->listeners, (cfg->nlisteners + 1) * sizeof(*bigger));
    if (bigger == NULL) {
        gw_cfg_fail(c, c->admin_tls_line, "out of memory");
        return -1;
    }
    cfg->listeners = bigger;
    struct gw_listener_cfg *l = &cfg->listeners[cfg->nlisteners];
    memset(l, 0, sizeof(*l));
    cfg->nlisteners++;          /* counted first, so that gw_config_free frees what is half made */
    listener_defaults(l, c->admin_tls_line);
    l->admin_front = 1;
    l->type = GW_LISTENER_HTTPS;
    l->auth = GW_AUTH_TWO_WAY;
    if ((l->name = gw_cfg_strdup(c, GW_ADMIN_TLS_LISTENER, l->line)) == NULL)
        return -1;
    l->backends = calloc(1, sizeof(*l->backends));
    if (l->backends == NULL) {
        gw_cfg_fail(c, l->line, "out of memory");
        return -1;
    }
    l->nbackends = 1;
    l->backends[0].weight = 1;
    l->backends[0].line = l->line;
    l->backends[0].addr.ss.ss_family = AF_UNIX;
    l->backends[0].addr.len = (socklen_t)sizeof(sa_family_t);
    snprintf(l->backends[0].addr.text, sizeof(l->backends[0].addr.text), "admin-api");
    int have_ca = s[LK_CLIENT_CA].val != NULL || s[LK_POLICY].val != NULL;
    if (listener_finish(c, where, l, s, "client_ca (or policy)", have_ca, cfg->nlisteners - 1) < 0)
        return -1;
    if (cfg->admin.tcp && binds_clash(&cfg->admin.bind, &l->bind)) {
        gw_cfg_fail(c, l->bind_line, "%sbind %s clashes with the admin API's own bind %s", where, l->bind.text,
                    cfg->admin.bind.text);
        return -1;
    }
    return 0;
}

static int parse_listeners(struct gw_cfg_ctx *c, const struct gw_cfg_keyslot *s)
{
    const yaml_node_t *n = s->val;
    size_t count;

    if (n->type != YAML_SEQUENCE_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "listeners must be a sequence of listeners, not %s",
                    gw_cfg_node_kind(n));
        return -1;
    }
    count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0) {
        gw_cfg_fail(c, s->line, "listeners must not be empty");
        return -1;
    }
    c->cfg->listeners = calloc(count, sizeof(*c->cfg->listeners));
    if (c->cfg->listeners == NULL) {
        gw_cfg_fail(c, s->line, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        if (item == NULL) {
            gw_cfg_fail(c, s->line, "broken YAML document");
            return -1;
        }
        /* Counted first, so that gw_config_free also frees a listener that failed half-way. */
        c->cfg->nlisteners++;
        if (parse_listener(c, item, i) < 0)
            return -1;
    }
    return 0;
}

static int parse_top(struct gw_cfg_ctx *c, const yaml_node_t *root)
{
    static const char *const keys[] = {"hsm", "log", "workers", "max_connections", "max_connections_per_address",
                                       "max_handshakes_per_address", "max_handshake_rate_per_address",
                                       "drain_timeout", "pid_file", "user", "group", "allow_root", "policy_store",
                                       "policies", "admin", "listeners"};
    enum { TK_HSM, TK_LOG, TK_WORKERS, TK_MAXCONN, TK_MAXCONN_ADDR, TK_MAXHS_ADDR, TK_RATE_ADDR, TK_DRAIN, TK_PID,
           TK_USER, TK_GROUP, TK_ALLOW_ROOT, TK_STORE, TK_POLICIES, TK_ADMIN, TK_LISTENERS, TK_COUNT };
    struct gw_cfg_keyslot s[TK_COUNT];
    struct gw_config *cfg = c->cfg;

    if (root->type != YAML_MAPPING_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(root),
                    "the configuration must be a mapping of settings, not %s",
                    gw_cfg_node_kind(root));
        return -1;
    }
    if (gw_cfg_map_collect(c, root, "", keys, TK_COUNT, s) < 0)
        return -1;
    if (s[TK_HSM].val != NULL && parse_hsm(c, s[TK_HSM].val) < 0)
        return -1;
    if (s[TK_LOG].val != NULL && parse_log(c, s[TK_LOG].val) < 0)
        return -1;
    if (s[TK_WORKERS].val != NULL &&
        gw_cfg_get_uint(c, "", "workers", s[TK_WORKERS].val, 0, GW_MAX_WORKERS, &cfg->workers) < 0)
        return -1;
    if (s[TK_MAXCONN].val != NULL && gw_cfg_get_uint(c, "", "max_connections", s[TK_MAXCONN].val, 1,
                                                     GW_MAX_CONNECTIONS, &cfg->max_connections) < 0)
        return -1;
    /* 0: no limit for the address (the global and listener caps still hold). */
    if (s[TK_MAXCONN_ADDR].val != NULL &&
        gw_cfg_get_uint(c, "", "max_connections_per_address", s[TK_MAXCONN_ADDR].val, 0, GW_MAX_CONNECTIONS,
                        &cfg->max_connections_per_address) < 0)
        return -1;
    if (s[TK_MAXHS_ADDR].val != NULL &&
        gw_cfg_get_uint(c, "", "max_handshakes_per_address", s[TK_MAXHS_ADDR].val, 0, GW_MAX_CONNECTIONS,
                        &cfg->max_handshakes_per_address) < 0)
        return -1;
    if (s[TK_RATE_ADDR].val != NULL &&
        gw_cfg_get_uint(c, "", "max_handshake_rate_per_address", s[TK_RATE_ADDR].val, 0, 1000000,
                        &cfg->max_handshake_rate_per_address) < 0)
        return -1;
    if (s[TK_DRAIN].val != NULL &&
        gw_cfg_get_duration(c, "", "drain_timeout", s[TK_DRAIN].val, &cfg->drain_timeout_ms) < 0)
        return -1;
    if (s[TK_PID].val != NULL && gw_cfg_get_path(c, "", "pid_file", s[TK_PID].val, &cfg->pid_file) < 0)
        return -1;
    if (gw_cfg_parse_privileges(c, &s[TK_USER], &s[TK_GROUP], &s[TK_ALLOW_ROOT]) < 0)
        return -1;
    if (s[TK_STORE].val != NULL) {
        if (gw_cfg_get_path(c, "", "policy_store", s[TK_STORE].val, &cfg->policy_store) < 0)
            return -1;
        cfg->policy_store_line = s[TK_STORE].line;
    }
    if (s[TK_POLICIES].val != NULL && gw_cfg_parse_policies(c, &s[TK_POLICIES]) < 0)
        return -1;
    if (s[TK_ADMIN].val != NULL && gw_cfg_parse_admin(c, &s[TK_ADMIN]) < 0)
        return -1;
    if (s[TK_LISTENERS].val == NULL) {
        gw_cfg_fail(c, 0, "no listeners: at least one is required under \"listeners\"");
        return -1;
    }
    if (parse_listeners(c, &s[TK_LISTENERS]) < 0)
        return -1;
    if (c->admin_tls != NULL && parse_admin_front(c) < 0)
        return -1;
    return gw_cfg_link_policies(c);
}

static void report_yaml_error(struct gw_cfg_ctx *c, const yaml_parser_t *p, const char *buf, size_t len)
{
    int line;

    if (p->error == YAML_MEMORY_ERROR) {
        gw_cfg_fail(c, 0, "out of memory");
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* The reader knows a byte offset only. */
        size_t end = p->problem_offset < len ? p->problem_offset : len;
        line = 1;
        for (size_t i = 0; i < end; i++)
            if (buf[i] == '\n' && line < INT_MAX)
                line++;
        gw_cfg_fail(c, line, "YAML syntax error: %s",
                    p->problem != NULL ? p->problem : "unreadable input");
        return;
    }
    line = gw_cfg_mark_line(p->problem_mark);
    if (p->context != NULL)
        gw_cfg_fail(c, line, "YAML syntax error: %s (%s at line %d)",
                    p->problem != NULL ? p->problem : "invalid YAML", p->context,
                    gw_cfg_mark_line(p->context_mark));
    else
        gw_cfg_fail(c, line, "YAML syntax error: %s",
                    p->problem != NULL ? p->problem : "invalid YAML");
}

/* The event pass: syntax errors, aliases, more than one document, and nesting. Returns 1 for an
 * empty stream.
 *
 * The nesting cap is not about our walk (which never recurses) but about libyaml: its scanner
 * rechecks every open flow level for each token, so 1 MiB of "[" costs it minutes of CPU. Stopping
 * at the first event past the cap bounds that work, and the loader then only ever sees shallow text. */
static int yaml_prescan(struct gw_cfg_ctx *c, const char *buf, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int docs = 0, depth = 0, rc = -1;

    if (!yaml_parser_initialize(&p)) {
        gw_cfg_fail(c, 0, "out of memory");
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
            gw_cfg_fail(c, gw_cfg_mark_line(ev.start_mark),
                        "YAML aliases (*name) are not supported");
            yaml_event_delete(&ev);
            goto out;
        }
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > GW_CONFIG_MAX_DEPTH) {
                gw_cfg_fail(c, gw_cfg_mark_line(ev.start_mark),
                            "nested more than %d levels deep: this is not a configuration file",
                            GW_CONFIG_MAX_DEPTH);
                yaml_event_delete(&ev);
                goto out;
            }
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        if (type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            gw_cfg_fail(c, gw_cfg_mark_line(ev.start_mark), "only one YAML document is allowed");
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
        free(l->health.path);
        l->health.path = NULL;
        gw_cfg_http_free(l);
        free(l->policy);
        l->policy = NULL;
    }
    gw_cfg_policies_free(cfg);
    gw_cfg_admin_free(cfg);
    free(cfg->policy_store);
    cfg->policy_store = NULL;
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
    free(cfg->user);
    cfg->user = NULL;
    free(cfg->group);
    cfg->group = NULL;
    free(cfg);
}

int gw_config_parse(const char *name, const char *buf, size_t len, struct gw_config **out,
                    char *err, size_t errlen)
{
    struct gw_cfg_ctx c = {.name = name != NULL ? name : "(config)", .err = err, .errlen = errlen};
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
        gw_cfg_fail(&c, 0, "no input");
        goto out;
    }
    if (len > GW_CONFIG_MAX_BYTES) {
        gw_cfg_fail(&c, 0, "larger than 1 MiB: this is not a configuration file");
        goto out;
    }
    scan = yaml_prescan(&c, buf != NULL ? buf : "", len);
    if (scan < 0)
        goto out;
    if (scan == 1) {
        gw_cfg_fail(&c, 0, "empty configuration file");
        goto out;
    }

    if (!yaml_parser_initialize(&parser)) {
        gw_cfg_fail(&c, 0, "out of memory");
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
    if (root == NULL || gw_cfg_scalar_is_null(root)) {
        gw_cfg_fail(&c, 0, "empty configuration file");
        goto out;
    }

    c.cfg = calloc(1, sizeof(*c.cfg));
    if (c.cfg == NULL) {
        gw_cfg_fail(&c, 0, "out of memory");
        goto out;
    }
    c.cfg->max_connections = 10000;
    c.cfg->max_handshakes_per_address = 256;
    c.cfg->drain_timeout_ms = 30000;
    c.cfg->log_facility = LOG_DAEMON;
    c.cfg->path = strdup(c.name);
    c.cfg->log_level = strdup("info");
    c.cfg->access_log = strdup("-");
    if (c.cfg->path == NULL || c.cfg->log_level == NULL || c.cfg->access_log == NULL) {
        gw_cfg_fail(&c, 0, "out of memory");
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
        gw_cfg_fail(&c, 0, "invalid configuration");
    return rc;
}

int gw_config_load(const char *path, struct gw_config **out, char *err, size_t errlen)
{
    struct gw_cfg_ctx c = {.name = path != NULL ? path : "(null)", .err = err, .errlen = errlen};
    char *buf = NULL;
    size_t len = 0;
    int fd = -1, rc = -1;

    if (out == NULL)
        return -1;
    *out = NULL;
    if (path == NULL) {
        gw_cfg_fail(&c, 0, "no configuration file given");
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        gw_cfg_fail(&c, 0, "cannot open: %s", strerror(errno));
        goto out;
    }
    /* One byte over the cap tells a file at the cap from a larger one. */
    buf = malloc(GW_CONFIG_MAX_BYTES + 1);
    if (buf == NULL) {
        gw_cfg_fail(&c, 0, "out of memory");
        goto out;
    }
    while (len < GW_CONFIG_MAX_BYTES + 1) {
        ssize_t r = read(fd, buf + len, GW_CONFIG_MAX_BYTES + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            gw_cfg_fail(&c, 0, "cannot read: %s", strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (len > GW_CONFIG_MAX_BYTES) {
        gw_cfg_fail(&c, 0, "larger than 1 MiB: this is not a configuration file");
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

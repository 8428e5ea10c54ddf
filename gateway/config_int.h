/* config_int.h - private to the configuration parser (gateway/config*.c). Other code uses config.h.
 *
 *   config.c           the document: libyaml passes, mappings, top level, listeners, free
 *   config_values.c    messages, and the scalar values: strings, numbers, durations, enums,
 *                      booleans, addresses, header names
 *   config_backends.c  backends (with weights) and health_check
 *   config_http.c      the settings of https listeners: identity_headers, strip_headers, limits
 *   config_process.c   the process: log destination, user, group, allow_root
 *
 * Conventions: the gw_cfg_get_* and gw_cfg_parse_* functions return 0, or -1 after recording the
 * error in the context (only the first error is kept). "where" is the prefix of every message about
 * the mapping being read ("listener \"api\": "), "key" the name of the setting.
 */
#ifndef HSMGATE_GATEWAY_CONFIG_INT_H
#define HSMGATE_GATEWAY_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "gateway/config.h"

#define GW_DAY_MS 86400000u
/* RFC 9110 5.1 sets no limit; ours keeps names readable in messages and logs. */
#define GW_HEADER_NAME_MAX 64u

struct gw_cfg_ctx {
    const char *name;           /* the file name used in messages */
    char *dir;                  /* absolute directory of the file, computed when first needed */
    yaml_document_t *doc;
    struct gw_config *cfg;
    char *err;
    size_t errlen;
    bool failed;
    const yaml_node_t *admin_tls;   /* admin: tls: {...}, made a listener after the listeners (config.c) */
    int admin_tls_line;
};

/* One slot per known key of a mapping: the value node and the line of the key. */
struct gw_cfg_keyslot {
    const yaml_node_t *val;
    int line;
};

/* A value quoted for a message: control characters escaped (they would garble a log line) and long
 * values cut, since the message has to fit an error buffer of a few hundred bytes. */
struct gw_cfg_qbuf {
    char s[96];
};

/* The keys of a listener mapping, in the order the "unknown key" message lists them. */
enum {
    LK_NAME, LK_TYPE, LK_BIND, LK_AUTH, LK_CERTIFICATE, LK_KEY, LK_CLIENT_CA, LK_BACKENDS,
    LK_MIN_TLS, LK_MAX_TLS, LK_CIPHERS, LK_VERIFY_DEPTH, LK_HANDSHAKE_TIMEOUT, LK_IDLE_TIMEOUT,
    LK_CONNECT_TIMEOUT, LK_MAX_CONNECTIONS, LK_BALANCE, LK_HEALTH_CHECK, LK_PROXY_PROTOCOL,
    LK_PROXY_PROTOCOL_CERT, LK_IDENTITY_HEADERS, LK_STRIP_HEADERS, LK_BACKEND_TIMEOUT,
    LK_MAX_HEADER_BYTES, LK_MAX_HEADERS, LK_POLICY, LK_COUNT
};

/* --- messages and nodes (config_values.c) --- */

/* Records "name:line: where..." as the error, unless one is recorded already (later errors are
 * usually consequences of the first). line 0: no line. */
void gw_cfg_fail(struct gw_cfg_ctx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* s quoted, escaped and cut to fit q; returns q->s. */
const char *gw_cfg_quote(struct gw_cfg_qbuf *q, const unsigned char *s, size_t len);
const char *gw_cfg_quote_node(struct gw_cfg_qbuf *q, const yaml_node_t *n);
int gw_cfg_mark_line(yaml_mark_t m);
int gw_cfg_node_line(const yaml_node_t *n);
const char *gw_cfg_node_kind(const yaml_node_t *n);     /* "a scalar", "a mapping", ... */
bool gw_cfg_scalar_eq(const yaml_node_t *n, const char *s);
bool gw_cfg_scalar_is_null(const yaml_node_t *n);
bool gw_cfg_has_control(const yaml_node_t *n);
/* strdup, recording "out of memory" at line on failure. */
char *gw_cfg_strdup(struct gw_cfg_ctx *c, const char *s, int line);
/* The number of items of sequence n, and item i (NULL, with an error recorded, if the document is
 * broken). */
size_t gw_cfg_seq_count(const yaml_node_t *n);
const yaml_node_t *gw_cfg_seq_item(struct gw_cfg_ctx *c, const yaml_node_t *n, size_t i);

/* --- values (config_values.c) --- */

/* *out points into the document: a non-empty string without control characters. */
int gw_cfg_get_string(struct gw_cfg_ctx *c, const char *where, const char *key,
                      const yaml_node_t *n, const char **out) GW_WUR;
/* Digits only, at most max. */
int gw_cfg_parse_uint(const char *s, unsigned long max, unsigned long *out) GW_WUR;
int gw_cfg_get_uint(struct gw_cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                    unsigned min, unsigned max, unsigned *out) GW_WUR;
/* A duration of more than 0 and less than a day, in milliseconds. */
int gw_cfg_get_duration(struct gw_cfg_ctx *c, const char *where, const char *key,
                        const yaml_node_t *n, unsigned *out) GW_WUR;
/* Writes a duration as the largest exact unit: "2s", "1500ms", "5m". */
void gw_cfg_format_duration(unsigned ms, char *buf, size_t len);
/* One of names[0..count); *out gets the matching values[i]. */
int gw_cfg_get_enum(struct gw_cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                    const char *const names[], const int values[], size_t count, int *out) GW_WUR;
/* YAML's true or false, written plainly (a quoted "true" is a string). */
int gw_cfg_get_bool(struct gw_cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                    int *out) GW_WUR;
/* "off", or a plain false: the way to turn a setting off. */
bool gw_cfg_is_off(const yaml_node_t *n);
/* An HTTP field name (RFC 9110 5.1: a token), 1 to GW_HEADER_NAME_MAX characters. */
bool gw_cfg_header_name_ok(const char *s);
int gw_cfg_get_header_name(struct gw_cfg_ctx *c, const char *where, const char *key,
                           const yaml_node_t *n, const char **out) GW_WUR;

/* gw_addr_parse, with the reason for a refusal (a static string) for messages. */
int gw_cfg_addr_parse(const char *text, struct gw_addr *out, const char **why) GW_WUR;
bool gw_cfg_addr_is_wildcard(const struct gw_addr *a);
unsigned gw_cfg_addr_port(const struct gw_addr *a);

/* --- mappings (config.c) --- */

/* Files each value of map (a mapping: the caller checks, to say what it should hold) under its
 * key's index in keys[]; unknown, non-scalar and duplicate keys are errors. */
int gw_cfg_map_collect(struct gw_cfg_ctx *c, const yaml_node_t *map, const char *where,
                       const char *const keys[], size_t nkeys,
                       struct gw_cfg_keyslot slots[]) GW_WUR;

/* A file path, relative ones taken from the configuration file's directory (config.c). */
int gw_cfg_get_path(struct gw_cfg_ctx *c, const char *where, const char *key, const yaml_node_t *n,
                    char **out) GW_WUR;

/* --- the process (config_process.c) --- */
/* log: to and facility (either slot's val may be NULL). */
int gw_cfg_parse_log_dest(struct gw_cfg_ctx *c, const struct gw_cfg_keyslot *to,
                          const struct gw_cfg_keyslot *facility) GW_WUR;
/* user, group, allow_root at the top level (any slot's val may be NULL). */
int gw_cfg_parse_privileges(struct gw_cfg_ctx *c, const struct gw_cfg_keyslot *user,
                            const struct gw_cfg_keyslot *group, const struct gw_cfg_keyslot *allow_root) GW_WUR;

/* --- admin (config_admin.c) --- */
int gw_cfg_parse_admin(struct gw_cfg_ctx *c, const struct gw_cfg_keyslot *s) GW_WUR;
void gw_cfg_admin_free(struct gw_config *cfg);

/* --- policies (config_policy.c) --- */

/* policies: { NAME: {...} }; fills c->cfg->policies. */
int gw_cfg_parse_policies(struct gw_cfg_ctx *c, const struct gw_cfg_keyslot *s) GW_WUR;
/* Resolves each listener's policy: name to index, and the rules a policy sets for its listener. */
int gw_cfg_link_policies(struct gw_cfg_ctx *c) GW_WUR;
void gw_cfg_policies_free(struct gw_config *cfg);

/* --- listener sections --- */

/* backends: [...] (config_backends.c); fills l->backends and l->nbackends, which stay consistent
 * for gw_config_free at every step. */
int gw_cfg_parse_backends(struct gw_cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                          const struct gw_cfg_keyslot *s) GW_WUR;
/* health_check: {...} (config_backends.c); l->health already holds the defaults. */
int gw_cfg_parse_health(struct gw_cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                        const struct gw_cfg_keyslot *s) GW_WUR;
/* The settings of an https listener (config_http.c), s indexed by LK_*: fills the identity header
 * defaults, then reads identity_headers, strip_headers, backend_timeout, max_header_bytes and
 * max_headers where given. */
int gw_cfg_parse_http(struct gw_cfg_ctx *c, const char *where, struct gw_listener_cfg *l,
                      const struct gw_cfg_keyslot s[]) GW_WUR;
/* Frees what gw_cfg_parse_http allocated (header names, strip_headers), NULLing the pointers. */
void gw_cfg_http_free(struct gw_listener_cfg *l);

#endif

/* config_policy.c - the policies: section and each listener's policy: setting.
 *
 *   policy_store: /var/lib/hsmgate/policy.db
 *   policies:
 *     partners:
 *       client_ca: [partners-ca.pem, {file: other-ca.pem, crl: required}]
 *       require_allowlist: true
 *       allowlist: partners            # default: the policy's name
 *       revocation: hard-fail          # or soft-fail
 *       stale_crl: fail-closed         # or a grace period: 6h, 2d
 *       required_eku: [clientAuth]     # [] for none
 *       max_chain_depth: 4
 *   listeners:
 *     - name: api
 *       auth: two-way
 *       policy: partners
 *
 * A listener with a policy takes its client CAs and chain depth from it; one without takes them
 * from its own client_ca and verify_depth, with the default rules (hard-fail, clientAuth, no
 * allowlist). Either way revocations in the store apply.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway/config_int.h"
#include "policies/pol.h"

#define GRACE_MAX_S (90u * 86400u)

enum {
    PK_CLIENT_CA, PK_REQUIRE_ALLOWLIST, PK_ALLOWLIST, PK_REVOCATION, PK_STALE_CRL, PK_REQUIRED_EKU,
    PK_MAX_CHAIN_DEPTH, PK_COUNT
};
static const char *const policy_keys[PK_COUNT] = {
    "client_ca", "require_allowlist", "allowlist", "revocation", "stale_crl", "required_eku",
    "max_chain_depth",
};

static const struct {
    const char *name;
    unsigned bit;
} eku_names[] = {
    {"clientAuth", POL_EKU_CLIENT_AUTH},   {"serverAuth", POL_EKU_SERVER_AUTH},
    {"codeSigning", POL_EKU_CODE_SIGNING}, {"emailProtection", POL_EKU_EMAIL},
    {"timeStamping", POL_EKU_TIME_STAMPING}, {"OCSPSigning", POL_EKU_OCSP_SIGNING},
};

/* The same characters as listener and allowlist names. */
static bool policy_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* One client_ca item: "file.pem" or {file: file.pem, crl: required|optional}. */
static int parse_ca(struct gw_cfg_ctx *c, const char *where, const yaml_node_t *n, struct gw_policy_ca_cfg *ca)
{
    ca->line = gw_cfg_node_line(n);
    if (n->type == YAML_SCALAR_NODE)
        return gw_cfg_get_path(c, where, "client_ca", n, &ca->file);
    if (n->type != YAML_MAPPING_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%sclient_ca items are file names or {file, crl}, not %s", where,
                    gw_cfg_node_kind(n));
        return -1;
    }
    static const char *const keys[] = {"file", "crl"};
    static const char *const crls[] = {"optional", "required"};
    static const int cv[] = {0, 1};
    struct gw_cfg_keyslot s[2];
    if (gw_cfg_map_collect(c, n, where, keys, 2, s) < 0)
        return -1;
    if (s[0].val == NULL) {
        gw_cfg_fail(c, ca->line, "%sclient_ca: file is required", where);
        return -1;
    }
    if (gw_cfg_get_path(c, where, "file", s[0].val, &ca->file) < 0)
        return -1;
    if (s[1].val != NULL && gw_cfg_get_enum(c, where, "crl", s[1].val, crls, cv, 2, &ca->crl_required) < 0)
        return -1;
    return 0;
}

static int parse_cas(struct gw_cfg_ctx *c, const char *where, struct gw_policy_cfg *p, const struct gw_cfg_keyslot *s)
{
    const yaml_node_t *n = s->val;
    size_t count = n->type == YAML_SEQUENCE_NODE ? gw_cfg_seq_count(n) : 1;

    if (count == 0) {
        gw_cfg_fail(c, s->line, "%sclient_ca must name at least one CA file", where);
        return -1;
    }
    p->cas = calloc(count, sizeof(*p->cas));
    if (p->cas == NULL) {
        gw_cfg_fail(c, s->line, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = n->type == YAML_SEQUENCE_NODE ? gw_cfg_seq_item(c, n, i) : n;
        if (item == NULL)
            return -1;
        p->ncas++;
        if (parse_ca(c, where, item, &p->cas[i]) < 0)
            return -1;
    }
    return 0;
}

static int parse_ekus(struct gw_cfg_ctx *c, const char *where, const yaml_node_t *n, unsigned *out)
{
    struct gw_cfg_qbuf q;
    *out = 0;
    if (n->type != YAML_SEQUENCE_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%srequired_eku must be a list such as [clientAuth] ([] for none), not %s",
                    where, gw_cfg_node_kind(n));
        return -1;
    }
    for (size_t i = 0; i < gw_cfg_seq_count(n); i++) {
        const yaml_node_t *item = gw_cfg_seq_item(c, n, i);
        const char *v;
        size_t k;
        if (item == NULL || gw_cfg_get_string(c, where, "required_eku", item, &v) < 0)
            return -1;
        for (k = 0; k < sizeof(eku_names) / sizeof(eku_names[0]); k++)
            if (strcmp(v, eku_names[k].name) == 0)
                break;
        if (k == sizeof(eku_names) / sizeof(eku_names[0])) {
            gw_cfg_fail(c, gw_cfg_node_line(item),
                        "%srequired_eku: unknown usage %s (clientAuth, serverAuth, codeSigning, emailProtection, "
                        "timeStamping, OCSPSigning)", where, gw_cfg_quote_node(&q, item));
            return -1;
        }
        *out |= eku_names[k].bit;
    }
    return 0;
}

/* stale_crl: fail-closed, or a grace period ("6h", "2d") during which a CRL past its nextUpdate
 * is still used. */
static int parse_stale(struct gw_cfg_ctx *c, const char *where, const yaml_node_t *n, unsigned *out)
{
    const char *v;
    struct gw_cfg_qbuf q;
    if (gw_cfg_get_string(c, where, "stale_crl", n, &v) < 0)
        return -1;
    if (strcmp(v, "fail-closed") == 0) {
        *out = 0;
        return 0;
    }
    /* N followed by d, h, m or s; counted in seconds (a day in milliseconds would overflow soon). */
    size_t len = strlen(v);
    unsigned long num = 0, unit = 0;
    if (len >= 2 && len < 16) {
        switch (v[len - 1]) {
        case 'd': unit = 86400; break;
        case 'h': unit = 3600; break;
        case 'm': unit = 60; break;
        case 's': unit = 1; break;
        default: break;
        }
    }
    if (len > 0 && len < 16 && strspn(v, "0123456789") == len)
        unit = 1, len++; /* a bare number of seconds, as for every duration */
    if (unit != 0) {
        char buf[16];
        memcpy(buf, v, len - 1);
        buf[len - 1] = '\0';
        if (gw_cfg_parse_uint(buf, GRACE_MAX_S / unit, &num) == 0 && num > 0) {
            *out = (unsigned)(num * unit);
            return 0;
        }
    }
    gw_cfg_fail(c, gw_cfg_node_line(n),
                "%sstale_crl must be fail-closed or a grace period from 1s to 90d (\"6h\", \"2d\"), not %s", where,
                gw_cfg_quote_node(&q, n));
    return -1;
}

static int parse_policy(struct gw_cfg_ctx *c, const yaml_node_t *k, const yaml_node_t *n, struct gw_policy_cfg *p)
{
    static const char *const revs[] = {"hard-fail", "soft-fail"};
    static const int rv[] = {0, 1};
    struct gw_cfg_keyslot s[PK_COUNT];
    struct gw_cfg_qbuf q;
    char where[96];
    const char *v;

    p->line = gw_cfg_node_line(k);
    p->required_eku = POL_EKU_CLIENT_AUTH;
    p->max_chain_depth = 4;
    if (k->type != YAML_SCALAR_NODE) {
        gw_cfg_fail(c, p->line, "policies: a policy name is a string, not %s", gw_cfg_node_kind(k));
        return -1;
    }
    if (gw_cfg_has_control(k) || !policy_name_ok((const char *)k->data.scalar.value)) {
        gw_cfg_fail(c, p->line, "policies: a policy name is 1 to 64 characters from A-Z, a-z, 0-9, '_', '.', '-', not %s",
                    gw_cfg_quote_node(&q, k));
        return -1;
    }
    p->name = gw_cfg_strdup(c, (const char *)k->data.scalar.value, p->line);
    if (p->name == NULL)
        return -1;
    snprintf(where, sizeof(where), "policy \"%s\": ", p->name);
    if (n->type != YAML_MAPPING_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "%smust be a mapping, not %s", where, gw_cfg_node_kind(n));
        return -1;
    }
    if (gw_cfg_map_collect(c, n, where, policy_keys, PK_COUNT, s) < 0)
        return -1;
    if (s[PK_CLIENT_CA].val == NULL) {
        gw_cfg_fail(c, p->line, "%sclient_ca is required (the CAs whose client certificates it admits)", where);
        return -1;
    }
    if (parse_cas(c, where, p, &s[PK_CLIENT_CA]) < 0)
        return -1;
    if (s[PK_REQUIRE_ALLOWLIST].val != NULL &&
        gw_cfg_get_bool(c, where, "require_allowlist", s[PK_REQUIRE_ALLOWLIST].val, &p->require_allowlist) < 0)
        return -1;
    if (s[PK_ALLOWLIST].val != NULL) {
        if (gw_cfg_get_string(c, where, "allowlist", s[PK_ALLOWLIST].val, &v) < 0)
            return -1;
        if (!policy_name_ok(v)) {
            gw_cfg_fail(c, s[PK_ALLOWLIST].line, "%sallowlist: a list name is 1 to 64 characters from A-Z, a-z, "
                        "0-9, '_', '.', '-', not %s", where, gw_cfg_quote_node(&q, s[PK_ALLOWLIST].val));
            return -1;
        }
        if (!p->require_allowlist) {
            gw_cfg_fail(c, s[PK_ALLOWLIST].line, "%sallowlist is named but require_allowlist is not true: "
                        "it would not be consulted", where);
            return -1;
        }
        p->allowlist = gw_cfg_strdup(c, v, s[PK_ALLOWLIST].line);
    } else {
        p->allowlist = gw_cfg_strdup(c, p->name, p->line);
    }
    if (p->allowlist == NULL)
        return -1;
    if (s[PK_REVOCATION].val != NULL &&
        gw_cfg_get_enum(c, where, "revocation", s[PK_REVOCATION].val, revs, rv, 2, &p->soft_fail) < 0)
        return -1;
    if (s[PK_STALE_CRL].val != NULL && parse_stale(c, where, s[PK_STALE_CRL].val, &p->crl_grace_s) < 0)
        return -1;
    if (s[PK_REQUIRED_EKU].val != NULL && parse_ekus(c, where, s[PK_REQUIRED_EKU].val, &p->required_eku) < 0)
        return -1;
    if (s[PK_MAX_CHAIN_DEPTH].val != NULL &&
        gw_cfg_get_uint(c, where, "max_chain_depth", s[PK_MAX_CHAIN_DEPTH].val, 1, 16, &p->max_chain_depth) < 0)
        return -1;
    return 0;
}

int gw_cfg_parse_policies(struct gw_cfg_ctx *c, const struct gw_cfg_keyslot *s)
{
    const yaml_node_t *n = s->val;
    struct gw_config *cfg = c->cfg;

    if (n->type != YAML_MAPPING_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(n), "policies must be a mapping of policy names to policies, not %s",
                    gw_cfg_node_kind(n));
        return -1;
    }
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (count == 0)
        return 0;
    cfg->policies = calloc(count, sizeof(*cfg->policies));
    if (cfg->policies == NULL) {
        gw_cfg_fail(c, s->line, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const yaml_node_pair_t *pr = &n->data.mapping.pairs.start[i];
        const yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
        const yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
        if (k == NULL || v == NULL) {
            gw_cfg_fail(c, s->line, "broken YAML document");
            return -1;
        }
        cfg->npolicies++;
        if (parse_policy(c, k, v, &cfg->policies[i]) < 0)
            return -1;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->policies[j].name, cfg->policies[i].name) == 0) {
                gw_cfg_fail(c, cfg->policies[i].line, "duplicate policy name \"%s\" (first at line %d)",
                            cfg->policies[i].name, cfg->policies[j].line);
                return -1;
            }
        }
    }
    return 0;
}

int gw_cfg_link_policies(struct gw_cfg_ctx *c)
{
    struct gw_config *cfg = c->cfg;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        struct gw_listener_cfg *l = &cfg->listeners[i];
        if (l->policy == NULL)
            continue;
        char where[96];
        snprintf(where, sizeof(where), "listener \"%s\": ", l->name);
        for (size_t j = 0; j < cfg->npolicies; j++)
            if (strcmp(cfg->policies[j].name, l->policy) == 0)
                l->policy_idx = (int)j;
        if (l->policy_idx < 0) {
            gw_cfg_fail(c, l->policy_line, "%sno policy named \"%s\" under policies", where, l->policy);
            return -1;
        }
        if (l->auth == GW_AUTH_ONE_WAY) {
            gw_cfg_fail(c, l->policy_line, "%sa policy decides on client certificates, and auth one-way asks for "
                        "none (use two-way or optional)", where);
            return -1;
        }
        if (l->client_ca != NULL) {
            gw_cfg_fail(c, l->client_ca_line, "%sclient_ca comes from policy \"%s\" and cannot be set here too",
                        where, l->policy);
            return -1;
        }
        if (l->verify_depth_set) {
            gw_cfg_fail(c, l->policy_line, "%sverify_depth comes from policy \"%s\" (max_chain_depth)", where,
                        l->policy);
            return -1;
        }
        l->verify_depth = cfg->policies[l->policy_idx].max_chain_depth;
    }
    for (size_t j = 0; j < cfg->npolicies; j++) {
        const struct gw_policy_cfg *p = &cfg->policies[j];
        if (p->require_allowlist && cfg->policy_store == NULL) {
            gw_cfg_fail(c, p->line, "policy \"%s\": require_allowlist needs a policy_store to hold the allowlist",
                        p->name);
            return -1;
        }
        for (size_t k = 0; k < p->ncas; k++) {
            if (p->cas[k].crl_required && cfg->policy_store == NULL) {
                gw_cfg_fail(c, p->cas[k].line, "policy \"%s\": crl: required needs a policy_store to hold the CRLs",
                            p->name);
                return -1;
            }
        }
    }
    return 0;
}

void gw_cfg_policies_free(struct gw_config *cfg)
{
    for (size_t i = 0; i < cfg->npolicies; i++) {
        struct gw_policy_cfg *p = &cfg->policies[i];
        free(p->name);
        p->name = NULL;
        free(p->allowlist);
        p->allowlist = NULL;
        for (size_t k = 0; k < p->ncas; k++) {
            free(p->cas[k].file);
            p->cas[k].file = NULL;
        }
        free(p->cas);
        p->cas = NULL;
    }
    free(cfg->policies);
    cfg->policies = NULL;
    cfg->npolicies = 0;
}

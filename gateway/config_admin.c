/* config_admin.c - the admin: section (the REST admin API, admin-api/adm.h).
 *
 *   admin:
 *     bind: 127.0.0.1:9440          # default; "off" for no TCP listener (a Unix socket only)
 *     unix_socket: /run/hsmgate/admin.sock
 *     tokens_file: /etc/hsmgate/admin.tokens
 *     ca_certificate: /etc/hsmgate/root-ca.pem        # the CA of POST /v1/certificates and /crl:
 *     ca_key: "pkcs11:token=hsmgate;object=root"      #   both or neither
 *     client_validity: 365d         # issued certificates' validity and the most a request may ask
 *     crl_validity: 7d              # nextUpdate - thisUpdate of /crl
 *     crl_url: http://gw.example:9440/crl   # put in issued certificates (cRLDistributionPoints)
 *     tls:                          # optional: the API over mutual TLS, the admin's identity from
 *       bind: 0.0.0.0:9441          #   their certificate (roles: "cert-sha256:" lines of tokens_file)
 *       certificate: admin-server.pem
 *       key: "pkcs11:token=hsmgate;object=admin"
 *       client_ca: admin-ca.pem     # or policy: NAME
 *
 * The tls: mapping becomes an https listener named "admin-tls" (config.c, after the listeners), so
 * the handshake, the HSM key, revocation and the identity headers are the data plane's own code.
 *
 * Without an admin: section (or with admin: off) there is no admin API.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/config_int.h"
#include "pkcs11/ca.h"

#define CLIENT_VALIDITY_DEFAULT_D 365u
#define CLIENT_VALIDITY_MAX_D 825u
#define CRL_VALIDITY_DEFAULT_S (7u * 86400u)
#define CRL_VALIDITY_MIN_S 60u
#define CRL_VALIDITY_MAX_S (365u * 86400u)

/* "N" followed by one of units ("d", "h", "m", "s"; a bare number is in base units), in seconds
 * (base: the seconds of a bare number), from min to max. Durations of days do not fit
 * gw_cfg_get_duration's milliseconds. -1 after recording an error that names the range (shown as
 * range_text). */
static int get_long_duration(struct gw_cfg_ctx *c, const char *key, const yaml_node_t *n, const char *units,
                             unsigned long base, unsigned long min, unsigned long max, const char *range_text,
                             unsigned *out)
{
    struct gw_cfg_qbuf q;
    const char *v;
    char buf[16];
    unsigned long num = 0, unit = 0;

    if (gw_cfg_get_string(c, "admin: ", key, n, &v) < 0)
        return -1;
    size_t len = strlen(v);
    if (len > 0 && len < sizeof(buf)) {
        char last = v[len - 1];
        memcpy(buf, v, len + 1);
        if (last >= '0' && last <= '9') {
            unit = base;
        } else if (strchr(units, last) != NULL) {
            unit = last == 'd' ? 86400 : last == 'h' ? 3600 : last == 'm' ? 60 : 1;
            buf[len - 1] = '\0';
        }
    }
    if (unit != 0 && gw_cfg_parse_uint(buf, max / unit, &num) == 0 && num * unit >= min) {
        *out = (unsigned)(num * unit);
        return 0;
    }
    gw_cfg_fail(c, gw_cfg_node_line(n), "admin: %s must be %s, not %s", key, range_text, gw_cfg_quote_node(&q, n));
    return -1;
}

int gw_cfg_parse_admin(struct gw_cfg_ctx *c, const struct gw_cfg_keyslot *s)
{
    static const char *const keys[] = {"bind", "unix_socket", "tokens_file", "ca_certificate", "ca_key",
                                       "client_validity", "crl_validity", "tls", "crl_url"};
    struct gw_cfg_keyslot k[9];
    struct gw_admin_cfg *a = &c->cfg->admin;
    struct gw_cfg_qbuf q;
    const char *v, *why = NULL;

    a->line = s->line;
    if (gw_cfg_is_off(s->val))
        return 0;
    if (s->val->type != YAML_MAPPING_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(s->val), "admin must be a mapping (bind, unix_socket, tokens_file, ...) or off, not %s",
                    gw_cfg_node_kind(s->val));
        return -1;
    }
    if (gw_cfg_map_collect(c, s->val, "admin: ", keys, 9, k) < 0)
        return -1;
    a->enabled = 1;
    a->tcp = 1;
    if (gw_cfg_addr_parse("127.0.0.1:9440", &a->bind, &why) < 0) {
        gw_cfg_fail(c, a->line, "admin: the default bind does not parse");
        return -1;
    }
    if (k[0].val != NULL) {
        if (gw_cfg_is_off(k[0].val)) {
            a->tcp = 0;
        } else {
            if (gw_cfg_get_string(c, "admin: ", "bind", k[0].val, &v) < 0)
                return -1;
            if (gw_cfg_addr_parse(v, &a->bind, &why) < 0) {
                gw_cfg_fail(c, gw_cfg_node_line(k[0].val), "admin: bind %s: %s", gw_cfg_quote_node(&q, k[0].val), why);
                return -1;
            }
        }
    }
    if (k[1].val != NULL && gw_cfg_get_path(c, "admin: ", "unix_socket", k[1].val, &a->unix_socket) < 0)
        return -1;
    if (k[2].val != NULL && gw_cfg_get_path(c, "admin: ", "tokens_file", k[2].val, &a->tokens_file) < 0)
        return -1;
    a->client_validity_days = CLIENT_VALIDITY_DEFAULT_D;
    a->crl_validity_s = CRL_VALIDITY_DEFAULT_S;
    if (k[3].val != NULL) {
        if (gw_cfg_get_path(c, "admin: ", "ca_certificate", k[3].val, &a->ca_certificate) < 0)
            return -1;
        a->ca_certificate_line = k[3].line;
    }
    if (k[4].val != NULL) {
        if (gw_cfg_get_string(c, "admin: ", "ca_key", k[4].val, &v) < 0)
            return -1;
        /* The root's key never leaves the HSM: a key file is not an option (RFC 7512 3: the scheme is
         * case-insensitive). */
        if (strncasecmp(v, "pkcs11:", 7) != 0) {
            gw_cfg_fail(c, k[4].line, "admin: ca_key must be a pkcs11: URI of the root CA's key in the HSM, not %s",
                        gw_cfg_quote_node(&q, k[4].val));
            return -1;
        }
        if ((a->ca_key = gw_cfg_strdup(c, v, k[4].line)) == NULL)
            return -1;
        a->ca_key_line = k[4].line;
    }
    if ((a->ca_key == NULL) != (a->ca_certificate == NULL)) {
        gw_cfg_fail(c, a->ca_key != NULL ? a->ca_key_line : a->ca_certificate_line,
                    "admin: %s needs %s: the CA is its certificate and its key in the HSM",
                    a->ca_key != NULL ? "ca_key" : "ca_certificate", a->ca_key != NULL ? "ca_certificate" : "ca_key");
        return -1;
    }
    if (k[5].val != NULL &&
        get_long_duration(c, "client_validity", k[5].val, "d", 86400, 86400, CLIENT_VALIDITY_MAX_D * 86400ul,
                          "a number of days from 1d to 825d", &a->client_validity_days) < 0)
        return -1;
    if (k[5].val != NULL)
        a->client_validity_days /= 86400;
    if (k[6].val != NULL &&
        get_long_duration(c, "crl_validity", k[6].val, "dhms", 1, CRL_VALIDITY_MIN_S, CRL_VALIDITY_MAX_S,
                          "a duration from 1m to 365d (\"7d\", \"12h\")", &a->crl_validity_s) < 0)
        return -1;
    if (k[8].val != NULL) {
        if (gw_cfg_get_string(c, "admin: ", "crl_url", k[8].val, &v) < 0)
            return -1;
        if (!hsm_ca_crl_url_ok(v)) {
            gw_cfg_fail(c, k[8].line, "admin: crl_url must be an http:// URL (printable ASCII, no spaces, at most "
                        "1024 characters), not %s", gw_cfg_quote_node(&q, k[8].val));
            return -1;
        }
        if (a->ca_key == NULL) {
            gw_cfg_fail(c, k[8].line, "admin: crl_url goes into the certificates the CA issues: it needs ca_key and "
                        "ca_certificate");
            return -1;
        }
        if ((a->crl_url = gw_cfg_strdup(c, v, k[8].line)) == NULL)
            return -1;
    }
    if (k[7].val != NULL && !gw_cfg_is_off(k[7].val)) {
        if (k[7].val->type != YAML_MAPPING_NODE) {
            gw_cfg_fail(c, gw_cfg_node_line(k[7].val), "admin: tls must be a mapping (bind, certificate, key, client_ca, "
                        "...) or off, not %s", gw_cfg_node_kind(k[7].val));
            return -1;
        }
        a->tls = 1;
        a->tls_line = k[7].line;
        c->admin_tls = k[7].val;
        c->admin_tls_line = k[7].line;
    }
    if (!a->tcp && a->unix_socket == NULL && !a->tls) {
        gw_cfg_fail(c, a->line, "admin: bind is off and there is no unix_socket nor tls: the API would listen "
                    "nowhere (say admin: off instead)");
        return -1;
    }
    return 0;
}

void gw_cfg_admin_free(struct gw_config *cfg)
{
    free(cfg->admin.unix_socket);
    cfg->admin.unix_socket = NULL;
    free(cfg->admin.tokens_file);
    cfg->admin.tokens_file = NULL;
    free(cfg->admin.ca_certificate);
    cfg->admin.ca_certificate = NULL;
    free(cfg->admin.ca_key);
    cfg->admin.ca_key = NULL;
    free(cfg->admin.crl_url);
    cfg->admin.crl_url = NULL;
}

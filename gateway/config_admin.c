/* config_admin.c - the admin: section (the REST admin API, admin-api/adm.h).
 *
 *   admin:
 *     bind: 127.0.0.1:9440          # default; "off" for no TCP listener (a Unix socket only)
 *     unix_socket: /run/hsmgate/admin.sock
 *     tokens_file: /etc/hsmgate/admin.tokens
 *
 * Without an admin: section (or with admin: off) there is no admin API.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway/config_int.h"

int gw_cfg_parse_admin(struct gw_cfg_ctx *c, const struct gw_cfg_keyslot *s)
{
    static const char *const keys[] = {"bind", "unix_socket", "tokens_file"};
    struct gw_cfg_keyslot k[3];
    struct gw_admin_cfg *a = &c->cfg->admin;
    struct gw_cfg_qbuf q;
    const char *v, *why = NULL;

    a->line = s->line;
    if (gw_cfg_is_off(s->val))
        return 0;
    if (s->val->type != YAML_MAPPING_NODE) {
        gw_cfg_fail(c, gw_cfg_node_line(s->val), "admin must be a mapping (bind, unix_socket, tokens_file) or off, not %s",
                    gw_cfg_node_kind(s->val));
        return -1;
    }
    if (gw_cfg_map_collect(c, s->val, "admin: ", keys, 3, k) < 0)
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
    if (!a->tcp && a->unix_socket == NULL) {
        gw_cfg_fail(c, a->line, "admin: bind is off and there is no unix_socket: the API would listen nowhere "
                    "(say admin: off instead)");
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
}

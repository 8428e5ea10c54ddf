/* config_process.c - the settings about the process itself rather than its traffic: where the error
 * log goes (log: to, facility) and whose privileges it runs with (user, group, allow_root).
 *
 * Names are checked for their shape only: whether the user exists is the business of the machine the
 * gateway runs on, and gateway/service.c looks it up (with this file's line) at `check` and `run`. */
#include "gateway/config.h"
#include "gateway/config_int.h"

#include <string.h>
#include <syslog.h>

/* The POSIX portable user name characters (IEEE Std 1003.1, 3.437), 1-32 characters, not starting
 * with "-"; or digits only (a numeric id, for accounts a container maps without a name). */
static bool account_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32 || s[0] == '-')
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int get_account(struct gw_cfg_ctx *c, const char *key, const struct gw_cfg_keyslot *s, char **out,
                       int *line)
{
    const char *v;
    struct gw_cfg_qbuf q;

    if (gw_cfg_get_string(c, "", key, s->val, &v) < 0)
        return -1;
    if (!account_name_ok(v)) {
        gw_cfg_fail(c, gw_cfg_node_line(s->val),
                    "%s must be a %s name (letters, digits, \".\", \"_\", \"-\"; 1-32 characters) or a numeric id, "
                    "not %s", key, key, gw_cfg_quote_node(&q, s->val));
        return -1;
    }
    *out = gw_cfg_strdup(c, v, s->line);
    if (*out == NULL)
        return -1;
    *line = s->line;
    return 0;
}

int gw_cfg_parse_privileges(struct gw_cfg_ctx *c, const struct gw_cfg_keyslot *user,
                            const struct gw_cfg_keyslot *group, const struct gw_cfg_keyslot *allow_root)
{
    struct gw_config *cfg = c->cfg;

    if (user->val != NULL && get_account(c, "user", user, &cfg->user, &cfg->user_line) < 0)
        return -1;
    if (group->val != NULL) {
        if (get_account(c, "group", group, &cfg->group, &cfg->group_line) < 0)
            return -1;
        if (cfg->user == NULL) {
            /* A group alone would leave the process root with another group: not what anyone means. */
            gw_cfg_fail(c, group->line, "group needs user: the gateway switches to a user and its group together");
            return -1;
        }
    }
    if (allow_root->val != NULL && gw_cfg_get_bool(c, "", "allow_root", allow_root->val, &cfg->allow_root) < 0)
        return -1;
    return 0;
}

int gw_cfg_parse_log_dest(struct gw_cfg_ctx *c, const struct gw_cfg_keyslot *to,
                          const struct gw_cfg_keyslot *facility)
{
    static const char *const dests[] = {"stderr", "syslog"};
    static const int dv[] = {0, 1};
    static const char *const facilities[] = {"daemon", "local0", "local1", "local2", "local3",
                                             "local4", "local5", "local6", "local7"};
    static const int fv[] = {LOG_DAEMON, LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3,
                             LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};
    struct gw_config *cfg = c->cfg;

    if (to->val != NULL && gw_cfg_get_enum(c, "log: ", "to", to->val, dests, dv, 2, &cfg->log_syslog) < 0)
        return -1;
    if (facility->val != NULL) {
        if (gw_cfg_get_enum(c, "log: ", "facility", facility->val, facilities, fv, 9, &cfg->log_facility) < 0)
            return -1;
        if (!cfg->log_syslog) {
            gw_cfg_fail(c, facility->line, "log: facility needs to: syslog (the error log goes to stderr)");
            return -1;
        }
    }
    return 0;
}

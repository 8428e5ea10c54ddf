/* service.c - the gateway as a system service: the switch to an unprivileged user after start-up and
 * the service manager's notifications (sd_notify(3) from libsystemd).
 *
 * Order of start-up (server.c): as root, the gateway binds every listening socket (ports below 1024
 * need root or CAP_NET_BIND_SERVICE), opens the HSM (module files, token files and PIN files that only
 * root may read), the policy store and the admin API's sockets, and starts its threads; only then does
 * it switch users, and only after the switch does it say it is ready. What it has to open again later
 * must be reachable by the new user: docs/operations.md lists it (the access log after a rotation, the
 * tokens file at a reload, the PIN file when a lost token comes back, new listening sockets on a
 * reload, which for ports below 1024 need CAP_NET_BIND_SERVICE). */
#include "gateway/service.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "gateway/log.h"
#include "gateway/server.h"

static int allow_root_flag;

void gw_service_allow_root(int on)
{
    allow_root_flag = on;
}

/* A numeric id written as digits only; -1 if s is a name. */
static long numeric_id(const char *s)
{
    char *end = NULL;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v >= (unsigned long)INT_MAX)
        return -1;
    return (long)v;
}

int gw_service_ids(const struct gw_config *cfg, struct gw_ids *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (cfg->user == NULL)
        return 0;
    out->set = 1;
    snprintf(out->name, sizeof(out->name), "%s", cfg->user);
    long id = numeric_id(cfg->user);
    /* getpwnam also answers from NSS (LDAP, sssd): it is called once, here, before any thread runs. */
    errno = 0;
    struct passwd *pw = id >= 0 ? getpwuid((uid_t)id) : getpwnam(cfg->user);
    if (pw != NULL) {
        out->uid = pw->pw_uid;
        out->gid = pw->pw_gid;
        out->named = 1;
        snprintf(out->name, sizeof(out->name), "%s", pw->pw_name);
    } else if (id >= 0) {
        /* A uid without a name (a container's mapped id): its group must be given. */
        out->uid = (uid_t)id;
        if (cfg->group == NULL) {
            snprintf(err, errlen, "%s:%d: user %s has no entry in the user database: give group: as well",
                     cfg->path, cfg->user_line, cfg->user);
            return -1;
        }
    } else {
        snprintf(err, errlen, "%s:%d: user \"%s\" does not exist%s%s", cfg->path, cfg->user_line, cfg->user,
                 errno != 0 ? ": " : " (create it: useradd --system --no-create-home --shell /usr/sbin/nologin ",
                 errno != 0 ? strerror(errno) : "hsmgate; or systemd-sysusers)");
        return -1;
    }
    if (cfg->group != NULL) {
        id = numeric_id(cfg->group);
        errno = 0;
        struct group *gr = id >= 0 ? getgrgid((gid_t)id) : getgrnam(cfg->group);
        if (gr != NULL) {
            out->gid = gr->gr_gid;
        } else if (id >= 0) {
            out->gid = (gid_t)id;
        } else {
            snprintf(err, errlen, "%s:%d: group \"%s\" does not exist", cfg->path, cfg->group_line, cfg->group);
            return -1;
        }
    }
    if (out->uid == 0) {
        snprintf(err, errlen, "%s:%d: user %s is root: name an unprivileged user, or leave user: out and set "
                 "allow_root: true", cfg->path, cfg->user_line, cfg->user);
        return -1;
    }
    return 0;
}

int gw_service_may_run(const struct gw_config *cfg, const struct gw_ids *ids, char *err, size_t errlen)
{
    if (geteuid() == 0) {
        if (ids->set || cfg->allow_root || allow_root_flag)
            return 0;
        snprintf(err, errlen, "%s: refusing to run as root: set user: (and group:) to switch to an unprivileged "
                 "user once the listeners are bound, or allow_root: true (hsmgate run --allow-root) to stay root",
                 cfg->path);
        return -1;
    }
    if (ids->set && (geteuid() != ids->uid || getegid() != ids->gid)) {
        snprintf(err, errlen, "%s:%d: user %s: cannot switch to uid %ld gid %ld: running as uid %ld gid %ld, "
                 "not root (leave user: out when the service manager starts the gateway as that user)",
                 cfg->path, cfg->user_line, ids->name, (long)ids->uid, (long)ids->gid, (long)geteuid(),
                 (long)getegid());
        return -1;
    }
    return 0;
}

int gw_service_drop(struct gw_server *srv, const struct gw_ids *ids, char *err, size_t errlen)
{
    if (!ids->set || (geteuid() == ids->uid && getuid() == ids->uid && getegid() == ids->gid))
        return 0;
    /* The admin API's TLS front is reached over a Unix socket in a 0700 directory made as root: the
     * workers that connect to it are about to be that user. */
    if (srv->admin_front_dir[0] != '\0' &&
        (chown(srv->admin_front_dir, ids->uid, ids->gid) != 0 || chown(srv->admin_front_path, ids->uid, ids->gid) != 0)) {
        snprintf(err, errlen, "cannot give %s to user %s: %s", srv->admin_front_dir, ids->name, strerror(errno));
        return -1;
    }
    if (gw_access_log_chown(ids->uid, ids->gid) != 0)
        gw_log(LOG_WARNING, "cannot give the access log to user %s (%s): a reopen after a rotation may fail",
               ids->name, strerror(errno));
    /* Groups first: setgid and setgroups need root, which setuid gives up. */
    if ((ids->named ? initgroups(ids->name, ids->gid) : setgroups(1, &ids->gid)) != 0) {
        snprintf(err, errlen, "cannot set the groups of user %s: %s", ids->name, strerror(errno));
        return -1;
    }
    if (setgid(ids->gid) != 0) {
        snprintf(err, errlen, "cannot switch to group %ld: %s", (long)ids->gid, strerror(errno));
        return -1;
    }
    /* glibc's setuid changes every thread's credentials (the workers already run), real, effective
     * and saved alike since the process is privileged. */
    if (setuid(ids->uid) != 0) {
        snprintf(err, errlen, "cannot switch to user %s: %s", ids->name, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0 || seteuid(0) == 0 || getuid() != ids->uid || geteuid() != ids->uid ||
        getgid() != ids->gid || getegid() != ids->gid) {
        snprintf(err, errlen, "switched to user %s, yet root can be had back: stopping", ids->name);
        return -1;
    }
    gw_log(LOG_INFO, "running as user %s (uid %ld, gid %ld)", ids->name, (long)ids->uid, (long)ids->gid);
    return 0;
}

void gw_service_notify(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || getenv("NOTIFY_SOCKET") == NULL)
        return;
    int rc = sd_notify(0, msg);
    if (rc < 0)
        gw_log(LOG_WARNING, "cannot notify the service manager: %s", strerror(-rc));
}

/* Every worker turned its loop within max_ms (they do every 250 ms when idle). */
static int workers_alive(struct gw_server *srv, uint64_t now, uint64_t max_ms, unsigned *stuck)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        uint64_t beat = atomic_load_explicit(&srv->workers[i].beat_ms, memory_order_relaxed);
        if (now > beat && now - beat > max_ms) {
            *stuck = i;
            return 0;
        }
    }
    return 1;
}

int gw_service_wait_signal(struct gw_server *srv, const sigset_t *set)
{
    static int checked;
    static uint64_t interval_ms, next_ms;
    static int withheld;
    if (!checked) {
        uint64_t usec = 0;
        checked = 1;
        /* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID, if set, is this process. */
        if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
            interval_ms = usec / 2000;
            gw_log(LOG_INFO, "watchdog: every %llu ms", (unsigned long long)interval_ms);
        }
    }
    if (interval_ms == 0)
        return sigwaitinfo(set, NULL);
    for (;;) {
        uint64_t now = gw_now_ms();
        if (now >= next_ms) {
            unsigned stuck = 0;
            if (workers_alive(srv, now, 2 * interval_ms, &stuck)) {
                gw_service_notify("WATCHDOG=1");
                withheld = 0;
            } else if (!withheld) {
                withheld = 1;
                gw_log(LOG_ERR, "watchdog: worker %u has not turned its event loop for over %llu ms: no ping",
                       stuck, (unsigned long long)(2 * interval_ms));
            }
            next_ms = now + interval_ms;
        }
        uint64_t wait = next_ms - now;
        struct timespec ts = { (time_t)(wait / 1000), (long)(wait % 1000) * 1000000L };
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0 || errno != EAGAIN)
            return sig;
    }
}

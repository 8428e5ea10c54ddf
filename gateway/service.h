/* service.h - the gateway as a system service (service.c): whose privileges it keeps after start-up,
 * and what it tells the service manager (systemd's sd_notify: readiness, reloads, the watchdog).
 * Internal to gateway/; called from server.c on the main thread. */
#ifndef HSMGATE_GATEWAY_SERVICE_H
#define HSMGATE_GATEWAY_SERVICE_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include "gateway/config.h"

struct gw_server;

/* The account to switch to (config user, group), looked up once at start. */
struct gw_ids {
    int set;                    /* user: was given */
    uid_t uid;
    gid_t gid;
    int named;                  /* the user has a passwd entry: its supplementary groups come from initgroups */
    char name[64];              /* the user as written, for messages */
};

/* `hsmgate run --allow-root`: the same as allow_root: true in the file. */
void gw_service_allow_root(int on);

/* Looks up cfg's user and group (names or numeric ids). 0, or -1 with "file:line: why" in err. */
int gw_service_ids(const struct gw_config *cfg, struct gw_ids *out, char *err, size_t errlen) GW_WUR;

/* Before `run` opens anything: as root, the gateway must be told either whom to become (user:) or that
 * it may stay root (allow_root); not as root, it cannot become another user. 0, or -1 with why. */
int gw_service_may_run(const struct gw_config *cfg, const struct gw_ids *ids, char *err, size_t errlen) GW_WUR;

/* After every socket is bound, the HSM, the store and the admin API are open and every worker has
 * started: gives the files the gateway must still reopen (the access log, the admin TLS front's
 * socket) to the user, then setgroups/initgroups, setgid, setuid (glibc applies them to every thread
 * of the process), and checks that root cannot be had back. Does nothing when ids->set is 0 or the
 * process already is that user. 0, or -1 with why (the caller stops: it must not serve as root). */
int gw_service_drop(struct gw_server *srv, const struct gw_ids *ids, char *err, size_t errlen) GW_WUR;

/* One sd_notify(3) message ("READY=1\nSTATUS=..."), when the gateway runs under a service manager
 * (NOTIFY_SOCKET); otherwise nothing. */
void gw_service_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* sigwaitinfo(set) that, when the service manager asked for a watchdog (WATCHDOG_USEC, and
 * WATCHDOG_PID is this process), sends WATCHDOG=1 every half of its interval as long as every worker
 * of srv has turned its event loop within the interval: a worker stuck in a call withholds the ping,
 * and the manager restarts the gateway. Returns the signal, or -1 (EINTR). */
int gw_service_wait_signal(struct gw_server *srv, const sigset_t *set);

#endif

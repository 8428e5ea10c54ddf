/* log.h - the gateway's two logs: the error log (human lines on stderr) and the access log
 * (one JSON object per line, per connection). Both are safe to call from any thread. */
#ifndef HSMGATE_GATEWAY_LOG_H
#define HSMGATE_GATEWAY_LOG_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <syslog.h>
#include <jansson.h>

/* Sets the error log's threshold from "error", "warning", "info" or "debug"; returns -1 if unknown. */
int gw_log_set_level(const char *name);
/* Writes "2026-11-26T21:30:00.123Z hsmgate[pid]: level: message" to stderr when level passes. */
void gw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int gw_log_enabled(int level);
/* A line that may come thousands of times a second (a flood from one address, a token that is gone)
 * is written at most once a second: gw_log_every_due says whether this one may be (1) and, then, how
 * many were held back since the last one (*quiet). Any thread; a static zero-initialized struct each. */
struct gw_log_every {
    _Atomic uint64_t next_ms;
    atomic_uint_fast64_t quiet;
};
int gw_log_every_due(struct gw_log_every *e, uint64_t *quiet);
/* on: the error log goes to syslog(3) with facility (LOG_DAEMON, LOG_LOCAL0..7), "hsmgate[pid]"; off:
 * back to stderr. Any thread; a reload may switch. */
void gw_log_to_syslog(int on, int facility);
/* Gives the access log file (when it is one) to uid:gid, so that the process can still reopen it
 * after switching to that user (service.c). 0, or -1 with errno. */
int gw_access_log_chown(uid_t uid, gid_t gid);

/* Opens the access log: a path (appended, created 0640), "-" for stdout, NULL for off.
 * Replaces the previous one (SIGHUP reopens for log rotation). Returns 0 or -1 with errno. */
int gw_access_log_open(const char *path);
void gw_access_log_close(void);
/* Writes obj as one line and takes ownership of it (json_decref). */
void gw_access_log_write(json_t *obj);
/* Whether an access log is open: with none, callers need not build lines at all. */
int gw_access_log_on(void);

/* The current time as RFC 3339 UTC with milliseconds into buf (at least 32 bytes). */
void gw_time_rfc3339(char *buf, size_t len);

#endif

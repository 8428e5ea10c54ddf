/* log.c - error log and access log. One write(2) per line, so lines from workers never interleave;
 * with log: to: syslog, one syslog(3) call per line (glibc's syslog takes its own lock). */
#include "gateway/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_threshold = LOG_INFO;
static atomic_int log_syslog = 0;
static pthread_mutex_t syslog_lock = PTHREAD_MUTEX_INITIALIZER;
static int syslog_facility = -1;          /* under syslog_lock: the facility openlog was given, -1: closed */

void gw_log_to_syslog(int on, int facility)
{
    pthread_mutex_lock(&syslog_lock);
    if (on && syslog_facility != facility) {
        if (syslog_facility >= 0)
            closelog();
        /* LOG_NDELAY: connect to /dev/log now, while the process may still open it (before the
         * privilege switch or a sandbox), not at the first message. */
        openlog("hsmgate", LOG_PID | LOG_NDELAY, facility);
        syslog_facility = facility;
    }
    atomic_store(&log_syslog, on);
    if (!on && syslog_facility >= 0) {
        closelog();
        syslog_facility = -1;
    }
    pthread_mutex_unlock(&syslog_lock);
}
static atomic_int access_fd = -1;
static pthread_mutex_t access_lock = PTHREAD_MUTEX_INITIALIZER;

int gw_log_set_level(const char *name)
{
    static const struct { const char *name; int level; } levels[] = {
        { "error", LOG_ERR }, { "warning", LOG_WARNING }, { "info", LOG_INFO }, { "debug", LOG_DEBUG },
    };
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcmp(name, levels[i].name) == 0) {
            atomic_store(&log_threshold, levels[i].level);
            return 0;
        }
    }
    return -1;
}

int gw_log_enabled(int level)
{
    return level <= atomic_load(&log_threshold);
}

void gw_time_rfc3339(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n > 0 && n < len)
        snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Writes all of buf, retrying on EINTR and short writes; a log that cannot be written is dropped. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += w;
        len -= (size_t)w;
    }
}

void gw_log(int level, const char *fmt, ...)
{
    static const char *const names[] = { "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug" };
    if (!gw_log_enabled(level))
        return;
    char line[2048];
    char ts[40];
    if (atomic_load(&log_syslog)) {
        /* syslog adds the time, the name and the pid; the level is the priority. */
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (m >= 0)
            syslog(level >= 0 && level <= LOG_DEBUG ? level : LOG_ERR, "%s", line);
        return;
    }
    gw_time_rfc3339(ts, sizeof(ts));
    int n = snprintf(line, sizeof(line), "%s hsmgate[%d]: %s: ", ts, (int)getpid(),
                     names[level >= 0 && level <= LOG_DEBUG ? level : LOG_ERR]);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    write_all(STDERR_FILENO, line, len);
}

int gw_access_log_open(const char *path)
{
    int fd = -1;
    if (path != NULL) {
        if (strcmp(path, "-") == 0) {
            fd = dup(STDOUT_FILENO);
        } else {
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        }
        if (fd < 0)
            return -1;
    }
    pthread_mutex_lock(&access_lock);
    int old = atomic_exchange(&access_fd, fd);
    pthread_mutex_unlock(&access_lock);
    if (old >= 0)
        close(old);
    return 0;
}

void gw_access_log_close(void)
{
    (void)gw_access_log_open(NULL);
}

int gw_access_log_on(void)
{
    return atomic_load(&access_fd) >= 0;
}

void gw_access_log_write(json_t *obj)
{
    if (obj == NULL)
        return;
    if (atomic_load(&access_fd) >= 0) {
        char buf[4096];
        size_t n = json_dumpb(obj, buf, sizeof(buf) - 1, JSON_COMPACT);
        char *heap = NULL;
        char *line = buf;
        if (n >= sizeof(buf) - 1) {
            heap = json_dumps(obj, JSON_COMPACT);
            line = heap;
            n = heap ? strlen(heap) : 0;
        }
        if (line != NULL && n > 0) {
            line[n] = '\n';
            /* The lock keeps the fd alive while a reopen swaps it; writes stay one syscall per line. */
            pthread_mutex_lock(&access_lock);
            int fd = atomic_load(&access_fd);
            if (fd >= 0)
                write_all(fd, line, n + 1);
            pthread_mutex_unlock(&access_lock);
        }
        free(heap);
    }
    json_decref(obj);
}

int gw_access_log_chown(uid_t uid, gid_t gid)
{
    int rc = 0;
    struct stat st;
    pthread_mutex_lock(&access_lock);
    int fd = atomic_load(&access_fd);
    /* A plain file with one name only: stdout ("-") belongs to whoever started the gateway, and a
     * hard link elsewhere is not the gateway's to give away. */
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 && fchown(fd, uid, gid) != 0)
        rc = -1;
    pthread_mutex_unlock(&access_lock);
    return rc;
}

int gw_log_every_due(struct gw_log_every *e, uint64_t *quiet)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t next = atomic_load(&e->next_ms);
    if (now < next || !atomic_compare_exchange_strong(&e->next_ms, &next, now + 1000)) {
        atomic_fetch_add(&e->quiet, 1);
        return 0;
    }
    *quiet = atomic_exchange(&e->quiet, 0);
    return 1;
}

/* listen.c - the admin API's listening sockets, made here rather than by libmicrohttpd so that a bind
 * that fails says why in the gateway's words, the bound port is known (port 0 in tests), and the Unix
 * socket gets its mode before anyone can connect.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin-api/adm_srv.h"

#define LISTEN_BACKLOG 64

int adm_listen_tcp(const struct sockaddr *addr, socklen_t len, const char *what, int *out, int *port, char *err,
                   size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int one = 1, fd, rc = -1;

    *out = -1;
    *port = 0;
    fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "admin API: %s: socket: %s", what, strerror(errno));
        goto out;
    }
    /* IPV6_V6ONLY: "[::]:9440" means IPv6 only, as the gateway's listeners do. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (addr->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)) {
        snprintf(err, errlen, "admin API: %s: setsockopt: %s", what, strerror(errno));
        goto out;
    }
    if (bind(fd, addr, len) != 0) {
        snprintf(err, errlen, "admin API: cannot bind %s: %s", what, strerror(errno));
        goto out;
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "admin API: cannot listen on %s: %s", what, strerror(errno));
        goto out;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    *out = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Makes room at path: nothing there, or a socket file no server answers on any more (removed). */
static int unix_clear_stale(const char *path, const struct sockaddr_un *sun, char *err, size_t errlen)
{
    struct stat st;
    int probe, live, why;

    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "admin API: %s exists and is not a socket", path);
        return -1;
    }
    probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
        snprintf(err, errlen, "admin API: socket: %s", strerror(errno));
        return -1;
    }
    live = connect(probe, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
    why = errno;
    close(probe);
    if (live) {
        snprintf(err, errlen, "admin API: %s is in use by a running server", path);
        return -1;
    }
    if (why != ECONNREFUSED) {
        snprintf(err, errlen, "admin API: %s: %s", path, strerror(why));
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "admin API: cannot remove the stale socket %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int adm_listen_unix(const char *path, int *out, dev_t *dev, ino_t *ino, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct stat st;
    int fd = -1, bound = 0, rc = -1;

    *out = -1;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "admin API: unix socket path %s is longer than %zu bytes", path, sizeof(sun.sun_path) - 1);
        goto out;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (unix_clear_stale(path, &sun, err, errlen) != 0)
        goto out;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "admin API: socket: %s", strerror(errno));
        goto out;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        snprintf(err, errlen, "admin API: cannot bind %s: %s", path, strerror(errno));
        goto out;
    }
    bound = 1;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "admin API: %s: %s", path, strerror(errno));
        goto out;
    }
    /* Before listen(): until then nobody can connect, whatever mode bind() gave the file. */
    if (chmod(path, 0660) != 0) {
        snprintf(err, errlen, "admin API: chmod 0660 %s: %s", path, strerror(errno));
        goto out;
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "admin API: cannot listen on %s: %s", path, strerror(errno));
        goto out;
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
    *out = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0 && bound)
        unlink(path);
    return rc;
}

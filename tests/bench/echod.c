/* echod.c - a small epoll echo server on 127.0.0.1 for benchmarks: a backend that costs next to
 * nothing, so the numbers measure the TLS terminator in front of it.  Usage: echod PORT
 *
 * Non-blocking both ways: what the peer cannot take yet waits in a per-connection buffer and the
 * connection stops being read until it drains, so a bulk stream never makes the backend spin on
 * EAGAIN (it shares the cores with the server being measured). Raises RLIMIT_NOFILE to its hard
 * limit: the idle-connections scenario holds 10,000 connections through it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "backend.h"

#define ECHO_BUF 65536

struct echo_conn {
    int fd;
    size_t off, len; /* bytes of buf not yet written back */
    char buf[ECHO_BUF];
};

static void conn_drop(struct echo_conn *c)
{
    close(c->fd); /* also leaves the epoll set */
    free(c);
}

/* Writes what is pending. Returns 1 when drained, 0 when the peer is full, -1 on error. */
static int conn_flush(struct echo_conn *c)
{
    while (c->off < c->len) {
        ssize_t w = write(c->fd, c->buf + c->off, c->len - c->off);
        if (w > 0) {
            c->off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            return w < 0 && errno == EAGAIN ? 0 : -1;
        }
    }
    c->off = c->len = 0;
    return 1;
}

/* A ready connection: finish a pending echo (EPOLLOUT) and read again, or read and echo. */
static void serve(int ep, void *conn)
{
    struct echo_conn *c = conn;
    if (c->len != 0) { /* EPOLLOUT: finish the pending echo, then read again */
        int f = conn_flush(c);
        if (f < 0) {
            conn_drop(c);
        } else if (f == 1) {
            struct epoll_event cev = { .events = EPOLLIN, .data.ptr = c };
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
        }
        return;
    }
    ssize_t r = read(c->fd, c->buf, sizeof(c->buf));
    if (r > 0) {
        c->off = 0;
        c->len = (size_t)r;
        int f = conn_flush(c);
        if (f < 0) {
            conn_drop(c);
        } else if (f == 0) {
            struct epoll_event cev = { .events = EPOLLOUT, .data.ptr = c };
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
        }
    } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        conn_drop(c);
    }
}

int main(int argc, char **argv)
{
    return backend_main("echod", argc, argv, sizeof(struct echo_conn), serve);
}

/* backend.h - what the benchmarks' two backends (echod.c, httpd.c) share: start-up on 127.0.0.1:PORT,
 * the epoll loop and accepting connections; each backend gives what it does with a ready connection.
 * Each is one C file built on its own (Makefile), so this is a header of static functions. */
#ifndef HSMGATE_TESTS_BENCH_BACKEND_H
#define HSMGATE_TESTS_BENCH_BACKEND_H

#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* "usage: NAME PORT"; SIGPIPE ignored (a peer gone mid-write is EPIPE for that connection, not the end
 * of us); RLIMIT_NOFILE raised to its hard limit (the idle-connections scenario holds thousands of
 * connections through a backend); a listening socket in a new epoll set under data.ptr NULL.
 * Returns 0 with *ep and *ls, or the exit status: 2 for usage, 1 when it cannot listen. */
static int backend_start(const char *name, int argc, char **argv, int *ep, int *ls)
{
    struct rlimit rl;
    int one = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", name);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    *ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (*ls < 0 || setsockopt(*ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(*ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(*ls, 4096) != 0) {
        fprintf(stderr, "%s: listen: ", name);
        perror(NULL);
        return 1;
    }
    *ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (*ep < 0 || epoll_ctl(*ep, EPOLL_CTL_ADD, *ls, &ev) != 0) {
        fprintf(stderr, "%s: epoll: ", name);
        perror(NULL);
        return 1;
    }
    return 0;
}

/* Accepts every pending connection into a zeroed connection object of size bytes whose first member is
 * its int fd, watched for EPOLLIN; one that cannot be allocated or watched is closed. */
static void backend_accept(int ep, int ls, size_t size)
{
    int fd;
    while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        int *c = calloc(1, size);
        if (c == NULL) {
            close(fd);
            continue;
        }
        *c = fd;
        struct epoll_event cev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) {
            close(fd);
            free(c);
        }
    }
}

/* The whole program: starts (backend_start), then forever accepts connections into zeroed objects of
 * size bytes (first member: the int fd) and hands each ready one to serve. Returns only an exit status
 * of a failed start. */
static int backend_main(const char *name, int argc, char **argv, size_t size, void (*serve)(int ep, void *conn))
{
    int ep, ls, rc = backend_start(name, argc, argv, &ep, &ls);
    if (rc != 0)
        return rc;
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                backend_accept(ep, ls, size);
            else
                serve(ep, evs[i].data.ptr);
        }
    }
}

#endif

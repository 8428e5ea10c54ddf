/* httpd.c - a tiny HTTP/1.1 keep-alive backend on 127.0.0.1 for the benchmarks' https scenario: every
 * request (a header block ending in CRLF CRLF; bodies are not expected) gets the same small response with
 * a Content-Length, on the same connection, so each TLS terminator in front of it is measured, not it.
 * Pipelined requests are answered in order. Usage: httpd PORT */
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQ_CAP 16384

static const char RESP[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n"
                           "Connection: keep-alive\r\n\r\nhello hsmgate\n";

struct http_conn {
    int fd;
    size_t len; /* request bytes buffered */
    char buf[REQ_CAP + 1];
};

/* Answers every complete request in the buffer. Returns 0, or -1 to drop the connection. */
static int conn_serve(struct http_conn *c)
{
    char *p = c->buf, *end;

    c->buf[c->len] = '\0';
    while ((end = strstr(p, "\r\n\r\n")) != NULL) {
        size_t off = 0;
        while (off < sizeof(RESP) - 1) { /* small: fits the socket buffer unless the peer stalls */
            ssize_t w = write(c->fd, RESP + off, sizeof(RESP) - 1 - off);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
        }
        p = end + 4;
    }
    c->len -= (size_t)(p - c->buf);
    memmove(c->buf, p, c->len);
    return c->len == REQ_CAP ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct rlimit rl;

    if (argc != 2) {
        fprintf(stderr, "usage: httpd PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is EPIPE for that connection, not the end of us */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 4096) != 0) {
        perror("httpd: listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct http_conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    c = malloc(sizeof(*c));
                    if (c == NULL) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    c->len = 0;
                    struct epoll_event cev = { .events = EPOLLIN, .data.ptr = c };
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) {
                        close(fd);
                        free(c);
                    }
                }
                continue;
            }
            ssize_t r = read(c->fd, c->buf + c->len, REQ_CAP - c->len);
            if (r > 0) {
                c->len += (size_t)r;
                if (conn_serve(c) == 0)
                    continue;
            } else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            close(c->fd);
            free(c);
        }
    }
}

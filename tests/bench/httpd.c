/* httpd.c - a tiny HTTP/1.1 keep-alive backend on 127.0.0.1 for the benchmarks' https scenario: every
 * request (a header block ending in CRLF CRLF; bodies are not expected) gets the same small response with
 * a Content-Length, on the same connection, so each TLS terminator in front of it is measured, not it.
 * Pipelined requests are answered in order. Usage: httpd PORT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "backend.h"

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

/* A ready connection: read, and answer every complete request. */
static void serve(int ep, void *conn)
{
    struct http_conn *c = conn;
    (void)ep;
    ssize_t r = read(c->fd, c->buf + c->len, REQ_CAP - c->len);
    if (r > 0) {
        c->len += (size_t)r;
        if (conn_serve(c) == 0)
            return;
    } else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    close(c->fd);
    free(c);
}

int main(int argc, char **argv)
{
    return backend_main("httpd", argc, argv, sizeof(struct http_conn), serve);
}

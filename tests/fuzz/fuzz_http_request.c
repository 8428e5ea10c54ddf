/* fuzz_http_request.c - fuzz target for the request side of the HTTP engine (gateway/http_request.c
 * through gw_http_req_commit): parsing, the checks, and the rewritten request for the backend.
 *
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_http_request.c \
 *                gateway/http.c gateway/http_request.c gateway/http_headers.c -lhttp_parser
 * Replay a corpus with gcc (no libFuzzer needed):
 *   make build/release/tests/fuzz_http_request (links tests/fuzz/standalone.c for main())
 *   ./a.out tests/fuzz/corpus/http_request/FILE...   (or one input on stdin)
 *
 * The input is what a client sends. Beyond the sanitizers, the target checks the engine's contract:
 * - the same bytes cut differently (whole, one byte at a time, 7 at a time) give the same output
 *   to the backend and the same answers to the client: no check depends on where a read ended;
 * - what goes to the backend parses cleanly as HTTP/1.1 requests, every head free of bare CR/LF, and
 *   each carries the gateway's identity headers once, with the gateway's values: no forged copy.
 */
#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char IDENT[] = "Client-Cert: :Zm9v:\r\nX-Client-Verify: SUCCESS\r\nX-Forwarded-For: 192.0.2.7\r\n"
                            "X-Forwarded-Proto: https\r\n";

struct out {
    char *p;
    size_t len;
};

static void out_add(struct out *o, const void *p, size_t n)
{
    char *q = realloc(o->p, o->len + n + 1);
    if (q == NULL)
        abort();
    o->p = q;
    memcpy(o->p + o->len, p, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static struct gw_listener_cfg fuzz_cfg(void)
{
    struct gw_listener_cfg c;
    memset(&c, 0, sizeof(c));
    c.type = GW_LISTENER_HTTPS;
    c.headers.client_cert = (char *)"Client-Cert";
    c.headers.subject = (char *)"X-Client-Cert-Subject";
    c.headers.verify = (char *)"X-Client-Verify";
    c.headers.forwarded_for = (char *)"X-Forwarded-For";
    c.headers.forwarded_proto = (char *)"X-Forwarded-Proto";
    c.max_header_bytes = 2048;
    c.max_headers = 16;
    c.backend_timeout_ms = 1000;
    return c;
}

/* ---- the backend's view: re-parse what was forwarded ---- */

struct view {
    const char *end;    /* of the stream */
    char name[64];
    size_t name_len;
    int in_value;
    int verify, xff, cert, forged, heads, complete;
};

/* A head starts with its request line: from its target to its blank line, CRLF only. */
static int v_url(http_parser *p, const char *at, size_t len)
{
    struct view *v = p->data;
    (void)len;
    const char *e = memmem(at, (size_t)(v->end - at), "\r\n\r\n", 4);
    if (e == NULL)
        abort();
    for (const char *q = at; q < e; q++)
        if ((*q == '\n' && q[-1] != '\r') || (*q == '\r' && q[1] != '\n'))
            abort();
    return 0;
}

static int v_field(http_parser *p, const char *at, size_t len)
{
    struct view *v = p->data;
    if (v->in_value) {
        v->name_len = 0;
        v->in_value = 0;
    }
    size_t n = len < sizeof(v->name) - 1 - v->name_len ? len : sizeof(v->name) - 1 - v->name_len;
    memcpy(v->name + v->name_len, at, n);
    v->name_len += n;
    v->name[v->name_len] = '\0';
    return 0;
}

static int v_value(http_parser *p, const char *at, size_t len)
{
    struct view *v = p->data;
    if (!v->in_value) {
        v->in_value = 1;
        if (strcasecmp(v->name, "X-Client-Verify") == 0)
            v->verify++;
        else if (strcasecmp(v->name, "X-Forwarded-For") == 0)
            v->xff++;
        else if (strcasecmp(v->name, "Client-Cert") == 0)
            v->cert++;
        else if (strncasecmp(v->name, "X-Client-Cert", 13) == 0 || strncasecmp(v->name, "X-SSL", 5) == 0)
            v->forged++;
    }
    /* the only values these names may have are ours */
    if ((strcasecmp(v->name, "X-Client-Verify") == 0 && (len > 7 || memcmp(at, "SUCCESS", len) != 0)) ||
        (strcasecmp(v->name, "X-Forwarded-For") == 0 && (len > 9 || memcmp(at, "192.0.2.7", len) != 0)))
        v->forged++;
    return 0;
}

static int v_headers_complete(http_parser *p)
{
    struct view *v = p->data;
    if (v->verify != 1 || v->xff != 1 || v->cert != 1 || v->forged != 0)
        abort();
    v->verify = v->xff = v->cert = 0;
    v->name_len = 0;
    v->in_value = 0;
    v->heads++;
    return 0;
}

static int v_message_complete(http_parser *p)
{
    struct view *v = p->data;
    v->complete++;
    return 0;
}

/* http_parser reads the backend's stream without error, every head CRLF only (v_url). */
static int backend_view(const struct out *tob)
{
    struct view v;
    memset(&v, 0, sizeof(v));
    http_parser p;
    http_parser_settings s;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &v;
    http_parser_settings_init(&s);
    v.end = tob->p != NULL ? tob->p + tob->len : NULL;
    s.on_url = v_url;
    s.on_header_field = v_field;
    s.on_header_value = v_value;
    s.on_headers_complete = v_headers_complete;
    s.on_message_complete = v_message_complete;
    size_t n = http_parser_execute(&p, &s, tob->p ? tob->p : "", tob->len);
    if (n != tob->len || HTTP_PARSER_ERRNO(&p) != HPE_OK)
        abort();
    return v.complete;
}

/* ---- one run ---- */

static void run(const uint8_t *data, size_t size, size_t step, struct out *tob, struct out *toc, int *forwarded)
{
    struct gw_listener_cfg cfg = fuzz_cfg();
    struct gw_http *h = NULL;
    if (gw_http_new(&cfg, IDENT, strlen(IDENT), &h) != 0)
        abort();
    gw_http_backend_up(h);
    size_t done = 0, len;
    const unsigned char *p;
    while (done < size) {
        size_t cap = 0;
        unsigned char *sp = gw_http_req_space(h, &cap);
        if (sp == NULL || cap == 0)
            break;
        size_t n = size - done < step ? size - done : step;
        if (n > cap)
            n = cap;
        memcpy(sp, data + done, n);
        gw_http_req_commit(h, n, 1);
        done += n;
        while ((p = gw_http_tob_peek(h, &len)), len > 0) {
            out_add(tob, p, len);
            gw_http_tob_consume(h, len, 1);
        }
    }
    gw_http_req_eof(h, 2);
    while ((p = gw_http_tob_peek(h, &len)), len > 0) {
        out_add(tob, p, len);
        gw_http_tob_consume(h, len, 2);
    }
    *forwarded = backend_view(tob);
    /* the backend answers every complete request, in one go; the engine relays them in order */
    for (int i = 0; i < *forwarded && !gw_http_backend_unwanted(h); i++) {
        static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        size_t cap = 0;
        unsigned char *sp = gw_http_resp_space(h, &cap);
        if (sp == NULL || cap < sizeof(resp) - 1)
            break;
        memcpy(sp, resp, sizeof(resp) - 1);
        gw_http_resp_commit(h, sizeof(resp) - 1, 3);
        p = gw_http_toc_peek(h, &len);
        out_add(toc, p, len);
        gw_http_toc_consume(h, len);
    }
    (void)gw_http_timeout(h, 5000);
    gw_http_resp_eof(h, 5001, NULL);
    p = gw_http_toc_peek(h, &len);
    out_add(toc, p, len);
    gw_http_toc_consume(h, len);
    gw_http_abort(h, 5002, "fuzz");
    struct gw_http_log l;
    unsigned logged = 0;
    while (gw_http_log_pop(h, &l) == 1)
        logged++;
    if (logged != gw_http_logged(h))
        abort(); /* one record per request, none lost */
    gw_http_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t steps[] = { (size_t)-1, 1, 7 };
    struct out tob[3], toc[3];
    int fwd[3];
    memset(tob, 0, sizeof(tob));
    memset(toc, 0, sizeof(toc));
    if (size > 64 * 1024)
        return 0;
    for (int i = 0; i < 3; i++)
        run(data, size, steps[i], &tob[i], &toc[i], &fwd[i]);
    for (int i = 1; i < 3; i++) {
        if (tob[i].len != tob[0].len || (tob[0].len && memcmp(tob[i].p, tob[0].p, tob[0].len) != 0))
            abort();
        if (toc[i].len != toc[0].len || (toc[0].len && memcmp(toc[i].p, toc[0].p, toc[0].len) != 0))
            abort();
    }
    for (int i = 0; i < 3; i++) {
        free(tob[i].p);
        free(toc[i].p);
    }
    return 0;
}

/* Built as a plain program, tests/fuzz/standalone.c supplies main(). */

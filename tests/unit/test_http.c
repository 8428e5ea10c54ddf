/* test_http.c - unit tests for the HTTP side of https listeners (gateway/http*.c): the pure checks and
 * rewrites one by one (header stripping, tokens, values, request lines, framing, chunk lines, value
 * escaping, base64, the identity block, the gateway's own responses), then the engine driven without
 * sockets: requests in (whole, and byte by byte), what the backend would receive, responses back in
 * order, and every refusal with what it must not forward.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http.h"

/* ---- fixtures ---- */

static struct gw_listener_cfg cfg_default(void)
{
    struct gw_listener_cfg c;
    memset(&c, 0, sizeof(c));
    c.name = (char *)"api";
    c.type = GW_LISTENER_HTTPS;
    c.headers.client_cert = (char *)"Client-Cert";
    c.headers.subject = (char *)"X-Client-Cert-Subject";
    c.headers.issuer = (char *)"X-Client-Cert-Issuer";
    c.headers.serial = (char *)"X-Client-Cert-Serial";
    c.headers.fingerprint = (char *)"X-Client-Cert-Fingerprint-SHA256";
    c.headers.not_after = (char *)"X-Client-Cert-Not-After";
    c.headers.verify = (char *)"X-Client-Verify";
    c.headers.forwarded_for = (char *)"X-Forwarded-For";
    c.headers.forwarded_proto = (char *)"X-Forwarded-Proto";
    c.backend_timeout_ms = 1000;
    c.max_header_bytes = 4096;
    c.max_headers = 20;
    return c;
}

static struct gw_http_names names_default(void)
{
    struct gw_listener_cfg c = cfg_default();
    struct gw_http_names n;
    gw_http_names_resolve(&c, &n);
    return n;
}

static const char IDENT[] = "X-Client-Verify: NONE\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n";

/* A growing byte string for what the engine hands out. */
struct out {
    char *p;
    size_t len;
};

static void out_add(struct out *o, const void *p, size_t n)
{
    o->p = realloc(o->p, o->len + n + 1);
    assert_non_null(o->p);
    memcpy(o->p + o->len, p, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void out_free(struct out *o)
{
    free(o->p);
    o->p = NULL;
    o->len = 0;
}

/* Feeds data in pieces of at most step bytes; returns how much the engine took. */
static size_t feed(struct gw_http *h, const char *data, size_t len, size_t step, uint64_t now)
{
    size_t done = 0;
    while (done < len) {
        size_t cap = 0;
        unsigned char *sp = gw_http_req_space(h, &cap);
        if (sp == NULL || cap == 0)
            break;
        size_t n = len - done < step ? len - done : step;
        if (n > cap)
            n = cap;
        memcpy(sp, data + done, n);
        gw_http_req_commit(h, n, now);
        done += n;
    }
    return done;
}

static void drain_tob(struct gw_http *h, struct out *o)
{
    size_t len = 0;
    const unsigned char *p;
    while ((p = gw_http_tob_peek(h, &len)), len > 0) {
        out_add(o, p, len);
        gw_http_tob_consume(h, len, 0);
    }
}

static void drain_toc(struct gw_http *h, struct out *o)
{
    size_t len = 0;
    const unsigned char *p = gw_http_toc_peek(h, &len);
    if (len > 0) {
        out_add(o, p, len);
        gw_http_toc_consume(h, len);
    }
}

static void respond(struct gw_http *h, const char *data, uint64_t now)
{
    size_t len = strlen(data), done = 0;
    while (done < len) {
        size_t cap = 0;
        unsigned char *sp = gw_http_resp_space(h, &cap);
        assert_non_null(sp);
        size_t n = len - done < cap ? len - done : cap;
        memcpy(sp, data + done, n);
        gw_http_resp_commit(h, n, now);
        done += n;
    }
}

static struct gw_http *engine(const struct gw_listener_cfg *cfg)
{
    struct gw_http *h = NULL;
    assert_int_equal(gw_http_new(cfg, IDENT, strlen(IDENT), &h), 0);
    return h;
}

/* ---- pure functions ---- */

static void test_token_and_value(void **state)
{
    (void)state;
    assert_true(gw_http_token_ok("X-Client_Cert.1~", 16));
    assert_false(gw_http_token_ok("", 0));
    assert_false(gw_http_token_ok("X A", 3));
    assert_false(gw_http_token_ok("X:A", 3));
    assert_false(gw_http_token_ok("X(A)", 4));
    assert_false(gw_http_token_ok("X\x80", 2));
    assert_true(gw_http_value_ok("a b\tc \xc3\xa9", 8));
    assert_true(gw_http_value_ok("", 0));
    assert_false(gw_http_value_ok("a\rb", 3));
    assert_false(gw_http_value_ok("a\nb", 3));
    assert_false(gw_http_value_ok("a\0b", 3));
    assert_false(gw_http_value_ok("a\x0b", 2));
    assert_false(gw_http_value_ok("a\x7f", 2));
}

static void test_request_line(void **state)
{
    (void)state;
    static const char *const good[] = { "GET / HTTP/1.1", "POST /a/b?c=d&e HTTP/1.0", "OPTIONS * HTTP/1.1",
                                        "GET http://example.com/x HTTP/1.1", "M-SEARCH /%20 HTTP/1.1" };
    static const char *const bad[] = { "GET / HTTP/2.0", "GET /", "GET  / HTTP/1.1", "GET / HTTP/1.1 ",
                                       " GET / HTTP/1.1", "GET / http/1.1", "G@T / HTTP/1.1", "GET /\x7f HTTP/1.1",
                                       "GET /\xc3\xa9 HTTP/1.1", "GET / HTTP/1.12", "GET /a\tb HTTP/1.1", "",
                                       "GET HTTP/1.1", "GET / HTTP/1.9" };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int minor = -1;
        assert_true(gw_http_request_line_ok(good[i], strlen(good[i]), &minor));
        assert_int_equal(minor, good[i][strlen(good[i]) - 1] - '0');
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(gw_http_request_line_ok(bad[i], strlen(bad[i]), NULL));
}

static int framing(const char *te1, const char *te2, const char *cl1, const char *cl2, int http10,
                   enum gw_http_framing *f, uint64_t *len)
{
    const char *te[2] = { NULL, NULL }, *cl[2] = { NULL, NULL };
    size_t tel[2] = { 0, 0 }, cll[2] = { 0, 0 }, nte = 0, ncl = 0;
    if (te1) { te[nte] = te1; tel[nte++] = strlen(te1); }
    if (te2) { te[nte] = te2; tel[nte++] = strlen(te2); }
    if (cl1) { cl[ncl] = cl1; cll[ncl++] = strlen(cl1); }
    if (cl2) { cl[ncl] = cl2; cll[ncl++] = strlen(cl2); }
    return gw_http_framing_decide(te, tel, nte, cl, cll, ncl, http10, f, len);
}

static void test_framing(void **state)
{
    (void)state;
    enum gw_http_framing f;
    uint64_t len;
    assert_int_equal(framing(NULL, NULL, NULL, NULL, 0, &f, &len), 0);
    assert_int_equal(f, GW_HTTP_FRAMING_NONE);
    assert_int_equal(framing("chunked", NULL, NULL, NULL, 0, &f, &len), 0);
    assert_int_equal(f, GW_HTTP_FRAMING_CHUNKED);
    assert_int_equal(framing("ChUnKeD", NULL, NULL, NULL, 0, &f, &len), 0);
    assert_int_equal(framing(NULL, NULL, "0042", NULL, 0, &f, &len), 0);
    assert_int_equal(f, GW_HTTP_FRAMING_LENGTH);
    assert_int_equal(len, 42);
    assert_int_equal(framing(NULL, NULL, "123456789012345678", NULL, 0, &f, &len), 0);
    assert_int_equal(len, 123456789012345678ull);
    /* every ambiguity: 400 */
    assert_int_equal(framing("chunked", NULL, "5", NULL, 0, &f, &len), 400);      /* CL.TE / TE.CL */
    assert_int_equal(framing("chunked", "chunked", NULL, NULL, 0, &f, &len), 400); /* TE.TE */
    assert_int_equal(framing("gzip", "chunked", NULL, NULL, 0, &f, &len), 400);
    assert_int_equal(framing("chunked", "identity", NULL, NULL, 0, &f, &len), 400);
    assert_int_equal(framing("identity", NULL, NULL, NULL, 0, &f, &len), 400);
    assert_int_equal(framing("xchunked", NULL, NULL, NULL, 0, &f, &len), 400);
    assert_int_equal(framing("chunked", NULL, NULL, NULL, 1, &f, &len), 400);     /* HTTP/1.0 */
    assert_int_equal(framing(NULL, NULL, "5", "5", 0, &f, &len), 400);
    assert_int_equal(framing(NULL, NULL, "5", "6", 0, &f, &len), 400);
    assert_int_equal(framing(NULL, NULL, "+5", NULL, 0, &f, &len), 400);
    assert_int_equal(framing(NULL, NULL, "5 5", NULL, 0, &f, &len), 400);
    assert_int_equal(framing(NULL, NULL, "0x10", NULL, 0, &f, &len), 400);
    assert_int_equal(framing(NULL, NULL, "", NULL, 0, &f, &len), 400);
    /* too long to be real */
    assert_int_equal(framing(NULL, NULL, "1234567890123456789", NULL, 0, &f, &len), 413);
}

static void test_stripped(void **state)
{
    (void)state;
    struct gw_http_names n = names_default();
    char *strip[] = { (char *)"X-Internal-User" };
    static const char *const gone[] = {
        "Client-Cert", "client-cert", "CLIENT-CERT-CHAIN", "X-Client-Cert-Subject", "x_client_cert_subject",
        "X-Client-Certificate", "X-Client-Verify", "X_CLIENT_VERIFY", "X-SSL-Client-DN", "x-ssl", "X-SSLx",
        "X-Forwarded-For", "x-forwarded-proto", "X-Forwarded-Host", "X-Forwarded-Client-Cert", "X-Forwarded-Port",
        "Forwarded", "X-Real-IP", "x-internal-user", "X_Internal_User" };
    static const char *const kept[] = { "Host", "Accept", "X-Client", "Client-Certs", "X-Forward", "Forwarded-For",
                                        "X-Internal-Users", "Authorization", "Cookie" };
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        assert_true(gw_http_header_stripped(&n, strip, 1, gone[i], strlen(gone[i])));
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        assert_false(gw_http_header_stripped(&n, strip, 1, kept[i], strlen(kept[i])));
    /* a renamed identity header goes too */
    n.subject = "X-Mtls-Dn";
    assert_true(gw_http_header_stripped(&n, NULL, 0, "x-mtls-dn", 9));
    assert_true(gw_http_header_stripped(&n, NULL, 0, "X_MTLS_DN", 9));
}

static void test_chunk_line(void **state)
{
    (void)state;
    static const char *const good_first[] = { "5\r\n", "0\r\n", "1a;name=value\r\n", "FF ;x\r\n", "0010;a=\"q s\"\r\n" };
    static const char *const good_next[] = { "\r\n5\r\n", "\r\n0\r\n", "\r\nabcdef;x=1;y\r\n" };
    static const char *const bad_first[] = { "\r\n5\r\n", "5\n", "5\r", "5 \r\n", "g\r\n", "\r\n", "5;a\nb\r\n",
                                             "5;a\rb\r\n", "5;\x01\r\n", "12345678901234567\r\n", ";x\r\n", "5x\r\n" };
    static const char *const bad_next[] = { "5\r\n", "XY5\r\n", "\n5\r\n", "\r5\r\n", "\r\n\r\n" };
    for (size_t i = 0; i < sizeof(good_first) / sizeof(good_first[0]); i++)
        assert_true(gw_http_chunk_line_ok((const unsigned char *)good_first[i], strlen(good_first[i]), 1));
    for (size_t i = 0; i < sizeof(good_next) / sizeof(good_next[0]); i++)
        assert_true(gw_http_chunk_line_ok((const unsigned char *)good_next[i], strlen(good_next[i]), 0));
    for (size_t i = 0; i < sizeof(bad_first) / sizeof(bad_first[0]); i++)
        assert_false(gw_http_chunk_line_ok((const unsigned char *)bad_first[i], strlen(bad_first[i]), 1));
    for (size_t i = 0; i < sizeof(bad_next) / sizeof(bad_next[0]); i++)
        assert_false(gw_http_chunk_line_ok((const unsigned char *)bad_next[i], strlen(bad_next[i]), 0));
}

static void test_value_escape(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(gw_http_value_escape("CN=a\\,b", out, sizeof(out)), 7);
    assert_string_equal(out, "CN=a\\,b");
    assert_true(gw_http_value_escape("CN=evil\r\nX-Injected: 1", out, sizeof(out)) > 0);
    assert_string_equal(out, "CN=evil\\0D\\0AX-Injected: 1");
    assert_true(gw_http_value_escape(" a b ", out, sizeof(out)) > 0);
    assert_string_equal(out, "\\20a b\\20");
    assert_true(gw_http_value_escape("\xc3\xa9\x7f\t", out, sizeof(out)) > 0);
    assert_string_equal(out, "\\C3\\A9\\7F\\09");
    assert_int_equal(gw_http_value_escape("", out, sizeof(out)), 0);
    assert_int_equal(gw_http_value_escape("abc", out, 3), GW_HTTP_E_SPACE);
    assert_int_equal(gw_http_value_escape("\n", out, 3), GW_HTTP_E_SPACE);
}

static void test_base64(void **state)
{
    (void)state;
    /* RFC 4648 10 */
    static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *const b64[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    char out[16];
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(gw_http_base64((const unsigned char *)in[i], strlen(in[i]), out, sizeof(out)),
                         (int)strlen(b64[i]));
        assert_string_equal(out, b64[i]);
    }
    assert_int_equal(gw_http_base64((const unsigned char *)"foobar", 6, out, 8), GW_HTTP_E_SPACE);
}

static void test_identity_build(void **state)
{
    (void)state;
    struct gw_http_names n = names_default();
    struct gw_peer_info pi;
    memset(&pi, 0, sizeof(pi));
    pi.has_cert = 1;
    strcpy(pi.subject, "CN=client\r\nX-Evil: 1,O=Bank");
    strcpy(pi.issuer, "CN=root");
    strcpy(pi.serial, "0A1B");
    strcpy(pi.fp_sha256, "ab01");
    strcpy(pi.not_after, "2030-01-02T03:04:05Z");
    static const unsigned char der[] = { 'f', 'o', 'o' };
    static const unsigned char inter[] = { 'b', 'a', 'r' };
    const unsigned char *chain[] = { inter, inter };
    size_t chain_len[] = { 3, 3 };
    struct gw_http_client cl = { .verified = 1, .verify = "SUCCESS", .pi = &pi, .der = der, .der_len = 3,
                                 .chain = chain, .chain_len = chain_len, .nchain = 2, .ip = "2001:db8::1" };
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(gw_http_identity_build(&n, &cl, &out, &len), 0);
    assert_string_equal(out, "Client-Cert: :Zm9v:\r\n"
                             "X-Client-Cert-Subject: CN=client\\0D\\0AX-Evil: 1,O=Bank\r\n"
                             "X-Client-Cert-Issuer: CN=root\r\n"
                             "X-Client-Cert-Serial: 0A1B\r\n"
                             "X-Client-Cert-Fingerprint-SHA256: ab01\r\n"
                             "X-Client-Cert-Not-After: 2030-01-02T03:04:05Z\r\n"
                             "X-Client-Verify: SUCCESS\r\n"
                             "X-Forwarded-For: 2001:db8::1\r\n"
                             "X-Forwarded-Proto: https\r\n");
    assert_int_equal(len, strlen(out));
    free(out);
    /* RFC 9440 2.3 when named; names turned off are left out */
    n.client_cert_chain = "Client-Cert-Chain";
    n.serial = NULL;
    n.forwarded_proto = NULL;
    assert_int_equal(gw_http_identity_build(&n, &cl, &out, &len), 0);
    assert_non_null(strstr(out, "Client-Cert-Chain: :YmFy:, :YmFy:\r\n"));
    assert_null(strstr(out, "Serial"));
    assert_null(strstr(out, "Proto"));
    free(out);
    /* no certificate: only what is not about one */
    n = names_default();
    struct gw_http_client none = { .verify = "NONE", .ip = "192.0.2.1" };
    assert_int_equal(gw_http_identity_build(&n, &none, &out, &len), 0);
    assert_string_equal(out, "X-Client-Verify: NONE\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\n");
    free(out);
    /* a name that is not a token is refused, not written */
    n.verify = "X Verify";
    assert_int_equal(gw_http_identity_build(&n, &none, &out, &len), GW_HTTP_E_ARG);
    assert_int_equal(gw_http_identity_build(NULL, &none, &out, &len), GW_HTTP_E_ARG);
}

static void test_local_response(void **state)
{
    (void)state;
    char out[512];
    int n = gw_http_local_response(431, 0, out, sizeof(out));
    assert_true(n > 0);
    static const char line[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n";
    assert_int_equal(strncmp(out, line, strlen(line)), 0);
    assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
    const char *body = strstr(out, "\r\n\r\n") + 4;
    char cl[64];
    snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(body));
    assert_non_null(strstr(out, cl));
    n = gw_http_local_response(502, 1, out, sizeof(out));
    assert_true(n > 0 && strcmp(out + n - 4, "\r\n\r\n") == 0); /* HEAD: no body */
    assert_int_equal(gw_http_local_response(400, 0, out, 10), GW_HTTP_E_SPACE);
}

/* ---- the engine ---- */

static const char FORGED_REQ[] = "GET /a?b=c HTTP/1.1\r\n"
                                 "Host: example\r\n"
                                 "Client-Cert: :Zm9v:\r\n"
                                 "x-client-cert-subject: CN=admin\r\n"
                                 "X_Client_Verify: SUCCESS\r\n"
                                 "X-Forwarded-For: 10.0.0.1\r\n"
                                 "Connection: keep-alive, X-Drop-Me\r\n"
                                 "X-Drop-Me: 1\r\n"
                                 "Keep-Alive: timeout=5\r\n"
                                 "Upgrade: h2c\r\n"
                                 "Accept:   text/plain  \r\n"
                                 "\r\n";
static const char FORGED_OUT[] = "GET /a?b=c HTTP/1.1\r\n"
                                 "Host: example\r\n"
                                 "Accept: text/plain\r\n"
                                 "X-Client-Verify: NONE\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
                                 "\r\n";

static void check_rewrite(size_t step)
{
    struct gw_listener_cfg cfg = cfg_default();
    struct gw_http *h = engine(&cfg);
    struct out tob = { 0 };
    assert_int_equal(feed(h, FORGED_REQ, strlen(FORGED_REQ), step, 10), strlen(FORGED_REQ));
    assert_true(gw_http_wants_backend(h));
    gw_http_backend_up(h);
    drain_tob(h, &tob);
    assert_string_equal(tob.p, FORGED_OUT);
    assert_false(gw_http_finished(h));
    out_free(&tob);
    gw_http_free(h);
}

static void test_engine_rewrite(void **state)
{
    (void)state;
    check_rewrite(65536);
    check_rewrite(1); /* every callback split as far as it goes */
    check_rewrite(7);
}

static void test_engine_bodies(void **state)
{
    (void)state;
    struct gw_listener_cfg cfg = cfg_default();
    static const char in[] = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: gone\r\n\r\n"
                             "PUT /l HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwxyz"
                             "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    static const char want[] = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n%s\r\n"
                               "5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"
                               "PUT /l HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n%s\r\nwxyz"
                               "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n%s\r\n";
    char expect[2048];
    snprintf(expect, sizeof(expect), want, IDENT, IDENT, IDENT);
    for (size_t step = 1; step <= 64; step = step * 2 + 1) {
        struct gw_http *h = engine(&cfg);
        struct out tob = { 0 };
        gw_http_backend_up(h);
        size_t done = 0;
        while (done < strlen(in)) { /* drain as we go: the engine holds at most so much for the backend */
            done += feed(h, in + done, strlen(in) - done, step, 0);
            drain_tob(h, &tob);
        }
        assert_string_equal(tob.p, expect);
        out_free(&tob);
        gw_http_free(h);
    }
}

static void test_engine_pipeline_responses(void **state)
{
    (void)state;
    struct gw_listener_cfg cfg = cfg_default();
    struct gw_http *h = engine(&cfg);
    struct out tob = { 0 }, toc = { 0 };
    static const char in[] = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                             "POST /3 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok";
    feed(h, in, strlen(in), 65536, 100);
    gw_http_backend_up(h);
    drain_tob(h, &tob);
    assert_int_equal(gw_http_deadline(h), 100 + 1000);
    /* responses in pieces that cross their boundaries; the HEAD one announces a body it does not send */
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
                               "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
                               "HTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
    for (size_t i = 0; i < strlen(resp); i += 5) {
        char piece[6] = { 0 };
        memcpy(piece, resp + i, strlen(resp) - i < 5 ? strlen(resp) - i : 5);
        respond(h, piece, 150);
        drain_toc(h, &toc);
    }
    assert_string_equal(toc.p, resp); /* relayed byte for byte */
    struct gw_http_log l;
    static const char *const paths[] = { "/1", "/2", "/3" };
    static const int statuses[] = { 200, 200, 201 };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gw_http_log_pop(h, &l), 1);
        assert_string_equal(l.path, paths[i]);
        assert_int_equal(l.status, statuses[i]);
        assert_int_equal(l.upstream_ms, 50);
        assert_string_equal(l.result, "ok");
    }
    assert_string_equal(l.method, "POST");
    assert_int_equal(gw_http_log_pop(h, &l), 0);
    assert_int_equal(gw_http_deadline(h), UINT64_MAX);
    assert_true(gw_http_idle(h));
    gw_http_req_eof(h, 200);
    assert_true(gw_http_finished(h));
    out_free(&tob);
    out_free(&toc);
    gw_http_free(h);
}

static void test_engine_pipeline_bounded(void **state)
{
    (void)state;
    struct gw_listener_cfg cfg = cfg_default();
    struct gw_http *h = engine(&cfg);
    struct out tob = { 0 }, toc = { 0 };
    char in[4096] = "";
    for (int i = 0; i < 20; i++)
        snprintf(in + strlen(in), sizeof(in) - strlen(in), "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
    feed(h, in, strlen(in), 65536, 0);
    gw_http_backend_up(h);
    drain_tob(h, &tob);
    size_t n = 0;
    for (const char *p = tob.p; (p = strstr(p, "GET /")) != NULL; p++)
        n++;
    assert_int_equal(n, GW_HTTP_PIPELINE); /* the rest waits in the engine */
    respond(h, "HTTP/1.1 204 No Content\r\n\r\n", 1);
    drain_tob(h, &tob);
    n = 0;
    for (const char *p = tob.p; (p = strstr(p, "GET /")) != NULL; p++)
        n++;
    assert_int_equal(n, GW_HTTP_PIPELINE + 1);
    drain_toc(h, &toc);
    out_free(&tob);
    out_free(&toc);
    gw_http_free(h);
}

struct bad {
    const char *req;
    int status;
};

static void test_engine_refusals(void **state)
{
    (void)state;
    static const struct bad bad[] = {
        { "GET /\r\n\r\n", 400 },
        { "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400 },
        { "get / HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400 },
        { "GET / HTTP/1.1\nHost: x\n\n", 400 },
        { "GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\nHost: x\r\nA : b\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\nHost: x\r\nA: \x01\r\n\r\n", 400 },
        { "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", 400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\n\r\n", 400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nConnection: transfer-encoding\r\nContent-Length: 1\r\n\r\n", 400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 123456789012345678901\r\n\r\n", 413 },
        { "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\nI: 1\r\n"
          "J: 1\r\nK: 1\r\nL: 1\r\nM: 1\r\nN: 1\r\nO: 1\r\nP: 1\r\nQ: 1\r\nR: 1\r\nS: 1\r\nT: 1\r\n\r\n", 431 },
    };
    struct gw_listener_cfg cfg = cfg_default();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (size_t step = 1; step <= 4096; step *= 4096) {
            struct gw_http *h = engine(&cfg);
            struct out tob = { 0 }, toc = { 0 };
            feed(h, bad[i].req, strlen(bad[i].req), step, 0);
            drain_tob(h, &tob);
            drain_toc(h, &toc);
            char want[16];
            snprintf(want, sizeof(want), "HTTP/1.1 %d ", bad[i].status);
            if (toc.p == NULL || strncmp(toc.p, want, strlen(want)) != 0)
                fail_msg("case %zu (step %zu): got %s", i, step, toc.p ? toc.p : "nothing");
            assert_non_null(strstr(toc.p, "\r\nConnection: close\r\n"));
            assert_int_equal(tob.len, 0);      /* nothing forwarded */
            assert_false(gw_http_wants_backend(h)); /* no backend even asked for */
            assert_true(gw_http_finished(h));
            struct gw_http_log l;
            assert_int_equal(gw_http_log_pop(h, &l), 1);
            assert_int_equal(l.status, bad[i].status);
            assert_string_equal(l.result, "rejected");
            out_free(&tob);
            out_free(&toc);
            gw_http_free(h);
        }
    }
    /* a big head: 431 */
    cfg.max_header_bytes = 1024;
    struct gw_http *h = engine(&cfg);
    char big[2048];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    feed(h, big, sizeof(big), 300, 0);
    struct out toc = { 0 };
    drain_toc(h, &toc);
    assert_true(strncmp(toc.p, "HTTP/1.1 431 ", 13) == 0);
    out_free(&toc);
    gw_http_free(h);
}

/* A chunked body that goes wrong after its head went out: the head and the good chunks were
 * forwarded, the bad line never is; 400 in its turn, and the backend connection is dropped. */
static void test_engine_bad_chunk_after_head(void **state)
{
    (void)state;
    static const char *const tails[] = { "3\r\nabcXY0\r\n\r\n", "3;a\nb\r\nabc\r\n0\r\n\r\n", "zz\r\n", "3 \r\nabc\r\n" };
    struct gw_listener_cfg cfg = cfg_default();
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        struct gw_http *h = engine(&cfg);
        struct out tob = { 0 }, toc = { 0 };
        char in[512];
        snprintf(in, sizeof(in), "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n%s", tails[i]);
        gw_http_backend_up(h);
        feed(h, in, strlen(in), 1, 0);
        drain_tob(h, &tob);
        drain_toc(h, &toc);
        assert_non_null(strstr(tob.p, "\r\n\r\n2\r\nok"));
        assert_null(strstr(tob.p, "XY"));
        assert_null(strstr(tob.p, ";a"));
        assert_true(strncmp(toc.p, "HTTP/1.1 400 ", 13) == 0);
        assert_true(gw_http_backend_unwanted(h));
        assert_true(gw_http_finished(h));
        out_free(&tob);
        out_free(&toc);
        gw_http_free(h);
    }
    /* the same before any backend was connected: none is asked for any more */
    struct gw_http *h = engine(&cfg);
    static const char in[] = "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    feed(h, in, strlen(in), 100, 0);
    assert_false(gw_http_wants_backend(h));
    struct out toc = { 0 };
    drain_toc(h, &toc);
    assert_true(strncmp(toc.p, "HTTP/1.1 400 ", 13) == 0);
    assert_true(gw_http_finished(h));
    out_free(&toc);
    gw_http_free(h);
}

static void test_engine_backend_failures(void **state)
{
    (void)state;
    struct gw_listener_cfg cfg = cfg_default();
    struct out toc = { 0 };
    static const char req[] = "GET /x HTTP/1.1\r\nHost: x\r\n\r\n";
    /* no backend: 502 */
    struct gw_http *h = engine(&cfg);
    feed(h, req, strlen(req), 100, 0);
    assert_true(gw_http_wants_backend(h));
    gw_http_backend_failed(h, 5, "Connection refused");
    drain_toc(h, &toc);
    assert_true(strncmp(toc.p, "HTTP/1.1 502 ", 13) == 0);
    struct gw_http_log l;
    assert_int_equal(gw_http_log_pop(h, &l), 1);
    assert_string_equal(l.result, "backend_unreachable");
    assert_string_equal(l.reason, "Connection refused");
    assert_true(gw_http_finished(h));
    out_free(&toc);
    gw_http_free(h);
    /* silent past backend_timeout, with half a head already in: 504, the half head never relayed */
    h = engine(&cfg);
    feed(h, req, strlen(req), 100, 1000);
    gw_http_backend_up(h);
    struct out tob = { 0 };
    drain_tob(h, &tob);
    respond(h, "HTTP/1.1 200 OK\r\nContent-Le", 1500);
    drain_toc(h, &toc);
    assert_null(toc.p);
    assert_int_equal(gw_http_deadline(h), 2000);
    assert_int_equal(gw_http_timeout(h, 1999), 0);
    assert_int_equal(gw_http_timeout(h, 2000), 1);
    drain_toc(h, &toc);
    assert_true(strncmp(toc.p, "HTTP/1.1 504 ", 13) == 0);
    assert_true(gw_http_backend_unwanted(h));
    assert_true(gw_http_finished(h));
    out_free(&toc);
    out_free(&tob);
    gw_http_free(h);
    /* a malformed response head: 502; a response nobody asked for: the backend goes */
    h = engine(&cfg);
    feed(h, req, strlen(req), 100, 0);
    gw_http_backend_up(h);
    drain_tob(h, &tob);
    respond(h, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 1);
    drain_toc(h, &toc);
    assert_true(strncmp(toc.p, "HTTP/1.1 502 ", 13) == 0);
    out_free(&toc);
    out_free(&tob);
    gw_http_free(h);
    h = engine(&cfg);
    gw_http_backend_up(h);
    respond(h, "HTTP/1.1 200 OK\r\n\r\n", 1);
    assert_true(gw_http_backend_unwanted(h));
    assert_true(gw_http_finished(h));
    gw_http_free(h);
    /* closed before its head: 502; closed mid-body: what went out stands, then the end */
    h = engine(&cfg);
    feed(h, req, strlen(req), 100, 0);
    gw_http_backend_up(h);
    gw_http_resp_eof(h, 1, NULL);
    drain_toc(h, &toc);
    assert_true(strncmp(toc.p, "HTTP/1.1 502 ", 13) == 0);
    out_free(&toc);
    gw_http_free(h);
    h = engine(&cfg);
    feed(h, req, strlen(req), 100, 0);
    gw_http_backend_up(h);
    respond(h, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1);
    gw_http_resp_eof(h, 1, "backend_reset");
    drain_toc(h, &toc);
    assert_string_equal(toc.p, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    assert_true(gw_http_finished(h));
    gw_http_abort(h, 2, "closed");
    assert_int_equal(gw_http_log_pop(h, &l), 1);
    assert_string_equal(l.result, "aborted");
    assert_int_equal(l.status, 200);
    out_free(&toc);
    gw_http_free(h);
}

static void test_engine_response_to_eof_and_close(void **state)
{
    (void)state;
    struct gw_listener_cfg cfg = cfg_default();
    struct out toc = { 0 }, tob = { 0 };
    static const char req[] = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
    struct gw_http *h = engine(&cfg);
    feed(h, req, strlen(req), 100, 0);
    gw_http_backend_up(h);
    drain_tob(h, &tob);
    /* HTTP/1.0, no length: the body runs to the close, and nothing more can be answered */
    respond(h, "HTTP/1.0 200 OK\r\n\r\nall of it", 1);
    drain_toc(h, &toc);
    assert_false(gw_http_finished(h));
    gw_http_resp_eof(h, 2, NULL);
    drain_toc(h, &toc);
    assert_string_equal(toc.p, "HTTP/1.0 200 OK\r\n\r\nall of it");
    assert_true(gw_http_finished(h));
    struct gw_http_log l;
    assert_int_equal(gw_http_log_pop(h, &l), 1);
    assert_int_equal(l.status, 200);
    gw_http_abort(h, 3, "connection_closed");
    assert_int_equal(gw_http_log_pop(h, &l), 1);
    assert_string_equal(l.path, "/2");
    assert_int_equal(l.status, 0);
    out_free(&toc);
    out_free(&tob);
    gw_http_free(h);
    /* Connection: close from the client: the last request read */
    h = engine(&cfg);
    static const char req2[] = "GET /1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
    feed(h, req2, strlen(req2), 100, 0);
    gw_http_backend_up(h);
    drain_tob(h, &tob);
    assert_non_null(strstr(tob.p, "\r\nConnection: close\r\n"));
    assert_null(strstr(tob.p, "/2"));
    respond(h, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 1);
    drain_toc(h, &toc);
    assert_true(gw_http_finished(h));
    out_free(&toc);
    out_free(&tob);
    gw_http_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_and_value),
        cmocka_unit_test(test_request_line),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_stripped),
        cmocka_unit_test(test_chunk_line),
        cmocka_unit_test(test_value_escape),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_identity_build),
        cmocka_unit_test(test_local_response),
        cmocka_unit_test(test_engine_rewrite),
        cmocka_unit_test(test_engine_bodies),
        cmocka_unit_test(test_engine_pipeline_responses),
        cmocka_unit_test(test_engine_pipeline_bounded),
        cmocka_unit_test(test_engine_refusals),
        cmocka_unit_test(test_engine_bad_chunk_after_head),
        cmocka_unit_test(test_engine_backend_failures),
        cmocka_unit_test(test_engine_response_to_eof_and_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

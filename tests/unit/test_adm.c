/* test_adm.c - the admin API's server (admin-api/http.c, auth.c, route_system.c, openapi.c) driven
 * over real HTTP with libcurl: a server on 127.0.0.1 with an ephemeral port (and one on a Unix
 * socket), a tokens file with a reader, an operator and an admin token in a temporary directory, and
 * fake gateway hooks. A few test routes (adm_routes_test, below) reach the request helpers through
 * real requests. Negative cases: 401/403/404/405/413/415/429, bad JSON, bad tokens files, a reload
 * of a broken file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin-api/adm_srv.h"
#include "gateway/log.h"

static char g_dir[64];
static char g_log[128];
static struct adm_server *g_srv;
static int g_port;

/* Three tokens, as an operator would make them (made with adm_token_new in setup). */
static char tok_reader[64], tok_operator[64], tok_admin[64];

/* ---------------------------------------------------------------- helpers */

static const char *P(const char *name)
{
    static char bufs[16][256];
    static int next;
    char *p = bufs[next++ % 16];
    snprintf(p, 256, "%s/%s", g_dir, name);
    return p;
}

static void write_file(const char *path, mode_t mode, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void write_file(const char *path, mode_t mode, const char *fmt, ...)
{
    va_list ap;
    FILE *f;

    unlink(path);
    f = fopen(path, "w");
    assert_non_null(f);
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void hash_hex(const char *token, char out[65])
{
    uint8_t h[32];
    assert_int_equal(wc_Sha256Hash((const byte *)token, (word32)strlen(token), h), 0);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n)
        buf[0] = '\0';
    fclose(f);
    return buf;
}

struct reply {
    long status;
    char body[256 * 1024];
    size_t len;
    char headers[8192];
    size_t hlen;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t len = size * n;
    if (r->len + len >= sizeof(r->body))
        len = sizeof(r->body) - r->len - 1;
    memcpy(r->body + r->len, p, len);
    r->len += len;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t len = size * n;
    if (r->hlen + len >= sizeof(r->headers))
        len = sizeof(r->headers) - r->hlen - 1;
    memcpy(r->headers + r->hlen, p, len);
    r->hlen += len;
    r->headers[r->hlen] = '\0';
    return size * n;
}

/* The value of header name in r (case-insensitive name), or "" (a static buffer). */
static const char *header(const struct reply *r, const char *name)
{
    static char v[1024];
    size_t nl = strlen(name);

    v[0] = '\0';
    for (const char *l = r->headers; l != NULL && *l != '\0'; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *s = l + nl + 1;
            while (*s == ' ')
                s++;
            size_t k = strcspn(s, "\r\n");
            snprintf(v, sizeof(v), "%.*s", (int)k, s);
            break;
        }
    }
    return v;
}

/* Chunked uploads: the body given out in pieces, no Content-Length. */
struct upload {
    const char *p;
    size_t left;
};

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
    struct upload *u = arg;
    size_t k = size * n < u->left ? size * n : u->left;
    if (k > 1000)
        k = 1000;
    memcpy(buf, u->p, k);
    u->p += k;
    u->left -= k;
    return k;
}

struct opts {
    const char *token;
    const char *ctype;
    const char *body;
    size_t body_len;            /* 0: strlen(body) */
    int chunked;
    const char *request_id;
    const char *unix_path;
    int port;                   /* 0: g_port */
    CURL *reuse;                /* a handle to reuse (keep-alive), else a fresh one */
};

static long http(const char *method, const char *path, const struct opts *o, struct reply *r)
{
    static const struct opts none;
    struct curl_slist *h = NULL;
    struct upload up = { 0 };
    char url[512], line[600];
    CURL *c;
    CURLcode rc;

    if (o == NULL)
        o = &none;
    memset(r, 0, sizeof(*r));
    c = o->reuse != NULL ? o->reuse : curl_easy_init();
    assert_non_null(c);
    curl_easy_reset(c);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", o->port ? o->port : g_port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (o->unix_path != NULL)
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, o->unix_path);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (o->token != NULL) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", o->token);
        h = curl_slist_append(h, line);
    }
    if (o->ctype != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", o->ctype);
        h = curl_slist_append(h, line);
    }
    if (o->request_id != NULL) {
        snprintf(line, sizeof(line), "X-Request-Id: %s", o->request_id);
        h = curl_slist_append(h, line);
    }
    if (o->body != NULL) {
        size_t n = o->body_len ? o->body_len : strlen(o->body);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        if (o->chunked) {
            up.p = o->body;
            up.left = n;
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, &up);
            h = curl_slist_append(h, "Transfer-Encoding: chunked");
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
        }
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fprintf(stderr, "curl %s %s: %s\n", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    if (o->reuse == NULL)
        curl_easy_cleanup(c);
    return rc == CURLE_OK ? r->status : -1;
}

static long get(const char *path, const char *token, struct reply *r)
{
    struct opts o = { .token = token };
    return http("GET", path, &o, r);
}

static json_t *body_json(const struct reply *r)
{
    json_error_t je;
    json_t *o = json_loads(r->body, 0, &je);
    if (o == NULL)
        fprintf(stderr, "not JSON (%s): %s\n", je.text, r->body);
    assert_non_null(o);
    return o;
}

/* The problem document of r: checks the RFC 9457 members and returns it (caller decrefs). */
static json_t *problem(const struct reply *r, long status)
{
    char inst[128];
    json_t *o;

    assert_int_equal(r->status, status);
    assert_string_equal(header(r, "Content-Type"), "application/problem+json");
    o = body_json(r);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "about:blank");
    assert_int_equal(json_integer_value(json_object_get(o, "status")), status);
    assert_non_null(json_string_value(json_object_get(o, "title")));
    assert_non_null(json_string_value(json_object_get(o, "detail")));
    snprintf(inst, sizeof(inst), "urn:request:%s", header(r, "X-Request-Id"));
    assert_string_equal(json_string_value(json_object_get(o, "instance")), inst);
    return o;
}

static const char *pstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

/* ---------------------------------------------------------------- fake gateway */

static int g_health_ok = 1, g_changed, g_handler_calls;

static json_t *fake_health(void *ctx, int *ok)
{
    assert_ptr_equal(ctx, &g_health_ok);
    *ok = g_health_ok;
    return json_pack("{s:s, s:s}", "status", g_health_ok ? "ok" : "degraded", "hsm", "ok");
}

static json_t *fake_listeners(void *ctx)
{
    (void)ctx;
    return json_pack("{s:[{s:s, s:i}]}", "listeners", "name", "web", "handshakes", 7);
}

static int fake_metrics(void *ctx, char **out, size_t *len)
{
    static const char m[] = "# TYPE hsmgate_test_gauge gauge\nhsmgate_test_gauge 42\n";
    (void)ctx;
    char *p = realloc(*out, *len + sizeof(m));
    if (p == NULL)
        return -1;
    memcpy(p + *len, m, sizeof(m));
    *out = p;
    *len += sizeof(m) - 1;
    return 0;
}

static void fake_changed(void *ctx)
{
    (void)ctx;
    g_changed++;
}

/* Three live connections: 3 (web), 5 (api), 9 (web). Closing 5 works, 9 is not confirmed in time, 3
 * ends by itself meanwhile, 7 makes the gateway fail. */
static const struct { uint64_t id; const char *listener; } g_conns[] = { { 3, "web" }, { 5, "api" }, { 9, "web" } };
static uint64_t g_closed_id;

static json_t *fake_connections(void *ctx, const char *listener, size_t limit, uint64_t after_id)
{
    json_t *arr = json_array();
    assert_ptr_equal(ctx, &g_health_ok);
    for (size_t i = 0; i < sizeof(g_conns) / sizeof(g_conns[0]) && json_array_size(arr) < limit; i++) {
        if (g_conns[i].id <= after_id || (listener != NULL && strcmp(listener, g_conns[i].listener) != 0))
            continue;
        json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)g_conns[i].id, "listener",
                                             g_conns[i].listener, "peer", "127.0.0.1:1234", "client_subject",
                                             "CN=line\nbreak"));
    }
    return arr;
}

static int fake_close(void *ctx, uint64_t id)
{
    (void)ctx;
    g_closed_id = id;
    return id == 5 ? ADM_CONN_CLOSED : id == 9 ? ADM_CONN_PENDING : id == 3 ? ADM_CONN_UNKNOWN : -1;
}

static const struct adm_hooks g_hooks = {
    .ctx = &g_health_ok, .policy_changed = fake_changed, .metrics = fake_metrics, .listeners = fake_listeners,
    .health = fake_health, .connections = fake_connections, .close_connection = fake_close,
};

/* ---------------------------------------------------------------- test routes */

/* POST /test/echo (operator): the body helpers. */
static int t_echo(struct adm_req *req, struct adm_resp *resp)
{
    static const char *const allowed[] = { "name", "count", "comment", NULL };
    const char *name, *comment;
    long long count = 3;
    struct pol_actor who;
    json_t *o;

    g_handler_calls++;
    if (adm_body_object(req, resp, &o) != 0)
        return 0;
    if (adm_only_fields(resp, o, allowed) != 0 || adm_field_string(resp, o, "name", 1, &name) != 0 ||
        adm_field_int(resp, o, "count", 0, 1, 10, &count) != 0 ||
        adm_field_string(resp, o, "comment", 0, &comment) != 0) {
        json_decref(o);
        return 0;
    }
    adm_actor(req, comment, &who);
    adm_changed(req);
    snprintf(resp->location, sizeof(resp->location), "/test/echo/%s", name);
    adm_json(resp, 201, json_pack("{s:s, s:I, s:s, s:s*, s:s, s:s}", "name", name, "count", (json_int_t)count, "actor",
                                  who.actor, "comment", who.comment, "request_id", who.request_id, "source", who.source));
    json_decref(o);
    return 0;
}

/* GET /test/items/{a}/sub/{b} (reader): parameters, paging, who is asking. */
static int t_items(struct adm_req *req, struct adm_resp *resp)
{
    size_t limit;
    const char *after;

    g_handler_calls++;
    if (adm_page(req, resp, &limit, &after) != 0)
        return 0;
    adm_json(resp, 200, json_pack("{s:s, s:s, s:i, s:I, s:s*, s:s, s:s, s:s, s:s, s:b}", "a", req->params[0], "b",
                                  req->params[1], "nparams", (int)req->nparams, "limit", (json_int_t)limit, "after",
                                  after, "who", req->who, "role", adm_role_name(req->role), "source", req->source,
                                  "request_id", req->request_id, "store", adm_store(req) != NULL));
    return 0;
}

/* DELETE /test/admin (admin). */
static int t_admin(struct adm_req *req, struct adm_resp *resp)
{
    (void)req;
    g_handler_calls++;
    resp->status = 204;
    return 0;
}

/* GET /test/pol/{err} (reader): the problem for a policies/ error. */
static int t_pol(struct adm_req *req, struct adm_resp *resp)
{
    int err = atoi(req->params[0]);
    adm_pol_problem(resp, err, err == -4 ? "" : "as the store said");
    return 0;
}

/* GET /test/broken (reader): a handler that forgets to answer. */
static int t_broken(struct adm_req *req, struct adm_resp *resp)
{
    (void)req;
    (void)resp;
    return -1;
}

const struct adm_route adm_routes_test[] = {
    { "POST", "/test/echo", ADM_ROLE_OPERATOR, t_echo, "Echo a JSON body" },
    { "GET", "/test/items/{a}/sub/{b}", ADM_ROLE_READER, t_items, "Path parameters and paging" },
    { "DELETE", "/test/admin", ADM_ROLE_ADMIN, t_admin, "Admins only" },
    { "GET", "/test/pol/{err}", ADM_ROLE_READER, t_pol, "A policies error" },
    { "GET", "/test/broken", ADM_ROLE_READER, t_broken, "A broken handler" },
    { NULL, NULL, ADM_ROLE_NONE, NULL, NULL },
};

/* ---------------------------------------------------------------- servers */

static struct sockaddr_in g_lo = { .sin_family = AF_INET };

static int start_server(const char *tokens, const char *unix_path, size_t max_body, struct adm_server **out, char *err,
                        size_t errlen)
{
    struct adm_config cfg = {
        .bind = (const struct sockaddr *)&g_lo, .bind_len = sizeof(g_lo), .bind_text = "127.0.0.1:0",
        .unix_socket = unix_path, .tokens_file = tokens, .max_body = max_body,
    };
    g_lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_lo.sin_port = 0;
    return adm_server_start(&cfg, NULL, &g_hooks, out, err, errlen);
}

static void write_tokens(const char *path)
{
    char hr[65], ho[65], ha[65];
    hash_hex(tok_reader, hr);
    hash_hex(tok_operator, ho);
    hash_hex(tok_admin, ha);
    write_file(path, 0600,
               "# hsmgate admin tokens: NAME ROLE SHA256HEX\n"
               "\n"
               "reader   reader   %s\n"
               "  ops\toperator %s   \n"
               "alice admin %s\r\n",
               hr, ho, ha);
}

static int group_setup(void **state)
{
    char err[512], hex[65];
    (void)state;

    snprintf(g_dir, sizeof(g_dir), "/tmp/hsmgate-adm-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    /* One log line per request would bury cmocka's messages: test_log_lines looks at them alone. */
    snprintf(g_log, sizeof(g_log), "%s/log", g_dir);
    gw_log_set_level("warning");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (adm_token_new(tok_reader, sizeof(tok_reader), hex) != 0 ||
        adm_token_new(tok_operator, sizeof(tok_operator), hex) != 0 ||
        adm_token_new(tok_admin, sizeof(tok_admin), hex) != 0)
        return -1;
    write_tokens(P("tokens"));
    if (start_server(P("tokens"), NULL, 4096, &g_srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    g_port = adm_server_port(g_srv);
    return g_port > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[128];
    (void)state;

    adm_server_stop(g_srv);
    g_srv = NULL;
    curl_global_cleanup();
    if (getenv("ADM_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
        if (system(cmd) != 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- tests */

static void test_health_no_auth(void **state)
{
    struct reply r;
    json_t *o;
    (void)state;

    assert_int_equal(get("/v1/health", NULL, &r), 200);
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    assert_string_equal(header(&r, "Cache-Control"), "no-store");
    assert_string_equal(header(&r, "X-Content-Type-Options"), "nosniff");
    o = body_json(&r);
    assert_string_equal(pstr(o, "status"), "ok");
    json_decref(o);

    g_health_ok = 0;
    assert_int_equal(get("/v1/health", NULL, &r), 503);
    o = body_json(&r);
    assert_string_equal(pstr(o, "status"), "degraded");
    json_decref(o);
    assert_string_equal(header(&r, "Retry-After"), "");     /* a health answer, not a store outage */
    g_health_ok = 1;
}

static void test_401(void **state)
{
    struct reply r;
    json_t *o;
    (void)state;

    get("/v1/listeners", NULL, &r);
    o = problem(&r, 401);
    assert_string_equal(pstr(o, "title"), "Unauthorized");
    json_decref(o);
    assert_string_equal(header(&r, "WWW-Authenticate"), "Bearer realm=\"hsmgate-admin\"");
    assert_string_equal(header(&r, "Cache-Control"), "no-store");
    assert_string_equal(header(&r, "X-Content-Type-Options"), "nosniff");

    get("/v1/listeners", "not-a-token-we-know", &r);
    json_decref(problem(&r, 401));
    assert_non_null(strstr(header(&r, "WWW-Authenticate"), "error=\"invalid_token\""));

    /* Rubbish after the token: no bearer token. */
    char bad[128];
    snprintf(bad, sizeof(bad), "%s extra", tok_reader);
    get("/v1/listeners", bad, &r);
    json_decref(problem(&r, 401));
}

static void test_roles(void **state)
{
    struct reply r;
    json_t *o;
    (void)state;

    assert_int_equal(get("/v1/listeners", tok_reader, &r), 200);
    o = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(o, "listeners"), 0),
                                                        "handshakes")), 7);
    json_decref(o);

    /* DELETE /test/admin: admin only. */
    struct opts rd = { .token = tok_reader }, op = { .token = tok_operator }, ad = { .token = tok_admin };
    http("DELETE", "/test/admin", &rd, &r);
    o = problem(&r, 403);
    assert_non_null(strstr(pstr(o, "detail"), "admin"));
    json_decref(o);
    http("DELETE", "/test/admin", &op, &r);
    json_decref(problem(&r, 403));
    int before = g_handler_calls;
    assert_int_equal(http("DELETE", "/test/admin", &ad, &r), 204);
    assert_int_equal(g_handler_calls, before + 1);

    /* A reader cannot POST to an operator route; its body is never read. */
    struct opts rp = { .token = tok_reader, .ctype = "application/json", .body = "{\"name\":\"x\"}" };
    before = g_handler_calls;
    http("POST", "/test/echo", &rp, &r);
    json_decref(problem(&r, 403));
    assert_int_equal(g_handler_calls, before);
}

static void test_404_405(void **state)
{
    struct reply r;
    json_t *o;
    (void)state;

    get("/v1/nothing-here", tok_admin, &r);
    json_decref(problem(&r, 404));
    get("/v1/health/", NULL, &r);
    json_decref(problem(&r, 404));
    get("/test/items/a/sub", tok_admin, &r);
    json_decref(problem(&r, 404));

    struct opts ad = { .token = tok_admin };
    http("DELETE", "/v1/health", &ad, &r);
    o = problem(&r, 405);
    json_decref(o);
    assert_string_equal(header(&r, "Allow"), "GET");
    http("GET", "/test/echo", &ad, &r);
    json_decref(problem(&r, 405));
    assert_string_equal(header(&r, "Allow"), "POST");
}

static void test_params_and_paging(void **state)
{
    struct reply r;
    json_t *o;
    (void)state;

    assert_int_equal(get("/test/items/one/sub/two%20words?limit=7&after=abc", tok_reader, &r), 200);
    o = body_json(&r);
    assert_string_equal(pstr(o, "a"), "one");
    assert_string_equal(pstr(o, "b"), "two words");
    assert_int_equal(json_integer_value(json_object_get(o, "nparams")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "limit")), 7);
    assert_string_equal(pstr(o, "after"), "abc");
    assert_string_equal(pstr(o, "who"), "token:reader");
    assert_string_equal(pstr(o, "role"), "reader");
    assert_true(strncmp(pstr(o, "source"), "127.0.0.1:", 10) == 0);
    assert_string_equal(pstr(o, "request_id"), header(&r, "X-Request-Id"));
    assert_false(json_is_true(json_object_get(o, "store")));
    json_decref(o);

    assert_int_equal(get("/test/items/x/sub/y", tok_admin, &r), 200);
    o = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(o, "limit")), 100);
    assert_null(json_object_get(o, "after"));
    assert_string_equal(pstr(o, "role"), "admin");
    json_decref(o);

    static const char *const bad[] = { "?limit=0", "?limit=1001", "?limit=abc", "?limit=", "?limit=-5", "?limit=10x" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[64];
        snprintf(path, sizeof(path), "/test/items/x/sub/y%s", bad[i]);
        get(path, tok_reader, &r);
        o = problem(&r, 400);
        assert_string_equal(pstr(o, "field"), "limit");
        json_decref(o);
    }
}

static void test_body_json(void **state)
{
    struct reply r;
    json_t *o;
    (void)state;
    struct opts op = { .token = tok_operator, .ctype = "application/json; charset=utf-8",
                       .body = "{\"name\": \"n1\", \"count\": 5, \"comment\": \"ticket 42\"}" };

    int changed = g_changed;
    assert_int_equal(http("POST", "/test/echo", &op, &r), 201);
    assert_string_equal(header(&r, "Location"), "/test/echo/n1");
    o = body_json(&r);
    assert_string_equal(pstr(o, "name"), "n1");
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 5);
    assert_string_equal(pstr(o, "actor"), "token:ops");
    assert_string_equal(pstr(o, "comment"), "ticket 42");
    assert_string_equal(pstr(o, "request_id"), header(&r, "X-Request-Id"));
    assert_true(strncmp(pstr(o, "source"), "127.0.0.1:", 10) == 0);
    json_decref(o);
    assert_int_equal(g_changed, changed + 1);

    /* Bad JSON: the problem names line and column. */
    op.ctype = "application/json";
    op.body = "{\n  \"name\": \"x\",\n  oops\n}";
    http("POST", "/test/echo", &op, &r);
    o = problem(&r, 400);
    assert_non_null(strstr(pstr(o, "detail"), "line 3, column"));
    json_decref(o);

    struct { const char *body, *field, *detail; } cases[] = {
        { "{\"name\":\"a\",\"name\":\"b\"}", NULL, "duplicate" },
        { "[1,2]", NULL, "object" },
        { "\"just a string\"", NULL, "object" },
        { "{\"name\":\"a\",\"colour\":\"red\"}", "colour", "unknown field" },
        { "{\"count\":2}", "name", "required" },
        { "{\"name\":7}", "name", "string" },
        { "{\"name\":\"a\",\"count\":\"5\"}", "count", "integer" },
        { "{\"name\":\"a\",\"count\":5.5}", "count", "integer" },
        { "{\"name\":\"a\",\"count\":11}", "count", "between 1 and 10" },
        { "{\"name\":\"a\",\"count\":0}", "count", "between 1 and 10" },
        { "{\"name\":\"a\\u0000b\"}", NULL, "line 1" },
        { "", NULL, "empty" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        op.body = cases[i].body;
        op.body_len = 0;
        int calls = g_changed;
        if (cases[i].body[0] == '\0') {
            op.body = " ";              /* curl needs a body to send; a blank is still no JSON */
        }
        http("POST", "/test/echo", &op, &r);
        o = problem(&r, 400);
        if (cases[i].field != NULL)
            assert_string_equal(pstr(o, "field"), cases[i].field);
        if (strstr(pstr(o, "detail"), cases[i].detail) == NULL && cases[i].body[0] != '\0')
            fail_msg("case %zu: detail \"%s\" lacks \"%s\"", i, pstr(o, "detail"), cases[i].detail);
        json_decref(o);
        assert_int_equal(g_changed, calls);     /* nothing "changed" */
    }

    /* A detail that quotes client input cut inside a UTF-8 sequence is still a 400 problem, not a 500. */
    char cut[256];
    snprintf(cut, sizeof(cut), "{\"name\":\"a\",\"%099d\u00e9\":1}", 0);
    op.body = cut;
    http("POST", "/test/echo", &op, &r);
    o = problem(&r, 400);
    assert_non_null(strstr(pstr(o, "detail"), "unknown field"));
    assert_int_equal(strlen(pstr(o, "field")), 101);
    json_decref(o);

    /* null counts as absent for an optional field */
    op.body = "{\"name\":\"z\",\"comment\":null}";
    assert_int_equal(http("POST", "/test/echo", &op, &r), 201);
}

static void test_415(void **state)
{
    struct reply r;
    (void)state;
    static const char *const types[] = { "text/plain", "application/jsonx", "application/x-www-form-urlencoded", NULL };

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        struct opts op = { .token = tok_operator, .ctype = types[i], .body = "{\"name\":\"x\"}" };
        http("POST", "/test/echo", &op, &r);    /* NULL: curl sends its form type */
        json_decref(problem(&r, 415));
    }
}

static void test_413(void **state)
{
    struct reply r;
    char *big = malloc(3 << 20);
    (void)state;

    assert_non_null(big);
    memset(big, ' ', 3 << 20);
    big[0] = '{';
    big[(3 << 20) - 1] = '}';
    CURL *keep = curl_easy_init();
    int calls = g_handler_calls;

    /* Declared lengths over the cap (4096 here) are refused before the body is read, small or large. */
    size_t sizes[] = { 5000, 3 << 20 };
    for (size_t i = 0; i < 2; i++) {
        struct opts op = { .token = tok_operator, .ctype = "application/json", .body = big, .body_len = sizes[i],
                           .reuse = keep };
        http("POST", "/test/echo", &op, &r);
        json_decref(problem(&r, 413));
        /* The connection (if kept) still serves the next request properly. */
        struct opts g = { .reuse = keep };
        assert_int_equal(http("GET", "/v1/health", &g, &r), 200);
    }
    /* Chunked, no length: counted as it comes, refused at the end. */
    struct opts ch = { .token = tok_operator, .ctype = "application/json", .body = big, .body_len = 10000,
                       .chunked = 1, .reuse = keep };
    http("POST", "/test/echo", &ch, &r);
    json_decref(problem(&r, 413));
    struct opts g = { .reuse = keep };
    assert_int_equal(http("GET", "/v1/health", &g, &r), 200);
    assert_int_equal(g_handler_calls, calls);

    /* Exactly the cap is fine (and then it is the JSON that is judged). */
    struct opts ok = { .token = tok_operator, .ctype = "application/json", .body = big, .body_len = 4096,
                       .chunked = 1 };
    big[4095] = '}';
    http("POST", "/test/echo", &ok, &r);
    json_decref(problem(&r, 400));      /* {   } has no "name" */
    assert_int_equal(g_handler_calls, calls + 1);
    curl_easy_cleanup(keep);
    free(big);
}

static void test_request_id(void **state)
{
    struct reply r;
    json_t *o;
    (void)state;

    struct opts o1 = { .request_id = "abc-DEF_1.2" };
    http("GET", "/v1/health", &o1, &r);
    assert_string_equal(header(&r, "X-Request-Id"), "abc-DEF_1.2");

    char long64[65], long65[66];
    memset(long64, 'a', 64);
    long64[64] = '\0';
    memset(long65, 'b', 65);
    long65[65] = '\0';
    struct opts o2 = { .request_id = long64 };
    http("GET", "/v1/listeners", &o2, &r);
    assert_string_equal(header(&r, "X-Request-Id"), long64);
    o = problem(&r, 401);       /* the instance names the client's id */
    json_decref(o);

    static const char *const bad[] = { "has space", "semi;colon", "quote\"", "" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) + 1; i++) {
        struct opts ob = { .request_id = i < sizeof(bad) / sizeof(bad[0]) ? bad[i] : long65 };
        http("GET", "/v1/health", &ob, &r);
        const char *id = header(&r, "X-Request-Id");
        assert_int_equal(strlen(id), 32);
        assert_int_equal(strspn(id, "0123456789abcdef"), 32);
    }
    /* Two requests without one get different ids. */
    char first[65];
    get("/v1/health", NULL, &r);
    snprintf(first, sizeof(first), "%s", header(&r, "X-Request-Id"));
    get("/v1/health", NULL, &r);
    assert_string_not_equal(first, header(&r, "X-Request-Id"));
}

static void test_pol_problems(void **state)
{
    static const struct { int err; long status; } map[] = {
        { POL_E_ARG, 400 },          { POL_E_DER, 400 },       { POL_E_CRL_SIGNATURE, 422 },
        { POL_E_CRL_ROLLBACK, 422 }, { POL_E_CERT, 422 },      { POL_E_NOT_FOUND, 404 },
        { POL_E_EXISTS, 409 },       { POL_E_NOT_HOLD, 409 },  { POL_E_STORE, 503 },
        { POL_E_BUSY, 503 },         { POL_E_NOMEM, 500 },     { POL_E_SCHEMA, 500 },
    };
    struct reply r;
    (void)state;

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        char path[64];
        snprintf(path, sizeof(path), "/test/pol/%d", map[i].err);
        get(path, tok_reader, &r);
        json_t *o = problem(&r, map[i].status);
        assert_string_equal(pstr(o, "code"), pol_errname(map[i].err));
        if (map[i].err == -4)   /* t_pol gives -4 an empty message: pol_strerror's is used */
            assert_string_equal(pstr(o, "detail"), pol_strerror(map[i].err));
        else
            assert_string_equal(pstr(o, "detail"), "as the store said");
        json_decref(o);
        if (map[i].status == 503)
            assert_string_equal(header(&r, "Retry-After"), "5");
        else
            assert_string_equal(header(&r, "Retry-After"), "");
    }
    /* A handler that makes no response is a 500 problem, not a hang or an empty answer. */
    get("/test/broken", tok_reader, &r);
    json_decref(problem(&r, 500));
}

static void test_metrics(void **state)
{
    struct reply r;
    (void)state;

    get("/v1/health", NULL, &r);
    assert_int_equal(get("/metrics", NULL, &r), 200);
    assert_string_equal(header(&r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(r.body, "hsmgate_test_gauge 42\n"));
    assert_non_null(strstr(r.body, "hsmgate_admin_requests_total{method=\"GET\",route=\"/v1/health\",status=\"200\"} "));
    assert_non_null(strstr(r.body, "hsmgate_admin_requests_total{method=\"GET\",route=\"/v1/listeners\",status=\"401\"} "));
    assert_non_null(strstr(r.body, "hsmgate_admin_requests_total{method=\"GET\",route=\"none\",status=\"404\"} "));
    assert_non_null(strstr(r.body, "hsmgate_admin_tokens 3\n"));
    assert_non_null(strstr(r.body, "# TYPE hsmgate_admin_auth_failures_total counter\n"));

    /* The counter moves. */
    const char *key = "hsmgate_admin_requests_total{method=\"GET\",route=\"/v1/health\",status=\"200\"} ";
    long before = atol(strstr(r.body, key) + strlen(key));
    get("/v1/health", NULL, &r);
    get("/metrics", NULL, &r);
    assert_int_equal(atol(strstr(r.body, key) + strlen(key)), before + 1);
}

static void test_openapi(void **state)
{
    struct reply r;
    size_t ntables, nroutes = 0;
    json_t *doc, *paths;
    (void)state;

    assert_int_equal(get("/v1/openapi.json", NULL, &r), 200);
    doc = body_json(&r);
    assert_true(strncmp(pstr(doc, "openapi"), "3.0", 3) == 0);
    paths = json_object_get(doc, "paths");
    assert_non_null(json_object_get(json_object_get(paths, "/v1/health"), "get"));

    /* Every route of every table, with the right security and parameters; nothing else. */
    const struct adm_route *const *t = adm_route_tables(&ntables);
    for (size_t i = 0; i < ntables; i++) {
        for (const struct adm_route *rt = t[i]; rt->method != NULL; rt++) {
            char m[16];
            size_t k = 0;
            for (; rt->method[k] != '\0'; k++)
                m[k] = (char)(rt->method[k] | 0x20);
            m[k] = '\0';
            json_t *op = json_object_get(json_object_get(paths, rt->pattern), m);
            if (op == NULL)
                fail_msg("%s %s is not in the OpenAPI document", rt->method, rt->pattern);
            assert_string_equal(pstr(op, "summary"), rt->summary);
            json_t *sec = json_object_get(op, "security");
            if (rt->role > ADM_ROLE_NONE)
                assert_non_null(json_object_get(json_array_get(sec, 0), "bearerAuth"));
            else
                assert_int_equal(json_array_size(sec), 0);
            size_t nbraces = 0;
            for (const char *p = rt->pattern; (p = strchr(p, '{')) != NULL; p++)
                nbraces++;
            size_t npath = 0, idx;
            json_t *prm;
            json_array_foreach(json_object_get(op, "parameters"), idx, prm)
                if (strcmp(pstr(prm, "in"), "path") == 0)
                    npath++;
            assert_int_equal(npath, nbraces);
            /* What every route may answer; and each of the gateway's routes says, in its ADM_DOC, what it
             * answers on success (the test routes have no doc). */
            json_t *resps = json_object_get(op, "responses"), *rs;
            const char *st;
            int documented = 0;
            assert_non_null(json_object_get(resps, "500"));
            assert_non_null(json_object_get(resps, "default"));
            json_object_foreach(resps, st, rs)
                documented |= st[0] == '2' && json_object_get(rs, "content") != NULL;
            if (strncmp(rt->pattern, "/test/", 6) != 0 && !documented)
                fail_msg("%s %s: no success answer in the OpenAPI document (its ADM_DOC)", rt->method, rt->pattern);
            nroutes++;
        }
    }
    size_t ndoc = 0;
    const char *key;
    json_t *item;
    json_object_foreach(paths, key, item)
        ndoc += json_object_size(item);
    assert_int_equal(ndoc, nroutes);
    json_t *p = json_array_get(json_object_get(json_object_get(json_object_get(paths, "/test/items/{a}/sub/{b}"), "get"),
                                               "parameters"), 1);
    assert_string_equal(pstr(p, "name"), "b");
    assert_non_null(json_object_get(json_object_get(json_object_get(doc, "components"), "securitySchemes"), "bearerAuth"));
    assert_non_null(json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), "Problem"));
    json_decref(doc);
}

/* The resource files of the other tables, when they exist, have their routes linked in (an empty
 * stand-in from routes_default.c would hide them: see there). Run from the repository root. */
static void test_tables_linked(void **state)
{
    static const char *const files[] = { "admin-api/route_revocations.c", "admin-api/route_allowlists.c",
                                         "admin-api/route_crls.c", "admin-api/route_audit.c" };
    size_t ntables;
    const struct adm_route *const *t = adm_route_tables(&ntables);
    (void)state;

    assert_true(ntables >= 5);
    assert_non_null(t[0][0].method);    /* adm_routes_system */
    if (access("admin-api/adm_int.h", F_OK) != 0)
        skip();
    for (size_t i = 0; i < 4; i++)
        if (access(files[i], F_OK) == 0 && t[i + 1][0].method == NULL)
            fail_msg("%s exists but its route table is not linked in", files[i]);
}

/* /v1/connections (route_connections.c) over the fake hooks: pages, the listener filter, ids, roles,
 * each answer of close_connection, and a gateway that does not show its connections. */
static void test_connections(void **state)
{
    struct reply r;
    json_t *o;
    (void)state;

    assert_int_equal(get("/v1/connections", tok_reader, &r), 200);
    o = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 3);
    assert_true(json_is_null(json_object_get(o, "next")));
    json_decref(o);
    assert_int_equal(get("/v1/connections?limit=2", tok_reader, &r), 200);
    o = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 2);
    assert_string_equal(pstr(o, "next"), "5");
    json_decref(o);
    assert_int_equal(get("/v1/connections?limit=2&after=5", tok_reader, &r), 200);
    o = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(o, "items"), 0), "id")), 9);
    assert_true(json_is_null(json_object_get(o, "next")));
    json_decref(o);
    assert_int_equal(get("/v1/connections?listener=api", tok_reader, &r), 200);
    o = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    json_decref(o);

    static const struct { const char *path, *field; } bad[] = {
        { "/v1/connections?after=x", "after" }, { "/v1/connections?after=-1", "after" },
        { "/v1/connections?after=99999999999999999999", "after" }, { "/v1/connections?listener=", "listener" },
        { "/v1/connections?listener=0123456789012345678901234567890123456789012345678901234567890123456789xx", "listener" },
        { "/v1/connections/abc", "id" }, { "/v1/connections/0", "id" }, { "/v1/connections/5x", "id" },
        { "/v1/connections/9223372036854775808", "id" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        get(bad[i].path, tok_reader, &r);
        o = problem(&r, 400);
        assert_string_equal(pstr(o, "field"), bad[i].field);
        json_decref(o);
    }
    assert_int_equal(get("/v1/connections/5", tok_reader, &r), 200);
    o = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(o, "id")), 5);
    json_decref(o);
    get("/v1/connections/4", tok_reader, &r);
    json_decref(problem(&r, 404));
    get("/v1/connections", NULL, &r);
    json_decref(problem(&r, 401));

    /* Closing: operators only; 200 closed, 202 not confirmed, 404 gone meanwhile or unknown, 500. */
    struct opts rd = { .token = tok_reader }, op = { .token = tok_operator };
    g_closed_id = 0;
    http("DELETE", "/v1/connections/5", &rd, &r);
    json_decref(problem(&r, 403));
    assert_int_equal(g_closed_id, 0);
    assert_int_equal(http("DELETE", "/v1/connections/5", &op, &r), 200);
    o = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "closed"), "id")), 5);
    json_decref(o);
    assert_int_equal(http("DELETE", "/v1/connections/9", &op, &r), 202);
    o = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "closing"), "id")), 9);
    json_decref(o);
    http("DELETE", "/v1/connections/3", &op, &r);
    json_decref(problem(&r, 404));
    assert_int_equal(g_closed_id, 3);
    g_closed_id = 0;
    http("DELETE", "/v1/connections/4", &op, &r);      /* not listed: never asked */
    json_decref(problem(&r, 404));
    assert_int_equal(g_closed_id, 0);
    struct opts ob = { .token = tok_operator, .ctype = "application/json", .body = "{\"comment\":\"x\",\"extra\":1}" };
    http("DELETE", "/v1/connections/5", &ob, &r);
    o = problem(&r, 400);
    assert_string_equal(pstr(o, "field"), "extra");
    json_decref(o);
    assert_int_equal(g_closed_id, 0);

    /* A gateway without the hooks: 503. */
    struct adm_hooks none = g_hooks;
    struct adm_server *s = NULL;
    char err[512];
    none.connections = NULL;
    none.close_connection = NULL;
    struct adm_config cfg = { .bind = (const struct sockaddr *)&g_lo, .bind_len = sizeof(g_lo), .bind_text = "127.0.0.1:0",
                              .tokens_file = P("tokens") };
    assert_int_equal(adm_server_start(&cfg, NULL, &none, &s, err, sizeof(err)), 0);
    struct opts on = { .token = tok_reader, .port = adm_server_port(s) };
    http("GET", "/v1/connections", &on, &r);
    json_decref(problem(&r, 503));
    adm_server_stop(s);
}

static void test_log_lines(void **state)
{
    struct reply r;
    (void)state;

    /* The error log goes to stderr: into a file for these requests. */
    fflush(stderr);
    int saved = dup(2), fd = open(g_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
    gw_log_set_level("info");
    struct opts o = { .token = tok_reader, .request_id = "log-check-1" };
    http("GET", "/v1/listeners", &o, &r);
    struct opts b = { .token = "wrong-token-zzz", .request_id = "log-check-2" };
    http("GET", "/v1/listeners", &b, &r);
    struct opts c = { .token = tok_operator, .request_id = "log-check-3" };
    http("DELETE", "/v1/connections/5?comment=why%0Anot", &c, &r);
    gw_log_set_level("warning");
    dup2(saved, 2);
    close(saved);
    char *log = read_all(g_log);
    assert_non_null(log);
    assert_non_null(strstr(log, "admin: GET /v1/listeners 200 who=token:reader src=127.0.0.1:"));
    assert_non_null(strstr(log, "id=log-check-1"));
    assert_non_null(strstr(log, "admin: GET /v1/listeners 401 who=- "));
    /* A closed connection names who and the request; a line break in what it quotes forges no line. */
    assert_non_null(strstr(log, "admin: connection 5 (listener api, peer 127.0.0.1:1234, client CN=line?break) "
                                "closed by token:ops src=127.0.0.1:"));
    assert_non_null(strstr(log, "id=log-check-3 comment=\"why?not\""));
    /* No token ever reaches the log, right or wrong. */
    assert_null(strstr(log, tok_reader));
    assert_null(strstr(log, tok_operator));
    assert_null(strstr(log, tok_admin));
    assert_null(strstr(log, "wrong-token-zzz"));
    free(log);
}

static void test_throttle(void **state)
{
    struct adm_server *s = NULL;
    struct reply r;
    char err[512];
    (void)state;

    assert_int_equal(start_server(P("tokens"), NULL, 0, &s, err, sizeof(err)), 0);
    struct opts bad = { .token = "guess", .port = adm_server_port(s) }, good = { .token = tok_admin,
                                                                                 .port = adm_server_port(s) };
    /* A missing token is no guess: it does not count. */
    struct opts none = { .port = adm_server_port(s) };
    for (int i = 0; i < 10; i++)
        assert_int_equal(http("GET", "/v1/listeners", &none, &r), 401);
    for (int i = 0; i < ADM_AUTH_FAIL_LIMIT; i++)
        assert_int_equal(http("GET", "/v1/listeners", &bad, &r), 401);
    http("GET", "/v1/listeners", &good, &r);
    json_t *o = problem(&r, 429);
    json_decref(o);
    int ra = atoi(header(&r, "Retry-After"));
    assert_true(ra >= 1 && ra <= ADM_AUTH_BLOCK_SECONDS);
    http("GET", "/v1/listeners", &bad, &r);
    assert_int_equal(r.status, 429);
    /* Routes without authentication still answer. */
    assert_int_equal(http("GET", "/v1/health", &none, &r), 200);
    http("GET", "/metrics", &none, &r);
    assert_non_null(strstr(r.body, "hsmgate_admin_auth_throttled_total 2\n"));
    assert_non_null(strstr(r.body, "hsmgate_admin_auth_failures_total 5\n"));
    adm_server_stop(s);
}

static void test_tokens_file_errors(void **state)
{
    struct adm_server *s = NULL;
    char err[512], h[65];
    (void)state;

    hash_hex("x", h);
    /* Permissions: the PIN file rule. */
    write_file(P("t-gw"), 0620, "a admin %s\n", h);
    assert_int_not_equal(start_server(P("t-gw"), NULL, 0, &s, err, sizeof(err)), 0);
    assert_null(s);
    assert_non_null(strstr(err, "writable by group or others"));
    assert_non_null(strstr(err, P("t-gw")));
    write_file(P("t-ow"), 0602, "a admin %s\n", h);
    assert_int_not_equal(start_server(P("t-ow"), NULL, 0, &s, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "writable by group or others"));
    write_file(P("t-or"), 0604, "a admin %s\n", h);
    assert_int_not_equal(start_server(P("t-or"), NULL, 0, &s, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "readable by others"));
    write_file(P("t-gr"), 0640, "a admin %s\n", h);     /* group-readable is fine (root:hsmgate 0640) */
    assert_int_equal(start_server(P("t-gr"), NULL, 0, &s, err, sizeof(err)), 0);
    adm_server_stop(s);
    s = NULL;
    assert_int_not_equal(start_server(P("no-such-file"), NULL, 0, &s, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "No such file"));

    /* Syntax: each names file:line. */
    /* line = pre, the first nhash digits of a hash, post */
    struct { const char *pre; int nhash; const char *post, *why; } cases[] = {
        { "bob admin", 0, "", "expected three fields" },
        { "bob admin ", 64, " extra", "more than three fields" },
        { "bob root ", 64, "", "unknown role" },
        { "b@b admin ", 64, "", "name must be" },
        { "bob admin 1234", 0, "", "64 hex digits" },
        { "bob admin ", 63, "g", "64 hex digits" },
        { "a reader ", 64, "", "used twice" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[256], want[300];
        char h2[65];
        hash_hex("y", h2);
        snprintf(line, sizeof(line), "%s%.*s%s", cases[i].pre, cases[i].nhash, h2, cases[i].post);
        write_file(P("t-syn"), 0600, "# comment\n\na admin %s\n%s\n", i == 6 ? h2 : h, line);
        err[0] = '\0';
        assert_int_not_equal(start_server(P("t-syn"), NULL, 0, &s, err, sizeof(err)), 0);
        snprintf(want, sizeof(want), "%s:4: ", P("t-syn"));
        if (strstr(err, want) == NULL || strstr(err, cases[i].why) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\" or \"%s\"", i, err, want, cases[i].why);
    }
    /* The same token under two names. */
    write_file(P("t-dup"), 0600, "a admin %s\nb reader %s\n", h, h);
    assert_int_not_equal(start_server(P("t-dup"), NULL, 0, &s, err, sizeof(err)), 0);
    assert_non_null(strstr(err, ":2: the same token hash as a"));
    /* An empty file (only comments) loads: every authenticated route answers 401. */
    write_file(P("t-empty"), 0600, "# nobody yet\n");
    assert_int_equal(start_server(P("t-empty"), NULL, 0, &s, err, sizeof(err)), 0);
    struct reply r;
    struct opts o = { .token = tok_admin, .port = adm_server_port(s) };
    assert_int_equal(http("GET", "/v1/listeners", &o, &r), 401);
    adm_server_stop(s);
}

static void test_reload(void **state)
{
    struct adm_server *s = NULL;
    struct reply r;
    char err[512], h[65], fresh[64], fresh_hash[65];
    (void)state;

    write_tokens(P("t-reload"));
    assert_int_equal(start_server(P("t-reload"), NULL, 0, &s, err, sizeof(err)), 0);
    struct opts old = { .token = tok_reader, .port = adm_server_port(s) };
    assert_int_equal(http("GET", "/v1/listeners", &old, &r), 200);

    /* A broken file: refused, the old tokens stay. */
    hash_hex("z", h);
    write_file(P("t-reload"), 0600, "z admin %s\nbroken line\n", h);
    assert_int_not_equal(adm_server_reload_tokens(s, err, sizeof(err)), 0);
    assert_non_null(strstr(err, ":2: "));
    assert_int_equal(http("GET", "/v1/listeners", &old, &r), 200);
    chmod(P("t-reload"), 0666);
    assert_int_not_equal(adm_server_reload_tokens(s, err, sizeof(err)), 0);
    assert_int_equal(http("GET", "/v1/listeners", &old, &r), 200);

    /* A good one: the new token works, the old one no longer. */
    assert_int_equal(adm_token_new(fresh, sizeof(fresh), fresh_hash), 0);
    write_file(P("t-reload"), 0600, "new operator %s\n", fresh_hash);
    assert_int_equal(adm_server_reload_tokens(s, err, sizeof(err)), 0);
    struct opts nw = { .token = fresh, .port = adm_server_port(s) };
    assert_int_equal(http("GET", "/v1/listeners", &nw, &r), 200);
    assert_int_equal(http("GET", "/v1/listeners", &old, &r), 401);
    http("GET", "/metrics", &nw, &r);
    assert_non_null(strstr(r.body, "hsmgate_admin_token_reloads_total{result=\"ok\"} 1\n"));
    assert_non_null(strstr(r.body, "hsmgate_admin_token_reloads_total{result=\"error\"} 2\n"));
    adm_server_stop(s);

    /* Without a tokens file there is nothing to reload. */
    assert_int_equal(start_server(NULL, NULL, 0, &s, err, sizeof(err)), 0);
    assert_int_not_equal(adm_server_reload_tokens(s, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "no tokens file"));
    adm_server_stop(s);
    assert_int_not_equal(adm_server_reload_tokens(NULL, err, sizeof(err)), 0);
}

static void test_token_new(void **state)
{
    char t1[ADM_TOKEN_LEN + 1], t2[ADM_TOKEN_LEN + 1], h1[65], h2[65], want[65];
    (void)state;

    assert_int_equal(adm_token_new(t1, sizeof(t1), h1), 0);
    assert_int_equal(adm_token_new(t2, sizeof(t2), h2), 0);
    assert_int_equal(strlen(t1), ADM_TOKEN_LEN);
    assert_int_equal(strspn(t1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), ADM_TOKEN_LEN);
    assert_string_not_equal(t1, t2);
    hash_hex(t1, want);
    assert_string_equal(h1, want);
    assert_int_not_equal(adm_token_new(t1, ADM_TOKEN_LEN, h1), 0);     /* no room for the NUL */

    /* The README's recipe gives the same hash: printf %s TOKEN | sha256sum */
    char cmd[256], out[128] = "";
    snprintf(cmd, sizeof(cmd), "printf %%s '%s' | sha256sum", t2);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        skip();
    if (fgets(out, sizeof(out), p) == NULL)
        out[0] = '\0';
    pclose(p);
    assert_true(strncmp(out, h2, 64) == 0);
}

static void test_unix_socket(void **state)
{
    struct adm_server *s = NULL, *s2 = NULL;
    struct reply r;
    struct stat st;
    char err[512];
    (void)state;

    /* A stale socket file (no server behind it) is replaced. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", P("admin.sock"));
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);

    assert_int_equal(start_server(P("tokens"), P("admin.sock"), 0, &s, err, sizeof(err)), 0);
    assert_int_equal(stat(P("admin.sock"), &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);
    struct opts o = { .unix_path = P("admin.sock") };
    assert_int_equal(http("GET", "/v1/health", &o, &r), 200);
    o.token = tok_reader;
    assert_int_equal(http("GET", "/test/items/u/sub/v", &o, &r), 200);
    json_t *j = body_json(&r);
    assert_string_equal(pstr(j, "source"), "unix");
    json_decref(j);
    /* and TCP beside it */
    struct opts t = { .port = adm_server_port(s) };
    assert_int_equal(http("GET", "/v1/health", &t, &r), 200);

    /* A live server's socket is not taken over; a file that is not a socket is not touched. */
    assert_int_not_equal(start_server(P("tokens"), P("admin.sock"), 0, &s2, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "in use"));
    write_file(P("plain"), 0600, "keep me\n");
    assert_int_not_equal(start_server(P("tokens"), P("plain"), 0, &s2, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "not a socket"));
    assert_int_equal(access(P("plain"), F_OK), 0);

    /* Stop removes the socket file and closes the TCP listener. */
    int port = adm_server_port(s);
    adm_server_stop(s);
    assert_int_not_equal(access(P("admin.sock"), F_OK), 0);
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_not_equal(connect(fd, (struct sockaddr *)&in, sizeof(in)), 0);
    close(fd);
}

static void *parallel_client(void *arg)
{
    struct reply *r = malloc(sizeof(*r));
    long ok = 0;
    (void)arg;

    for (int i = 0; r != NULL && i < 25; i++) {
        struct opts o = { .token = i % 2 ? tok_reader : NULL };
        if (http("GET", i % 2 ? "/v1/listeners" : "/v1/health", &o, r) == 200)
            ok++;
    }
    free(r);
    return (void *)ok;
}

/* Clients at once: every request answered, every answer counted. */
static void test_parallel(void **state)
{
    pthread_t t[8];
    struct reply r;
    long total = 0;
    (void)state;

    get("/metrics", NULL, &r);
    long before = 0;
    const char *key = "hsmgate_admin_request_duration_seconds_count ";
    before = atol(strstr(r.body, key) + strlen(key));
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, parallel_client, NULL), 0);
    for (int i = 0; i < 8; i++) {
        void *ok;
        pthread_join(t[i], &ok);
        total += (long)ok;
    }
    assert_int_equal(total, 8 * 25);
    get("/metrics", NULL, &r);
    assert_int_equal(atol(strstr(r.body, key) + strlen(key)), before + 1 + 8 * 25);
}

static int count_fds(void)
{
    char path[64];
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        if (access(path, F_OK) == 0)
            n++;
    }
    return n;
}

/* Start and stop leave no descriptor or socket file behind, whether the start succeeds or not. */
static void test_no_leftovers(void **state)
{
    struct adm_server *s = NULL;
    struct reply r;
    char err[512];
    (void)state;

    int before = count_fds();
    for (int i = 0; i < 3; i++) {
        assert_int_equal(start_server(P("tokens"), P("cycle.sock"), 0, &s, err, sizeof(err)), 0);
        struct opts o = { .port = adm_server_port(s) };
        assert_int_equal(http("GET", "/v1/health", &o, &r), 200);
        adm_server_stop(s);
        s = NULL;
        assert_int_not_equal(start_server(P("tokens"), P("no-dir/x.sock"), 0, &s, err, sizeof(err)), 0);
        assert_non_null(strstr(err, "no-dir/x.sock"));
        write_file(P("t-bad"), 0644, "x\n");
        assert_int_not_equal(start_server(P("t-bad"), P("cycle.sock"), 0, &s, err, sizeof(err)), 0);
    }
    assert_int_equal(count_fds(), before);
    assert_int_not_equal(access(P("cycle.sock"), F_OK), 0);
}

static void test_start_errors(void **state)
{
    struct adm_server *s = NULL;
    struct adm_config none = { 0 };
    char err[512];
    (void)state;

    assert_int_not_equal(adm_server_start(&none, NULL, NULL, &s, err, sizeof(err)), 0);
    assert_null(s);
    /* The port of the running server is taken. */
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)g_port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct adm_config busy = { .bind = (struct sockaddr *)&in, .bind_len = sizeof(in), .bind_text = "127.0.0.1:busy",
                               .tokens_file = P("tokens") };
    assert_int_not_equal(adm_server_start(&busy, NULL, NULL, &s, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "127.0.0.1:busy"));
    assert_non_null(strstr(err, "in use"));
    adm_server_stop(NULL);
    assert_int_equal(adm_server_port(NULL), 0);
    /* Without hooks, routes that need them say 503. */
    in.sin_port = 0;
    struct adm_config free_port = busy;
    assert_int_equal(adm_server_start(&free_port, NULL, NULL, &s, err, sizeof(err)), 0);
    struct reply r;
    struct opts o = { .port = adm_server_port(s) };
    http("GET", "/v1/health", &o, &r);
    json_decref(problem(&r, 503));
    o.token = tok_reader;
    http("GET", "/v1/listeners", &o, &r);
    json_decref(problem(&r, 503));
    assert_int_equal(http("GET", "/metrics", &o, &r), 200);
    assert_non_null(strstr(r.body, "hsmgate_admin_requests_total"));
    adm_server_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_no_auth),
        cmocka_unit_test(test_401),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_404_405),
        cmocka_unit_test(test_params_and_paging),
        cmocka_unit_test(test_body_json),
        cmocka_unit_test(test_415),
        cmocka_unit_test(test_413),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_pol_problems),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_openapi),
        cmocka_unit_test(test_tables_linked),
        cmocka_unit_test(test_connections),
        cmocka_unit_test(test_log_lines),
        cmocka_unit_test(test_throttle),
        cmocka_unit_test(test_tokens_file_errors),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_token_new),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_no_leftovers),
        cmocka_unit_test(test_parallel),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

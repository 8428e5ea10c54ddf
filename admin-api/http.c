/* http.c - the admin API's server: libmicrohttpd daemons (TCP and a Unix socket), one request's life
 * (route, authenticate, read the body, dispatch, answer), the problem documents (RFC 9457), the
 * request helpers of adm_int.h, and the API's own request counters.
 *
 * A request is judged as soon as its headers are in, before its body is read: no route (404), wrong
 * method (405), no or bad token (401), too low a role (403), too many failures from its address (429)
 * and a declared body over the cap (413) are answered at once, so an unauthenticated client cannot make
 * the server buffer anything. Bodies without a length are counted as they come and dropped past the cap.
 *
 * The TLS front (adm.h front_socket): the gateway's https listener "admin-tls" terminates mutual TLS
 * and forwards here over a Unix socket that only the gateway's own process may use (SO_PEERCRED),
 * with the identity headers it sets after stripping any the client sent (gateway/http_headers.c). A
 * request there is authenticated by the certificate's fingerprint ("cert-sha256:" lines of the tokens
 * file), never by a bearer token, and its source is the client's address from X-Forwarded-For.
 *
 * Threads: each daemon (at most three) runs in its own libmicrohttpd thread. Handlers, and through them
 * the gateway's hooks, run one at a time under dispatch_mu, so the hooks see the single API thread
 * adm.h promises.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "admin-api/adm_ca.h"
#include "admin-api/adm_srv.h"
#include "gateway/log.h"
#include "gateway/tls.h"

#define SERVER_MAGIC 0x61646d53u        /* "admS" */
#define CALL_MAGIC 0x61646d43u          /* "admC" */
#define DEFAULT_MAX_BODY (8u << 20)
#define CONN_LIMIT 64u
#define CONN_TIMEOUT_S 30u
#define METRIC_SLOTS 512
#define RETRY_AFTER_503 5

/* Missing resource tables are stood in for by routes_default.c (see there why not here). The test
 * table is weak here: only the unit test, an object on the link line rather than an archive member
 * waiting to be picked, defines it. */
__attribute__((weak)) const struct adm_route adm_routes_test[] = { { 0 } };
static const struct adm_route *const route_tables[] = {
    adm_routes_system, adm_routes_revocations, adm_routes_allowlists, adm_routes_crls, adm_routes_audit,
    adm_routes_connections, adm_routes_certificates, adm_routes_crl, adm_routes_test,
};

struct metric {
    const char *method, *route;         /* static strings */
    int status;
    uint64_t count;
};

struct adm_server {
    uint32_t magic;
    struct MHD_Daemon *tcp_d, *unix_d, *front_d;
    int tcp_fd, unix_fd, front_fd;      /* ours until a daemon owns them */
    char *unix_path, *front_path;
    int unix_made, front_made;          /* our socket file is at unix_path (unix_dev, unix_ino), ... */
    dev_t unix_dev, front_dev;
    ino_t unix_ino, front_ino;
    int port;
    struct pol_store *store;
    struct adm_hooks hooks;
    size_t max_body;
    struct adm_auth *auth;
    struct adm_ca *ca;                  /* NULL: no certificate authority (adm_ca.c) */
    pthread_mutex_t dispatch_mu;
    pthread_mutex_t metrics_mu;
    struct metric metrics[METRIC_SLOTS];
    size_t nmetrics;
    uint64_t untracked, duration_us, answered;
};

/* One request: libmicrohttpd's con_cls. */
struct adm_call {
    uint32_t magic;
    struct adm_server *srv;
    struct adm_req req;
    const struct adm_route *route;
    const char *metric_route;           /* route pattern, or "none" */
    char peer_ip[64];                   /* throttling key */
    int front;                          /* came through the TLS front: authenticated by certificate */
    int front_peer_ok;                  /* ... and the socket's peer is this very process */
    struct timespec start;
    char *body;
    size_t len, cap;
    int too_big, answered;
};

/* ---------------------------------------------------------------- small things */

void adm_buf_printf(struct adm_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, b->p != NULL ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->p != NULL && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t want = b->len + (size_t)n + 1, cap = b->cap > 0 ? b->cap : 256;
        while (cap < want)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static long long elapsed_us(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)(now.tv_sec - start->tv_sec) * 1000000 + (now.tv_nsec - start->tv_nsec) / 1000;
}

static time_t mono_seconds(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec;
}

static int request_id_ok(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n == 64 || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                         c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n > 0;
}

static void request_id_make(char *out, size_t cap)
{
    static unsigned long long fallback;
    uint8_t r[16];
    ssize_t got = getrandom(r, sizeof(r), GRND_NONBLOCK);

    if (got != (ssize_t)sizeof(r)) {
        /* No entropy yet (early boot): unique is all a request id needs. */
        snprintf(out, cap, "%016llx%016llx", (unsigned long long)time(NULL),
                 __atomic_add_fetch(&fallback, 1, __ATOMIC_RELAXED));
        return;
    }
    for (size_t i = 0; i < sizeof(r) && 2 * i + 2 < cap; i++)
        snprintf(out + 2 * i, cap - 2 * i, "%02x", r[i]);
}

static void peer_format(struct MHD_Connection *conn, char *source, size_t cap, char *ip, size_t ipcap)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
    char a[INET6_ADDRSTRLEN] = "";

    snprintf(source, cap, "unix");
    snprintf(ip, ipcap, "unix");
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
        snprintf(source, cap, "%s:%u", a, (unsigned)ntohs(in->sin_port));
        snprintf(ip, ipcap, "%s", a);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
        snprintf(source, cap, "[%s]:%u", a, (unsigned)ntohs(in6->sin6_port));
        snprintf(ip, ipcap, "%s", a);
    }
}

/* A path fit for a log line: no control characters or quotes from the peer. */
static void path_for_log(const char *in, char *out, size_t cap)
{
    size_t o = 0;

    for (; in != NULL && *in != '\0' && o + 1 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        out[o++] = (c < 0x20 || c >= 0x7f || c == '"') ? '?' : (char)c;
    }
    out[o] = '\0';
}

/* A label value for metrics: the methods we route, others folded into one (bounded cardinality). */
static const char *method_label(const char *m)
{
    static const char *const known[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS" };

    for (size_t i = 0; m != NULL && i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "other";
}

static void metric_count(struct adm_server *s, const char *method, const char *route, int status, long long us)
{
    method = method_label(method);
    pthread_mutex_lock(&s->metrics_mu);
    s->answered++;
    s->duration_us += us > 0 ? (uint64_t)us : 0;
    for (size_t i = 0; i < s->nmetrics; i++) {
        struct metric *m = &s->metrics[i];
        if (m->status == status && m->method == method && strcmp(m->route, route) == 0) {
            m->count++;
            goto out;
        }
    }
    if (s->nmetrics < METRIC_SLOTS)
        s->metrics[s->nmetrics++] = (struct metric){ method, route, status, 1 };
    else
        s->untracked++;
out:
    pthread_mutex_unlock(&s->metrics_mu);
}

void adm_metrics_text(struct adm_server *s, struct adm_buf *b)
{
    struct adm_auth_stats as;

    if (s == NULL || s->magic != SERVER_MAGIC)
        return;
    adm_auth_get_stats(s->auth, &as);
    adm_buf_printf(b, "# HELP hsmgate_admin_requests_total Admin API requests answered, by method, route pattern and status.\n"
                      "# TYPE hsmgate_admin_requests_total counter\n");
    pthread_mutex_lock(&s->metrics_mu);
    /* Route patterns come from our tables: no quote, backslash or newline to escape. */
    for (size_t i = 0; i < s->nmetrics; i++)
        adm_buf_printf(b, "hsmgate_admin_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %llu\n",
                       s->metrics[i].method, s->metrics[i].route, s->metrics[i].status,
                       (unsigned long long)s->metrics[i].count);
    adm_buf_printf(b, "# HELP hsmgate_admin_requests_untracked_total Admin API requests past the counter table's room.\n"
                      "# TYPE hsmgate_admin_requests_untracked_total counter\n"
                      "hsmgate_admin_requests_untracked_total %llu\n"
                      "# HELP hsmgate_admin_request_duration_seconds Time from request headers to response.\n"
                      "# TYPE hsmgate_admin_request_duration_seconds summary\n"
                      "hsmgate_admin_request_duration_seconds_sum %.6f\n"
                      "hsmgate_admin_request_duration_seconds_count %llu\n",
                   (unsigned long long)s->untracked, (double)s->duration_us / 1e6, (unsigned long long)s->answered);
    pthread_mutex_unlock(&s->metrics_mu);
    adm_buf_printf(b, "# HELP hsmgate_admin_auth_failures_total Wrong or malformed bearer tokens presented.\n"
                      "# TYPE hsmgate_admin_auth_failures_total counter\n"
                      "hsmgate_admin_auth_failures_total %llu\n"
                      "# HELP hsmgate_admin_auth_throttled_total Requests refused with 429 after repeated failures.\n"
                      "# TYPE hsmgate_admin_auth_throttled_total counter\n"
                      "hsmgate_admin_auth_throttled_total %llu\n"
                      "# HELP hsmgate_admin_tokens Bearer tokens in force.\n"
                      "# TYPE hsmgate_admin_tokens gauge\n"
                      "hsmgate_admin_tokens %zu\n"
                      "# HELP hsmgate_admin_token_reloads_total Tokens file reloads, by result.\n"
                      "# TYPE hsmgate_admin_token_reloads_total counter\n"
                      "hsmgate_admin_token_reloads_total{result=\"ok\"} %llu\n"
                      "hsmgate_admin_token_reloads_total{result=\"error\"} %llu\n",
                   (unsigned long long)as.failures, (unsigned long long)as.throttled, as.tokens,
                   (unsigned long long)as.reloads_ok, (unsigned long long)as.reloads_failed);
}

const struct adm_route *const *adm_route_tables(size_t *n)
{
    *n = sizeof(route_tables) / sizeof(route_tables[0]);
    return route_tables;
}

/* ---------------------------------------------------------------- request helpers */

const char *adm_query(struct adm_req *req, const char *key)
{
    if (req == NULL || req->conn == NULL)
        return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

int adm_page(struct adm_req *req, struct adm_resp *resp, size_t *limit, const char **after)
{
    const char *l = adm_query(req, "limit"), *a = adm_query(req, "after");

    *limit = 100;
    *after = NULL;
    if (l != NULL) {
        size_t v = 0, i = 0;
        for (; l[i] >= '0' && l[i] <= '9' && i < 5; i++)
            v = v * 10 + (size_t)(l[i] - '0');
        if (i == 0 || l[i] != '\0' || v < 1 || v > 1000) {
            adm_problem(resp, 400, "limit", "limit must be an integer from 1 to 1000");
            return -1;
        }
        *limit = v;
    }
    if (a != NULL) {
        if (a[0] == '\0' || strlen(a) > 256) {
            adm_problem(resp, 400, "after", "after must be the cursor of a previous page (1-256 characters)");
            return -1;
        }
        *after = a;
    }
    return 0;
}

struct pol_store *adm_store(struct adm_req *req)
{
    return req != NULL && req->srv != NULL ? req->srv->store : NULL;
}

const struct adm_hooks *adm_hooks(struct adm_req *req)
{
    return &req->srv->hooks;
}

struct adm_ca *adm_ca(struct adm_req *req)
{
    return req != NULL && req->srv != NULL ? req->srv->ca : NULL;
}

void adm_actor(struct adm_req *req, const char *comment, struct pol_actor *out)
{
    memset(out, 0, sizeof(*out));
    out->actor = req->who[0] != '\0' ? req->who : "anonymous";
    out->comment = comment;
    out->request_id = req->request_id;
    out->source = req->source;
}

void adm_changed(struct adm_req *req)
{
    const struct adm_hooks *h = adm_hooks(req);

    if (h->policy_changed != NULL)
        h->policy_changed(h->ctx);
}

/* ---------------------------------------------------------------- routing */

/* Does path match pattern ("{x}" matches one non-empty segment)? Fills params when it does. */
static int route_match(const char *pattern, const char *path, char params[][ADM_PARAM_MAX], size_t *nparams)
{
    const char *p = pattern, *u = path;
    size_t np = 0;

    if (u == NULL || *u != '/')
        return 0;
    while (*p != '\0' && *u != '\0') {
        if (*p != '/' || *u != '/')
            return 0;
        p++;
        u++;
        size_t pl = strcspn(p, "/"), ul = strcspn(u, "/");
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (ul == 0 || ul >= ADM_PARAM_MAX || np == ADM_MAX_PARAMS)
                return 0;
            memcpy(params[np], u, ul);
            params[np][ul] = '\0';
            np++;
        } else if (pl != ul || memcmp(p, u, pl) != 0) {
            return 0;
        }
        p += pl;
        u += ul;
    }
    if (*p != '\0' || *u != '\0')
        return 0;
    *nparams = np;
    return 1;
}

/* The route for method and path, or NULL; *pattern is a pattern the path matches with any method (for
 * 405 and metrics), allow lists their methods. */
static const struct adm_route *route_find(struct adm_req *req, const char **pattern, char *allow, size_t cap)
{
    char params[ADM_MAX_PARAMS][ADM_PARAM_MAX];
    size_t np = 0;

    *pattern = NULL;
    allow[0] = '\0';
    for (size_t t = 0; t < sizeof(route_tables) / sizeof(route_tables[0]); t++) {
        for (const struct adm_route *r = route_tables[t]; r->method != NULL; r++) {
            if (r->pattern == NULL || r->fn == NULL || !route_match(r->pattern, req->path, params, &np))
                continue;
            if (strcmp(r->method, req->method) == 0) {
                memcpy(req->params, params, sizeof(params));
                req->nparams = np;
                *pattern = r->pattern;
                return r;
            }
            if (*pattern == NULL)
                *pattern = r->pattern;
            size_t l = strlen(allow);
            if (strstr(allow, r->method) == NULL && l + strlen(r->method) + 3 < cap)
                snprintf(allow + l, cap - l, "%s%s", l > 0 ? ", " : "", r->method);
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- answering */

/* Names the request in a problem document ("instance"), where it lets a client's report be found in
 * our log. Handlers build problems without the request at hand, so it is added here. */
static void problem_add_instance(struct adm_resp *resp, const char *request_id)
{
    char inst[96], *s;
    size_t n = 0;
    json_t *o;

    if (resp->content_type == NULL || strcmp(resp->content_type, ADM_CT_PROBLEM) != 0 || resp->body == NULL)
        return;
    o = json_loadb(resp->body, resp->len, 0, NULL);
    if (json_is_object(o) && json_object_get(o, "instance") == NULL) {
        snprintf(inst, sizeof(inst), "urn:request:%s", request_id);
        if (json_object_set_new(o, "instance", json_string(inst)) == 0 && (s = adm_json_dump(o, &n)) != NULL) {
            free(resp->body);
            resp->body = s;
            resp->len = n;
        }
    }
    json_decref(o);
}

/* Queues resp (its body passes to libmicrohttpd) with the headers every answer carries. */
static enum MHD_Result call_answer(struct adm_call *c, struct adm_resp *resp, const char *allow, unsigned retry_after,
                                   const char *www_auth)
{
    struct adm_server *s = c->srv;
    struct MHD_Response *mr;
    enum MHD_Result ret;
    char path[256], num[24];
    long long us;

    if (resp->status < 100 || resp->status > 599) {
        adm_resp_fixed_500(resp);
    }
    problem_add_instance(resp, c->req.request_id);
    if (resp->body != NULL && resp->len > 0) {
        mr = MHD_create_response_from_buffer(resp->len, resp->body, MHD_RESPMEM_MUST_FREE);
        if (mr != NULL)
            resp->body = NULL;
    } else {
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    adm_resp_clear(resp);
    if (mr == NULL)
        return MHD_NO;
    if (resp->content_type != NULL)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(mr, "X-Request-Id", c->req.request_id);
    if (resp->location[0] != '\0')
        MHD_add_response_header(mr, MHD_HTTP_HEADER_LOCATION, resp->location);
    if (allow != NULL)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, allow);
    if (www_auth != NULL)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www_auth);
    if (retry_after == 0 && resp->status == 503 && resp->content_type != NULL && strcmp(resp->content_type, ADM_CT_PROBLEM) == 0)
        retry_after = RETRY_AFTER_503;
    if (retry_after > 0) {
        snprintf(num, sizeof(num), "%u", retry_after);
        MHD_add_response_header(mr, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    ret = MHD_queue_response(c->req.conn, (unsigned)resp->status, mr);
    MHD_destroy_response(mr);
    c->answered = 1;
    us = elapsed_us(&c->start);
    metric_count(s, c->req.method, c->metric_route, resp->status, us);
    path_for_log(c->req.path, path, sizeof(path));
    /* Never the token: who is the token's name. */
    gw_log(LOG_INFO, "admin: %s %s %d who=%s src=%s id=%s %lldms", method_label(c->req.method), path, resp->status,
           c->req.who[0] != '\0' ? c->req.who : "-", c->req.source, c->req.request_id, us / 1000);
    return ret;
}

static enum MHD_Result call_problem(struct adm_call *c, int status, const char *allow, unsigned retry_after,
                                    const char *www_auth, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static enum MHD_Result call_problem(struct adm_call *c, int status, const char *allow, unsigned retry_after,
                                    const char *www_auth, const char *fmt, ...)
{
    struct adm_resp resp = { 0 };
    va_list ap;

    va_start(ap, fmt);
    adm_problem_va(&resp, status, NULL, NULL, fmt, ap);
    va_end(ap);
    return call_answer(c, &resp, allow, retry_after, www_auth);
}

/* The caller of a request that came through the TLS front, from the identity headers the gateway
 * set. Returns 1 (req->who and req->role filled) or 0 with the answer in *ret. */
static int front_identity(struct adm_call *c, enum MHD_Result *ret)
{
    struct adm_req *req = &c->req;
    const char *verify, *fp, *subject;
    char name[ADM_TOKEN_NAME_MAX + 1];
    enum adm_role role;

    verify = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Client-Verify");
    fp = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Client-Cert-Fingerprint-SHA256");
    subject = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Client-Cert-Subject");
    if (verify == NULL || strcmp(verify, "SUCCESS") != 0 || fp == NULL) {
        /* The front is two-way: the gateway admits no handshake without a certificate. */
        *ret = call_problem(c, 401, NULL, 0, NULL, "a verified client certificate is required");
        return 0;
    }
    if (adm_auth_check_cert(c->srv->auth, fp, name, sizeof(name), &role) != 0) {
        gw_log(LOG_WARNING, "admin: TLS client %s (SHA-256 %s) has no role: add \"NAME ROLE cert-sha256:%s\" to "
               "the tokens file", subject != NULL ? subject : "?", fp, fp);
        *ret = call_problem(c, 403, NULL, 0, NULL, "the client certificate %s has no role in the tokens file",
                            subject != NULL ? subject : fp);
        return 0;
    }
    /* The store keeps an actor of at most 256 characters: a very long subject is cut, the token name
     * of its line kept. */
    snprintf(req->who, 257, "cert:%s (%s)", subject != NULL && subject[0] != '\0' ? subject : fp, name);
    req->role = role;
    if (role < c->route->role) {
        *ret = call_problem(c, 403, NULL, 0, NULL, "this needs the %s role; the certificate %s has %s",
                            adm_role_name(c->route->role), name, adm_role_name(role));
        return 0;
    }
    return 1;
}

/* Everything that can be decided from the headers. Returns 1 when the request may go on (its body
 * then read), else the result of answering it now. */
static int call_begin(struct adm_call *c, enum MHD_Result *ret)
{
    struct adm_server *s = c->srv;
    struct adm_req *req = &c->req;
    const char *pattern, *h;
    char allow[64], name[ADM_TOKEN_NAME_MAX + 1];
    unsigned retry = 0;
    enum adm_role role;

    c->route = route_find(req, &pattern, allow, sizeof(allow));
    c->metric_route = pattern != NULL ? pattern : "none";
    if (c->route == NULL && pattern == NULL) {
        *ret = call_problem(c, 404, NULL, 0, NULL, "no such resource");
        return 0;
    }
    if (c->route == NULL) {
        *ret = call_problem(c, 405, allow, 0, NULL, "this resource allows %s", allow);
        return 0;
    }
    if (c->front && !c->front_peer_ok) {
        *ret = call_problem(c, 403, NULL, 0, NULL, "this socket is the gateway's TLS front's own");
        return 0;
    }
    if (c->route->role > ADM_ROLE_NONE && c->front) {
        if (!front_identity(c, ret))
            return 0;
    } else if (c->route->role > ADM_ROLE_NONE) {
        h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        switch (adm_auth_check(s->auth, h, c->peer_ip, mono_seconds(), name, sizeof(name), &role, &retry)) {
        case ADM_AUTH_OK:
            break;
        case ADM_AUTH_MISSING:
            *ret = call_problem(c, 401, NULL, 0, "Bearer realm=\"hsmgate-admin\"",
                                "a bearer token is required (Authorization: Bearer TOKEN)");
            return 0;
        case ADM_AUTH_THROTTLED:
            *ret = call_problem(c, 429, NULL, retry, NULL,
                                "too many failed authentications from this address; retry in %u s", retry);
            return 0;
        case ADM_AUTH_BAD:
        default:
            *ret = call_problem(c, 401, NULL, 0, "Bearer realm=\"hsmgate-admin\", error=\"invalid_token\"",
                                "the bearer token is not valid");
            return 0;
        }
        snprintf(req->who, sizeof(req->who), "token:%s", name);
        req->role = role;
        if (role < c->route->role) {
            *ret = call_problem(c, 403, NULL, 0, NULL, "this needs the %s role; the token %s has %s",
                                adm_role_name(c->route->role), name, adm_role_name(role));
            return 0;
        }
    }
    h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (h != NULL) {
        char *end;
        errno = 0;
        unsigned long long cl = strtoull(h, &end, 10);
        if (errno == 0 && end != h && cl > s->max_body) {
            *ret = call_problem(c, 413, NULL, 0, NULL, "the body is larger than %zu bytes", s->max_body);
            return 0;
        }
    }
    return 1;
}

/* The body is in: run the handler. */
static enum MHD_Result call_dispatch(struct adm_call *c)
{
    struct adm_server *s = c->srv;
    struct adm_resp resp = { 0 };
    int rc;

    if (c->too_big)
        return call_problem(c, 413, NULL, 0, NULL, "the body is larger than %zu bytes", s->max_body);
    c->req.body = c->body != NULL ? c->body : "";
    c->req.body_len = c->len;
    c->req.content_type = MHD_lookup_connection_value(c->req.conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    pthread_mutex_lock(&s->dispatch_mu);
    rc = c->route->fn(&c->req, &resp);
    pthread_mutex_unlock(&s->dispatch_mu);
    /* A handler that returns nonzero keeps its problem if it made one; anything else is our bug. */
    if (resp.status == 0 || (rc != 0 && resp.status < 400)) {
        gw_log(LOG_ERR, "admin: %s %s: the handler made no response (returned %d)", c->req.method,
               c->route->pattern, rc);
        adm_resp_clear(&resp);
        adm_problem_code(&resp, 500, NULL, "internal error (request %s)", c->req.request_id);
    }
    return call_answer(c, &resp, NULL, 0, NULL);
}

static enum MHD_Result call_body(struct adm_call *c, const char *data, size_t n)
{
    size_t max = c->srv->max_body;

    if (c->too_big)
        return MHD_YES;
    if (n > max - c->len) {
        /* Keep reading (and dropping) so the 413 can be sent as an orderly answer. */
        c->too_big = 1;
        free(c->body);
        c->body = NULL;
        c->len = c->cap = 0;
        return MHD_YES;
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap > 0 ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *p = realloc(c->body, cap);
        if (p == NULL)
            return MHD_NO;
        c->body = p;
        c->cap = cap;
    }
    memcpy(c->body + c->len, data, n);
    c->len += n;
    c->body[c->len] = '\0';
    return MHD_YES;
}

/* Whether conn came to the TLS front's socket and, if so, from this process (the gateway's worker),
 * and the client's address from the X-Forwarded-For the gateway set (it strips the client's own). */
static void front_peer(struct adm_server *s, struct MHD_Connection *conn, struct adm_call *c)
{
    const union MHD_ConnectionInfo *di = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
    const union MHD_ConnectionInfo *fi;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    const char *xff;

    if (s->front_d == NULL || di == NULL || di->daemon != s->front_d)
        return;
    c->front = 1;
    fi = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (fi != NULL && getsockopt(fi->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid == getpid())
        c->front_peer_ok = 1;
    else
        gw_log(LOG_WARNING, "admin: refused a connection to the TLS front's socket from another process (pid %ld)",
               fi != NULL && len == sizeof(cred) ? (long)cred.pid : -1L);
    xff = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For");
    if (c->front_peer_ok && xff != NULL && xff[0] != '\0' && strlen(xff) < sizeof(c->peer_ip) &&
        strspn(xff, "0123456789abcdefABCDEF.:") == strlen(xff)) {
        snprintf(c->peer_ip, sizeof(c->peer_ip), "%s", xff);
        snprintf(c->req.source, sizeof(c->req.source), "tls:%s", xff);
    } else {
        snprintf(c->req.source, sizeof(c->req.source), "tls");
    }
}

static enum MHD_Result mhd_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct adm_server *s = cls;
    struct adm_call *c = *con_cls;
    enum MHD_Result ret = MHD_YES;
    const char *rid;

    (void)version;
    if (s == NULL || s->magic != SERVER_MAGIC)
        return MHD_NO;
    gw_tls_thread_register();   /* CSR and CRL signatures are checked here: wolfSSL's ECC cache */
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL)
            return MHD_NO;
        c->magic = CALL_MAGIC;
        c->srv = s;
        clock_gettime(CLOCK_MONOTONIC, &c->start);
        *con_cls = c;
        c->req.srv = s;
        c->req.conn = conn;
        c->req.method = method;
        c->req.path = url;
        rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        if (request_id_ok(rid))
            snprintf(c->req.request_id, sizeof(c->req.request_id), "%s", rid);
        else
            request_id_make(c->req.request_id, sizeof(c->req.request_id));
        peer_format(conn, c->req.source, sizeof(c->req.source), c->peer_ip, sizeof(c->peer_ip));
        front_peer(s, conn, c);
        if (!call_begin(c, &ret))
            return ret;
        return MHD_YES;
    }
    if (c->magic != CALL_MAGIC)
        return MHD_NO;
    if (c->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        ret = call_body(c, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ret;
    }
    return call_dispatch(c);
}

static void mhd_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct adm_call *c = *con_cls;
    char path[256];

    (void)cls;
    (void)conn;
    if (c == NULL || c->magic != CALL_MAGIC)
        return;
    if (!c->answered) {
        path_for_log(c->req.path, path, sizeof(path));
        gw_log(LOG_INFO, "admin: %s %s aborted (%d) src=%s id=%s", method_label(c->req.method), path, (int)toe,
               c->req.source, c->req.request_id);
    }
    free(c->body);
    c->magic = 0;
    free(c);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    gw_log(LOG_WARNING, "admin: libmicrohttpd: %s", msg);
}

/* ---------------------------------------------------------------- daemons */

/* Starts a daemon on *fd, which passes to it: libmicrohttpd 0.9.75 closes a listening socket it was
 * given when it stops, and also when it fails to start (checked with a thread creation that fails), so
 * *fd is ours no more either way. Closing it again could close a descriptor another thread just got. */
static struct MHD_Daemon *daemon_start(struct adm_server *s, int *fd, int ipv6, const char *what, char *err,
                                       size_t errlen)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (ipv6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d;

    d = MHD_start_daemon(flags, 0, NULL, NULL, mhd_access, s,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                         MHD_OPTION_LISTEN_SOCKET, (MHD_socket)*fd,
                         MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT,
                         MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT_S,
                         MHD_OPTION_NOTIFY_COMPLETED, mhd_completed, s,
                         MHD_OPTION_END);
    *fd = -1;
    if (d == NULL)
        snprintf(err, errlen, "admin API: cannot start the HTTP server on %s (libmicrohttpd; see the log)", what);
    return d;
}

/* The tokens file (path may be NULL), with "admin API: tokens file" before a message. */
static int auth_load(const char *path, struct adm_auth **out, char *err, size_t errlen)
{
    if (adm_auth_new(path, out, err, errlen) == 0)
        return 0;
    char why[512];
    snprintf(why, sizeof(why), "%s", err);
    snprintf(err, errlen, "admin API: tokens file %s", why);
    return -1;
}

/* A server with its locks, store, hooks, body cap (0: the default) and tokens, listening nowhere yet
 * (adm_server_start adds the listeners; adm_server_stop frees it). NULL with a message. */
static struct adm_server *server_new(struct pol_store *store, const struct adm_hooks *hooks, size_t max_body,
                                     const char *tokens_file, char *err, size_t errlen)
{
    struct adm_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "admin API: out of memory");
        return NULL;
    }
    s->tcp_fd = s->unix_fd = s->front_fd = -1;
    if (pthread_mutex_init(&s->dispatch_mu, NULL) != 0) {
        free(s);
        snprintf(err, errlen, "admin API: cannot create a mutex");
        return NULL;
    }
    if (pthread_mutex_init(&s->metrics_mu, NULL) != 0) {
        pthread_mutex_destroy(&s->dispatch_mu);
        free(s);
        snprintf(err, errlen, "admin API: cannot create a mutex");
        return NULL;
    }
    s->magic = SERVER_MAGIC;
    s->store = store;
    if (hooks != NULL)
        s->hooks = *hooks;
    s->max_body = max_body > 0 ? max_body : DEFAULT_MAX_BODY;
    if (auth_load(tokens_file, &s->auth, err, errlen) != 0) {
        adm_server_stop(s);
        return NULL;
    }
    return s;
}

/* A daemon on a new Unix socket at path (the API's own socket, or the TLS front's): *path_out, *made,
 * *dev and *ino let adm_server_stop remove that file and no other. 0, or -1 with a message. */
static int unix_start(struct adm_server *s, const char *path, char **path_out, int *fd, int *made, dev_t *dev,
                      ino_t *ino, struct MHD_Daemon **d, char *err, size_t errlen)
{
    *path_out = strdup(path);
    if (*path_out == NULL) {
        snprintf(err, errlen, "admin API: out of memory");
        return -1;
    }
    if (adm_listen_unix(path, fd, dev, ino, err, errlen) != 0)
        return -1;
    *made = 1;
    *d = daemon_start(s, fd, 0, path, err, errlen);
    return *d != NULL ? 0 : -1;
}

int adm_server_start(const struct adm_config *cfg, struct pol_store *store, const struct adm_hooks *hooks,
                     struct adm_server **out, char *err, size_t errlen)
{
    struct adm_server *s = NULL;
    size_t ntables, nroutes = 0;
    int rc = -1;

    *out = NULL;
    if (cfg == NULL || (cfg->bind == NULL && cfg->unix_socket == NULL && cfg->front_socket == NULL)) {
        snprintf(err, errlen, "admin API: neither an address nor a unix socket to listen on");
        return -1;
    }
    if ((s = server_new(store, hooks, cfg->max_body, cfg->tokens_file, err, errlen)) == NULL)
        return -1;
    if (adm_ca_new(cfg, &s->ca, err, errlen) != 0)
        goto out;
    if (cfg->bind != NULL) {
        if (adm_listen_tcp(cfg->bind, cfg->bind_len, cfg->bind_text != NULL ? cfg->bind_text : "the admin address",
                           &s->tcp_fd, &s->port, err, errlen) != 0)
            goto out;
        s->tcp_d = daemon_start(s, &s->tcp_fd, cfg->bind->sa_family == AF_INET6,
                                cfg->bind_text != NULL ? cfg->bind_text : "TCP", err, errlen);
        if (s->tcp_d == NULL)
            goto out;
    }
    if (cfg->unix_socket != NULL && unix_start(s, cfg->unix_socket, &s->unix_path, &s->unix_fd, &s->unix_made,
                                               &s->unix_dev, &s->unix_ino, &s->unix_d, err, errlen) != 0)
        goto out;
    if (cfg->front_socket != NULL && unix_start(s, cfg->front_socket, &s->front_path, &s->front_fd, &s->front_made,
                                                &s->front_dev, &s->front_ino, &s->front_d, err, errlen) != 0)
        goto out;
    for (const struct adm_route *const *t = adm_route_tables(&ntables); ntables > 0; t++, ntables--)
        for (const struct adm_route *r = *t; r->method != NULL; r++)
            nroutes++;
    {
        struct adm_auth_stats as;
        adm_auth_get_stats(s->auth, &as);
        gw_log(LOG_INFO, "admin: API on %s%s%s (%zu routes, %zu tokens%s)",
               cfg->bind != NULL ? (cfg->bind_text != NULL ? cfg->bind_text : "TCP") : "",
               cfg->bind != NULL && cfg->unix_socket != NULL ? " and " : "",
               cfg->unix_socket != NULL ? cfg->unix_socket : "", nroutes, as.tokens,
               as.tokens == 0 ? ": every authenticated route answers 401" : "");
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    adm_server_stop(s);
    return rc;
}

int adm_server_offline(struct pol_store *store, const struct adm_hooks *hooks, struct adm_server **out)
{
    char err[256];

    *out = server_new(store, hooks, 0, NULL, err, sizeof(err));
    return *out != NULL ? 0 : -1;
}

int adm_request_offline(struct adm_server *s, const char *method, const char *path, const char *content_type,
                        const char *body, size_t len, enum adm_role role, struct adm_resp *resp)
{
    struct adm_req req;
    const struct adm_route *r;
    const char *pattern;
    char allow[64];

    memset(resp, 0, sizeof(*resp));
    if (s == NULL || s->magic != SERVER_MAGIC || method == NULL || path == NULL || (body == NULL && len > 0))
        return -1;
    memset(&req, 0, sizeof(req));
    req.srv = s;
    req.method = method;
    req.path = path;
    req.body = body != NULL ? body : "";
    req.body_len = len;
    req.content_type = content_type;
    req.role = role;
    snprintf(req.request_id, sizeof(req.request_id), "offline");
    snprintf(req.source, sizeof(req.source), "offline");
    snprintf(req.who, sizeof(req.who), "offline:%s", adm_role_name(role));
    r = route_find(&req, &pattern, allow, sizeof(allow));
    if (r == NULL) {
        adm_problem_code(resp, pattern == NULL ? 404 : 405, NULL, "%s", pattern == NULL ? "no such resource" : allow);
        return 0;
    }
    if (r->role > role) {
        adm_problem_code(resp, 403, NULL, "this needs the %s role", adm_role_name(r->role));
        return 0;
    }
    if (len > s->max_body) {
        adm_problem_code(resp, 413, NULL, "the body is larger than %zu bytes", s->max_body);
        return 0;
    }
    pthread_mutex_lock(&s->dispatch_mu);
    int rc = r->fn(&req, resp);
    pthread_mutex_unlock(&s->dispatch_mu);
    if (resp->status == 0 || (rc != 0 && resp->status < 400)) {
        adm_resp_clear(resp);
        adm_problem_code(resp, 500, NULL, "the handler of %s %s made no response (returned %d)", method, r->pattern, rc);
    }
    return 0;
}

int adm_config_check(const struct adm_config *cfg, char *err, size_t errlen)
{
    struct adm_auth *auth = NULL;
    struct adm_ca *ca = NULL;

    if (auth_load(cfg->tokens_file, &auth, err, errlen) != 0)
        return -1;
    adm_auth_free(auth);
    if (adm_ca_new(cfg, &ca, err, errlen) != 0)
        return -1;
    adm_ca_free(ca);
    return 0;
}

void adm_server_stop(struct adm_server *s)
{
    struct stat st;

    if (s == NULL || s->magic != SERVER_MAGIC)
        return;
    if (s->tcp_d != NULL)
        MHD_stop_daemon(s->tcp_d);
    if (s->unix_d != NULL)
        MHD_stop_daemon(s->unix_d);
    if (s->front_d != NULL)
        MHD_stop_daemon(s->front_d);
    if (s->tcp_fd >= 0)
        close(s->tcp_fd);
    if (s->unix_fd >= 0)
        close(s->unix_fd);
    if (s->front_fd >= 0)
        close(s->front_fd);
    if (s->front_made && stat(s->front_path, &st) == 0 && st.st_dev == s->front_dev && st.st_ino == s->front_ino)
        unlink(s->front_path);
    free(s->front_path);
    /* Remove our socket file, not one another server has put there since. */
    if (s->unix_made && stat(s->unix_path, &st) == 0 && st.st_dev == s->unix_dev && st.st_ino == s->unix_ino)
        unlink(s->unix_path);
    free(s->unix_path);
    adm_auth_free(s->auth);
    adm_ca_free(s->ca);
    s->ca = NULL;
    pthread_mutex_destroy(&s->metrics_mu);
    pthread_mutex_destroy(&s->dispatch_mu);
    s->magic = 0;
    free(s);
}

int adm_server_reload_tokens(struct adm_server *s, char *err, size_t errlen)
{
    struct adm_auth_stats as;

    if (s == NULL || s->magic != SERVER_MAGIC) {
        snprintf(err, errlen, "admin API: not running");
        return -1;
    }
    if (adm_auth_reload(s->auth, err, errlen) != 0) {
        gw_log(LOG_WARNING, "admin: tokens not reloaded, the old ones stay in force: %s", err);
        return -1;
    }
    adm_auth_get_stats(s->auth, &as);
    gw_log(LOG_INFO, "admin: tokens reloaded (%zu tokens)", as.tokens);
    return 0;
}

int adm_server_port(const struct adm_server *s)
{
    return s != NULL && s->magic == SERVER_MAGIC ? s->port : 0;
}

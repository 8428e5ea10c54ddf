/* ctl_http.c - hsmgatectl's requests: the token file, the base URL, one libcurl handle for all the
 * requests of a command, the answers and their problem documents (RFC 9457), pages of lists.
 *
 * The token is read once, kept in one heap buffer and in the Authorization header we hand to libcurl
 * (curl copies it into its own request buffer, which we cannot reach: that copy is freed, not wiped).
 * Ours are wiped before they are freed; the token is never printed, not even in a usage error.
 * Redirects are not followed (the token would go with them), and only http and https are spoken.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "admin-api/ctl/ctl.h"

#define TOKEN_MAX 4096
#define BODY_MAX (256u * 1024 * 1024)     /* an answer larger than this is refused, not kept */
#define CONNECT_TIMEOUT_MS 10000L

static void wipe(void *p, size_t n)
{
    if (p != NULL)
        explicit_bzero(p, n);
}

/* RFC 6750 2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". Anything else
 * (a blank, a CR or LF) would also break the header. */
static int token_syntax_ok(const char *t, size_t n)
{
    size_t k = strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");

    if (k == 0)
        return 0;
    while (k < n && t[k] == '=')
        k++;
    return k == n;
}

/* Reads the token from c->token_file: a regular file, not readable by others nor writable by group or
 * others (the rule the server applies to its tokens file), holding the token on one line. */
static int token_load(struct ctl *c)
{
    char buf[TOKEN_MAX + 2];
    struct stat st;
    size_t n = 0, start = 0;
    int fd, rc = CTL_USAGE;

    fd = open(c->token_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        fprintf(stderr, CTL_NAME ": cannot open the token file %s: %s\n", c->token_file, strerror(errno));
        return CTL_USAGE;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, CTL_NAME ": the token file %s is not a regular file\n", c->token_file);
        goto out;
    }
    if (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) {
        fprintf(stderr, CTL_NAME ": the token file %s is %s by others (mode %04o): refused; chmod 600 %s\n",
                c->token_file, st.st_mode & S_IROTH ? "readable" : "writable", (unsigned)(st.st_mode & 07777),
                c->token_file);
        goto out;
    }
    for (;;) {
        ssize_t got = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            fprintf(stderr, CTL_NAME ": cannot read the token file %s: %s\n", c->token_file, strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n == sizeof(buf) - 1) {
            fprintf(stderr, CTL_NAME ": the token file %s is too large for a token (%d bytes at most)\n",
                    c->token_file, TOKEN_MAX);
            goto out;
        }
    }
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    while (start < n && (buf[start] == ' ' || buf[start] == '\t'))
        start++;
    if (!token_syntax_ok(buf + start, n - start)) {
        fprintf(stderr, CTL_NAME ": the token file %s does not hold a token (one line of letters, digits, "
                "'-', '.', '_', '~', '+', '/')\n", c->token_file);
        goto out;
    }
    c->token = strndup(buf + start, n - start);
    if (c->token == NULL) {
        fputs(CTL_NAME ": out of memory\n", stderr);
        rc = CTL_REFUSED;
        goto out;
    }
    rc = 0;
out:
    wipe(buf, sizeof(buf));
    close(fd);
    return rc;
}

static int is_loopback(const char *host)
{
    return strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 || strcmp(host, "[::1]") == 0 ||
           strcmp(host, "::1") == 0;
}

/* Checks --url (http or https, no query or fragment), keeps it without a trailing '/', warns when a
 * token would cross a network in clear. */
static int base_check(struct ctl *c)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *query = NULL, *frag = NULL;
    int rc = CTL_USAGE;
    size_t n;

    if (u == NULL) {
        fputs(CTL_NAME ": out of memory\n", stderr);
        return CTL_REFUSED;
    }
    if (curl_url_set(u, CURLUPART_URL, c->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        fprintf(stderr, CTL_NAME ": --url: \"%.200s\" is not a URL (like " "http://127.0.0.1:9440)\n", c->url);
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        fprintf(stderr, CTL_NAME ": --url: the API speaks http or https, not %.40s\n", scheme);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
        fprintf(stderr, CTL_NAME ": --url: the API's base URL has no query or fragment\n");
        goto out;
    }
    c->base = strdup(c->url);
    if (c->base == NULL) {
        fputs(CTL_NAME ": out of memory\n", stderr);
        rc = CTL_REFUSED;
        goto out;
    }
    n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    if (c->token_file != NULL && c->unix_socket == NULL && strcmp(scheme, "http") == 0 && !is_loopback(host))
        fprintf(stderr, CTL_NAME ": warning: the token goes in clear to %s (http): use https or --unix-socket\n", host);
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(query);
    curl_free(frag);
    curl_url_cleanup(u);
    return rc;
}

/* Before the first request: the URL, the token, the handle. */
static int prepare(struct ctl *c)
{
    int rc;

    if (c->curl != NULL)
        return 0;
    if ((rc = base_check(c)) != 0)
        return rc;
    if (c->token_file != NULL && (rc = token_load(c)) != 0)
        return rc;
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        fputs(CTL_NAME ": libcurl cannot make a handle\n", stderr);
        return CTL_REFUSED;
    }
    return 0;
}

void ctl_http_free(struct ctl *c)
{
    if (c->token != NULL)
        wipe(c->token, strlen(c->token));
    free(c->token);
    c->token = NULL;
    free(c->base);
    c->base = NULL;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    c->curl = NULL;
}

void ctl_resp_free(struct ctl_resp *r)
{
    free(r->body);
    r->body = NULL;
    json_decref(r->json);
    r->json = NULL;
}

struct sink {
    char *p;
    size_t len, cap;
    int over;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *b = arg;
    size_t n = size * nmemb;

    if (n > BODY_MAX - b->len) {
        b->over = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (q == NULL) {
            b->over = 1;
            return 0;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* Copies the value of header name from one header line, trimmed, cleaned. */
static void header_copy(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name), v;

    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return;
    for (v = k + 1; v < n && (line[v] == ' ' || line[v] == '\t'); v++)
        ;
    while (n > v && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' '))
        n--;
    snprintf(out, cap, "%.*s", (int)(n - v), line + v);
    ctl_clean(out);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct ctl_resp *r = arg;
    size_t n = size * nmemb;

    header_copy(data, n, "X-Request-Id", r->request_id, sizeof(r->request_id));
    header_copy(data, n, "Retry-After", r->retry_after, sizeof(r->retry_after));
    return n;
}

static int ctype_is_json(const char *ct)
{
    if (ct == NULL)
        return 0;
    return strncasecmp(ct, "application/json", 16) == 0 || strncasecmp(ct, "application/problem+json", 24) == 0;
}

/* A curl failure: the server was not reached (3), or the request could not be made (1, 2). */
static int call_error(const struct ctl *c, CURLcode res, const char *errbuf, const struct sink *b)
{
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(res);

    if (res == CURLE_WRITE_ERROR && b->over) {
        fprintf(stderr, CTL_NAME ": the answer is larger than %u MiB: refused\n", BODY_MAX >> 20);
        return CTL_REFUSED;
    }
    if (res == CURLE_URL_MALFORMAT || res == CURLE_UNSUPPORTED_PROTOCOL) {
        fprintf(stderr, CTL_NAME ": --url: %s\n", why);
        return CTL_USAGE;
    }
    if (c->unix_socket != NULL) {
        /* curl's message names the URL's host and port, which a Unix socket does not use. */
        long os_err = 0;
        curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_err);
        fprintf(stderr, CTL_NAME ": cannot reach the admin API on the Unix socket %s: %s\n", c->unix_socket,
                os_err != 0 ? strerror((int)os_err) : curl_easy_strerror(res));
    } else
        fprintf(stderr, CTL_NAME ": cannot reach the admin API at %s: %s\n", c->base, why);
    return CTL_UNREACHABLE;
}

int ctl_call(struct ctl *c, const char *method, const char *path, const json_t *body, struct ctl_resp *r)
{
    char errbuf[CURL_ERROR_SIZE] = "", *url = NULL, *payload = NULL, *auth = NULL, rid[96];
    struct curl_slist *hdrs = NULL, *h;
    struct sink b = { 0 };
    CURL *cu;
    CURLcode res;
    char *ct = NULL;
    int rc;

    memset(r, 0, sizeof(*r));
    if ((rc = prepare(c)) != 0)
        return rc;
    cu = c->curl;
    rc = CTL_REFUSED;
    if (asprintf(&url, "%s%s", c->base, path) < 0) {
        url = NULL;
        goto oom;
    }
    if ((h = curl_slist_append(hdrs, "Accept: application/json, application/problem+json")) == NULL)
        goto oom;
    hdrs = h;
    if (c->token != NULL) {
        size_t n = strlen("Authorization: Bearer ") + strlen(c->token) + 1;
        if ((auth = malloc(n)) == NULL)
            goto oom;
        snprintf(auth, n, "Authorization: Bearer %s", c->token);
        h = curl_slist_append(hdrs, auth);
        wipe(auth, n);
        free(auth);
        auth = NULL;
        if (h == NULL)
            goto oom;
        hdrs = h;
    }
    if (c->request_id != NULL) {
        snprintf(rid, sizeof(rid), "X-Request-Id: %s", c->request_id);
        if ((h = curl_slist_append(hdrs, rid)) == NULL)
            goto oom;
        hdrs = h;
    }
    if (body != NULL) {
        if ((payload = json_dumps(body, JSON_COMPACT)) == NULL)
            goto oom;
        if ((h = curl_slist_append(hdrs, "Content-Type: application/json")) == NULL)
            goto oom;
        hdrs = h;
    }

    curl_easy_reset(cu);        /* keeps the connection, forgets the last request's options */
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(cu, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < CONNECT_TIMEOUT_MS ? c->timeout_ms
                                                                                       : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(cu, CURLOPT_USERAGENT, CTL_NAME "/1");
    curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(cu, CURLOPT_HEADERDATA, r);
    if (c->unix_socket != NULL)
        curl_easy_setopt(cu, CURLOPT_UNIX_SOCKET_PATH, c->unix_socket);
    if (c->cacert != NULL)
        curl_easy_setopt(cu, CURLOPT_CAINFO, c->cacert);
    if (payload != NULL) {
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload));
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(cu, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "POST") != 0)
        curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);

    res = curl_easy_perform(cu);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, NULL);
    if (res != CURLE_OK) {
        rc = call_error(c, res, errbuf, &b);
        goto out;
    }
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(cu, CURLINFO_CONTENT_TYPE, &ct);
    if (b.p == NULL && (b.p = strdup("")) == NULL)
        goto oom;
    r->body = b.p;
    r->len = b.len;
    b.p = NULL;
    if (ctype_is_json(ct) && r->len > 0) {
        json_error_t jerr;
        r->json = json_loadb(r->body, r->len, 0, &jerr);
        if (r->json == NULL && r->status >= 200 && r->status < 300) {
            fprintf(stderr, CTL_NAME ": the answer to %s %s is not JSON (line %d: %s)\n", method, path, jerr.line,
                    jerr.text);
            goto out;
        }
    }
    rc = 0;
    goto out;
oom:
    fputs(CTL_NAME ": out of memory\n", stderr);
    rc = CTL_REFUSED;
out:
    for (h = hdrs; h != NULL; h = h->next)
        wipe(h->data, strlen(h->data));
    curl_slist_free_all(hdrs);
    free(payload);
    free(url);
    free(b.p);
    return rc;
}

int ctl_resp_ok(const struct ctl_resp *r)
{
    return r->status >= 200 && r->status < 300 && json_is_object(r->json);
}

static const char *reason_phrase(long status)
{
    static const struct {
        long status;
        const char *text;
    } phrases[] = {
        { 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" }, { 404, "Not Found" },
        { 405, "Method Not Allowed" }, { 409, "Conflict" }, { 413, "Content Too Large" },
        { 415, "Unsupported Media Type" }, { 422, "Unprocessable Content" }, { 429, "Too Many Requests" },
        { 500, "Internal Server Error" }, { 502, "Bad Gateway" }, { 503, "Service Unavailable" },
        { 504, "Gateway Timeout" },
    };
    for (size_t k = 0; k < sizeof(phrases) / sizeof(phrases[0]); k++)
        if (phrases[k].status == status)
            return phrases[k].text;
    return status >= 200 && status < 300 ? "OK" : "Error";
}

/* A string member of a problem, cleaned, or NULL. */
static char *problem_str(const json_t *p, const char *key)
{
    const char *s = json_string_value(json_object_get(p, key));
    char *copy;

    if (s == NULL || *s == '\0' || (copy = strdup(s)) == NULL)
        return NULL;
    ctl_clean(copy);
    return copy;
}

int ctl_fail(struct ctl *c, const struct ctl_resp *r, const char *route)
{
    const json_t *p = json_is_object(r->json) ? r->json : NULL;
    char *title = problem_str(p, "title"), *detail = problem_str(p, "detail"), *field = problem_str(p, "field");
    char *code = problem_str(p, "code"), *instance = problem_str(p, "instance"), extra[512];
    const char *rid = r->request_id[0] ? r->request_id : NULL;
    size_t used = 0;

    if (c->json && p != NULL) {
        fwrite(r->body, 1, r->len, stdout);
        if (r->len == 0 || r->body[r->len - 1] != '\n')
            fputc('\n', stdout);
    }
    if (r->status >= 200 && r->status < 300) {
        fprintf(stderr, CTL_NAME ": %ld: the answer is not a JSON object\n", r->status);
        goto out;
    }
    if (instance != NULL && strncmp(instance, "urn:request:", 12) == 0)
        rid = instance + 12;
    extra[0] = '\0';
#define EXTRA(...) do { int w_ = snprintf(extra + used, sizeof(extra) - used, __VA_ARGS__); \
        if (w_ > 0 && (size_t)w_ < sizeof(extra) - used) used += (size_t)w_; } while (0)
    if (field != NULL)
        EXTRA("%sfield %s", used ? ", " : "", field);
    if (code != NULL)
        EXTRA("%scode %s", used ? ", " : "", code);
    if (rid != NULL)
        EXTRA("%srequest id %s", used ? ", " : "", rid);
    if (r->retry_after[0] && (r->status == 429 || r->status == 503))
        EXTRA("%sretry after %s s", used ? ", " : "", r->retry_after);
#undef EXTRA
    /* The router's own 404 ("no such resource", no field) means the route is missing: an older server,
     * or a feature it does not have yet. A handler's 404 names what it did not find. */
    if (r->status == 404 && route != NULL && field == NULL &&
        (p == NULL || detail == NULL || strcmp(detail, "no such resource") == 0)) {
        fprintf(stderr, CTL_NAME ": this server has no %s (404 %s%s%s%s%s)\n", route, title ? title : "Not Found",
                detail ? ": " : "", detail ? detail : "", used ? ", " : "", extra);
        goto out;
    }
    fprintf(stderr, CTL_NAME ": %ld %s%s%s%s%s%s\n", r->status, title ? title : reason_phrase(r->status),
            detail ? ": " : "", detail ? detail : "", used ? " (" : "", extra, used ? ")" : "");
    if (r->status == 401 && c->token == NULL)
        fputs(CTL_NAME ": no token was sent: give --token-file FILE (or set HSMGATE_TOKEN_FILE)\n", stderr);
out:
    free(title);
    free(detail);
    free(field);
    free(code);
    free(instance);
    return CTL_REFUSED;
}

int ctl_request(struct ctl *c, const char *method, const char *path, const json_t *body, const char *route,
                struct ctl_resp *r)
{
    int rc = ctl_call(c, method, path, body, r);

    if (rc != 0)
        return rc;
    if (!ctl_resp_ok(r))
        return ctl_fail(c, r, route);
    return 0;
}

/* The items of one page: "items", or the page itself when it is an array, or its only array. */
static json_t *page_items(json_t *page)
{
    json_t *v;
    const char *k;

    if (json_is_array(page))
        return page;
    if (json_is_array(v = json_object_get(page, "items")))
        return v;
    json_object_foreach(page, k, v)
        if (json_is_array(v))
            return v;
    return NULL;
}

int ctl_list(struct ctl *c, const char *path, const char *query, const struct ctl_pages *pg, const char *route,
             json_t **items, char **next)
{
    char *after = pg->after != NULL ? strdup(pg->after) : NULL, *q = NULL, *url = NULL;
    const char *limit = pg->limit != NULL ? pg->limit : pg->all ? "1000" : NULL;
    struct ctl_resp r = { 0 };
    int rc = CTL_REFUSED;

    *items = json_array();
    *next = NULL;
    if (*items == NULL || (pg->after != NULL && after == NULL))
        goto oom;
    for (;;) {
        free(q);
        q = query != NULL ? strdup(query) : NULL;
        if ((query != NULL && q == NULL) || ctl_query_add(&q, "limit", limit) != 0 ||
            ctl_query_add(&q, "after", after) != 0)
            goto oom;
        free(url);
        if (asprintf(&url, "%s%s%s", path, q != NULL ? "?" : "", q != NULL ? q : "") < 0) {
            url = NULL;
            goto oom;
        }
        ctl_resp_free(&r);
        if ((rc = ctl_call(c, "GET", url, NULL, &r)) != 0)
            goto out;
        json_t *got = r.status >= 200 && r.status < 300 ? page_items(r.json) : NULL;
        if (got == NULL) {
            rc = ctl_fail(c, &r, route);
            goto out;
        }
        if (json_array_extend(*items, got) != 0)
            goto oom;
        const char *nx = json_string_value(json_object_get(r.json, "next"));
        if (nx == NULL || *nx == '\0')
            break;
        if (after != NULL && strcmp(after, nx) == 0) {
            fprintf(stderr, CTL_NAME ": the server gave the same page cursor twice; stopping\n");
            rc = CTL_REFUSED;
            goto out;
        }
        free(after);
        if ((after = strdup(nx)) == NULL)
            goto oom;
        if (!pg->all) {
            *next = after;
            after = NULL;
            break;
        }
    }
    rc = 0;
    goto out;
oom:
    fputs(CTL_NAME ": out of memory\n", stderr);
    rc = CTL_REFUSED;
out:
    if (rc != 0) {
        json_decref(*items);
        *items = NULL;
        free(*next);
        *next = NULL;
    }
    ctl_resp_free(&r);
    free(after);
    free(q);
    free(url);
    return rc;
}

void ctl_list_print(const struct ctl *c, json_t *items, const char *next, const struct ctl_col *cols, const char *none)
{
    if (c->json) {
        json_t *o = json_pack("{s:O, s:s?}", "items", items, "next", next);
        char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s != NULL)
            printf("%s\n", s);
        free(s);
        json_decref(o);
        return;
    }
    if (json_array_size(items) == 0)
        printf("%s\n", none);
    else
        ctl_table(stdout, items, cols);
    if (next != NULL)
        fprintf(stderr, CTL_NAME ": there is more: --after %s for the next page, or --all\n", next);
}

/* json.c - what handlers answer with and how they read JSON bodies (adm_int.h): JSON responses,
 * RFC 9457 problem documents, the problem for each policies/ error, and the body and field checks
 * that name the field at fault.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "admin-api/adm_srv.h"

void adm_resp_clear(struct adm_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

char *adm_json_dump(const json_t *o, size_t *len)
{
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY) : NULL, *nl;
    size_t n;

    if (s == NULL)
        return NULL;
    n = strlen(s);
    /* A final newline is friendlier to curl at a terminal; JSON ignores it. */
    nl = realloc(s, n + 2);
    if (nl == NULL) {
        free(s);
        return NULL;
    }
    nl[n++] = '\n';
    nl[n] = '\0';
    *len = n;
    return nl;
}

void adm_json(struct adm_resp *r, int status, json_t *o)
{
    char *s;
    size_t n = 0;

    adm_resp_clear(r);
    s = adm_json_dump(o, &n);
    json_decref(o);
    if (s == NULL) {
        adm_problem(r, 500, NULL, "out of memory");
        return;
    }
    r->body = s;
    r->len = n;
    r->status = status;
    r->content_type = ADM_CT_JSON;
}

/* The last resort when even a problem cannot be made: a fixed body. */
void adm_resp_fixed_500(struct adm_resp *r)
{
    static const char fixed[] = "{\"type\":\"about:blank\",\"title\":\"Internal Server Error\",\"status\":500}\n";

    adm_resp_clear(r);
    r->body = strdup(fixed);
    r->len = r->body != NULL ? strlen(r->body) : 0;
    r->status = 500;
    r->content_type = ADM_CT_PROBLEM;
}

/* Replaces each byte that does not start a valid UTF-8 sequence with '?': a detail may quote client
 * input cut at any byte, and jansson refuses invalid UTF-8 (the problem would become a bare 500). */
static void utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;

    while (*p != '\0') {
        size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
        uint32_t cp = n == 2 ? (*p & 0x1fu) : n == 3 ? (*p & 0x0fu) : (*p & 0x07u);
        size_t k = 1;

        for (; n > 1 && k < n && (p[k] & 0xc0) == 0x80; k++)
            cp = cp << 6 | (p[k] & 0x3fu);
        /* RFC 3629 4: no overlong forms, no surrogates, nothing past U+10FFFF. */
        if (n == 0 || k < n || (n == 2 && cp < 0x80) || (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

void adm_problem_va(struct adm_resp *r, int status, const char *field, const char *code, const char *fmt, va_list ap)
{
    char detail[1024];
    size_t n = 0;
    json_t *o;
    char *s;

    adm_resp_clear(r);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    utf8_clean(detail);
    const char *title = MHD_get_reason_phrase_for((unsigned)status);
    o = json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank", "title", title != NULL ? title : "Unknown",
                  "status", status, "detail", detail);
    if (o != NULL && field != NULL && json_object_set_new(o, "field", json_string(field)) != 0) {
        json_decref(o);
        o = NULL;
    }
    if (o != NULL && code != NULL && json_object_set_new(o, "code", json_string(code)) != 0) {
        json_decref(o);
        o = NULL;
    }
    s = adm_json_dump(o, &n);
    json_decref(o);
    if (s == NULL) {
        adm_resp_fixed_500(r);
        return;
    }
    r->body = s;
    r->len = n;
    r->status = status;
    r->content_type = ADM_CT_PROBLEM;
}

void adm_problem(struct adm_resp *r, int status, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    adm_problem_va(r, status, field, NULL, fmt, ap);
    va_end(ap);
}

void adm_problem_code(struct adm_resp *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    adm_problem_va(r, status, NULL, code, fmt, ap);
    va_end(ap);
}

void adm_pol_problem(struct adm_resp *r, int err, const char *msg)
{
    int status;

    switch (err) {
    case POL_E_ARG:
    case POL_E_DER:
        status = 400;                   /* malformed input */
        break;
    case POL_E_CERT:
    case POL_E_CRL_SIGNATURE:
    case POL_E_CRL_ISSUER:
    case POL_E_CRL_ROLLBACK:
    case POL_E_CRL_CRITICAL:
    case POL_E_UNSUPPORTED:
        status = 422;                   /* well-formed, and refused */
        break;
    case POL_E_NOT_FOUND:
        status = 404;
        break;
    case POL_E_EXISTS:
    case POL_E_NOT_HOLD:
        status = 409;
        break;
    case POL_E_STORE:
    case POL_E_BUSY:
        status = 503;                   /* nothing was applied; try again (Retry-After) */
        break;
    default:
        status = 500;
        break;
    }
    adm_problem_code(r, status, pol_errname(err), "%s", msg != NULL && msg[0] != '\0' ? msg : pol_strerror(err));
}

void adm_text(struct adm_resp *r, int status, const char *content_type, char *body, size_t len)
{
    adm_resp_clear(r);
    if (body == NULL && len > 0) {
        adm_problem(r, 500, NULL, "out of memory");
        return;
    }
    r->body = body;
    r->len = len;
    r->status = status;
    r->content_type = content_type;
}

/* ---------------------------------------------------------------- request helpers */

int adm_body_object(struct adm_req *req, struct adm_resp *resp, json_t **out)
{
    const char *ct = req->content_type;
    json_error_t je;
    size_t n = sizeof(ADM_CT_JSON) - 1;
    json_t *o;

    *out = NULL;
    if (ct != NULL)
        ct += strspn(ct, " \t");
    if (ct == NULL || strncasecmp(ct, ADM_CT_JSON, n) != 0 || (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t')) {
        adm_problem(resp, 415, NULL, "the body must be JSON: send Content-Type: application/json");
        return -1;
    }
    if (req->body == NULL || req->body_len == 0) {
        adm_problem(resp, 400, NULL, "the body is empty; a JSON object was expected");
        return -1;
    }
    o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (o == NULL) {
        adm_problem(resp, 400, NULL, "invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
        return -1;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        adm_problem(resp, 400, NULL, "the body must be a JSON object");
        return -1;
    }
    *out = o;
    return 0;
}

int adm_only_fields(struct adm_resp *resp, json_t *o, const char *const allowed[])
{
    const char *key;
    json_t *v;

    if (!json_is_object(o)) {
        adm_problem(resp, 400, NULL, "a JSON object was expected");
        return -1;
    }
    json_object_foreach(o, key, v) {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
            i++;
        if (allowed[i] == NULL) {
            adm_problem(resp, 400, key, "unknown field \"%.100s\"", key);
            return -1;
        }
    }
    return 0;
}

/* JSON null counts as absent: clients often send every field. */
static json_t *field_get(json_t *o, const char *name)
{
    json_t *v = json_is_object(o) ? json_object_get(o, name) : NULL;

    return json_is_null(v) ? NULL : v;
}

int adm_field_string(struct adm_resp *resp, json_t *o, const char *name, int required, const char **out)
{
    json_t *v = field_get(o, name);

    *out = NULL;
    if (v == NULL) {
        if (!required)
            return 0;
        adm_problem(resp, 400, name, "the field \"%s\" is required", name);
        return -1;
    }
    if (!json_is_string(v)) {
        adm_problem(resp, 400, name, "the field \"%s\" must be a string", name);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int adm_field_int(struct adm_resp *resp, json_t *o, const char *name, int required, long long min, long long max,
                  long long *out)
{
    json_t *v = field_get(o, name);
    long long x;

    if (v == NULL) {
        if (!required)
            return 0;               /* *out keeps the caller's default */
        adm_problem(resp, 400, name, "the field \"%s\" is required", name);
        return -1;
    }
    if (!json_is_integer(v)) {
        adm_problem(resp, 400, name, "the field \"%s\" must be an integer", name);
        return -1;
    }
    x = (long long)json_integer_value(v);
    if (x < min || x > max) {
        adm_problem(resp, 400, name, "the field \"%s\" must be between %lld and %lld", name, min, max);
        return -1;
    }
    *out = x;
    return 0;
}

/* --- shared by the resource files --- */

struct pol_store *adm_need_store(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_store(req);
    if (st == NULL)
        adm_problem(resp, 503, NULL, "no policy store is configured (policy_store in the configuration)");
    return st;
}

json_t *adm_jtext(const char *s)
{
    if (s == NULL)
        return json_null();
    json_t *v = json_string(s);
    if (v != NULL)
        return v;
    /* jansson takes UTF-8 only: other bytes of a stored text show as '?' */
    char *copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

json_t *adm_jtime(time_t t)
{
    char at[32];
    if (t == 0)
        return json_null();
    pol_time_format(t, at, sizeof(at));
    return json_string(at);
}

long long adm_id_of(const char *s)
{
    char *end = NULL;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return errno == 0 && *end == '\0' && v > 0 && v < INT64_MAX ? v : -1;
}

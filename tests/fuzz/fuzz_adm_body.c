/* fuzz_adm_body.c - fuzz target for the admin API's request handling: every route's body, path and
 * query-less parameters, through the same routing and handlers as over HTTP (adm_request_offline),
 * against a real SQLite store in a temporary directory.
 *
 * libFuzzer: make fuzz FUZZ_TIME=600 (tests/fuzz/README.md); replay: make fuzz-replay.
 *
 * Input: "METHOD PATH\n" "CONTENT-TYPE\n" then the body (any bytes). An operator's request is
 * untrusted input: the rule is that bad input gets a clear 4xx and changes nothing. Beyond the
 * sanitizers, the target checks:
 *  - every answer has a status the API documents for errors or successes: never 500, never none;
 *  - an error answer is an RFC 9457 problem document (JSON object whose "status" is the answer's);
 *  - an error answer changed nothing: the store's generation (every committed change moves it) is the
 *    one before the request;
 *  - a success body, when there is one, is JSON (or the text/PEM/DER the route serves).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin-api/adm_srv.h"
#include "policies/pol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pol_store *store;
static struct adm_server *srv;
static char dir[64], path[96];

static void cleanup(void)
{
    static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
    char p[128];

    adm_server_stop(srv);
    pol_store_close(store);
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void setup(void)
{
    char err[256];
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/fuzz_adm.XXXXXX", tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    snprintf(path, sizeof(path), "%s/policy.db", dir);
    if (pol_store_open_sqlite(path, &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "store: %s\n", err);
        abort();
    }
    if (adm_server_offline(store, NULL, &srv) != 0)
        abort();
    atexit(cleanup);
}

static int line(const uint8_t **p, const uint8_t *end, char *out, size_t cap)
{
    size_t n = 0;

    while (*p < end && **p != '\n') {
        if (n + 1 >= cap || **p == '\0')
            return -1;
        out[n++] = (char)**p;
        (*p)++;
    }
    if (*p == end)
        return -1;
    (*p)++;
    out[n] = '\0';
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char first[512], ctype[128], *body;
    const uint8_t *p = data, *end = data + size;
    struct adm_resp resp;
    uint64_t g0 = 0, g1 = 0;

    if (srv == NULL)
        setup();
    if (line(&p, end, first, sizeof(first)) != 0 || line(&p, end, ctype, sizeof(ctype)) != 0)
        return 0;
    char *sp = strchr(first, ' ');
    if (sp == NULL)
        return 0;
    *sp = '\0';
    const char *method = first, *target = sp + 1;
    /* The body as the server holds it: NUL-terminated after its bytes. */
    size_t len = (size_t)(end - p);
    body = malloc(len + 1);
    if (body == NULL)
        return 0;
    memcpy(body, p, len);
    body[len] = '\0';

    if (pol_store_generation(store, &g0) != 0)
        abort();
    if (adm_request_offline(srv, method, target, ctype[0] != '\0' ? ctype : NULL, body, len, ADM_ROLE_ADMIN, &resp) != 0)
        abort();
    if (pol_store_generation(store, &g1) != 0)
        abort();

    if (resp.status < 200 || resp.status >= 600 || resp.status == 500) {
        fprintf(stderr, "%s %s: status %d: %.*s\n", method, target, resp.status, (int)resp.len,
                resp.body != NULL ? resp.body : "");
        abort();
    }
    if (resp.status >= 400) {
        json_error_t je;
        json_t *o = resp.body != NULL ? json_loadb(resp.body, resp.len, 0, &je) : NULL;
        if (!json_is_object(o) || json_integer_value(json_object_get(o, "status")) != resp.status ||
            resp.content_type == NULL || strcmp(resp.content_type, ADM_CT_PROBLEM) != 0) {
            fprintf(stderr, "%s %s: %d without a problem document: %.*s\n", method, target, resp.status,
                    (int)resp.len, resp.body != NULL ? resp.body : "");
            abort();
        }
        json_decref(o);
        if (g1 != g0) {
            fprintf(stderr, "%s %s: answered %d but the store moved from generation %llu to %llu\n", method, target,
                    resp.status, (unsigned long long)g0, (unsigned long long)g1);
            abort();
        }
    } else if (resp.body != NULL && resp.content_type != NULL && strcmp(resp.content_type, ADM_CT_JSON) == 0) {
        json_t *o = json_loadb(resp.body, resp.len, 0, NULL);
        if (o == NULL) {
            fprintf(stderr, "%s %s: %d with a body that is not JSON\n", method, target, resp.status);
            abort();
        }
        json_decref(o);
    }
    if (getenv("FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "%s %s -> %d (generation %llu -> %llu)\n", method, target, resp.status,
                (unsigned long long)g0, (unsigned long long)g1);
    adm_resp_clear(&resp);
    free(body);
    return 0;
}

/* ctl.h - inside hsmgatectl, the admin API's command-line client (admin-api/README.md, "hsmgatectl").
 *
 * Not part of libhsmgate: the Makefile builds admin-api/ctl/ *.c into build/<flavour>/hsmgatectl alone,
 * linked with libcurl and jansson only, so an operator's workstation needs neither wolfSSL nor the HSM.
 *
 * Files: hsmgatectl.c (main, options, the token, dispatch), ctl_http.c (requests, problems, pages),
 * ctl_util.c (files, tables, text), cmd_policy.c (revoke, revocations, allow, crl, audit),
 * cmd_gateway.c (status, conns, cert).
 *
 * Conventions: functions returning int return 0 on success, else an exit status (enum ctl_exit) after
 * having said why on stderr; CTL_HELP (never an exit status) means "usage was printed, stop with 0".
 */
#ifndef HSMGATE_ADMIN_API_CTL_H
#define HSMGATE_ADMIN_API_CTL_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define CTL_NAME "hsmgatectl"

enum ctl_exit {
    CTL_OK = 0,
    CTL_REFUSED = 1,            /* the server answered with an error, or with something unusable */
    CTL_USAGE = 2,              /* the command line, a file or the token file is wrong */
    CTL_UNREACHABLE = 3,        /* no answer: connection refused, unknown host, timeout, ... */
    CTL_HELP = -1,              /* --help was answered */
};

struct ctl {
    const char *url;            /* base URL as given; ctl_http.c keeps a checked copy */
    const char *unix_socket;    /* CURLOPT_UNIX_SOCKET_PATH, or NULL */
    const char *token_file;     /* where the bearer token is; NULL: requests go without one */
    const char *request_id;     /* sent as X-Request-Id, or NULL (the server makes one) */
    const char *cacert;         /* CA certificates for an https URL (CURLOPT_CAINFO), or NULL: the system's */
    long timeout_ms;
    int json;                   /* --json: print the API's JSON, not tables */
    const char *cmd;            /* "allow add", for messages */
    const char *usage;          /* the current command's usage text */
    /* Owned by ctl_http.c, released by ctl_http_free. */
    char *token;                /* the token, wiped before it is freed */
    char *base;                 /* url without its trailing '/' */
    void *curl;                 /* one CURL handle for every request: the connection is reused */
};

/* One command-line option of a command: "--name VALUE" (value != NULL) or "--name" (flag != NULL). */
struct ctl_opt {
    const char *name;
    const char **value;
    int *flag;
};

/* Parses argv[0..argc): the command's options (opts, ended by a NULL name; may be NULL), the global
 * ones (--url, --token-file, ...: accepted anywhere), and up to maxpos positional arguments into pos
 * (*npos of them). A command option given twice, an unknown one, a missing value or too many
 * positional arguments is a usage error. Returns 0, CTL_HELP or CTL_USAGE. */
int ctl_args(struct ctl *c, int argc, char **argv, const struct ctl_opt *opts, const char **pos, size_t maxpos,
             size_t *npos);
/* Prints "hsmgatectl: <message>" and where to find the usage; returns CTL_USAGE. */
int ctl_usage_error(const struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- ctl_http.c ---- */

struct ctl_resp {
    long status;                /* the HTTP status */
    char *body;                 /* NUL-terminated (never NULL after a successful ctl_call) */
    size_t len;
    json_t *json;               /* the body parsed, when the server said it is JSON; else NULL */
    char request_id[72];        /* X-Request-Id of the answer */
    char retry_after[16];       /* Retry-After of the answer */
};

/* Sends METHOD base+path (path starts with '/', already escaped) with body as JSON (NULL: none), the
 * token when there is one, and fills r. Returns 0 when the server answered (whatever the status),
 * CTL_UNREACHABLE when it could not be reached, CTL_USAGE for a bad --url or token file, CTL_REFUSED
 * for an answer too large or announced as JSON but not JSON. ctl_resp_free(r) in every case. */
int ctl_call(struct ctl *c, const char *method, const char *path, const json_t *body, struct ctl_resp *r)
    __attribute__((warn_unused_result));
void ctl_resp_free(struct ctl_resp *r);
/* 1 if r is a success (2xx) carrying a JSON object. */
int ctl_resp_ok(const struct ctl_resp *r);
/* Says on stderr why r is not a success: "hsmgatectl: 403 Forbidden: <detail> (field X, request id Y)";
 * a 404 from the router becomes "this server has no <route>". With --json the problem document also
 * goes to stdout. Returns CTL_REFUSED. */
int ctl_fail(struct ctl *c, const struct ctl_resp *r, const char *route);
/* ctl_call, then a success with a JSON object, else ctl_fail(route). Returns 0 or an exit status. */
int ctl_request(struct ctl *c, const char *method, const char *path, const json_t *body, const char *route,
                struct ctl_resp *r) __attribute__((warn_unused_result));
/* Wipes the token and releases what ctl_http.c holds. */
void ctl_http_free(struct ctl *c);

/* Page options of list commands (--limit, --after, --all). */
struct ctl_pages {
    const char *limit, *after;
    int all;
};
/* GETs path?query (query "a=1&b=2" already escaped, or NULL) page by page (all pages with --all) and
 * collects the "items" of each page into *items (new reference); *next is the cursor of the next page
 * (malloc'd) or NULL. Returns 0 or an exit status. */
int ctl_list(struct ctl *c, const char *path, const char *query, const struct ctl_pages *pg, const char *route,
             json_t **items, char **next) __attribute__((warn_unused_result));
/* Prints a list: {"items", "next"} with --json, else a table (or "(none)") and a hint when there is a
 * next page. */
struct ctl_col;
void ctl_list_print(const struct ctl *c, json_t *items, const char *next, const struct ctl_col *cols, const char *none);

/* ---- ctl_util.c ---- */

/* A table column: heading, the JSON keys it shows ("a|b.c": the first present of a, b.c; dotted
 * paths go into objects), and a width cap (0: none). A NULL heading ends a column list. */
struct ctl_col {
    const char *head;
    const char *keys;
    unsigned max;
};
/* Prints the objects of items as a table, one row each, columns aligned; text from the server is
 * cleaned of control characters first. */
void ctl_table(FILE *f, const json_t *items, const struct ctl_col *cols);
/* The value at keys (as in struct ctl_col) as text: strings cleaned, numbers in decimal, booleans
 * yes/no, arrays joined with ',', absent or null "-". Malloc'd; NULL only when out of memory. */
char *ctl_value(const json_t *o, const char *keys);
/* Scratch strings for one message: ctl_v returns ctl_value's text (or "?" when out of memory), kept
 * until ctl_strs_free. */
struct ctl_strs {
    char *s[24];
    size_t n;
};
const char *ctl_v(struct ctl_strs *t, const json_t *o, const char *keys);
void ctl_strs_free(struct ctl_strs *t);
/* Replaces control characters (C0, DEL, C1 when not UTF-8) with '?' in place: a server's text must
 * not drive the operator's terminal. */
void ctl_clean(char *s);

/* Reads a certificate, CRL or CSR file ("-": stdin): PEM as it is; anything else is taken as DER and
 * wrapped in PEM under label ("CERTIFICATE", "X509 CRL", "CERTIFICATE REQUEST"). *out is malloc'd.
 * Returns 0 or CTL_USAGE after saying why. */
int ctl_read_pem(const char *path, const char *label, size_t max, char **out) __attribute__((warn_unused_result));
/* Percent-encodes s for a path segment or a query value (RFC 3986 unreserved characters stay). Malloc'd. */
char *ctl_escape(const char *s);
/* Appends "name=escaped(value)" to the query *q (malloc'd, '&'-joined); value NULL: nothing. 0 or -1. */
int ctl_query_add(char **q, const char *name, const char *value);
/* json_object_set_new for an optional string: value NULL adds nothing. 0 or -1 (not UTF-8, memory). */
int ctl_set_str(json_t *o, const char *key, const char *value);

/* ---- commands (cmd_policy.c, cmd_gateway.c): argv starts after the command's words ---- */
int ctl_cmd_status(struct ctl *c, int argc, char **argv);
int ctl_cmd_revoke(struct ctl *c, int argc, char **argv);
int ctl_cmd_revocations_ls(struct ctl *c, int argc, char **argv);
int ctl_cmd_allow_add(struct ctl *c, int argc, char **argv);
int ctl_cmd_allow_rm(struct ctl *c, int argc, char **argv);
int ctl_cmd_allow_ls(struct ctl *c, int argc, char **argv);
int ctl_cmd_crl_import(struct ctl *c, int argc, char **argv);
int ctl_cmd_crl_ls(struct ctl *c, int argc, char **argv);
int ctl_cmd_crl_rm(struct ctl *c, int argc, char **argv);
int ctl_cmd_audit_ls(struct ctl *c, int argc, char **argv);
int ctl_cmd_audit_verify(struct ctl *c, int argc, char **argv);
int ctl_cmd_conns_ls(struct ctl *c, int argc, char **argv);
int ctl_cmd_conns_kill(struct ctl *c, int argc, char **argv);
int ctl_cmd_cert_issue(struct ctl *c, int argc, char **argv);

#endif

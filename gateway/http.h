/* http.h - HTTP/1.1 for https listeners: requests parsed, checked and rewritten on their way to the
 * backend, responses delimited on their way back. Internal to gateway/.
 *
 * The engine (struct gw_http, http.c) does no I/O: conn.c reads the client's plaintext into
 * gw_http_req_space(), sends gw_http_tob_peek() to the backend, reads the backend into
 * gw_http_resp_space() and writes gw_http_toc_peek() to the client. Both directions are parsed with
 * Debian's libhttp-parser, plus the checks it lacks (RFC 9112: bare CR/LF, obs-fold, request line,
 * Content-Length/Transfer-Encoding ambiguity, chunk framing; see http.c).
 *
 * What the backend receives is rebuilt, never passed through unchecked: a head the gateway writes
 * (request line as received, incoming headers minus the identity and hop-by-hop ones, one framing
 * header, Connection, the identity block), the body bytes http_parser delimits and chunk lines that
 * passed the framing check. Responses go back byte for byte; the response parser only says where
 * each ends, so pipelined requests are answered in order, and times the 504.
 *
 * The helpers below the engine are pure functions (http_headers.c), exported for the unit tests.
 */
#ifndef HSMGATE_GATEWAY_HTTP_H
#define HSMGATE_GATEWAY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/tls.h"

/* Error codes of this module (0 is success). */
enum gw_http_err {
    GW_HTTP_E_NOMEM = -1,   /* out of memory */
    GW_HTTP_E_ARG = -2,     /* a NULL or an impossible value where one is required */
    GW_HTTP_E_SPACE = -3,   /* an output buffer is too small */
};
const char *gw_http_strerror(int err);

/* Requests outstanding on one connection (pipelining) before the gateway stops reading it. */
#define GW_HTTP_PIPELINE 16u
/* The request target as logged is cut at this many bytes. */
#define GW_HTTP_LOG_PATH 256u

/* ---- header names ---- */

/* The identity header names of a listener with the defaults applied (RFC 9440 for Client-Cert and
 * Client-Cert-Chain). NULL: the header is not sent. */
struct gw_http_names {
    const char *client_cert, *client_cert_chain, *subject, *issuer, *serial, *fingerprint, *not_after,
        *verify, *forwarded_for, *forwarded_proto;
};

/* Fills out from cfg->headers (config_http.c has applied the defaults and the "off"s). */
void gw_http_names_resolve(const struct gw_listener_cfg *cfg, struct gw_http_names *out);

/* 1 when an incoming request header of that name is removed before the request is forwarded: the
 * built-in list (Client-Cert, Client-Cert-Chain, X-Client-Cert*, X-SSL*, X-Client-Verify, X-Forwarded-*,
 * Forwarded, X-Real-IP), every name in names, every name in strip[0..nstrip). Case-insensitive, and
 * '_' counts as '-' (CGI-style backends merge the two: X_Client_Verify would reach them as ours). */
int gw_http_header_stripped(const struct gw_http_names *names, char *const *strip, size_t nstrip,
                            const char *name, size_t len);

/* ---- syntax checks (RFC 9110 5.1, 5.5; RFC 9112 3, 6, 7) ---- */

/* 1 when s[0..len) is a token (field name, method): non-empty, tchar only. */
int gw_http_token_ok(const char *s, size_t len);
/* 1 when s[0..len) is a valid field value: VCHAR, obs-text, SP, HTAB; no other control byte. */
int gw_http_value_ok(const char *s, size_t len);
/* 1 when the request line line[0..len) (without its CRLF) is "token SP target SP HTTP/1.0|1.1" with a
 * target of visible ASCII; sets *minor to the version's minor digit. */
int gw_http_request_line_ok(const char *line, size_t len, int *minor);

/* Transfer-Encoding and Content-Length of one request (RFC 9112 6.1-6.3). */
enum gw_http_framing { GW_HTTP_FRAMING_NONE = 0, GW_HTTP_FRAMING_LENGTH, GW_HTTP_FRAMING_CHUNKED };
/* Decides the framing from every Transfer-Encoding value (te[0..nte)) and every Content-Length value
 * (cl[0..ncl)), values with their OWS already trimmed. Returns 0 and sets *framing (and *length for
 * LENGTH), or the HTTP status to answer: 400 for any ambiguity (both headers, several Content-Length,
 * a coding other than one final "chunked", Transfer-Encoding in HTTP/1.0, a non-digit), 413 for a
 * length of more than 18 digits. */
int gw_http_framing_decide(const char *const *te, const size_t *te_len, size_t nte, const char *const *cl,
                           const size_t *cl_len, size_t ncl, int http10, enum gw_http_framing *framing,
                           uint64_t *length);

/* 1 when s[0..len) is what may stand between two chunks' data (RFC 9112 7.1): CRLF (unless first),
 * 1*HEXDIG (16 at most), extensions introduced by ";" after optional BWS and holding no control
 * byte, CRLF. http_parser takes any two bytes after chunk data and anything up to CR as extensions. */
int gw_http_chunk_line_ok(const unsigned char *s, size_t len, int first);

/* ---- identity ---- */

/* What the gateway knows of the client of one connection. */
struct gw_http_client {
    int verified;                 /* a client certificate that passed verification */
    const char *verify;           /* X-Client-Verify: "SUCCESS", "NONE", "FAILED" */
    const struct gw_peer_info *pi; /* subject, issuer, serial, fingerprint, not after; used when verified */
    const unsigned char *der;     /* the certificate, DER; used when verified */
    size_t der_len;
    const unsigned char *const *chain; /* the intermediates the client sent, DER, leaf excluded */
    const size_t *chain_len;
    size_t nchain;
    const char *ip;               /* the client's address, no port */
};

/* Escapes a value for a header: bytes outside 0x21-0x7E (and a space at either end) become "\XX" (RFC
 * 4514 2.4 hexpair, so an RFC 4514 name stays valid), so no CR, LF or other control byte can ever be
 * written. Writes a NUL-terminated string into out[0..cap) and returns its length, or
 * GW_HTTP_E_SPACE when cap is too small. */
int gw_http_value_escape(const char *in, char *out, size_t cap) __attribute__((warn_unused_result));

/* Standard base64 (RFC 4648 4) of in[0..n) with padding into out[0..cap); returns the length written
 * (NUL-terminated) or GW_HTTP_E_SPACE. */
int gw_http_base64(const unsigned char *in, size_t n, char *out, size_t cap) __attribute__((warn_unused_result));

/* Builds the identity headers the gateway adds to every request of this client: "Name: value\r\n"
 * lines for Client-Cert (RFC 9440 2.1: ":base64 DER:", a structured-field byte sequence),
 * Client-Cert-Chain (RFC 9440 2.2, when named), subject, issuer, serial, fingerprint, not after
 * (certificate headers only for a verified certificate), verify, forwarded-for and forwarded-proto
 * ("https"). Names that are NULL are left out. *out is malloc'd (the caller frees it), *len its length.
 * Returns 0 or GW_HTTP_E_NOMEM / GW_HTTP_E_ARG. */
int gw_http_identity_build(const struct gw_http_names *names, const struct gw_http_client *cl, char **out,
                           size_t *len) __attribute__((warn_unused_result));

/* Gathers the identity of a connection whose handshake is done (ssl: a WOLFSSL *, http_ident.c):
 * the verified certificate, its chain, pi (which the caller filled with gw_tls_peer_info), the
 * client's address from fd, then gw_http_identity_build. auth_required: the listener asks for
 * certificates (one-way listeners never report one). */
int gw_http_identity_from_tls(void *ssl, int fd, int auth_required, const struct gw_peer_info *pi,
                              const struct gw_http_names *names, char **out, size_t *len)
    __attribute__((warn_unused_result));

/* A complete response the gateway answers itself (400, 413, 431, 502, 504, ...): a short text body,
 * Connection: close. head_only: for a HEAD request (no body). Writes into out[0..cap); returns the
 * length or GW_HTTP_E_SPACE. */
int gw_http_local_response(int status, int head_only, char *out, size_t cap) __attribute__((warn_unused_result));

/* ---- the engine ---- */

struct gw_http;

/* A new engine for one client connection of listener cfg (its limits, names and strip_headers; cfg
 * must outlive the engine) that adds ident[0..ident_len) (gw_http_identity_build) to every request.
 * Returns 0 with *out set, or GW_HTTP_E_NOMEM. */
int gw_http_new(const struct gw_listener_cfg *cfg, const char *ident, size_t ident_len, struct gw_http **out)
    __attribute__((warn_unused_result));
void gw_http_free(struct gw_http *h);

/* Client -> engine. Space for the client's next bytes: NULL (or *cap 0) when the engine takes no
 * input now (its buffers are full, or it reads no more requests on this connection). */
unsigned char *gw_http_req_space(struct gw_http *h, size_t *cap);
/* n bytes were written at gw_http_req_space; they are parsed now, as far as the buffers allow. */
void gw_http_req_commit(struct gw_http *h, size_t n, uint64_t now_ms);
/* The client sent its last byte (close_notify or EOF). */
void gw_http_req_eof(struct gw_http *h, uint64_t now_ms);

/* Engine -> backend: the bytes to send next (NULL when *len is 0), and how many were sent. */
const unsigned char *gw_http_tob_peek(const struct gw_http *h, size_t *len);
void gw_http_tob_consume(struct gw_http *h, size_t n, uint64_t now_ms);

/* Backend -> engine, like the client side. */
unsigned char *gw_http_resp_space(struct gw_http *h, size_t *cap);
void gw_http_resp_commit(struct gw_http *h, size_t n, uint64_t now_ms);
/* The backend closed (why NULL) or failed (why: a static string such as "backend_reset"). */
void gw_http_resp_eof(struct gw_http *h, uint64_t now_ms, const char *why);

/* Engine -> client. */
const unsigned char *gw_http_toc_peek(const struct gw_http *h, size_t *len);
void gw_http_toc_consume(struct gw_http *h, size_t n);

/* 1 once a request head is complete and no backend was asked for yet: the caller connects one, then
 * calls gw_http_backend_up, or gw_http_backend_failed when none can be reached. */
int gw_http_wants_backend(const struct gw_http *h);
void gw_http_backend_up(struct gw_http *h);
/* No backend: the oldest outstanding request is answered 502 and the connection ends after it. */
void gw_http_backend_failed(struct gw_http *h, uint64_t now_ms, const char *why);
/* 1 when the backend connection must be closed now (after a 504, an unsolicited or broken response,
 * a request that failed half-way): its bytes are no longer wanted. */
int gw_http_backend_unwanted(const struct gw_http *h);

/* The time at which the oldest outstanding request, complete, has waited backend_timeout for its
 * response head; UINT64_MAX when nothing is waiting. */
uint64_t gw_http_deadline(const struct gw_http *h);
/* Past that deadline: answers that request 504 and ends the connection after it; returns 1. Else 0. */
int gw_http_timeout(struct gw_http *h, uint64_t now_ms);

/* 1 when the connection is to be closed now: no request outstanding and none to come, every byte for
 * the client written (or an abort). */
int gw_http_finished(const struct gw_http *h);
/* 1 when the connection is idle between requests: nothing outstanding, nothing half-read, nothing left
 * to write. A draining gateway closes such connections. */
int gw_http_idle(const struct gw_http *h);

/* One access-log record per request, in order. */
struct gw_http_log {
    char method[24];
    char path[GW_HTTP_LOG_PATH];  /* the request target, bytes outside 0x21-0x7E as %XX */
    int status;                   /* 0: no response (aborted) */
    int64_t upstream_ms;          /* forwarded to response head; -1 when the gateway answered itself */
    uint64_t bytes_in, bytes_out; /* of this request and its response, as seen on the client side */
    uint64_t duration_ms;         /* first byte of the request to the end of its response */
    const char *result;           /* "ok", "rejected", "backend_unreachable", "backend_timeout", "aborted" */
    const char *reason;           /* static string or NULL */
};
/* Moves the oldest finished record into out; returns 1, or 0 when there is none. */
int gw_http_log_pop(struct gw_http *h, struct gw_http_log *out);
/* The connection ends (why: a static string): every request still outstanding becomes a record. */
void gw_http_abort(struct gw_http *h, uint64_t now_ms, const char *why);
/* Requests logged so far on this connection. */
unsigned gw_http_logged(const struct gw_http *h);

#endif

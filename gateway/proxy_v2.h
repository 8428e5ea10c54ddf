/* proxy_v2.h - the PROXY protocol version 2 header that a tcp listener with `proxy_protocol: v2`
 * sends to its backend before any client byte (haproxy.org, doc/proxy-protocol.txt, section 2.2).
 *
 * The encoder is a pure function: addresses and TLS facts in, bytes out. conn.c gathers the facts
 * (getsockname, gw_tls_pp2_info) and queues the bytes.
 */
#ifndef HSMGATE_GATEWAY_PROXY_V2_H
#define HSMGATE_GATEWAY_PROXY_V2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "gateway/config.h"

/* Section 2.2: the fixed part is 16 bytes; the length field that follows it is 16 bits. */
#define GW_PP2_HEADER_FIXED 16u
#define GW_PP2_HEADER_MAX (GW_PP2_HEADER_FIXED + 65535u)

/* Section 2.2.5-2.2.6: TLV types. */
#define GW_PP2_TYPE_SSL 0x20u
#define GW_PP2_SUBTYPE_SSL_VERSION 0x21u
#define GW_PP2_SUBTYPE_SSL_CN 0x22u
#define GW_PP2_SUBTYPE_SSL_CIPHER 0x23u
#define GW_PP2_SUBTYPE_SSL_SIG_ALG 0x24u
#define GW_PP2_SUBTYPE_SSL_KEY_ALG 0x25u
/* PP2_TYPE_MIN_CUSTOM: the first type reserved for applications; ours carries the client
 * certificate in DER (docs/configuration.md, "PROXY protocol v2"). */
#define GW_PP2_TYPE_CLIENT_CERT 0xE0u

#define GW_PP2_CLIENT_SSL 0x01u
#define GW_PP2_CLIENT_CERT_CONN 0x02u
#define GW_PP2_CLIENT_CERT_SESS 0x04u

/* Error codes of this module (0 is success). */
enum gw_pp2_err {
    GW_PP2_E_SPACE = -1,    /* out is smaller than the header; *len says how much is needed */
    GW_PP2_E_TOO_LONG = -2, /* a TLV or the whole header exceeds the 16-bit lengths of the format */
    GW_PP2_E_ARG = -3,      /* a NULL where a value is required */
};
const char *gw_pp2_strerror(int err);

/* What PP2_TYPE_SSL says. Strings are NUL-terminated; NULL or "" leaves that sub-TLV out. */
struct gw_pp2_ssl {
    int present;            /* 0: no PP2_TYPE_SSL TLV at all (and no certificate TLV) */
    uint8_t client;         /* GW_PP2_CLIENT_* bits */
    uint32_t verify;        /* 0: the client certificate verified, or none was presented */
    const char *version;    /* "TLSv1.3" */
    const char *cn;         /* client certificate subject CN */
    const char *cipher;     /* OpenSSL's name of the cipher suite */
    const char *sig_alg;    /* client certificate's signature algorithm, "ecdsa-with-SHA256" */
    const char *key_alg;    /* client certificate's key algorithm, "id-ecPublicKey", "rsaEncryption" */
    const uint8_t *cert_der; /* NULL: no GW_PP2_TYPE_CLIENT_CERT TLV */
    size_t cert_len;
};

/* Encodes a v2 PROXY header for a TCP connection from src (the client) to dst (the listener's local
 * address). Both IPv4 (AF_INET, or IPv4-mapped AF_INET6 as a dual-stack socket reports them): TCP
 * over IPv4; otherwise TCP over IPv6, an IPv4 address written IPv4-mapped (RFC 4291 2.5.5.2); a
 * family that is neither: AF_UNSPEC, no addresses (the receiver uses its own).
 * ssl may be NULL (no TLVs). Writes into out[0..cap) and sets *len to the header's length; returns
 * 0, GW_PP2_E_SPACE (with *len the size needed), GW_PP2_E_TOO_LONG or GW_PP2_E_ARG. */
int gw_pp2_encode(const struct sockaddr *src, const struct sockaddr *dst, const struct gw_pp2_ssl *ssl,
                  uint8_t *out, size_t cap, size_t *len) GW_WUR;

#endif

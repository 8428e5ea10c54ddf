/* proxy_v2.c - the PROXY protocol v2 encoder (haproxy.org, doc/proxy-protocol.txt, 2.2).
 *
 * Written from the specification: the 12-byte signature, version 2 with the PROXY command, the
 * address family and transport, a 16-bit length, the addresses, then TLVs. Multi-byte numbers are
 * in network byte order. No CRC32c TLV: the header travels over TCP to a backend we connected.
 */
#include "gateway/proxy_v2.h"

#include <netinet/in.h>
#include <string.h>

/* Section 2.2: "\r\n\r\n\0\r\nQUIT\n". */
static const uint8_t pp2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

#define PP2_VERSION_PROXY 0x21u  /* version 2 (high nibble), command PROXY (low nibble) */
#define PP2_FAM_UNSPEC 0x00u
#define PP2_FAM_TCP4 0x11u       /* AF_INET, SOCK_STREAM */
#define PP2_FAM_TCP6 0x21u       /* AF_INET6, SOCK_STREAM */
#define PP2_ADDR_LEN_TCP4 12u    /* 2 x 4 address bytes, 2 x 2 port bytes */
#define PP2_ADDR_LEN_TCP6 36u    /* 2 x 16, 2 x 2 */
#define PP2_TLV_HEAD 3u          /* type, length_hi, length_lo */
#define PP2_SSL_FIXED 5u         /* client (1), verify (4) */
#define PP2_U16_MAX 65535u

const char *gw_pp2_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case GW_PP2_E_SPACE: return "buffer too small for the PROXY v2 header";
    case GW_PP2_E_TOO_LONG: return "PROXY v2 header longer than its 16-bit length allows";
    case GW_PP2_E_ARG: return "invalid argument";
    default: return "unknown error";
    }
}

/* An IPv4 address: AF_INET, or IPv4-mapped in AF_INET6 (a dual-stack listener's view of an IPv4
 * client). With addr and port not NULL, copies them out, in network order. */
static int as_v4(const struct sockaddr *sa, uint8_t *addr, uint8_t *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        if (addr != NULL) {
            memcpy(addr, &s4->sin_addr, 4);
            memcpy(port, &s4->sin_port, 2);
        }
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            return 0;
        if (addr != NULL) {
            memcpy(addr, s6->sin6_addr.s6_addr + 12, 4);
            memcpy(port, &s6->sin6_port, 2);
        }
        return 1;
    }
    return 0;
}

/* The family the header uses for src and dst (section 2.2, byte 14). */
static uint8_t pp2_family(const struct sockaddr *src, const struct sockaddr *dst)
{
    int s = src->sa_family, d = dst->sa_family;
    if (as_v4(src, NULL, NULL) && as_v4(dst, NULL, NULL))
        return PP2_FAM_TCP4;
    if ((s == AF_INET || s == AF_INET6) && (d == AF_INET || d == AF_INET6))
        return PP2_FAM_TCP6;
    return PP2_FAM_UNSPEC;
}

/* An address as 16 IPv6 bytes (IPv4-mapped for AF_INET) and its port in network order. */
static void addr16(const struct sockaddr *sa, uint8_t out[16], uint8_t port[2])
{
    uint16_t p;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memset(out, 0, 10);
        out[10] = out[11] = 0xFF;
        memcpy(out + 12, &s4->sin_addr, 4);
        p = s4->sin_port;
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(out, &s6->sin6_addr, 16);
        p = s6->sin6_port;
    }
    memcpy(port, &p, 2); /* already in network order */
}

static size_t str_len(const char *s)
{
    return s == NULL ? 0 : strlen(s);
}

/* The length of one sub-TLV of PP2_TYPE_SSL (0 when the value is absent), or SIZE_MAX if too long. */
static size_t sub_len(const char *s)
{
    size_t n = str_len(s);
    if (n == 0)
        return 0;
    return n > PP2_U16_MAX ? SIZE_MAX : PP2_TLV_HEAD + n;
}

static uint8_t *put_tlv_head(uint8_t *p, uint8_t type, size_t len)
{
    p[0] = type;
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)len;
    return p + PP2_TLV_HEAD;
}

static uint8_t *put_sub(uint8_t *p, uint8_t type, const char *s)
{
    size_t n = str_len(s);
    if (n == 0)
        return p;
    p = put_tlv_head(p, type, n);
    memcpy(p, s, n);
    return p + n;
}

int gw_pp2_encode(const struct sockaddr *src, const struct sockaddr *dst, const struct gw_pp2_ssl *ssl,
                  uint8_t *out, size_t cap, size_t *len)
{
    if (src == NULL || dst == NULL || len == NULL || (out == NULL && cap > 0))
        return GW_PP2_E_ARG;
    *len = 0;
    uint8_t fam = pp2_family(src, dst);
    size_t addr_len = fam == PP2_FAM_TCP4 ? PP2_ADDR_LEN_TCP4 : fam == PP2_FAM_TCP6 ? PP2_ADDR_LEN_TCP6 : 0;

    /* Lengths first: every one must fit its 16-bit field, and so must their sum. */
    size_t ssl_val = 0, cert_tlv = 0;
    if (ssl != NULL && ssl->present) {
        const char *subs[] = { ssl->version, ssl->cn, ssl->cipher, ssl->sig_alg, ssl->key_alg };
        ssl_val = PP2_SSL_FIXED;
        for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
            size_t n = sub_len(subs[i]);
            if (n == SIZE_MAX)
                return GW_PP2_E_TOO_LONG;
            ssl_val += n;
        }
        if (ssl_val > PP2_U16_MAX)
            return GW_PP2_E_TOO_LONG;
        if (ssl->cert_der != NULL) {
            if (ssl->cert_len > PP2_U16_MAX)
                return GW_PP2_E_TOO_LONG;
            cert_tlv = PP2_TLV_HEAD + ssl->cert_len;
        }
    }
    size_t body = addr_len + (ssl_val ? PP2_TLV_HEAD + ssl_val : 0) + cert_tlv;
    if (body > PP2_U16_MAX)
        return GW_PP2_E_TOO_LONG;
    size_t total = GW_PP2_HEADER_FIXED + body;
    *len = total;
    if (cap < total)
        return GW_PP2_E_SPACE;

    uint8_t *p = out;
    memcpy(p, pp2_sig, sizeof(pp2_sig));
    p += sizeof(pp2_sig);
    *p++ = PP2_VERSION_PROXY;
    *p++ = fam;
    *p++ = (uint8_t)(body >> 8);
    *p++ = (uint8_t)body;
    if (fam == PP2_FAM_TCP4) {
        /* Section 2.2: src_addr, dst_addr, src_port, dst_port. */
        (void)as_v4(src, p, p + 8);
        (void)as_v4(dst, p + 4, p + 10);
        p += PP2_ADDR_LEN_TCP4;
    } else if (fam == PP2_FAM_TCP6) {
        addr16(src, p, p + 32);
        addr16(dst, p + 16, p + 34);
        p += PP2_ADDR_LEN_TCP6;
    }
    if (ssl_val) {
        /* Section 2.2.6: struct pp2_tlv_ssl { uint8_t client; uint32_t verify; sub-TLVs }. */
        p = put_tlv_head(p, GW_PP2_TYPE_SSL, ssl_val);
        *p++ = ssl->client;
        *p++ = (uint8_t)(ssl->verify >> 24);
        *p++ = (uint8_t)(ssl->verify >> 16);
        *p++ = (uint8_t)(ssl->verify >> 8);
        *p++ = (uint8_t)ssl->verify;
        p = put_sub(p, GW_PP2_SUBTYPE_SSL_VERSION, ssl->version);
        p = put_sub(p, GW_PP2_SUBTYPE_SSL_CN, ssl->cn);
        p = put_sub(p, GW_PP2_SUBTYPE_SSL_CIPHER, ssl->cipher);
        p = put_sub(p, GW_PP2_SUBTYPE_SSL_SIG_ALG, ssl->sig_alg);
        p = put_sub(p, GW_PP2_SUBTYPE_SSL_KEY_ALG, ssl->key_alg);
    }
    if (cert_tlv) {
        p = put_tlv_head(p, GW_PP2_TYPE_CLIENT_CERT, ssl->cert_len);
        memcpy(p, ssl->cert_der, ssl->cert_len);
    }
    return 0;
}

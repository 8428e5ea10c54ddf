/* fuzz_proxy_v2.c - fuzz target for the PROXY protocol v2 encoder (gateway/proxy_v2.c): addresses of
 * any family and TLS facts of any length (a client's certificate CN and the certificate itself are the
 * client's bytes), checked by an independent decoder written here from the specification
 * (haproxy.org, doc/proxy-protocol.txt, 2.2).
 *
 * libFuzzer: make fuzz FUZZ_TIME=600; replay: make fuzz-replay.
 *
 * Input: family selectors, 2 x 18 address bytes, flags, then five NUL-separated strings (version,
 * CN, cipher, signature and key algorithms) and the rest as the certificate. Checked:
 *  - the result is 0, GW_PP2_E_SPACE with the exact size needed (then it fits in that size), or
 *    GW_PP2_E_TOO_LONG only when the facts cannot fit the format's 16-bit lengths;
 *  - the header decodes: signature, version 2 PROXY, the family chosen by the documented rule, a
 *    length that covers exactly the addresses and TLVs, each TLV inside its parent;
 *  - what decodes is what went in: addresses and ports, client flags, verify, each non-empty string
 *    as its sub-TLV, the certificate as TLV 0xE0.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/proxy_v2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_proxy_v2: %s:%d: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const uint8_t SIG[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* An address of family sel (0: IPv4, 1: IPv6, 2: IPv4-mapped IPv6, 3: AF_UNIX) from 18 bytes. */
static socklen_t make_addr(uint8_t sel, const uint8_t b[18], struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    switch (sel % 4) {
    case 0: {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, b, 4);
        memcpy(&in->sin_port, b + 16, 2);
        return sizeof(*in);
    }
    case 1:
    case 2: {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, b, 16);
        if (sel % 4 == 2) {
            memset(&in6->sin6_addr, 0, 10);
            in6->sin6_addr.s6_addr[10] = in6->sin6_addr.s6_addr[11] = 0xff;
        }
        memcpy(&in6->sin6_port, b + 16, 2);
        return sizeof(*in6);
    }
    default:
        ss->ss_family = AF_UNIX;
        return sizeof(sa_family_t);
    }
}

/* The 16 bytes an address contributes on the wire as IPv6, and whether it is IPv4 (plain or mapped). */
static int as_v6(const struct sockaddr_storage *ss, uint8_t out[16], uint8_t port[2])
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        memcpy(out, mapped, 12);
        memcpy(out + 12, &in->sin_addr, 4);
        memcpy(port, &in->sin_port, 2);
        return 1;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    memcpy(out, &in6->sin6_addr, 16);
    memcpy(port, &in6->sin6_port, 2);
    return memcmp(out, mapped, 12) == 0;
}

static const uint8_t *find_sub(const uint8_t *p, size_t n, uint8_t type, size_t *len)
{
    size_t off = 0;
    while (off + 3 <= n) {
        size_t l = (size_t)p[off + 1] << 8 | p[off + 2];
        CHECK(off + 3 + l <= n);
        if (p[off] == type) {
            *len = l;
            return p + off + 3;
        }
        off += 3 + l;
    }
    CHECK(off == n);
    return NULL;
}

static void check_string(const uint8_t *ssl, size_t n, uint8_t type, const char *want)
{
    size_t l = 0;
    const uint8_t *v = find_sub(ssl, n, type, &l);
    if (want == NULL || want[0] == '\0') {
        CHECK(v == NULL);
        return;
    }
    CHECK(v != NULL && l == strlen(want) && memcmp(v, want, l) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage src, dst;
    struct gw_pp2_ssl ssl;
    const char *strs[5] = { NULL };
    uint8_t *out;
    size_t len = 0, off = 40;

    if (size < 42)
        return 0;
    make_addr(data[0], data + 2, &src);
    make_addr(data[1], data + 20, &dst);
    memset(&ssl, 0, sizeof(ssl));
    ssl.present = data[38] & 1;
    ssl.client = data[38] >> 1 & 7;
    ssl.verify = data[39];
    /* Five strings, each up to a NUL; the rest is the certificate (absent when empty). */
    char *copy = malloc(size - off + 1);
    CHECK(copy != NULL);
    memcpy(copy, data + off, size - off);
    copy[size - off] = '\0';
    size_t pos = 0, total = size - off;
    for (int i = 0; i < 5 && pos <= total; i++) {
        strs[i] = copy + pos;
        pos += strlen(copy + pos) + 1;
    }
    ssl.version = strs[0];
    ssl.cn = strs[1];
    ssl.cipher = strs[2];
    ssl.sig_alg = strs[3];
    ssl.key_alg = strs[4];
    if (pos < total) {
        ssl.cert_der = (const uint8_t *)copy + pos;
        ssl.cert_len = total - pos;
    }
    const struct gw_pp2_ssl *sp = data[38] & 0x80 ? NULL : &ssl;

    /* Too small a buffer first: the exact size is reported. */
    uint8_t small[16];
    int rc = gw_pp2_encode((struct sockaddr *)&src, (struct sockaddr *)&dst, sp, small, sizeof(small), &len);
    if (rc == GW_PP2_E_TOO_LONG) {
        free(copy);
        return 0;
    }
    CHECK((rc == GW_PP2_E_SPACE && len > sizeof(small) && len <= GW_PP2_HEADER_MAX) ||
          (rc == 0 && len == GW_PP2_HEADER_FIXED));
    size_t need = len;
    out = malloc(need);
    CHECK(out != NULL);
    rc = gw_pp2_encode((struct sockaddr *)&src, (struct sockaddr *)&dst, sp, out, need, &len);
    CHECK(rc == 0 && len == need);

    /* Decode. */
    CHECK(memcmp(out, SIG, 12) == 0);
    CHECK(out[12] == 0x21); /* version 2, PROXY */
    size_t body = (size_t)out[14] << 8 | out[15];
    CHECK(GW_PP2_HEADER_FIXED + body == len);
    uint8_t s6[16], d6[16], sport[2], dport[2];
    int fam = out[13], inet = src.ss_family != AF_UNIX && dst.ss_family != AF_UNIX;
    int s4 = inet && as_v6(&src, s6, sport), d4 = inet && as_v6(&dst, d6, dport);
    size_t alen;
    if (!inet) {
        CHECK(fam == 0x00);
        alen = 0;
    } else if (s4 && d4) {
        CHECK(fam == 0x11);
        alen = 12;
        CHECK(memcmp(out + 16, s6 + 12, 4) == 0 && memcmp(out + 20, d6 + 12, 4) == 0);
        CHECK(memcmp(out + 24, sport, 2) == 0 && memcmp(out + 26, dport, 2) == 0);
    } else {
        CHECK(fam == 0x21);
        alen = 36;
        CHECK(memcmp(out + 16, s6, 16) == 0 && memcmp(out + 32, d6, 16) == 0);
        CHECK(memcmp(out + 48, sport, 2) == 0 && memcmp(out + 50, dport, 2) == 0);
    }
    CHECK(body >= alen);
    const uint8_t *tlvs = out + 16 + alen;
    size_t ntlv = body - alen, l = 0;
    const uint8_t *t_ssl = find_sub(tlvs, ntlv, GW_PP2_TYPE_SSL, &l);
    size_t l_cert = 0;
    const uint8_t *t_cert = find_sub(tlvs, ntlv, GW_PP2_TYPE_CLIENT_CERT, &l_cert);
    if (sp == NULL || !ssl.present) {
        CHECK(t_ssl == NULL && t_cert == NULL);
    } else {
        CHECK(t_ssl != NULL && l >= 5);
        CHECK(t_ssl[0] == ssl.client);
        CHECK(((uint32_t)t_ssl[1] << 24 | (uint32_t)t_ssl[2] << 16 | (uint32_t)t_ssl[3] << 8 | t_ssl[4]) == ssl.verify);
        check_string(t_ssl + 5, l - 5, GW_PP2_SUBTYPE_SSL_VERSION, ssl.version);
        check_string(t_ssl + 5, l - 5, GW_PP2_SUBTYPE_SSL_CN, ssl.cn);
        check_string(t_ssl + 5, l - 5, GW_PP2_SUBTYPE_SSL_CIPHER, ssl.cipher);
        check_string(t_ssl + 5, l - 5, GW_PP2_SUBTYPE_SSL_SIG_ALG, ssl.sig_alg);
        check_string(t_ssl + 5, l - 5, GW_PP2_SUBTYPE_SSL_KEY_ALG, ssl.key_alg);
        if (ssl.cert_der == NULL)
            CHECK(t_cert == NULL);
        else
            CHECK(t_cert != NULL && l_cert == ssl.cert_len && memcmp(t_cert, ssl.cert_der, l_cert) == 0);
    }
    free(out);
    free(copy);
    return 0;
}

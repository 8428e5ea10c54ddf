/* test_proxy_v2.c - unit tests for gateway/proxy_v2.c: the PROXY protocol v2 encoder, byte by byte
 * against the layout of haproxy.org doc/proxy-protocol.txt section 2.2, for IPv4, IPv6, each TLV,
 * a certificate of several KB, and the refusals (too small a buffer, lengths past 16 bits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "gateway/proxy_v2.h"

static const uint8_t SIG[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
    struct sockaddr_in s;
    memset(&s, 0, sizeof(s));
    s.sin_family = AF_INET;
    s.sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &s.sin_addr), 1);
    return s;
}

static struct sockaddr_in6 v6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 s;
    memset(&s, 0, sizeof(s));
    s.sin6_family = AF_INET6;
    s.sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, ip, &s.sin6_addr), 1);
    return s;
}

#define SA(x) ((const struct sockaddr *)&(x))

/* ---- a small decoder, to check TLVs one by one ---- */

struct tlv {
    uint8_t type;
    size_t len;
    const uint8_t *val;
};

/* Splits buf[0..len) into TLVs; returns their count, fails the test on a length that overruns. */
static size_t tlvs_split(const uint8_t *buf, size_t len, struct tlv *out, size_t max)
{
    size_t n = 0, off = 0;
    while (off < len) {
        assert_true(off + 3 <= len);
        assert_true(n < max);
        out[n].type = buf[off];
        out[n].len = (size_t)buf[off + 1] << 8 | buf[off + 2];
        out[n].val = buf + off + 3;
        assert_true(off + 3 + out[n].len <= len);
        off += 3 + out[n].len;
        n++;
    }
    return n;
}

static void assert_tlv_str(const struct tlv *t, uint8_t type, const char *s)
{
    assert_int_equal(t->type, type);
    assert_int_equal(t->len, strlen(s));
    assert_memory_equal(t->val, s, strlen(s));
}

static const char CERT_FILL = 0x5A;

static struct gw_pp2_ssl full_ssl(void)
{
    struct gw_pp2_ssl s = {
        .present = 1,
        .client = GW_PP2_CLIENT_SSL | GW_PP2_CLIENT_CERT_CONN | GW_PP2_CLIENT_CERT_SESS,
        .verify = 0,
        .version = "TLSv1.3",
        .cn = "client-good",
        .cipher = "TLS_AES_128_GCM_SHA256",
        .sig_alg = "ecdsa-with-SHA256",
        .key_alg = "id-ecPublicKey",
    };
    return s;
}

/* ---- addresses ---- */

static void test_ipv4_no_tlv(void **state)
{
    (void)state;
    struct sockaddr_in src = v4("192.0.2.10", 51000), dst = v4("198.51.100.1", 9444);
    uint8_t buf[64];
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), NULL, buf, sizeof(buf), &len), 0);
    static const uint8_t want[] = {
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, /* signature */
        0x21,                                                                   /* v2, PROXY */
        0x11,                                                                   /* TCP over IPv4 */
        0x00, 0x0C,                                                             /* 12 bytes follow */
        192, 0, 2, 10,                                                          /* src_addr */
        198, 51, 100, 1,                                                        /* dst_addr */
        0xC7, 0x38,                                                             /* src_port 51000 */
        0x24, 0xE4,                                                             /* dst_port 9444 */
    };
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_ipv6_no_tlv(void **state)
{
    (void)state;
    struct sockaddr_in6 src = v6("2001:db8::1", 1), dst = v6("2001:db8:0:1::ff", 65535);
    uint8_t buf[64];
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), NULL, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, 16 + 36);
    assert_memory_equal(buf, SIG, 12);
    assert_int_equal(buf[12], 0x21);
    assert_int_equal(buf[13], 0x21); /* TCP over IPv6 */
    assert_int_equal(buf[14], 0);
    assert_int_equal(buf[15], 36);
    static const uint8_t s6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
    static const uint8_t d6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff };
    assert_memory_equal(buf + 16, s6, 16);
    assert_memory_equal(buf + 32, d6, 16);
    assert_int_equal(buf[48], 0x00);
    assert_int_equal(buf[49], 0x01);
    assert_int_equal(buf[50], 0xFF);
    assert_int_equal(buf[51], 0xFF);
}

/* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; the header says TCP over IPv4. */
static void test_v4_mapped_is_ipv4(void **state)
{
    (void)state;
    struct sockaddr_in6 src = v6("::ffff:10.0.0.7", 4000), dst = v6("::ffff:10.0.0.1", 443);
    uint8_t buf[64];
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), NULL, buf, sizeof(buf), &len), 0);
    static const uint8_t want[] = { 0x11, 0x00, 0x0C, 10, 0, 0, 7, 10, 0, 0, 1, 0x0F, 0xA0, 0x01, 0xBB };
    assert_int_equal(len, 28);
    assert_memory_equal(buf + 13, want, sizeof(want));
}

/* One IPv4 and one IPv6 address: both written as IPv6, the IPv4 one mapped (RFC 4291 2.5.5.2). */
static void test_mixed_families(void **state)
{
    (void)state;
    struct sockaddr_in src = v4("203.0.113.5", 80);
    struct sockaddr_in6 dst = v6("2001:db8::2", 8443);
    uint8_t buf[64];
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), NULL, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, 52);
    assert_int_equal(buf[13], 0x21);
    static const uint8_t mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 5 };
    assert_memory_equal(buf + 16, mapped, 16);
    assert_int_equal(buf[48], 0);
    assert_int_equal(buf[49], 80);
}

/* Not an IP connection: AF_UNSPEC, no address block; TLVs still follow. */
static void test_unspec_family(void **state)
{
    (void)state;
    struct sockaddr_un src, dst;
    memset(&src, 0, sizeof(src));
    memset(&dst, 0, sizeof(dst));
    src.sun_family = dst.sun_family = AF_UNIX;
    uint8_t buf[128];
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), NULL, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, 16);
    assert_int_equal(buf[13], 0x00);
    assert_int_equal(buf[14], 0);
    assert_int_equal(buf[15], 0);
    struct gw_pp2_ssl s = { .present = 1, .client = GW_PP2_CLIENT_SSL, .version = "TLSv1.2" };
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, 16 + 3 + 5 + 3 + 7);
    assert_int_equal(buf[15], 18);
    assert_int_equal(buf[16], 0x20);
}

/* ---- TLVs ---- */

static void test_ssl_tlv_every_field(void **state)
{
    (void)state;
    struct sockaddr_in src = v4("127.0.0.1", 40000), dst = v4("127.0.0.1", 9444);
    struct gw_pp2_ssl s = full_ssl();
    s.verify = 0x01020304; /* checks the byte order; the gateway only ever sends 0 */
    uint8_t buf[512];
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, sizeof(buf), &len), 0);
    size_t subs = (3 + 7) + (3 + 11) + (3 + 22) + (3 + 17) + (3 + 14);
    size_t body = 12 + 3 + 5 + subs;
    assert_int_equal(len, 16 + body);
    assert_int_equal(buf[14], body >> 8);
    assert_int_equal(buf[15], body & 0xff);

    struct tlv top[4];
    assert_int_equal(tlvs_split(buf + 28, len - 28, top, 4), 1);
    assert_int_equal(top[0].type, GW_PP2_TYPE_SSL);
    assert_int_equal(top[0].len, 5 + subs);
    assert_int_equal(top[0].val[0], 0x07); /* SSL | CERT_CONN | CERT_SESS */
    static const uint8_t verify[4] = { 1, 2, 3, 4 };
    assert_memory_equal(top[0].val + 1, verify, 4);

    struct tlv sub[8];
    assert_int_equal(tlvs_split(top[0].val + 5, top[0].len - 5, sub, 8), 5);
    assert_tlv_str(&sub[0], 0x21, "TLSv1.3");
    assert_tlv_str(&sub[1], 0x22, "client-good");
    assert_tlv_str(&sub[2], 0x23, "TLS_AES_128_GCM_SHA256");
    assert_tlv_str(&sub[3], 0x24, "ecdsa-with-SHA256");
    assert_tlv_str(&sub[4], 0x25, "id-ecPublicKey");
}

/* The whole header of a one-way connection, spelled out: SSL TLV with version and cipher only. */
static void test_ssl_tlv_no_cert_bytes(void **state)
{
    (void)state;
    struct sockaddr_in src = v4("10.1.2.3", 1234), dst = v4("10.9.8.7", 443);
    struct gw_pp2_ssl s = { .present = 1, .client = GW_PP2_CLIENT_SSL, .version = "TLSv1.2", .cn = "",
                            .cipher = "ECDHE-ECDSA-AES128-GCM-SHA256" };
    uint8_t buf[256];
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, sizeof(buf), &len), 0);
    static const uint8_t want[] = {
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
        0x21, 0x11, 0x00, 0x3E,                       /* 12 + 3 + 47 = 62 */
        10, 1, 2, 3, 10, 9, 8, 7, 0x04, 0xD2, 0x01, 0xBB,
        0x20, 0x00, 0x2F,                             /* PP2_TYPE_SSL, 5 + 10 + 32 = 47 */
        0x01,                                         /* PP2_CLIENT_SSL */
        0x00, 0x00, 0x00, 0x00,                       /* verify */
        0x21, 0x00, 0x07, 'T', 'L', 'S', 'v', '1', '.', '2',
        0x23, 0x00, 0x1D, 'E', 'C', 'D', 'H', 'E', '-', 'E', 'C', 'D', 'S', 'A', '-', 'A', 'E', 'S', '1', '2',
        '8', '-', 'G', 'C', 'M', '-', 'S', 'H', 'A', '2', '5', '6',
    };
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

/* present = 0: no TLV at all, whatever else the struct holds. */
static void test_ssl_not_present(void **state)
{
    (void)state;
    struct sockaddr_in src = v4("10.1.2.3", 1), dst = v4("10.9.8.7", 2);
    struct gw_pp2_ssl s = full_ssl();
    s.present = 0;
    uint8_t buf[256];
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, 28);
}

static void test_cert_tlv(void **state)
{
    (void)state;
    struct sockaddr_in src = v4("127.0.0.1", 40000), dst = v4("127.0.0.1", 9444);
    uint8_t der[] = { 0x30, 0x82, 0x01, 0x00, 0xAA, 0xBB };
    struct gw_pp2_ssl s = full_ssl();
    s.cert_der = der;
    s.cert_len = sizeof(der);
    uint8_t buf[512];
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, sizeof(buf), &len), 0);
    struct tlv top[4];
    assert_int_equal(tlvs_split(buf + 28, len - 28, top, 4), 2);
    assert_int_equal(top[0].type, 0x20);
    assert_int_equal(top[1].type, 0xE0);
    assert_int_equal(top[1].len, sizeof(der));
    assert_memory_equal(top[1].val, der, sizeof(der));
    /* The certificate is the last thing in the header. */
    assert_ptr_equal(top[1].val + top[1].len, buf + len);
}

/* A client certificate of several KB (RSA 4096 with extensions, a long chain of names): far past
 * the connection's 16 KiB buffer in the extreme, and the lengths must carry it exactly. */
static void test_long_cert(void **state)
{
    (void)state;
    struct sockaddr_in6 src = v6("2001:db8::1", 5555), dst = v6("2001:db8::2", 443);
    size_t n = 40000;
    uint8_t *der = malloc(n);
    assert_non_null(der);
    memset(der, CERT_FILL, n);
    der[0] = 0x30;
    der[n - 1] = 0x99;
    struct gw_pp2_ssl s = full_ssl();
    s.cert_der = der;
    s.cert_len = n;
    size_t need = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, NULL, 0, &need), GW_PP2_E_SPACE);
    uint8_t *buf = malloc(need);
    assert_non_null(buf);
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, need, &len), 0);
    assert_int_equal(len, need);
    size_t body = len - 16;
    assert_int_equal(((size_t)buf[14] << 8) | buf[15], body);
    struct tlv top[4];
    assert_int_equal(tlvs_split(buf + 52, len - 52, top, 4), 2);
    assert_int_equal(top[1].type, 0xE0);
    assert_int_equal(top[1].len, n);
    assert_memory_equal(top[1].val, der, n);
    free(buf);
    free(der);
}

/* The limits: the body's length is 16 bits; so is each TLV's. Exactly at the limit is fine. */
static void test_length_limits(void **state)
{
    (void)state;
    struct sockaddr_in src = v4("127.0.0.1", 1), dst = v4("127.0.0.1", 2);
    struct gw_pp2_ssl s = { .present = 1, .client = GW_PP2_CLIENT_SSL }; /* SSL TLV: 3 + 5 */
    size_t fixed = 12 + 3 + 5 + 3;                                          /* + cert TLV head */
    size_t n = 65535 - fixed;
    uint8_t *der = calloc(1, 65536);
    uint8_t *buf = malloc(GW_PP2_HEADER_MAX + 1);
    assert_non_null(der);
    assert_non_null(buf);
    s.cert_der = der;
    s.cert_len = n;
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, GW_PP2_HEADER_MAX, &len), 0);
    assert_int_equal(len, GW_PP2_HEADER_MAX);
    assert_int_equal(buf[14], 0xFF);
    assert_int_equal(buf[15], 0xFF);
    s.cert_len = n + 1;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, GW_PP2_HEADER_MAX + 1, &len), GW_PP2_E_TOO_LONG);
    s.cert_len = 65536; /* the TLV itself cannot say it */
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, GW_PP2_HEADER_MAX + 1, &len), GW_PP2_E_TOO_LONG);
    /* A sub-TLV string longer than 16 bits. */
    char *big = malloc(70000);
    assert_non_null(big);
    memset(big, 'a', 69999);
    big[69999] = '\0';
    struct gw_pp2_ssl s2 = { .present = 1, .client = GW_PP2_CLIENT_SSL, .cn = big };
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s2, buf, GW_PP2_HEADER_MAX + 1, &len), GW_PP2_E_TOO_LONG);
    /* Sub-TLVs that each fit but overflow the SSL TLV together. */
    big[40000] = '\0';
    s2.cn = big;
    s2.cipher = big;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s2, buf, GW_PP2_HEADER_MAX + 1, &len), GW_PP2_E_TOO_LONG);
    free(big);
    free(buf);
    free(der);
}

/* Too small a buffer: nothing written, the error, and the size needed. */
static void test_buffer_too_small(void **state)
{
    (void)state;
    struct sockaddr_in src = v4("127.0.0.1", 40000), dst = v4("127.0.0.1", 9444);
    struct gw_pp2_ssl s = full_ssl();
    uint8_t ref[512];
    size_t need = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, ref, sizeof(ref), &need), 0);
    uint8_t buf[512];
    memset(buf, 0xEE, sizeof(buf));
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, need - 1, &len), GW_PP2_E_SPACE);
    assert_int_equal(len, need);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0xEE);
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, 15, &len), GW_PP2_E_SPACE);
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, NULL, 0, &len), GW_PP2_E_SPACE);
    assert_int_equal(len, need);
    /* Exactly enough. */
    assert_int_equal(gw_pp2_encode(SA(src), SA(dst), &s, buf, need, &len), 0);
    assert_memory_equal(buf, ref, need);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct sockaddr_in a = v4("127.0.0.1", 1);
    uint8_t buf[64];
    size_t len = 0;
    assert_int_equal(gw_pp2_encode(NULL, SA(a), NULL, buf, sizeof(buf), &len), GW_PP2_E_ARG);
    assert_int_equal(gw_pp2_encode(SA(a), NULL, NULL, buf, sizeof(buf), &len), GW_PP2_E_ARG);
    assert_int_equal(gw_pp2_encode(SA(a), SA(a), NULL, buf, sizeof(buf), NULL), GW_PP2_E_ARG);
    assert_int_equal(gw_pp2_encode(SA(a), SA(a), NULL, NULL, 10, &len), GW_PP2_E_ARG);
    assert_string_equal(gw_pp2_strerror(0), "success");
    assert_non_null(strstr(gw_pp2_strerror(GW_PP2_E_SPACE), "too small"));
    assert_non_null(strstr(gw_pp2_strerror(GW_PP2_E_TOO_LONG), "16-bit"));
    assert_string_equal(gw_pp2_strerror(-99), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_no_tlv),
        cmocka_unit_test(test_ipv6_no_tlv),
        cmocka_unit_test(test_v4_mapped_is_ipv4),
        cmocka_unit_test(test_mixed_families),
        cmocka_unit_test(test_unspec_family),
        cmocka_unit_test(test_ssl_tlv_every_field),
        cmocka_unit_test(test_ssl_tlv_no_cert_bytes),
        cmocka_unit_test(test_ssl_not_present),
        cmocka_unit_test(test_cert_tlv),
        cmocka_unit_test(test_long_cert),
        cmocka_unit_test(test_length_limits),
        cmocka_unit_test(test_buffer_too_small),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

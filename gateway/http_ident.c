/* http_ident.c - the identity an https listener forwards, gathered once per connection from the
 * finished handshake (wolfSSL) and the socket, then written by gw_http_identity_build (http.h).
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/x509.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway/http.h"

/* Client-Cert-Chain carries at most this many intermediates (verify_depth is at most this). */
#define GW_HTTP_CHAIN_MAX 16

/* The peer's address without its port; IPv4-mapped IPv6 as plain IPv4. */
static void peer_ip(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    buf[0] = '\0';
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        (void)inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            (void)inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], buf, (socklen_t)len);
        else
            (void)inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
    }
}

int gw_http_identity_from_tls(void *vssl, int fd, int auth_required, const struct gw_peer_info *pi,
                              const struct gw_http_names *names, char **out, size_t *len)
{
    WOLFSSL *ssl = vssl;
    char ip[INET6_ADDRSTRLEN];
    const unsigned char *chain[GW_HTTP_CHAIN_MAX];
    size_t chain_len[GW_HTTP_CHAIN_MAX];
    struct gw_http_client cl;

    if (ssl == NULL || pi == NULL || names == NULL)
        return GW_HTTP_E_ARG;
    memset(&cl, 0, sizeof(cl));
    peer_ip(fd, ip, sizeof(ip));
    cl.ip = ip;
    cl.verify = "NONE";
    cl.chain = chain;
    cl.chain_len = chain_len;
    /* A one-way listener asks for no certificate, so it never vouches for one. */
    WOLFSSL_X509 *x = auth_required ? wolfSSL_get_peer_certificate(ssl) : NULL;
    if (x != NULL) {
        int dlen = 0;
        const unsigned char *der = wolfSSL_X509_get_der(x, &dlen);
        /* The handshake finished, so a certificate that was sent passed verification (tls.c); the
         * result is read all the same rather than assumed. */
        if (wolfSSL_get_verify_result(ssl) == X509_V_OK && pi->has_cert && der != NULL && dlen > 0) {
            cl.verified = 1;
            cl.verify = "SUCCESS";
            cl.pi = pi;
            cl.der = der;
            cl.der_len = (size_t)dlen;
        } else {
            cl.verify = "FAILED";
        }
    }
    if (cl.verified && names->client_cert_chain != NULL) {
        /* What the client sent, in its order: the leaf first, then the intermediates (RFC 8446 4.4.2). */
        WOLFSSL_X509_CHAIN *ch = wolfSSL_get_peer_chain(ssl);
        int n = ch != NULL ? wolfSSL_get_chain_count(ch) : 0;
        for (int i = 1; i < n && cl.nchain < GW_HTTP_CHAIN_MAX; i++) {
            const unsigned char *c = wolfSSL_get_chain_cert(ch, i);
            int clen = wolfSSL_get_chain_length(ch, i);
            if (c == NULL || clen <= 0)
                continue;
            chain[cl.nchain] = c;
            chain_len[cl.nchain] = (size_t)clen;
            cl.nchain++;
        }
    }
    int rc = gw_http_identity_build(names, &cl, out, len);
    wolfSSL_X509_free(x);
    return rc;
}

/* tickets.h - TLS session tickets (RFC 5077, RFC 8446 4.6.1) for listeners that take client
 * certificates, with the client's chain kept beside each ticket so that a resumed session can be
 * decided on again (../shared/DESIGN.md fact 6).
 *
 * wolfSSL's own tickets restore the client's chain only from its session cache (33 sessions in this
 * build, each holding the chain inline): a ticket whose session left that cache would resume with
 * no identity at all. Here the ticket's key_name is a random handle into a table of identities
 * (bounded, oldest first out, entries live as long as the ticket's lifetime); a ticket whose handle
 * is gone, expired, or was issued by a listener with another session context is rejected, which
 * makes wolfSSL do a full handshake instead. Tickets are sealed with AES-256-GCM under a key drawn
 * at start (the key_name and IV are the additional data); a restart invalidates them all.
 */
#ifndef HSMGATE_GATEWAY_TICKETS_H
#define HSMGATE_GATEWAY_TICKETS_H

#include <stddef.h>
#include <stdint.h>

#define GW_TICKET_TAG_LEN 20
#define GW_TICKET_LIFETIME_S 300u
#define GW_TICKETS_MAX 20000u

/* Process-wide set-up and tear-down (from gw_tls_global_init / cleanup). */
int gw_tickets_init(void);
void gw_tickets_cleanup(void);

/* Installs the ticket callback on ctx (a WOLFSSL_CTX *). tag (GW_TICKET_TAG_LEN bytes: the
 * listener's session context) must live as long as ctx. Returns 0 or -1. */
int gw_tickets_install(void *ctx, const unsigned char *tag);

/* Serialized chains, as kept in the table and handed to a resumed connection: a sequence of
 * [2-byte big-endian length][DER]. Decodes buf into at most max DER pointers into buf. */
size_t gw_tickets_split(const unsigned char *buf, size_t len, const uint8_t **der, size_t *lens, size_t max);

#endif

/* pop3_server.h - the POP3 front door of alkaid-pop3imapd: ports 110 and 995
 *
 * Owns the struct server with the plain (STLS) and implicit-TLS listeners from [POP3],
 * the shared struct pop3_context its sessions use, and what ctl STATUS reports for
 * POP3. main.c owns the account store and the TLS context and hands them in; IMAP gets
 * a front door of the same shape beside this one.
 *
 * SECURITY: listeners are bound at start-up (so a port in use is reported then); the
 * session caps of [POP3] apply before a session thread reads anything.
 */
#ifndef ALKAID_POP3_SERVER_H
#define ALKAID_POP3_SERVER_H

#include <openssl/ssl.h>

#include "config.h"
#include "sbuf.h"
#include "store.h"

#define POP3_BUSY_REPLY        "-ERR [SYS/TEMP] Too many connections, try again later\r\n"
#define POP3_HANDSHAKE_TIMEOUT 60   /* seconds, at most, for the implicit-TLS handshake */
#define POP3_STOP_GRACE_MS     3000 /* sessions get this long to finish at a stop */

enum pop3_port_kind {
    POP3_PORT_PLAIN = 0, /* 110: plaintext, STLS offered */
    POP3_PORT_TLS = 1,   /* 995: implicit TLS */
};

struct pop3_server;

/* Binds the listeners of cfg->pop3 and starts accepting. tls is referenced, not taken.
 * NULL with *error_r (thread-local or static storage) on failure. */
struct pop3_server *pop3_server_start(const struct alkaid_config *cfg, struct store *store,
                                      SSL_CTX *tls, const char **error_r);
/* Applies a reloaded configuration: limits, timeouts, the new TLS context. Listener
 * addresses and ports take effect at the next start. */
void pop3_server_reload(struct pop3_server *p, const struct alkaid_config *cfg, SSL_CTX *tls);
/* Stops accepting, lets sessions finish for grace_ms, ends the rest, frees. */
void pop3_server_stop(struct pop3_server **p, int grace_ms);
/* Appends ",\"pop3\":{...}" with the counters. */
void pop3_server_status(struct pop3_server *p, struct sbuf *json);

#endif

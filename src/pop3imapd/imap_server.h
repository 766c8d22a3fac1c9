/* imap_server.h - the IMAP front door of alkaid-pop3imapd: ports 143 and 993
 *
 * Owns the struct server with the plain (STARTTLS) and implicit-TLS listeners from
 * [IMAP], the struct imap_context its sessions share, and what ctl STATUS reports for
 * IMAP. main.c owns the account store and the TLS context and hands them in.
 *
 * SECURITY: listeners are bound at start-up; the session caps of [IMAP] apply before a
 * session thread reads anything; the per-user cap is checked at login.
 */
#ifndef ALKAID_IMAP_SERVER_H
#define ALKAID_IMAP_SERVER_H

#include <openssl/ssl.h>
#include <stdbool.h>

#include "config.h"
#include "sbuf.h"
#include "store.h"

#define IMAP_BUSY_REPLY        "* BYE [UNAVAILABLE] Too many connections, try again later\r\n"
#define IMAP_HANDSHAKE_TIMEOUT 60
#define IMAP_STOP_GRACE_MS     3000

struct imap_server;
struct imap_context;

struct imap_server *imap_server_start(const struct alkaid_config *cfg, struct store *store,
                                      SSL_CTX *tls, const char **error_r);
void imap_server_reload(struct imap_server *p, const struct alkaid_config *cfg, SSL_CTX *tls);
void imap_server_stop(struct imap_server **p, int grace_ms);
/* Appends ",\"imap\":{...}". */
void imap_server_status(struct imap_server *p, struct sbuf *json);

/* Counts a session of user; false (nothing counted) if user already has max. */
bool imap_user_enter(struct imap_context *ctx, const char *user, int max);
void imap_user_leave(struct imap_context *ctx, const char *user);

#endif

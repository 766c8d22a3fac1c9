/* ctl.h - the local control channel of a service
 *
 * A Unix socket run/<service>.sock under the root. A client connects, sends one line
 * "COMMAND [ARGUMENT]\n" and reads the reply until the server closes: "OK ..." or
 * "ERR ..." lines, except STATUS, which answers with one JSON object. Only the service's
 * own user (or root) may connect: the peer's credentials are checked on every
 * connection. The protocol is in docs/ctl.md.
 *
 * SECURITY: one bounded line per connection (CTL_MAX_LINE), a short read deadline, and
 * the socket is mode 0600.
 */
#ifndef ALKAID_CTL_H
#define ALKAID_CTL_H

#include "sbuf.h"

#define CTL_MAX_LINE 1024

/* Handles one command (upper-cased) with its argument ("" if none), appending the
 * reply to reply. */
typedef void ctl_handler_fn(const char *command, const char *arg, struct sbuf *reply, void *ctx);

struct ctl_server;

struct ctl_server *ctl_server_start(const char *path, ctl_handler_fn *handler, void *ctx,
                                    const char **error_r);
void ctl_server_stop(struct ctl_server **ctl);
/* Sends command to the socket at path and collects the reply. 0, or -1 with *error_r. */
int ctl_request(const char *path, const char *command, struct sbuf *reply, const char **error_r);
/* The same, waiting at most timeout_ms for each part of the reply (ctl_request: 30 s). */
int ctl_request_timeout(const char *path, const char *command, int timeout_ms, struct sbuf *reply,
                        const char **error_r);

#endif

/* service.h - what every Alkaid daemon does the same way
 *
 * service_main() is the whole life of a service: command line, configuration, logs,
 * the TLS pair, going to the background, the pid file, the ctl socket, reload on SIGHUP
 * or ctl RELOAD, and a graceful stop on SIGTERM or ctl STOP. A service supplies only
 * the hooks in struct service_ops.
 *
 * Command line:  alkaid-<name> --root DIR [--foreground] [--ctl COMMAND]
 * (the root may also come from $ALKAID_ROOT; --ctl sends COMMAND to the running
 * service's ctl socket and prints the reply).
 *
 * SECURITY: configuration errors stop the start-up with a message naming file, section
 * and key; privileges are dropped before the ctl socket is made and before any client
 * connection is read.
 */
#ifndef ALKAID_SERVICE_H
#define ALKAID_SERVICE_H

#include <stdbool.h>

#include "config.h"
#include "log.h"
#include "sbuf.h"
#include "store.h"

struct service_ops {
    const char *name;  /* "smtpd": pid file run/smtpd.pid, socket run/smtpd.sock */
    const char *title; /* "SMTP": "SMTP Service started" */
    enum log_channel channel;
    bool needs_tls;
    /* Opens listeners and starts threads. 0, or -1 with *error_r. */
    int (*start)(const struct alkaid_config *cfg, const char **error_r);
    /* Applies a newly loaded configuration (limits, logging, TLS). */
    int (*reload)(const struct alkaid_config *cfg, const char **error_r);
    /* Stops accepting and ends every session. Also called after start failed half-way,
     * so it must undo whatever part of start had been done. */
    void (*stop)(void);
    /* Appends the service's own STATUS fields (",\"key\":value..."). */
    void (*status)(struct sbuf *json);
    /* A service-specific ctl command: 0 handled (reply appended), -1 unknown. */
    int (*command)(const char *command, const char *arg, struct sbuf *reply);
    /* Extra command-line option handling (e.g. --supervise): 1 consumed, 0 not ours. */
    int (*option)(const char *opt);
};

int service_main(int argc, char **argv, const struct service_ops *ops);
/* The configuration in force now. Each one loaded stays valid until the process exits,
 * so a session may keep the pointer it started with. */
const struct alkaid_config *service_config(void);
/* Seconds since the service started. */
long long service_uptime(void);
/* Opens the account store of cfg and installs the store's shared key for SCRAM's fake
 * salts (password_set_fake_key()). NULL with *error_r on failure. */
struct store *service_open_store(const struct alkaid_config *cfg, const char **error_r);
/* Whether the process runs in the foreground (logs errors to stderr too). */
bool service_foreground(void);

#endif

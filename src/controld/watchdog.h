/* watchdog.h - alkaid-controld keeps alkaid-smtpd and alkaid-pop3imapd running
 *
 * With --supervise, controld starts the two services as its children (the binaries next
 * to its own, each with "--root ROOT --foreground"), reaps them, pings each with ctl
 * STATUS every [Control] WatchdogInterval seconds, and restarts one that exited or failed
 * three pings in a row, with an exponential back-off (1 s, 2 s, 4 s ... 60 s, reset after
 * 60 s of running) when it keeps crashing. Without --supervise it only watches the
 * services the service manager runs: one that stops answering or dies without removing
 * its pid file makes it run [Control] WatchdogRestart (e.g. "systemctl restart
 * alkaid-%s"), or just log when that is empty. Every start, exit and restart is logged
 * on the control channel. docs/ctl.md describes STATUS "watchdog" and RESTART.
 *
 * SECURITY: children and restart commands are started with posix_spawn, never through a
 * shell; the restart command comes only from alkaid.ini and the service name substituted
 * into it is one of two fixed names.
 */
#ifndef ALKAID_WATCHDOG_H
#define ALKAID_WATCHDOG_H

#include "config.h"
#include "sbuf.h"

/* The command-line hook: "--supervise" turns supervision on. 1 consumed, 0 not ours. */
int watchdog_option(const char *opt);
/* Starts the children (when supervising) and the watchdog thread. 0, or -1 with *error_r. */
int watchdog_start(const struct alkaid_config *cfg, const char **error_r);
/* Stops the thread and the children (SIGTERM, up to 10 s, then SIGKILL). */
void watchdog_stop(void);
/* Appends ,"watchdog":{...} to a STATUS reply. */
void watchdog_status(struct sbuf *json);
/* "RESTART <service>": 0 handled (reply appended), -1 not a watchdog command. */
int watchdog_command(const char *command, const char *arg, struct sbuf *reply);

#endif

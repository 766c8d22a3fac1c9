/* dialup.h - the dial-up line: connect on a schedule, flush, ETRN, hang up when idle
 *
 * [DialUp] (docs/dialup.md). While the line is down smtpd's outbound queue is held; at
 * each time of the Schedule (or every Interval) the Connect program runs; once it
 * succeeds smtpd's queue is released (ctl RELEASE, which flushes it), ETRN is sent to
 * ETRNServer for each of ETRNDomains, and when smtpd has had nothing to send for
 * IdleHangup the queue is held again and the Disconnect program runs.
 *
 * SECURITY: Connect and Disconnect come from the administrator's INI; they are split on
 * spaces and run with posix_spawn(), never through a shell, with stdin on /dev/null.
 */
#ifndef ALKAID_DIALUP_H
#define ALKAID_DIALUP_H

#include "config.h"
#include "sbuf.h"

/* Starts the scheduler thread (it idles while [DialUp] Enabled=0). */
int dialup_start(const struct alkaid_config *cfg, const char **error_r);
/* Takes the new settings (the thread reads service_config() on its next turn). */
void dialup_reload(const struct alkaid_config *cfg);
/* Stops the thread; a line that is up is left up (the Disconnect program is not run). */
void dialup_stop(void);
/* JSON members for ctl STATUS (",\"dialup\":{...}"). */
void dialup_status(struct sbuf *json);
/* ctl DIALUP CONNECT | DISCONNECT: 0 handled (reply appended), -1 not a dial-up command. */
int dialup_command(const char *command, const char *arg, struct sbuf *reply);

/* The next time to connect after from (Unix time): the first time of day in minutes[]
 * (minutes after local midnight) strictly after from, or from + interval when that is
 * earlier (interval 0: none). 0 when there is neither. */
long long dialup_next_time(const int *minutes, int n, long long interval, long long from);
/* Splits a command line on spaces into a NULL-terminated argv (xmalloc'ed, one block;
 * free() it). NULL for an empty line. */
char **dialup_split_command(const char *line);

#endif

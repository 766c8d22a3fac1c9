/* queue.h - the FORWARD queue runner: outbound delivery, retries, bounces
 *
 * DESIGN.md step 6. The runner keeps every waiting queue file of mail/FORWARD/ in a
 * schedule (a heap by next try); delivery threads ([Queue] DeliveryThreads) take the
 * files that are due, claim each by locking it and renaming <id>.tmp to <id>.tm$, send
 * it (MX or smarthost, connections reused per destination), and then remove it, rewrite
 * it with the recipients still to do and the next try, or return it to its sender.
 *
 * SECURITY: queue files are ours (written by smtpd), but other servers sharing mail/
 * and the admin tools touch the same directory: a file is only ever sent by whoever
 * holds its lock, so two servers never send it at once.
 */
#ifndef ALKAID_QUEUE_H
#define ALKAID_QUEUE_H

#include <stdbool.h>

#include "config.h"
#include "sbuf.h"

/* Starts the runner: scans mail/FORWARD/ and starts the delivery threads. */
int queue_start(const struct alkaid_config *cfg, const char **error_r);
/* New settings (threads, schedule, TLS, DNS, smarthost) for the next deliveries. */
int queue_reload(const struct alkaid_config *cfg, const char **error_r);
/* Stops the threads (a transmission in progress is cut; its file is sent again later). */
void queue_stop(void);

/* A new <id>.tmp was just written: try it at once. */
void queue_notify(const char *id);
/* ctl FLUSH [id]: every waiting message (or one) now; also rescans the directory. 0, or
 * -1 if id is not in the queue. */
int queue_flush(const char *id);
/* ETRN (RFC 1985): sends now the waiting mail for the ETRN queue domain request ("domain",
 * or "@domain" for it and its subdomains). Recipients of ETRN queue domains are otherwise
 * kept in the queue, not tried (docs/queue.md). The number of messages concerned, or -1
 * if the runner is not running. */
int queue_etrn(const char *request);
/* ctl HOLD / RELEASE: stop or resume all outbound delivery. */
void queue_hold_all(bool hold);
bool queue_is_held(void);
/* JSON members for ctl STATUS (",\"queue\":{...}"). */
void queue_status(struct sbuf *json);

/* The wait before try number attempts+1 after attempts failures, per the schedule. */
long long queue_retry_delay(const long long *schedule, int n, unsigned attempts);

#endif

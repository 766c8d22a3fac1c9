/* bounce.h - delivery status notifications (RFC 3464) and mail made by the server
 *
 * A DSN tells the envelope sender which recipients failed for good (Action: failed) or
 * are still being retried (Action: delayed), with the remote server's reply. It is a
 * multipart/report with the explanation, the machine-readable report and the headers of
 * the original message, sent from the null sender so that it never bounces itself.
 *
 * SECURITY: the original headers are copied as they are (they are data inside a MIME
 * part); remote replies were cleaned of control characters by the SMTP client; the
 * boundary contains the unique queue id, which no header line holds at a line start.
 */
#ifndef ALKAID_BOUNCE_H
#define ALKAID_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "spool.h"

struct bounce_rcpt {
    const char *address;
    const char *status;     /* "5.1.1" */
    const char *remote_mta; /* host name, or NULL */
    const char *diagnostic; /* the remote reply ("550 5.1.1 ..."), or NULL */
    const char *reason;     /* our words, when there was no remote reply */
};

enum bounce_kind { BOUNCE_FAILED, BOUNCE_DELAYED };

/* Builds the DSN for env's message (read from msg_fd at msg_offset) into out. */
void bounce_build(const struct alkaid_config *cfg, enum bounce_kind kind,
                  const struct queue_envelope *env, int msg_fd, uint64_t msg_offset,
                  const struct bounce_rcpt *rcpts, size_t n, const char *dsn_id, struct sbuf *out);

/* Builds and sends the DSN to env->sender (never for the null sender: returns 0).
 * 0 when it is durable (delivered locally or queued), -1 when it could not be made
 * now (the caller keeps the original and tries again later). */
int bounce_send(const struct alkaid_config *cfg, enum bounce_kind kind,
                const struct queue_envelope *env, int msg_fd, uint64_t msg_offset,
                const struct bounce_rcpt *rcpts, size_t n);

/* Delivers a message made by the server (from the null sender) to one address, local
 * or remote, through the normal delivery path. The message is CRLF text without the
 * Return-Path line. 0, or -1 (logged). */
int inject_message(const struct alkaid_config *cfg, const char *rcpt, const char *data, size_t len,
                   char *id_r, size_t id_size);

#endif

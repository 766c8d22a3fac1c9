/* deliver.h - making an accepted message durable in every mailbox and the queue
 *
 * DESIGN.md step 5: the complete, fsynced TEMP file is linked (or copied) into each
 * local mailbox, the remote recipients get one queue file in mail/FORWARD/, every
 * directory touched is fsynced, and only then does the caller say 250. On any failure
 * whatever was already written is taken back and the client gets a 4xx, so it retries
 * without leaving a duplicate behind.
 *
 * SECURITY: quota is checked here against the real size; paths come from resolve.c.
 */
#ifndef ALKAID_DELIVER_H
#define ALKAID_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "resolve.h"
#include "sbuf.h"
#include "spool.h"

struct deliver_request {
    const struct alkaid_config *cfg;
    struct spool_file *temp; /* complete and fsynced */
    uint64_t body_offset;    /* where the copy for remote recipients starts */
    const char *sender;
    const char *auth;   /* authenticated user or NULL */
    const char *client; /* client address */
    const char *ip;     /* for logs */
    struct resolved *rcpts;
    char **rcpt_names; /* the addresses as the client gave them, for logs */
    size_t nrcpts;
    /* non-NULL: temp is already the queue file (mail/FORWARD/<id>.new, only remote
     * recipients, written by spool_queue_begin()); delivering means committing it */
    const struct spool_queue_inplace *inplace;
};

enum deliver_result {
    DELIVER_OK = 0,   /* durable everywhere: reply 250 */
    DELIVER_TEMPFAIL, /* reply 451 (reply_r holds it) */
    DELIVER_PERMFAIL, /* reply 5xx (reply_r holds it), e.g. over quota */
};

/* Delivers; on OK the TEMP file is left for the caller to discard. reply_r gets the
 * reply line to send (without CRLF). */
enum deliver_result deliver_message(const struct deliver_request *req, struct sbuf *reply_r);

#endif

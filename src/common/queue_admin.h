/* queue_admin.h - looking at and changing the FORWARD queue from outside smtpd
 *
 * For alkaid-user queue ... (and the admin port): list the messages waiting, sending and
 * held; show one; delete, hold, release or reschedule one. Every change follows the
 * runner's claim protocol (lock the file, check the name is still that file, then
 * rename or rewrite), so it is safe while smtpd runs: a message being sent right now is
 * reported busy rather than touched.
 *
 * File states by name in mail/FORWARD/: <id>.tmp waiting, <id>.tm$ being sent (or left
 * by a crash), <id>.hold held by an administrator.
 *
 * SECURITY: ids come from the command line: only names of the queue id shape (letters,
 * digits, '.', '_', '-') are accepted, so an id can never name a path outside the
 * queue directory.
 */
#ifndef ALKAID_QUEUE_ADMIN_H
#define ALKAID_QUEUE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"
#include "spool.h"

enum queue_state { QUEUE_WAITING, QUEUE_SENDING, QUEUE_HELD };

struct queue_item {
    enum queue_state state;
    struct queue_envelope env;
};

enum queue_admin_result {
    QUEUE_ADMIN_OK = 0,
    QUEUE_ADMIN_NOTFOUND, /* no such id (or not in a state the operation applies to) */
    QUEUE_ADMIN_BUSY,     /* being sent right now: try again in a moment */
    QUEUE_ADMIN_INVALID,  /* not an id */
    QUEUE_ADMIN_ERROR,    /* I/O error (errno) */
};

const char *queue_state_name(enum queue_state s);
/* Whether id has the shape of a queue id. */
bool queue_id_valid(const char *id);

/* Every readable queue file of dir, oldest first. Damaged files are skipped. */
int queue_admin_list(const char *dir, struct queue_item **items_r, size_t *n_r);
void queue_items_free(struct queue_item *items, size_t n);

/* One message: its envelope, and its header section appended to headers (may be NULL). */
enum queue_admin_result queue_admin_show(const char *dir, const char *id, struct queue_item *item_r,
                                         struct sbuf *headers);
/* Removes a waiting or held message. */
enum queue_admin_result queue_admin_delete(const char *dir, const char *id);
/* Waiting -> held, and back. */
enum queue_admin_result queue_admin_hold(const char *dir, const char *id);
enum queue_admin_result queue_admin_release(const char *dir, const char *id);
/* Makes a waiting message due now (NEXT-TRY 0 in its file). */
enum queue_admin_result queue_admin_retry(const char *dir, const char *id);

#endif

/* deliver.c - making an accepted message durable in every mailbox and the queue
 *
 * The whole commit is: link/copy into each mailbox (no fsync yet), write the queue
 * file (fsynced inside spool_queue_write), fsync each distinct directory once, reply.
 * Hard links make a local copy cost one directory entry whatever the message size.
 *
 * SECURITY: the only inputs are resolved mailbox paths and the TEMP file we wrote.
 */
#include "deliver.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <time.h>

#include "fsutil.h"
#include "log.h"
#include "mailbox.h"
#include "queue.h"
#include "smtpd.h"
#include "xalloc.h"

struct target {
    const struct resolved_mailbox *mb;
    bool delivered;
};

static bool has_dir(char **dirs, size_t n, const char *dir)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(dirs[i], dir) == 0) return true;
    return false;
}

enum deliver_result deliver_message(const struct deliver_request *req, struct sbuf *reply)
{
    struct spool_file *temp = req->temp;
    uint64_t size = temp->size;
    enum deliver_result result = DELIVER_OK;

    /* the distinct mailboxes and remote addresses of all recipients */
    size_t nt = 0, nr = 0, cap_t = 0, cap_r = 0;
    struct target *targets = NULL;
    char **remote = NULL;
    for (size_t i = 0; i < req->nrcpts; i++) {
        const struct resolved *r = &req->rcpts[i];
        for (size_t j = 0; j < r->nmailboxes; j++) {
            bool dup = false;
            for (size_t k = 0; k < nt && !dup; k++)
                dup = strcmp(targets[k].mb->dir, r->mailboxes[j].dir) == 0;
            if (dup) continue;
            if (nt == cap_t) {
                cap_t = cap_t ? cap_t * 2 : 8;
                targets = xreallocarray(targets, cap_t, sizeof(*targets));
            }
            targets[nt].mb = &r->mailboxes[j];
            targets[nt].delivered = false;
            nt++;
        }
        for (size_t j = 0; j < r->nremote; j++) {
            bool dup = false;
            for (size_t k = 0; k < nr && !dup; k++)
                dup = resolve_same_address(remote[k], r->remote[j]);
            if (dup) continue;
            if (nr == cap_r) {
                cap_r = cap_r ? cap_r * 2 : 8;
                remote = xreallocarray(remote, cap_r, sizeof(char *));
            }
            remote[nr++] = r->remote[j];
        }
    }

    /* quota: a message that alone would overfill a mailbox is refused when it has just
     * that one recipient; with several recipients it is delivered (soft quota) */
    for (size_t i = 0; i < nt; i++) {
        const struct resolved_mailbox *mb = targets[i].mb;
        if (mb->quota == 0) continue;
        uint64_t used = mailbox_usage(mb->dir, NULL);
        if (used + size <= mb->quota) continue;
        if (req->nrcpts == 1 && nt == 1 && nr == 0) {
            sbuf_printf(reply, "552 5.2.2 <%s>: Mailbox full (quota exceeded)", mb->address);
            log_line(LOG_SMTP, req->ip,
                     "Refused for %s: over quota (%" PRIu64 " + %" PRIu64 " > %" PRIu64 " bytes)",
                     mb->address, used, size, mb->quota);
            result = DELIVER_PERMFAIL;
            goto out;
        }
        log_line(LOG_SMTP, req->ip, "%s goes over its quota with this message (soft quota)",
                 mb->address);
    }

    /* mailbox copies are links to the TEMP file: it must be durable (the caller syncs
     * it when there are local recipients; this is the safety net) */
    if (nt > 0 && spool_file_sync(temp) < 0) {
        log_error(LOG_SMTP, req->ip, "Cannot write %s: %s", temp->path, strerror(errno));
        sbuf_appends(reply, "451 4.3.0 Error: cannot store the message, try again later");
        result = DELIVER_TEMPFAIL;
        goto out;
    }
    size_t ndirs = 0;
    char **dirs = xcalloc(nt + 2, sizeof(char *));
    for (size_t i = 0; i < nt; i++) {
        const struct resolved_mailbox *mb = targets[i].mb;
        if (mailbox_deliver(mb->dir, temp->id, temp->path, temp->fd) < 0) {
            log_error(LOG_SMTP, req->ip, "Cannot deliver %s to %s: %s", temp->id, mb->dir,
                      strerror(errno));
            goto tempfail;
        }
        targets[i].delivered = true;
        if (!has_dir(dirs, ndirs, mb->dir)) dirs[ndirs++] = (char *)mb->dir;
    }
    char *queue_dir = NULL;
    char *queue_path = NULL;
    if (nr > 0) {
        queue_dir = xasprintf("%s/FORWARD", req->cfg->mail_dir);
        if (req->inplace) {
            if (nt > 0 || spool_queue_commit(temp, queue_dir, req->inplace, &queue_path) < 0) {
                log_error(LOG_SMTP, req->ip, "Cannot queue %s in %s: %s", temp->id, queue_dir,
                          nt > 0 ? "local recipients" : strerror(errno));
                free(queue_dir);
                goto tempfail;
            }
            dirs[ndirs++] = queue_dir;
            goto sync_dirs;
        }
        struct queue_envelope env = {
            .id = (char *)temp->id,
            .created = (long long)time(NULL),
            .sender = (char *)req->sender,
            .auth = (char *)req->auth,
            .client = (char *)req->client,
            .rcpts = remote,
            .nrcpts = nr,
            .size = size - req->body_offset,
        };
        if (spool_queue_write(queue_dir, &env, temp->fd, req->body_offset, &queue_path) < 0) {
            log_error(LOG_SMTP, req->ip, "Cannot queue %s in %s: %s", temp->id, queue_dir,
                      strerror(errno));
            free(queue_dir);
            goto tempfail;
        }
        dirs[ndirs++] = queue_dir;
    }
sync_dirs:
    for (size_t i = 0; i < ndirs; i++) {
        if (fs_fsync_dir_shared(dirs[i]) < 0) {
            log_error(LOG_SMTP, req->ip, "Cannot sync %s: %s", dirs[i], strerror(errno));
            if (queue_path) unlink(queue_path);
            goto tempfail_dirs;
        }
    }
    for (size_t i = 0; i < nt; i++)
        log_line(LOG_SMTP, req->ip, "Delivered %s from <%s> to %s (%" PRIu64 " bytes)", temp->id,
                 req->sender, targets[i].mb->address, size);
    for (size_t i = 0; i < nr; i++)
        log_line(LOG_SMTP, req->ip, "Queued %s from <%s> for %s", temp->id, req->sender, remote[i]);
    SMTPD_COUNT(rcpts_local, nt);
    smtpd_today_add(TODAY_LOCAL_DELIVERIES, nt);
    SMTPD_COUNT(rcpts_remote, nr);
    if (nr > 0) queue_notify(temp->id); /* tried at once */
    sbuf_printf(reply, "250 2.0.0 Ok: queued as %s", temp->id);
    free(queue_path);
    free(queue_dir);
    free(dirs);
    goto out;

tempfail_dirs:
    free(queue_path);
    free(queue_dir);
tempfail:
    for (size_t i = 0; i < nt; i++)
        if (targets[i].delivered) mailbox_undeliver(targets[i].mb->dir, temp->id);
    free(dirs);
    sbuf_reset(reply);
    sbuf_appends(reply, "451 4.3.0 Error: local delivery failed, try again later");
    result = DELIVER_TEMPFAIL;
out:
    free(targets);
    free(remote);
    return result;
}

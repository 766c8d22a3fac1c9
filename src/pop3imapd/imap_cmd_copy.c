/* imap_cmd_copy.c - COPY, UID COPY (RFC 3501 6.4.7), MOVE, UID MOVE (RFC 6851), COPYUID
 *
 * The target must exist ("NO [TRYCREATE]" otherwise). COPY is all or nothing as far as
 * we can tell: if a message of the set has been expunged meanwhile, nothing is copied
 * and the answer is NO [EXPUNGEISSUED] (RFC 2180 4.4.1), except for UID COPY/MOVE, which
 * ignore UIDs that no longer exist (RFC 3501 6.4.8). The copies keep flags,
 * keywords and internal dates (folder_copy; a copy into the selected folder itself goes
 * through folder_append, as the folder is shared and must not be locked twice). The
 * answer carries "[COPYUID uidvalidity source-uids destination-uids]" (RFC 4315).
 *
 * MOVE copies, then expunges the originals, and answers "* OK [COPYUID ...]", the
 * EXPUNGE responses (through the session's updates, which number them correctly) and
 * the tagged OK.
 *
 * SECURITY: the mailbox name is validated (imap_mailbox_arg) before it becomes a path;
 * MOVE in a read-only mailbox is refused.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imap_fetch.h"
#include "imap_session.h"
#include "log.h"
#include "xalloc.h"

/* Copies within one folder, message by message. */
static enum folder_result copy_same(struct folder *f, const uint32_t *uids, size_t n,
                                    uint32_t *new_uids, const char **err_r)
{
    for (size_t i = 0; i < n; i++) {
        new_uids[i] = 0;
        struct folder_msg msg;
        if (folder_get(f, uids[i], &msg) != FOLDER_OK) continue;
        int fd = folder_open_message(f, &msg);
        if (fd < 0) {
            free(msg.file);
            continue;
        }
        enum folder_result r =
            folder_append(f, fd, msg.internaldate, msg.flags, msg.keywords, &new_uids[i], err_r);
        close(fd);
        free(msg.file);
        if (r != FOLDER_OK) return r;
    }
    return FOLDER_OK;
}

void imap_cmd_copy(struct imap_session *s, const struct imap_command *cmd)
{
    bool move = strcmp(cmd->name, "MOVE") == 0;
    if (cmd->nargs != 2 || cmd->args[0].type != IMAP_ARG_ATOM) {
        imap_bad(s, "Syntax: %s%s sequence-set mailbox", cmd->uid ? "UID " : "", cmd->name);
        return;
    }
    if (move && s->readonly) {
        imap_no(s, "Mailbox is read-only");
        return;
    }
    uint32_t *uids = NULL;
    size_t n = 0;
    if (imap_seqset_uids(s, cmd->args[0].str, cmd->uid, &uids, &n) < 0) return;
    char *name = imap_mailbox_arg(s, &cmd->args[1]);
    if (name == NULL) {
        free(uids);
        return;
    }
    struct folder *dst = NULL;
    const char *err = NULL;
    enum folder_result r = folder_open(s->mailbox_dir, name, &dst, &err);
    if (r == FOLDER_NOTFOUND) {
        imap_no(s, "[TRYCREATE] Mailbox does not exist: %.200s", name);
        goto out;
    }
    if (r != FOLDER_OK) {
        imap_folder_error(s, r, err, name);
        goto out;
    }
    /* COPY of an expunged message copies nothing (RFC 2180 4.4.1); UID COPY ignores
     * UIDs that no longer exist (RFC 3501 6.4.8) */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        struct folder_msg msg;
        if (folder_get(s->folder, uids[i], &msg) != FOLDER_OK) {
            if (cmd->uid) continue;
            imap_no(s, "[EXPUNGEISSUED] Some of the requested messages no longer exist");
            goto out;
        }
        free(msg.file);
        uids[kept++] = uids[i];
    }
    n = kept;
    if (n == 0) {
        /* UID COPY of UIDs that are not there: nothing to do (RFC 4315: no COPYUID) */
        imap_ok(s, "%s completed", move ? "Move" : "Copy");
        goto out;
    }
    uint32_t *new_uids = xcalloc(n, sizeof(uint32_t));
    if (dst == s->folder)
        r = copy_same(dst, uids, n, new_uids, &err);
    else
        r = folder_copy(s->folder, uids, n, dst, new_uids, &err);
    if (r != FOLDER_OK) {
        free(new_uids);
        imap_folder_error(s, r, err, name);
        goto out;
    }
    /* the pairs that were copied, in source order */
    uint32_t *src = xcalloc(n, sizeof(uint32_t));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (new_uids[i] == 0) continue;
        src[k] = uids[i];
        new_uids[k] = new_uids[i];
        k++;
    }
    struct sbuf code = SBUF_INIT(SBUF_NO_MAX);
    if (k > 0) {
        sbuf_printf(&code, "[COPYUID %u ", folder_uidvalidity(dst));
        imap_sbuf_set(&code, src, k);
        sbuf_putc(&code, ' ');
        imap_sbuf_set(&code, new_uids, k);
        sbuf_appends(&code, "] ");
    }
    if (move) {
        if (k > 0) {
            r = folder_expunge(s->folder, src, k, &err);
            if (r != FOLDER_OK) {
                /* the copies exist: say so, so that the client does not take it for a
                   MOVE that did nothing */
                log_error(LOG_IMAP, s->ip, "MOVE from %s of %s: cannot expunge: %s", s->selected,
                          s->user, err ? err : "error");
                imap_no(s, "[SERVERBUG] Copied, but the originals could not be removed");
                goto done;
            }
            __atomic_fetch_add(&s->ctx->expunged, k, __ATOMIC_RELAXED);
            imap_send(s, "* OK %sMoved", sbuf_cstr(&code));
        }
        imap_send_updates(s, true);
        imap_ok(s, "Move completed");
    } else {
        imap_ok(s, "%sCopy completed", sbuf_cstr(&code));
    }
done:
    sbuf_free(&code);
    free(src);
    free(new_uids);
out:
    if (dst != NULL) folder_close(&dst);
    free(name);
    free(uids);
}

/* imap_cmd_expunge.c - EXPUNGE (RFC 3501 6.4.3) and UID EXPUNGE (RFC 4315 2.1)
 *
 * Removes the messages flagged \Deleted (for UID EXPUNGE, only those of the UID set),
 * then sends the session's updates with expunges allowed: folder_view_update() numbers
 * each "* n EXPUNGE" relative to the view after the previous one, so the client's
 * sequence numbers stay right, including for messages expunged by other sessions.
 *
 * SECURITY: refused in a read-only (EXAMINE) mailbox.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_session.h"
#include "xalloc.h"

void imap_cmd_expunge(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->uid ? (cmd->nargs != 1 || cmd->args[0].type != IMAP_ARG_ATOM) : cmd->nargs != 0) {
        imap_bad(s, "Syntax: %s", cmd->uid ? "UID EXPUNGE sequence-set" : "EXPUNGE");
        return;
    }
    if (s->readonly) {
        imap_no(s, "Mailbox is read-only");
        return;
    }
    uint32_t *uids = NULL;
    size_t n = 0;
    if (cmd->uid) {
        if (imap_seqset_uids(s, cmd->args[0].str, true, &uids, &n) < 0) return;
    } else if (s->view.count > 0) {
        n = s->view.count;
        uids = xmemdup(s->view.uids, n * sizeof(uint32_t));
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct folder_msg msg;
        if (folder_get(s->folder, uids[i], &msg) != FOLDER_OK) continue;
        if (msg.flags & FOLDER_DELETED) uids[k++] = uids[i];
        free(msg.file);
    }
    if (k > 0) {
        const char *err = NULL;
        enum folder_result r = folder_expunge(s->folder, uids, k, &err);
        if (r != FOLDER_OK) {
            free(uids);
            imap_folder_error(s, r, err, s->selected);
            return;
        }
        __atomic_fetch_add(&s->ctx->expunged, k, __ATOMIC_RELAXED);
    }
    free(uids);
    imap_send_updates(s, true);
    imap_ok(s, "%sEXPUNGE completed", cmd->uid ? "UID " : "");
}

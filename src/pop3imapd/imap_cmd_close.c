/* imap_cmd_close.c - CLOSE (RFC 3501 6.4.2) and UNSELECT (RFC 3691)
 *
 * CLOSE removes the \Deleted messages silently (unless the folder was EXAMINEd), then
 * both leave the selected state.
 *
 * SECURITY: nothing beyond the selected folder is touched.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_session.h"
#include "log.h"
#include "xalloc.h"

void imap_cmd_close(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs) {
        imap_bad(s, "%s takes no arguments", cmd->name);
        return;
    }
    if (strcmp(cmd->name, "CLOSE") == 0 && !s->readonly) {
        uint32_t *uids = xcalloc(s->view.count + 1, sizeof(uint32_t));
        size_t n = 0;
        for (size_t i = 0; i < s->view.count; i++) {
            struct folder_msg msg;
            if (folder_get(s->folder, s->view.uids[i], &msg) != FOLDER_OK) continue;
            if (msg.flags & FOLDER_DELETED) uids[n++] = msg.uid;
            free(msg.file);
        }
        const char *err = NULL;
        if (n && folder_expunge(s->folder, uids, n, &err) != FOLDER_OK)
            log_error(LOG_IMAP, s->ip, "CLOSE of %s: expunge failed: %s", s->selected,
                      err ? err : "error");
        else if (n)
            __atomic_fetch_add(&s->ctx->expunged, n, __ATOMIC_RELAXED);
        free(uids);
    }
    imap_unselect(s);
    imap_ok(s, "%s completed", cmd->name);
}

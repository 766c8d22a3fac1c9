/* imap_cmd_delete.c - DELETE (RFC 3501 6.3.4)
 *
 * INBOX cannot be deleted; a folder with subfolders becomes \Noselect (folder.c). The
 * selected folder cannot be deleted from under the session that has it open.
 *
 * SECURITY: the name is validated before it becomes a path.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_session.h"

void imap_cmd_delete(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs != 1) {
        imap_bad(s, "Syntax: DELETE mailbox");
        return;
    }
    char *name = imap_mailbox_arg(s, &cmd->args[0]);
    if (name == NULL) return;
    const char *err = NULL;
    if (strcmp(name, "INBOX") == 0) {
        imap_no(s, "[CANNOT] INBOX cannot be deleted");
    } else if (s->selected && strcmp(s->selected, name) == 0) {
        imap_no(s, "[INUSE] Close the mailbox before deleting it");
    } else {
        enum folder_result r = folder_delete(s->mailbox_dir, name, &err);
        if (r == FOLDER_OK)
            imap_ok(s, "DELETE completed");
        else
            imap_folder_error(s, r, err, name);
    }
    free(name);
}

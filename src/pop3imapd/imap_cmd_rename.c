/* imap_cmd_rename.c - RENAME (RFC 3501 6.3.5), including INBOX's special case
 *
 * SECURITY: both names are validated before they become paths.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_session.h"

void imap_cmd_rename(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs != 2) {
        imap_bad(s, "Syntax: RENAME from to");
        return;
    }
    char *from = imap_mailbox_arg(s, &cmd->args[0]);
    if (from == NULL) return;
    char *to = imap_mailbox_arg(s, &cmd->args[1]);
    if (to == NULL) {
        free(from);
        return;
    }
    const char *err = NULL;
    if (strcmp(to, "INBOX") == 0) {
        imap_no(s, "[ALREADYEXISTS] INBOX always exists");
    } else if (s->selected && strcmp(s->selected, from) == 0 && strcmp(from, "INBOX") != 0) {
        imap_no(s, "[INUSE] Close the mailbox before renaming it");
    } else {
        enum folder_result r = folder_rename(s->mailbox_dir, from, to, &err);
        if (r == FOLDER_OK)
            imap_ok(s, "RENAME completed");
        else
            imap_folder_error(s, r, err, r == FOLDER_EXISTS ? to : from);
    }
    free(from);
    free(to);
}

/* imap_cmd_subscribe.c - SUBSCRIBE and UNSUBSCRIBE (RFC 3501 6.3.6-7)
 *
 * SECURITY: the name is validated; the subscription list is a file in the mailbox.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_session.h"

void imap_cmd_subscribe(struct imap_session *s, const struct imap_command *cmd)
{
    bool subscribe = strcmp(cmd->name, "SUBSCRIBE") == 0;
    if (cmd->nargs != 1) {
        imap_bad(s, "Syntax: %s mailbox", cmd->name);
        return;
    }
    char *name = imap_mailbox_arg(s, &cmd->args[0]);
    if (name == NULL) return;
    const char *err = NULL;
    enum folder_result r = folder_subscribe(s->mailbox_dir, name, subscribe, &err);
    if (r == FOLDER_OK)
        imap_ok(s, "%s completed", cmd->name);
    else
        imap_folder_error(s, r, err, name);
    free(name);
}

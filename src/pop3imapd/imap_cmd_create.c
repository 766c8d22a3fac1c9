/* imap_cmd_create.c - CREATE (RFC 3501 6.3.3)
 *
 * SECURITY: the name is validated (folder_name_valid()) before it becomes a path.
 */
#include <stdlib.h>

#include "imap_session.h"

void imap_cmd_create(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs != 1) {
        imap_bad(s, "Syntax: CREATE mailbox");
        return;
    }
    char *name = imap_mailbox_arg(s, &cmd->args[0]);
    if (name == NULL) return;
    const char *err = NULL;
    enum folder_result r = folder_create(s->mailbox_dir, name, &err);
    if (r == FOLDER_OK)
        imap_ok(s, "CREATE completed");
    else
        imap_folder_error(s, r, err, name);
    free(name);
}

/* imap_cmd_create.c - CREATE (RFC 3501 6.3.3)
 *
 * SECURITY: the name is validated (folder_name_valid()) before it becomes a path.
 */
#include <stdlib.h>

#include "imap_session.h"
#include "xalloc.h"

void imap_cmd_create(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs != 1) {
        imap_bad(s, "Syntax: CREATE mailbox");
        return;
    }
    /* a trailing delimiter only says that subfolders are meant to follow: ignored
     * (RFC 3501 6.3.3) */
    struct imap_arg arg = cmd->args[0];
    char *trimmed = NULL;
    if (imap_arg_astring(&arg) && arg.len > 1 && arg.str[arg.len - 1] == '/') {
        trimmed = xstrndup(arg.str, arg.len - 1);
        arg.str = trimmed;
        arg.len--;
    }
    char *name = imap_mailbox_arg(s, &arg);
    free(trimmed);
    if (name == NULL) return;
    const char *err = NULL;
    enum folder_result r = folder_create(s->mailbox_dir, name, &err);
    if (r == FOLDER_OK)
        imap_ok(s, "CREATE completed");
    else
        imap_folder_error(s, r, err, name);
    free(name);
}

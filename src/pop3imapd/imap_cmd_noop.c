/* imap_cmd_noop.c - NOOP (RFC 3501 6.1.2) and CHECK (6.4.1)
 *
 * Both do nothing themselves: the dispatcher sends the pending mailbox updates after
 * every command. (Every change is written to disk as it is made, so CHECK has nothing
 * to flush.)
 *
 * SECURITY: no input beyond the argument count.
 */
#include "imap_session.h"

void imap_cmd_noop(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs) imap_bad(s, "%s takes no arguments", cmd->name);
}

void imap_cmd_check(struct imap_session *s, const struct imap_command *cmd)
{
    imap_cmd_noop(s, cmd);
}

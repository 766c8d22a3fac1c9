/* imap_cmd_id.c - ID (RFC 2971)
 *
 * The client's parameters are accepted and ignored (they are logged with the command);
 * we answer with our name only.
 *
 * SECURITY: the argument is a bounded parenthesised list or NIL; nothing is stored.
 */
#include "imap_session.h"

void imap_cmd_id(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs != 1 ||
        (cmd->args[0].type != IMAP_ARG_NIL && cmd->args[0].type != IMAP_ARG_LIST)) {
        imap_bad(s, "Syntax: ID (\"name\" \"value\" ...) or ID NIL");
        return;
    }
    imap_send(s, "* ID (\"name\" \"Alkaid\")");
}

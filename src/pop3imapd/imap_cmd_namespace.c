/* imap_cmd_namespace.c - NAMESPACE (RFC 2342): one personal namespace, "/" delimited
 *
 * SECURITY: no input.
 */
#include "imap_session.h"

void imap_cmd_namespace(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs) {
        imap_bad(s, "NAMESPACE takes no arguments");
        return;
    }
    imap_send(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL");
}

/* imap_cmd_capability.c - CAPABILITY (RFC 3501 6.1.1)
 *
 * SECURITY: what is offered depends on TLS and login state (imap_capabilities()).
 */
#include "imap_session.h"

void imap_cmd_capability(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs) {
        imap_bad(s, "CAPABILITY takes no arguments");
        return;
    }
    struct sbuf caps = SBUF_INIT(SBUF_NO_MAX);
    imap_capabilities(s, &caps);
    imap_send(s, "* CAPABILITY %s", sbuf_cstr(&caps));
    sbuf_free(&caps);
}

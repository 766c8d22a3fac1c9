/* imap_cmd_logout.c - LOGOUT (RFC 3501 6.1.3)
 *
 * SECURITY: nothing to check; the session ends after the tagged OK.
 */
#include "imap_session.h"

void imap_cmd_logout(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs) {
        imap_bad(s, "LOGOUT takes no arguments");
        return;
    }
    imap_send(s, "* BYE Logging out");
    imap_unselect(s);
    s->state = IMAP_STATE_LOGOUT;
    imap_ok(s, "Logout completed");
}

/* imap_cmd_enable.c - ENABLE (RFC 5161); CONDSTORE (RFC 7162) is what can be enabled
 *
 * SECURITY: unknown capability names are ignored, as the RFC says.
 */
#include <strings.h>

#include "imap_session.h"

void imap_cmd_enable(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs == 0) {
        imap_bad(s, "Syntax: ENABLE capability ...");
        return;
    }
    bool condstore = false;
    for (size_t i = 0; i < cmd->nargs; i++) {
        if (cmd->args[i].type != IMAP_ARG_ATOM) {
            imap_bad(s, "ENABLE takes capability names");
            return;
        }
        if (strcasecmp(cmd->args[i].str, "CONDSTORE") == 0) condstore = true;
    }
    if (condstore && !s->condstore) {
        s->condstore = true;
        imap_send(s, "* ENABLED CONDSTORE");
    } else {
        imap_send(s, "* ENABLED");
    }
}

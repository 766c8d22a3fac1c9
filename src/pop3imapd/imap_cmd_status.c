/* imap_cmd_status.c - STATUS (RFC 3501 6.3.10, HIGHESTMODSEQ RFC 7162 3.1.6)
 *
 * SECURITY: the name is validated before it becomes a path.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_session.h"

void imap_cmd_status(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs != 2 || cmd->args[1].type != IMAP_ARG_LIST || cmd->args[1].nitems == 0) {
        imap_bad(s, "Syntax: STATUS mailbox (items)");
        return;
    }
    const struct imap_arg *items = cmd->args[1].items;
    size_t n = cmd->args[1].nitems;
    static const char *const known[] = {"MESSAGES",    "RECENT", "UIDNEXT",
                                        "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ"};
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < 6 && !imap_arg_is_atom(&items[i], known[k]))
            k++;
        if (k == 6) {
            imap_bad(s, "Unknown STATUS item");
            return;
        }
    }
    char *name = imap_mailbox_arg(s, &cmd->args[0]);
    if (name == NULL) return;
    struct folder_status st;
    const char *err = NULL;
    enum folder_result r = folder_status(s->mailbox_dir, name, &st, &err);
    if (r != FOLDER_OK) {
        imap_folder_error(s, r, err, name);
        free(name);
        return;
    }
    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&line, "* STATUS ");
    imap_sbuf_astring(&line, name);
    sbuf_appends(&line, " (");
    for (size_t i = 0; i < n; i++) {
        if (i) sbuf_putc(&line, ' ');
        if (imap_arg_is_atom(&items[i], "MESSAGES"))
            sbuf_printf(&line, "MESSAGES %u", st.messages);
        else if (imap_arg_is_atom(&items[i], "RECENT"))
            sbuf_printf(&line, "RECENT %u", st.recent);
        else if (imap_arg_is_atom(&items[i], "UIDNEXT"))
            sbuf_printf(&line, "UIDNEXT %u", st.uidnext);
        else if (imap_arg_is_atom(&items[i], "UIDVALIDITY"))
            sbuf_printf(&line, "UIDVALIDITY %u", st.uidvalidity);
        else if (imap_arg_is_atom(&items[i], "UNSEEN"))
            sbuf_printf(&line, "UNSEEN %u", st.unseen);
        else
            sbuf_printf(&line, "HIGHESTMODSEQ %llu", (unsigned long long)st.highestmodseq);
    }
    sbuf_putc(&line, ')');
    imap_send(s, "%s", sbuf_cstr(&line));
    sbuf_free(&line);
    free(name);
}

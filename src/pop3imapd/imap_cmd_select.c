/* imap_cmd_select.c - SELECT and EXAMINE (RFC 3501 6.3.1-2, CONDSTORE RFC 7162 3.1.8)
 *
 * SECURITY: the name is validated before it becomes a path; EXAMINE opens a read-only
 * view that claims no \Recent and changes nothing.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_session.h"
#include "xalloc.h"

void imap_cmd_select(struct imap_session *s, const struct imap_command *cmd)
{
    bool examine = strcmp(cmd->name, "EXAMINE") == 0;
    if (cmd->nargs < 1 || cmd->nargs > 2) {
        imap_bad(s, "Syntax: %s mailbox [(CONDSTORE)]", cmd->name);
        return;
    }
    bool condstore = false;
    if (cmd->nargs == 2) {
        const struct imap_arg *p = &cmd->args[1];
        if (p->type != IMAP_ARG_LIST) {
            imap_bad(s, "Syntax: %s mailbox [(CONDSTORE)]", cmd->name);
            return;
        }
        for (size_t i = 0; i < p->nitems; i++) {
            if (!imap_arg_is_atom(&p->items[i], "CONDSTORE")) {
                imap_bad(s, "Unknown %s parameter", cmd->name);
                return;
            }
            condstore = true;
        }
    }
    /* RFC 3501: a failed SELECT leaves no mailbox selected */
    imap_unselect(s);
    char *name = imap_mailbox_arg(s, &cmd->args[0]);
    if (name == NULL) return;
    const char *err = NULL;
    struct folder *f = NULL;
    enum folder_result r = folder_open(s->mailbox_dir, name, &f, &err);
    if (r != FOLDER_OK) {
        imap_folder_error(s, r, err, name);
        free(name);
        return;
    }
    struct folder_status st;
    r = folder_status(s->mailbox_dir, name, &st, &err);
    if (r != FOLDER_OK) {
        folder_close(&f);
        imap_folder_error(s, r, err, name);
        free(name);
        return;
    }
    s->folder = f;
    s->selected = name;
    s->readonly = examine;
    if (condstore) s->condstore = true;
    folder_view_init(&s->view, f, examine);
    s->state = IMAP_STATE_SELECTED;

    imap_send_flags(s);
    imap_send(s, "* %zu EXISTS", s->view.count);
    imap_send(s, "* %zu RECENT", s->view.nrecent);
    for (size_t i = 0; i < s->view.count; i++) {
        struct folder_msg msg;
        if (folder_get(f, s->view.uids[i], &msg) != FOLDER_OK) continue;
        free(msg.file);
        if (!(msg.flags & FOLDER_SEEN)) {
            imap_send(s, "* OK [UNSEEN %zu] First unseen", i + 1);
            break;
        }
    }
    imap_send(s, "* OK [UIDVALIDITY %u] UIDs valid", folder_uidvalidity(f));
    imap_send(s, "* OK [UIDNEXT %u] Predicted next UID", st.uidnext);
    imap_send(s, "* OK [HIGHESTMODSEQ %llu] Highest", (unsigned long long)st.highestmodseq);
    imap_ok(s, "[%s] %s completed", examine ? "READ-ONLY" : "READ-WRITE", cmd->name);
}

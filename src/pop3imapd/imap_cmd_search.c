/* imap_cmd_search.c - SEARCH and UID SEARCH (RFC 3501 6.4.4; RFC 7162 3.1.5 MODSEQ)
 *
 * The program is parsed (imap_search.c) and bound to the folder (keyword names, the
 * view's size); then every message of the view is tested in sequence order. A message's
 * file is mapped only when a key needs its text, and unmapped before the next message.
 * The answer is one "* SEARCH n ..." line (UIDs for UID SEARCH), with "(MODSEQ n)", the
 * highest modseq of the messages found, when the program used MODSEQ.
 *
 * SECURITY: the program's size and depth are bounded by the parser; sequence numbers
 * past the end are BAD; one message is mapped at a time.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_fetch.h"
#include "imap_search.h"
#include "imap_session.h"
#include "xalloc.h"

struct loader {
    struct folder *folder;
    const struct folder_msg *msg;
    struct imap_mapped map;
    bool mapped;
};

static int load_message(void *ctx, const char **data_r, size_t *len_r)
{
    struct loader *l = ctx;
    if (!l->mapped) {
        if (imap_message_map(l->folder, l->msg, &l->map) < 0) return -1;
        l->mapped = true;
    }
    *data_r = l->map.data;
    *len_r = l->map.len;
    return 0;
}

void imap_cmd_search(struct imap_session *s, const struct imap_command *cmd)
{
    struct imap_search_program *prog = NULL;
    const char *error = NULL;
    enum imap_search_result r = imap_search_parse(cmd->args, cmd->nargs, &prog, &error);
    if (r == IMAP_SEARCH_BADCHARSET) {
        imap_no(s, "%s", error);
        return;
    }
    if (r != IMAP_SEARCH_OK) {
        imap_bad(s, "%s", error ? error : "Invalid search program");
        return;
    }
    size_t nk = folder_keyword_count(s->folder);
    const char **names = xcalloc(nk ? nk : 1, sizeof(char *));
    for (size_t i = 0; i < nk; i++)
        names[i] = folder_keyword(s->folder, i);
    int b = imap_search_bind(prog, names, nk, (uint32_t)s->view.count);
    free(names);
    if (b < 0) {
        imap_search_free(&prog);
        imap_bad(s, "Invalid message sequence number (the mailbox has %zu)", s->view.count);
        return;
    }
    if (prog->has_modseq) imap_condstore_enable(s);

    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&line, "* SEARCH");
    uint64_t max_modseq = 0;
    size_t found = 0;
    uint32_t max_uid = s->view.count ? s->view.uids[s->view.count - 1] : 0;
    for (size_t i = 0; i < s->view.count; i++) {
        uint32_t uid = s->view.uids[i];
        struct folder_msg msg;
        if (folder_get(s->folder, uid, &msg) != FOLDER_OK) continue; /* expunged meanwhile */
        struct loader l = {s->folder, &msg, {NULL, 0, NULL, 0}, false};
        struct imap_search_msg m;
        memset(&m, 0, sizeof(m));
        m.msg = &msg;
        m.seq = (uint32_t)(i + 1);
        m.recent = folder_view_is_recent(&s->view, uid);
        m.max_seq = (uint32_t)s->view.count;
        m.max_uid = max_uid;
        m.load = load_message;
        m.load_ctx = &l;
        if (imap_search_match(prog, &m)) {
            sbuf_printf(&line, " %u", cmd->uid ? uid : (uint32_t)(i + 1));
            if (msg.modseq > max_modseq) max_modseq = msg.modseq;
            found++;
        }
        imap_search_msg_done(&m);
        if (l.mapped) imap_message_unmap(&l.map);
        free(msg.file);
    }
    if (prog->has_modseq && found > 0)
        sbuf_printf(&line, " (MODSEQ %llu)", (unsigned long long)max_modseq);
    imap_send(s, "%s", sbuf_cstr(&line));
    sbuf_free(&line);
    imap_search_free(&prog);
    imap_ok(s, "%sSEARCH completed", cmd->uid ? "UID " : "");
}

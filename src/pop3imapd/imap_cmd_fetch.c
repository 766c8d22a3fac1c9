/* imap_cmd_fetch.c - FETCH and UID FETCH (RFC 3501 6.4.5, 6.4.8; RFC 7162 3.1.4)
 *
 * The attributes become a plan (imap_fetch.c); a non-PEEK body fetch first sets \Seen
 * on the messages that lack it (one folder_store for all of them, unless the mailbox is
 * read-only), then each message is rendered in turn: its record read, its file mapped
 * only if the plan needs the text, its response streamed. Those that had \Seen set carry
 * their new FLAGS and are marked reported, so the updates after the command do not
 * repeat them. A message expunged meanwhile by another session is skipped; FETCH then
 * ends NO [EXPUNGEISSUED] (RFC 2180 4.1.3, RFC 5530), UID FETCH OK (RFC 3501 6.4.8).
 *
 * SECURITY: the sequence set is checked against the view (past the end is BAD); one
 * message at a time is mapped, so memory stays bounded by the largest header or MIME
 * tree, not by the size of the messages fetched.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_fetch.h"
#include "imap_session.h"
#include "log.h"
#include "xalloc.h"

void imap_condstore_enable(struct imap_session *s)
{
    if (s->condstore) return;
    s->condstore = true;
    if (s->folder == NULL || s->selected == NULL) return;
    struct folder_status st;
    const char *err = NULL;
    if (folder_status(s->mailbox_dir, s->selected, &st, &err) == FOLDER_OK)
        imap_send(s, "* OK [HIGHESTMODSEQ %llu] Highest", (unsigned long long)st.highestmodseq);
}

static void session_write(void *ctx, const void *data, size_t len)
{
    imap_write(ctx, data, len);
}

static bool contains_u32(const uint32_t *v, size_t n, uint32_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] == x) return true;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Sets \Seen on the messages of uids[0..n) that lack it; their UIDs (ascending) go to
 * *seen_r. */
static void set_seen(struct imap_session *s, const struct imap_fetch_plan *plan,
                     const uint32_t *uids, size_t n, uint32_t **seen_r, size_t *nseen_r)
{
    uint32_t *seen = xcalloc(n ? n : 1, sizeof(uint32_t));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct folder_msg msg;
        if (folder_get(s->folder, uids[i], &msg) != FOLDER_OK) continue;
        bool skip = (msg.flags & FOLDER_SEEN) ||
                    (plan->changedsince && msg.modseq <= plan->changedsince_modseq);
        free(msg.file);
        if (!skip) seen[k++] = uids[i];
    }
    if (k > 0) {
        uint32_t *failed = xcalloc(k, sizeof(uint32_t));
        size_t nfailed = 0;
        const char *err = NULL;
        if (folder_store(s->folder, seen, k, FOLDER_STORE_ADD, FOLDER_SEEN, 0, 0, failed, &nfailed,
                         &err) != FOLDER_OK) {
            log_error(LOG_IMAP, s->ip, "Cannot set \\Seen in %s of %s: %s", s->selected, s->user,
                      err ? err : "error");
            k = 0;
        }
        free(failed);
    }
    *seen_r = seen;
    *nseen_r = k;
}

void imap_cmd_fetch(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs < 2 || cmd->nargs > 3 || cmd->args[0].type != IMAP_ARG_ATOM) {
        imap_bad(s, "Syntax: %sFETCH sequence-set attributes [(CHANGEDSINCE modseq)]",
                 cmd->uid ? "UID " : "");
        return;
    }
    struct imap_fetch_plan plan;
    const char *error = NULL;
    const struct imap_arg *modifiers = cmd->nargs == 3 ? &cmd->args[2] : NULL;
    if (imap_fetch_parse(&cmd->args[1], modifiers, &plan, &error) < 0) {
        imap_bad(s, "%s", error);
        return;
    }
    uint32_t *uids = NULL;
    size_t n = 0;
    if (imap_seqset_uids(s, cmd->args[0].str, cmd->uid, &uids, &n) < 0) {
        imap_fetch_plan_free(&plan);
        return;
    }
    if (plan.want_modseq || plan.changedsince) imap_condstore_enable(s);

    uint32_t *seen = NULL;
    size_t nseen = 0;
    if (plan.sets_seen && !s->readonly) set_seen(s, &plan, uids, n, &seen, &nseen);

    struct imap_fetch_writer w = {session_write, s};
    struct sbuf flags = SBUF_INIT(SBUF_NO_MAX);
    size_t gone = 0, sent = 0;
    for (size_t i = 0; i < n && !s->conn->write_failed; i++) {
        struct folder_msg msg;
        if (folder_get(s->folder, uids[i], &msg) != FOLDER_OK) {
            gone++;
            continue;
        }
        uint32_t seq = folder_view_seq(&s->view, uids[i]);
        if (seq == 0 || (plan.changedsince && msg.modseq <= plan.changedsince_modseq)) {
            free(msg.file);
            continue;
        }
        struct imap_mapped map;
        memset(&map, 0, sizeof(map));
        if (plan.need > 0 && imap_message_map(s->folder, &msg, &map) < 0) {
            free(msg.file);
            gone++;
            continue;
        }
        bool just_seen = nseen > 0 && contains_u32(seen, nseen, uids[i]);
        const char *flags_text = NULL;
        if (plan.want_flags || just_seen) {
            sbuf_reset(&flags);
            imap_sbuf_flags(s, &msg, &flags);
            flags_text = sbuf_cstr(&flags);
            imap_reported(s, uids[i]);
        }
        struct imap_fetch_msg fm = {
            .seq = seq,
            .msg = &msg,
            .flags = flags_text,
            .uid = cmd->uid || s->condstore,
            .modseq = s->condstore,
            .data = plan.need > 0 ? map.data : NULL,
            .len = plan.need > 0 ? map.len : 0,
        };
        imap_fetch_render(&plan, &fm, &w);
        if (plan.need > 0) imap_message_unmap(&map);
        free(msg.file);
        sent++;
    }
    __atomic_fetch_add(&s->ctx->fetched, sent, __ATOMIC_RELAXED);
    sbuf_free(&flags);
    free(seen);
    free(uids);
    imap_fetch_plan_free(&plan);
    /* RFC 3501 6.4.8: UIDs that no longer exist are ignored; a sequence number that
     * stands for an expunged message is reported (RFC 2180 4.1.3) */
    if (gone > 0 && !cmd->uid)
        imap_no(s, "[EXPUNGEISSUED] Some of the requested messages no longer exist");
    else
        imap_ok(s, "%sFETCH completed", cmd->uid ? "UID " : "");
}

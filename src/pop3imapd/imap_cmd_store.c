/* imap_cmd_store.c - STORE and UID STORE (RFC 3501 6.4.6; RFC 7162 3.1.3 UNCHANGEDSINCE)
 *
 *   STORE set [(UNCHANGEDSINCE modseq)] [+|-]FLAGS[.SILENT] (flag ...) | flag ...
 *
 * The change is made for all the messages at once (folder_store); then, unless .SILENT,
 * each message's new flags go out as an untagged FETCH (with UID for UID STORE, and UID
 * and MODSEQ once CONDSTORE is on). With .SILENT and CONDSTORE, messages whose modseq
 * changed still get "FETCH (UID n MODSEQ (m))" (RFC 7162 3.1.3). Messages that failed the
 * UNCHANGEDSINCE test are listed in "OK [MODIFIED set]". Every message answered here is
 * marked reported, so the updates after the command do not repeat it.
 *
 * SECURITY: a read-only (EXAMINE) mailbox is refused before any flag is parsed, as
 * parsing may add keywords to the folder; the set is checked against the view.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_fetch.h"
#include "imap_session.h"
#include "xalloc.h"

static int parse_unchangedsince(const struct imap_arg *list, uint64_t *n_r)
{
    if (list->nitems != 2 || list->items[0].type != IMAP_ARG_ATOM ||
        strcasecmp(list->items[0].str, "UNCHANGEDSINCE") != 0 ||
        list->items[1].type != IMAP_ARG_ATOM)
        return -1;
    const struct imap_arg *v = &list->items[1];
    if (v->len == 0 || v->len > 19) return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (v->str[i] < '0' || v->str[i] > '9') return -1;
        n = n * 10 + (uint64_t)(v->str[i] - '0');
    }
    if (n > INT64_MAX) return -1;
    *n_r = n;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* "+FLAGS.SILENT" and the like. */
static int parse_item(const char *item, enum folder_store_mode *mode_r, bool *silent_r)
{
    *mode_r = FOLDER_STORE_SET;
    if (item[0] == '+') *mode_r = FOLDER_STORE_ADD;
    if (item[0] == '-') *mode_r = FOLDER_STORE_REMOVE;
    if (*mode_r != FOLDER_STORE_SET) item++;
    if (strcasecmp(item, "FLAGS") == 0) {
        *silent_r = false;
        return 0;
    }
    if (strcasecmp(item, "FLAGS.SILENT") == 0) {
        *silent_r = true;
        return 0;
    }
    return -1;
}

void imap_cmd_store(struct imap_session *s, const struct imap_command *cmd)
{
    const struct imap_arg *args = cmd->args;
    size_t i = 1;
    uint64_t unchangedsince = 0;
    bool conditional = false;
    if (cmd->nargs > 1 && args[1].type == IMAP_ARG_LIST) {
        if (parse_unchangedsince(&args[1], &unchangedsince) < 0) {
            imap_bad(s, "Invalid STORE modifier (only UNCHANGEDSINCE is supported)");
            return;
        }
        conditional = true;
        i = 2;
    }
    enum folder_store_mode mode;
    bool silent;
    if (cmd->nargs < i + 2 || args[0].type != IMAP_ARG_ATOM || args[i].type != IMAP_ARG_ATOM ||
        parse_item(args[i].str, &mode, &silent) < 0) {
        imap_bad(s,
                 "Syntax: %sSTORE sequence-set [(UNCHANGEDSINCE modseq)] "
                 "[+|-]FLAGS[.SILENT] (flags)",
                 cmd->uid ? "UID " : "");
        return;
    }
    if (cmd->nargs > i + 2) {
        /* several flags without parentheses: each must be an atom */
        for (size_t k = i + 1; k < cmd->nargs; k++) {
            if (args[k].type != IMAP_ARG_ATOM) {
                imap_bad(s, "Flags must be atoms");
                return;
            }
        }
    }
    if (s->readonly) {
        imap_no(s, "Mailbox is read-only");
        return;
    }
    uint32_t *uids = NULL;
    size_t n = 0;
    if (imap_seqset_uids(s, args[0].str, cmd->uid, &uids, &n) < 0) return;
    uint32_t flags = 0;
    uint64_t keywords = 0;
    for (size_t k = i + 1; k < cmd->nargs; k++) {
        uint32_t f;
        uint64_t kw;
        if (imap_parse_flags(s, &args[k], &f, &kw) < 0) {
            free(uids);
            return;
        }
        flags |= f;
        keywords |= kw;
    }
    if (conditional) imap_condstore_enable(s);

    /* the modseqs before, to tell which messages changed */
    uint64_t *before = xcalloc(n ? n : 1, sizeof(uint64_t));
    for (size_t k = 0; k < n; k++) {
        struct folder_msg msg;
        if (folder_get(s->folder, uids[k], &msg) == FOLDER_OK) {
            before[k] = msg.modseq;
            free(msg.file);
        }
    }
    uint32_t *failed = xcalloc(n ? n : 1, sizeof(uint32_t));
    size_t nfailed = 0;
    if (conditional && unchangedsince == 0) {
        /* RFC 7162 3.1.3: UNCHANGEDSINCE 0 always fails */
        memcpy(failed, uids, n * sizeof(uint32_t));
        nfailed = n;
    } else if (n > 0) {
        const char *err = NULL;
        enum folder_result r =
            folder_store(s->folder, uids, n, mode, flags, keywords,
                         conditional ? unchangedsince : 0, failed, &nfailed, &err);
        if (r != FOLDER_OK) {
            free(before);
            free(failed);
            free(uids);
            imap_folder_error(s, r, err, s->selected);
            return;
        }
    }

    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    size_t gone = 0;
    qsort(failed, nfailed, sizeof(uint32_t), cmp_u32);
    for (size_t k = 0; k < n; k++) {
        if (bsearch(&uids[k], failed, nfailed, sizeof(uint32_t), cmp_u32) != NULL) continue;
        struct folder_msg msg;
        if (folder_get(s->folder, uids[k], &msg) != FOLDER_OK) {
            gone++;
            continue;
        }
        uint32_t seq = folder_view_seq(&s->view, uids[k]);
        bool changed = msg.modseq != before[k];
        if (seq == 0 || (silent && !(s->condstore && changed))) {
            if (seq != 0 && silent) imap_reported(s, uids[k]);
            free(msg.file);
            continue;
        }
        sbuf_reset(&line);
        sbuf_printf(&line, "* %u FETCH (", seq);
        if (cmd->uid || s->condstore) sbuf_printf(&line, "UID %u ", msg.uid);
        if (!silent) {
            imap_sbuf_flags(s, &msg, &line);
            if (s->condstore) sbuf_putc(&line, ' ');
        }
        if (s->condstore) sbuf_printf(&line, "MODSEQ (%llu)", (unsigned long long)msg.modseq);
        sbuf_putc(&line, ')');
        imap_send(s, "%s", sbuf_cstr(&line));
        imap_reported(s, uids[k]);
        free(msg.file);
    }

    if (nfailed > 0) {
        /* MODIFIED lists sequence numbers for STORE, UIDs for UID STORE */
        uint32_t *set = xcalloc(nfailed, sizeof(uint32_t));
        size_t m = 0;
        for (size_t k = 0; k < nfailed; k++) {
            uint32_t v = cmd->uid ? failed[k] : folder_view_seq(&s->view, failed[k]);
            if (v != 0) set[m++] = v;
        }
        qsort(set, m, sizeof(uint32_t), cmp_u32); /* ascending, for the compressed form */
        sbuf_reset(&line);
        imap_sbuf_set(&line, set, m);
        imap_ok(s, "[MODIFIED %s] Conditional STORE failed", sbuf_cstr(&line));
        free(set);
    } else if (gone > 0 && !cmd->uid) { /* UID STORE ignores vanished UIDs (6.4.8) */
        imap_no(s, "[EXPUNGEISSUED] Some of the requested messages no longer exist");
    } else {
        imap_ok(s, "%sSTORE completed", cmd->uid ? "UID " : "");
    }
    sbuf_free(&line);
    free(before);
    free(failed);
    free(uids);
}

/* imap_cmd_list.c - LIST and LSUB (RFC 3501 6.3.8-9), with the selection and return
 * options SPECIAL-USE (RFC 6154) and SUBSCRIBED, and CHILDREN (RFC 3348) attributes
 *
 * Patterns: '*' matches anything, '%' anything but the delimiter '/'. Matching is a
 * bounded dynamic programme (pattern x name), never backtracking.
 *
 * SECURITY: patterns are capped at IMAP_LIST_MAX_PATTERN octets; names come from
 * folder_list(), i.e. from the user's own mailbox directory.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_session.h"
#include "xalloc.h"

#define IMAP_LIST_MAX_PATTERN 512

/* Whether name matches pattern ('*', '%'; INBOX case-insensitive). */
static bool list_match(const char *pattern, const char *name)
{
    size_t pl = strlen(pattern), nl = strlen(name);
    /* row[j]: pattern[0..i) matches name[0..j) */
    bool *row = xcalloc(nl + 1, sizeof(bool)), *next = xcalloc(nl + 1, sizeof(bool));
    row[0] = true;
    for (size_t i = 0; i < pl; i++) {
        char pc = pattern[i];
        memset(next, 0, (nl + 1) * sizeof(bool));
        if (pc == '*' || pc == '%') {
            bool reach = false;
            for (size_t j = 0; j <= nl; j++) {
                if (row[j]) reach = true;
                next[j] = reach;
                if (pc == '%' && j < nl && name[j] == '/') reach = false;
            }
        } else {
            for (size_t j = 0; j < nl; j++) {
                char nc = name[j];
                bool same = pc == nc;
                /* "INBOX" at the start of a name matches in any case */
                if (!same && j < 5 && strncasecmp(name, "INBOX", 5) == 0 &&
                    (name[5] == '\0' || name[5] == '/'))
                    same = (pc | 0x20) == (nc | 0x20);
                next[j + 1] = row[j] && same;
            }
        }
        bool *t = row;
        row = next;
        next = t;
    }
    bool m = row[nl];
    free(row);
    free(next);
    return m;
}

static bool name_in(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return true;
    return false;
}

static void lsub_line(struct imap_session *s, const char *name, bool noselect)
{
    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    sbuf_printf(&line, "* LSUB (%s) \"/\" ", noselect ? "\\Noselect" : "");
    imap_sbuf_astring(&line, name);
    imap_send(s, "%s", sbuf_cstr(&line));
    sbuf_free(&line);
}

/* LSUB: the subscription list, whether or not the folders exist (RFC 3501 6.3.9); with
 * '%', an unsubscribed parent of a subscribed name is listed as \Noselect. */
static void list_subscriptions(struct imap_session *s, const char *pattern)
{
    char **subs = NULL, **shown = NULL;
    size_t n = 0, nshown = 0;
    struct folder_info *list = NULL;
    size_t nlist = 0;
    const char *err = NULL;
    enum folder_result r = folder_subscriptions(s->mailbox_dir, &subs, &n, &err);
    if (r == FOLDER_OK) r = folder_list(s->mailbox_dir, &list, &nlist, &err);
    if (r != FOLDER_OK) {
        imap_folder_error(s, r, err, "");
        goto out;
    }
    shown = xcalloc(n * 2 + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const char *name = subs[i];
        if (list_match(pattern, name)) {
            bool selectable = false;
            for (size_t k = 0; k < nlist; k++)
                if (strcmp(list[k].name, name) == 0) selectable = !list[k].noselect;
            lsub_line(s, name, !selectable);
            continue;
        }
        if (strchr(pattern, '%') == NULL) continue;
        /* the nearest ancestor the pattern matches stands in for it */
        char *anc = xstrdup(name);
        for (char *slash = strrchr(anc, '/'); slash; slash = strrchr(anc, '/')) {
            *slash = '\0';
            if (!list_match(pattern, anc)) continue;
            if (!name_in(subs, n, anc) && !name_in(shown, nshown, anc)) {
                lsub_line(s, anc, true);
                shown[nshown++] = xstrdup(anc);
            }
            break;
        }
        free(anc);
    }
out:
    for (size_t i = 0; i < nshown; i++)
        free(shown[i]);
    free(shown);
    for (size_t i = 0; i < n; i++)
        free(subs[i]);
    free(subs);
    folder_list_free(&list, nlist);
}

void imap_cmd_list(struct imap_session *s, const struct imap_command *cmd)
{
    bool lsub = strcmp(cmd->name, "LSUB") == 0;
    size_t a = 0;
    bool sel_special = false, sel_subscribed = false, ret_subscribed = false;
    /* LIST-EXTENDED style: (selection options) reference pattern(s) [RETURN (options)] */
    if (!lsub && a < cmd->nargs && cmd->args[a].type == IMAP_ARG_LIST) {
        for (size_t i = 0; i < cmd->args[a].nitems; i++) {
            const struct imap_arg *o = &cmd->args[a].items[i];
            if (imap_arg_is_atom(o, "SPECIAL-USE"))
                sel_special = true;
            else if (imap_arg_is_atom(o, "SUBSCRIBED"))
                sel_subscribed = ret_subscribed = true;
            else if (!imap_arg_is_atom(o, "REMOTE") && !imap_arg_is_atom(o, "RECURSIVEMATCH")) {
                imap_bad(s, "Unknown LIST selection option");
                return;
            }
        }
        a++;
    }
    if (a + 2 > cmd->nargs) {
        imap_bad(s, "Syntax: %s reference mailbox", cmd->name);
        return;
    }
    const char *ref = imap_arg_astring(&cmd->args[a]);
    const struct imap_arg *pat = &cmd->args[a + 1];
    a += 2;
    if (!lsub && a < cmd->nargs) {
        if (a + 2 != cmd->nargs || !imap_arg_is_atom(&cmd->args[a], "RETURN") ||
            cmd->args[a + 1].type != IMAP_ARG_LIST) {
            imap_bad(s, "Syntax: LIST reference mailbox [RETURN (options)]");
            return;
        }
        const struct imap_arg *r = &cmd->args[a + 1];
        for (size_t i = 0; i < r->nitems; i++) {
            if (imap_arg_is_atom(&r->items[i], "SUBSCRIBED"))
                ret_subscribed = true;
            else if (!imap_arg_is_atom(&r->items[i], "SPECIAL-USE") &&
                     !imap_arg_is_atom(&r->items[i], "CHILDREN")) {
                imap_bad(s, "Unknown LIST return option");
                return;
            }
        }
    } else if (a != cmd->nargs) {
        imap_bad(s, "Syntax: %s reference mailbox", cmd->name);
        return;
    }
    if (ref == NULL) {
        imap_bad(s, "Invalid reference");
        return;
    }
    /* one pattern, or a parenthesised list of them (LIST-EXTENDED) */
    const struct imap_arg *pats = pat;
    size_t npats = 1;
    if (pat->type == IMAP_ARG_LIST && !lsub) {
        pats = pat->items;
        npats = pat->nitems;
    }
    for (size_t i = 0; i < npats; i++) {
        const char *p = imap_arg_astring(&pats[i]);
        if (p == NULL || strlen(ref) + strlen(p) > IMAP_LIST_MAX_PATTERN) {
            imap_bad(s, "Invalid or too long mailbox pattern");
            return;
        }
    }
    if (lsub) {
        char *full = xasprintf("%s%s", ref, imap_arg_astring(&pats[0]));
        list_subscriptions(s, full);
        free(full);
        return;
    }
    /* LIST "" "": the hierarchy delimiter */
    if (npats == 1 && *imap_arg_astring(&pats[0]) == '\0' && !lsub) {
        imap_send(s, "* LIST (\\Noselect) \"/\" \"\"");
        return;
    }

    struct folder_info *list = NULL;
    size_t n = 0;
    const char *err = NULL;
    enum folder_result r = folder_list(s->mailbox_dir, &list, &n, &err);
    if (r != FOLDER_OK) {
        imap_folder_error(s, r, err, "");
        return;
    }
    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    for (size_t i = 0; i < n; i++) {
        const struct folder_info *f = &list[i];
        if (sel_subscribed && !f->subscribed) continue;
        if (sel_special && f->special == NULL) continue;
        bool match = false;
        for (size_t k = 0; k < npats && !match; k++) {
            char *full = xasprintf("%s%s", ref, imap_arg_astring(&pats[k]));
            match = list_match(full, f->name);
            free(full);
        }
        if (!match) continue;
        sbuf_reset(&line);
        sbuf_printf(&line, "* %s (", cmd->name);
        if (f->noselect) sbuf_appends(&line, "\\Noselect ");
        sbuf_appends(&line, f->children ? "\\HasChildren" : "\\HasNoChildren");
        if (f->special) sbuf_printf(&line, " %s", f->special);
        if (ret_subscribed && f->subscribed) sbuf_appends(&line, " \\Subscribed");
        sbuf_appends(&line, ") \"/\" ");
        imap_sbuf_astring(&line, f->name);
        imap_send(s, "%s", sbuf_cstr(&line));
    }
    sbuf_free(&line);
    folder_list_free(&list, n);
}

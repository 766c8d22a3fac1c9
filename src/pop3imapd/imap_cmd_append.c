/* imap_cmd_append.c - APPEND (RFC 3501 6.3.11) with APPENDUID (RFC 4315)
 *
 *   APPEND mailbox [(flag ...)] ["dd-Mon-yyyy hh:mm:ss +zzzz"] {size}message
 *
 * The message literal has been streamed by the parser into a temporary file
 * (s->append_fd, size = the argument's len); folder_append() copies it into the target
 * folder durably and gives it the next UID. The temporary file is the session's to
 * remove. A target that does not exist gets "NO [TRYCREATE]"; an empty message or one
 * over [SMTP] MaxMessageSize is refused. When the target is the selected folder, the
 * new message reaches the client through the updates after the command (EXISTS).
 *
 * SECURITY: the mailbox name is validated (imap_mailbox_arg) before it becomes a path;
 * flags are parsed against the target folder (not the selected one); keywords must be
 * atoms of bounded length; the size is checked again here whatever the parser did.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap_search.h"
#include "imap_session.h"
#include "xalloc.h"

#define APPEND_MAX_KEYWORDS FOLDER_MAX_KEYWORDS

struct append_flags {
    uint32_t flags;
    const char *keywords[APPEND_MAX_KEYWORDS];
    size_t nkeywords;
};

static bool keyword_ok(const char *k, size_t len)
{
    if (len == 0 || len > FOLDER_MAX_KEYWORD_LEN) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL) return false;
    }
    return true;
}

/* 0, or -1 after replying BAD/NO. */
static int parse_flags(struct imap_session *s, const struct imap_arg *list, struct append_flags *af)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } sys[] = {{"\\Seen", FOLDER_SEEN},
               {"\\Answered", FOLDER_ANSWERED},
               {"\\Flagged", FOLDER_FLAGGED},
               {"\\Deleted", FOLDER_DELETED},
               {"\\Draft", FOLDER_DRAFT}};
    for (size_t i = 0; i < list->nitems; i++) {
        const struct imap_arg *a = &list->items[i];
        if (a->type != IMAP_ARG_ATOM || a->str == NULL) {
            imap_bad(s, "Flags must be atoms");
            return -1;
        }
        if (a->str[0] == '\\') {
            size_t k = 0;
            while (k < sizeof(sys) / sizeof(sys[0]) && strcasecmp(a->str, sys[k].name) != 0)
                k++;
            if (k < sizeof(sys) / sizeof(sys[0]))
                af->flags |= sys[k].bit;
            else if (strcasecmp(a->str, "\\Recent") != 0) {
                imap_bad(s, "Invalid system flag %.40s", a->str);
                return -1;
            }
            continue;
        }
        if (!keyword_ok(a->str, a->len)) {
            imap_bad(s, "Invalid keyword");
            return -1;
        }
        bool dup = false;
        for (size_t k = 0; k < af->nkeywords; k++)
            if (strcasecmp(af->keywords[k], a->str) == 0) dup = true;
        if (dup) continue;
        if (af->nkeywords >= APPEND_MAX_KEYWORDS) {
            imap_no(s, "[LIMIT] Too many keywords");
            return -1;
        }
        af->keywords[af->nkeywords++] = a->str;
    }
    return 0;
}

void imap_cmd_append(struct imap_session *s, const struct imap_command *cmd)
{
    const struct imap_arg *args = cmd->args;
    size_t n = cmd->nargs;
    if (n < 2 || n > 4 || args[n - 1].type != IMAP_ARG_STRING || !args[n - 1].literal) {
        imap_bad(s, "Syntax: APPEND mailbox [(flags)] [date-time] {size}");
        return;
    }
    const struct imap_arg *message = &args[n - 1];
    struct append_flags af;
    memset(&af, 0, sizeof(af));
    time_t date = time(NULL);
    size_t i = 1;
    if (i < n - 1 && args[i].type == IMAP_ARG_LIST) {
        if (parse_flags(s, &args[i], &af) < 0) return;
        i++;
    }
    if (i < n - 1) {
        if (args[i].type != IMAP_ARG_STRING || args[i].str == NULL ||
            imap_parse_datetime(args[i].str, args[i].len, &date) < 0) {
            imap_bad(s, "Invalid date-time in APPEND");
            return;
        }
        i++;
    }
    if (i != n - 1) {
        imap_bad(s, "Syntax: APPEND mailbox [(flags)] [date-time] {size}");
        return;
    }
    if (message->sunk && s->append_fd < 0) {
        imap_no(s, "[SERVERBUG] The message was not received");
        return;
    }
    if (message->len == 0) {
        imap_no(s, "Empty messages cannot be appended");
        return;
    }
    if (s->cfg->max_message_size > 0 && message->len > s->cfg->max_message_size) {
        imap_no(s, "[TOOBIG] Message too large (the limit is %llu octets)",
                (unsigned long long)s->cfg->max_message_size);
        return;
    }
    char *name = imap_mailbox_arg(s, &args[0]);
    if (name == NULL) return;
    struct folder *dst = NULL;
    const char *err = NULL;
    enum folder_result r = folder_open(s->mailbox_dir, name, &dst, &err);
    if (r == FOLDER_NOTFOUND) {
        imap_no(s, "[TRYCREATE] Mailbox does not exist: %.200s", name);
        free(name);
        return;
    }
    if (r != FOLDER_OK) {
        imap_folder_error(s, r, err, name);
        free(name);
        return;
    }
    uint32_t uid = 0;
    if (message->sunk) {
        uint64_t keywords = 0;
        for (size_t k = 0; k < af.nkeywords; k++) {
            int bit = folder_keyword_bit(dst, af.keywords[k]);
            if (bit < 0) {
                imap_no(s, "[LIMIT] Too many keywords in this mailbox");
                goto out;
            }
            keywords |= (uint64_t)1 << bit;
        }
        r = folder_append(dst, s->append_fd, date, af.flags, keywords, &uid, &err);
    } else {
        r = folder_append_data(dst, message->str, message->len, date, af.flags, af.keywords,
                               af.nkeywords, &uid, &err);
    }
    if (r != FOLDER_OK) {
        imap_folder_error(s, r, err, name);
        goto out;
    }
    __atomic_fetch_add(&s->ctx->appended, 1, __ATOMIC_RELAXED);
    imap_ok(s, "[APPENDUID %u %u] APPEND completed", folder_uidvalidity(dst), uid);
out:
    folder_close(&dst);
    free(name);
}

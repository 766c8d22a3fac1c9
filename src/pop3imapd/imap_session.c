/* imap_session.c - one IMAP4rev1 connection, greeting to LOGOUT
 *
 * The read loop feeds the parser, answers synchronizing literals with a continuation,
 * runs each complete command through the registry, and after each command sends the
 * mailbox updates allowed at that point and the tagged response. APPEND's message
 * literal is streamed by the parser into a temporary file under temp/.
 *
 * SECURITY: every byte read here is from the network. Commands are bounded by the
 * parser's limits (tighter before login); a whole command must arrive within the
 * autologout time ([IMAP] Timeout), with the clock restarted only by real progress;
 * after STARTTLS the parser is reset and anything buffered in plaintext is discarded
 * (CVE-2021-33515 family); credentials are never logged.
 */
#include "imap_session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fsutil.h"
#include "imap_server.h"
#include "log.h"
#include "service.h"
#include "spool.h"
#include "xalloc.h"

#define IMAP_PROGRESS_OCTETS 4096 /* octets of a command that restart its deadline */

/* ---- responses ------------------------------------------------------------------- */

static void send_line(struct imap_session *s, const char *line, size_t len, bool log)
{
    if (log) log_proto(LOG_IMAP, s->ip, ">>>", line, len);
    conn_write(s->conn, line, len);
    conn_write(s->conn, "\r\n", 2);
}

void imap_send(struct imap_session *s, const char *fmt, ...)
{
    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    va_list ap;
    va_start(ap, fmt);
    sbuf_vprintf(&line, fmt, ap);
    va_end(ap);
    send_line(s, sbuf_cstr(&line), line.len, true);
    sbuf_free(&line);
}

void imap_write(struct imap_session *s, const void *data, size_t len)
{
    conn_write(s->conn, data, len);
}

void imap_writes(struct imap_session *s, const char *str)
{
    conn_write(s->conn, str, strlen(str));
}

/* Whether str can go out as a quoted string: printable 7-bit, not too long. */
static bool quotable(const char *str, size_t len)
{
    if (len > 1024) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)str[i];
        if (c < 0x20 || c > 0x7e) return false;
    }
    return true;
}

void imap_sbuf_string(struct sbuf *out, const char *str, size_t len)
{
    if (str == NULL) {
        sbuf_appends(out, "NIL");
        return;
    }
    if (quotable(str, len)) {
        sbuf_putc(out, '"');
        for (size_t i = 0; i < len; i++) {
            if (str[i] == '"' || str[i] == '\\') sbuf_putc(out, '\\');
            sbuf_putc(out, str[i]);
        }
        sbuf_putc(out, '"');
        return;
    }
    sbuf_printf(out, "{%zu}\r\n", len);
    sbuf_append(out, str, len);
}

void imap_write_string(struct imap_session *s, const char *str, size_t len)
{
    struct sbuf b = SBUF_INIT(SBUF_NO_MAX);
    imap_sbuf_string(&b, str, len);
    imap_write(s, b.data, b.len);
    sbuf_free(&b);
}

void imap_write_nstring(struct imap_session *s, const char *str)
{
    imap_write_string(s, str, str ? strlen(str) : 0);
}

static bool atom_char(unsigned char c)
{
    /* ATOM-CHAR: any CHAR except atom-specials ( ) { SP CTL % * " \ ] */
    return c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

void imap_sbuf_astring(struct sbuf *out, const char *str)
{
    size_t len = strlen(str);
    bool atom = len > 0;
    for (size_t i = 0; i < len && atom; i++)
        atom = atom_char((unsigned char)str[i]);
    if (atom)
        sbuf_append(out, str, len);
    else
        imap_sbuf_string(out, str, len);
}

__attribute__((format(printf, 3, 0))) static void
set_result(struct imap_session *s, const char *result, const char *fmt, va_list ap)
{
    if (s->result) return; /* the first result of a command counts */
    s->result = result;
    sbuf_reset(&s->result_text);
    sbuf_vprintf(&s->result_text, fmt, ap);
}

void imap_ok(struct imap_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_result(s, "OK", fmt, ap);
    va_end(ap);
}

void imap_no(struct imap_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_result(s, "NO", fmt, ap);
    va_end(ap);
}

void imap_bad(struct imap_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_result(s, "BAD", fmt, ap);
    va_end(ap);
}

void imap_reported(struct imap_session *s, uint32_t uid)
{
    if (s->nreported == s->reported_cap) {
        s->reported_cap = s->reported_cap ? s->reported_cap * 2 : 64;
        s->reported = xreallocarray(s->reported, s->reported_cap, sizeof(uint32_t));
    }
    s->reported[s->nreported++] = uid;
}

static bool was_reported(const struct imap_session *s, uint32_t uid)
{
    for (size_t i = 0; i < s->nreported; i++)
        if (s->reported[i] == uid) return true;
    return false;
}

void imap_sbuf_flags(struct imap_session *s, const struct folder_msg *msg, struct sbuf *out)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } sys[] = {{FOLDER_SEEN, "\\Seen"},
               {FOLDER_ANSWERED, "\\Answered"},
               {FOLDER_FLAGGED, "\\Flagged"},
               {FOLDER_DELETED, "\\Deleted"},
               {FOLDER_DRAFT, "\\Draft"}};
    sbuf_appends(out, "FLAGS (");
    size_t start = out->len;
    for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
        if (!(msg->flags & sys[i].bit)) continue;
        if (out->len > start) sbuf_putc(out, ' ');
        sbuf_appends(out, sys[i].name);
    }
    size_t nk = folder_keyword_count(s->folder);
    for (size_t i = 0; i < nk && i < 64; i++) {
        if (!(msg->keywords & ((uint64_t)1 << i))) continue;
        if (out->len > start) sbuf_putc(out, ' ');
        sbuf_appends(out, folder_keyword(s->folder, i));
    }
    if (folder_view_is_recent(&s->view, msg->uid)) {
        if (out->len > start) sbuf_putc(out, ' ');
        sbuf_appends(out, "\\Recent");
    }
    sbuf_putc(out, ')');
}

int imap_parse_flags(struct imap_session *s, const struct imap_arg *arg, uint32_t *flags_r,
                     uint64_t *keywords_r)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } sys[] = {{"\\Seen", FOLDER_SEEN},
               {"\\Answered", FOLDER_ANSWERED},
               {"\\Flagged", FOLDER_FLAGGED},
               {"\\Deleted", FOLDER_DELETED},
               {"\\Draft", FOLDER_DRAFT}};
    const struct imap_arg *items = arg;
    size_t n = 1;
    if (arg->type == IMAP_ARG_LIST) {
        items = arg->items;
        n = arg->nitems;
    }
    *flags_r = 0;
    *keywords_r = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].type != IMAP_ARG_ATOM) {
            imap_bad(s, "Flags must be atoms");
            return -1;
        }
        const char *f = items[i].str;
        if (f[0] == '\\') {
            size_t k = 0;
            while (k < sizeof(sys) / sizeof(sys[0]) && strcasecmp(f, sys[k].name) != 0)
                k++;
            if (k < sizeof(sys) / sizeof(sys[0])) {
                *flags_r |= sys[k].bit;
            } else if (strcasecmp(f, "\\Recent") != 0) {
                /* \Recent cannot be set or cleared (RFC 3501 2.3.2): ignored */
                imap_bad(s, "Invalid system flag %.40s", f);
                return -1;
            }
            continue;
        }
        if (s->folder == NULL) continue; /* APPEND to a folder not selected: caller maps */
        int bit = folder_keyword_bit(s->folder, f);
        if (bit < 0) {
            imap_no(s, "[LIMIT] Too many keywords in this folder, or an invalid keyword");
            return -1;
        }
        *keywords_r |= (uint64_t)1 << bit;
    }
    return 0;
}

/* ---- the selected folder --------------------------------------------------------- */

static int cmp_range(const void *a, const void *b)
{
    const struct imap_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The ranges of seq with '*' as max, each ordered, sorted and merged: disjoint and
 * ascending (in place; returns how many are left). */
static size_t merge_ranges(struct imap_seqset *seq, uint32_t max)
{
    struct imap_range *r = seq->ranges;
    for (size_t i = 0; i < seq->nranges; i++) {
        uint32_t lo = r[i].lo == IMAP_SEQ_STAR ? max : r[i].lo;
        uint32_t hi = r[i].hi == IMAP_SEQ_STAR ? max : r[i].hi;
        r[i].lo = lo < hi ? lo : hi;
        r[i].hi = lo < hi ? hi : lo;
    }
    if (seq->nranges == 0) return 0;
    qsort(r, seq->nranges, sizeof(*r), cmp_range);
    size_t w = 0;
    for (size_t i = 1; i < seq->nranges; i++) {
        if (r[w].hi == UINT32_MAX || r[i].lo <= r[w].hi + 1) {
            if (r[i].hi > r[w].hi) r[w].hi = r[i].hi;
        } else {
            r[++w] = r[i];
        }
    }
    return w + 1;
}

/* SECURITY: a set of many overlapping ranges ("1:*,1:*,...") costs no more than one:
 * the ranges are merged before any number is listed, so the result holds each message
 * at most once and its size is bounded by the view, not by ranges x messages. */
int imap_seqset_uids(struct imap_session *s, const char *set, bool uid, uint32_t **uids_r,
                     size_t *n_r)
{
    *uids_r = NULL;
    *n_r = 0;
    struct imap_seqset seq;
    if (imap_seqset_parse(set, &seq) < 0) {
        imap_bad(s, "Invalid message set");
        return -1;
    }
    const struct folder_view *v = &s->view;
    size_t n = 0;
    uint32_t *out = NULL;
    if (!uid) {
        uint32_t max = (uint32_t)v->count;
        size_t nr = merge_ranges(&seq, max);
        for (size_t r = 0; r < nr; r++) {
            if (seq.ranges[r].lo == 0 || seq.ranges[r].hi > max) {
                imap_seqset_free(&seq);
                imap_bad(s, "Invalid message sequence number (the mailbox has %u)", max);
                return -1;
            }
        }
        out = xcalloc(v->count ? v->count : 1, sizeof(uint32_t));
        for (size_t r = 0; r < nr; r++)
            for (uint32_t i = seq.ranges[r].lo; i <= seq.ranges[r].hi; i++)
                out[n++] = v->uids[i - 1];
    } else {
        uint32_t max_uid = v->count ? v->uids[v->count - 1] : 0;
        size_t nr = merge_ranges(&seq, max_uid);
        out = xcalloc(v->count ? v->count : 1, sizeof(uint32_t));
        /* the view and the ranges are both ascending: one walk over each */
        size_t r = 0;
        for (size_t i = 0; i < v->count && r < nr; i++) {
            uint32_t u = v->uids[i];
            while (r < nr && seq.ranges[r].hi < u)
                r++;
            if (r < nr && u >= seq.ranges[r].lo) out[n++] = u;
        }
    }
    imap_seqset_free(&seq);
    *uids_r = out;
    *n_r = n;
    return 0;
}

char *imap_mailbox_arg(struct imap_session *s, const struct imap_arg *arg)
{
    const char *name = imap_arg_astring(arg);
    if (name == NULL || strlen(name) != arg->len) {
        imap_bad(s, "Invalid mailbox name");
        return NULL;
    }
    if (strcasecmp(name, "INBOX") == 0) return xstrdup("INBOX");
    if (strncasecmp(name, "INBOX/", 6) == 0) return xasprintf("INBOX/%s", name + 6);
    const char *why = NULL;
    if (!folder_name_valid(name, &why)) {
        imap_no(s, "[CANNOT] Invalid mailbox name: %s", why ? why : "not allowed");
        return NULL;
    }
    return xstrdup(name);
}

void imap_folder_error(struct imap_session *s, enum folder_result r, const char *err,
                       const char *name)
{
    switch (r) {
    case FOLDER_NOTFOUND: imap_no(s, "[NONEXISTENT] Mailbox does not exist: %.200s", name); break;
    case FOLDER_EXISTS: imap_no(s, "[ALREADYEXISTS] Mailbox already exists: %.200s", name); break;
    case FOLDER_NOSELECTABLE:
        imap_no(s, "[CANNOT] Mailbox cannot be selected: %.200s", name);
        break;
    case FOLDER_INVALID: imap_no(s, "[CANNOT] %s", err ? err : "Not allowed"); break;
    default:
        log_error(LOG_IMAP, s->ip, "Mailbox %s of %s: %s", name, s->user ? s->user : "?",
                  err ? err : "error");
        imap_no(s, "[SERVERBUG] Internal error, try again later");
        break;
    }
}

void imap_unselect(struct imap_session *s)
{
    if (s->folder == NULL) return;
    folder_view_free(&s->view);
    folder_close(&s->folder);
    xfree(s->selected);
    s->readonly = false;
    if (s->state == IMAP_STATE_SELECTED) s->state = IMAP_STATE_AUTH;
}

void imap_send_flags(struct imap_session *s)
{
    struct sbuf flags = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&flags, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    size_t nk = folder_keyword_count(s->folder);
    for (size_t i = 0; i < nk; i++)
        sbuf_printf(&flags, " %s", folder_keyword(s->folder, i));
    imap_send(s, "* FLAGS (%s)", sbuf_cstr(&flags));
    if (s->readonly)
        imap_send(s, "* OK [PERMANENTFLAGS ()] Read-only mailbox");
    else
        imap_send(s, "* OK [PERMANENTFLAGS (%s \\*)] Flags permitted", sbuf_cstr(&flags));
    sbuf_free(&flags);
    s->keywords_announced = nk;
}

void imap_send_updates(struct imap_session *s, bool allow_expunge)
{
    if (s->folder == NULL) return;
    struct folder_changes ch;
    const char *err = NULL;
    if (folder_view_update(&s->view, allow_expunge, &ch, &err) != FOLDER_OK) {
        log_error(LOG_IMAP, s->ip, "Cannot update %s of %s: %s", s->selected, s->user,
                  err ? err : "error");
        return;
    }
    /* a keyword new to the folder (this session's STORE or APPEND, or another's) */
    if (folder_keyword_count(s->folder) != s->keywords_announced) imap_send_flags(s);
    for (size_t i = 0; i < ch.nexpunged; i++)
        imap_send(s, "* %u EXPUNGE", ch.expunged_seqs[i]);
    if (ch.exists) {
        imap_send(s, "* %zu EXISTS", ch.exists);
        imap_send(s, "* %zu RECENT", ch.recent);
    }
    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    for (size_t i = 0; i < ch.nchanged; i++) {
        uint32_t uid = ch.changed_uids[i];
        if (was_reported(s, uid)) continue;
        struct folder_msg msg;
        if (folder_get(s->folder, uid, &msg) != FOLDER_OK) continue;
        uint32_t seq = folder_view_seq(&s->view, uid);
        if (seq) {
            sbuf_reset(&line);
            sbuf_printf(&line, "* %u FETCH (UID %u ", seq, uid);
            imap_sbuf_flags(s, &msg, &line);
            if (s->condstore) sbuf_printf(&line, " MODSEQ (%llu)", (unsigned long long)msg.modseq);
            sbuf_putc(&line, ')');
            send_line(s, line.data, line.len, true);
        }
        free(msg.file);
    }
    sbuf_free(&line);
    folder_changes_free(&ch);
}

/* ---- the APPEND literal sink ------------------------------------------------------ */

static bool sink_wants(void *ctx, const struct imap_command *cmd, size_t nargs, uint64_t size)
{
    (void)ctx;
    (void)size;
    /* APPEND mailbox [flags] [date] message: the literal after the mailbox name */
    return strcmp(cmd->name, "APPEND") == 0 && nargs >= 1;
}

static int sink_begin(void *ctx, uint64_t size)
{
    struct imap_session *s = ctx;
    (void)size;
    if (s->append_fd >= 0) return -1; /* one message per APPEND (no MULTIAPPEND) */
    struct spool_file f;
    if (spool_file_create(&f, s->cfg->temp_dir, ".append") < 0) {
        log_error(LOG_IMAP, s->ip, "Cannot create a file in %s: %s", s->cfg->temp_dir,
                  strerror(errno));
        return -1;
    }
    s->append_fd = f.fd;
    s->append_path = f.path;
    sbuf_free(&f.buf);
    return 0;
}

static int sink_write(void *ctx, const char *data, size_t len)
{
    struct imap_session *s = ctx;
    return s->append_fd >= 0 && fs_write_all(s->append_fd, data, len) == 0 ? 0 : -1;
}

static void append_cleanup(struct imap_session *s)
{
    if (s->append_fd >= 0) close(s->append_fd);
    s->append_fd = -1;
    if (s->append_path) unlink(s->append_path);
    xfree(s->append_path);
}

/* ---- the command loop ----------------------------------------------------------- */

static void set_limits(struct imap_session *s)
{
    bool authed = s->state != IMAP_STATE_NOT_AUTH;
    struct imap_limits lim = {
        .max_line = IMAP_MAX_LINE,
        .max_literal = authed ? IMAP_MAX_LITERAL : IMAP_MAX_LITERAL_PREAUTH,
        .max_sink_literal = authed ? s->cfg->max_message_size : 0,
        .max_depth = IMAP_MAX_DEPTH,
        .max_args = IMAP_MAX_ARGS,
    };
    imap_parser_set_limits(s->parser, &lim);
}

/* Appends a loggable rendering of args (literals by size only). */
static void log_args(struct sbuf *out, const struct imap_arg *args, size_t n, int depth)
{
    for (size_t i = 0; i < n && out->len < LOG_MAX_ACTION; i++) {
        const struct imap_arg *a = &args[i];
        sbuf_putc(out, ' ');
        switch (a->type) {
        case IMAP_ARG_NIL: sbuf_appends(out, "NIL"); break;
        case IMAP_ARG_ATOM: sbuf_appends(out, a->str); break;
        case IMAP_ARG_STRING:
            if (a->literal)
                sbuf_printf(out, "{%zu}", a->len);
            else
                imap_sbuf_string(out, a->str, a->len);
            break;
        case IMAP_ARG_LIST:
            sbuf_putc(out, '(');
            if (depth < 4)
                log_args(out, a->items, a->nitems, depth + 1);
            else
                sbuf_appends(out, " ...");
            sbuf_putc(out, ')');
            break;
        }
    }
}

static void log_command(struct imap_session *s, const struct imap_command *cmd)
{
    if (!log_enabled(LOG_IMAP)) return;
    struct sbuf line = SBUF_INIT(LOG_MAX_ACTION * 2);
    sbuf_printf(&line, "%s %s%s", cmd->tag, cmd->uid ? "UID " : "", cmd->name);
    if (strcmp(cmd->name, "LOGIN") == 0) {
        if (cmd->nargs > 0 && imap_arg_astring(&cmd->args[0]))
            sbuf_printf(&line, " %.100s ****", imap_arg_astring(&cmd->args[0]));
    } else if (strcmp(cmd->name, "AUTHENTICATE") == 0) {
        if (cmd->nargs > 0 && imap_arg_astring(&cmd->args[0]))
            sbuf_printf(&line, " %.40s%s", imap_arg_astring(&cmd->args[0]),
                        cmd->nargs > 1 ? " ****" : "");
    } else {
        log_args(&line, cmd->args, cmd->nargs, 0);
    }
    log_proto(LOG_IMAP, s->ip, "<<<", line.data, line.len);
    sbuf_free(&line);
}

static void run_command(struct imap_session *s, const struct imap_command *cmd)
{
    __atomic_fetch_add(&s->ctx->commands, 1, __ATOMIC_RELAXED);
    log_command(s, cmd);
    const struct imap_cmd_def *def = imap_command_find(cmd->name);
    s->cmd = cmd;
    s->result = NULL;
    s->tagged_sent = false;
    s->nreported = 0;
    sbuf_reset(&s->result_text);
    if (def == NULL) {
        imap_bad(s, "Unknown command %.40s", cmd->name);
        s->bad_commands++;
    } else if (cmd->uid && !(def->flags & IMAP_CMD_UID)) {
        imap_bad(s, "UID %s is not a command", cmd->name);
        s->bad_commands++;
    } else if (!(def->states & s->state)) {
        if (s->state == IMAP_STATE_NOT_AUTH)
            imap_bad(s, "Log in first");
        else if (def->states == IMAP_STATE_NOT_AUTH)
            imap_bad(s, "Already logged in");
        else
            imap_bad(s, "No mailbox selected");
        s->bad_commands++;
    } else {
        s->allow_expunge = !(def->flags & IMAP_CMD_NO_EXPUNGE) || cmd->uid;
        def->run(s, cmd);
        if (s->result == NULL) imap_ok(s, "%s completed", cmd->name);
        /* only BADs in a row end the session: a client that sometimes sends something we
         * do not know is not hostile */
        if (strcmp(s->result, "BAD") == 0)
            s->bad_commands++;
        else
            s->bad_commands = 0;
    }
    if (s->state == IMAP_STATE_SELECTED && s->folder) imap_send_updates(s, s->allow_expunge);
    if (!s->tagged_sent) imap_send(s, "%s %s %s", cmd->tag, s->result, sbuf_cstr(&s->result_text));
    append_cleanup(s);
    s->cmd = NULL;
}

static void greet(struct imap_session *s)
{
    struct sbuf caps = SBUF_INIT(SBUF_NO_MAX);
    imap_capabilities(s, &caps);
    imap_send(s, "* OK [CAPABILITY %s] %s Alkaid IMAP4rev1 ready", sbuf_cstr(&caps),
              s->cfg->hostname);
    sbuf_free(&caps);
}

void imap_session_handler(struct session *session)
{
    struct imap_session s_, *s = &s_;
    memset(s, 0, sizeof(*s));
    s->base = session;
    s->conn = session->conn;
    s->ctx = session->data;
    s->cfg = service_config();
    s->ip = s->conn->ip;
    s->state = IMAP_STATE_NOT_AUTH;
    s->append_fd = -1;
    sbuf_init(&s->result_text, 4096);
    struct imap_limits lim = {IMAP_MAX_LINE, IMAP_MAX_LITERAL_PREAUTH, 0, IMAP_MAX_DEPTH,
                              IMAP_MAX_ARGS};
    s->parser = imap_parser_new(&lim);
    struct imap_literal_sink sink = {sink_wants, sink_begin, sink_write, s};
    imap_parser_set_sink(s->parser, &sink);

    log_line(LOG_IMAP, s->ip, "Connected to %s port %d%s%s", session->listener->name,
             s->conn->local_port, conn_is_tls(s->conn) ? ", " : "",
             conn_is_tls(s->conn) ? s->conn->tls_info : "");
    greet(s);

    const char *why = NULL;
    int64_t deadline = conn_now_ms() + (int64_t)s->cfg->imap.timeout * 1000;
    size_t progress = 0;
    while (s->state != IMAP_STATE_LOGOUT) {
        if (conn_pending(s->conn) == 0 && conn_flush(s->conn, conn_now_ms() + 60000) != CONN_OK) {
            why = "connection lost (write)";
            break;
        }
        bool busy = imap_parser_busy(s->parser);
        enum conn_status st =
            busy ? conn_fill(s->conn, deadline) : conn_fill_idle(s->conn, deadline);
        if (st != CONN_OK) {
            if (st == CONN_STOPPED || server_stopping(session->server)) {
                imap_send(s, "* BYE Server shutting down");
                why = "the service is stopping";
            } else if (st == CONN_TIMEOUT) {
                imap_send(s, "* BYE Autologout; idle for too long");
                why = "autologout";
            } else {
                why = st == CONN_EOF ? "connection closed by the client" : "connection lost";
            }
            break;
        }
        size_t len, used = 0;
        const char *p = conn_peek(s->conn, &len);
        enum imap_parse_status ps = imap_parser_feed(s->parser, p, len, &used);
        conn_consume(s->conn, used);
        progress += used;
        if (progress >= IMAP_PROGRESS_OCTETS) {
            progress = 0;
            deadline = conn_now_ms() + (int64_t)s->cfg->imap.timeout * 1000;
        }
        switch (ps) {
        case IMAP_PARSE_MORE: continue;
        case IMAP_PARSE_CONTINUE:
            imap_send(s, "+ Ready for literal data");
            conn_flush(s->conn, conn_now_ms() + 60000);
            continue;
        case IMAP_PARSE_ERROR: {
            const char *tag = imap_parser_tag(s->parser);
            const char *err = imap_parser_error(s->parser);
            log_line(LOG_IMAP, s->ip, "<<< %s [refused: %s]", *tag ? tag : "(no tag)", err);
            imap_send(s, "%s %s", *tag ? tag : "*", err);
            append_cleanup(s);
            imap_parser_reset(s->parser);
            s->bad_commands++;
            break;
        }
        case IMAP_PARSE_DONE:
            run_command(s, imap_parser_command(s->parser));
            imap_parser_reset(s->parser);
            set_limits(s);
            break;
        }
        progress = 0;
        deadline = conn_now_ms() + (int64_t)s->cfg->imap.timeout * 1000;
        if (s->bad_commands >= IMAP_MAX_BAD_COMMANDS && s->state != IMAP_STATE_LOGOUT) {
            imap_send(s, "* BYE Too many invalid commands");
            why = "too many invalid commands";
            break;
        }
    }
    conn_flush(s->conn, conn_now_ms() + 10000);
    log_line(LOG_IMAP, s->ip, "Disconnected%s%s%s%s: %llu bytes in, %llu bytes out",
             s->user ? " " : "", s->user ? s->user : "", why ? ", " : "", why ? why : "",
             (unsigned long long)s->conn->bytes_in, (unsigned long long)s->conn->bytes_out);
    imap_unselect(s);
    if (s->user) imap_user_leave(s->ctx, s->user);
    append_cleanup(s);
    imap_parser_free(&s->parser);
    sbuf_free(&s->result_text);
    free(s->reported);
    free(s->user);
    free(s->mailbox_dir);
}

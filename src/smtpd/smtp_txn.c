/* smtp_txn.c - the mail transaction: MAIL, RCPT, DATA and BDAT
 *
 * MAIL and RCPT are checked against the store and the relay rules as they arrive
 * (DESIGN.md step 2); DATA/BDAT stream through the smtp_data.c reader into
 * temp/<id>.tmp behind our Return-Path and Received lines (step 3); deliver.c makes the
 * message durable everywhere before the 250 (step 5).
 *
 * SECURITY: every limit is applied while reading: recipients, size (declared and
 * real), line length, NUL bytes, Received hops, free disk space. A refused message is
 * read to its end so the session stays in step with the client, but never stored past
 * the size limit.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "deliver.h"
#include "fsutil.h"
#include "log.h"
#include "mailbox.h"
#include "smtp_parse.h"
#include "smtp_session.h"
#include "xalloc.h"

/* ---- MAIL ---------------------------------------------------------------------- */

static bool submission_port(const struct smtp_session *s)
{
    return s->kind == SMTP_PORT_SUBMISSION || s->kind == SMTP_PORT_SMTPS;
}

void smtp_cmd_mail(struct smtp_session *s, const char *arg)
{
    if (s->state == SMTP_STATE_INIT) {
        smtp_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (s->state != SMTP_STATE_HELO) {
        smtp_reply(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    if (submission_port(s) && s->auth_user == NULL) {
        smtp_reply(s, "530 5.7.0 Authentication required");
        return;
    }
    struct smtp_path path;
    const char *err;
    if (smtp_parse_mail(arg, &path, &err) < 0) {
        smtp_reply(s, "%s", err);
        s->bad_commands++;
        return;
    }
    uint64_t size = 0;
    for (size_t i = 0; i < path.nparams; i++) {
        const struct smtp_param *p = &path.params[i];
        if (!s->esmtp) {
            smtp_reply(s, "555 5.5.4 Error: parameters need EHLO");
            goto out;
        }
        if (strcmp(p->keyword, "SIZE") == 0) {
            char *end;
            if (p->value == NULL || *p->value < '0' || *p->value > '9') goto badsize;
            errno = 0;
            unsigned long long v = strtoull(p->value, &end, 10);
            if (errno || *end) goto badsize;
            size = v;
        } else if (strcmp(p->keyword, "BODY") == 0) {
            if (p->value == NULL ||
                (strcasecmp(p->value, "7BIT") != 0 && strcasecmp(p->value, "8BITMIME") != 0)) {
                smtp_reply(s, "501 5.5.4 Error: BODY must be 7BIT or 8BITMIME");
                goto out;
            }
        } else if (strcmp(p->keyword, "AUTH") == 0) {
            /* RFC 4954 5: accepted and not trusted */
        } else {
            smtp_reply(s, "555 5.5.4 Error: unsupported parameter %s", p->keyword);
            goto out;
        }
    }
    if (size > s->cfg->max_message_size) {
        smtp_reply(s, "552 5.3.4 Error: message size exceeds fixed limit of %" PRIu64 " bytes",
                   s->cfg->max_message_size);
        goto out;
    }
    if (smtpd_disk_space_low(s->cfg)) {
        log_error(LOG_SMTP, s->ip, "Refusing mail: free disk space below [SMTP] MinFreeSpace");
        smtp_reply(s, "452 4.3.1 Error: insufficient system storage");
        goto out;
    }
    s->sender = xstrdup(path.address);
    s->declared_size = size;
    smtp_set_state(s, SMTP_STATE_MAIL);
    smtp_reply(s, "250 2.1.0 Ok");
    goto out;
badsize:
    smtp_reply(s, "501 5.5.4 Error: bad SIZE parameter");
out:
    smtp_path_clear(&path);
}

/* ---- RCPT ---------------------------------------------------------------------- */

/* Quota at RCPT time: 452 while the mailbox is full, 552 if the declared size alone
 * is more than the quota. Returns false after replying. */
static bool rcpt_quota_ok(struct smtp_session *s, const struct resolved *r, const char *addr)
{
    for (size_t i = 0; i < r->nmailboxes; i++) {
        const struct resolved_mailbox *mb = &r->mailboxes[i];
        if (mb->quota == 0) continue;
        if (s->declared_size > mb->quota) {
            smtp_reply(s, "552 5.2.2 <%s>: Message is larger than the mailbox quota", addr);
            return false;
        }
        uint64_t used = mailbox_usage(mb->dir, NULL);
        if (used >= mb->quota || used + s->declared_size > mb->quota) {
            log_line(LOG_SMTP, s->ip, "Mailbox %s is full (%" PRIu64 " of %" PRIu64 " bytes)",
                     mb->address, used, mb->quota);
            smtp_reply(s, "452 4.2.2 <%s>: Mailbox full", addr);
            return false;
        }
    }
    return true;
}

void smtp_cmd_rcpt(struct smtp_session *s, const char *arg)
{
    if (s->state != SMTP_STATE_MAIL && s->state != SMTP_STATE_RCPT) {
        smtp_reply(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (s->bdat_active) {
        smtp_reply(s, "503 5.5.1 Error: RCPT not allowed after BDAT");
        return;
    }
    if (s->nrcpts >= (size_t)s->cfg->max_recipients) {
        smtp_reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    struct smtp_path path;
    const char *err;
    if (smtp_parse_rcpt(arg, &path, &err) < 0) {
        smtp_reply(s, "%s", err);
        s->bad_commands++;
        return;
    }
    if (path.nparams > 0) {
        smtp_reply(s, "555 5.5.4 Error: unsupported parameter %s", path.params[0].keyword);
        goto out;
    }
    struct resolved res;
    enum resolve_result rr =
        strcasecmp(path.localpart, "postmaster") == 0
            ? resolve_postmaster(smtpd.store, s->cfg->mail_dir, path.domain, s->cfg->hostname, &res)
            : resolve_recipient(smtpd.store, s->cfg->mail_dir, path.localpart, path.domain, &res);
    switch (rr) {
    case RESOLVE_TEMPFAIL:
        smtp_reply(s, "451 4.3.0 <%s>: Temporary lookup failure, try again later", path.address);
        goto out;
    case RESOLVE_UNKNOWN:
        log_line(LOG_SMTP, s->ip, "Unknown recipient <%s>", path.address);
        smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", path.address);
        goto out;
    case RESOLVE_NOT_LOCAL:
        if (s->auth_user == NULL && !s->relay_client) {
            log_line(LOG_SMTP, s->ip, "Relay denied for <%s>", path.address);
            smtp_reply(s, "554 5.7.1 <%s>: Relay access denied", path.address);
            goto out;
        }
        memset(&res, 0, sizeof(res));
        res.remote = xcalloc(1, sizeof(char *));
        res.remote[0] = xstrdup(path.address);
        res.nremote = 1;
        break;
    case RESOLVE_OK:
        if (!rcpt_quota_ok(s, &res, path.address)) {
            resolved_clear(&res);
            goto out;
        }
        break;
    }
    s->rcpts = xreallocarray(s->rcpts, s->nrcpts + 1, sizeof(*s->rcpts));
    s->rcpts[s->nrcpts].address = xstrdup(path.address);
    s->rcpts[s->nrcpts].res = res;
    s->nrcpts++;
    smtp_set_state(s, SMTP_STATE_RCPT);
    smtp_reply(s, "250 2.1.5 Ok");
out:
    smtp_path_clear(&path);
}

/* ---- the message ---------------------------------------------------------------- */

/* Copies s into buf keeping only characters safe in a Received: comment. */
static void safe_text(char *buf, size_t size, const char *s)
{
    size_t j = 0;
    for (; *s && j + 1 < size; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr(".-_:[]", c) != NULL;
        buf[j++] = ok ? c : '_';
    }
    buf[j] = '\0';
}

/* The distinct remote addresses of every recipient, when no recipient has a local
 * mailbox; NULL (and *n_r 0) otherwise. */
static char **remote_only(struct smtp_session *s, size_t *n_r)
{
    *n_r = 0;
    size_t n = 0;
    for (size_t i = 0; i < s->nrcpts; i++) {
        if (s->rcpts[i].res.nmailboxes > 0) return NULL;
        n += s->rcpts[i].res.nremote;
    }
    if (n == 0) return NULL;
    char **v = xcalloc(n, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < s->nrcpts; i++) {
        const struct resolved *r = &s->rcpts[i].res;
        for (size_t j = 0; j < r->nremote; j++) {
            bool dup = false;
            for (size_t m = 0; m < k && !dup; m++)
                dup = resolve_same_address(v[m], r->remote[j]);
            if (!dup) v[k++] = r->remote[j];
        }
    }
    *n_r = k;
    return v;
}

/* Opens the file the message goes to - temp/<id>.tmp, or for a message only for remote
 * recipients its queue file mail/FORWARD/<id>.new (no copy to make later) - and writes
 * our trace fields. 0, or -1 after replying. */
static int begin_message(struct smtp_session *s)
{
    size_t nremote;
    char **remote = remote_only(s, &nremote);
    s->inplace = remote != NULL;
    int r;
    if (s->inplace) {
        char id[SPOOL_ID_MAX];
        spool_make_id(id, sizeof(id));
        struct queue_envelope env = {
            .id = id,
            .created = (long long)time(NULL),
            .sender = s->sender,
            .auth = s->auth_user,
            .client = (char *)s->ip,
            .rcpts = remote,
            .nrcpts = nremote,
        };
        char *dir = xasprintf("%s/FORWARD", s->cfg->mail_dir);
        r = spool_queue_begin(&s->temp, dir, &env, &s->qip);
        if (r < 0)
            log_error(LOG_SMTP, s->ip, "Cannot create a queue file in %s: %s", dir,
                      strerror(errno));
        free(dir);
        free(remote);
    } else {
        r = spool_file_create(&s->temp, s->cfg->temp_dir, ".tmp");
        if (r < 0)
            log_error(LOG_SMTP, s->ip, "Cannot create a file in %s: %s", s->cfg->temp_dir,
                      strerror(errno));
    }
    if (r < 0) {
        smtp_reply(s, "451 4.3.0 Error: cannot store the message, try again later");
        return -1;
    }
    s->temp_open = true;
    char helo[128], date[48];
    safe_text(helo, sizeof(helo), s->helo ? s->helo : "unknown");
    log_format_date(date, sizeof(date), (long long)time(NULL));
    bool tls = conn_is_tls(s->conn);
    const char *proto = !s->esmtp      ? "SMTP"
                        : s->auth_user ? (tls ? "ESMTPSA" : "ESMTPA")
                                       : (tls ? "ESMTPS" : "ESMTP");
    struct sbuf h = SBUF_INIT(4096);
    if (!s->inplace) sbuf_printf(&h, "Return-Path: <%s>\r\n", s->sender);
    s->body_offset = s->inplace ? s->qip.header_len : h.len;
    sbuf_printf(&h, "Received: from %s ([%s])\r\n\tby %s (Alkaid) with %s id %s", helo, s->ip,
                s->cfg->hostname, proto, s->temp.id);
    if (tls) sbuf_printf(&h, "\r\n\t(%s)", s->conn->tls_info);
    if (s->nrcpts == 1) sbuf_printf(&h, "\r\n\tfor <%s>", s->rcpts[0].address);
    sbuf_printf(&h, ";\r\n\t%s\r\n", date);
    spool_file_write(&s->temp, h.data, h.len);
    sbuf_free(&h);
    return 0;
}

/* Feeds bytes to the reader and the reader's output to the TEMP file. Returns bytes
 * consumed; *line_done_r (optional) tells whether a line was completed. */
static size_t feed(struct smtp_session *s, const char *p, size_t len, bool *line_done_r)
{
    size_t used = smtp_data_feed(&s->data, p, len, &s->dataout);
    if (used == (size_t)-1) { /* cannot happen: dataout holds 2x the read buffer */
        s->data.too_big = true;
        used = len;
    }
    if (line_done_r) *line_done_r = s->data.done || memchr(p, '\n', used) != NULL;
    if (s->dataout.len) {
        spool_file_write(&s->temp, s->dataout.data, s->dataout.len);
        sbuf_reset(&s->dataout);
    }
    return used;
}

/* The end of DATA or of the LAST BDAT chunk: refuse, or deliver and say 250. */
static void finish_message(struct smtp_session *s)
{
    struct smtp_data *d = &s->data;
    const char *refusal = NULL;
    char buf[160];
    if (d->has_nul) {
        refusal = "554 5.6.0 Error: message contains NUL characters";
    } else if (d->line_too_long) {
        refusal = "554 5.6.0 Error: message has a line longer than 998 characters (RFC 5322)";
    } else if (d->too_big) {
        snprintf(buf, sizeof(buf),
                 "552 5.3.4 Error: message size exceeds fixed limit of %" PRIu64 " bytes",
                 s->cfg->max_message_size);
        refusal = buf;
    } else if (d->received >= (unsigned)s->cfg->max_hops) {
        snprintf(buf, sizeof(buf),
                 "554 5.4.6 Error: too many hops (%u Received: lines; a mail "
                 "loop?)",
                 d->received);
        refusal = buf;
    } else if (s->bdat_failed) {
        refusal = "554 5.5.0 Error: message refused";
    }
    if (refusal) {
        log_line(LOG_SMTP, s->ip, "Message from <%s> refused: %s", s->sender, refusal + 10);
        SMTPD_COUNT(messages_rejected, 1);
        smtp_reply(s, "%s", refusal);
        smtp_txn_reset(s);
        return;
    }
    if (d->bare_newline)
        log_line(LOG_SMTP, s->ip, "Message contains bare CR or LF; stored with CRLF");
    /* The TEMP file is linked into the local mailboxes, so it must be durable first; a
     * message only for remote recipients is made durable by its queue file alone. */
    bool local = false;
    for (size_t i = 0; i < s->nrcpts && !local; i++)
        local = s->rcpts[i].res.nmailboxes > 0;
    if (!s->inplace && (local ? spool_file_sync(&s->temp) : spool_file_flush(&s->temp)) < 0) {
        log_error(LOG_SMTP, s->ip, "Cannot write %s: %s", s->temp.path, strerror(errno));
        smtp_reply(s, "451 4.3.0 Error: cannot store the message, try again later");
        smtp_txn_reset(s);
        return;
    }

    struct resolved *res = xcalloc(s->nrcpts, sizeof(*res));
    char **names = xcalloc(s->nrcpts, sizeof(char *));
    for (size_t i = 0; i < s->nrcpts; i++) {
        res[i] = s->rcpts[i].res;
        names[i] = s->rcpts[i].address;
    }
    struct deliver_request req = {
        .cfg = s->cfg,
        .temp = &s->temp,
        .body_offset = s->body_offset,
        .sender = s->sender,
        .auth = s->auth_user,
        .client = s->ip,
        .ip = s->ip,
        .rcpts = res,
        .rcpt_names = names,
        .nrcpts = s->nrcpts,
        .inplace = s->inplace ? &s->qip : NULL,
    };
    struct sbuf reply = SBUF_INIT(1024);
    enum deliver_result dr = deliver_message(&req, &reply);
    free(res);
    free(names);
    if (dr == DELIVER_OK) {
        s->messages++;
        SMTPD_COUNT(messages_in, 1);
        smtpd_today_add(TODAY_MESSAGES_IN, 1);
        log_line(LOG_SMTP, s->ip,
                 "Accepted %s from <%s> for %zu recipient%s, %" PRIu64 " bytes%s%s", s->temp.id,
                 s->sender, s->nrcpts, s->nrcpts == 1 ? "" : "s", s->temp.size,
                 s->auth_user ? ", authenticated as " : "", s->auth_user ? s->auth_user : "");
    } else {
        SMTPD_COUNT(messages_rejected, 1);
    }
    smtp_reply(s, "%s", sbuf_cstr(&reply));
    sbuf_free(&reply);
    smtp_txn_reset(s);
}

void smtp_cmd_data(struct smtp_session *s, const char *arg)
{
    if (*arg) {
        smtp_reply(s, "501 5.5.4 Syntax: DATA");
        return;
    }
    if (s->bdat_active) {
        smtp_reply(s, "503 5.5.1 Error: DATA not allowed after BDAT");
        return;
    }
    if (s->state == SMTP_STATE_MAIL) {
        smtp_reply(s, "554 5.5.1 Error: no valid recipients");
        return;
    }
    if (s->state != SMTP_STATE_RCPT) {
        smtp_reply(s, "503 5.5.1 Error: need RCPT command");
        return;
    }
    if (begin_message(s) < 0) return;
    smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
    smtp_flush(s);
    if (s->state == SMTP_STATE_CLOSE) return;

    smtp_data_init(&s->data, s->cfg->max_message_size, 0, false);
    /* the size limit counts the message as the client sent it, not our trace lines;
     * every line must arrive within DataTimeout (a trickle of octets does not extend it) */
    int64_t deadline = smtp_data_deadline(s);
    while (!s->data.done) {
        enum conn_status st = conn_fill(s->conn, deadline);
        if (st != CONN_OK) {
            log_line(LOG_SMTP, s->ip, "%s during DATA; message from <%s> discarded",
                     st == CONN_TIMEOUT ? "Timeout" : "Connection lost", s->sender);
            if (st == CONN_TIMEOUT)
                smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
            smtp_txn_reset(s);
            smtp_set_state(s, SMTP_STATE_CLOSE);
            return;
        }
        size_t len;
        bool line_done;
        const char *p = conn_peek(s->conn, &len);
        conn_consume(s->conn, feed(s, p, len, &line_done));
        if (line_done) deadline = smtp_data_deadline(s);
    }
    log_line(LOG_SMTP, s->ip, "<<< [message of %llu bytes]", (unsigned long long)s->data.size);
    finish_message(s);
}

/* Reads and throws away n bytes (a chunk we are not going to keep). */
static bool skip_bytes(struct smtp_session *s, unsigned long long n)
{
    unsigned long long since = 0;
    int64_t deadline = smtp_data_deadline(s);
    while (n > 0) {
        if (conn_fill(s->conn, deadline) != CONN_OK) return false;
        size_t len;
        conn_peek(s->conn, &len);
        size_t take = len < n ? len : (size_t)n;
        conn_consume(s->conn, take);
        n -= take;
        since += take;
        if (since >= SMTP_MAX_TEXT_LINE) {
            since = 0;
            deadline = smtp_data_deadline(s);
        }
    }
    return true;
}

void smtp_cmd_bdat(struct smtp_session *s, const char *arg)
{
    unsigned long long size;
    bool last;
    if (smtp_parse_bdat(arg, &size, &last) < 0) {
        /* the chunk length is unknown: the stream cannot be followed any more */
        smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]; closing connection");
        smtp_txn_reset(s);
        smtp_set_state(s, SMTP_STATE_CLOSE);
        return;
    }
    const char *refusal = NULL;
    if (s->state == SMTP_STATE_MAIL)
        refusal = "554 5.5.1 Error: no valid recipients";
    else if (s->state != SMTP_STATE_RCPT)
        refusal = "503 5.5.1 Error: need MAIL and RCPT commands";
    if (refusal) {
        if (!skip_bytes(s, size)) {
            smtp_set_state(s, SMTP_STATE_CLOSE);
            return;
        }
        smtp_reply(s, "%s", refusal);
        return;
    }
    if (!s->bdat_active) {
        if (begin_message(s) < 0) {
            if (!skip_bytes(s, size)) smtp_set_state(s, SMTP_STATE_CLOSE);
            smtp_txn_reset(s);
            return;
        }
        s->bdat_active = true;
        s->bdat_failed = false;
        smtp_data_init(&s->data, s->cfg->max_message_size, 0, true);
    }
    /* the deadline moves on only with real progress: every SMTP_MAX_TEXT_LINE octets */
    unsigned long long left = size, since = 0;
    int64_t deadline = smtp_data_deadline(s);
    while (left > 0) {
        enum conn_status st = conn_fill(s->conn, deadline);
        if (st != CONN_OK) {
            log_line(LOG_SMTP, s->ip, "%s during BDAT; message from <%s> discarded",
                     st == CONN_TIMEOUT ? "Timeout" : "Connection lost", s->sender);
            smtp_txn_reset(s);
            smtp_set_state(s, SMTP_STATE_CLOSE);
            return;
        }
        size_t len;
        const char *p = conn_peek(s->conn, &len);
        size_t take = len < left ? len : (size_t)left;
        conn_consume(s->conn, feed(s, p, take, NULL));
        left -= take;
        since += take;
        if (since >= SMTP_MAX_TEXT_LINE) {
            since = 0;
            deadline = smtp_data_deadline(s);
        }
    }
    if (!last) {
        smtp_reply(s, "250 2.0.0 %llu octets received", size);
        return;
    }
    smtp_data_finish(&s->data, &s->dataout);
    if (s->dataout.len) {
        spool_file_write(&s->temp, s->dataout.data, s->dataout.len);
        sbuf_reset(&s->dataout);
    }
    log_line(LOG_SMTP, s->ip, "<<< [message of %llu bytes in BDAT chunks]",
             (unsigned long long)s->data.size);
    finish_message(s);
}

/* bounce.c - delivery status notifications (RFC 3464) and mail made by the server
 *
 * The DSN has three parts (RFC 6522 multipart/report): a text/plain explanation, the
 * message/delivery-status report (per-message fields, then per recipient
 * Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code), and the original's
 * header section as text/rfc822-headers. It goes through inject_message(): a TEMP file
 * like the one a client's message gets, then deliver_message() to the local mailbox or
 * the queue, so a DSN is as durable as any accepted message.
 *
 * SECURITY: no DSN is ever sent for a message from the null sender (RFC 5321 6.1: no
 * loops); the header section copied is bounded (BOUNCE_MAX_HEADERS).
 */
#include "bounce.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "deliver.h"
#include "log.h"
#include "queue.h"
#include "resolve.h"
#include "smtpd.h"
#include "xalloc.h"

#define BOUNCE_MAX_HEADERS (64 * 1024)

/* The original's header section (up to the empty line), at most BOUNCE_MAX_HEADERS. */
static void original_headers(int fd, uint64_t off, uint64_t size, struct sbuf *out)
{
    uint64_t want = size < BOUNCE_MAX_HEADERS ? size : BOUNCE_MAX_HEADERS;
    char *buf = xmalloc((size_t)want + 1);
    ssize_t n = want ? pread(fd, buf, (size_t)want, (off_t)off) : 0;
    if (n < 0) n = 0;
    buf[n] = '\0';
    size_t end = (size_t)n;
    char *blank = memmem(buf, (size_t)n, "\r\n\r\n", 4);
    if (blank)
        end = (size_t)(blank - buf) + 2;
    else {
        /* cut at the last whole line */
        char *last = NULL;
        for (char *p = buf; (p = memmem(p, (size_t)n - (size_t)(p - buf), "\r\n", 2)) != NULL;
             p += 2)
            last = p;
        end = last ? (size_t)(last - buf) + 2 : 0;
    }
    sbuf_append(out, buf, end);
    free(buf);
}

static const char *header_value(const struct sbuf *headers, const char *name, char *buf,
                                size_t size)
{
    const char *p = sbuf_cstr(headers);
    size_t nl = strlen(name);
    while (*p) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t len = strcspn(v, "\r\n");
            if (len >= size) len = size - 1;
            memcpy(buf, v, len);
            buf[len] = '\0';
            return buf;
        }
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL) break;
        p = eol + 2;
    }
    return NULL;
}

void bounce_build(const struct alkaid_config *cfg, enum bounce_kind kind,
                  const struct queue_envelope *env, int msg_fd, uint64_t msg_offset,
                  const struct bounce_rcpt *rcpts, size_t n, const char *dsn_id, struct sbuf *out)
{
    char now[64], arrived[64];
    log_format_date(now, sizeof(now), (long long)time(NULL));
    log_format_date(arrived, sizeof(arrived), env->created);
    const char *host = cfg->hostname;
    bool failed = kind == BOUNCE_FAILED;
    struct sbuf headers = SBUF_INIT(BOUNCE_MAX_HEADERS + 16);
    original_headers(msg_fd, msg_offset, env->size, &headers);
    char subj[200];
    const char *orig_subject = header_value(&headers, "Subject", subj, sizeof(subj));

    sbuf_printf(out, "Date: %s\r\n", now);
    sbuf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
    sbuf_printf(out, "To: <%s>\r\n", env->sender);
    sbuf_printf(out, "Subject: %s\r\n",
                failed ? "Undelivered Mail Returned to Sender"
                       : "Delayed Mail (still being retried)");
    sbuf_printf(out, "Message-ID: <%s@%s>\r\n", dsn_id, host);
    sbuf_appends(out, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
    sbuf_printf(out,
                "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                "\tboundary=\"%s/%s\"\r\n\r\n",
                dsn_id, host);
    sbuf_appends(out, "This is a MIME-encapsulated message.\r\n\r\n");

    /* 1: the explanation */
    sbuf_printf(out,
                "--%s/%s\r\nContent-Description: Notification\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\n",
                dsn_id, host);
    sbuf_printf(out, "This is the mail system at host %s.\r\n\r\n", host);
    if (failed)
        sbuf_appends(
            out, "I'm sorry to have to tell you that your message could not be\r\n"
                 "delivered to one or more recipients. Its headers are attached below.\r\n\r\n");
    else
        sbuf_printf(out,
                    "Your message could not be delivered yet to one or more recipients.\r\n"
                    "It will be tried again until %s after it arrived; you do not need\r\n"
                    "to send it again.\r\n\r\n",
                    "the retry period ends");
    if (orig_subject) sbuf_printf(out, "Subject of your message: %s\r\n\r\n", orig_subject);
    for (size_t i = 0; i < n; i++) {
        const struct bounce_rcpt *r = &rcpts[i];
        if (r->diagnostic && r->remote_mta)
            sbuf_printf(out, "<%s>: host %s said: %s\r\n", r->address, r->remote_mta,
                        r->diagnostic);
        else
            sbuf_printf(out, "<%s>: %s\r\n", r->address,
                        r->reason ? r->reason : (r->diagnostic ? r->diagnostic : "failed"));
    }
    sbuf_appends(out, "\r\n");

    /* 2: the report */
    sbuf_printf(out,
                "--%s/%s\r\nContent-Description: Delivery report\r\n"
                "Content-Type: message/delivery-status\r\n\r\n",
                dsn_id, host);
    sbuf_printf(out, "Reporting-MTA: dns; %s\r\nX-Alkaid-Queue-ID: %s\r\n", host, env->id);
    if (env->sender[0]) sbuf_printf(out, "X-Alkaid-Sender: rfc822; %s\r\n", env->sender);
    sbuf_printf(out, "Arrival-Date: %s\r\n", arrived);
    for (size_t i = 0; i < n; i++) {
        const struct bounce_rcpt *r = &rcpts[i];
        sbuf_printf(out, "\r\nFinal-Recipient: rfc822; %s\r\n", r->address);
        sbuf_printf(out, "Action: %s\r\n", failed ? "failed" : "delayed");
        sbuf_printf(out, "Status: %s\r\n", r->status);
        if (r->remote_mta) sbuf_printf(out, "Remote-MTA: dns; %s\r\n", r->remote_mta);
        if (r->diagnostic)
            sbuf_printf(out, "Diagnostic-Code: smtp; %s\r\n", r->diagnostic);
        else if (r->reason)
            sbuf_printf(out, "Diagnostic-Code: X-Alkaid; %s\r\n", r->reason);
        sbuf_printf(out, "Last-Attempt-Date: %s\r\n", now);
        if (!failed) {
            char until[64];
            log_format_date(until, sizeof(until), env->created + cfg->queue.give_up);
            sbuf_printf(out, "Will-Retry-Until: %s\r\n", until);
        }
    }
    sbuf_appends(out, "\r\n");

    /* 3: the original headers */
    sbuf_printf(out,
                "--%s/%s\r\nContent-Description: Undelivered Message Headers\r\n"
                "Content-Type: text/rfc822-headers\r\n\r\n",
                dsn_id, host);
    sbuf_append(out, headers.data ? headers.data : "", headers.len);
    sbuf_printf(out, "\r\n--%s/%s--\r\n", dsn_id, host);
    sbuf_free(&headers);
}

int bounce_send(const struct alkaid_config *cfg, enum bounce_kind kind,
                const struct queue_envelope *env, int msg_fd, uint64_t msg_offset,
                const struct bounce_rcpt *rcpts, size_t n)
{
    if (env->sender[0] == '\0') {
        for (size_t i = 0; i < n; i++)
            log_line(LOG_SMTP, NULL, "%s to <%s> %s; no notice (null sender)", env->id,
                     rcpts[i].address, kind == BOUNCE_FAILED ? "failed" : "is delayed");
        return 0;
    }
    char dsn_id[SPOOL_ID_MAX];
    spool_make_id(dsn_id, sizeof(dsn_id));
    struct sbuf msg = SBUF_INIT(BOUNCE_MAX_HEADERS + 256 * 1024);
    bounce_build(cfg, kind, env, msg_fd, msg_offset, rcpts, n, dsn_id, &msg);
    char id[SPOOL_ID_MAX];
    int r = inject_message(cfg, env->sender, msg.data, msg.len, id, sizeof(id));
    if (r == 0)
        log_line(LOG_SMTP, NULL, "%s: sent a %s notice %s to <%s>", env->id,
                 kind == BOUNCE_FAILED ? "non-delivery" : "delay", id, env->sender);
    sbuf_free(&msg);
    return r;
}

int inject_message(const struct alkaid_config *cfg, const char *rcpt, const char *data, size_t len,
                   char *id_r, size_t id_size)
{
    const char *at = strrchr(rcpt, '@');
    if (at == NULL || at == rcpt || at[1] == '\0') {
        log_error(LOG_SMTP, NULL, "Cannot send a notice to <%s>: not an address", rcpt);
        return 0; /* nothing will ever make it deliverable */
    }
    struct spool_file temp;
    if (spool_file_create(&temp, cfg->temp_dir, ".tmp") < 0) {
        log_error(LOG_SMTP, NULL, "Cannot create a file in %s: %s", cfg->temp_dir, strerror(errno));
        return -1;
    }
    if (id_r) snprintf(id_r, id_size, "%s", temp.id);
    char date[64];
    log_format_date(date, sizeof(date), (long long)time(NULL));
    struct sbuf h = SBUF_INIT(4096);
    sbuf_appends(&h, "Return-Path: <>\r\n");
    uint64_t body_offset = h.len;
    sbuf_printf(&h, "Received: by %s (Alkaid) id %s;\r\n\t%s\r\n", cfg->hostname, temp.id, date);
    spool_file_write(&temp, h.data, h.len);
    spool_file_write(&temp, data, len);
    sbuf_free(&h);
    if (spool_file_sync(&temp) < 0) {
        log_error(LOG_SMTP, NULL, "Cannot write %s: %s", temp.path, strerror(errno));
        spool_file_discard(&temp);
        return -1;
    }

    char *local = xstrndup(rcpt, (size_t)(at - rcpt));
    const char *domain = at + 1;
    struct resolved res = {0};
    enum resolve_result rr =
        strcasecmp(local, "postmaster") == 0
            ? resolve_postmaster(smtpd.store, cfg->mail_dir, domain, cfg->hostname, &res)
            : resolve_recipient(smtpd.store, cfg->mail_dir, local, domain, &res);
    free(local);
    int ret = 0;
    switch (rr) {
    case RESOLVE_TEMPFAIL:
        log_error(LOG_SMTP, NULL, "Cannot send %s to <%s> now: the account store did not answer",
                  temp.id, rcpt);
        ret = -1;
        goto out;
    case RESOLVE_UNKNOWN:
        log_line(LOG_SMTP, NULL, "Dropped %s: <%s> is no longer a local account", temp.id, rcpt);
        goto out;
    case RESOLVE_NOT_LOCAL:
        memset(&res, 0, sizeof(res));
        res.remote = xcalloc(1, sizeof(char *));
        res.remote[0] = xstrdup(rcpt);
        res.nremote = 1;
        break;
    case RESOLVE_OK: break;
    }
    char *name = (char *)rcpt;
    struct deliver_request req = {
        .cfg = cfg,
        .temp = &temp,
        .body_offset = body_offset,
        .sender = "",
        .client = NULL,
        .ip = NULL,
        .rcpts = &res,
        .rcpt_names = &name,
        .nrcpts = 1,
    };
    struct sbuf reply = SBUF_INIT(1024);
    enum deliver_result dr = deliver_message(&req, &reply);
    if (dr != DELIVER_OK) {
        log_error(LOG_SMTP, NULL, "Cannot deliver %s to <%s>: %s", temp.id, rcpt,
                  sbuf_cstr(&reply));
        /* a full mailbox will not empty itself soon: give up on the notice */
        ret = dr == DELIVER_PERMFAIL ? 0 : -1;
    } else if (res.nremote) {
        queue_notify(temp.id);
    }
    sbuf_free(&reply);
    resolved_clear(&res);
out:
    resolved_clear(&res);
    spool_file_discard(&temp);
    return ret;
}

/* smtp_client.c - the SMTP client that sends queued mail to MX hosts and smarthosts
 *
 * RFC 5321 client side: 4.5.3.2 timeouts (CommandTimeout for the greeting and each
 * reply, DataTimeout for the reply to the final dot), multi-line replies, enhanced
 * status codes (RFC 2034/3463), PIPELINING (RFC 2920: MAIL, every RCPT and DATA in one
 * write), SIZE (RFC 1870), 8BITMIME (RFC 6152), STARTTLS (RFC 3207) and AUTH PLAIN /
 * LOGIN (RFC 4954) towards a smarthost.
 *
 * SECURITY: every reply line is bounded (CONN_RBUF_SIZE) and a reply has at most
 * SMTP_CLIENT_MAX_LINES lines; anything else is a protocol error and the connection is
 * dropped. Reply text is stripped of control characters before it is kept. After
 * STARTTLS the EHLO answer from before TLS is forgotten (RFC 3207 4.2). AUTH is never
 * sent in cleartext unless the policy says "none".
 */
#include "smtp_client.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base64.h"
#include "log.h"
#include "xalloc.h"

#define REPLY_LINE_MAX 2048

struct reply {
    int code;
    char status[16];
    char text[SMTP_CLIENT_TEXT_MAX + 1]; /* all lines, joined with " / " */
    struct sbuf lines;                   /* for EHLO: the lines' text, NUL-separated */
};

/* ---- replies -------------------------------------------------------------------- */

static void clean_append(char *dst, size_t size, const char *src, size_t len)
{
    size_t n = strlen(dst);
    for (size_t i = 0; i < len && n + 1 < size; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[n++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    dst[n] = '\0';
}

/* "5.1.1 text" at the start of text, with the class matching the code. */
static size_t parse_enhanced(const char *text, size_t len, int code, char *status, size_t size)
{
    size_t i = 0;
    if (len < 5 || text[0] != '0' + code / 100 || text[1] != '.') return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < len && isdigit((unsigned char)text[i]) && i - start < 3)
            i++;
        if (i == start) return 0;
        if (part == 0) {
            if (i >= len || text[i] != '.') return 0;
            i++;
        }
    }
    if (i < len && text[i] != ' ') return 0;
    if (i + 1 > size) return 0;
    memcpy(status, text, i);
    status[i] = '\0';
    return i < len ? i + 1 : i;
}

static enum conn_status read_reply(struct smtp_client *c, struct reply *r, int64_t deadline)
{
    struct sbuf line = SBUF_INIT(REPLY_LINE_MAX + 2);
    r->code = 0;
    r->status[0] = r->text[0] = '\0';
    sbuf_reset(&r->lines);
    enum conn_status st = CONN_ERROR;
    for (int n = 0; n < SMTP_CLIENT_MAX_LINES; n++) {
        sbuf_reset(&line);
        st = conn_read_line(c->conn, &line, REPLY_LINE_MAX, deadline);
        if (st != CONN_OK) goto out;
        const char *s = sbuf_cstr(&line);
        size_t len = line.len;
        if (len && s[len - 1] == '\r') len--;
        if (len < 3 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
            !isdigit((unsigned char)s[2]) || s[0] < '2' || s[0] > '5' ||
            (len > 3 && s[3] != ' ' && s[3] != '-')) {
            st = CONN_ERROR;
            goto out;
        }
        int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
        if (r->code && code != r->code) {
            st = CONN_ERROR;
            goto out;
        }
        r->code = code;
        const char *t = len > 4 ? s + 4 : "";
        size_t tlen = len > 4 ? len - 4 : 0;
        sbuf_append(&r->lines, t, tlen);
        sbuf_putc(&r->lines, '\0');
        char st_buf[16];
        size_t skip = parse_enhanced(t, tlen, code, st_buf, sizeof(st_buf));
        if (skip && r->status[0] == '\0') snprintf(r->status, sizeof(r->status), "%s", st_buf);
        if (n == 0) {
            snprintf(r->text, sizeof(r->text), "%d ", code);
        } else {
            clean_append(r->text, sizeof(r->text), " / ", 3);
        }
        clean_append(r->text, sizeof(r->text), t, tlen);
        if (len == 3 || s[3] == ' ') {
            st = CONN_OK;
            goto out;
        }
    }
    st = CONN_ERROR; /* too many lines */
out:
    sbuf_free(&line);
    if (st == CONN_OK && r->status[0] == '\0')
        snprintf(r->status, sizeof(r->status), "%d.0.0", r->code / 100);
    return st;
}

static void result_from_reply(struct smtp_result *res, const struct reply *r)
{
    res->outcome = r->code < 400 ? SMTP_OUT_OK : r->code < 500 ? SMTP_OUT_TEMP : SMTP_OUT_PERM;
    snprintf(res->status, sizeof(res->status), "%s", r->status);
    snprintf(res->text, sizeof(res->text), "%s", r->text);
    res->remote = true;
}

static void result_local(struct smtp_result *res, enum smtp_outcome o, const char *status,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void result_local(struct smtp_result *res, enum smtp_outcome o, const char *status,
                         const char *fmt, ...)
{
    res->outcome = o;
    snprintf(res->status, sizeof(res->status), "%s", status);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->text, sizeof(res->text), fmt, ap);
    va_end(ap);
    res->remote = false;
}

static const char *io_error(enum conn_status st)
{
    switch (st) {
    case CONN_TIMEOUT: return "timed out";
    case CONN_EOF: return "connection closed by the server";
    case CONN_TOOLONG: return "reply line too long";
    case CONN_STOPPED: return "interrupted (the service is stopping)";
    default: return "connection error or malformed reply";
    }
}

static void log_proto_out(struct smtp_client *c, const char *line)
{
    log_proto(LOG_SMTP, c->ip, ">>>", line, strlen(line));
}

static enum conn_status send_line(struct smtp_client *c, const char *line, int64_t deadline,
                                  bool flush)
{
    if (strncasecmp(line, "AUTH ", 5) == 0)
        log_proto_out(c, "AUTH ...");
    else
        log_proto_out(c, line);
    conn_puts(c->conn, line);
    conn_puts(c->conn, "\r\n");
    return flush ? conn_flush(c->conn, deadline) : CONN_OK;
}

/* Sends a command and reads its reply. */
static enum conn_status command(struct smtp_client *c, const char *line, struct reply *r,
                                int64_t timeout_ms)
{
    int64_t deadline = conn_now_ms() + timeout_ms;
    enum conn_status st = send_line(c, line, deadline, true);
    if (st == CONN_OK) st = read_reply(c, r, deadline);
    if (st == CONN_OK) log_proto(LOG_SMTP, c->ip, "<<<", r->text, strlen(r->text));
    return st;
}

/* ---- the session ---------------------------------------------------------------- */

static void parse_ehlo(struct smtp_client *c, const struct reply *r)
{
    c->pipelining = c->eightbit = false;
    c->size_limit = 0;
    const char *p = r->lines.data;
    const char *end = p + r->lines.len;
    bool first = true;
    while (p && p < end) {
        size_t n = strlen(p);
        if (!first) {
            if (strcasecmp(p, "PIPELINING") == 0) c->pipelining = true;
            if (strcasecmp(p, "8BITMIME") == 0) c->eightbit = true;
            if (strncasecmp(p, "SIZE", 4) == 0 && (p[4] == ' ' || p[4] == '\0'))
                c->size_limit = strtoull(p + 4, NULL, 10);
        }
        first = false;
        p += n + 1;
    }
}

static bool ehlo_has(const struct reply *r, const char *keyword, const char **args_r)
{
    const char *p = r->lines.data;
    const char *end = p + r->lines.len;
    size_t klen = strlen(keyword);
    bool first = true;
    while (p && p < end) {
        size_t n = strlen(p);
        if (!first && strncasecmp(p, keyword, klen) == 0 && (p[klen] == ' ' || p[klen] == '\0')) {
            if (args_r) *args_r = p + klen;
            return true;
        }
        first = false;
        p += n + 1;
    }
    return false;
}

/* EHLO, or HELO when EHLO is refused. */
static enum conn_status hello(struct smtp_client *c, const struct smtp_client_options *o,
                              struct reply *r)
{
    char line[300];
    snprintf(line, sizeof(line), "EHLO %s", o->helo_name);
    enum conn_status st = command(c, line, r, o->command_timeout_ms);
    if (st != CONN_OK) return st;
    if (r->code == 250) {
        c->esmtp = true;
        parse_ehlo(c, r);
        return CONN_OK;
    }
    if (r->code >= 500) {
        c->esmtp = false;
        c->pipelining = c->eightbit = false;
        c->size_limit = 0;
        snprintf(line, sizeof(line), "HELO %s", o->helo_name);
        return command(c, line, r, o->command_timeout_ms);
    }
    return CONN_OK;
}

static bool auth(struct smtp_client *c, const struct smtp_client_options *o,
                 const struct reply *ehlo, struct smtp_result *res)
{
    const char *mechs = NULL;
    if (!ehlo_has(ehlo, "AUTH", &mechs)) {
        result_local(res, SMTP_OUT_TEMP, "4.7.0",
                     "%s does not offer AUTH, but [SMTP] SmarthostUser is set", c->host);
        return false;
    }
    bool plain = strcasestr(mechs, "PLAIN") != NULL;
    bool login = strcasestr(mechs, "LOGIN") != NULL;
    struct reply r = {.lines = SBUF_INIT(65536)};
    struct sbuf raw = SBUF_INIT(2048), b64 = SBUF_INIT(4096);
    bool ok = false;
    enum conn_status st;
    if (plain || !login) {
        sbuf_putc(&raw, '\0');
        sbuf_appends(&raw, o->auth_user);
        sbuf_putc(&raw, '\0');
        sbuf_appends(&raw, o->auth_password);
        base64_encode(raw.data, raw.len, &b64);
        char *line = xasprintf("AUTH PLAIN %s", sbuf_cstr(&b64));
        st = command(c, line, &r, o->command_timeout_ms);
        free(line);
    } else {
        st = command(c, "AUTH LOGIN", &r, o->command_timeout_ms);
        if (st == CONN_OK && r.code == 334) {
            base64_encode(o->auth_user, strlen(o->auth_user), &b64);
            log_proto_out(c, "(user name)");
            int64_t deadline = conn_now_ms() + o->command_timeout_ms;
            conn_printf(c->conn, "%s\r\n", sbuf_cstr(&b64));
            st = conn_flush(c->conn, deadline);
            if (st == CONN_OK) st = read_reply(c, &r, deadline);
            if (st == CONN_OK && r.code == 334) {
                sbuf_reset(&b64);
                base64_encode(o->auth_password, strlen(o->auth_password), &b64);
                log_proto_out(c, "(password)");
                deadline = conn_now_ms() + o->command_timeout_ms;
                conn_printf(c->conn, "%s\r\n", sbuf_cstr(&b64));
                st = conn_flush(c->conn, deadline);
                if (st == CONN_OK) st = read_reply(c, &r, deadline);
            }
        }
    }
    if (st != CONN_OK) {
        result_local(res, SMTP_OUT_TEMP, "4.4.2", "%s: AUTH: %s", c->host, io_error(st));
    } else if (r.code != 235) {
        /* a refused login is a configuration problem here: keep the mail queued */
        result_from_reply(res, &r);
        res->outcome = SMTP_OUT_TEMP;
        snprintf(res->status, sizeof(res->status), "4.7.0");
    } else {
        c->auth_ok = true;
        ok = true;
    }
    OPENSSL_cleanse(raw.data ? raw.data : (char *)"", raw.len);
    sbuf_free(&raw);
    sbuf_free(&b64);
    sbuf_free(&r.lines);
    return ok;
}

static struct smtp_client *open_once(const char *host, const char *ip, int port,
                                     const struct smtp_client_options *o, bool try_tls,
                                     bool *tls_failed_r, struct smtp_result *res)
{
    char err[256];
    *tls_failed_r = false;
    int64_t deadline = conn_now_ms() + o->connect_timeout_ms;
    struct conn *conn = conn_connect(ip, port, deadline, o->interrupt, err, sizeof(err));
    if (conn == NULL) {
        result_local(res, SMTP_OUT_TEMP, "4.4.1", "%s[%s]: %s", host, ip, err);
        return NULL;
    }
    struct smtp_client *c = xcalloc(1, sizeof(*c));
    c->conn = conn;
    snprintf(c->host, sizeof(c->host), "%s", host);
    snprintf(c->ip, sizeof(c->ip), "%s", ip);
    c->port = port;
    struct reply r = {.lines = SBUF_INIT(65536)};

    enum conn_status st = read_reply(c, &r, conn_now_ms() + o->command_timeout_ms);
    if (st != CONN_OK) {
        result_local(res, SMTP_OUT_TEMP, "4.4.2", "%s[%s]: greeting: %s", host, ip, io_error(st));
        goto fail;
    }
    log_proto(LOG_SMTP, c->ip, "<<<", r.text, strlen(r.text));
    if (r.code != 220) {
        /* the next address is tried either way; if this was the last one, a 5xx
         * greeting ("no SMTP service here", RFC 5321 3.1) fails the message for good */
        result_from_reply(res, &r);
        if (res->outcome == SMTP_OUT_OK) res->outcome = SMTP_OUT_TEMP;
        goto fail;
    }
    st = hello(c, o, &r);
    if (st != CONN_OK || r.code != 250) {
        if (st != CONN_OK)
            result_local(res, SMTP_OUT_TEMP, "4.4.2", "%s[%s]: EHLO: %s", host, ip, io_error(st));
        else {
            result_from_reply(res, &r); /* HELO refused too: 5xx is for good */
            if (res->outcome == SMTP_OUT_OK) res->outcome = SMTP_OUT_TEMP;
        }
        goto fail;
    }
    bool want_tls = try_tls && o->tls != TLS_MODE_NONE && o->tls_ctx != NULL;
    bool offered = c->esmtp && ehlo_has(&r, "STARTTLS", NULL);
    if (want_tls && !offered && o->tls >= TLS_MODE_REQUIRE) {
        result_local(res, SMTP_OUT_TEMP, "4.7.4",
                     "%s[%s] does not offer STARTTLS, which the TLS policy requires", host, ip);
        goto fail;
    }
    if (want_tls && offered) {
        st = command(c, "STARTTLS", &r, o->command_timeout_ms);
        if (st != CONN_OK || r.code != 220) {
            if (st != CONN_OK)
                result_local(res, SMTP_OUT_TEMP, "4.4.2", "%s[%s]: STARTTLS: %s", host, ip,
                             io_error(st));
            else
                result_from_reply(res, &r), res->outcome = SMTP_OUT_TEMP;
            *tls_failed_r = true;
            goto fail;
        }
        const char *why = NULL;
        st = conn_starttls_client(c->conn, o->tls_ctx, o->verify_name,
                                  conn_now_ms() + o->command_timeout_ms, &why);
        if (st != CONN_OK) {
            result_local(res, SMTP_OUT_TEMP, "4.7.5", "%s[%s]: TLS handshake failed: %s", host, ip,
                         why ? why : "error");
            *tls_failed_r = true;
            goto fail;
        }
        c->tls = true;
        c->tls_verified = conn_tls_verified(c->conn, &why);
        if (o->tls == TLS_MODE_VERIFY && !c->tls_verified) {
            result_local(res, SMTP_OUT_TEMP, "4.7.5",
                         "%s[%s]: the certificate does not verify for %s (%s), which the TLS "
                         "policy requires",
                         host, ip, o->verify_name ? o->verify_name : host, why);
            goto fail;
        }
        log_line(LOG_SMTP, c->ip, "TLS with %s: %s%s", host, conn->tls_info,
                 c->tls_verified ? ", certificate verified" : "");
        st = hello(c, o, &r); /* RFC 3207 4.2: forget what was said before TLS */
        if (st != CONN_OK || r.code != 250) {
            if (st != CONN_OK)
                result_local(res, SMTP_OUT_TEMP, "4.4.2", "%s[%s]: EHLO after STARTTLS: %s", host,
                             ip, io_error(st));
            else
                result_from_reply(res, &r), res->outcome = SMTP_OUT_TEMP;
            goto fail;
        }
    }
    if (o->auth_user && *o->auth_user) {
        if (!c->tls && o->tls != TLS_MODE_NONE) {
            result_local(res, SMTP_OUT_TEMP, "4.7.0",
                         "%s[%s]: not sending the password without TLS", host, ip);
            goto fail;
        }
        if (!auth(c, o, &r, res)) goto fail;
    }
    sbuf_free(&r.lines);
    c->usable = true;
    c->idle_since = conn_now_ms();
    return c;
fail:
    sbuf_free(&r.lines);
    c->usable = false;
    smtp_client_close(&c);
    return NULL;
}

struct smtp_client *smtp_client_open(const char *host, const char *ip, int port,
                                     const struct smtp_client_options *o, struct smtp_result *res)
{
    bool tls_failed;
    struct smtp_client *c = open_once(host, ip, port, o, true, &tls_failed, res);
    if (c == NULL && tls_failed && o->tls == TLS_MODE_MAY) {
        /* opportunistic TLS that fails is retried in cleartext, as other MTAs do */
        log_line(LOG_SMTP, ip, "%s; trying again without TLS", res->text);
        c = open_once(host, ip, port, o, false, &tls_failed, res);
    }
    return c;
}

/* ---- the message ---------------------------------------------------------------- */

/* state: 0 = at the start of a line, 1 = inside a line, 2 = inside a line after CR */
void smtp_client_stuff(const char *data, size_t len, int *state, struct sbuf *out)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        if (*state == 2 && ch != '\n') {
            /* a bare CR: end the line there */
            sbuf_append(out, data + start, i - start);
            sbuf_append(out, "\n", 1);
            start = i;
            *state = 0;
        }
        if (*state == 0 && ch == '.') {
            sbuf_append(out, data + start, i - start);
            sbuf_append(out, ".", 1);
            start = i;
        }
        if (ch == '\n') {
            if (*state != 2) {
                sbuf_append(out, data + start, i - start);
                sbuf_append(out, "\r", 1);
                start = i;
            }
            *state = 0;
        } else if (ch == '\r') {
            *state = 2;
        } else {
            *state = 1;
        }
    }
    sbuf_append(out, data + start, len - start);
}

void smtp_client_stuff_end(int *state, struct sbuf *out)
{
    if (*state == 2)
        sbuf_append(out, "\n", 1);
    else if (*state == 1)
        sbuf_append(out, "\r\n", 2);
    *state = 0;
}

static enum conn_status send_body(struct smtp_client *c, int fd, uint64_t off, uint64_t size,
                                  int64_t timeout_ms)
{
    char buf[65536];
    struct sbuf out = SBUF_INIT(sizeof(buf) * 3 + 16);
    int state = 0;
    uint64_t left = size;
    enum conn_status st = CONN_OK;
    do {
        size_t want = left > sizeof(buf) ? sizeof(buf) : (size_t)left;
        ssize_t n = want ? pread(fd, buf, want, (off_t)off) : 0;
        if (n < 0 && errno == EINTR) continue;
        if (want && n <= 0) {
            st = CONN_ERROR;
            break;
        }
        sbuf_reset(&out);
        smtp_client_stuff(buf, (size_t)n, &state, &out);
        left -= (uint64_t)n;
        off += (uint64_t)n;
        if (left == 0) {
            /* the end of data goes in the same write as the last of the message */
            smtp_client_stuff_end(&state, &out);
            sbuf_append(&out, ".\r\n", 3);
        }
        conn_write(c->conn, out.data, out.len);
        st = conn_flush(c->conn, conn_now_ms() + timeout_ms);
    } while (st == CONN_OK && left > 0);
    sbuf_free(&out);
    return st;
}

static void fail_all(struct smtp_result *res, size_t n, const struct smtp_result *why)
{
    for (size_t i = 0; i < n; i++)
        res[i] = *why;
}

enum smtp_outcome smtp_client_send(struct smtp_client *c, const char *from, char *const *rcpts,
                                   size_t nrcpts, int msg_fd, uint64_t offset, uint64_t size,
                                   const struct smtp_client_options *o, struct smtp_result *res)
{
    struct smtp_result conn_fail;
    struct reply r = {.lines = SBUF_INIT(65536)};
    enum conn_status st = CONN_OK;
    const char *stage = "MAIL FROM";
    c->transactions++;
    memset(res, 0, nrcpts * sizeof(*res)); /* remote = false: no answer yet */

    if (c->size_limit && size > c->size_limit) {
        result_local(&conn_fail, SMTP_OUT_PERM, "5.3.4",
                     "message of %" PRIu64 " bytes is larger than %s accepts (%" PRIu64 ")", size,
                     c->host, c->size_limit);
        fail_all(res, nrcpts, &conn_fail);
        sbuf_free(&r.lines);
        return SMTP_OUT_OK; /* the connection is still fine */
    }

    char mail[600];
    int ml = snprintf(mail, sizeof(mail), "MAIL FROM:<%s>", from);
    if (c->esmtp && c->size_limit)
        ml += snprintf(mail + ml, sizeof(mail) - (size_t)ml, " SIZE=%" PRIu64, size);
    else if (c->esmtp && size > 0 && ml < (int)sizeof(mail))
        ml += snprintf(mail + ml, sizeof(mail) - (size_t)ml, "%s", "");
    if (c->esmtp && c->eightbit && ml < (int)sizeof(mail))
        snprintf(mail + ml, sizeof(mail) - (size_t)ml, " BODY=8BITMIME");

    int64_t deadline = conn_now_ms() + o->command_timeout_ms;
    size_t accepted = 0;
    bool mail_ok = false;
    if (c->pipelining) {
        send_line(c, mail, deadline, false);
        for (size_t i = 0; i < nrcpts; i++) {
            char *line = xasprintf("RCPT TO:<%s>", rcpts[i]);
            send_line(c, line, deadline, false);
            free(line);
        }
        send_line(c, "DATA", deadline, false);
        st = conn_flush(c->conn, deadline);
        if (st != CONN_OK) goto io_fail;
        st = read_reply(c, &r, conn_now_ms() + o->command_timeout_ms);
        if (st != CONN_OK) goto io_fail;
        log_proto(LOG_SMTP, c->ip, "<<<", r.text, strlen(r.text));
        struct smtp_result mail_res;
        result_from_reply(&mail_res, &r);
        mail_ok = r.code == 250;
        for (size_t i = 0; i < nrcpts; i++) {
            stage = "RCPT TO";
            st = read_reply(c, &r, conn_now_ms() + o->command_timeout_ms);
            if (st != CONN_OK) goto io_fail;
            log_proto(LOG_SMTP, c->ip, "<<<", r.text, strlen(r.text));
            if (!mail_ok) {
                res[i] = mail_res;
            } else {
                result_from_reply(&res[i], &r);
                if (r.code == 250 || r.code == 251) accepted++;
            }
        }
        stage = "DATA";
        st = read_reply(c, &r, conn_now_ms() + o->command_timeout_ms);
        if (st != CONN_OK) goto io_fail;
        log_proto(LOG_SMTP, c->ip, "<<<", r.text, strlen(r.text));
        if (r.code == 354 && accepted == 0) {
            /* RFC 2920 3.1: DATA accepted although no recipient was: send nothing */
            conn_puts(c->conn, ".\r\n");
            st = conn_flush(c->conn, conn_now_ms() + o->command_timeout_ms);
            if (st == CONN_OK) st = read_reply(c, &r, conn_now_ms() + o->data_timeout_ms);
            if (st != CONN_OK) goto io_fail;
            goto done_no_data;
        }
    } else {
        st = command(c, mail, &r, o->command_timeout_ms);
        if (st != CONN_OK) goto io_fail;
        if (r.code != 250) {
            struct smtp_result mail_res;
            result_from_reply(&mail_res, &r);
            fail_all(res, nrcpts, &mail_res);
            goto reset;
        }
        mail_ok = true;
        for (size_t i = 0; i < nrcpts; i++) {
            stage = "RCPT TO";
            char *line = xasprintf("RCPT TO:<%s>", rcpts[i]);
            st = command(c, line, &r, o->command_timeout_ms);
            free(line);
            if (st != CONN_OK) goto io_fail;
            result_from_reply(&res[i], &r);
            if (r.code == 250 || r.code == 251) accepted++;
        }
        if (accepted == 0) goto reset;
        stage = "DATA";
        st = command(c, "DATA", &r, o->command_timeout_ms);
        if (st != CONN_OK) goto io_fail;
    }
    if (!mail_ok || accepted == 0) goto done_no_data;
    if (r.code != 354) {
        struct smtp_result data_res;
        result_from_reply(&data_res, &r);
        if (data_res.outcome == SMTP_OUT_OK) data_res.outcome = SMTP_OUT_TEMP;
        for (size_t i = 0; i < nrcpts; i++)
            if (res[i].outcome == SMTP_OUT_OK) res[i] = data_res;
        goto reset;
    }
    stage = "the message";
    st = send_body(c, msg_fd, offset, size, o->command_timeout_ms);
    if (st != CONN_OK) goto io_fail;
    stage = "the end of data";
    st = read_reply(c, &r, conn_now_ms() + o->data_timeout_ms);
    if (st != CONN_OK) goto io_fail;
    log_proto(LOG_SMTP, c->ip, "<<<", r.text, strlen(r.text));
    struct smtp_result final;
    result_from_reply(&final, &r);
    for (size_t i = 0; i < nrcpts; i++)
        if (res[i].outcome == SMTP_OUT_OK) res[i] = final;
    sbuf_free(&r.lines);
    c->idle_since = conn_now_ms();
    return SMTP_OUT_OK;

done_no_data:
    if (!mail_ok) {
        /* res[] already has MAIL's reply */
    }
reset:
    sbuf_free(&r.lines);
    c->usable = smtp_client_reset(c, o);
    c->idle_since = conn_now_ms();
    return SMTP_OUT_OK;

io_fail:
    result_local(&conn_fail, SMTP_OUT_TEMP, st == CONN_TIMEOUT ? "4.4.2" : "4.4.2",
                 "%s[%s]: %s while sending %s", c->host, c->ip, io_error(st), stage);
    /* a recipient the server already refused keeps that answer; the others (accepted
     * or not answered yet) did not get the message */
    for (size_t i = 0; i < nrcpts; i++)
        if (!(res[i].remote && res[i].outcome != SMTP_OUT_OK)) res[i] = conn_fail;
    c->usable = false;
    sbuf_free(&r.lines);
    return SMTP_OUT_TEMP;
}

int smtp_client_command(struct smtp_client *c, const char *line,
                        const struct smtp_client_options *o, struct smtp_result *res)
{
    if (c->conn == NULL || !c->usable) {
        result_local(res, SMTP_OUT_TEMP, "4.4.2", "%s[%s]: the connection is closed", c->host,
                     c->ip);
        return -1;
    }
    struct reply r = {.lines = SBUF_INIT(65536)};
    enum conn_status st = command(c, line, &r, o->command_timeout_ms);
    int code = -1;
    if (st == CONN_OK) {
        result_from_reply(res, &r);
        code = r.code;
    } else {
        result_local(res, SMTP_OUT_TEMP, "4.4.2", "%s[%s]: %s", c->host, c->ip, io_error(st));
        c->usable = false;
    }
    sbuf_free(&r.lines);
    return code;
}

bool smtp_client_reset(struct smtp_client *c, const struct smtp_client_options *o)
{
    if (c->conn == NULL) return false;
    struct reply r = {.lines = SBUF_INIT(65536)};
    enum conn_status st = command(c, "RSET", &r, o->command_timeout_ms);
    bool ok = st == CONN_OK && r.code == 250;
    sbuf_free(&r.lines);
    return ok;
}

void smtp_client_close(struct smtp_client **cp)
{
    struct smtp_client *c = *cp;
    if (c == NULL) return;
    if (c->conn && c->usable) {
        /* QUIT without waiting long for the answer */
        struct reply r = {.lines = SBUF_INIT(4096)};
        int64_t deadline = conn_now_ms() + 2000;
        if (send_line(c, "QUIT", deadline, true) == CONN_OK) read_reply(c, &r, deadline);
        sbuf_free(&r.lines);
    }
    conn_free(&c->conn);
    free(c);
    *cp = NULL;
}

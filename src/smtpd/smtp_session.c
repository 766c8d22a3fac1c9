/* smtp_session.c - one SMTP conversation, greeting to QUIT
 *
 * Owns the socket for its thread; reads bounded command lines, parses them with
 * smtp_parse.c and dispatches through the command table below. Replies are buffered
 * and sent when the client has no more pipelined commands waiting (RFC 2920).
 *
 * SECURITY: every byte read here comes from the network. Lines are bounded before they
 * are parsed (over-long lines are skipped whole, NUL bytes refused); after STARTTLS
 * anything pipelined in plaintext is discarded and the session starts over; HTTP
 * requests sent to the SMTP port end the connection at once.
 */
#include "smtp_session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "policy.h"
#include "sasl.h"
#include "service.h"
#include "smtp_parse.h"
#include "xalloc.h"

static const char *const state_names[] = {"INIT", "HELO", "MAIL", "RCPT", "CLOSE"};

void smtp_set_state(struct smtp_session *s, enum smtp_state state)
{
    s->state = state;
}

void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof(buf) - 2 ? (size_t)n : sizeof(buf) - 3;
    log_proto(LOG_SMTP, s->ip, ">>>", buf, len);
    buf[len++] = '\r';
    buf[len++] = '\n';
    conn_write(s->conn, buf, len);
}

void smtp_flush(struct smtp_session *s)
{
    if (conn_flush(s->conn, conn_now_ms() + 60000) != CONN_OK) smtp_set_state(s, SMTP_STATE_CLOSE);
}

int64_t smtp_command_deadline(const struct smtp_session *s)
{
    return conn_now_ms() + (int64_t)s->cfg->smtp.timeout * 1000;
}

int64_t smtp_data_deadline(const struct smtp_session *s)
{
    return conn_now_ms() + (int64_t)s->cfg->data_timeout * 1000;
}

void smtp_txn_reset(struct smtp_session *s)
{
    xfree(s->sender);
    for (size_t i = 0; i < s->nrcpts; i++) {
        free(s->rcpts[i].address);
        resolved_clear(&s->rcpts[i].res);
    }
    xfree(s->rcpts);
    s->nrcpts = 0;
    s->declared_size = 0;
    if (s->temp_open) {
        spool_file_discard(&s->temp);
        s->temp_open = false;
    }
    s->bdat_active = false;
    s->bdat_failed = false;
    if (s->state == SMTP_STATE_MAIL || s->state == SMTP_STATE_RCPT)
        smtp_set_state(s, SMTP_STATE_HELO);
}

/* ---- connection-level commands -------------------------------------------------- */

/* The part HELO and EHLO share; false after replying with an error. */
static bool cmd_helo_common(struct smtp_session *s, const char *arg, bool esmtp)
{
    if (*arg == '\0') {
        smtp_reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        s->bad_commands++;
        return false;
    }
    if (!smtp_helo_valid(arg)) {
        smtp_reply(s, "501 5.5.4 Invalid domain name in %s", esmtp ? "EHLO" : "HELO");
        s->bad_commands++;
        return false;
    }
    smtp_txn_reset(s);
    free(s->helo);
    s->helo = xstrdup(arg);
    s->esmtp = esmtp;
    smtp_set_state(s, SMTP_STATE_HELO);
    return true;
}

static void cmd_helo(struct smtp_session *s, const char *arg)
{
    if (cmd_helo_common(s, arg, false)) smtp_reply(s, "250 %s", s->cfg->hostname);
}

static void cmd_ehlo(struct smtp_session *s, const char *arg)
{
    if (!cmd_helo_common(s, arg, true)) return;
    SSL_CTX *tls = server_get_tls(s->session->server);
    smtp_reply(s, "250-%s Hello %s [%s]", s->cfg->hostname, s->helo, s->ip);
    smtp_reply(s, "250-PIPELINING");
    smtp_reply(s, "250-SIZE %llu", (unsigned long long)s->cfg->max_message_size);
    if (tls && !conn_is_tls(s->conn)) smtp_reply(s, "250-STARTTLS");
    if (smtp_auth_allowed(s) && s->auth_user == NULL)
        smtp_reply(s, "250-AUTH %s", sasl_mech_list());
    smtp_reply(s, "250-ETRN");
    smtp_reply(s, "250-ENHANCEDSTATUSCODES");
    smtp_reply(s, "250-8BITMIME");
    smtp_reply(s, "250 CHUNKING");
    SSL_CTX_free(tls);
}

static void cmd_starttls(struct smtp_session *s, const char *arg)
{
    if (*arg) {
        smtp_reply(s, "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    if (conn_is_tls(s->conn)) {
        smtp_reply(s, "503 5.5.1 Error: TLS already active");
        return;
    }
    if (s->state == SMTP_STATE_MAIL || s->state == SMTP_STATE_RCPT) {
        smtp_reply(s, "503 5.5.1 Error: STARTTLS not allowed during a mail transaction");
        return;
    }
    SSL_CTX *tls = server_get_tls(s->session->server);
    if (tls == NULL) {
        smtp_reply(s, "454 4.7.0 TLS not available");
        return;
    }
    smtp_reply(s, "220 2.0.0 Ready to start TLS");
    smtp_flush(s);
    const char *err;
    if (s->state != SMTP_STATE_CLOSE &&
        conn_starttls(s->conn, tls, smtp_command_deadline(s), &err) != CONN_OK) {
        log_line(LOG_SMTP, s->ip, "STARTTLS failed: %s", err);
        smtp_set_state(s, SMTP_STATE_CLOSE);
    } else if (s->state != SMTP_STATE_CLOSE) {
        log_line(LOG_SMTP, s->ip, "TLS started: %s", s->conn->tls_info);
        /* RFC 3207 4.2: forget everything learned before TLS */
        smtp_txn_reset(s);
        xfree(s->helo);
        xfree(s->auth_user);
        s->esmtp = false;
        smtp_set_state(s, SMTP_STATE_INIT);
    }
    SSL_CTX_free(tls);
}

static void cmd_rset(struct smtp_session *s, const char *arg)
{
    if (*arg) {
        smtp_reply(s, "501 5.5.4 Syntax: RSET");
        return;
    }
    smtp_txn_reset(s);
    smtp_reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtp_session *s, const char *arg)
{
    (void)arg;
    smtp_reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, const char *arg)
{
    (void)arg;
    smtp_reply(s, "221 2.0.0 Bye");
    smtp_set_state(s, SMTP_STATE_CLOSE);
}

static void cmd_vrfy(struct smtp_session *s, const char *arg)
{
    if (*arg == '\0') {
        smtp_reply(s, "501 5.5.4 Syntax: VRFY address");
        return;
    }
    smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(struct smtp_session *s, const char *arg)
{
    (void)arg;
    smtp_reply(s, "502 5.5.1 Error: EXPN is disabled");
}

static void cmd_help(struct smtp_session *s, const char *arg)
{
    (void)arg;
    smtp_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY "
                  "STARTTLS AUTH ETRN HELP");
}

typedef void smtp_cmd_fn(struct smtp_session *s, const char *arg);

static const struct {
    enum smtp_verb verb;
    smtp_cmd_fn *fn;
} commands[] = {
    {SMTP_CMD_HELO, cmd_helo},         {SMTP_CMD_EHLO, cmd_ehlo},
    {SMTP_CMD_MAIL, smtp_cmd_mail},    {SMTP_CMD_RCPT, smtp_cmd_rcpt},
    {SMTP_CMD_DATA, smtp_cmd_data},    {SMTP_CMD_BDAT, smtp_cmd_bdat},
    {SMTP_CMD_RSET, cmd_rset},         {SMTP_CMD_NOOP, cmd_noop},
    {SMTP_CMD_QUIT, cmd_quit},         {SMTP_CMD_VRFY, cmd_vrfy},
    {SMTP_CMD_EXPN, cmd_expn},         {SMTP_CMD_HELP, cmd_help},
    {SMTP_CMD_STARTTLS, cmd_starttls}, {SMTP_CMD_AUTH, smtp_cmd_auth},
    {SMTP_CMD_ETRN, smtp_cmd_etrn},
};

/* An HTTP request (a browser or proxy abusing the port): close without a reply. */
static bool looks_like_http(const char *line)
{
    static const char *const verbs[] = {"GET ",     "POST ",    "HEAD ",  "PUT ",
                                        "CONNECT ", "OPTIONS ", "DELETE "};
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strncmp(line, verbs[i], strlen(verbs[i])) == 0) return true;
    return strncmp(line, "Host:", 5) == 0 || strncmp(line, "User-Agent:", 11) == 0;
}

/* Logs a command line, hiding AUTH payloads. */
static void log_command(struct smtp_session *s, const struct smtp_command *cmd, const char *line,
                        size_t len)
{
    if (cmd->verb == SMTP_CMD_AUTH) {
        size_t mech_len = strcspn(cmd->arg, " ");
        bool has_response = cmd->arg[mech_len] != '\0';
        char buf[96];
        snprintf(buf, sizeof(buf), "AUTH %.*s%s", (int)(mech_len > 40 ? 40 : mech_len), cmd->arg,
                 has_response ? " ****" : "");
        log_proto(LOG_SMTP, s->ip, "<<<", buf, strlen(buf));
        return;
    }
    log_proto(LOG_SMTP, s->ip, "<<<", line, len);
}

static void dispatch(struct smtp_session *s, const char *line, size_t len)
{
    struct smtp_command cmd;
    if (smtp_parse_command(line, len, &cmd) < 0 || cmd.verb == SMTP_CMD_UNKNOWN) {
        log_proto_unrecognized(LOG_SMTP, s->ip, line, len);
        if (looks_like_http(line)) {
            log_line(LOG_SMTP, s->ip, "HTTP request on the SMTP port; connection closed");
            smtp_set_state(s, SMTP_STATE_CLOSE);
            return;
        }
        smtp_reply(s, "500 5.5.2 Error: command not recognized");
        s->bad_commands++;
        return;
    }
    log_command(s, &cmd, line, len);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (commands[i].verb == cmd.verb) {
            commands[i].fn(s, cmd.arg);
            return;
        }
    }
    smtp_reply(s, "502 5.5.1 Error: command not implemented");
}

static void greet(struct smtp_session *s)
{
    const char *banner = s->cfg->banner && *s->cfg->banner ? s->cfg->banner : "ESMTP Alkaid";
    smtp_reply(s, "220 %s %s", s->cfg->hostname, banner);
}

void smtp_session_run(struct session *session)
{
    struct smtp_session s_, *s = &s_;
    memset(s, 0, sizeof(*s));
    s->session = session;
    s->conn = session->conn;
    s->cfg = service_config();
    s->kind = (enum smtp_port_kind)session->listener->kind;
    s->ip = session->conn->ip;
    s->relay_client = policy_ip_listed(s->cfg->relay_ips, s->ip);
    sbuf_init(&s->dataout, CONN_RBUF_SIZE * 2 + 64);

    log_line(LOG_SMTP, s->ip, "Connected to %s port %d%s%s", session->listener->name,
             s->conn->local_port, conn_is_tls(s->conn) ? ", " : "",
             conn_is_tls(s->conn) ? s->conn->tls_info : "");
    greet(s);

    struct sbuf line = SBUF_INIT(SMTP_MAX_MAIL_LINE + 2);
    while (s->state != SMTP_STATE_CLOSE) {
        if (conn_pending(s->conn) == 0) {
            smtp_flush(s);
            if (s->state == SMTP_STATE_CLOSE) break;
        }
        enum conn_status st =
            server_stopping(session->server)
                ? CONN_STOPPED
                : conn_read_line(s->conn, &line, SMTP_MAX_MAIL_LINE, smtp_command_deadline(s));
        /* only MAIL gets the extra room of its parameters */
        if (st == CONN_OK && line.len + 2 > SMTP_MAX_COMMAND_LINE &&
            strncasecmp(line.data, "MAIL ", 5) != 0)
            st = CONN_TOOLONG;
        if (st == CONN_STOPPED) {
            smtp_reply(s, "421 4.3.2 %s Service shutting down, try again later", s->cfg->hostname);
            break;
        }
        if (st == CONN_TIMEOUT) {
            smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
            log_line(LOG_SMTP, s->ip, "Timeout in state %s", state_names[s->state]);
            break;
        }
        if (st == CONN_EOF || st == CONN_ERROR) {
            if (s->state != SMTP_STATE_INIT || s->messages)
                log_line(LOG_SMTP, s->ip, "Connection lost in state %s", state_names[s->state]);
            break;
        }
        if (st == CONN_TOOLONG) {
            log_line(LOG_SMTP, s->ip, "<<< [command line longer than %d octets]",
                     SMTP_MAX_COMMAND_LINE);
            smtp_reply(s, "500 5.5.2 Error: line too long");
            s->bad_commands++;
        } else if (strlen(line.data) != line.len) {
            log_line(LOG_SMTP, s->ip, "<<< [command with a NUL character]");
            smtp_reply(s, "500 5.5.2 Error: NUL character in command");
            s->bad_commands++;
        } else {
            dispatch(s, line.data, line.len);
        }
        if (s->bad_commands >= SMTP_MAX_BAD_COMMANDS && s->state != SMTP_STATE_CLOSE) {
            smtp_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
            smtp_set_state(s, SMTP_STATE_CLOSE);
        }
    }
    conn_flush(s->conn, conn_now_ms() + 10000);
    log_line(LOG_SMTP, s->ip, "Disconnected: %u message%s, %llu bytes in, %llu bytes out",
             s->messages, s->messages == 1 ? "" : "s", (unsigned long long)s->conn->bytes_in,
             (unsigned long long)s->conn->bytes_out);
    smtp_txn_reset(s);
    sbuf_free(&line);
    sbuf_free(&s->dataout);
    free(s->helo);
    free(s->auth_user);
}

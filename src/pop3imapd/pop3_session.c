/* pop3_session.c - one POP3 conversation, greeting to QUIT (RFC 1939, 2449, 2595, 5034)
 *
 * The loop: wait for a command line (flushing replies first, and only when no
 * pipelined input is pending), check it, look its keyword up in the command table,
 * check the state and the argument count there, and run the handler. The state is an
 * enum changed only by set_state(). Replies go through reply(), which logs them;
 * multi-line bodies (LIST, UIDL, CAPA, RETR, TOP) are not logged line by line.
 *
 * Authentication (USER/PASS and AUTH) ends in one place, login(), which locks and lists
 * the maildrop (pop3_maildrop.c). Retrieval streams the message file through the
 * dot-stuffing writer (pop3_dotstuff.c) into the connection's buffer, which conn.c
 * flushes whenever it fills, so memory stays bounded whatever the message size.
 *
 * SECURITY: see pop3_session.h. The lines that carry secrets (PASS, AUTH and its
 * continuation lines) are logged redacted and wiped from memory after use. The client's
 * address is the key for authfail.h; a locked-out address is told so (a temporary
 * failure) and disconnected before any password is checked.
 */
#include "pop3_session.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "authfail.h"
#include "log.h"
#include "mailbox.h"
#include "password.h"
#include "pop3_dotstuff.h"
#include "pop3_maildrop.h"
#include "sasl.h"
#include "xalloc.h"

#define REPLY_MAX 512

enum pop3_state {
    POP3_STATE_AUTHORIZATION,
    POP3_STATE_TRANSACTION,
    POP3_STATE_UPDATE,
    POP3_STATE_CLOSE, /* QUIT done, fatal error, timeout, shutdown */
};

static const char *const state_names[] = {"AUTHORIZATION", "TRANSACTION", "UPDATE", "CLOSE"};

struct pop3_session {
    struct authfail_attempt af; /* the authentication attempt in progress */
    struct conn *conn;
    struct pop3_context *ctx;
    const struct alkaid_config *cfg;
    const char *ip;
    enum pop3_state state;
    unsigned bad_commands;
    unsigned auth_failures;
    char *user_name;               /* from USER, until PASS */
    struct store_account *account; /* the last account looked up for a login */
    char *login;                   /* the logged-in address */
    struct pop3_maildrop *drop;
    unsigned retrieved;
    struct sbuf line;
    char *readbuf; /* POP3_READ_CHUNK, allocated on the first RETR/TOP */
};

/* ---- small helpers ---- */

static void set_state(struct pop3_session *s, enum pop3_state state)
{
    if (s->state == state) return;
    if (state == POP3_STATE_UPDATE)
        log_line(LOG_POP3, s->ip, "State %s -> %s", state_names[s->state], state_names[state]);
    s->state = state;
}

static bool stopping(const struct pop3_session *s)
{
    return s->ctx->server != NULL && server_stopping(s->ctx->server);
}

static int64_t command_deadline(const struct pop3_session *s)
{
    int timeout = s->cfg->pop3.timeout > 0 ? s->cfg->pop3.timeout : POP3_DEFAULT_TIMEOUT;
    return conn_now_ms() + (int64_t)timeout * 1000;
}

#define COUNT(s, field, n) __atomic_fetch_add(&(s)->ctx->stats.field, (n), __ATOMIC_RELAXED)

/* One reply line (no CRLF in fmt), logged. */
static void reply(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reply(struct pop3_session *s, const char *fmt, ...)
{
    char buf[REPLY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof(buf) - 2 ? (size_t)n : sizeof(buf) - 3;
    log_proto(LOG_POP3, s->ip, ">>>", buf, len);
    buf[len++] = '\r';
    buf[len++] = '\n';
    conn_write(s->conn, buf, len);
}

/* A line of a multi-line body (not logged). */
static void body_line(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void body_line(struct pop3_session *s, const char *fmt, ...)
{
    char buf[REPLY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof(buf) - 2 ? (size_t)n : sizeof(buf) - 3;
    buf[len++] = '\r';
    buf[len++] = '\n';
    conn_write(s->conn, buf, len);
}

static void bad_command(struct pop3_session *s, const char *text)
{
    s->bad_commands++;
    if (s->bad_commands >= POP3_MAX_BAD_COMMANDS) {
        reply(s, "%s", text);
        reply(s, "-ERR Too many bad commands, closing connection");
        log_line(LOG_POP3, s->ip, "Disconnected: too many bad commands");
        set_state(s, POP3_STATE_CLOSE);
        return;
    }
    reply(s, "%s", text);
}

/* Sleeps ms milliseconds, waking early when the service stops. */
static void pause_ms(const struct pop3_session *s, unsigned ms)
{
    while (ms > 0 && !stopping(s)) {
        unsigned step = ms > POP3_STOP_POLL_MS ? POP3_STOP_POLL_MS : ms;
        struct timespec ts = {.tv_sec = step / 1000, .tv_nsec = (long)(step % 1000) * 1000000};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* Whether USER, PASS and AUTH may be used on this connection now. */
static bool auth_allowed(const struct pop3_session *s)
{
    return conn_is_tls(s->conn) || s->cfg->pop3.allow_plaintext_auth;
}

static bool stls_available(const struct pop3_session *s)
{
    return !conn_is_tls(s->conn) && s->ctx->server != NULL;
}

static void refuse_plaintext(struct pop3_session *s)
{
    bad_command(s, "-ERR [AUTH] Plaintext authentication is not allowed here, use STLS first");
}

/* ---- reading ---- */

/* Reads one line into s->line within the command deadline. Flushes the replies first
 * when nothing pipelined is waiting; an idle wait ends when the service stops
 * (conn->interrupt). */
static enum conn_status read_line(struct pop3_session *s, size_t max)
{
    int64_t deadline = command_deadline(s);
    if (conn_pending(s->conn) == 0 && conn_flush(s->conn, deadline) != CONN_OK) return CONN_ERROR;
    if (stopping(s)) return CONN_STOPPED;
    return conn_read_line(s->conn, &s->line, max, deadline);
}

/* Logs a command line as received, with the secrets of PASS and AUTH replaced. */
static void log_command(const struct pop3_session *s, const char *line, size_t len)
{
    if (!log_enabled(LOG_POP3)) return;
    if (len >= 4 && strncasecmp(line, "PASS", 4) == 0) {
        log_proto(LOG_POP3, s->ip, "<<<", "PASS ****", 9);
        return;
    }
    if (len >= 4 && strncasecmp(line, "AUTH", 4) == 0) {
        /* keep "AUTH MECHANISM", hide an initial response */
        size_t i = 4;
        while (i < len && line[i] == ' ')
            i++;
        while (i < len && line[i] != ' ' && i < 40)
            i++;
        char buf[64];
        memcpy(buf, line, i);
        size_t n = i;
        if (i < len) {
            memcpy(buf + n, " ****", 5);
            n += 5;
        }
        log_proto(LOG_POP3, s->ip, "<<<", buf, n);
        return;
    }
    static const char *const verbs[] = {"USER", "STAT", "LIST", "RETR", "DELE", "NOOP",
                                        "RSET", "QUIT", "TOP",  "UIDL", "CAPA", "STLS"};
    size_t vlen = strcspn(line, " ");
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (vlen == strlen(verbs[i]) && strncasecmp(line, verbs[i], vlen) == 0) {
            log_proto(LOG_POP3, s->ip, "<<<", line, len);
            return;
        }
    }
    log_proto_unrecognized(LOG_POP3, s->ip, line, len);
}

/* ---- logging in ---- */

/* sasl_lookup_fn, also used by PASS: the stored hash of a user that may log in. The
 * account is kept in s->account for login(). */
static int lookup_account(void *ctx, const char *user, char **hash_r)
{
    struct pop3_session *s = ctx;
    store_account_free(&s->account);
    *hash_r = NULL;
    if (strlen(user) > ADDRESS_MAX) return 0;
    char *local, *domain;
    if (address_split(user, &local, &domain) < 0) return 0;
    struct store_account *acc = NULL;
    enum store_result r = store_account_find(s->ctx->store, local, domain, &acc, NULL);
    free(local);
    free(domain);
    if (r == STORE_TEMPFAIL) return -1;
    if (r != STORE_OK || acc == NULL) return 0;
    if (acc->type != ACCOUNT_USER || acc->password_hash == NULL) {
        store_account_free(&acc);
        return 0;
    }
    *hash_r = xstrdup(acc->password_hash);
    s->account = acc;
    return 1;
}

/* Counts an authentication attempt before any password is checked (authfail.h); a
 * locked-out address is refused and the session closed. True if it was locked out. */
static bool locked_out(struct pop3_session *s)
{
    unsigned left = authfail_begin(s->ip, &s->af);
    if (left == 0) return false;
    log_line(LOG_POP3, s->ip, "Authentication refused: address locked out for %u more seconds",
             left);
    reply(s, "-ERR [SYS/TEMP] Too many failed logins from your address, try again later");
    set_state(s, POP3_STATE_CLOSE);
    return true;
}

static void auth_failed(struct pop3_session *s, const char *user, const char *how)
{
    unsigned delay = authfail_failure(&s->af);
    COUNT(s, auth_failures, 1);
    s->auth_failures++;
    log_line(LOG_POP3, s->ip, "Authentication failed (%s) for %s", how, user ? user : "(no user)");
    store_account_free(&s->account);
    pause_ms(s, delay);
    reply(s, "-ERR [AUTH] Authentication failed");
    if (s->auth_failures >= POP3_MAX_AUTH_FAILURES) {
        reply(s, "-ERR Too many failed logins, closing connection");
        log_line(LOG_POP3, s->ip, "Disconnected: too many failed logins");
        set_state(s, POP3_STATE_CLOSE);
    }
}

static void tempfail(struct pop3_session *s)
{
    authfail_done(&s->af); /* no password was checked: the attempt does not count */
    log_error(LOG_POP3, s->ip, "Authentication not possible: the account store did not answer");
    store_account_free(&s->account);
    reply(s, "-ERR [SYS/TEMP] Authentication is temporarily unavailable, try again later");
}

/* The credentials of s->account were right: lock and list its mailbox. user is the
 * name the client logged in with. */
static void login(struct pop3_session *s, const char *user, const char *how)
{
    struct store_account *acc = s->account;
    s->account = NULL;
    if (acc == NULL) { /* cannot happen: the lookup that succeeded kept it */
        tempfail(s);
        return;
    }
    authfail_done(&s->af);
    char *address = address_lower(xstrdup(user));
    char *dir = mailbox_path(s->cfg->mail_dir, acc->domain_dir, acc->localpart);
    store_account_free(&acc);

    enum pop3_maildrop_result r = pop3_maildrop_open(dir, &s->drop);
    if (r == POP3_MAILDROP_INUSE) {
        log_line(LOG_POP3, s->ip, "Login %s refused: mailbox in use by another POP3 session",
                 address);
        reply(s, "-ERR [IN-USE] Mailbox is locked by another POP3 session");
    } else if (r != POP3_MAILDROP_OK) {
        log_error(LOG_POP3, s->ip, "Login %s: cannot open mailbox %s: %s", address, dir,
                  strerror(errno));
        reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox, try again later");
    } else {
        s->login = address;
        address = NULL;
        set_state(s, POP3_STATE_TRANSACTION);
        COUNT(s, logins, 1);
        log_line(LOG_POP3, s->ip, "Login %s (%s%s%s): %zu messages, %llu octets", s->login, how,
                 conn_is_tls(s->conn) ? ", " : "", s->conn->tls_info, s->drop->count,
                 (unsigned long long)s->drop->size);
        reply(s, "+OK Logged in, %zu messages (%llu octets)", s->drop->count,
              (unsigned long long)s->drop->size);
    }
    free(address);
    free(dir);
}

/* ---- AUTHORIZATION state ---- */

static void cmd_user(struct pop3_session *s, const struct pop3_command *cmd)
{
    if (!auth_allowed(s)) {
        refuse_plaintext(s);
        return;
    }
    free(s->user_name);
    s->user_name = xstrdup(cmd->args[0]);
    reply(s, "+OK Send your password");
}

static void cmd_pass(struct pop3_session *s, const struct pop3_command *cmd)
{
    if (!auth_allowed(s)) {
        refuse_plaintext(s);
        return;
    }
    if (s->user_name == NULL) {
        bad_command(s, "-ERR Send USER first");
        return;
    }
    char *user = s->user_name;
    s->user_name = NULL;
    if (locked_out(s)) {
        free(user);
        return;
    }
    const char *password = cmd->rest;
    size_t password_len = strlen(password);
    char *hash = NULL;
    int found = lookup_account(s, user, &hash);
    if (found < 0) {
        tempfail(s);
    } else if (found == 0) {
        password_dummy_verify(password, password_len);
        auth_failed(s, user, "USER/PASS");
    } else {
        int ok = password_verify(password, password_len, hash);
        if (ok < 0) log_error(LOG_POP3, s->ip, "The stored password of %s is not usable", user);
        if (ok == 1)
            login(s, user, "USER/PASS");
        else
            auth_failed(s, user, "USER/PASS");
    }
    if (hash) OPENSSL_cleanse(hash, strlen(hash));
    free(hash);
    free(user);
}

/* Sends a SASL challenge and reads the client's answer into s->line. 0 with the
 * response in s->line, 1 if the client cancelled or sent something unusable (already
 * answered), -1 if the connection is gone. */
static int sasl_round(struct pop3_session *s, const struct sbuf *challenge)
{
    conn_puts(s->conn, "+ ");
    conn_write(s->conn, sbuf_cstr(challenge), challenge->len);
    conn_puts(s->conn, "\r\n");
    log_proto(LOG_POP3, s->ip, ">>>", "+ ****", 6);
    enum conn_status st = read_line(s, POP3_SASL_LINE_MAX);
    if (st == CONN_TOOLONG) {
        log_proto(LOG_POP3, s->ip, "<<<", "**** (too long)", 15);
        reply(s, "-ERR Authentication response too long");
        return 1;
    }
    if (st != CONN_OK) return -1;
    log_proto(LOG_POP3, s->ip, "<<<", "****", 4);
    if (s->line.len == 1 && s->line.data[0] == '*') {
        log_line(LOG_POP3, s->ip, "Authentication cancelled by the client");
        reply(s, "-ERR Authentication cancelled");
        return 1;
    }
    if (strlen(sbuf_cstr(&s->line)) != s->line.len) {
        reply(s, "-ERR Malformed authentication response");
        return 1;
    }
    return 0;
}

static void auth_list(struct pop3_session *s)
{
    reply(s, "+OK Supported mechanisms follow");
    const char *list = sasl_mech_list();
    while (*list) {
        size_t n = strcspn(list, " ");
        body_line(s, "%.*s", (int)n, list);
        list += n;
        while (*list == ' ')
            list++;
    }
    body_line(s, ".");
}

static void cmd_auth(struct pop3_session *s, const struct pop3_command *cmd)
{
    if (!auth_allowed(s)) {
        refuse_plaintext(s);
        return;
    }
    if (cmd->nargs == 0) {
        auth_list(s);
        return;
    }
    enum sasl_mech mech;
    if (sasl_mech_parse(cmd->args[0], &mech) < 0) {
        bad_command(s, "-ERR Unsupported authentication mechanism");
        return;
    }
    if (locked_out(s)) return;
    free(s->user_name);
    s->user_name = NULL;

    struct sasl_server *sasl = sasl_server_new(mech, lookup_account, s);
    struct sbuf challenge = SBUF_INIT(POP3_SASL_LINE_MAX);
    const char *response = NULL;
    if (cmd->nargs >= 2) response = strcmp(cmd->args[1], "=") == 0 ? "" : cmd->args[1];
    const char *how = sasl_mech_name(mech);
    bool settled = false; /* the counted attempt ended in a success, failure or tempfail */
    for (;;) {
        enum sasl_status st = sasl_server_step(sasl, response, &challenge);
        if (response == s->line.data && s->line.data) OPENSSL_cleanse(s->line.data, s->line.len);
        if (st == SASL_STATUS_CONTINUE) {
            int r = sasl_round(s, &challenge);
            if (r < 0) {
                set_state(s, POP3_STATE_CLOSE);
                break;
            }
            if (r > 0) break;
            response = s->line.data ? s->line.data : "";
            continue;
        }
        settled = st == SASL_STATUS_OK || st == SASL_STATUS_FAIL || st == SASL_STATUS_TEMPFAIL;
        if (st == SASL_STATUS_OK) {
            login(s, sasl_server_user(sasl), how);
        } else if (st == SASL_STATUS_FAIL) {
            auth_failed(s, sasl_server_user(sasl), how);
        } else if (st == SASL_STATUS_TEMPFAIL) {
            tempfail(s);
        } else {
            store_account_free(&s->account);
            bad_command(s, "-ERR Malformed authentication response");
        }
        break;
    }
    /* cancelled, malformed or cut off before a password was judged: not counted */
    if (!settled) authfail_done(&s->af);
    store_account_free(&s->account);
    sasl_server_free(&sasl);
    sbuf_free(&challenge);
}

static void cmd_stls(struct pop3_session *s, const struct pop3_command *cmd)
{
    if (conn_is_tls(s->conn)) {
        bad_command(s, "-ERR Already using TLS");
        return;
    }
    SSL_CTX *tls = s->ctx->server ? server_get_tls(s->ctx->server) : NULL;
    if (tls == NULL) {
        bad_command(s, "-ERR STLS is not available");
        return;
    }
    reply(s, "+OK Begin TLS negotiation");
    int64_t deadline = command_deadline(s);
    const char *err = NULL;
    if (conn_flush(s->conn, deadline) != CONN_OK ||
        conn_starttls(s->conn, tls, deadline, &err) != CONN_OK) {
        log_line(LOG_POP3, s->ip, "STLS failed: %s", err ? err : "connection lost");
        set_state(s, POP3_STATE_CLOSE);
    } else {
        log_line(LOG_POP3, s->ip, "TLS started: %s", s->conn->tls_info);
        /* RFC 2595 4: forget what was learnt before */
        free(s->user_name);
        s->user_name = NULL;
    }
    SSL_CTX_free(tls);
}

/* ---- both states ---- */

static void cmd_capa(struct pop3_session *s, const struct pop3_command *cmd)
{
    reply(s, "+OK Capability list follows");
    body_line(s, "TOP");
    body_line(s, "UIDL");
    body_line(s, "RESP-CODES");
    body_line(s, "AUTH-RESP-CODE");
    body_line(s, "PIPELINING");
    if (s->state == POP3_STATE_AUTHORIZATION) {
        if (auth_allowed(s)) {
            body_line(s, "USER");
            body_line(s, "SASL %s", sasl_mech_list());
        }
        if (stls_available(s)) body_line(s, "STLS");
    }
    body_line(s, "IMPLEMENTATION Alkaid");
    body_line(s, ".");
}

static void cmd_noop(struct pop3_session *s, const struct pop3_command *cmd)
{
    reply(s, "+OK");
}

static void cmd_quit(struct pop3_session *s, const struct pop3_command *cmd)
{
    if (s->state != POP3_STATE_TRANSACTION) {
        reply(s, "+OK Alkaid POP3 server signing off");
        set_state(s, POP3_STATE_CLOSE);
        return;
    }
    set_state(s, POP3_STATE_UPDATE);
    size_t removed = 0;
    int r = pop3_maildrop_commit(s->drop, &removed);
    COUNT(s, deleted, removed);
    size_t left = s->drop->count - removed;
    if (r < 0) {
        log_error(LOG_POP3, s->ip, "Logout %s: cannot remove deleted messages from %s: %s",
                  s->login, s->drop->dir, strerror(errno));
        reply(s, "-ERR [SYS/TEMP] Some deleted messages could not be removed");
    } else {
        reply(s, "+OK Alkaid POP3 server signing off (%zu messages left)", left);
    }
    log_line(LOG_POP3, s->ip, "Logout %s: %u retrieved, %zu deleted, %zu left", s->login,
             s->retrieved, removed, left);
    set_state(s, POP3_STATE_CLOSE);
}

/* ---- TRANSACTION state ---- */

/* The message named by arg, or NULL after an error reply. */
static struct pop3_msg *message_arg(struct pop3_session *s, const char *arg)
{
    unsigned long n;
    if (pop3_parse_number(arg, &n) < 0) {
        reply(s, "-ERR Invalid message number");
        return NULL;
    }
    if (n == 0 || n > s->drop->count) {
        reply(s, "-ERR No such message");
        return NULL;
    }
    struct pop3_msg *msg = pop3_maildrop_get(s->drop, n);
    if (msg == NULL) reply(s, "-ERR Message %lu already deleted", n);
    return msg;
}

static unsigned long msg_number(const struct pop3_session *s, const struct pop3_msg *msg)
{
    return (unsigned long)(msg - s->drop->msgs) + 1;
}

static void cmd_stat(struct pop3_session *s, const struct pop3_command *cmd)
{
    reply(s, "+OK %zu %llu", s->drop->count - s->drop->ndeleted,
          (unsigned long long)(s->drop->size - s->drop->deleted_size));
}

static void cmd_list(struct pop3_session *s, const struct pop3_command *cmd)
{
    if (cmd->nargs == 1) {
        struct pop3_msg *msg = message_arg(s, cmd->args[0]);
        if (msg) reply(s, "+OK %lu %llu", msg_number(s, msg), (unsigned long long)msg->size);
        return;
    }
    reply(s, "+OK %zu messages (%llu octets)", s->drop->count - s->drop->ndeleted,
          (unsigned long long)(s->drop->size - s->drop->deleted_size));
    for (size_t i = 0; i < s->drop->count; i++) {
        const struct pop3_msg *msg = &s->drop->msgs[i];
        if (!msg->deleted) body_line(s, "%zu %llu", i + 1, (unsigned long long)msg->size);
    }
    body_line(s, ".");
}

static void cmd_uidl(struct pop3_session *s, const struct pop3_command *cmd)
{
    if (cmd->nargs == 1) {
        struct pop3_msg *msg = message_arg(s, cmd->args[0]);
        if (msg) reply(s, "+OK %lu %s", msg_number(s, msg), msg->uidl);
        return;
    }
    reply(s, "+OK Unique-ID listing follows");
    for (size_t i = 0; i < s->drop->count; i++) {
        const struct pop3_msg *msg = &s->drop->msgs[i];
        if (!msg->deleted) body_line(s, "%zu %s", i + 1, msg->uidl);
    }
    body_line(s, ".");
}

static void write_out(void *ctx, const char *data, size_t len)
{
    conn_write(ctx, data, len);
}

/* Sends a message (all of it, or TOP's part) after the "+OK". -1 if the session cannot
 * go on (the response could not be completed). */
static int send_message(struct pop3_session *s, struct pop3_msg *msg, long top_lines)
{
    int fd = pop3_maildrop_open_msg(s->drop, msg);
    if (fd < 0) {
        if (errno == ENOENT) {
            log_line(LOG_POP3, s->ip, "Message %s has been removed by another session", msg->name);
            reply(s, "-ERR Message %lu has been removed meanwhile", msg_number(s, msg));
        } else {
            log_error(LOG_POP3, s->ip, "Cannot open %s/%s: %s", s->drop->dir, msg->name,
                      strerror(errno));
            reply(s, "-ERR [SYS/TEMP] Cannot read message %lu", msg_number(s, msg));
        }
        return 0;
    }
    if (top_lines < 0)
        reply(s, "+OK %llu octets", (unsigned long long)msg->size);
    else
        reply(s, "+OK Top of message %lu follows", msg_number(s, msg));

    if (s->readbuf == NULL) s->readbuf = xmalloc(POP3_READ_CHUNK);
    struct pop3_dotstuff d;
    pop3_dotstuff_init(&d, top_lines, write_out, s->conn);
    int ret = 0;
    for (;;) {
        ssize_t n = read(fd, s->readbuf, POP3_READ_CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            log_error(LOG_POP3, s->ip, "Reading %s/%s: %s", s->drop->dir, msg->name,
                      strerror(errno));
            ret = -1;
            break;
        }
        if (n == 0) break;
        if (pop3_dotstuff_feed(&d, s->readbuf, (size_t)n)) break;
        if (s->conn->write_failed) {
            ret = -1;
            break;
        }
    }
    close(fd);
    if (ret < 0) {
        /* the client has a "+OK" and part of a message: it cannot be completed */
        set_state(s, POP3_STATE_CLOSE);
        return -1;
    }
    pop3_dotstuff_finish(&d);
    return 0;
}

static void cmd_retr(struct pop3_session *s, const struct pop3_command *cmd)
{
    struct pop3_msg *msg = message_arg(s, cmd->args[0]);
    if (msg == NULL) return;
    if (send_message(s, msg, -1) == 0 && s->state != POP3_STATE_CLOSE) {
        s->retrieved++;
        COUNT(s, retrieved, 1);
    }
}

static void cmd_top(struct pop3_session *s, const struct pop3_command *cmd)
{
    unsigned long lines;
    if (pop3_parse_number(cmd->args[1], &lines) < 0) {
        reply(s, "-ERR Invalid number of lines");
        return;
    }
    struct pop3_msg *msg = message_arg(s, cmd->args[0]);
    if (msg) send_message(s, msg, (long)lines);
}

static void cmd_dele(struct pop3_session *s, const struct pop3_command *cmd)
{
    struct pop3_msg *msg = message_arg(s, cmd->args[0]);
    if (msg == NULL) return;
    pop3_maildrop_delete(s->drop, msg);
    reply(s, "+OK Message %lu deleted", msg_number(s, msg));
}

static void cmd_rset(struct pop3_session *s, const struct pop3_command *cmd)
{
    pop3_maildrop_reset(s->drop);
    reply(s, "+OK %zu messages (%llu octets)", s->drop->count, (unsigned long long)s->drop->size);
}

/* ---- the command table ---- */

#define AUTHZ POP3_IN_AUTHORIZATION
#define TRANS POP3_IN_TRANSACTION

static const struct pop3_cmd_def commands[] = {
    {"USER", AUTHZ, 1, 1, "-ERR Syntax: USER name", cmd_user},
    {"PASS", AUTHZ, 1, POP3_ARGS_ANY, "-ERR Syntax: PASS password", cmd_pass},
    {"AUTH", AUTHZ, 0, 2, "-ERR Syntax: AUTH mechanism [initial-response]", cmd_auth},
    {"STLS", AUTHZ, 0, 0, "-ERR Syntax: STLS", cmd_stls},
    {"CAPA", AUTHZ | TRANS, 0, 0, "-ERR Syntax: CAPA", cmd_capa},
    {"QUIT", AUTHZ | TRANS, 0, 0, "-ERR Syntax: QUIT", cmd_quit},
    {"NOOP", AUTHZ | TRANS, 0, 0, "-ERR Syntax: NOOP", cmd_noop},
    {"STAT", TRANS, 0, 0, "-ERR Syntax: STAT", cmd_stat},
    {"LIST", TRANS, 0, 1, "-ERR Syntax: LIST [msg]", cmd_list},
    {"RETR", TRANS, 1, 1, "-ERR Syntax: RETR msg", cmd_retr},
    {"TOP", TRANS, 2, 2, "-ERR Syntax: TOP msg lines", cmd_top},
    {"UIDL", TRANS, 0, 1, "-ERR Syntax: UIDL [msg]", cmd_uidl},
    {"DELE", TRANS, 1, 1, "-ERR Syntax: DELE msg", cmd_dele},
    {"RSET", TRANS, 0, 0, "-ERR Syntax: RSET", cmd_rset},
};

const struct pop3_cmd_def *pop3_command_find(const char *keyword)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, keyword) == 0) return &commands[i];
    }
    return NULL;
}

static unsigned state_bit(enum pop3_state state)
{
    switch (state) {
    case POP3_STATE_AUTHORIZATION: return POP3_IN_AUTHORIZATION;
    case POP3_STATE_TRANSACTION: return POP3_IN_TRANSACTION;
    default: return 0;
    }
}

/* Parses and runs one command line (s->line). */
static void dispatch(struct pop3_session *s)
{
    struct pop3_command *cmd = xmalloc(sizeof(*cmd));
    enum pop3_parse_result pr =
        pop3_parse_command(s->line.data ? s->line.data : "", s->line.len, cmd);
    if (pr != POP3_PARSE_OK) {
        bad_command(s, pop3_parse_error(pr));
    } else {
        const struct pop3_cmd_def *def = pop3_command_find(cmd->keyword);
        if (def == NULL) {
            bad_command(s, "-ERR Unknown command");
        } else if ((def->states & state_bit(s->state)) == 0) {
            bad_command(s, "-ERR Command not valid in this state");
        } else if (cmd->nargs < def->min_args || cmd->nargs > def->max_args) {
            bad_command(s, def->syntax);
        } else {
            def->handler(s, cmd);
        }
    }
    OPENSSL_cleanse(cmd, sizeof(*cmd)); /* it may hold a password */
    free(cmd);
}

/* ---- the session ---- */

void pop3_session_run(struct conn *conn, struct pop3_context *ctx, const char *listener)
{
    struct pop3_session s = {
        .conn = conn,
        .ctx = ctx,
        .cfg = __atomic_load_n(&ctx->cfg, __ATOMIC_ACQUIRE),
        .ip = conn->ip,
        .state = POP3_STATE_AUTHORIZATION,
    };
    sbuf_init(&s.line, POP3_SASL_LINE_MAX);

    log_line(LOG_POP3, s.ip, "Connected to %s%s%s", listener ? listener : "POP3",
             conn_is_tls(conn) ? ", " : "", conn->tls_info);
    reply(&s, "+OK %s Alkaid POP3 server ready", s.cfg->hostname ? s.cfg->hostname : "");

    const char *why = NULL;
    while (s.state != POP3_STATE_CLOSE) {
        enum conn_status st = read_line(&s, POP3_MAX_LINE);
        if (st == CONN_TOOLONG) {
            log_proto(LOG_POP3, s.ip, "<<<", "(line too long)", 15);
            bad_command(&s, pop3_parse_error(POP3_PARSE_TOOLONG));
            continue;
        }
        if (st != CONN_OK) {
            if (stopping(&s))
                why = "the service is stopping";
            else if (st == CONN_TIMEOUT)
                why = "autologout (timeout)";
            else if (st == CONN_EOF)
                why = "connection closed by the client";
            else
                why = "connection lost";
            break;
        }
        log_command(&s, sbuf_cstr(&s.line), s.line.len);
        dispatch(&s);
        if (s.line.data) OPENSSL_cleanse(s.line.data, s.line.len);
        if (conn->write_failed && s.state != POP3_STATE_CLOSE) {
            why = "the client stopped reading (write failed or timed out)";
            break;
        }
    }
    if (!conn->write_failed) conn_flush(conn, conn_now_ms() + 5000);

    if (why != NULL && s.login != NULL) {
        log_line(LOG_POP3, s.ip, "Disconnected %s without QUIT (%s): %u retrieved, nothing deleted",
                 s.login, why, s.retrieved);
    } else if (why != NULL) {
        log_line(LOG_POP3, s.ip, "Disconnected: %s", why);
    }
    pop3_maildrop_close(&s.drop);
    store_account_free(&s.account);
    free(s.user_name);
    free(s.login);
    free(s.readbuf);
    if (s.line.data) OPENSSL_cleanse(s.line.data, s.line.cap);
    sbuf_free(&s.line);
}

void pop3_session_handler(struct session *session)
{
    pop3_session_run(session->conn, session->data, session->listener->name);
}

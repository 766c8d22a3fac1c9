/* admin_session.c - the admin port's listener and its sessions, greeting to QUIT
 *
 * One listener on [Control] Bind / AdminPort with implicit TLS (server.c does the
 * handshake before the handler runs). A session reads one bounded line at a time
 * (ADMIN_IDLE_TIMEOUT to send it), splits it into words (admin_proto.c) and, before
 * LOGIN, accepts only CAPA, LOGIN and QUIT; after it, hands the words to
 * admin_command().
 *
 * SECURITY: LOGIN takes an authfail.h slot before the password is checked, exactly as
 * POP3 and IMAP do; unknown users spend the time of a real check; a right password of
 * an account without the admin flag is a failure like a wrong one. The line holding a
 * password is wiped after use and is never logged: protocol lines are not logged at
 * all, only events and changes (with the administrator's address).
 */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "address.h"
#include "admin.h"
#include "authfail.h"
#include "log.h"
#include "password.h"
#include "server.h"
#include "service.h"
#include "xalloc.h"

#define BUSY_REPLY "-ERR UNAVAILABLE too many administration sessions, try later\r\n"

struct admin_port {
    struct server *server;
    struct store *store;
    struct listener_def listener;
    char *bind;
    int port;
    uint64_t logins_ok, logins_failed;
};

static struct admin_port *port;

/* ---- replies and logs ---- */

static void write_line(struct admin_session *s, const char *text, size_t len)
{
    conn_write(s->conn, text, len);
    conn_write(s->conn, "\r\n", 2);
}

void admin_reply_ok(struct admin_session *s, const struct sbuf *json)
{
    conn_write(s->conn, "+OK ", 4);
    write_line(s, sbuf_cstr(json), json->len);
}

void admin_reply_ok_str(struct admin_session *s, const char *json)
{
    conn_write(s->conn, "+OK ", 4);
    write_line(s, json, strlen(json));
}

void admin_reply_err(struct admin_session *s, const char *code, const char *fmt, ...)
{
    struct sbuf text = SBUF_INIT(4096);
    va_list ap;
    va_start(ap, fmt);
    sbuf_vprintf(&text, fmt, ap);
    va_end(ap);
    /* one line whatever the text holds */
    for (size_t i = 0; i < text.len; i++)
        if ((unsigned char)text.data[i] < 0x20) text.data[i] = ' ';
    conn_printf(s->conn, "-ERR %s ", code);
    write_line(s, sbuf_cstr(&text), text.len);
    sbuf_free(&text);
}

void admin_log_change(struct admin_session *s, const char *fmt, ...)
{
    struct sbuf text = SBUF_INIT(LOG_MAX_ACTION * 2);
    va_list ap;
    va_start(ap, fmt);
    sbuf_vprintf(&text, fmt, ap);
    va_end(ap);
    log_line(LOG_CONTROL, s->ip, "%s: %s", s->user ? s->user : "-", sbuf_cstr(&text));
    sbuf_free(&text);
}

/* ---- LOGIN ---- */

/* The password hash of an administrator's account: 1 found (admin flag in *admin_r), 0
 * no such user, -1 the store did not answer. */
static int lookup(struct admin_session *s, const char *user, char **hash_r, bool *admin_r)
{
    char *local = NULL, *domain = NULL;
    if (address_split(user, &local, &domain) < 0) return 0;
    struct store_account *acc = NULL;
    enum store_result r = store_account_find(s->store, local, domain, &acc, NULL);
    free(local);
    free(domain);
    if (r == STORE_TEMPFAIL) return -1;
    if (r != STORE_OK || acc->type != ACCOUNT_USER || acc->password_hash == NULL) {
        store_account_free(&acc);
        return 0;
    }
    *hash_r = xstrdup(acc->password_hash);
    *admin_r = acc->admin;
    store_account_free(&acc);
    return 1;
}

static void login_failed(struct admin_session *s, struct authfail_attempt *af, const char *user,
                         const char *code, const char *why)
{
    unsigned delay = authfail_failure(af);
    __atomic_fetch_add(&port->logins_failed, 1, __ATOMIC_RELAXED);
    log_line(LOG_CONTROL, s->ip, "Admin login failed for %s: %s", user, why);
    if (delay) {
        conn_flush(s->conn, conn_now_ms() + 10000);
        usleep(delay * 1000u);
    }
    if (strcmp(code, "DENIED") == 0)
        admin_reply_err(s, code, "%s is not an administrator", user);
    else
        admin_reply_err(s, code, "wrong user or password");
}

static void cmd_login(struct admin_session *s, char **args, size_t nargs)
{
    if (s->user) {
        admin_reply_err(s, "SYNTAX", "already logged in");
        return;
    }
    if (nargs != 3) {
        admin_reply_err(s, "SYNTAX", "LOGIN user password");
        return;
    }
    const char *user = args[1], *password = args[2];
    size_t pwlen = strlen(password);
    struct authfail_attempt af;
    unsigned left = authfail_begin(s->ip, &af);
    if (left) {
        log_line(LOG_CONTROL, s->ip, "Admin login refused: address locked out for %u more seconds",
                 left);
        admin_reply_err(s, "LOCKED",
                        "too many failed logins from your address, try again in %u"
                        " seconds",
                        left);
        s->quit = true;
        return;
    }
    char *hash = NULL;
    bool admin = false;
    int found = pwlen > ADMIN_PASSWORD_MAX ? 0 : lookup(s, user, &hash, &admin);
    if (found < 0) {
        authfail_done(&af);
        log_error(LOG_CONTROL, s->ip, "Admin login not possible: the account store did not answer");
        admin_reply_err(s, "BUSY", "the account store is busy, try again later");
    } else if (found == 0) {
        password_dummy_verify(password, pwlen);
        login_failed(s, &af, user, "AUTH", "no such user");
    } else {
        int ok = password_verify(password, pwlen, hash);
        if (ok < 0) log_error(LOG_CONTROL, s->ip, "The stored password of %s is not usable", user);
        if (ok != 1) {
            login_failed(s, &af, user, "AUTH", "wrong password");
        } else if (!admin) {
            login_failed(s, &af, user, "DENIED", "not an administrator");
        } else {
            authfail_done(&af);
            __atomic_fetch_add(&port->logins_ok, 1, __ATOMIC_RELAXED);
            s->user = address_lower(xstrdup(user));
            log_line(LOG_CONTROL, s->ip, "Admin login %s (%s)", s->user, s->conn->tls_info);
            struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
            sbuf_appends(&json, "{\"user\":");
            admin_json_string(&json, s->user);
            sbuf_putc(&json, '}');
            admin_reply_ok(s, &json);
            sbuf_free(&json);
        }
    }
    if (hash) OPENSSL_cleanse(hash, strlen(hash));
    free(hash);
}

/* ---- the session ---- */

static void cmd_capa(struct admin_session *s)
{
    struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&json, "{\"protocol\":1,\"commands\":");
    admin_command_names(&json);
    sbuf_putc(&json, '}');
    admin_reply_ok(s, &json);
    sbuf_free(&json);
}

static void greeting(struct admin_session *s)
{
    struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&json, "{\"server\":\"alkaid\",\"protocol\":1,\"hostname\":");
    admin_json_string(&json, service_config()->hostname);
    sbuf_putc(&json, '}');
    admin_reply_ok(s, &json);
    sbuf_free(&json);
}

/* Whether the logged-in account still exists and still has the admin flag (a store
 * that does not answer counts as yes: the command itself will say BUSY). */
static bool still_admin(struct admin_session *s)
{
    char *hash = NULL;
    bool admin = false;
    int r = lookup(s, s->user, &hash, &admin);
    if (hash) OPENSSL_cleanse(hash, strlen(hash));
    free(hash);
    return r < 0 || (r == 1 && admin);
}

static void one_line(struct admin_session *s, struct sbuf *line)
{
    const char *err = NULL;
    struct admin_args a;
    if (admin_parse_args(line->data ? line->data : "", line->len, &a, &err) < 0) {
        admin_reply_err(s, "SYNTAX", "%s", err);
        return;
    }
    const char *cmd = a.argv[0];
    if (strcasecmp(cmd, "QUIT") == 0) {
        admin_reply_ok_str(s, "{\"bye\":true}");
        s->quit = true;
    } else if (strcasecmp(cmd, "CAPA") == 0) {
        cmd_capa(s);
    } else if (strcasecmp(cmd, "LOGIN") == 0) {
        cmd_login(s, a.argv, a.argc);
    } else if (s->user == NULL) {
        admin_reply_err(s, "DENIED", "log in first");
    } else if (!still_admin(s)) {
        /* the account was deleted, or its admin flag taken away, since LOGIN */
        log_line(LOG_CONTROL, s->ip, "Admin session of %s ended: no longer an administrator",
                 s->user);
        admin_reply_err(s, "DENIED", "%s is no longer an administrator", s->user);
        s->quit = true;
    } else {
        admin_command(s, a.argv, a.argc);
    }
    admin_args_free(&a);
}

static void session_handler(struct session *session)
{
    struct admin_session s = {
        .conn = session->conn,
        .store = port->store,
        .ip = session->conn->ip,
    };
    log_line(LOG_CONTROL, s.ip, "Admin connection (%s)", s.conn->tls_info);
    greeting(&s);
    struct sbuf line = SBUF_INIT(ADMIN_LINE_MAX + 2);
    while (!s.quit) {
        if (conn_flush(s.conn, conn_now_ms() + 30000) != CONN_OK) break;
        int idle = s.user ? ADMIN_IDLE_TIMEOUT : ADMIN_LOGIN_TIMEOUT;
        enum conn_status st =
            conn_read_line(s.conn, &line, ADMIN_LINE_MAX + 2, conn_now_ms() + idle * 1000LL);
        if (st == CONN_OK && line.len > ADMIN_LINE_MAX) st = CONN_TOOLONG;
        if (st == CONN_TOOLONG) {
            admin_reply_err(&s, "LINE", "too long (at most %d octets)", ADMIN_LINE_MAX);
            log_line(LOG_CONTROL, s.ip, "Disconnected: line too long");
            break;
        }
        if (st == CONN_TIMEOUT) {
            admin_reply_err(&s, "TIMEOUT", "no command for %d seconds", idle);
            log_line(LOG_CONTROL, s.ip, "Disconnected: idle for %d seconds", idle);
            break;
        }
        if (st == CONN_STOPPED) {
            admin_reply_err(&s, "UNAVAILABLE", "the control service is stopping");
            break;
        }
        if (st != CONN_OK) break;
        one_line(&s, &line);
        if (line.data) OPENSSL_cleanse(line.data, line.len);
        sbuf_reset(&line);
    }
    conn_flush(s.conn, conn_now_ms() + 5000);
    log_line(LOG_CONTROL, s.ip, "Admin connection closed%s%s", s.user ? " for " : "",
             s.user ? s.user : "");
    sbuf_free(&line);
    free(s.user);
}

/* ---- the port ---- */

int admin_start(const struct alkaid_config *cfg, struct store *store, SSL_CTX *tls,
                const char **error_r)
{
    struct admin_port *p = xcalloc(1, sizeof(*p));
    p->store = store;
    p->bind = xstrdup(cfg->control_bind);
    p->port = cfg->admin_port;
    p->server = server_new("Admin", LOG_CONTROL, p);
    server_set_limits(p->server, ADMIN_MAX_SESSIONS, ADMIN_MAX_PER_IP, ADMIN_HANDSHAKE_S);
    server_set_tls(p->server, tls);
    p->listener = (struct listener_def){
        .name = "Admin",
        .bind = p->bind,
        .port = p->port,
        .implicit_tls = true,
        .handler = session_handler,
        .busy_reply = BUSY_REPLY,
        .key = "[Control] AdminPort",
    };
    port = p;
    if (server_listen(p->server, &p->listener, error_r) < 0) goto fail;
    if (server_start(p->server) < 0) {
        *error_r = "Admin: cannot start the listener thread";
        goto fail;
    }
    if (p->port)
        log_line(LOG_CONTROL, NULL, "Admin port listening on %s port %d (TLS)", p->bind, p->port);
    return 0;
fail:
    server_stop(p->server, 0);
    server_free(&p->server);
    free(p->bind);
    free(p);
    port = NULL;
    return -1;
}

void admin_reload(const struct alkaid_config *cfg, SSL_CTX *tls)
{
    if (port == NULL) return;
    server_set_tls(port->server, tls);
    if (strcmp(cfg->control_bind, port->bind) != 0 || cfg->admin_port != port->port)
        log_line(LOG_CONTROL, NULL,
                 "[Control] Bind / AdminPort changed: they take effect after a restart");
}

void admin_stop(void)
{
    struct admin_port *p = port;
    if (p == NULL) return;
    server_stop(p->server, ADMIN_STOP_GRACE_MS);
    server_free(&p->server);
    free(p->bind);
    free(p);
    port = NULL;
}

void admin_status(struct sbuf *json)
{
    if (port == NULL) return;
    struct server_stats st;
    server_get_stats(port->server, &st);
    sbuf_printf(json,
                ",\"admin\":{\"port\":%d,\"sessions\":%u,\"sessions_total\":%" PRIu64
                ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"logins_ok\":%" PRIu64
                ",\"logins_failed\":%" PRIu64 "}",
                port->port, st.active, st.total, st.bytes_in, st.bytes_out,
                __atomic_load_n(&port->logins_ok, __ATOMIC_RELAXED),
                __atomic_load_n(&port->logins_failed, __ATOMIC_RELAXED));
}

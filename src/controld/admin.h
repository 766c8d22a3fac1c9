/* admin.h - the remote administration port of alkaid-controld (docs/admin-protocol.md)
 *
 * admin_session.c owns the listener ([Control] Bind / AdminPort, implicit TLS) and the
 * sessions: greeting, LOGIN, the command loop. admin_commands.c runs the commands after
 * login (store, queue, services); admin_config.c reads and rewrites alkaid.ini;
 * admin_proto.c parses command lines and writes JSON.
 *
 * SECURITY: every byte of a session comes from the network. Lines are bounded
 * (ADMIN_LINE_MAX) before they are parsed; arguments are only ever data (no shell);
 * only accounts with the admin flag may log in, and failed logins are throttled through
 * authfail.h like the mail protocols. Passwords are never logged and are wiped from the
 * line buffer after use.
 */
#ifndef ALKAID_ADMIN_H
#define ALKAID_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "sbuf.h"
#include "store.h"

#define ADMIN_LINE_MAX      8192 /* octets of a client line, without its CRLF */
#define ADMIN_MAX_ARGS      1100 /* words of one command line (ALIAS with 1000 targets) */
#define ADMIN_IDLE_TIMEOUT  300  /* seconds without a command, once logged in */
#define ADMIN_LOGIN_TIMEOUT 30   /* seconds without a command before LOGIN */
#define ADMIN_MAX_SESSIONS  32
#define ADMIN_MAX_PER_IP    8
#define ADMIN_HANDSHAKE_S   30
#define ADMIN_PASSWORD_MAX  1024
#define ADMIN_LOG_LINES     100 /* LOG's default */
#define ADMIN_LOG_LINES_MAX 5000
#define ADMIN_INI_MAX       (1u << 20) /* largest alkaid.ini CONFIG SET rewrites */
#define ADMIN_STOP_GRACE_MS 2000

/* ---- the port (admin_session.c) ---- */

/* Opens the listener and starts accepting. store is the process's account store (it
 * must outlive admin_stop()). tls is referenced. 0, or -1 with *error_r. */
int admin_start(const struct alkaid_config *cfg, struct store *store, SSL_CTX *tls,
                const char **error_r);
void admin_reload(const struct alkaid_config *cfg, SSL_CTX *tls);
void admin_stop(void);
/* Appends ",\"admin\":{...}" for the ctl STATUS. */
void admin_status(struct sbuf *json);

/* ---- a session, as the commands see it ---- */

struct admin_session {
    struct conn *conn;
    struct store *store;
    const char *ip;
    char *user; /* the administrator's address once logged in */
    bool quit;
};

/* The replies: one line each. */
void admin_reply_ok(struct admin_session *s, const struct sbuf *json);
void admin_reply_ok_str(struct admin_session *s, const char *json);
void admin_reply_err(struct admin_session *s, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Logs a change on the control channel: "<ip> ... <admin>: <what>". */
void admin_log_change(struct admin_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- commands (admin_commands.c) ---- */

/* Runs one command after login: args[0] is the command word. */
void admin_command(struct admin_session *s, char **args, size_t nargs);
/* The command words, for CAPA (a JSON array). */
void admin_command_names(struct sbuf *json);

/* Restarts a service that is not supervised: ctl STOP, wait for it to go, start its
 * binary (next to our own) again. 0, or -1 with a message in err. */
int admin_restart_service(const struct alkaid_config *cfg, const char *service, char *err,
                          size_t err_size);

/* ---- settings (admin_config.c) ---- */

/* CONFIG GET / CONFIG SET. */
void admin_config_get(struct admin_session *s, char **args, size_t nargs);
void admin_config_set(struct admin_session *s, char **args, size_t nargs);
/* Sends RELOAD to each running service (or only to service, when not NULL), appending
 * {"smtpd":"OK reloaded",...} to json. */
void admin_reload_services(const struct alkaid_config *cfg, const char *service, struct sbuf *json);

/* Rewrites the INI text in[0..len) so that [section] key is value: the key's line(s)
 * in the section are replaced, or the key is added after the section's last setting, or
 * the section is added at the end. Every other line (comments included) is kept as is.
 * section and key are written as given. 0 with the new text appended to out, or -1 with
 * *error_r (a value with CR, LF or NUL, or one the INI cannot hold). */
int admin_ini_rewrite(const char *in, size_t len, const char *section, const char *key,
                      const char *value, struct sbuf *out, const char **error_r);

/* ---- the wire format (admin_proto.c) ---- */

struct admin_args {
    char *buf;   /* the words, NUL-separated */
    char **argv; /* argc pointers into buf */
    size_t argc;
};

/* Splits a command line (without its CRLF) into words: atoms and quoted strings
 * (docs/admin-protocol.md, Arguments). 0, or -1 with *error_r (static text). */
int admin_parse_args(const char *line, size_t len, struct admin_args *args_r, const char **error_r);
/* Frees the words (wiping them: they may hold a password). */
void admin_args_free(struct admin_args *args);

/* Appends s as a JSON string: '"' and '\' escaped, control characters as \u00XX,
 * DEL as \u007f, well-formed UTF-8 as it is, any other octet as \u00XX (its Latin-1
 * reading), so the result is always valid JSON. */
void admin_json_string(struct sbuf *json, const char *s);
void admin_json_string_n(struct sbuf *json, const char *s, size_t len);
/* Whether s[0..len) is well-formed UTF-8. */
bool admin_utf8_valid(const char *s, size_t len);

#endif

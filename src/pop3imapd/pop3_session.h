/* pop3_session.h - one POP3 conversation, greeting to QUIT (RFC 1939, 2449, 2595, 5034)
 *
 * A session runs in its server thread: greeting, then one command line at a time
 * through the command table (pop3_command_find()), in the AUTHORIZATION state (USER,
 * PASS, AUTH, STLS, CAPA, QUIT), then, once logged in and the maildrop is locked, in
 * the TRANSACTION state (STAT, LIST, RETR, TOP, UIDL, DELE, RSET, NOOP, CAPA, QUIT),
 * and at QUIT in the UPDATE state, the only place messages are removed.
 *
 * What sessions share lives in struct pop3_context: the account store, the
 * configuration in force (swapped on reload; a session keeps the one it started with),
 * the server (for STLS's TLS context and for stopping) and the counters ctl STATUS
 * reports.
 *
 * SECURITY: every byte read here comes from the network. Command lines are bounded by
 * POP3_MAX_LINE and SASL responses by POP3_SASL_LINE_MAX before they are parsed;
 * passwords and AUTH payloads are never logged; USER/PASS/AUTH are refused on an
 * unencrypted connection unless [POP3] AllowPlaintextAuth; an unknown user and a wrong
 * password get the same reply after the same work; failures are slowed and locked out
 * per client address (authfail.h).
 */
#ifndef ALKAID_POP3_SESSION_H
#define ALKAID_POP3_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "pop3_parse.h"
#include "server.h"
#include "store.h"

#define POP3_STOP_POLL_MS      250  /* how often a sleeping session looks for a stop */
#define POP3_MAX_BAD_COMMANDS  10   /* unknown, malformed or misplaced commands */
#define POP3_MAX_AUTH_FAILURES 3    /* per session, then the connection is closed */
#define POP3_SASL_LINE_MAX     8192 /* a base64 SASL response line, with CRLF */
#define POP3_READ_CHUNK        65536
#define POP3_DEFAULT_TIMEOUT   600 /* seconds, if the configuration has none */

/* Counters for ctl STATUS, added to from every session thread. */
struct pop3_stats {
    uint64_t logins;
    uint64_t auth_failures;
    uint64_t retrieved; /* RETR (whole messages sent) */
    uint64_t deleted;   /* files removed at QUIT */
};

struct pop3_context {
    struct store *store;
    const struct alkaid_config *cfg; /* read and replaced atomically */
    struct server *server;           /* NULL in unit tests: no STLS, never stopping */
    struct pop3_stats stats;
};

/* Which of the session's states a command is valid in. */
#define POP3_IN_AUTHORIZATION 1u
#define POP3_IN_TRANSACTION   2u
#define POP3_ARGS_ANY         ((unsigned)-1)

struct pop3_session;
typedef void pop3_cmd_fn(struct pop3_session *s, const struct pop3_command *cmd);

struct pop3_cmd_def {
    const char *name;
    unsigned states;
    unsigned min_args, max_args;
    const char *syntax; /* the reply for a wrong argument count */
    pop3_cmd_fn *handler;
};

/* The command table entry for an upper-cased keyword, or NULL. */
const struct pop3_cmd_def *pop3_command_find(const char *keyword);

/* The server's session handler: session->data is the struct pop3_context. */
void pop3_session_handler(struct session *session);
/* Runs a whole session on conn (which the caller still owns and frees). listener names
 * the port for the log (may be NULL). */
void pop3_session_run(struct conn *conn, struct pop3_context *ctx, const char *listener);

#endif

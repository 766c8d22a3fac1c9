/* server.h - listeners and one thread per session, with limits
 *
 * A struct server is one protocol's front door (SMTP with its ports 25, 587 and 465;
 * POP3 with 110 and 995; ...): its listeners share a cap on sessions and on sessions per
 * client address. Each accepted connection gets a detached thread with a small stack;
 * for implicit-TLS listeners the handshake is done before the handler runs. A connection
 * past a cap gets the listener's busy reply and is closed without reaching the handler.
 *
 * SECURITY: the per-address table is bounded by the session cap; the handshake of an
 * implicit-TLS port has the listener's deadline like any other read.
 */
#ifndef ALKAID_SERVER_H
#define ALKAID_SERVER_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "log.h"

#define SERVER_STACK_SIZE (256 * 1024)

struct server;
struct session;

typedef void session_handler_fn(struct session *session);

struct listener_def {
    const char *name;  /* for logs: "SMTP", "Submission", "SMTPS", "POP3", "POP3S" */
    const char *bind;  /* numeric address */
    int port;          /* 0: this listener is off (server_listen() does nothing) */
    bool implicit_tls; /* handshake at once (465, 995, 993) */
    int kind;          /* for the handler: which of the service's ports this is */
    session_handler_fn *handler;
    const char *busy_reply; /* full reply with CRLF sent when over a cap */
    const char *key;        /* the INI setting of the port, for errors: "[SMTP] Port" */
    char names[2][40];      /* storage for name and key when server_listen_pair() made them */
};

struct session {
    struct conn *conn;
    struct server *server;
    const struct listener_def *listener;
    void *data; /* the server's user data (server_new()) */
};

struct server_stats {
    unsigned active;
    uint64_t total;
    uint64_t rejected; /* over a cap */
    uint64_t bytes_in, bytes_out;
};

struct server *server_new(const char *name, enum log_channel channel, void *data);
void server_free(struct server **server);
/* Limits (callable again on reload). handshake_timeout_s bounds implicit TLS. */
void server_set_limits(struct server *server, int max_sessions, int max_per_ip,
                       int handshake_timeout_s);
/* The TLS context used for implicit-TLS ports and handed to handlers for STARTTLS; the
 * server takes a reference (callable again on reload). */
void server_set_tls(struct server *server, SSL_CTX *ctx);
/* A new reference to the current TLS context (SSL_CTX_free() it), or NULL. */
SSL_CTX *server_get_tls(struct server *server);
/* Binds and listens now (so a port in use is reported at start-up). The definition must
 * outlive the server. 0, or -1 with a message in *error_r (thread-local storage). */
int server_listen(struct server *server, const struct listener_def *def, const char **error_r);
/* The gate every accept thread of the process waits at before its first accept():
 * open by default. service.c closes it before the service opens its ports and opens it
 * once privileges are dropped, so no client is ever served with root's privileges. */
void server_gate_close(void);
void server_gate_open(void);
/* The usual two listeners of a mail reader protocol, from its [section]: a plain one
 * (kind 0, "<section>", [section] Port) and an implicit-TLS one (kind 1, "<section>S",
 * [section] TLSPort), both on bind. defs (two) must outlive the server. Listens on both
 * (a port of 0 is off) and logs each. 0, or -1 with *error_r. */
int server_listen_pair(struct server *server, struct listener_def defs[2], const char *section,
                       const char *bind, int port, int tls_port, session_handler_fn *handler,
                       const char *busy_reply, const char **error_r);
/* Starts accepting on every listener. */
int server_start(struct server *server);
/* True once server_stop() has begun: handlers should end their session soon. */
bool server_stopping(const struct server *server);
/* Stops accepting, gives sessions grace_ms to finish, then shuts their connections
 * down and waits for every session thread to end. */
void server_stop(struct server *server, int grace_ms);
void server_get_stats(struct server *server, struct server_stats *stats_r);
enum log_channel server_channel(const struct server *server);

#endif

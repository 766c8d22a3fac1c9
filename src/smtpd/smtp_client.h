/* smtp_client.h - the SMTP client that sends queued mail to MX hosts and smarthosts
 *
 * One struct smtp_client is one connection to one address: greeting, EHLO (HELO when
 * EHLO is refused), STARTTLS by policy, AUTH to smarthosts, then any number of
 * transactions, each pipelined when the server offers PIPELINING. The message is sent
 * with CRLF line ends and dot-stuffing whatever the stored copy holds.
 *
 * SECURITY: replies come from a remote server: lines are bounded, a reply has at most
 * SMTP_CLIENT_MAX_LINES lines, and its text is cleaned of control characters before it
 * reaches a log, a queue file or a bounce. Credentials are only sent over TLS unless
 * the policy is explicitly "none".
 */
#ifndef ALKAID_SMTP_CLIENT_H
#define ALKAID_SMTP_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"

#define SMTP_CLIENT_MAX_LINES 64
#define SMTP_CLIENT_TEXT_MAX  900 /* octets of reply text kept */

enum smtp_outcome {
    SMTP_OUT_OK = 0,
    SMTP_OUT_TEMP, /* try again later (4xx, timeout, connection lost, policy) */
    SMTP_OUT_PERM, /* give up (5xx) */
};

/* What happened to one recipient (or to the whole connection). */
struct smtp_result {
    enum smtp_outcome outcome;
    char status[16]; /* enhanced status "4.4.1"; derived from the code when absent */
    char text[SMTP_CLIENT_TEXT_MAX + 64]; /* "550 5.1.1 <bob@x>: no such user" or our words */
    bool remote; /* text is the remote server's reply (else our own diagnosis) */
};

struct smtp_client_options {
    const char *helo_name;
    enum config_tls_mode tls;
    SSL_CTX *tls_ctx;
    const char *verify_name; /* the name the certificate must match (verify) */
    const char *auth_user;   /* NULL/"" = no AUTH */
    const char *auth_password;
    int connect_timeout_ms, command_timeout_ms, data_timeout_ms;
    const bool *interrupt; /* when it becomes true, every wait gives up (service stop) */
};

struct smtp_client {
    struct conn *conn;
    char host[256]; /* the MX or smarthost name, for logs and DSNs */
    char ip[64];
    int port;
    bool esmtp, tls, tls_verified, pipelining, eightbit, auth_ok;
    uint64_t size_limit; /* from EHLO SIZE; 0 = none */
    unsigned transactions;
    bool usable;        /* can take another transaction */
    int64_t idle_since; /* when the last transaction ended (monotonic ms) */
};

/* Connects and greets. NULL with res_r saying why (TEMP or PERM: a 5xx greeting or a
 * TLS policy that cannot be met is PERM only where retrying cannot help; most failures
 * are TEMP). */
struct smtp_client *smtp_client_open(const char *host, const char *ip, int port,
                                     const struct smtp_client_options *opts,
                                     struct smtp_result *res_r);

/* One transaction: MAIL FROM:<from>, RCPT TO for each of rcpts, DATA with the message
 * read from msg_fd[offset, offset+size). Each rcpt_res[i] gets that recipient's
 * outcome. The return value is the connection-level outcome: SMTP_OUT_OK when the
 * transaction ran (whatever each recipient got); otherwise every recipient already has
 * the failure in rcpt_res and the connection is no longer usable. */
enum smtp_outcome smtp_client_send(struct smtp_client *c, const char *from, char *const *rcpts,
                                   size_t nrcpts, int msg_fd, uint64_t offset, uint64_t size,
                                   const struct smtp_client_options *opts,
                                   struct smtp_result *rcpt_res);

/* Sends one command line (e.g. "ETRN example.com", RFC 1985) and reads its reply into
 * res: the reply code, or -1 when the connection failed (res says why). */
int smtp_client_command(struct smtp_client *c, const char *line,
                        const struct smtp_client_options *o, struct smtp_result *res);
/* Sends RSET and checks the answer: true if the connection can be reused. */
bool smtp_client_reset(struct smtp_client *c, const struct smtp_client_options *opts);
/* QUIT (best effort) and free. */
void smtp_client_close(struct smtp_client **c);

/* For tests: writes size octets of a stored message to out with CRLF line ends and
 * dot-stuffing, as they go on the wire (without the final "."). state starts at 0 and
 * carries over between chunks; smtp_client_stuff_end() completes the last line. */
void smtp_client_stuff(const char *data, size_t len, int *state, struct sbuf *out);
void smtp_client_stuff_end(int *state, struct sbuf *out);

#endif

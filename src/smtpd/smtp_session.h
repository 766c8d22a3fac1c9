/* smtp_session.h - one SMTP conversation, greeting to QUIT
 *
 * The session state (OpenSMTPD style: an enum changed in one place), the transaction
 * in progress and the helpers the command handlers share. Handlers live in
 * smtp_session.c (connection-level commands), smtp_txn.c (MAIL, RCPT, DATA, BDAT) and
 * smtp_auth.c (AUTH).
 *
 * SECURITY: every byte read here comes from the network. Lines are bounded before they
 * are parsed; nothing here runs with more privilege than the service user.
 */
#ifndef ALKAID_SMTP_SESSION_H
#define ALKAID_SMTP_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "resolve.h"
#include "sbuf.h"
#include "server.h"
#include "smtp_data.h"
#include "smtpd.h"
#include "spool.h"

#define SMTP_MAX_BAD_COMMANDS 20
#define SMTP_AUTH_LINE_MAX    12288 /* RFC 4954 4: at least 12288 octets */

enum smtp_state {
    SMTP_STATE_INIT,  /* greeting sent, no HELO/EHLO yet */
    SMTP_STATE_HELO,  /* HELO/EHLO done, no transaction */
    SMTP_STATE_MAIL,  /* MAIL accepted */
    SMTP_STATE_RCPT,  /* at least one RCPT accepted */
    SMTP_STATE_CLOSE, /* QUIT, fatal error, timeout, shutdown */
};

struct smtp_rcpt {
    char *address; /* as the client gave it */
    struct resolved res;
};

struct smtp_session {
    struct session *session;
    struct conn *conn;
    const struct alkaid_config *cfg;
    enum smtp_port_kind kind;
    enum smtp_state state;
    const char *ip;
    char *helo;
    bool esmtp;
    char *auth_user;   /* authenticated address, or NULL */
    bool relay_client; /* in [SMTP] RelayIPs */
    unsigned bad_commands;
    unsigned messages;

    /* the transaction */
    char *sender;
    uint64_t declared_size;
    struct smtp_rcpt *rcpts;
    size_t nrcpts;
    bool bdat_active; /* a BDAT sequence has begun */
    bool bdat_failed; /* and something in it went wrong */
    struct spool_file temp;
    bool temp_open;
    uint64_t body_offset;
    bool inplace; /* only remote recipients: temp is the queue file being written */
    struct spool_queue_inplace qip;
    struct smtp_data data;
    struct sbuf dataout;
};

void smtp_session_run(struct session *session);

/* Replies (one line, no CRLF), logging it. */
void smtp_reply(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends the buffered replies now. */
void smtp_flush(struct smtp_session *s);
void smtp_set_state(struct smtp_session *s, enum smtp_state state);
/* Forgets the transaction (MAIL, RCPTs, any message being received). */
void smtp_txn_reset(struct smtp_session *s);
/* Deadline for the next command line / data read. */
int64_t smtp_command_deadline(const struct smtp_session *s);
int64_t smtp_data_deadline(const struct smtp_session *s);

/* Command handlers (arg: the text after the verb). */
void smtp_cmd_mail(struct smtp_session *s, const char *arg);
void smtp_cmd_rcpt(struct smtp_session *s, const char *arg);
void smtp_cmd_data(struct smtp_session *s, const char *arg);
void smtp_cmd_bdat(struct smtp_session *s, const char *arg);
void smtp_cmd_auth(struct smtp_session *s, const char *arg);
/* ETRN (RFC 1985), smtp_etrn.c */
void smtp_cmd_etrn(struct smtp_session *s, const char *arg);
/* Whether AUTH may be offered/used now (TLS, or plaintext allowed). */
bool smtp_auth_allowed(const struct smtp_session *s);

#endif

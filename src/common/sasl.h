/* sasl.h - server side of SASL: PLAIN (RFC 4616), LOGIN, SCRAM-SHA-256 (RFC 7677)
 *
 * Protocol-neutral: SMTP AUTH, POP3 AUTH and IMAP AUTHENTICATE all drive it the same
 * way. The protocol layer reads the client's base64 line, handles "*" (cancel) itself,
 * passes everything else to sasl_server_step(), and sends back the challenge it gets.
 *
 * SCRAM-SHA-256 takes three client responses: client-first, client-final (answered with
 * CONTINUE and the server-final message "v=..." as the challenge, because SMTP and POP3
 * cannot carry data with their success reply), then an empty response, answered OK.
 *
 * SECURITY: input is client-controlled base64; it is decoded strictly with a bounded
 * size. Unknown users go through the same steps and timing as known ones and end in the
 * same SASL_STATUS_FAIL, so the reply never tells which of user and password was wrong.
 * Nothing here logs; callers must not log payloads either.
 */
#ifndef ALKAID_SASL_H
#define ALKAID_SASL_H

#include <stdbool.h>

#include "sbuf.h"

enum sasl_mech {
    SASL_MECH_PLAIN,
    SASL_MECH_LOGIN,
    SASL_MECH_SCRAM_SHA_256,
};

/* Longest decoded client response accepted. */
#define SASL_MAX_RESPONSE 4096

enum sasl_status {
    SASL_STATUS_CONTINUE, /* send the challenge in challenge_r, read another response */
    SASL_STATUS_OK,       /* authenticated as sasl_server_user() */
    SASL_STATUS_FAIL,     /* wrong user or password (same status for both) */
    SASL_STATUS_TEMPFAIL, /* the account store could not answer: a temporary failure */
    SASL_STATUS_MALFORMED /* the client broke the mechanism's syntax */
};

/* Looks up the stored password form for user (an address such as "joe@example.com").
 * Returns 1 and sets *hash_r (xmalloc'ed) if found, 0 if there is no such user (or it
 * cannot log in), -1 on a temporary store failure. */
typedef int sasl_lookup_fn(void *ctx, const char *user, char **hash_r);

struct sasl_server;

/* Mechanism by its name, case-insensitive ("PLAIN", "LOGIN", "SCRAM-SHA-256").
 * 0, or -1 if unknown. */
int sasl_mech_parse(const char *name, enum sasl_mech *mech_r);
const char *sasl_mech_name(enum sasl_mech mech);
/* The space-separated list of mechanisms we offer: "PLAIN LOGIN SCRAM-SHA-256". */
const char *sasl_mech_list(void);

/* The iteration count SCRAM offers users that do not exist: the one new passwords are
 * hashed with ([Security] PasswordIterations), so unknown and known users look alike. */
void sasl_set_fake_iterations(unsigned iterations);

struct sasl_server *sasl_server_new(enum sasl_mech mech, sasl_lookup_fn *lookup, void *ctx);
void sasl_server_free(struct sasl_server **sasl);
/* One step. response is the client's base64 text (without CRLF), or NULL when the client
 * gave no initial response; an empty initial response (SMTP "=") is passed as "".
 * challenge_r is reset and receives the base64 challenge to send (may be empty). */
enum sasl_status sasl_server_step(struct sasl_server *sasl, const char *response,
                                  struct sbuf *challenge_r);
/* The authenticated user after SASL_STATUS_OK (lower-cased address); otherwise the user
 * name the client claimed so far, or NULL. */
const char *sasl_server_user(const struct sasl_server *sasl);

/* For tests only: makes every later SCRAM exchange use server_nonce (printable ASCII
 * without ',', at most 64 characters) as the server's part of the nonce instead of
 * random bytes; NULL restores random nonces. Not thread-safe. */
void sasl_test_set_nonce(const char *server_nonce);

#endif

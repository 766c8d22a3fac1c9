/* imap_auth.h - what LOGIN and AUTHENTICATE share
 *
 * The account lookup for sasl.c, the lock-out bookkeeping (authfail.h: counted before
 * any password is checked), and the steps after a successful login: the per-user
 * session cap, the mailbox directory and its special-use folders, the new state.
 *
 * SECURITY: an unknown user and a wrong password end in the same NO after the same
 * work; a store failure is NO [UNAVAILABLE], never a failed login.
 */
#ifndef ALKAID_IMAP_AUTH_H
#define ALKAID_IMAP_AUTH_H

#include "imap_session.h"
#include "sasl.h"

struct imap_auth {
    struct imap_session *s;
    struct store_account *account; /* kept by the lookup for the login that follows */
};

/* Counts the attempt; false (after replying and ending the session) if the client's
 * address is locked out. */
bool imap_auth_begin(struct imap_session *s);
/* sasl_lookup_fn for struct imap_auth. */
int imap_auth_lookup(void *ctx, const char *user, char **hash_r);
/* Ends the attempt as the SASL status says and replies: OK (logged in), NO. */
void imap_auth_finish(struct imap_auth *a, enum sasl_status st, const char *user, const char *how);

#endif

/* resolve.h - from a recipient address to mailboxes and remote addresses
 *
 * A local recipient is looked up in the store and expanded through its account type:
 * user (its mailbox, and/or its forward targets), alias (its members), the domain's
 * catch-all for unknown local parts, and "null" (accepted, discarded). Expansion is
 * breadth-first, de-duplicated, at most RESOLVE_MAX_DEPTH levels deep and
 * RESOLVE_MAX_TARGETS addresses wide, so alias loops end.
 *
 * SECURITY: a store failure anywhere in the expansion makes the whole recipient a
 * temporary failure; it is never reported as an unknown user.
 */
#ifndef ALKAID_RESOLVE_H
#define ALKAID_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define RESOLVE_MAX_DEPTH   10
#define RESOLVE_MAX_TARGETS 5000 /* above the store's 1000 targets per account */

struct resolved_mailbox {
    char *address; /* the account, for logs and quota messages */
    char *dir;     /* absolute mailbox directory */
    uint64_t quota;
};

struct resolved {
    struct resolved_mailbox *mailboxes;
    size_t nmailboxes;
    char **remote;
    size_t nremote;
    bool discard; /* something resolved to "null" */
};

enum resolve_result {
    RESOLVE_OK = 0,
    RESOLVE_NOT_LOCAL, /* the domain is not one of ours */
    RESOLVE_UNKNOWN,   /* a local domain, but no such account and no catch-all */
    RESOLVE_TEMPFAIL,  /* the store did not answer */
};

enum resolve_result resolve_recipient(struct store *st, const char *mail_dir, const char *local,
                                      const char *domain, struct resolved *out);
/* RFC 5321 4.5.1: postmaster must always be accepted. For postmaster@domain of a local
 * domain: the account or alias if there is one, else the domain's Administrator
 * accounts, else the domain's own mailbox directory mail/<domain>/postmaster (which the
 * account reads once it is created). With domain "" (RCPT TO:<Postmaster>): the same for
 * the first of hostname and its parent domains that is local, else for the first local
 * domain. RESOLVE_UNKNOWN only when there is no local domain at all. */
enum resolve_result resolve_postmaster(struct store *st, const char *mail_dir, const char *domain,
                                       const char *hostname, struct resolved *out);
void resolved_clear(struct resolved *r);
/* Whether two addresses are the same: local parts exactly, domains ignoring case. */
bool resolve_same_address(const char *a, const char *b);

#endif

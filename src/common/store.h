/* store.h - the account store: domains, accounts, aliases, forwards, catch-alls
 *
 * One API in front of backends (a table of function pointers per backend: SQLite now,
 * ODBC later). Every function is safe to call from many threads at once. Lookups read
 * the database each time, so a change made by alkaid-user (or the admin port) takes
 * effect at once in the running services.
 *
 * Model:
 *   domain   a local domain (or an "ETRN queue" domain, queued for another server); its name may
 * hold '*' wildcards ("*.example.com"); an optional catch-all address (or "null") for unknown local
 * parts. account  user:  has a mailbox, a password hash, admin flag, quota; optionally forward
 * targets, with keep_copy saying whether its own mailbox still gets a copy. alias: no mailbox and
 * no login; delivers to its targets. The target "null" discards silently.
 *
 * SECURITY: only parameterised SQL. A database error never looks like "no such user":
 * it is STORE_TEMPFAIL, which protocols turn into a temporary failure.
 */
#ifndef ALKAID_STORE_H
#define ALKAID_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_result {
    STORE_OK = 0,
    STORE_NOTFOUND = 1,
    STORE_EXISTS = 2,   /* add of something that is already there */
    STORE_INVALID = 3,  /* a name or value the store refuses (see error_r) */
    STORE_NOTEMPTY = 4, /* domain delete while it still has accounts */
    STORE_TEMPFAIL = -1 /* the database did not answer: try again later */
};

enum account_type {
    ACCOUNT_USER = 0,
    ACCOUNT_ALIAS = 1,
};

enum domain_type {
    DOMAIN_LOCAL = 0, /* mailboxes here */
    DOMAIN_ETRN = 1,  /* "ETRN queue": mail is accepted and queued for another server,
                         sent by MX only when a client asks with ETRN (RFC 1985) */
};

struct store_domain {
    enum domain_type type;
    char *name;        /* lower-case, as configured (may contain '*') */
    char *dir;         /* directory name under mail/ (address_domain_dir(name)) */
    char *catchall;    /* address or "null"; NULL if none */
    unsigned accounts; /* number of accounts (filled by list and find) */
};

struct store_account {
    char *localpart; /* lower-case */
    char *domain;    /* the owning domain's name (lower-case, may hold '*') */
    char *domain_dir;
    enum account_type type;
    char *password_hash; /* users only; NULL for aliases */
    bool admin;
    uint64_t quota; /* bytes; 0 = unlimited */
    char **targets; /* alias members or forward destinations */
    size_t ntargets;
    bool keep_copy; /* user with targets: still deliver to own mailbox */
};

struct store;

/* Opens (creating and migrating as needed) the SQLite database at path: WAL journal,
 * synchronous=FULL, a busy timeout. NULL with *error_r set on failure. */
struct store *store_open_sqlite(const char *path, const char **error_r);
void store_close(struct store **st);

/* The schema version the database is at after store_open_*(). */
int store_schema_version(struct store *st);

/* Finds the local domain for domain: an exact (case-insensitive) name first, otherwise
 * the longest wildcard pattern that matches. */
enum store_result store_domain_find(struct store *st, const char *domain,
                                    struct store_domain **domain_r);
/* Finds the account for local@domain (domain matched as in store_domain_find()).
 * *domain_r (optional) receives the matching domain even when the account is not found
 * (STORE_NOTFOUND with *domain_r set means: a local domain, unknown local part). */
enum store_result store_account_find(struct store *st, const char *local, const char *domain,
                                     struct store_account **account_r,
                                     struct store_domain **domain_r);

enum store_result store_domain_add(struct store *st, const char *name, const char **error_r);
/* The same with a type (store_domain_add() makes a DOMAIN_LOCAL one). An ETRN domain
 * may not hold a '*' wildcard. */
enum store_result store_domain_add_type(struct store *st, const char *name, enum domain_type type,
                                        const char **error_r);
/* Refuses with STORE_NOTEMPTY while the domain has accounts, unless force. */
enum store_result store_domain_del(struct store *st, const char *name, bool force,
                                   const char **error_r);
enum store_result store_domain_list(struct store *st, struct store_domain ***domains_r,
                                    size_t *count_r);
/* catchall NULL removes it; "null" discards unknown recipients silently. */
enum store_result store_domain_set_catchall(struct store *st, const char *name,
                                            const char *catchall, const char **error_r);

/* Adds an account. For ACCOUNT_USER password_hash must be set; for ACCOUNT_ALIAS ntargets
 * must be at least 1. localpart/domain are given by the caller (domain must exist, by
 * its exact name). */
enum store_result store_account_add(struct store *st, const struct store_account *account,
                                    const char **error_r);
enum store_result store_account_del(struct store *st, const char *local, const char *domain,
                                    const char **error_r);
enum store_result store_account_set_password(struct store *st, const char *local,
                                             const char *domain, const char *password_hash);
enum store_result store_account_set_admin(struct store *st, const char *local, const char *domain,
                                          bool admin);
enum store_result store_account_set_quota(struct store *st, const char *local, const char *domain,
                                          uint64_t quota);
/* A quota as the tools and the admin port take it: N megabytes, or N with a suffix B, K,
 * M or G; 0 is unlimited. 0, or -1 if s is not one. */
int store_quota_parse(const char *s, uint64_t *bytes_r);
/* A quota as store_quota_parse() takes it back: "unlimited", "2G", "500M", "64K",
 * "1000B". Returns buf. */
const char *store_quota_format(uint64_t q, char *buf, size_t size);
/* Replaces the targets (alias members or forwards) and keep_copy. For a user, ntargets 0
 * turns forwarding off; for an alias it is refused. */
enum store_result store_account_set_targets(struct store *st, const char *local, const char *domain,
                                            char *const *targets, size_t ntargets, bool keep_copy,
                                            const char **error_r);
/* Accounts of one domain (exact name), or of all domains when domain is NULL, ordered by
 * domain then local part. */
enum store_result store_account_list(struct store *st, const char *domain,
                                     struct store_account ***accounts_r, size_t *count_r);

#define STORE_SECRET_MAX 64
/* A random secret of len (at most STORE_SECRET_MAX) bytes kept in the store under name,
 * made by whichever caller asks first: every service and every server sharing this store
 * gets the same bytes. */
enum store_result store_secret(struct store *st, const char *name, unsigned char *out, size_t len);

void store_domain_free(struct store_domain **domain);
void store_account_free(struct store_account **account);
void store_domain_list_free(struct store_domain ***domains, size_t count);
void store_account_list_free(struct store_account ***accounts, size_t count);

#endif

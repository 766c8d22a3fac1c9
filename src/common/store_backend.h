/* store_backend.h - what a store backend provides (private to src/common/store*.c)
 *
 * store.c is the front: it validates and lower-cases every name, checks targets and
 * limits, and then calls the backend through struct store_ops. A backend therefore only
 * ever sees names that passed address.h's rules, and only has to do storage: one
 * transaction per call, the domain matching rule of store_domain_find(), and the
 * mapping of its own errors to STORE_TEMPFAIL.
 *
 * SECURITY: a backend must use parameterised queries only and must never report a
 * database failure as STORE_NOTFOUND.
 */
#ifndef ALKAID_STORE_BACKEND_H
#define ALKAID_STORE_BACKEND_H

#include "store.h"

/* Which fields of struct store_update are set. */
#define STORE_UPDATE_PASSWORD 0x01u
#define STORE_UPDATE_ADMIN    0x02u
#define STORE_UPDATE_QUOTA    0x04u
#define STORE_UPDATE_TARGETS  0x08u /* targets, ntargets and keep_copy */

struct store_update {
    unsigned fields;
    const char *password_hash;
    bool admin;
    uint64_t quota;
    char *const *targets;
    size_t ntargets;
    bool keep_copy;
};

/* Every function gets the backend's own data as be. Names are already validated and
 * lower-cased; error_r may be NULL. */
struct store_ops {
    const char *name;
    void (*close)(void *be);
    int (*schema_version)(void *be);
    enum store_result (*domain_find)(void *be, const char *domain, struct store_domain **domain_r);
    /* account_r and domain_r may be NULL. */
    enum store_result (*account_find)(void *be, const char *local, const char *domain,
                                      struct store_account **account_r,
                                      struct store_domain **domain_r);
    enum store_result (*domain_add)(void *be, const char *name, enum domain_type type,
                                    const char **error_r);
    enum store_result (*domain_del)(void *be, const char *name, bool force, const char **error_r);
    enum store_result (*domain_list)(void *be, struct store_domain ***domains_r, size_t *count_r);
    enum store_result (*domain_set_catchall)(void *be, const char *name, const char *catchall,
                                             const char **error_r);
    enum store_result (*account_add)(void *be, const struct store_account *account,
                                     const char **error_r);
    enum store_result (*account_del)(void *be, const char *local, const char *domain,
                                     const char **error_r);
    /* Applies the fields of update to one account in one transaction, after checking
     * them with store_update_check() against the account's type. */
    enum store_result (*account_update)(void *be, const char *local, const char *domain,
                                        const struct store_update *update, const char **error_r);
    enum store_result (*account_list)(void *be, const char *domain,
                                      struct store_account ***accounts_r, size_t *count_r);
    enum store_result (*secret)(void *be, const char *name, unsigned char *out, size_t len);
};

struct store {
    const struct store_ops *ops;
    void *be;
};

/* Wraps a backend's data into a struct store (xmalloc'ed). */
struct store *store_new(const struct store_ops *ops, void *be);
/* The type rules for an update, shared by every backend: an alias has no password, no
 * admin flag, no quota and at least one target. */
enum store_result store_update_check(enum account_type type, const struct store_update *update,
                                     const char **error_r);
/* A new store_domain for name (dir derived from it); catchall may be NULL. */
struct store_domain *store_domain_new(const char *name, const char *catchall, unsigned accounts);

#define STORE_MAX_TARGETS 1000 /* targets of one account */
#define STORE_MAX_HASH    1024 /* length of a stored password hash */

#define STORE_SQLITE_POOL_MAX     8
#define STORE_SQLITE_BUSY_TIMEOUT 5000 /* milliseconds */

/* Test hook: changes the busy timeout of every connection of a SQLite store (the
 * default is STORE_SQLITE_BUSY_TIMEOUT). 0, or -1 if st is not a SQLite store. */
int store_sqlite_set_busy_timeout(struct store *st, int milliseconds);

#endif

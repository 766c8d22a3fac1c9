/* store.c - the backend-neutral front of the account store
 *
 * Every public store_*() function lands here first. Names are checked against
 * address.h's rules and lower-cased, alias/forward targets and catch-alls are checked
 * and de-duplicated, limits are enforced, and only then is the backend called through
 * its struct store_ops (store_backend.h). Lookups (store_*_find) answer STORE_NOTFOUND
 * for a name that cannot exist; changes answer STORE_INVALID with a reason.
 *
 * SECURITY: the names that reach a backend are exactly the ones that are safe as
 * directory names under mail/ (address.h). A target is stored as text and is never a
 * path; it may not hold spaces, control characters or the characters that delimit
 * addresses in SMTP and headers (<>,;"\()), so it cannot inject into a RCPT TO line.
 */
#include "store.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "store_backend.h"
#include "xalloc.h"

/* Directory names under mail/ that a domain may not take. */
static const char *const reserved_domain_dirs[] = {"forward"};

static void set_error(const char **error_r, const char *msg)
{
    if (error_r != NULL) *error_r = msg;
}

struct store *store_new(const struct store_ops *ops, void *be)
{
    struct store *st = xcalloc(1, sizeof(*st));
    st->ops = ops;
    st->be = be;
    return st;
}

void store_close(struct store **st)
{
    if (st == NULL || *st == NULL) return;
    (*st)->ops->close((*st)->be);
    xfree(*st);
}

int store_schema_version(struct store *st)
{
    return st->ops->schema_version(st->be);
}

/* ---- validation ---- */

/* A lower-cased copy of a domain name, or NULL if it is not one we accept. */
static char *norm_domain(const char *name, bool allow_wildcard)
{
    if (name == NULL || strlen(name) > ADDRESS_MAX_DOMAIN) return NULL;
    char *d = address_lower(xstrdup(name));
    if (!address_domain_valid(d, allow_wildcard)) xfree(d);
    return d;
}

static char *norm_local(const char *local)
{
    if (local == NULL || strlen(local) > ADDRESS_MAX_LOCALPART) return NULL;
    char *l = address_lower(xstrdup(local));
    if (!address_localpart_valid(l)) xfree(l);
    return l;
}

/* The stored form of a target or catch-all: "null", or a full address checked loosely
 * (one '@' with text on both sides, no spaces, control or delimiter characters). */
static char *norm_target(const char *t)
{
    if (t == NULL) return NULL;
    if (strcasecmp(t, "null") == 0) return xstrdup("null");
    size_t len = strlen(t);
    if (len < 3 || len > ADDRESS_MAX) return NULL;
    const char *at = strchr(t, '@');
    if (at == NULL || at == t || at[1] == '\0' || strchr(at + 1, '@') != NULL) return NULL;
    for (const unsigned char *p = (const unsigned char *)t; *p != '\0'; p++) {
        if (*p <= 0x20 || *p == 0x7f) return NULL;
        if (strchr("<>,;\"\\()", *p) != NULL) return NULL;
    }
    return xstrdup(t);
}

static bool hash_valid(const char *hash)
{
    if (hash == NULL || hash[0] == '\0' || strlen(hash) > STORE_MAX_HASH) return false;
    for (const unsigned char *p = (const unsigned char *)hash; *p != '\0'; p++)
        if (*p <= 0x20 || *p >= 0x7f) return false;
    return true;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Checks and normalises a target list for the account local@domain: at most
 * STORE_MAX_TARGETS, each valid, not the account itself; duplicates (compared without
 * regard to case) are dropped, the first one kept. */
static enum store_result norm_targets(char *const *targets, size_t n, const char *local,
                                      const char *domain, char ***out_r, size_t *nout_r,
                                      const char **error_r)
{
    *out_r = NULL;
    *nout_r = 0;
    if (n > STORE_MAX_TARGETS) {
        set_error(error_r, "too many targets (at most 1000)");
        return STORE_INVALID;
    }
    if (n > 0 && targets == NULL) {
        set_error(error_r, "missing targets");
        return STORE_INVALID;
    }
    char **out = xcalloc(n ? n : 1, sizeof(*out));
    size_t nout = 0;
    size_t self_len = strlen(local) + 1 + strlen(domain);
    for (size_t i = 0; i < n; i++) {
        char *t = norm_target(targets[i]);
        if (t == NULL) {
            free_strv(out, nout);
            set_error(error_r, "invalid target (a full address local@domain, or null)");
            return STORE_INVALID;
        }
        const char *at = strrchr(t, '@');
        if (at != NULL && strlen(t) == self_len && (size_t)(at - t) == strlen(local) &&
            strncasecmp(t, local, strlen(local)) == 0 && strcasecmp(at + 1, domain) == 0) {
            free(t);
            free_strv(out, nout);
            set_error(error_r, "an account cannot be its own target");
            return STORE_INVALID;
        }
        bool dup = false;
        for (size_t j = 0; j < nout && !dup; j++)
            dup = strcasecmp(out[j], t) == 0;
        if (dup)
            free(t);
        else
            out[nout++] = t;
    }
    *out_r = out;
    *nout_r = nout;
    return STORE_OK;
}

enum store_result store_update_check(enum account_type type, const struct store_update *u,
                                     const char **error_r)
{
    if (type != ACCOUNT_ALIAS) return STORE_OK;
    if (u->fields & STORE_UPDATE_PASSWORD) {
        set_error(error_r, "an alias has no password");
        return STORE_INVALID;
    }
    if ((u->fields & STORE_UPDATE_ADMIN) && u->admin) {
        set_error(error_r, "an alias cannot be an admin");
        return STORE_INVALID;
    }
    if ((u->fields & STORE_UPDATE_QUOTA) && u->quota != 0) {
        set_error(error_r, "an alias has no mailbox and so no quota");
        return STORE_INVALID;
    }
    if ((u->fields & STORE_UPDATE_TARGETS) && u->ntargets == 0) {
        set_error(error_r, "an alias needs at least one target");
        return STORE_INVALID;
    }
    return STORE_OK;
}

/* ---- lookups ---- */

enum store_result store_domain_find(struct store *st, const char *domain,
                                    struct store_domain **domain_r)
{
    *domain_r = NULL;
    char *d = norm_domain(domain, true);
    if (d == NULL) return STORE_NOTFOUND;
    enum store_result r = st->ops->domain_find(st->be, d, domain_r);
    free(d);
    return r;
}

enum store_result store_account_find(struct store *st, const char *local, const char *domain,
                                     struct store_account **account_r,
                                     struct store_domain **domain_r)
{
    if (account_r != NULL) *account_r = NULL;
    if (domain_r != NULL) *domain_r = NULL;
    char *d = norm_domain(domain, true);
    if (d == NULL) return STORE_NOTFOUND;
    enum store_result r;
    char *l = norm_local(local);
    if (l != NULL) {
        r = st->ops->account_find(st->be, l, d, account_r, domain_r);
    } else if (domain_r != NULL) {
        /* No account can have this name, but the domain may still be local. */
        r = st->ops->domain_find(st->be, d, domain_r);
        if (r == STORE_OK) r = STORE_NOTFOUND;
    } else {
        r = STORE_NOTFOUND; /* certain without asking the database */
    }
    free(l);
    free(d);
    return r;
}

/* ---- domains ---- */

enum store_result store_domain_add(struct store *st, const char *name, const char **error_r)
{
    return store_domain_add_type(st, name, DOMAIN_LOCAL, error_r);
}

enum store_result store_domain_add_type(struct store *st, const char *name, enum domain_type type,
                                        const char **error_r)
{
    char *d = norm_domain(name, type == DOMAIN_LOCAL);
    if (d == NULL) {
        set_error(error_r, "invalid domain name");
        return STORE_INVALID;
    }
    char *dir = address_domain_dir(d);
    for (size_t i = 0; i < sizeof(reserved_domain_dirs) / sizeof(reserved_domain_dirs[0]); i++) {
        if (strcasecmp(dir, reserved_domain_dirs[i]) == 0) {
            free(dir);
            free(d);
            set_error(error_r, "reserved name (mail/FORWARD is the outgoing queue)");
            return STORE_INVALID;
        }
    }
    free(dir);
    enum store_result r = st->ops->domain_add(st->be, d, type, error_r);
    free(d);
    return r;
}

enum store_result store_domain_del(struct store *st, const char *name, bool force,
                                   const char **error_r)
{
    char *d = norm_domain(name, true);
    if (d == NULL) {
        set_error(error_r, "invalid domain name");
        return STORE_INVALID;
    }
    enum store_result r = st->ops->domain_del(st->be, d, force, error_r);
    free(d);
    return r;
}

enum store_result store_domain_list(struct store *st, struct store_domain ***domains_r,
                                    size_t *count_r)
{
    *domains_r = NULL;
    *count_r = 0;
    return st->ops->domain_list(st->be, domains_r, count_r);
}

enum store_result store_domain_set_catchall(struct store *st, const char *name,
                                            const char *catchall, const char **error_r)
{
    char *d = norm_domain(name, true);
    if (d == NULL) {
        set_error(error_r, "invalid domain name");
        return STORE_INVALID;
    }
    char *c = NULL;
    if (catchall != NULL && (c = norm_target(catchall)) == NULL) {
        free(d);
        set_error(error_r, "invalid catch-all (a full address local@domain, or null)");
        return STORE_INVALID;
    }
    enum store_result r = st->ops->domain_set_catchall(st->be, d, c, error_r);
    free(c);
    free(d);
    return r;
}

/* ---- accounts ---- */

/* Lower-cased copies of local and domain; STORE_INVALID if either is not acceptable. */
static enum store_result norm_address(const char *local, const char *domain, char **local_r,
                                      char **domain_r, const char **error_r)
{
    *local_r = NULL;
    *domain_r = NULL;
    char *d = norm_domain(domain, true);
    if (d == NULL) {
        set_error(error_r, "invalid domain name");
        return STORE_INVALID;
    }
    char *l = norm_local(local);
    if (l == NULL) {
        free(d);
        set_error(error_r, "invalid local part");
        return STORE_INVALID;
    }
    *local_r = l;
    *domain_r = d;
    return STORE_OK;
}

enum store_result store_account_add(struct store *st, const struct store_account *account,
                                    const char **error_r)
{
    if (account == NULL) {
        set_error(error_r, "no account");
        return STORE_INVALID;
    }
    struct store_account a = *account;
    char *l, *d;
    enum store_result r = norm_address(account->localpart, account->domain, &l, &d, error_r);
    if (r != STORE_OK) return r;
    a.localpart = l;
    a.domain = d;
    a.domain_dir = NULL;
    a.targets = NULL;
    a.ntargets = 0;

    if (account->type == ACCOUNT_USER) {
        if (!hash_valid(account->password_hash)) {
            set_error(error_r, "a user needs a password hash");
            r = STORE_INVALID;
        }
    } else if (account->type == ACCOUNT_ALIAS) {
        a.password_hash = NULL;
        if (account->admin) {
            set_error(error_r, "an alias cannot be an admin");
            r = STORE_INVALID;
        } else if (account->quota != 0) {
            set_error(error_r, "an alias has no mailbox and so no quota");
            r = STORE_INVALID;
        } else if (account->ntargets == 0) {
            set_error(error_r, "an alias needs at least one target");
            r = STORE_INVALID;
        }
        a.keep_copy = false;
    } else {
        set_error(error_r, "unknown account type");
        r = STORE_INVALID;
    }
    if (r == STORE_OK && account->quota > (uint64_t)INT64_MAX) {
        set_error(error_r, "quota too large");
        r = STORE_INVALID;
    }
    if (r == STORE_OK)
        r = norm_targets(account->targets, account->ntargets, l, d, &a.targets, &a.ntargets,
                         error_r);
    if (r == STORE_OK) {
        if (a.ntargets == 0) a.keep_copy = false;
        r = st->ops->account_add(st->be, &a, error_r);
    }
    free_strv(a.targets, a.ntargets);
    free(l);
    free(d);
    return r;
}

enum store_result store_account_del(struct store *st, const char *local, const char *domain,
                                    const char **error_r)
{
    char *l, *d;
    enum store_result r = norm_address(local, domain, &l, &d, error_r);
    if (r != STORE_OK) return r;
    r = st->ops->account_del(st->be, l, d, error_r);
    free(l);
    free(d);
    return r;
}

static enum store_result update(struct store *st, const char *local, const char *domain,
                                const struct store_update *u, const char **error_r)
{
    char *l, *d;
    enum store_result r = norm_address(local, domain, &l, &d, error_r);
    if (r != STORE_OK) return r;
    r = st->ops->account_update(st->be, l, d, u, error_r);
    free(l);
    free(d);
    return r;
}

enum store_result store_account_set_password(struct store *st, const char *local,
                                             const char *domain, const char *password_hash)
{
    if (!hash_valid(password_hash)) return STORE_INVALID;
    struct store_update u = {.fields = STORE_UPDATE_PASSWORD, .password_hash = password_hash};
    return update(st, local, domain, &u, NULL);
}

enum store_result store_account_set_admin(struct store *st, const char *local, const char *domain,
                                          bool admin)
{
    struct store_update u = {.fields = STORE_UPDATE_ADMIN, .admin = admin};
    return update(st, local, domain, &u, NULL);
}

enum store_result store_account_set_quota(struct store *st, const char *local, const char *domain,
                                          uint64_t quota)
{
    if (quota > (uint64_t)INT64_MAX) return STORE_INVALID;
    struct store_update u = {.fields = STORE_UPDATE_QUOTA, .quota = quota};
    return update(st, local, domain, &u, NULL);
}

enum store_result store_account_set_targets(struct store *st, const char *local, const char *domain,
                                            char *const *targets, size_t ntargets, bool keep_copy,
                                            const char **error_r)
{
    char *l, *d;
    enum store_result r = norm_address(local, domain, &l, &d, error_r);
    if (r != STORE_OK) return r;
    char **t;
    size_t n;
    r = norm_targets(targets, ntargets, l, d, &t, &n, error_r);
    if (r == STORE_OK) {
        struct store_update u = {.fields = STORE_UPDATE_TARGETS,
                                 .targets = t,
                                 .ntargets = n,
                                 .keep_copy = n > 0 && keep_copy};
        r = st->ops->account_update(st->be, l, d, &u, error_r);
        free_strv(t, n);
    }
    free(l);
    free(d);
    return r;
}

enum store_result store_account_list(struct store *st, const char *domain,
                                     struct store_account ***accounts_r, size_t *count_r)
{
    *accounts_r = NULL;
    *count_r = 0;
    char *d = NULL;
    if (domain != NULL && (d = norm_domain(domain, true)) == NULL) return STORE_INVALID;
    enum store_result r = st->ops->account_list(st->be, d, accounts_r, count_r);
    free(d);
    return r;
}

/* ---- results ---- */

struct store_domain *store_domain_new(const char *name, const char *catchall, unsigned accounts)
{
    struct store_domain *d = xcalloc(1, sizeof(*d));
    d->name = xstrdup(name);
    d->dir = address_domain_dir(name);
    d->catchall = catchall != NULL ? xstrdup(catchall) : NULL;
    d->accounts = accounts;
    return d;
}

void store_domain_free(struct store_domain **domain)
{
    if (domain == NULL || *domain == NULL) return;
    struct store_domain *d = *domain;
    free(d->name);
    free(d->dir);
    free(d->catchall);
    xfree(*domain);
}

void store_account_free(struct store_account **account)
{
    if (account == NULL || *account == NULL) return;
    struct store_account *a = *account;
    free(a->localpart);
    free(a->domain);
    free(a->domain_dir);
    free(a->password_hash);
    free_strv(a->targets, a->ntargets);
    xfree(*account);
}

void store_domain_list_free(struct store_domain ***domains, size_t count)
{
    if (domains == NULL || *domains == NULL) return;
    for (size_t i = 0; i < count; i++)
        store_domain_free(&(*domains)[i]);
    xfree(*domains);
}

void store_account_list_free(struct store_account ***accounts, size_t count)
{
    if (accounts == NULL || *accounts == NULL) return;
    for (size_t i = 0; i < count; i++)
        store_account_free(&(*accounts)[i]);
    xfree(*accounts);
}

enum store_result store_secret(struct store *st, const char *name, unsigned char *out, size_t len)
{
    if (name == NULL || *name == '\0' || len == 0 || len > STORE_SECRET_MAX) return STORE_INVALID;
    return st->ops->secret(st->be, name, out, len);
}

int store_quota_parse(const char *s, uint64_t *bytes_r)
{
    if (s[0] < '0' || s[0] > '9') return -1;
    uint64_t n = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (UINT64_MAX - 9) / 10) return -1;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    uint64_t mult;
    switch (*p) {
    case '\0': mult = 1ull << 20; break;
    case 'b':
    case 'B': mult = 1; break;
    case 'k':
    case 'K': mult = 1ull << 10; break;
    case 'm':
    case 'M': mult = 1ull << 20; break;
    case 'g':
    case 'G': mult = 1ull << 30; break;
    default: return -1;
    }
    if (*p != '\0' && p[1] != '\0') return -1;
    if (n > (uint64_t)INT64_MAX / mult) return -1;
    *bytes_r = n * mult;
    return 0;
}

const char *store_quota_format(uint64_t q, char *buf, size_t size)
{
    if (q == 0)
        snprintf(buf, size, "unlimited");
    else if (q % (1ull << 30) == 0)
        snprintf(buf, size, "%" PRIu64 "G", q >> 30);
    else if (q % (1ull << 20) == 0)
        snprintf(buf, size, "%" PRIu64 "M", q >> 20);
    else if (q % (1ull << 10) == 0)
        snprintf(buf, size, "%" PRIu64 "K", q >> 10);
    else
        snprintf(buf, size, "%" PRIu64 "B", q);
    return buf;
}

/* resolve.c - from a recipient address to mailboxes and remote addresses
 *
 * Breadth-first over (address, depth) pairs: each address is expanded once; targets of
 * an alias or a forward join the queue one level deeper; the catch-all of a domain
 * stands in for an unknown local part. Unknown local targets met deeper than the
 * recipient itself are skipped (and logged) rather than failing the whole recipient.
 *
 * SECURITY: bounded by RESOLVE_MAX_DEPTH and RESOLVE_MAX_TARGETS whatever the store
 * holds; alias cycles terminate through the seen-set.
 */
#include "resolve.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "log.h"
#include "mailbox.h"
#include "xalloc.h"

struct item {
    char *local;  /* lower-cased, for lookups */
    char *domain; /* lower-cased */
    char *orig;   /* the address as configured: remote local parts keep their case */
    unsigned depth;
};

struct work {
    struct item *items;
    size_t n, cap, next;
};

static bool seen(const struct work *w, const char *local, const char *domain)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->items[i].local, local) == 0 && strcmp(w->items[i].domain, domain) == 0)
            return true;
    return false;
}

/* Queues an address; false when the expansion is too wide. */
static bool push(struct work *w, const char *local, const char *domain, const char *orig,
                 unsigned depth)
{
    if (seen(w, local, domain)) return true;
    if (w->n >= RESOLVE_MAX_TARGETS) return false;
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 8;
        w->items = xreallocarray(w->items, w->cap, sizeof(*w->items));
    }
    w->items[w->n].local = address_lower(xstrdup(local));
    w->items[w->n].domain = address_lower(xstrdup(domain));
    w->items[w->n].orig = orig ? xstrdup(orig) : xasprintf("%s@%s", local, domain);
    w->items[w->n].depth = depth;
    w->n++;
    return true;
}

static bool push_address(struct work *w, const char *address, unsigned depth)
{
    char *local, *domain;
    if (address_split(address, &local, &domain) < 0) {
        log_error(LOG_SMTP, NULL, "Ignoring malformed forwarding target '%s'", address);
        return true;
    }
    bool ok = push(w, local, domain, address, depth);
    free(local);
    free(domain);
    return ok;
}

static void add_mailbox(struct resolved *r, const char *mail_dir, const struct store_account *a)
{
    char *dir = mailbox_path(mail_dir, a->domain_dir, a->localpart);
    for (size_t i = 0; i < r->nmailboxes; i++) {
        if (strcmp(r->mailboxes[i].dir, dir) == 0) {
            free(dir);
            return;
        }
    }
    r->mailboxes = xreallocarray(r->mailboxes, r->nmailboxes + 1, sizeof(*r->mailboxes));
    struct resolved_mailbox *m = &r->mailboxes[r->nmailboxes++];
    m->address = xasprintf("%s@%s", a->localpart, a->domain);
    m->dir = dir;
    m->quota = a->quota;
}

/* Same address: local parts compare exactly, domains without regard to case. */
bool resolve_same_address(const char *a, const char *b)
{
    const char *at_a = strrchr(a, '@'), *at_b = strrchr(b, '@');
    if (at_a == NULL || at_b == NULL) return strcmp(a, b) == 0;
    return at_a - a == at_b - b && strncmp(a, b, (size_t)(at_a - a)) == 0 &&
           strcasecmp(at_a, at_b) == 0;
}

static void add_remote(struct resolved *r, const char *address)
{
    char *addr = xstrdup(address);
    for (size_t i = 0; i < r->nremote; i++) {
        if (resolve_same_address(r->remote[i], addr)) {
            free(addr);
            return;
        }
    }
    r->remote = xreallocarray(r->remote, r->nremote + 1, sizeof(char *));
    r->remote[r->nremote++] = addr;
}

/* Queues the targets of an alias or forward. */
static bool push_targets(struct work *w, struct resolved *r, const struct store_account *a,
                         unsigned depth)
{
    for (size_t i = 0; i < a->ntargets; i++) {
        if (strcasecmp(a->targets[i], "null") == 0) {
            r->discard = true;
            continue;
        }
        if (!push_address(w, a->targets[i], depth + 1)) return false;
    }
    return true;
}

enum resolve_result resolve_recipient(struct store *st, const char *mail_dir, const char *local,
                                      const char *domain, struct resolved *out)
{
    memset(out, 0, sizeof(*out));
    struct work w = {0};
    enum resolve_result result = RESOLVE_OK;
    push(&w, local, domain, NULL, 0);

    while (w.next < w.n) {
        struct item it = w.items[w.next++];
        if (it.depth > RESOLVE_MAX_DEPTH) {
            log_error(LOG_SMTP, NULL, "Forwarding of %s@%s stops: more than %d levels (a loop?)",
                      local, domain, RESOLVE_MAX_DEPTH);
            continue;
        }
        struct store_account *acc = NULL;
        struct store_domain *dom = NULL;
        enum store_result sr = store_account_find(st, it.local, it.domain, &acc, &dom);
        if (sr == STORE_TEMPFAIL) {
            result = RESOLVE_TEMPFAIL;
            goto done;
        }
        if (dom != NULL && dom->type == DOMAIN_ETRN) {
            /* queued for the server that asks for it with ETRN: no accounts here */
            add_remote(out, it.orig);
            store_account_free(&acc);
            store_domain_free(&dom);
            continue;
        }
        if (sr == STORE_NOTFOUND && dom == NULL) {
            if (it.depth == 0) {
                result = RESOLVE_NOT_LOCAL;
                goto done;
            }
            add_remote(out, it.orig);
            continue;
        }
        if (sr == STORE_NOTFOUND) {
            /* a local domain without this local part: its catch-all, if any */
            bool ok = true;
            if (dom->catchall && strcasecmp(dom->catchall, "null") == 0) {
                out->discard = true;
            } else if (dom->catchall && it.local[0] != '\0') {
                ok = push_address(&w, dom->catchall, it.depth + 1);
            } else if (it.depth == 0) {
                result = RESOLVE_UNKNOWN;
            } else {
                log_error(LOG_SMTP, NULL, "Forwarding of %s@%s: target %s@%s does not exist", local,
                          domain, it.local, it.domain);
            }
            store_domain_free(&dom);
            if (!ok) goto too_wide;
            if (result != RESOLVE_OK) goto done;
            continue;
        }
        if (sr != STORE_OK) {
            result = RESOLVE_TEMPFAIL;
            store_domain_free(&dom);
            goto done;
        }
        bool ok = true;
        if (acc->type == ACCOUNT_ALIAS) {
            ok = push_targets(&w, out, acc, it.depth);
        } else {
            if (acc->ntargets == 0 || acc->keep_copy) add_mailbox(out, mail_dir, acc);
            ok = push_targets(&w, out, acc, it.depth);
        }
        store_account_free(&acc);
        store_domain_free(&dom);
        if (!ok) goto too_wide;
    }
    goto check;
too_wide:
    log_error(LOG_SMTP, NULL, "Forwarding of %s@%s expands to more than %d addresses; stopped",
              local, domain, RESOLVE_MAX_TARGETS);
check:
    if (out->nmailboxes == 0 && out->nremote == 0 && !out->discard) result = RESOLVE_UNKNOWN;
done:
    for (size_t i = 0; i < w.n; i++) {
        free(w.items[i].local);
        free(w.items[i].domain);
        free(w.items[i].orig);
    }
    free(w.items);
    if (result != RESOLVE_OK) resolved_clear(out);
    return result;
}

void resolved_clear(struct resolved *r)
{
    for (size_t i = 0; i < r->nmailboxes; i++) {
        free(r->mailboxes[i].address);
        free(r->mailboxes[i].dir);
    }
    free(r->mailboxes);
    for (size_t i = 0; i < r->nremote; i++)
        free(r->remote[i]);
    free(r->remote);
    memset(r, 0, sizeof(*r));
}

/* The Administrator user accounts of domain as mailboxes. */
static enum resolve_result administrators(struct store *st, const char *mail_dir,
                                          const char *domain, struct resolved *out)
{
    struct store_account **accs = NULL;
    size_t n = 0;
    enum store_result sr = store_account_list(st, domain, &accs, &n);
    if (sr == STORE_TEMPFAIL) return RESOLVE_TEMPFAIL;
    for (size_t i = 0; i < n; i++) {
        if (accs[i]->type == ACCOUNT_USER && accs[i]->admin) {
            add_mailbox(out, mail_dir, accs[i]);
        }
    }
    store_account_list_free(&accs, n);
    return out->nmailboxes ? RESOLVE_OK : RESOLVE_UNKNOWN;
}

/* The postmaster of local domain dom when it has no postmaster account or alias: its
 * Administrators, else the domain's own postmaster mailbox directory (kept until
 * someone creates the account, which then reads it). */
static enum resolve_result postmaster_fallback(struct store *st, const char *mail_dir,
                                               const struct store_domain *dom, struct resolved *out)
{
    enum resolve_result r = administrators(st, mail_dir, dom->name, out);
    if (r != RESOLVE_UNKNOWN) return r;
    struct store_account implicit = {
        .localpart = (char *)"postmaster", .domain = dom->name, .domain_dir = dom->dir};
    add_mailbox(out, mail_dir, &implicit);
    log_line(LOG_SMTP, NULL,
             "postmaster@%s has no account, alias or Administrator: mail for it "
             "is kept in %s/%s/postmaster",
             dom->name, mail_dir, dom->dir);
    return RESOLVE_OK;
}

/* postmaster@domain for a local domain. */
static enum resolve_result postmaster_of(struct store *st, const char *mail_dir, const char *domain,
                                         struct resolved *out)
{
    enum resolve_result r = resolve_recipient(st, mail_dir, "postmaster", domain, out);
    if (r != RESOLVE_UNKNOWN) return r; /* delivered, not local, or a store failure */
    struct store_domain *dom = NULL;
    if (store_domain_find(st, domain, &dom) == STORE_TEMPFAIL) return RESOLVE_TEMPFAIL;
    r = dom ? postmaster_fallback(st, mail_dir, dom, out) : RESOLVE_NOT_LOCAL;
    store_domain_free(&dom);
    return r;
}

enum resolve_result resolve_postmaster(struct store *st, const char *mail_dir, const char *domain,
                                       const char *hostname, struct resolved *out)
{
    memset(out, 0, sizeof(*out));
    if (domain && *domain) return postmaster_of(st, mail_dir, domain, out);

    /* <Postmaster>: the first of this host's names that is a local domain */
    for (const char *d = hostname; d; d = strchr(d, '.') ? strchr(d, '.') + 1 : NULL) {
        enum resolve_result r = postmaster_of(st, mail_dir, d, out);
        if (r != RESOLVE_NOT_LOCAL) return r;
    }
    /* else the first local domain */
    struct store_domain **domains = NULL;
    size_t n = 0;
    if (store_domain_list(st, &domains, &n) == STORE_TEMPFAIL) return RESOLVE_TEMPFAIL;
    enum resolve_result r = RESOLVE_UNKNOWN;
    for (size_t i = 0; i < n && r == RESOLVE_UNKNOWN; i++)
        if (strchr(domains[i]->name, '*') == NULL && domains[i]->type == DOMAIN_LOCAL)
            r = postmaster_of(st, mail_dir, domains[i]->name, out);
    store_domain_list_free(&domains, n);
    if (r == RESOLVE_UNKNOWN || r == RESOLVE_NOT_LOCAL) {
        log_error(LOG_SMTP, NULL, "Mail for <Postmaster> refused: there is no local domain");
        r = RESOLVE_UNKNOWN;
    }
    return r;
}

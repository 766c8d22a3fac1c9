/* admin_commands.c - what an administrator can do over the admin port, once logged in
 *
 * One table of commands (word, handler); each handler checks its arguments, does what
 * alkaid-user does for the same operation (tools/alkaid_user.c: the same checks in the
 * same order, the same store calls) and answers with one JSON line. Changes are logged
 * with admin_log_change(). QUEUE works on mail/FORWARD/ through queue_admin.h and nudges
 * smtpd over its ctl socket; STATUS, RELOAD and RESTART talk to the services' ctl
 * sockets; LOG reads the tail of today's log file of a channel.
 *
 * SECURITY: names from the client are checked by address.h / the store / queue_id_valid
 * before they reach a path; mailbox removal (USER DEL ... PURGE) never follows a
 * symbolic link; passwords are hashed at once and never logged. RESTART runs a service
 * binary from our own directory with spawn_program() and fixed arguments: no shell.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "admin.h"
#include "watchdog.h"
#include "ctl.h"
#include "fsutil.h"
#include "log.h"
#include "mailbox.h"
#include "password.h"
#include "platform.h"
#include "queue_admin.h"
#include "service.h"
#include "spawn_program.h"
#include "xalloc.h"

#define STORE_TARGETS_MAX 1000

typedef void command_fn(struct admin_session *s, char **args, size_t nargs);

static const char *const services[] = {"smtpd", "pop3imapd", "controld"};

static bool known_service(const char *name)
{
    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
        if (strcmp(name, services[i]) == 0) return true;
    return false;
}

static void done(struct admin_session *s)
{
    admin_reply_ok_str(s, "{\"done\":true}");
}

static void busy(struct admin_session *s)
{
    admin_reply_err(s, "BUSY", "the account store is busy or unavailable; try again later");
}

/* A store result that is not STORE_OK, as a reply. */
static void store_fail(struct admin_session *s, enum store_result r, const char *what,
                       const char *error)
{
    switch (r) {
    case STORE_TEMPFAIL: busy(s); return;
    case STORE_NOTFOUND:
        admin_reply_err(s, "NOTFOUND", "%s: %s", what, error ? error : "not found");
        return;
    case STORE_EXISTS:
        admin_reply_err(s, "EXISTS", "%s: %s", what, error ? error : "already exists");
        return;
    default: admin_reply_err(s, "INVALID", "%s: %s", what, error ? error : "refused"); return;
    }
}

/* ---- names ---- */

/* Splits and checks an address; replies and returns -1 if it is not one. */
static int parse_address(struct admin_session *s, const char *arg, char **local_r, char **domain_r)
{
    if (address_split(arg, local_r, domain_r) < 0) {
        admin_reply_err(s, "INVALID", "invalid address %s: expected local@domain", arg);
        return -1;
    }
    const char *why = address_account_invalid(*local_r, *domain_r);
    if (why != NULL) {
        admin_reply_err(s, "INVALID", "%s: %s", arg, why);
        free(*local_r);
        free(*domain_r);
        *local_r = *domain_r = NULL;
        return -1;
    }
    return 0;
}

/* domain must be a local domain by exactly this name; replies and returns -1 if not. */
static int require_domain(struct admin_session *s, const char *domain, struct store_domain **dom_r)
{
    struct store_domain *d = NULL;
    enum store_result r = store_domain_find(s->store, domain, &d);
    if (r == STORE_TEMPFAIL) {
        busy(s);
        return -1;
    }
    if (r == STORE_OK && strcasecmp(d->name, domain) != 0) {
        admin_reply_err(s, "NOTFOUND",
                        "%s is not a domain by that name (it matches the wildcard domain %s;"
                        " name that one to use it)",
                        domain, d->name);
        store_domain_free(&d);
        return -1;
    }
    if (r != STORE_OK) {
        admin_reply_err(s, "NOTFOUND", "no such domain: %s", domain);
        return -1;
    }
    if (dom_r)
        *dom_r = d;
    else
        store_domain_free(&d);
    return 0;
}

static void put_account(char *local, char *domain, struct store_account **a)
{
    store_account_free(a);
    free(local);
    free(domain);
}

/* The account at exactly arg (its domain checked first). 0 (with *a_r NULL when missing
 * and allow_missing; free the outputs with put_account()), or -1 after replying, with
 * nothing left to free. */
static int get_account(struct admin_session *s, const char *arg, bool allow_missing, char **local_r,
                       char **domain_r, struct store_account **a_r)
{
    *local_r = *domain_r = NULL;
    *a_r = NULL;
    enum store_result r = STORE_OK;
    if (parse_address(s, arg, local_r, domain_r) < 0 || require_domain(s, *domain_r, NULL) < 0)
        goto fail;
    r = store_account_find(s->store, *local_r, *domain_r, a_r, NULL);
    if (r == STORE_TEMPFAIL) {
        busy(s);
        goto fail;
    }
    if (r == STORE_NOTFOUND && allow_missing) return 0;
    if (r != STORE_OK) {
        admin_reply_err(s, "NOTFOUND", "no such account: %s@%s", *local_r, *domain_r);
        goto fail;
    }
    return 0;
fail:
    put_account(*local_r, *domain_r, a_r);
    *local_r = *domain_r = NULL;
    return -1;
}

/* An existing account that is not an alias (a user, forwarding or not); an alias is
 * refused with "<address> is an alias; <alias_why>". -1 after replying, as above. */
static int get_user(struct admin_session *s, const char *arg, const char *alias_why, char **local_r,
                    char **domain_r, struct store_account **a_r)
{
    if (get_account(s, arg, false, local_r, domain_r, a_r) < 0) return -1;
    if ((*a_r)->type != ACCOUNT_ALIAS) return 0;
    admin_reply_err(s, "INVALID", "%s@%s is an alias; %s", *local_r, *domain_r, alias_why);
    put_account(*local_r, *domain_r, a_r);
    *local_r = *domain_r = NULL;
    return -1;
}

static char *expand_target(const char *t, const char *domain)
{
    if (strcasecmp(t, "null") == 0 || strchr(t, '@') != NULL) return xstrdup(t);
    return xasprintf("%s@%s", t, domain);
}

static void add_expanded(char ***v, size_t *nv, char *const *args, size_t n, const char *domain)
{
    *v = xreallocarray(*v, *nv + n + 1, sizeof(**v));
    for (size_t i = 0; i < n; i++)
        (*v)[(*nv)++] = expand_target(args[i], domain);
}

static void free_targets(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void json_targets(struct sbuf *json, char *const *v, size_t n)
{
    sbuf_putc(json, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) sbuf_putc(json, ',');
        admin_json_string(json, v[i]);
    }
    sbuf_putc(json, ']');
}

static const char *type_name(const struct store_account *a)
{
    if (a->type == ACCOUNT_ALIAS) return "alias";
    return a->ntargets > 0 ? "forward" : "user";
}

/* ---- passwords ---- */

/* The hash of a new password given on the line; NULL after replying. */
static char *new_password_hash(struct admin_session *s, const char *password)
{
    size_t len = strlen(password);
    if (len == 0) {
        admin_reply_err(s, "INVALID", "empty password; nothing changed");
        return NULL;
    }
    if (len > ADMIN_PASSWORD_MAX) {
        admin_reply_err(s, "INVALID", "the password is too long (at most %d bytes)",
                        ADMIN_PASSWORD_MAX);
        return NULL;
    }
    return password_hash(password, len, (unsigned)service_config()->password_iterations);
}

/* ---- DOMAIN ---- */

static void cmd_domain(struct admin_session *s, char **args, size_t nargs)
{
    const char *sub = nargs > 1 ? args[1] : "";
    const struct alkaid_config *cfg = service_config();
    if (strcasecmp(sub, "LIST") == 0 && nargs == 2) {
        struct store_domain **v = NULL;
        size_t n = 0;
        enum store_result r = store_domain_list(s->store, &v, &n);
        if (r != STORE_OK) {
            store_fail(s, r, "domain list", NULL);
            return;
        }
        struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
        sbuf_appends(&json, "{\"domains\":[");
        for (size_t i = 0; i < n; i++) {
            if (i) sbuf_putc(&json, ',');
            admin_json_string(&json, v[i]->name);
        }
        sbuf_appends(&json, "],\"types\":{");
        for (size_t i = 0; i < n; i++) {
            if (i) sbuf_putc(&json, ',');
            admin_json_string(&json, v[i]->name);
            sbuf_appends(&json, v[i]->type == DOMAIN_ETRN ? ":\"etrn\"" : ":\"local\"");
        }
        sbuf_appends(&json, "},\"accounts\":{");
        for (size_t i = 0; i < n; i++) {
            if (i) sbuf_putc(&json, ',');
            admin_json_string(&json, v[i]->name);
            sbuf_printf(&json, ":%u", v[i]->accounts);
        }
        sbuf_appends(&json, "},\"catchalls\":{");
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            if (v[i]->catchall == NULL) continue;
            if (!first) sbuf_putc(&json, ',');
            first = false;
            admin_json_string(&json, v[i]->name);
            sbuf_putc(&json, ':');
            admin_json_string(&json, v[i]->catchall);
        }
        sbuf_appends(&json, "}}");
        store_domain_list_free(&v, n);
        admin_reply_ok(s, &json);
        sbuf_free(&json);
    } else if (strcasecmp(sub, "ADD") == 0 &&
               (nargs == 3 || (nargs == 4 && strcasecmp(args[3], "ETRN") == 0))) {
        const char *error = NULL;
        bool etrn = nargs == 4;
        enum store_result r =
            store_domain_add_type(s->store, args[2], etrn ? DOMAIN_ETRN : DOMAIN_LOCAL, &error);
        if (r == STORE_EXISTS) {
            admin_reply_err(s, "EXISTS", "domain %s already exists", args[2]);
            return;
        }
        if (r == STORE_INVALID && error && strcmp(error, "invalid domain name") != 0) {
            admin_reply_err(s, "INVALID", "%s: %s", args[2], error);
            return;
        }
        if (r == STORE_INVALID) {
            admin_reply_err(s, "INVALID",
                            "invalid domain name: %s (labels of letters, digits and '-' separated"
                            " by dots; '*' as a wildcard)",
                            args[2]);
            return;
        }
        if (r != STORE_OK) {
            store_fail(s, r, "domain add", error);
            return;
        }
        admin_log_change(s, "DOMAIN ADD %s%s", args[2], etrn ? " ETRN" : "");
        if (etrn) { /* queued for another server: no mailbox directory */
            done(s);
            return;
        }
        char *dirname = address_domain_dir(args[2]);
        char *dir = xasprintf("%s/%s", cfg->mail_dir, dirname);
        if (fs_mkdirs(dir, 0700) < 0)
            admin_reply_err(s, "INTERNAL",
                            "domain %s added, but its directory %s could not be"
                            " made: %s",
                            args[2], dir, strerror(errno));
        else
            done(s);
        free(dir);
        free(dirname);
    } else if (strcasecmp(sub, "DEL") == 0 &&
               (nargs == 3 || (nargs == 4 && strcasecmp(args[3], "FORCE") == 0))) {
        struct store_domain *d = NULL;
        enum store_result r = store_domain_find(s->store, args[2], &d);
        if (r == STORE_TEMPFAIL) {
            busy(s);
            return;
        }
        if (r != STORE_OK || strcasecmp(d->name, args[2]) != 0) {
            store_domain_free(&d);
            admin_reply_err(s, "NOTFOUND", "no such domain: %s", args[2]);
            return;
        }
        const char *error = NULL;
        bool force = nargs == 4;
        r = store_domain_del(s->store, d->name, force, &error);
        if (r == STORE_NOTEMPTY) {
            admin_reply_err(s, "EXISTS",
                            "domain %s still has %u account%s; delete them first, or use FORCE",
                            d->name, d->accounts, d->accounts == 1 ? "" : "s");
        } else if (r != STORE_OK) {
            store_fail(s, r, "domain del", error);
        } else {
            admin_log_change(s, "DOMAIN DEL %s%s (%u accounts)", d->name, force ? " FORCE" : "",
                             d->accounts);
            done(s);
        }
        store_domain_free(&d);
    } else {
        admin_reply_err(s, "SYNTAX", "DOMAIN LIST | DOMAIN ADD domain | DOMAIN DEL domain [FORCE]");
    }
}

/* ---- USER ---- */

static void user_list(struct admin_session *s, char **args, size_t nargs)
{
    const char *domain = nargs > 2 ? args[2] : NULL;
    if (domain && require_domain(s, domain, NULL) < 0) return;
    struct store_account **v = NULL;
    size_t n = 0;
    enum store_result r = store_account_list(s->store, domain, &v, &n);
    if (r != STORE_OK) {
        store_fail(s, r, "user list", "no such domain");
        return;
    }
    struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&json, "{\"users\":[");
    for (size_t i = 0; i < n; i++) {
        char *addr = xasprintf("%s@%s", v[i]->localpart, v[i]->domain);
        sbuf_appends(&json, i ? ",{\"address\":" : "{\"address\":");
        admin_json_string(&json, addr);
        sbuf_printf(&json, ",\"type\":\"%s\",\"admin\":%s,\"quota\":%" PRIu64 "}", type_name(v[i]),
                    v[i]->admin ? "true" : "false", v[i]->quota);
        free(addr);
    }
    sbuf_appends(&json, "]}");
    store_account_list_free(&v, n);
    admin_reply_ok(s, &json);
    sbuf_free(&json);
}

static void user_show(struct admin_session *s, const char *arg)
{
    char *local, *domain;
    if (parse_address(s, arg, &local, &domain) < 0) return;
    struct store_account *a = NULL;
    struct store_domain *d = NULL;
    enum store_result r = store_account_find(s->store, local, domain, &a, &d);
    if (r == STORE_TEMPFAIL)
        busy(s);
    else if (r == STORE_NOTFOUND && d == NULL)
        admin_reply_err(s, "NOTFOUND", "no such domain: %s", domain);
    else if (r == STORE_NOTFOUND && d->catchall)
        admin_reply_err(s, "NOTFOUND",
                        "no such account: %s@%s (mail to it goes to the catch-all of %s: %s)",
                        local, domain, d->name, d->catchall);
    else if (r == STORE_NOTFOUND)
        admin_reply_err(s, "NOTFOUND", "no such account: %s@%s", local, domain);
    else if (r != STORE_OK)
        store_fail(s, r, "user show", NULL);
    if (r == STORE_OK) {
        uint64_t used = 0;
        if (a->type == ACCOUNT_USER) {
            char *mbox = mailbox_path(service_config()->mail_dir, a->domain_dir, a->localpart);
            used = mailbox_usage(mbox, NULL);
            free(mbox);
        }
        char *addr = xasprintf("%s@%s", a->localpart, a->domain);
        struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
        sbuf_appends(&json, "{\"address\":");
        admin_json_string(&json, addr);
        sbuf_printf(&json,
                    ",\"type\":\"%s\",\"admin\":%s,\"quota\":%" PRIu64 ",\"used\":%" PRIu64
                    ",\"targets\":",
                    type_name(a), a->admin ? "true" : "false", a->quota, used);
        json_targets(&json, a->targets, a->ntargets);
        sbuf_printf(&json, ",\"keep\":%s}",
                    a->type == ACCOUNT_USER && (a->ntargets == 0 || a->keep_copy) ? "true"
                                                                                  : "false");
        admin_reply_ok(s, &json);
        sbuf_free(&json);
        free(addr);
    }
    store_domain_free(&d);
    put_account(local, domain, &a);
}

/* [ADMIN|NOADMIN] [QUOTA size] from args[from..nargs): a bit set of what was given.
 * -1 after replying. */
#define SET_ADMIN   1
#define SET_NOADMIN 2
#define SET_QUOTA   4
static int user_options(struct admin_session *s, char **args, size_t from, size_t nargs,
                        bool allow_noadmin, uint64_t *quota_r, const char **quota_arg_r)
{
    int seen = 0;
    for (size_t i = from; i < nargs; i++) {
        if (strcasecmp(args[i], "ADMIN") == 0 && !(seen & (SET_ADMIN | SET_NOADMIN))) {
            seen |= SET_ADMIN;
        } else if (allow_noadmin && strcasecmp(args[i], "NOADMIN") == 0 &&
                   !(seen & (SET_ADMIN | SET_NOADMIN))) {
            seen |= SET_NOADMIN;
        } else if (strcasecmp(args[i], "QUOTA") == 0 && i + 1 < nargs && !(seen & SET_QUOTA)) {
            *quota_arg_r = args[i + 1];
            if (store_quota_parse(args[++i], quota_r) < 0) {
                admin_reply_err(s, "INVALID",
                                "invalid quota %s (a number of megabytes, or with B, K, M or G;"
                                " 0 is unlimited)",
                                args[i]);
                return -1;
            }
            seen |= SET_QUOTA;
        } else {
            admin_reply_err(s, "SYNTAX", "unexpected argument %s", args[i]);
            return -1;
        }
    }
    return seen;
}

static void user_add(struct admin_session *s, char **args, size_t nargs)
{
    uint64_t quota = 0;
    const char *quota_arg = "";
    int seen = user_options(s, args, 4, nargs, false, &quota, &quota_arg);
    if (seen < 0) return;
    char *local, *domain;
    struct store_account *a;
    if (get_account(s, args[2], true, &local, &domain, &a) < 0) return;
    if (a != NULL) {
        admin_reply_err(s, "EXISTS", "%s@%s already exists (%s)", local, domain,
                        a->type == ACCOUNT_ALIAS ? "an alias" : "a user");
        put_account(local, domain, &a);
        return;
    }
    char *hash = new_password_hash(s, args[3]);
    if (hash == NULL) {
        put_account(local, domain, &a);
        return;
    }
    struct store_account acc = {.localpart = local,
                                .domain = domain,
                                .type = ACCOUNT_USER,
                                .password_hash = hash,
                                .admin = (seen & SET_ADMIN) != 0,
                                .quota = quota};
    const char *error = NULL;
    enum store_result r = store_account_add(s->store, &acc, &error);
    free(hash);
    if (r != STORE_OK) {
        store_fail(s, r, "user add", r == STORE_EXISTS ? "already exists" : error);
        put_account(local, domain, &a);
        return;
    }
    admin_log_change(s, "USER ADD %s@%s%s%s%s", local, domain, seen & SET_ADMIN ? " ADMIN" : "",
                     seen & SET_QUOTA ? " QUOTA " : "", seen & SET_QUOTA ? quota_arg : "");
    char *ddir = address_domain_dir(domain);
    char *mbox = mailbox_path(service_config()->mail_dir, ddir, local);
    if (mailbox_create(mbox) < 0)
        admin_reply_err(s, "INTERNAL", "%s@%s added, but its mailbox %s could not be made: %s",
                        local, domain, mbox, strerror(errno));
    else
        done(s);
    free(mbox);
    free(ddir);
    put_account(local, domain, &a);
}

static void user_del(struct admin_session *s, char **args, size_t nargs)
{
    bool purge = nargs == 4;
    char *local, *domain;
    struct store_account *a;
    if (get_account(s, args[2], false, &local, &domain, &a) < 0) return;
    const char *error = NULL;
    enum store_result r = store_account_del(s->store, local, domain, &error);
    if (r != STORE_OK) {
        store_fail(s, r, "user del", error);
    } else {
        admin_log_change(s, "USER DEL %s@%s%s", local, domain, purge ? " PURGE" : "");
        if (purge && a->type == ACCOUNT_USER &&
            mailbox_purge(service_config()->mail_dir, a->domain_dir, local) < 0)
            admin_reply_err(s, "INTERNAL",
                            "deleted %s@%s, but its mailbox could not be removed: %s", local,
                            domain, strerror(errno));
        else
            done(s);
    }
    put_account(local, domain, &a);
}

static void user_passwd(struct admin_session *s, char **args)
{
    char *local, *domain;
    struct store_account *a;
    if (get_user(s, args[2], "an alias has no password", &local, &domain, &a) < 0) return;
    char *hash = new_password_hash(s, args[3]);
    if (hash) {
        enum store_result r = store_account_set_password(s->store, local, domain, hash);
        if (r != STORE_OK) {
            store_fail(s, r, "user passwd", r == STORE_NOTFOUND ? "no such account" : NULL);
        } else {
            admin_log_change(s, "USER PASSWD %s@%s", local, domain);
            done(s);
        }
        free(hash);
    }
    put_account(local, domain, &a);
}

static void user_set(struct admin_session *s, char **args, size_t nargs)
{
    uint64_t quota = 0;
    const char *quota_arg = "";
    int seen = user_options(s, args, 3, nargs, true, &quota, &quota_arg);
    if (seen < 0) return;
    if (seen == 0) {
        admin_reply_err(s, "SYNTAX", "USER SET: nothing to set (ADMIN, NOADMIN or QUOTA size)");
        return;
    }
    char *local, *domain;
    struct store_account *a;
    if (get_user(s, args[2], "an alias has no admin flag or quota", &local, &domain, &a) < 0)
        return;
    enum store_result r = STORE_OK;
    if (seen & (SET_ADMIN | SET_NOADMIN))
        r = store_account_set_admin(s->store, local, domain, (seen & SET_ADMIN) != 0);
    if (r == STORE_OK && (seen & SET_QUOTA))
        r = store_account_set_quota(s->store, local, domain, quota);
    if (r != STORE_OK) {
        store_fail(s, r, "user set", NULL);
    } else {
        admin_log_change(s, "USER SET %s@%s%s%s quota=%" PRIu64, local, domain,
                         seen & SET_ADMIN ? " ADMIN" : "", seen & SET_NOADMIN ? " NOADMIN" : "",
                         seen & SET_QUOTA ? quota : a->quota);
        done(s);
    }
    put_account(local, domain, &a);
}

static void cmd_user(struct admin_session *s, char **args, size_t nargs)
{
    const char *sub = nargs > 1 ? args[1] : "";
    if (strcasecmp(sub, "LIST") == 0 && nargs <= 3)
        user_list(s, args, nargs);
    else if (strcasecmp(sub, "SHOW") == 0 && nargs == 3)
        user_show(s, args[2]);
    else if (strcasecmp(sub, "ADD") == 0 && nargs >= 4)
        user_add(s, args, nargs);
    else if (strcasecmp(sub, "DEL") == 0 &&
             (nargs == 3 || (nargs == 4 && strcasecmp(args[3], "PURGE") == 0)))
        user_del(s, args, nargs);
    else if (strcasecmp(sub, "PASSWD") == 0 && nargs == 4)
        user_passwd(s, args);
    else if (strcasecmp(sub, "SET") == 0 && nargs >= 3)
        user_set(s, args, nargs);
    else
        admin_reply_err(s, "SYNTAX",
                        "USER LIST [domain] | SHOW address | ADD address password [ADMIN]"
                        " [QUOTA size] | DEL address [PURGE] | PASSWD address password |"
                        " SET address [ADMIN|NOADMIN] [QUOTA size]");
}

/* ---- ALIAS, FORWARD, CATCHALL ---- */

static void alias_add(struct admin_session *s, char **args, size_t nargs)
{
    char *local, *domain;
    struct store_account *a;
    if (get_account(s, args[2], true, &local, &domain, &a) < 0) return;
    if (a != NULL && a->type == ACCOUNT_USER) {
        admin_reply_err(s, "EXISTS", "%s@%s is a user; use FORWARD for a user's forwarding", local,
                        domain);
        put_account(local, domain, &a);
        return;
    }
    char **v = NULL;
    size_t nv = 0;
    if (a != NULL) add_expanded(&v, &nv, a->targets, a->ntargets, domain);
    add_expanded(&v, &nv, args + 3, nargs - 3, domain);
    const char *error = NULL;
    enum store_result r;
    if (a != NULL) {
        r = store_account_set_targets(s->store, local, domain, v, nv, false, &error);
    } else {
        struct store_account acc = {.localpart = local,
                                    .domain = domain,
                                    .type = ACCOUNT_ALIAS,
                                    .targets = v,
                                    .ntargets = nv};
        r = store_account_add(s->store, &acc, &error);
    }
    if (r != STORE_OK) {
        store_fail(s, r, "alias add", error);
    } else {
        struct sbuf t = SBUF_INIT(SBUF_NO_MAX);
        for (size_t i = 3; i < nargs; i++)
            sbuf_printf(&t, " %s", args[i]);
        admin_log_change(s, "ALIAS ADD %s@%s%s", local, domain, sbuf_cstr(&t));
        sbuf_free(&t);
        done(s);
    }
    free_targets(v, nv);
    put_account(local, domain, &a);
}

static void alias_del(struct admin_session *s, char **args, size_t nargs)
{
    char *local, *domain;
    struct store_account *a;
    if (get_account(s, args[2], false, &local, &domain, &a) < 0) return;
    if (a->type != ACCOUNT_ALIAS) {
        admin_reply_err(s, "INVALID", "%s@%s is a user, not an alias; use USER DEL", local, domain);
        put_account(local, domain, &a);
        return;
    }
    const char *error = NULL;
    if (nargs == 3) {
        enum store_result r = store_account_del(s->store, local, domain, &error);
        if (r != STORE_OK) {
            store_fail(s, r, "alias del", error);
        } else {
            admin_log_change(s, "ALIAS DEL %s@%s", local, domain);
            done(s);
        }
        put_account(local, domain, &a);
        return;
    }
    char **drop = NULL;
    size_t ndrop = 0;
    add_expanded(&drop, &ndrop, args + 3, nargs - 3, domain);
    char **keep = xcalloc(a->ntargets + 1, sizeof(*keep));
    size_t nkeep = 0;
    for (size_t i = 0; i < a->ntargets; i++) {
        bool dropped = false;
        for (size_t j = 0; j < ndrop && !dropped; j++)
            dropped = strcasecmp(a->targets[i], drop[j]) == 0;
        if (!dropped) keep[nkeep++] = a->targets[i];
    }
    bool ok = true;
    for (size_t j = 0; j < ndrop && ok; j++) {
        bool member = false;
        for (size_t i = 0; i < a->ntargets && !member; i++)
            member = strcasecmp(a->targets[i], drop[j]) == 0;
        if (!member) {
            admin_reply_err(s, "NOTFOUND", "%s is not a member of %s@%s", drop[j], local, domain);
            ok = false;
        }
    }
    if (ok && nkeep == 0) {
        admin_reply_err(s, "INVALID",
                        "that would leave %s@%s without members; delete the alias with ALIAS DEL"
                        " %s@%s",
                        local, domain, local, domain);
        ok = false;
    }
    if (ok) {
        enum store_result r =
            store_account_set_targets(s->store, local, domain, keep, nkeep, false, &error);
        if (r != STORE_OK) {
            store_fail(s, r, "alias del", error);
        } else {
            struct sbuf t = SBUF_INIT(SBUF_NO_MAX);
            for (size_t j = 0; j < ndrop; j++)
                sbuf_printf(&t, " %s", drop[j]);
            admin_log_change(s, "ALIAS DEL %s@%s%s", local, domain, sbuf_cstr(&t));
            sbuf_free(&t);
            done(s);
        }
    }
    free(keep);
    free_targets(drop, ndrop);
    put_account(local, domain, &a);
}

static void cmd_alias(struct admin_session *s, char **args, size_t nargs)
{
    const char *sub = nargs > 1 ? args[1] : "";
    if (strcasecmp(sub, "ADD") == 0 && nargs >= 4 && nargs <= 3 + STORE_TARGETS_MAX)
        alias_add(s, args, nargs);
    else if (strcasecmp(sub, "DEL") == 0 && nargs >= 3 && nargs <= 3 + STORE_TARGETS_MAX)
        alias_del(s, args, nargs);
    else
        admin_reply_err(s, "SYNTAX", "ALIAS ADD address target... | ALIAS DEL address [target...]");
}

static void cmd_forward(struct admin_session *s, char **args, size_t nargs)
{
    bool off = nargs == 3 && strcasecmp(args[2], "OFF") == 0;
    bool keep = !off && nargs >= 3 && strcasecmp(args[nargs - 1], "KEEP") == 0;
    size_t ntargets = off ? 0 : nargs - 2 - (keep ? 1 : 0);
    bool bare_word = false; /* OFF, or a KEEP that is not last, among the targets */
    for (size_t i = 0; i < ntargets; i++)
        if (strcasecmp(args[2 + i], "OFF") == 0 || strcasecmp(args[2 + i], "KEEP") == 0)
            bare_word = true;
    if (nargs < 3 || (!off && ntargets == 0) || ntargets > STORE_TARGETS_MAX || bare_word) {
        admin_reply_err(s, "SYNTAX", "FORWARD address target... [KEEP] | FORWARD address OFF");
        return;
    }
    char *local, *domain;
    struct store_account *a;
    if (get_user(s, args[1], "change its members with ALIAS ADD|DEL", &local, &domain, &a) < 0)
        return;
    char **v = NULL;
    size_t nv = 0;
    add_expanded(&v, &nv, args + 2, ntargets, domain);
    const char *error = NULL;
    enum store_result r = store_account_set_targets(s->store, local, domain, v, nv, keep, &error);
    if (r != STORE_OK) {
        store_fail(s, r, "forward", error);
    } else {
        struct sbuf t = SBUF_INIT(SBUF_NO_MAX);
        for (size_t i = 0; i < nv; i++)
            sbuf_printf(&t, " %s", v[i]);
        admin_log_change(s, "FORWARD %s@%s%s%s", local, domain, off ? " OFF" : sbuf_cstr(&t),
                         keep ? " KEEP" : "");
        sbuf_free(&t);
        done(s);
    }
    free_targets(v, nv);
    put_account(local, domain, &a);
}

static void cmd_catchall(struct admin_session *s, char **args, size_t nargs)
{
    if (nargs != 3) {
        admin_reply_err(s, "SYNTAX", "CATCHALL domain address|null | CATCHALL domain OFF");
        return;
    }
    bool off = strcasecmp(args[2], "OFF") == 0;
    struct store_domain *d = NULL;
    if (require_domain(s, args[1], &d) < 0) return;
    char *target = off ? NULL : expand_target(args[2], d->name);
    const char *error = NULL;
    enum store_result r = store_domain_set_catchall(s->store, d->name, target, &error);
    if (r != STORE_OK) {
        store_fail(s, r, "catchall", error);
    } else {
        admin_log_change(s, "CATCHALL %s %s", d->name, off ? "OFF" : target);
        done(s);
    }
    free(target);
    store_domain_free(&d);
}

/* ---- QUEUE ---- */

static bool ctl_flush(const struct alkaid_config *cfg, const char *id)
{
    char *sock = xasprintf("%s/smtpd.sock", cfg->run_dir);
    char *cmd = xasprintf("FLUSH%s%s", id ? " " : "", id ? id : "");
    struct sbuf reply = SBUF_INIT(4096);
    const char *err;
    bool ok = ctl_request(sock, cmd, &reply, &err) == 0 && strncmp(sbuf_cstr(&reply), "OK", 2) == 0;
    sbuf_free(&reply);
    free(cmd);
    free(sock);
    return ok;
}

static void queue_fail(struct admin_session *s, enum queue_admin_result r, const char *id)
{
    switch (r) {
    case QUEUE_ADMIN_OK: return;
    case QUEUE_ADMIN_NOTFOUND:
        admin_reply_err(s, "NOTFOUND", "no message %s in the queue", id);
        return;
    case QUEUE_ADMIN_BUSY:
        admin_reply_err(s, "BUSY", "message %s is being sent right now; try again in a moment", id);
        return;
    case QUEUE_ADMIN_INVALID: admin_reply_err(s, "INVALID", "%s is not a queue id", id); return;
    case QUEUE_ADMIN_ERROR: break;
    }
    admin_reply_err(s, "INTERNAL", "message %s: %s", id, strerror(errno));
}

static void json_envelope(struct sbuf *json, const struct queue_item *item)
{
    const struct queue_envelope *e = &item->env;
    sbuf_appends(json, "{\"id\":");
    admin_json_string(json, e->id);
    sbuf_printf(json,
                ",\"state\":\"%s\",\"size\":%" PRIu64 ",\"attempts\":%u,\"next_try\":%lld,"
                "\"created\":%lld,\"sender\":",
                queue_state_name(item->state), e->size, e->attempts, e->next_try, e->created);
    admin_json_string(json, e->sender);
    sbuf_appends(json, ",\"recipients\":[");
    for (size_t k = 0; k < e->nrcpts; k++) {
        if (k) sbuf_putc(json, ',');
        admin_json_string(json, e->rcpts[k]);
    }
    sbuf_appends(json, "],\"errors\":[");
    for (size_t k = 0; k < e->nrcpts; k++) {
        if (k) sbuf_putc(json, ',');
        if (e->errors && e->errors[k])
            admin_json_string(json, e->errors[k]);
        else
            sbuf_appends(json, "null");
    }
    sbuf_putc(json, ']');
}

static void cmd_queue(struct admin_session *s, char **args, size_t nargs)
{
    const struct alkaid_config *cfg = service_config();
    const char *sub = nargs > 1 ? args[1] : "";
    char *dir = xasprintf("%s/FORWARD", cfg->mail_dir);
    if (strcasecmp(sub, "LIST") == 0 && nargs == 2) {
        struct queue_item *items;
        size_t n;
        if (queue_admin_list(dir, &items, &n) < 0) {
            admin_reply_err(s, "INTERNAL", "cannot read the queue: %s", strerror(errno));
        } else {
            struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
            sbuf_appends(&json, "{\"messages\":[");
            for (size_t i = 0; i < n; i++) {
                if (i) sbuf_putc(&json, ',');
                json_envelope(&json, &items[i]);
                sbuf_putc(&json, '}');
            }
            sbuf_appends(&json, "]}");
            queue_items_free(items, n);
            admin_reply_ok(s, &json);
            sbuf_free(&json);
        }
    } else if (strcasecmp(sub, "SHOW") == 0 && nargs == 3) {
        struct queue_item item;
        struct sbuf headers = SBUF_INIT(SBUF_NO_MAX);
        enum queue_admin_result r = queue_admin_show(dir, args[2], &item, &headers);
        if (r != QUEUE_ADMIN_OK) {
            queue_fail(s, r, args[2]);
        } else {
            struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
            json_envelope(&json, &item);
            sbuf_appends(&json, ",\"headers\":");
            admin_json_string_n(&json, sbuf_cstr(&headers), headers.len);
            sbuf_putc(&json, '}');
            admin_reply_ok(s, &json);
            sbuf_free(&json);
            spool_queue_envelope_clear(&item.env);
        }
        sbuf_free(&headers);
    } else if (strcasecmp(sub, "RETRY") == 0 && nargs == 3 && strcasecmp(args[2], "ALL") == 0) {
        if (!ctl_flush(cfg, NULL)) {
            admin_reply_err(s, "UNAVAILABLE",
                            "smtpd is not running (it tries the queue when it starts)");
        } else {
            admin_log_change(s, "QUEUE RETRY ALL");
            done(s);
        }
    } else if (nargs == 3 && (strcasecmp(sub, "RETRY") == 0 || strcasecmp(sub, "DELETE") == 0 ||
                              strcasecmp(sub, "HOLD") == 0 || strcasecmp(sub, "RELEASE") == 0)) {
        enum queue_admin_result r;
        bool flush = false;
        if (strcasecmp(sub, "RETRY") == 0) {
            r = queue_admin_retry(dir, args[2]);
            flush = true;
        } else if (strcasecmp(sub, "DELETE") == 0) {
            r = queue_admin_delete(dir, args[2]);
        } else if (strcasecmp(sub, "HOLD") == 0) {
            r = queue_admin_hold(dir, args[2]);
        } else {
            r = queue_admin_release(dir, args[2]);
            flush = true;
        }
        if (r != QUEUE_ADMIN_OK) {
            queue_fail(s, r, args[2]);
        } else {
            /* without a running smtpd the message is tried when it starts */
            if (flush) (void)ctl_flush(cfg, args[2]);
            char upper[16];
            size_t k = 0;
            for (; sub[k] && k < sizeof(upper) - 1; k++)
                upper[k] = (char)(sub[k] >= 'a' && sub[k] <= 'z' ? sub[k] - 32 : sub[k]);
            upper[k] = '\0';
            admin_log_change(s, "QUEUE %s %s", upper, args[2]);
            done(s);
        }
    } else {
        admin_reply_err(s, "SYNTAX",
                        "QUEUE LIST | SHOW id | RETRY id|ALL | DELETE id | HOLD id | RELEASE id");
    }
    free(dir);
}

/* ---- services ---- */

static void cmd_status(struct admin_session *s, char **args, size_t nargs)
{
    if (nargs != 1) {
        admin_reply_err(s, "SYNTAX", "STATUS");
        return;
    }
    const struct alkaid_config *cfg = service_config();
    struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&json, "{\"services\":{");
    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
        char *path = xasprintf("%s/%s.sock", cfg->run_dir, services[i]);
        struct sbuf reply = SBUF_INIT(1u << 20);
        const char *err = NULL;
        size_t n = 0;
        if (ctl_request(path, "STATUS", &reply, &err) == 0) {
            n = reply.len;
            while (n && (reply.data[n - 1] == '\n' || reply.data[n - 1] == '\r'))
                n--;
        }
        /* only a single JSON object line is passed on */
        bool good = n >= 2 && reply.data[0] == '{' && reply.data[n - 1] == '}' &&
                    memchr(reply.data, '\n', n) == NULL;
        sbuf_printf(&json, "%s\"%s\":", i ? "," : "", services[i]);
        if (good)
            sbuf_append(&json, reply.data, n);
        else
            sbuf_appends(&json, "{\"running\":false}");
        sbuf_free(&reply);
        free(path);
    }
    sbuf_appends(&json, "}}");
    admin_reply_ok(s, &json);
    sbuf_free(&json);
}

static void cmd_reload(struct admin_session *s, char **args, size_t nargs)
{
    if (nargs > 2 || (nargs == 2 && !known_service(args[1]))) {
        admin_reply_err(s, "SYNTAX", "RELOAD [smtpd|pop3imapd|controld]");
        return;
    }
    admin_log_change(s, "RELOAD%s%s", nargs == 2 ? " " : "", nargs == 2 ? args[1] : "");
    struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&json, "{\"reload\":");
    admin_reload_services(service_config(), nargs == 2 ? args[1] : NULL, &json);
    sbuf_putc(&json, '}');
    admin_reply_ok(s, &json);
    sbuf_free(&json);
}

/* The directory of our own executable. xmalloc'ed, or NULL. */
static char *own_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0) return NULL;
    buf[n] = '\0';
    return fs_dirname(buf);
}

int admin_restart_service(const struct alkaid_config *cfg, const char *service, char *err,
                          size_t err_size)
{
    /* Supervised (or with [Control] WatchdogRestart): the watchdog does it. */
    struct sbuf wd = SBUF_INIT(4096);
    bool done =
        watchdog_command("RESTART", service, &wd) == 0 && strncmp(sbuf_cstr(&wd), "OK", 2) == 0;
    sbuf_free(&wd);
    if (done) return 0;
    /* Under systemd a service started from here would live in controld's unit (and die
     * with it) while systemd thinks its own unit stopped: the service manager must do it. */
    if (getenv("INVOCATION_ID") != NULL) {
        snprintf(err, err_size,
                 "the services run under systemd: set [Control] WatchdogRestart in %s (e.g. "
                 "systemctl restart alkaid-%%s, docs/systemd.md) so that systemd restarts %s",
                 cfg->ini_path, service);
        return -1;
    }
    /* Otherwise: stop it over ctl, wait for its pid file lock to go, and start its
     * binary again, which goes to the background itself. */
    char *pidfile = xasprintf("%s/%s.pid", cfg->run_dir, service);
    char *sock = xasprintf("%s/%s.sock", cfg->run_dir, service);
    char *dir = own_dir();
    char *bin = dir ? xasprintf("%s/alkaid-%s", dir, service) : NULL;
    int ret = -1;
    if (bin == NULL || access(bin, X_OK) < 0) {
        snprintf(err, err_size, "cannot find the binary alkaid-%s next to alkaid-controld",
                 service);
        goto out;
    }
    if (platform_pidfile_owner(pidfile) > 0) {
        struct sbuf reply = SBUF_INIT(4096);
        const char *e = NULL;
        if (ctl_request(sock, "STOP", &reply, &e) < 0) {
            snprintf(err, err_size, "%s does not answer on its ctl socket: %s", service, e);
            sbuf_free(&reply);
            goto out;
        }
        sbuf_free(&reply);
        int64_t deadline = conn_now_ms() + 30000;
        while (platform_pidfile_owner(pidfile) > 0) {
            if (conn_now_ms() > deadline) {
                snprintf(err, err_size, "%s did not stop within 30 seconds", service);
                goto out;
            }
            usleep(50000);
        }
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        snprintf(err, err_size, "pipe: %s", strerror(errno));
        goto out;
    }
    char *argv[] = {bin, (char *)"--root", cfg->root, NULL};
    pid_t pid;
    int r = spawn_program(argv, false, pfd[1], &pid);
    close(pfd[1]);
    if (r != 0) {
        close(pfd[0]);
        snprintf(err, err_size, "cannot run %s: %s", bin, strerror(r));
        goto out;
    }
    /* the starter exits once the service is up (or has failed); its output says why */
    char out[512];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(pfd[0], out + len, sizeof(out) - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
        if (len == sizeof(out) - 1) break;
    }
    out[len] = '\0';
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        for (size_t i = 0; i < len; i++)
            if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
        snprintf(err, err_size, "%s did not start: %s", service, len ? out : "no reason given");
        goto out;
    }
    ret = 0;
out:
    free(bin);
    free(dir);
    free(sock);
    free(pidfile);
    return ret;
}

static void cmd_restart(struct admin_session *s, char **args, size_t nargs)
{
    if (nargs != 2 || !known_service(args[1])) {
        admin_reply_err(s, "SYNTAX", "RESTART smtpd|pop3imapd");
        return;
    }
    if (strcmp(args[1], "controld") == 0) {
        admin_reply_err(s, "INVALID", "controld cannot restart itself over the admin port");
        return;
    }
    admin_log_change(s, "RESTART %s", args[1]);
    char err[640];
    if (admin_restart_service(service_config(), args[1], err, sizeof(err)) < 0) {
        log_error(LOG_CONTROL, s->ip, "RESTART %s failed: %s", args[1], err);
        admin_reply_err(s, "UNAVAILABLE", "%s", err);
        return;
    }
    struct sbuf json = SBUF_INIT(256);
    sbuf_printf(&json, "{\"restarted\":\"%s\"}", args[1]);
    admin_reply_ok(s, &json);
    sbuf_free(&json);
}

/* ---- LOG ---- */

static void cmd_log(struct admin_session *s, char **args, size_t nargs)
{
    static const char *const channels[] = {"smtp", "pop3", "imap", "control", "error"};
    const char *channel = NULL;
    for (size_t i = 0; nargs >= 2 && i < sizeof(channels) / sizeof(channels[0]); i++)
        if (strcasecmp(args[1], channels[i]) == 0) channel = channels[i];
    long want = ADMIN_LOG_LINES;
    if (nargs >= 3) {
        char *end;
        errno = 0;
        want = strtol(args[2], &end, 10);
        if (args[2][0] < '0' || args[2][0] > '9' || *end || errno || want < 1 ||
            want > ADMIN_LOG_LINES_MAX) {
            admin_reply_err(s, "SYNTAX", "LOG channel [lines]: lines is 1-%d", ADMIN_LOG_LINES_MAX);
            return;
        }
    }
    /* an earlier day's file: YYYYMMDD, digits only (it becomes part of a path) */
    bool day_ok = nargs < 4 || strlen(args[3]) == 8;
    for (size_t i = 0; nargs >= 4 && day_ok && i < 8; i++)
        if (args[3][i] < '0' || args[3][i] > '9') day_ok = false;
    if (channel == NULL || nargs > 4 || !day_ok) {
        admin_reply_err(s, "SYNTAX", "LOG smtp|pop3|imap|control|error [lines [YYYYMMDD]]");
        return;
    }
    log_flush();
    char day[16];
    if (nargs >= 4) {
        memcpy(day, args[3], 9);
    } else {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(day, sizeof(day), "%Y%m%d", &tm);
    }
    char *path = xasprintf("%s/%s/%s.log", service_config()->log_dir, channel, day);
    struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&json, "{\"channel\":");
    admin_json_string(&json, channel);
    sbuf_printf(&json, ",\"day\":\"%s\",\"lines\":[", day);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && nargs >= 4) {
        admin_reply_err(s, "NOTFOUND", "no %s log for %s", channel, day);
        sbuf_free(&json);
        free(path);
        return;
    }
    struct stat sb;
    if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size > 0) {
        /* a log line is at most LOG_MAX_ACTION plus its prefix: the tail holds them */
        size_t span = (size_t)want * (LOG_MAX_ACTION + 200);
        off_t start = (off_t)span < sb.st_size ? sb.st_size - (off_t)span : 0;
        size_t size = (size_t)(sb.st_size - start);
        char *buf = xmalloc(size + 1);
        ssize_t got = pread(fd, buf, size, start);
        size_t n = got > 0 ? (size_t)got : 0;
        buf[n] = '\0';
        /* the line starts, skipping a partial first line */
        size_t p = 0;
        if (start > 0) {
            char *nl = memchr(buf, '\n', n);
            p = nl ? (size_t)(nl - buf) + 1 : n;
        }
        size_t count = 0;
        for (size_t i = p; i < n; i++)
            if (buf[i] == '\n' || i == n - 1) count++;
        size_t skip = count > (size_t)want ? count - (size_t)want : 0;
        bool first = true;
        while (p < n) {
            char *nl = memchr(buf + p, '\n', n - p);
            size_t end = nl ? (size_t)(nl - buf) : n;
            if (skip) {
                skip--;
            } else {
                if (!first) sbuf_putc(&json, ',');
                first = false;
                admin_json_string_n(&json, buf + p, end - p);
            }
            p = end + 1;
        }
        free(buf);
    }
    if (fd >= 0) close(fd);
    sbuf_appends(&json, "]}");
    admin_reply_ok(s, &json);
    sbuf_free(&json);
    free(path);
}

/* ---- the table ---- */

static const struct command {
    const char *name;
    command_fn *run;
} commands[] = {
    {"CONFIG", NULL},         {"DOMAIN", cmd_domain},   {"USER", cmd_user},
    {"ALIAS", cmd_alias},     {"FORWARD", cmd_forward}, {"CATCHALL", cmd_catchall},
    {"QUEUE", cmd_queue},     {"STATUS", cmd_status},   {"RELOAD", cmd_reload},
    {"RESTART", cmd_restart}, {"LOG", cmd_log},
};

void admin_command_names(struct sbuf *json)
{
    sbuf_appends(json, "[\"CAPA\",\"LOGIN\",\"QUIT\"");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        sbuf_printf(json, ",\"%s\"", commands[i].name);
    sbuf_putc(json, ']');
}

void admin_command(struct admin_session *s, char **args, size_t nargs)
{
    if (strcasecmp(args[0], "CONFIG") == 0) {
        if (nargs >= 2 && strcasecmp(args[1], "GET") == 0)
            admin_config_get(s, args, nargs);
        else if (nargs >= 2 && strcasecmp(args[1], "SET") == 0)
            admin_config_set(s, args, nargs);
        else
            admin_reply_err(s, "SYNTAX",
                            "CONFIG GET [section [key]] | CONFIG SET section key value");
        return;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (commands[i].run && strcasecmp(args[0], commands[i].name) == 0) {
            commands[i].run(s, args, nargs);
            return;
        }
    }
    admin_reply_err(s, "SYNTAX", "unknown command %.40s", args[0]);
}

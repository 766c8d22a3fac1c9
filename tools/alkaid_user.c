/* alkaid_user.c - alkaid-user: domains, users, aliases, forwarding and catch-alls
 *
 * A small command-line front for store.h: each command is one row of commands[] with
 * its argument counts, the options it accepts and a handler. The root comes from --root
 * or ALKAID_ROOT and is loaded with config_load() (which sets up a new root from the
 * default configuration); the store is the one the configuration names, and mailbox
 * directories live under its mail directory. docs/users.md is the manual.
 *
 * Exit codes: 0 done; 1 refused (not found, already exists, invalid name, ...); 2 usage
 * error; 75 temporary failure (the store is busy or unavailable). Every error is one
 * line on stderr starting with "alkaid-user: ".
 *
 * SECURITY: a password is read from the terminal without echo (or as one line from
 * stdin), hashed with password_hash() and wiped from memory; it is never printed. One
 * given with --password is wiped from our argv at once, but other local users may have
 * seen it in the process list: prefer the prompt or stdin. --purge removes a mailbox
 * with openat()/unlinkat() and O_NOFOLLOW, so a symbolic link inside it is removed, never
 * followed. Names from the command line are echoed with control characters escaped.
 * Run as root with [System] User set, the files and directories made here are given to
 * that user so that the services can use them after dropping privileges.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "admin_client.h"
#include "config.h"
#include "ctl.h"
#include "fsutil.h"
#include "json.h"
#include "mailbox.h"
#include "password.h"
#include "queue_admin.h"
#include "sbuf.h"
#include "store.h"
#include "tty_input.h"
#include "xalloc.h"

#define PROG "alkaid-user"

#define EXIT_REFUSED  1
#define EXIT_USAGE    2
#define EXIT_TEMPFAIL 75

#define PASSWORD_MAX      1024 /* bytes of a password we accept */
#define SHOW_MAX          160  /* bytes of a command-line string echoed in a message */
#define STORE_TARGETS_MAX 1000 /* as in the store: targets of one account */

enum opt_bit {
    OPT_ROOT = 1u << 0,
    OPT_PASSWORD = 1u << 1,
    OPT_ADMIN = 1u << 2,
    OPT_NO_ADMIN = 1u << 3,
    OPT_QUOTA = 1u << 4,
    OPT_PURGE = 1u << 5,
    OPT_FORCE = 1u << 6,
    OPT_KEEP = 1u << 7,
    OPT_OFF = 1u << 8,
    OPT_HELP = 1u << 9,
    OPT_JSON = 1u << 10,
    OPT_ALL = 1u << 11,
    OPT_REMOTE = 1u << 12,
    OPT_ADMIN_USER = 1u << 13,
    OPT_ADMIN_PASSWORD = 1u << 14,
    OPT_CA = 1u << 15,
    OPT_INSECURE = 1u << 16,
    OPT_ETRN = 1u << 17,
};

/* The options of the remote mode, accepted with every command. */
#define REMOTE_OPTS (OPT_REMOTE | OPT_ADMIN_USER | OPT_ADMIN_PASSWORD | OPT_CA | OPT_INSECURE)

static const struct opt_def {
    const char *name;
    bool has_arg;
    unsigned bit;
} opt_defs[] = {
    {"root", true, OPT_ROOT},
    {"password", true, OPT_PASSWORD},
    {"admin", false, OPT_ADMIN},
    {"no-admin", false, OPT_NO_ADMIN},
    {"quota", true, OPT_QUOTA},
    {"purge", false, OPT_PURGE},
    {"force", false, OPT_FORCE},
    {"keep", false, OPT_KEEP},
    {"etrn", false, OPT_ETRN},
    {"off", false, OPT_OFF},
    {"help", false, OPT_HELP},
    {"json", false, OPT_JSON},
    {"all", false, OPT_ALL},
    {"remote", true, OPT_REMOTE},
    {"admin-user", true, OPT_ADMIN_USER},
    {"admin-password", true, OPT_ADMIN_PASSWORD},
    {"ca", true, OPT_CA},
    {"insecure", false, OPT_INSECURE},
};

struct opts {
    unsigned seen;
    const char *root;
    char *password; /* points into argv */
    const char *quota_arg;
    uint64_t quota;
    const char *remote, *admin_user, *ca;
    char *admin_password; /* points into argv */
};

struct ctx {
    struct opts *o;
    struct admin_client *ac; /* the remote mode */
    struct alkaid_config *cfg;
    struct store *st;
};

typedef int command_fn(struct ctx *c, char **args, size_t nargs);

struct command {
    const char *name;
    const char *sub; /* NULL: none */
    size_t min_args, max_args;
    unsigned options; /* besides --root and --help */
    command_fn *run;
    const char *usage;
    command_fn *remote; /* the same through the admin port */
};

static void usage_short(FILE *f);
static void usage_one(FILE *f);

/* ---- messages ---- */

/* s made safe to echo: control characters and non-ASCII as \xNN, long strings cut.
 * Returns one of a few static buffers (the tool is single-threaded). */
static const char *shown(const char *s)
{
    static char ring[4][SHOW_MAX * 4 + 8];
    static unsigned next;
    char *out = ring[next++ % 4];
    size_t o = 0, i = 0;
    for (; s[i] != '\0' && i < SHOW_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f)
            o += (size_t)snprintf(out + o, 5, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    if (s[i] != '\0') {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage_one(stderr);
    return EXIT_USAGE;
}

static int tempfail(void)
{
    return fail(EXIT_TEMPFAIL, "the account store is busy or unavailable; try again later");
}

/* ---- sizes ---- */

/* ---- files ---- */

/* When run as root with a service user configured, gives path to that user. */
static void fix_owner(struct ctx *c, const char *path)
{
    if (geteuid() != 0 || c->cfg == NULL || c->cfg->user == NULL || c->cfg->user[0] == '\0') return;
    struct passwd *pw = getpwnam(c->cfg->user);
    if (pw == NULL) {
        warn("service user %s not found; %s stays owned by root", shown(c->cfg->user), shown(path));
        return;
    }
    if (lchown(path, pw->pw_uid, pw->pw_gid) < 0 && errno != ENOENT)
        warn("cannot give %s to %s: %s", shown(path), shown(c->cfg->user), strerror(errno));
}

static void fix_store_owner(struct ctx *c)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char *p = xasprintf("%s%s", c->cfg->store_path, suffixes[i]);
        fix_owner(c, p);
        free(p);
    }
}

/* ---- passwords ---- */

/* The new password (plaintext): from --password, else asked twice on a terminal, else
 * one line of stdin. 0 with pw[0..*len_r) set (wipe it), or the exit code after printing
 * why. */
static int new_password(struct ctx *c, const char *address, char *pw, size_t size, size_t *len_r)
{
    char again[PASSWORD_MAX + 2];
    size_t len = 0, len2 = 0;
    bool too_long = false;
    int code = 0;

    if (c->o->password != NULL) {
        len = strlen(c->o->password);
        if (len > PASSWORD_MAX || len >= size) {
            too_long = true;
        } else {
            memcpy(pw, c->o->password, len + 1);
        }
    } else if (isatty(STDIN_FILENO)) {
        char *text = xasprintf("New password for %s: ", shown(address));
        int r = tty_prompt_secret(text, pw, size, &len, &too_long);
        free(text);
        if (r == 0 && !too_long) {
            r = tty_prompt_secret("Retype the password: ", again, sizeof(again), &len2, &too_long);
            if (r == 0 && (len != len2 || memcmp(pw, again, len) != 0)) {
                explicit_bzero(pw, size);
                explicit_bzero(again, sizeof(again));
                return fail(EXIT_REFUSED, "the passwords do not match; nothing changed");
            }
        }
        if (r < 0 && !too_long) len = 0;
    } else if (tty_read_line(pw, size, &len, &too_long) < 0 && !too_long) {
        len = 0;
    }

    if (too_long)
        code = fail(EXIT_REFUSED, "the password is too long (at most %d bytes)", PASSWORD_MAX);
    else if (len == 0)
        code = fail(EXIT_REFUSED, "empty password; nothing changed");
    explicit_bzero(again, sizeof(again));
    if (code != 0) explicit_bzero(pw, size);
    *len_r = len;
    return code;
}

/* The new password's hash (see new_password()). NULL after printing why. */
static char *new_password_hash(struct ctx *c, const char *address, int *exit_r)
{
    char pw[PASSWORD_MAX + 2];
    size_t len = 0;
    *exit_r = new_password(c, address, pw, sizeof(pw), &len);
    if (*exit_r != 0) return NULL;
    char *hash = password_hash(pw, len, (unsigned)c->cfg->password_iterations);
    explicit_bzero(pw, sizeof(pw));
    return hash;
}

/* ---- names ---- */

/* Splits and checks ADDRESS. On failure prints why and returns -1. */
static int parse_address(const char *arg, char **local_r, char **domain_r)
{
    if (address_split(arg, local_r, domain_r) < 0) {
        fail(EXIT_REFUSED, "invalid address %s: expected local@domain", shown(arg));
        return -1;
    }
    const char *why = address_account_invalid(*local_r, *domain_r);
    if (why != NULL) {
        fail(EXIT_REFUSED, "%s: %s", shown(arg), why);
        xfree(*local_r);
        xfree(*domain_r);
        return -1;
    }
    return 0;
}

/* Makes sure domain is a local domain by exactly this name. 0, or the exit code after
 * printing why. */
static int require_domain(struct ctx *c, const char *domain, struct store_domain **dom_r)
{
    struct store_domain *d = NULL;
    enum store_result r = store_domain_find(c->st, domain, &d);
    if (r == STORE_TEMPFAIL) return tempfail();
    if (r == STORE_OK && strcasecmp(d->name, domain) != 0) {
        int code = fail(EXIT_REFUSED,
                        "%s is not a domain by that name (it matches the wildcard domain %s;"
                        " name that one to use it)",
                        shown(domain), shown(d->name));
        store_domain_free(&d);
        return code;
    }
    if (r != STORE_OK)
        return fail(EXIT_REFUSED, "no such domain: %s (add it with: " PROG " domain add %s)",
                    shown(domain), shown(domain));
    if (dom_r != NULL)
        *dom_r = d;
    else
        store_domain_free(&d);
    return 0;
}

/* The ADDRESS argument arg split and checked, and the account at exactly that address
 * (domain checked first). 0 found, or the exit code after printing why (a missing account
 * is reported unless allow_missing, in which case 0 is returned with *a_r NULL). The
 * outputs are set whatever the outcome (NULL for what was not reached): release them with
 * put_account(). */
static int get_account(struct ctx *c, const char *arg, bool allow_missing, char **local_r,
                       char **domain_r, struct store_account **a_r)
{
    *local_r = NULL;
    *domain_r = NULL;
    *a_r = NULL;
    if (parse_address(arg, local_r, domain_r) < 0) return EXIT_REFUSED;
    const char *local = *local_r, *domain = *domain_r;
    int code = require_domain(c, domain, NULL);
    if (code != 0) return code;
    enum store_result r = store_account_find(c->st, local, domain, a_r, NULL);
    if (r == STORE_TEMPFAIL) return tempfail();
    if (r == STORE_NOTFOUND && allow_missing) return 0;
    if (r != STORE_OK)
        return fail(EXIT_REFUSED, "no such account: %s@%s", shown(local), shown(domain));
    return 0;
}

/* Frees an address's parts and its account, as get_account() hands them out. */
static void put_account(char *local, char *domain, struct store_account **a)
{
    store_account_free(a);
    free(local);
    free(domain);
}

static int store_fail(enum store_result r, const char *what, const char *error)
{
    if (r == STORE_TEMPFAIL) return tempfail();
    return fail(EXIT_REFUSED, "%s: %s", what, error != NULL ? error : "refused");
}

/* A target as the store wants it: "null", a full address, or a bare local part taken in
 * domain. xmalloc'ed. */
static char *expand_target(const char *t, const char *domain)
{
    if (strcasecmp(t, "null") == 0 || strchr(t, '@') != NULL) return xstrdup(t);
    return xasprintf("%s@%s", t, domain);
}

/* Warns about targets at local domains that name no account. */
static void check_targets(struct ctx *c, char *const *targets, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *l, *d;
        if (strcmp(targets[i], "null") == 0 || address_split(targets[i], &l, &d) < 0) continue;
        struct store_domain *dom = NULL;
        if (store_account_find(c->st, l, d, NULL, &dom) == STORE_NOTFOUND && dom != NULL)
            warn("%s is at a local domain but is not an account (yet)", shown(targets[i]));
        store_domain_free(&dom);
        free(l);
        free(d);
    }
}

static void print_targets(FILE *f, char *const *targets, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? " " : "", targets[i]);
}

/* ---- commands ---- */

static int cmd_domain_add(struct ctx *c, char **args, size_t nargs)
{
    const char *error = NULL;
    bool etrn = (c->o->seen & OPT_ETRN) != 0;
    enum store_result r =
        store_domain_add_type(c->st, args[0], etrn ? DOMAIN_ETRN : DOMAIN_LOCAL, &error);
    if (r == STORE_EXISTS) return fail(EXIT_REFUSED, "domain %s already exists", shown(args[0]));
    if (r == STORE_INVALID && error != NULL && strcmp(error, "invalid domain name") != 0)
        return fail(EXIT_REFUSED, "%s: %s", shown(args[0]), error);
    if (r == STORE_INVALID)
        return fail(EXIT_REFUSED,
                    "invalid domain name: %s (labels of letters, digits and '-' separated by"
                    " dots; '*' as a wildcard%s)",
                    shown(args[0]), etrn ? ", but not for an ETRN domain" : "");
    if (r != STORE_OK) return store_fail(r, "domain add", error);
    if (etrn) {
        /* no mailboxes: its mail waits in mail/FORWARD/ until the other server asks */
        char *name = address_lower(xstrdup(args[0]));
        printf("added ETRN queue domain %s (mail for it is queued until ETRN)\n", name);
        free(name);
        return 0;
    }

    char *dirname = address_domain_dir(args[0]);
    char *dir = xasprintf("%s/%s", c->cfg->mail_dir, dirname);
    int code = 0;
    if (fs_mkdirs(dir, 0700) < 0) {
        code = fail(EXIT_REFUSED, "domain %s added, but its directory %s could not be made: %s",
                    shown(args[0]), shown(dir), strerror(errno));
    } else {
        fix_owner(c, dir);
        char *name = address_lower(xstrdup(args[0]));
        printf("added domain %s (%s)\n", name, dir);
        free(name);
    }
    free(dir);
    free(dirname);
    return code;
}

static int cmd_domain_del(struct ctx *c, char **args, size_t nargs)
{
    struct store_domain *d = NULL;
    enum store_result r = store_domain_find(c->st, args[0], &d);
    if (r == STORE_TEMPFAIL) return tempfail();
    if (r != STORE_OK || strcasecmp(d->name, args[0]) != 0) {
        store_domain_free(&d);
        return fail(EXIT_REFUSED, "no such domain: %s", shown(args[0]));
    }
    const char *error = NULL;
    bool force = (c->o->seen & OPT_FORCE) != 0;
    r = store_domain_del(c->st, d->name, force, &error);
    int code = 0;
    if (r == STORE_NOTEMPTY)
        code = fail(EXIT_REFUSED,
                    "domain %s still has %u account%s; delete them first, or use --force", d->name,
                    d->accounts, d->accounts == 1 ? "" : "s");
    else if (r != STORE_OK)
        code = store_fail(r, "domain del", error);
    else if (d->accounts > 0)
        printf("deleted domain %s and its %u account%s; mailboxes kept in %s/%s\n", d->name,
               d->accounts, d->accounts == 1 ? "" : "s", c->cfg->mail_dir, d->dir);
    else
        printf("deleted domain %s\n", d->name);
    store_domain_free(&d);
    return code;
}

static int cmd_domain_list(struct ctx *c, char **args, size_t nargs)
{
    struct store_domain **v = NULL;
    size_t n = 0;
    enum store_result r = store_domain_list(c->st, &v, &n);
    if (r != STORE_OK) return store_fail(r, "domain list", NULL);
    for (size_t i = 0; i < n; i++)
        printf("%-40s %6u %s %s\n", v[i]->name, v[i]->accounts,
               v[i]->catchall != NULL ? v[i]->catchall : "-",
               v[i]->type == DOMAIN_ETRN ? "etrn" : "local");
    store_domain_list_free(&v, n);
    return 0;
}

static int cmd_add(struct ctx *c, char **args, size_t nargs)
{
    char *local, *domain;
    struct store_account *a;
    int code = get_account(c, args[0], true, &local, &domain, &a);
    if (code == 0 && a != NULL)
        code = fail(EXIT_REFUSED, "%s@%s already exists (%s)", local, domain,
                    a->type == ACCOUNT_ALIAS ? "an alias" : "a user");
    store_account_free(&a);

    char *hash = NULL;
    if (code == 0) hash = new_password_hash(c, args[0], &code);
    if (hash != NULL) {
        struct store_account acc = {.localpart = local,
                                    .domain = domain,
                                    .type = ACCOUNT_USER,
                                    .password_hash = hash,
                                    .admin = (c->o->seen & OPT_ADMIN) != 0,
                                    .quota = c->o->quota};
        const char *error = NULL;
        enum store_result r = store_account_add(c->st, &acc, &error);
        if (r == STORE_EXISTS)
            code = fail(EXIT_REFUSED, "%s@%s already exists", local, domain);
        else if (r != STORE_OK)
            code = store_fail(r, "add", error);
        free(hash);
    }
    if (code == 0) {
        char *ddir = address_domain_dir(domain);
        char *domain_path = xasprintf("%s/%s", c->cfg->mail_dir, ddir);
        char *mbox = mailbox_path(c->cfg->mail_dir, ddir, local);
        struct stat sb;
        bool existed = lstat(mbox, &sb) == 0;
        bool domain_existed = stat(domain_path, &sb) == 0;
        if (mailbox_create(mbox) < 0) {
            code = fail(EXIT_REFUSED, "%s@%s added, but its mailbox %s could not be made: %s",
                        local, domain, shown(mbox), strerror(errno));
        } else {
            if (!domain_existed) fix_owner(c, domain_path);
            if (!existed) fix_owner(c, mbox);
            printf("added user %s@%s (mailbox %s%s)\n", local, domain, mbox,
                   existed ? ", which already existed and is kept" : "");
        }
        free(mbox);
        free(domain_path);
        free(ddir);
    }
    put_account(local, domain, &a);
    return code;
}

static int cmd_del(struct ctx *c, char **args, size_t nargs)
{
    char *local, *domain;
    struct store_account *a;
    int code = get_account(c, args[0], false, &local, &domain, &a);
    if (code == 0) {
        const char *error = NULL;
        enum store_result r = store_account_del(c->st, local, domain, &error);
        if (r != STORE_OK) code = store_fail(r, "del", error);
    }
    if (code == 0 && a->type == ACCOUNT_ALIAS) {
        printf("deleted alias %s@%s\n", local, domain);
    } else if (code == 0) {
        char *mbox = mailbox_path(c->cfg->mail_dir, a->domain_dir, local);
        if (c->o->seen & OPT_PURGE) {
            int p = mailbox_purge(c->cfg->mail_dir, a->domain_dir, local);
            if (p < 0)
                code = fail(EXIT_REFUSED,
                            "deleted %s@%s, but its mailbox %s could not be"
                            " removed: %s",
                            local, domain, shown(mbox), strerror(errno));
            else if (p == 0)
                printf("deleted user %s@%s (it had no mailbox directory)\n", local, domain);
            else
                printf("deleted user %s@%s and removed its mailbox %s\n", local, domain, mbox);
        } else {
            printf("deleted user %s@%s; mailbox kept in %s (use --purge to remove it)\n", local,
                   domain, mbox);
        }
        free(mbox);
    }
    put_account(local, domain, &a);
    return code;
}

static int cmd_passwd(struct ctx *c, char **args, size_t nargs)
{
    char *local, *domain;
    struct store_account *a;
    int code = get_account(c, args[0], false, &local, &domain, &a);
    if (code == 0 && a->type == ACCOUNT_ALIAS)
        code = fail(EXIT_REFUSED, "%s@%s is an alias; an alias has no password", local, domain);
    char *hash = NULL;
    if (code == 0) hash = new_password_hash(c, args[0], &code);
    if (hash != NULL) {
        enum store_result r = store_account_set_password(c->st, local, domain, hash);
        if (r != STORE_OK)
            code = store_fail(r, "passwd", r == STORE_NOTFOUND ? "no such account" : NULL);
        else
            printf("password changed for %s@%s\n", local, domain);
        free(hash);
    }
    put_account(local, domain, &a);
    return code;
}

static int cmd_set(struct ctx *c, char **args, size_t nargs)
{
    if (!(c->o->seen & (OPT_ADMIN | OPT_NO_ADMIN | OPT_QUOTA)))
        return usage_error("set: nothing to set (--admin, --no-admin or --quota N)");
    char *local, *domain;
    struct store_account *a;
    int code = get_account(c, args[0], false, &local, &domain, &a);
    if (code == 0 && a->type == ACCOUNT_ALIAS)
        code = fail(EXIT_REFUSED, "%s@%s is an alias; an alias has no admin flag or quota", local,
                    domain);
    enum store_result r = STORE_OK;
    if (code == 0 && (c->o->seen & (OPT_ADMIN | OPT_NO_ADMIN)))
        r = store_account_set_admin(c->st, local, domain, (c->o->seen & OPT_ADMIN) != 0);
    if (code == 0 && r == STORE_OK && (c->o->seen & OPT_QUOTA))
        r = store_account_set_quota(c->st, local, domain, c->o->quota);
    if (code == 0 && r != STORE_OK) code = store_fail(r, "set", NULL);
    if (code == 0) {
        store_account_free(&a);
        if (store_account_find(c->st, local, domain, &a, NULL) == STORE_OK) {
            char q[32];
            printf("%s@%s: admin %s, quota %s\n", local, domain, a->admin ? "yes" : "no",
                   store_quota_format(a->quota, q, sizeof(q)));
        }
    }
    put_account(local, domain, &a);
    return code;
}

static int cmd_show(struct ctx *c, char **args, size_t nargs)
{
    char *local, *domain;
    if (parse_address(args[0], &local, &domain) < 0) return EXIT_REFUSED;
    struct store_account *a = NULL;
    struct store_domain *d = NULL;
    int code = 0;
    enum store_result r = store_account_find(c->st, local, domain, &a, &d);
    if (r == STORE_TEMPFAIL) {
        code = tempfail();
    } else if (r == STORE_NOTFOUND && d == NULL) {
        code = fail(EXIT_REFUSED, "no such domain: %s", domain);
    } else if (r == STORE_NOTFOUND) {
        if (d->catchall != NULL)
            code = fail(EXIT_REFUSED,
                        "no such account: %s@%s (mail to it goes to the"
                        " catch-all of %s: %s)",
                        local, domain, d->name, d->catchall);
        else
            code = fail(EXIT_REFUSED, "no such account: %s@%s", local, domain);
    } else if (r != STORE_OK) {
        code = store_fail(r, "show", NULL);
    }
    if (code == 0) {
        printf("address: %s@%s\n", a->localpart, a->domain);
        if (strcmp(a->domain, domain) != 0) printf("matched: %s@%s\n", local, domain);
        if (a->type == ACCOUNT_ALIAS) {
            printf("type: alias\nmembers: ");
            print_targets(stdout, a->targets, a->ntargets);
            printf("\n");
        } else {
            char q[32];
            printf("type: user\nadmin: %s\nquota: %s\n", a->admin ? "yes" : "no",
                   store_quota_format(a->quota, q, sizeof(q)));
            printf("forward: ");
            if (a->ntargets > 0)
                print_targets(stdout, a->targets, a->ntargets);
            else
                printf("none");
            printf("\nkeep-copy: %s\n", a->ntargets == 0 || a->keep_copy ? "yes" : "no");
            char *mbox = mailbox_path(c->cfg->mail_dir, a->domain_dir, a->localpart);
            struct stat mst;
            bool missing = stat(mbox, &mst) < 0 || !S_ISDIR(mst.st_mode);
            uint64_t messages = 0, bytes = mailbox_usage(mbox, &messages);
            printf("mailbox: %s%s\n", mbox, missing ? " (missing)" : "");
            printf("size: %" PRIu64 " bytes\nmessages: %" PRIu64 "\n", bytes, messages);
            free(mbox);
        }
    }
    store_domain_free(&d);
    put_account(local, domain, &a);
    return code;
}

static int cmd_list(struct ctx *c, char **args, size_t nargs)
{
    const char *domain = nargs > 0 ? args[0] : NULL;
    if (domain != NULL) {
        int code = require_domain(c, domain, NULL);
        if (code != 0) return code;
    }
    struct store_account **v = NULL;
    size_t n = 0;
    enum store_result r = store_account_list(c->st, domain, &v, &n);
    if (r == STORE_NOTFOUND) return fail(EXIT_REFUSED, "no such domain: %s", shown(domain));
    if (r != STORE_OK) return store_fail(r, "list", "invalid domain name");
    for (size_t i = 0; i < n; i++) {
        char addr[ADDRESS_MAX + 2], q[32];
        snprintf(addr, sizeof(addr), "%s@%s", v[i]->localpart, v[i]->domain);
        if (v[i]->type == ACCOUNT_ALIAS)
            printf("%-40s alias -   -\n", addr);
        else
            printf("%-40s user  %-3s %s\n", addr, v[i]->admin ? "yes" : "no",
                   store_quota_format(v[i]->quota, q, sizeof(q)));
    }
    store_account_list_free(&v, n);
    return 0;
}

/* Appends the expanded targets args[0..n) to *v (count *nv). */
static void add_expanded(char ***v, size_t *nv, char **args, size_t n, const char *domain)
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

static int cmd_alias_add(struct ctx *c, char **args, size_t nargs)
{
    char *local, *domain;
    struct store_account *a;
    int code = get_account(c, args[0], true, &local, &domain, &a);
    if (code == 0 && a != NULL && a->type == ACCOUNT_USER)
        code = fail(EXIT_REFUSED,
                    "%s@%s is a user; use '" PROG " forward' for a user's"
                    " forwarding",
                    local, domain);
    char **v = NULL;
    size_t nv = 0;
    if (code == 0) {
        if (a != NULL) add_expanded(&v, &nv, a->targets, a->ntargets, domain);
        add_expanded(&v, &nv, args + 1, nargs - 1, domain);
        const char *error = NULL;
        enum store_result r;
        if (a != NULL) {
            r = store_account_set_targets(c->st, local, domain, v, nv, false, &error);
        } else {
            struct store_account acc = {.localpart = local,
                                        .domain = domain,
                                        .type = ACCOUNT_ALIAS,
                                        .targets = v,
                                        .ntargets = nv};
            r = store_account_add(c->st, &acc, &error);
        }
        if (r != STORE_OK) code = store_fail(r, "alias add", error);
    }
    if (code == 0) {
        store_account_free(&a);
        if (store_account_find(c->st, local, domain, &a, NULL) == STORE_OK) {
            check_targets(c, a->targets, a->ntargets);
            printf("alias %s@%s: ", local, domain);
            print_targets(stdout, a->targets, a->ntargets);
            printf("\n");
        }
    }
    free_targets(v, nv);
    put_account(local, domain, &a);
    return code;
}

static int cmd_alias_del(struct ctx *c, char **args, size_t nargs)
{
    char *local, *domain;
    struct store_account *a;
    int code = get_account(c, args[0], false, &local, &domain, &a);
    if (code == 0 && a->type != ACCOUNT_ALIAS)
        code =
            fail(EXIT_REFUSED, "%s@%s is a user, not an alias; use '" PROG " del'", local, domain);
    const char *error = NULL;
    if (code == 0 && nargs == 1) {
        enum store_result r = store_account_del(c->st, local, domain, &error);
        if (r != STORE_OK)
            code = store_fail(r, "alias del", error);
        else
            printf("deleted alias %s@%s\n", local, domain);
    } else if (code == 0) {
        /* Remove only the members named. */
        char **drop = NULL;
        size_t ndrop = 0;
        add_expanded(&drop, &ndrop, args + 1, nargs - 1, domain);
        char **keep = xcalloc(a->ntargets + 1, sizeof(*keep));
        size_t nkeep = 0;
        for (size_t i = 0; i < a->ntargets; i++) {
            bool dropped = false;
            for (size_t j = 0; j < ndrop && !dropped; j++)
                dropped = strcasecmp(a->targets[i], drop[j]) == 0;
            if (!dropped) keep[nkeep++] = a->targets[i];
        }
        for (size_t j = 0; j < ndrop && code == 0; j++) {
            bool member = false;
            for (size_t i = 0; i < a->ntargets && !member; i++)
                member = strcasecmp(a->targets[i], drop[j]) == 0;
            if (!member)
                code = fail(EXIT_REFUSED, "%s is not a member of %s@%s", shown(drop[j]), local,
                            domain);
        }
        if (code == 0 && nkeep == 0)
            code = fail(EXIT_REFUSED,
                        "that would leave %s@%s without members; delete the alias"
                        " with '" PROG " alias del %s@%s'",
                        local, domain, local, domain);
        if (code == 0) {
            enum store_result r =
                store_account_set_targets(c->st, local, domain, keep, nkeep, false, &error);
            if (r != STORE_OK) {
                code = store_fail(r, "alias del", error);
            } else {
                printf("alias %s@%s: ", local, domain);
                print_targets(stdout, keep, nkeep);
                printf("\n");
            }
        }
        free(keep);
        free_targets(drop, ndrop);
    }
    put_account(local, domain, &a);
    return code;
}

static int cmd_forward(struct ctx *c, char **args, size_t nargs)
{
    bool off = (c->o->seen & OPT_OFF) != 0;
    if (off && nargs != 1) return usage_error("forward: --off takes no targets");
    if (off && (c->o->seen & OPT_KEEP)) return usage_error("forward: --keep and --off conflict");
    if (!off && nargs < 2) return usage_error("forward: give targets, or --off");
    char *local, *domain;
    struct store_account *a;
    int code = get_account(c, args[0], false, &local, &domain, &a);
    if (code == 0 && a->type == ACCOUNT_ALIAS)
        code = fail(EXIT_REFUSED,
                    "%s@%s is an alias; change its members with '" PROG " alias add|del'", local,
                    domain);
    char **v = NULL;
    size_t nv = 0;
    if (code == 0) {
        add_expanded(&v, &nv, args + 1, nargs - 1, domain);
        const char *error = NULL;
        bool keep = (c->o->seen & OPT_KEEP) != 0;
        enum store_result r = store_account_set_targets(c->st, local, domain, v, nv, keep, &error);
        if (r != STORE_OK) {
            code = store_fail(r, "forward", error);
        } else if (off) {
            printf("forwarding off for %s@%s\n", local, domain);
        } else {
            check_targets(c, v, nv);
            printf("forwarding %s@%s to ", local, domain);
            print_targets(stdout, v, nv);
            printf(keep ? " (keeping a copy in the mailbox)\n" : "\n");
        }
    }
    free_targets(v, nv);
    put_account(local, domain, &a);
    return code;
}

static int cmd_catchall(struct ctx *c, char **args, size_t nargs)
{
    bool off = (c->o->seen & OPT_OFF) != 0;
    if (off != (nargs == 1))
        return usage_error("catchall: give DOMAIN and an ADDRESS (or null), or DOMAIN --off");
    struct store_domain *d = NULL;
    int code = require_domain(c, args[0], &d);
    if (code != 0) return code;
    char *target = off ? NULL : expand_target(args[1], d->name);
    const char *error = NULL;
    enum store_result r = store_domain_set_catchall(c->st, d->name, target, &error);
    if (r != STORE_OK) {
        code = store_fail(r, "catchall", error);
    } else if (off) {
        printf("catch-all off for %s\n", d->name);
    } else {
        check_targets(c, &target, 1);
        printf("catch-all for %s: %s\n", d->name,
               strcasecmp(target, "null") == 0 ? "null (discard)" : target);
    }
    free(target);
    store_domain_free(&d);
    return code;
}

/* ---- the outgoing queue ---- */

static char *forward_dir(struct ctx *c)
{
    return xasprintf("%s/FORWARD", c->cfg->mail_dir);
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* Asks a running smtpd to try id now (or everything); false if it is not running. */
static bool ctl_flush(struct ctx *c, const char *id)
{
    char *sock = xasprintf("%s/smtpd.sock", c->cfg->run_dir);
    char *cmd = xasprintf("FLUSH%s%s", id ? " " : "", id ? id : "");
    struct sbuf reply = SBUF_INIT(4096);
    const char *err;
    bool ok = ctl_request(sock, cmd, &reply, &err) == 0 && strncmp(sbuf_cstr(&reply), "OK", 2) == 0;
    sbuf_free(&reply);
    free(cmd);
    free(sock);
    return ok;
}

static int queue_fail(enum queue_admin_result r, const char *id)
{
    switch (r) {
    case QUEUE_ADMIN_OK: return 0;
    case QUEUE_ADMIN_NOTFOUND: return fail(EXIT_REFUSED, "no message %s in the queue", shown(id));
    case QUEUE_ADMIN_BUSY:
        return fail(EXIT_TEMPFAIL, "message %s is being sent right now; try again in a moment",
                    shown(id));
    case QUEUE_ADMIN_INVALID: return fail(EXIT_REFUSED, "%s is not a queue id", shown(id));
    case QUEUE_ADMIN_ERROR: break;
    }
    return fail(EXIT_TEMPFAIL, "message %s: %s", shown(id), strerror(errno));
}

static int cmd_queue_list(struct ctx *c, char **args, size_t nargs)
{
    (void)args;
    (void)nargs;
    char *dir = forward_dir(c);
    struct queue_item *items;
    size_t n;
    int r = queue_admin_list(dir, &items, &n);
    free(dir);
    if (r < 0) return fail(EXIT_TEMPFAIL, "cannot read the queue: %s", strerror(errno));
    bool json = c->o->seen & OPT_JSON;
    if (json) fputc('[', stdout);
    for (size_t i = 0; i < n; i++) {
        const struct queue_envelope *e = &items[i].env;
        if (json) {
            printf("%s{\"id\":", i ? "," : "");
            json_string(stdout, e->id);
            printf(",\"state\":\"%s\",\"size\":%" PRIu64 ",\"attempts\":%u,\"next_try\":%lld,"
                   "\"created\":%lld,\"sender\":",
                   queue_state_name(items[i].state), e->size, e->attempts, e->next_try, e->created);
            json_string(stdout, e->sender);
            fputs(",\"recipients\":[", stdout);
            for (size_t k = 0; k < e->nrcpts; k++) {
                if (k) fputc(',', stdout);
                json_string(stdout, e->rcpts[k]);
            }
            fputs("],\"errors\":[", stdout);
            for (size_t k = 0; k < e->nrcpts; k++) {
                if (k) fputc(',', stdout);
                if (e->errors && e->errors[k])
                    json_string(stdout, e->errors[k]);
                else
                    fputs("null", stdout);
            }
            fputs("]}", stdout);
            continue;
        }
        char next[40];
        printf("%s  %-7s  %8" PRIu64 "  attempts %u  next %s  <%s> ->", e->id,
               queue_state_name(items[i].state), e->size, e->attempts,
               admin_time_str(e->next_try, next, sizeof(next)), shown(e->sender));
        for (size_t k = 0; k < e->nrcpts; k++)
            printf(" <%s>", shown(e->rcpts[k]));
        fputc('\n', stdout);
        for (size_t k = 0; e->errors && k < e->nrcpts; k++)
            if (e->errors[k]) printf("    <%s>: %s\n", shown(e->rcpts[k]), shown(e->errors[k]));
    }
    if (json)
        fputs("]\n", stdout);
    else if (n == 0)
        printf("The queue is empty.\n");
    else
        printf("%zu message%s.\n", n, n == 1 ? "" : "s");
    queue_items_free(items, n);
    return 0;
}

static int cmd_queue_show(struct ctx *c, char **args, size_t nargs)
{
    (void)nargs;
    char *dir = forward_dir(c);
    struct queue_item item;
    struct sbuf headers = SBUF_INIT(SBUF_NO_MAX);
    enum queue_admin_result r = queue_admin_show(dir, args[0], &item, &headers);
    free(dir);
    if (r != QUEUE_ADMIN_OK) {
        sbuf_free(&headers);
        return queue_fail(r, args[0]);
    }
    const struct queue_envelope *e = &item.env;
    char buf[40];
    printf("ID: %s\nState: %s\nArrived: %s\n", e->id, queue_state_name(item.state),
           admin_time_str(e->created, buf, sizeof(buf)));
    printf("Next try: %s\nAttempts: %u\nSize: %" PRIu64 "\n",
           admin_time_str(e->next_try, buf, sizeof(buf)), e->attempts, e->size);
    printf("From: <%s>\n", shown(e->sender));
    if (e->auth) printf("Authenticated: %s\n", shown(e->auth));
    if (e->client) printf("Client: %s\n", shown(e->client));
    for (size_t k = 0; k < e->nrcpts; k++) {
        printf("To: <%s>", shown(e->rcpts[k]));
        if (e->errors && e->errors[k]) printf("  (last: %s)", shown(e->errors[k]));
        fputc('\n', stdout);
    }
    printf("\n");
    fwrite(headers.data ? headers.data : "", 1, headers.len, stdout);
    sbuf_free(&headers);
    spool_queue_envelope_clear(&item.env);
    return 0;
}

static int cmd_queue_retry(struct ctx *c, char **args, size_t nargs)
{
    bool all = c->o->seen & OPT_ALL;
    if (all == (nargs == 1)) return usage_error("queue retry: give an ID, or --all");
    if (all) {
        if (!ctl_flush(c, NULL))
            return fail(EXIT_TEMPFAIL, "smtpd is not running (it tries the queue when it starts)");
        printf("Trying every waiting message now.\n");
        return 0;
    }
    char *dir = forward_dir(c);
    enum queue_admin_result r = queue_admin_retry(dir, args[0]);
    free(dir);
    if (r != QUEUE_ADMIN_OK) return queue_fail(r, args[0]);
    if (ctl_flush(c, args[0]))
        printf("Trying %s now.\n", args[0]);
    else
        printf("%s will be tried when smtpd starts.\n", args[0]);
    return 0;
}

static int cmd_queue_delete(struct ctx *c, char **args, size_t nargs)
{
    (void)nargs;
    char *dir = forward_dir(c);
    enum queue_admin_result r = queue_admin_delete(dir, args[0]);
    free(dir);
    if (r != QUEUE_ADMIN_OK) return queue_fail(r, args[0]);
    printf("Deleted %s.\n", args[0]);
    return 0;
}

static int cmd_queue_hold(struct ctx *c, char **args, size_t nargs)
{
    (void)nargs;
    char *dir = forward_dir(c);
    enum queue_admin_result r = queue_admin_hold(dir, args[0]);
    free(dir);
    if (r != QUEUE_ADMIN_OK) return queue_fail(r, args[0]);
    printf("Held %s.\n", args[0]);
    return 0;
}

static int cmd_queue_release(struct ctx *c, char **args, size_t nargs)
{
    (void)nargs;
    char *dir = forward_dir(c);
    enum queue_admin_result r = queue_admin_release(dir, args[0]);
    free(dir);
    if (r != QUEUE_ADMIN_OK) return queue_fail(r, args[0]);
    if (ctl_flush(c, args[0]))
        printf("Released %s; trying it now.\n", args[0]);
    else
        printf("Released %s; it will be tried when smtpd starts.\n", args[0]);
    return 0;
}

/* ---- the remote mode (--remote HOST:PORT): the same commands through the admin port ---- */

/* Sends req; 0 with *r holding the +OK reply, or the exit code after printing the
 * server's text (or why the request failed). */
static int remote_request(struct ctx *c, const char *const *req, size_t n, struct admin_reply *r)
{
    char error[512];
    int code;
    if (admin_command(c->ac, req, n, r, &code, error, sizeof(error)) < 0) {
        fputs(PROG ": ", stderr);
        admin_fputs_safe(stderr, error);
        fputc('\n', stderr);
        return code;
    }
    if (!r->ok) {
        fputs(PROG ": ", stderr);
        admin_fputs_safe(stderr, r->text);
        fputc('\n', stderr);
        admin_reply_clear(r);
        return code;
    }
    return 0;
}

/* A request whose reply only says done: prints message (freed here) on success. */
static int remote_simple(struct ctx *c, const char *const *req, size_t n, char *message)
{
    struct admin_reply r;
    int code = remote_request(c, req, n, &r);
    if (code == 0) {
        admin_fputs_safe(stdout, message);
        fputc('\n', stdout);
        admin_reply_clear(&r);
    }
    free(message);
    return code;
}

/* fixed words, then args[0..nargs), then last (may be NULL). */
static int remote_words(struct ctx *c, const char *w1, const char *w2, char **args, size_t nargs,
                        const char *last, char *message)
{
    size_t n;
    const char **req = admin_words(w1, w2, args, nargs, last, &n);
    int code = remote_simple(c, req, n, message);
    free(req);
    return code;
}

static int r_domain_add(struct ctx *c, char **args, size_t nargs)
{
    bool etrn = (c->o->seen & OPT_ETRN) != 0;
    const char *req[] = {"DOMAIN", "ADD", args[0], "ETRN"};
    return remote_simple(c, req, etrn ? 4 : 3,
                         xasprintf("added %sdomain %s", etrn ? "ETRN queue " : "", args[0]));
}

static int r_domain_del(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"DOMAIN", "DEL", args[0], "FORCE"};
    return remote_simple(c, req, c->o->seen & OPT_FORCE ? 4 : 3,
                         xasprintf("deleted domain %s", args[0]));
}

static int r_domain_list(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"DOMAIN", "LIST"};
    struct admin_reply r;
    int code = remote_request(c, req, 2, &r);
    if (code != 0) return code;
    admin_print_domain_list(stdout, r.json);
    admin_reply_clear(&r);
    return 0;
}

static int r_add(struct ctx *c, char **args, size_t nargs)
{
    char pw[PASSWORD_MAX + 2];
    size_t len;
    int code = new_password(c, args[0], pw, sizeof(pw), &len);
    if (code != 0) return code;
    const char *req[7] = {"USER", "ADD", args[0], pw};
    size_t n = 4;
    if (c->o->seen & OPT_ADMIN) req[n++] = "ADMIN";
    if (c->o->quota_arg != NULL) {
        req[n++] = "QUOTA";
        req[n++] = c->o->quota_arg;
    }
    code = remote_simple(c, req, n, xasprintf("added user %s", args[0]));
    explicit_bzero(pw, sizeof(pw));
    return code;
}

static int r_del(struct ctx *c, char **args, size_t nargs)
{
    bool purge = c->o->seen & OPT_PURGE;
    const char *req[] = {"USER", "DEL", args[0], "PURGE"};
    return remote_simple(c, req, purge ? 4 : 3,
                         xasprintf("deleted %s%s", args[0],
                                   purge ? " and removed its mailbox"
                                         : "; mailbox kept (use --purge to remove it)"));
}

static int r_passwd(struct ctx *c, char **args, size_t nargs)
{
    char pw[PASSWORD_MAX + 2];
    size_t len;
    int code = new_password(c, args[0], pw, sizeof(pw), &len);
    if (code != 0) return code;
    const char *req[] = {"USER", "PASSWD", args[0], pw};
    code = remote_simple(c, req, 4, xasprintf("password changed for %s", args[0]));
    explicit_bzero(pw, sizeof(pw));
    return code;
}

static int r_show_account(struct ctx *c, const char *address, struct admin_reply *r)
{
    const char *req[] = {"USER", "SHOW", address};
    return remote_request(c, req, 3, r);
}

static int r_set(struct ctx *c, char **args, size_t nargs)
{
    unsigned s = c->o->seen;
    if (!(s & (OPT_ADMIN | OPT_NO_ADMIN | OPT_QUOTA)))
        return usage_error("set: nothing to set (--admin, --no-admin or --quota N)");
    const char *req[6] = {"USER", "SET", args[0]};
    size_t n = 3;
    if (s & OPT_ADMIN) req[n++] = "ADMIN";
    if (s & OPT_NO_ADMIN) req[n++] = "NOADMIN";
    if (s & OPT_QUOTA) {
        req[n++] = "QUOTA";
        req[n++] = c->o->quota_arg;
    }
    struct admin_reply r;
    int code = remote_request(c, req, n, &r);
    if (code != 0) return code;
    admin_reply_clear(&r);
    if (r_show_account(c, args[0], &r) == 0) {
        char q[32];
        admin_fputs_safe(stdout, json_str(json_get(r.json, "address"), args[0]));
        printf(": admin %s, quota %s\n", json_bool(json_get(r.json, "admin"), false) ? "yes" : "no",
               store_quota_format((uint64_t)json_int(json_get(r.json, "quota"), 0), q, sizeof(q)));
        admin_reply_clear(&r);
    }
    return 0;
}

static int r_show(struct ctx *c, char **args, size_t nargs)
{
    struct admin_reply r;
    int code = r_show_account(c, args[0], &r);
    if (code != 0) return code;
    admin_print_user_show(stdout, r.json, args[0]);
    admin_reply_clear(&r);
    return 0;
}

static int r_list(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"USER", "LIST", nargs ? args[0] : NULL};
    struct admin_reply r;
    int code = remote_request(c, req, 2 + nargs, &r);
    if (code != 0) return code;
    admin_print_user_list(stdout, r.json);
    admin_reply_clear(&r);
    return 0;
}

/* After an alias change: "alias A: members", from the server's view. */
static int r_alias_after(struct ctx *c, const char *address, int code)
{
    struct admin_reply r;
    if (code != 0) return code;
    if (r_show_account(c, address, &r) == 0) {
        printf("alias ");
        admin_fputs_safe(stdout, address);
        printf(": ");
        admin_print_list(stdout, json_get(r.json, "targets"));
        fputc('\n', stdout);
        admin_reply_clear(&r);
    }
    return 0;
}

static int remote_quiet(struct ctx *c, const char *w1, const char *w2, char **args, size_t n)
{
    const char **req = xcalloc(n + 3, sizeof(*req));
    req[0] = w1;
    req[1] = w2;
    for (size_t i = 0; i < n; i++)
        req[2 + i] = args[i];
    struct admin_reply r;
    int code = remote_request(c, req, n + 2, &r);
    if (code == 0) admin_reply_clear(&r);
    free(req);
    return code;
}

static int r_alias_add(struct ctx *c, char **args, size_t nargs)
{
    return r_alias_after(c, args[0], remote_quiet(c, "ALIAS", "ADD", args, nargs));
}

static int r_alias_del(struct ctx *c, char **args, size_t nargs)
{
    int code = remote_quiet(c, "ALIAS", "DEL", args, nargs);
    if (code == 0 && nargs == 1) {
        printf("deleted alias ");
        admin_fputs_safe(stdout, args[0]);
        fputc('\n', stdout);
        return 0;
    }
    return r_alias_after(c, args[0], code);
}

static int r_forward(struct ctx *c, char **args, size_t nargs)
{
    bool off = (c->o->seen & OPT_OFF) != 0, keep = (c->o->seen & OPT_KEEP) != 0;
    if (off && nargs != 1) return usage_error("forward: --off takes no targets");
    if (off && keep) return usage_error("forward: --keep and --off conflict");
    if (!off && nargs < 2) return usage_error("forward: give targets, or --off");
    if (off)
        return remote_words(c, "FORWARD", NULL, args, 1, "OFF",
                            xasprintf("forwarding off for %s", args[0]));
    char *t = admin_joined(args + 1, nargs - 1);
    char *m = xasprintf("forwarding %s to %s%s", args[0], t,
                        keep ? " (keeping a copy in the mailbox)" : "");
    free(t);
    return remote_words(c, "FORWARD", NULL, args, nargs, keep ? "KEEP" : NULL, m);
}

static int r_catchall(struct ctx *c, char **args, size_t nargs)
{
    bool off = (c->o->seen & OPT_OFF) != 0;
    if (off != (nargs == 1))
        return usage_error("catchall: give DOMAIN and an ADDRESS (or null), or DOMAIN --off");
    if (off)
        return remote_words(c, "CATCHALL", NULL, args, 1, "OFF",
                            xasprintf("catch-all off for %s", args[0]));
    return remote_words(c, "CATCHALL", NULL, args, 2, NULL,
                        xasprintf("catch-all for %s: %s", args[0],
                                  strcasecmp(args[1], "null") == 0 ? "null (discard)" : args[1]));
}

static int r_queue_list(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"QUEUE", "LIST"};
    struct admin_reply r;
    int code = remote_request(c, req, 2, &r);
    if (code != 0) return code;
    const struct json *m = json_get(r.json, "messages");
    size_t n = m != NULL && m->type == JSON_ARRAY ? m->n : 0;
    if (c->o->seen & OPT_JSON) {
        /* as the local --json: the array of messages */
        struct sbuf sb = SBUF_INIT(SBUF_NO_MAX);
        if (n > 0)
            json_write(&sb, m);
        else
            sbuf_appends(&sb, "[]");
        fwrite(sb.data, 1, sb.len, stdout);
        fputc('\n', stdout);
        sbuf_free(&sb);
        admin_reply_clear(&r);
        return 0;
    }
    admin_print_queue_list(stdout, r.json);
    admin_reply_clear(&r);
    return 0;
}

static int r_queue_show(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"QUEUE", "SHOW", args[0]};
    struct admin_reply r;
    int code = remote_request(c, req, 3, &r);
    if (code != 0) return code;
    admin_print_queue_show(stdout, r.json, args[0]);
    admin_reply_clear(&r);
    return 0;
}

static int r_queue_retry(struct ctx *c, char **args, size_t nargs)
{
    bool all = c->o->seen & OPT_ALL;
    if (all == (nargs == 1)) return usage_error("queue retry: give an ID, or --all");
    const char *req[] = {"QUEUE", "RETRY", all ? "ALL" : args[0]};
    return remote_simple(c, req, 3,
                         all ? xstrdup("Trying every waiting message now.")
                             : xasprintf("Trying %s now.", args[0]));
}

static int r_queue_op(struct ctx *c, const char *op, const char *id, const char *done)
{
    const char *req[] = {"QUEUE", op, id};
    return remote_simple(c, req, 3, xasprintf("%s %s.", done, id));
}

static int r_queue_delete(struct ctx *c, char **args, size_t nargs)
{
    return r_queue_op(c, "DELETE", args[0], "Deleted");
}

static int r_queue_hold(struct ctx *c, char **args, size_t nargs)
{
    return r_queue_op(c, "HOLD", args[0], "Held");
}

static int r_queue_release(struct ctx *c, char **args, size_t nargs)
{
    return r_queue_op(c, "RELEASE", args[0], "Released");
}

/* Runs cmd through the admin port at o->remote. */
static int remote_main(struct opts *o, const struct command *cmd, char **args, size_t nargs)
{
    /* HOST:PORT, [IPV6]:PORT, or HOST (the default port) */
    char host[256];
    int port = ADMIN_DEFAULT_PORT;
    const char *r = o->remote, *colon;
    if (r[0] == '[') {
        const char *close = strchr(r, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return usage_error("--remote %s: expected HOST:PORT or [IPV6]:PORT", shown(r));
        snprintf(host, sizeof(host), "%.*s", (int)(close - r - 1), r + 1);
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = strrchr(r, ':');
        if (colon != NULL && strchr(r, ':') != colon) colon = NULL; /* a bare IPv6 address */
        snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - r) : (int)strlen(r), r);
    }
    if (colon != NULL) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end != '\0' || p < 1 || p > 65535)
            return usage_error("--remote %s: bad port", shown(r));
        port = (int)p;
    }
    if (host[0] == '\0') return usage_error("--remote %s: no host", shown(r));
    const char *user = o->admin_user ? o->admin_user : getenv("ALKAID_ADMIN_USER");
    if (user == NULL || user[0] == '\0')
        return usage_error("--remote needs --admin-user ADDRESS (or ALKAID_ADMIN_USER)");
    if (o->ca != NULL && (o->seen & OPT_INSECURE))
        return usage_error("--ca and --insecure conflict");

    char pw[PASSWORD_MAX + 2];
    size_t len = 0;
    bool too_long = false;
    const char *env = getenv("ALKAID_ADMIN_PASSWORD");
    if (o->admin_password != NULL) {
        snprintf(pw, sizeof(pw), "%s", o->admin_password);
    } else if (env != NULL) {
        snprintf(pw, sizeof(pw), "%s", env);
    } else if (isatty(STDIN_FILENO)) {
        char *text = xasprintf("Password for %s: ", shown(user));
        int rr = tty_prompt_secret(text, pw, sizeof(pw), &len, &too_long);
        free(text);
        if (rr < 0) pw[0] = '\0';
    } else {
        return usage_error("--remote needs --admin-password, ALKAID_ADMIN_PASSWORD or a"
                           " terminal to ask on");
    }
    if (o->seen & OPT_INSECURE)
        warn("--insecure: the server's certificate is not checked; anyone on the path can"
             " read the password");

    struct admin_options ao = {.host = host,
                               .port = port,
                               .ca_file = o->ca,
                               .insecure = (o->seen & OPT_INSECURE) != 0,
                               .timeout_s = 30};
    char error[1024];
    int code;
    struct ctx c = {.o = o};
    c.ac = admin_connect(&ao, &code, error, sizeof(error));
    if (c.ac == NULL) {
        explicit_bzero(pw, sizeof(pw));
        fputs(PROG ": ", stderr);
        admin_fputs_safe(stderr, error);
        fputc('\n', stderr);
        return code;
    }
    code = admin_login(c.ac, user, pw, error, sizeof(error));
    explicit_bzero(pw, sizeof(pw));
    if (code != 0) {
        fputs(PROG ": ", stderr);
        admin_fputs_safe(stderr, error);
        fputc('\n', stderr);
    } else {
        code = cmd->remote(&c, args, nargs);
    }
    admin_close(&c.ac);
    return code;
}

static const struct command commands[] = {
    {"domain", "add", 1, 1, OPT_ETRN, cmd_domain_add, "domain add DOMAIN [--etrn]", r_domain_add},
    {"domain", "del", 1, 1, OPT_FORCE, cmd_domain_del, "domain del DOMAIN [--force]", r_domain_del},
    {"domain", "list", 0, 0, 0, cmd_domain_list, "domain list", r_domain_list},
    {"add", NULL, 1, 1, OPT_PASSWORD | OPT_ADMIN | OPT_QUOTA, cmd_add,
     "add ADDRESS [--password P] [--admin] [--quota N]", r_add},
    {"del", NULL, 1, 1, OPT_PURGE, cmd_del, "del ADDRESS [--purge]", r_del},
    {"passwd", NULL, 1, 1, OPT_PASSWORD, cmd_passwd, "passwd ADDRESS [--password P]", r_passwd},
    {"set", NULL, 1, 1, OPT_ADMIN | OPT_NO_ADMIN | OPT_QUOTA, cmd_set,
     "set ADDRESS [--admin|--no-admin] [--quota N]", r_set},
    {"show", NULL, 1, 1, 0, cmd_show, "show ADDRESS", r_show},
    {"list", NULL, 0, 1, 0, cmd_list, "list [DOMAIN]", r_list},
    {"alias", "add", 2, 1 + STORE_TARGETS_MAX, 0, cmd_alias_add,
     "alias add ADDRESS TARGET [TARGET...]", r_alias_add},
    {"alias", "del", 1, 1 + STORE_TARGETS_MAX, 0, cmd_alias_del, "alias del ADDRESS [TARGET...]",
     r_alias_del},
    {"forward", NULL, 1, 1 + STORE_TARGETS_MAX, OPT_KEEP | OPT_OFF, cmd_forward,
     "forward ADDRESS TARGET [TARGET...] [--keep] | forward ADDRESS --off", r_forward},
    {"catchall", NULL, 1, 2, OPT_OFF, cmd_catchall,
     "catchall DOMAIN ADDRESS|null | catchall DOMAIN --off", r_catchall},
    {"queue", "list", 0, 0, OPT_JSON, cmd_queue_list, "queue list [--json]", r_queue_list},
    {"queue", "show", 1, 1, 0, cmd_queue_show, "queue show ID", r_queue_show},
    {"queue", "retry", 0, 1, OPT_ALL, cmd_queue_retry, "queue retry ID | queue retry --all",
     r_queue_retry},
    {"queue", "delete", 1, 1, 0, cmd_queue_delete, "queue delete ID", r_queue_delete},
    {"queue", "hold", 1, 1, 0, cmd_queue_hold, "queue hold ID", r_queue_hold},
    {"queue", "release", 1, 1, 0, cmd_queue_release, "queue release ID", r_queue_release},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The command being run, for the usage line after a usage error. */
static const struct command *usage_cmd;

static void usage_one(FILE *f)
{
    if (usage_cmd != NULL)
        fprintf(f, "usage: " PROG " [--root DIR | --remote HOST:PORT ...] %s\n", usage_cmd->usage);
    else
        fprintf(f, "usage: " PROG " [--root DIR] COMMAND ...  (" PROG " --help lists them)\n");
}

static void usage_short(FILE *f)
{
    fprintf(f, "usage: " PROG " [--root DIR] COMMAND ...   (or ALKAID_ROOT=DIR)\n");
    fprintf(f, "       " PROG " --remote HOST:PORT --admin-user U [--admin-password P]"
               " [--ca FILE | --insecure] COMMAND ...\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  " PROG " %s\n", commands[i].usage);
}

/* ---- main ---- */

static const struct opt_def *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(opt_defs) / sizeof(opt_defs[0]); i++)
        if (strlen(opt_defs[i].name) == len && strncmp(opt_defs[i].name, name, len) == 0)
            return &opt_defs[i];
    return NULL;
}

/* Splits argv into options and positional arguments (options may come anywhere; "--"
 * ends them). */
static int parse_args(int argc, char **argv, struct opts *o, char ***pos_r, size_t *npos_r)
{
    char **pos = xcalloc((size_t)argc + 1, sizeof(*pos));
    size_t npos = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            pos[npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0) arg = "--help";
        if (arg[1] != '-') {
            free(pos);
            return usage_error("unknown option %s", shown(arg));
        }
        const char *name = arg + 2;
        char *eq = strchr(name, '=');
        const struct opt_def *def = find_opt(name, eq ? (size_t)(eq - name) : strlen(name));
        if (def == NULL) {
            free(pos);
            return usage_error("unknown option %s", shown(arg));
        }
        char *value = NULL;
        if (def->has_arg) {
            if (eq != NULL)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else {
                free(pos);
                return usage_error("--%s needs a value", def->name);
            }
        } else if (eq != NULL) {
            free(pos);
            return usage_error("--%s takes no value", def->name);
        }
        o->seen |= def->bit;
        switch (def->bit) {
        case OPT_ROOT: o->root = value; break;
        case OPT_PASSWORD: o->password = value; break;
        case OPT_QUOTA: o->quota_arg = value; break;
        case OPT_REMOTE: o->remote = value; break;
        case OPT_ADMIN_USER: o->admin_user = value; break;
        case OPT_ADMIN_PASSWORD: o->admin_password = value; break;
        case OPT_CA: o->ca = value; break;
        default: break;
        }
    }
    *pos_r = pos;
    *npos_r = npos;
    return 0;
}

static const char *opt_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof(opt_defs) / sizeof(opt_defs[0]); i++)
        if (opt_defs[i].bit == bit) return opt_defs[i].name;
    return "?";
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    char **pos = NULL;
    size_t npos = 0;
    int code = parse_args(argc, argv, &o, &pos, &npos);
    if (code != 0) return code;

    /* Keep a password given on the command line out of the process list from now on. */
    char *password_copy = NULL;
    if (o.password != NULL) {
        password_copy = xstrdup(o.password);
        explicit_bzero(o.password, strlen(o.password));
        o.password = password_copy;
    }
    char *admin_password_copy = NULL;
    if (o.admin_password != NULL) {
        admin_password_copy = xstrdup(o.admin_password);
        explicit_bzero(o.admin_password, strlen(o.admin_password));
        o.admin_password = admin_password_copy;
    }

    const struct command *cmd = NULL;
    size_t skip = 0;
    if (o.seen & OPT_HELP) {
        usage_short(stdout);
        goto out;
    }
    if (npos == 0) {
        code = usage_error("no command given");
        goto out;
    }
    for (size_t i = 0; i < NCOMMANDS && cmd == NULL; i++) {
        if (strcmp(commands[i].name, pos[0]) != 0) continue;
        if (commands[i].sub == NULL) {
            cmd = &commands[i];
            skip = 1;
        } else if (npos > 1 && strcmp(commands[i].sub, pos[1]) == 0) {
            cmd = &commands[i];
            skip = 2;
        }
    }
    if (cmd == NULL) {
        if (strcmp(pos[0], "queue") == 0)
            code = usage_error("queue: expected list, show, retry, delete, hold or release");
        else if (strcmp(pos[0], "domain") == 0 || strcmp(pos[0], "alias") == 0)
            code = usage_error("%s: expected add, del%s after it", pos[0],
                               strcmp(pos[0], "domain") == 0 ? " or list" : "");
        else
            code = usage_error("unknown command %s", shown(pos[0]));
        goto out;
    }
    usage_cmd = cmd;
    size_t nargs = npos - skip;
    char **args = pos + skip;
    if (nargs < cmd->min_args || nargs > cmd->max_args) {
        code = usage_error("%s: wrong number of arguments", pos[0]);
        goto out;
    }
    unsigned extra = o.seen & ~(cmd->options | OPT_ROOT | OPT_HELP | REMOTE_OPTS);
    if (extra != 0) {
        unsigned bit = extra & -extra;
        code = usage_error("%s: --%s does not apply here", pos[0], opt_name(bit));
        goto out;
    }
    if ((o.seen & OPT_ADMIN) && (o.seen & OPT_NO_ADMIN)) {
        code = usage_error("--admin and --no-admin conflict");
        goto out;
    }
    if (o.quota_arg != NULL && store_quota_parse(o.quota_arg, &o.quota) < 0) {
        code = usage_error("--quota %s: expected megabytes, or a size with K, M or G (500M,"
                           " 2G); 0 = unlimited",
                           shown(o.quota_arg));
        goto out;
    }
    if ((o.seen & REMOTE_OPTS) && !(o.seen & OPT_REMOTE)) {
        code = usage_error("--admin-user, --admin-password, --ca and --insecure go with --remote");
        goto out;
    }
    if (o.seen & OPT_REMOTE) {
        if (o.seen & OPT_ROOT) {
            code = usage_error("--root and --remote conflict");
            goto out;
        }
        code = remote_main(&o, cmd, args, nargs);
        goto out;
    }
    const char *root = o.root != NULL ? o.root : getenv("ALKAID_ROOT");
    if (root == NULL || root[0] == '\0') {
        code = usage_error("no root directory: give --root DIR or set ALKAID_ROOT");
        goto out;
    }

    struct ctx c = {.o = &o};
    struct sbuf messages = SBUF_INIT(SBUF_NO_MAX);
    c.cfg = config_load(root, &messages);
    const char *m = sbuf_cstr(&messages);
    while (*m != '\0') {
        const char *nl = strchr(m, '\n');
        int len = nl != NULL ? (int)(nl - m) : (int)strlen(m);
        if (len > 0) fprintf(stderr, PROG ": %.*s\n", len, m);
        m += len + (nl != NULL);
    }
    sbuf_free(&messages);
    if (c.cfg == NULL) {
        code = fail(EXIT_REFUSED, "the configuration under %s has errors (see above)", shown(root));
        goto out;
    }
    if (strcmp(c.cfg->store_backend, "sqlite") != 0) {
        code = fail(EXIT_REFUSED, "store backend %s is not supported by this build",
                    shown(c.cfg->store_backend));
        config_free(&c.cfg);
        goto out;
    }
    const char *error = NULL;
    c.st = store_open_sqlite(c.cfg->store_path, &error);
    if (c.st == NULL) {
        code = fail(EXIT_TEMPFAIL, "cannot open the account store: %s",
                    error != NULL ? error : "unknown error");
    } else {
        code = cmd->run(&c, args, nargs);
        store_close(&c.st);
        fix_store_owner(&c);
    }
    config_free(&c.cfg);

out:
    if (admin_password_copy != NULL) {
        explicit_bzero(admin_password_copy, strlen(admin_password_copy));
        free(admin_password_copy);
    }
    if (password_copy != NULL) {
        explicit_bzero(password_copy, strlen(password_copy));
        free(password_copy);
    }
    free(pos);
    if (fflush(stdout) != 0 && code == 0) code = fail(EXIT_REFUSED, "cannot write output");
    return code;
}

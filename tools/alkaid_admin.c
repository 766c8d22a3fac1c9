/* alkaid_admin.c - alkaid-admin: the server's administration from another machine
 *
 * Speaks the remote administration protocol (docs/admin-protocol.md) through
 * admin_client.c: global options up to the command word, then one command per protocol
 * operation (commands[] pairs the words with a handler that builds the request and prints
 * the reply). `top` shows the System Overview panel from successive STATUS replies.
 * docs/admin.md is the manual.
 *
 * Exit codes: 0 done; 1 refused by the server; 2 usage; 3 authentication failed or
 * locked out; 69 cannot connect or TLS failure; 75 temporary failure. Every error is one
 * line on stderr starting with "alkaid-admin: ".
 *
 * SECURITY: the admin password is taken from $ALKAID_ADMIN_PASSWORD or a prompt without
 * echo; one given with --password is wiped from argv at once. Passwords sent for USER
 * ADD / PASSWD are wiped after use. Everything the server says is printed with control
 * characters escaped. `top` puts the terminal in raw mode and restores it on exit,
 * SIGINT and SIGTERM.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "admin_client.h"
#include "conn.h"
#include "json.h"
#include "tty_input.h"
#include "sbuf.h"
#include "xalloc.h"

#define PROG         "alkaid-admin"
#define PASSWORD_MAX 1024
#define MAX_ARGS     1100 /* words of one request */

enum opt_bit {
    OPT_HOST = 1u << 0,
    OPT_PORT = 1u << 1,
    OPT_USER = 1u << 2,
    OPT_PASSWORD = 1u << 3,
    OPT_JSON = 1u << 4,
    OPT_CA = 1u << 5,
    OPT_INSECURE = 1u << 6,
    OPT_TIMEOUT = 1u << 7,
    OPT_HELP = 1u << 8,
    OPT_ADMIN = 1u << 9,
    OPT_NO_ADMIN = 1u << 10,
    OPT_QUOTA = 1u << 11,
    OPT_PURGE = 1u << 12,
    OPT_FORCE = 1u << 13,
    OPT_KEEP = 1u << 14,
    OPT_OFF = 1u << 15,
    OPT_ALL = 1u << 16,
    OPT_COUNT = 1u << 17,
};

#define GLOBAL_OPTS                                                                                \
    (OPT_HOST | OPT_PORT | OPT_USER | OPT_PASSWORD | OPT_JSON | OPT_CA | OPT_INSECURE |            \
     OPT_TIMEOUT | OPT_HELP)

static const struct opt_def {
    const char *name;
    bool has_arg;
    unsigned bit;
} opt_defs[] = {
    {"host", true, OPT_HOST},          {"port", true, OPT_PORT},
    {"user", true, OPT_USER},          {"password", true, OPT_PASSWORD},
    {"json", false, OPT_JSON},         {"ca", true, OPT_CA},
    {"insecure", false, OPT_INSECURE}, {"timeout", true, OPT_TIMEOUT},
    {"help", false, OPT_HELP},         {"admin", false, OPT_ADMIN},
    {"no-admin", false, OPT_NO_ADMIN}, {"quota", true, OPT_QUOTA},
    {"purge", false, OPT_PURGE},       {"force", false, OPT_FORCE},
    {"keep", false, OPT_KEEP},         {"off", false, OPT_OFF},
    {"all", false, OPT_ALL},           {"count", true, OPT_COUNT},
};

struct opts {
    unsigned seen;     /* global options (before the command) */
    unsigned cmd_seen; /* options after the command word */
    const char *host, *port_arg, *user, *ca, *timeout_arg, *quota, *count_arg;
    char *password;     /* the admin's (global --password) */
    char *new_password; /* user add / passwd --password */
    int port, timeout;
    long count;
};

struct ctx {
    struct opts *o;
    struct admin_client *ac;
    bool json;
};

typedef int command_fn(struct ctx *c, char **args, size_t nargs);

struct command {
    const char *name;
    const char *sub; /* NULL: none */
    size_t min_args, max_args;
    unsigned options;
    command_fn *run;
    const char *usage;
};

static const struct command *usage_cmd;
static void usage_one(FILE *f);

/* ---- messages ---- */

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
    return ADMIN_EXIT_USAGE;
}

/* Prints "alkaid-admin: <text>" with the text made safe. */
static int fail_safe(int code, const char *prefix, const char *text)
{
    fputs(PROG ": ", stderr);
    if (prefix) admin_fputs_safe(stderr, prefix);
    admin_fputs_safe(stderr, text);
    fputc('\n', stderr);
    return code;
}

static void out(const char *s)
{
    admin_fputs_safe(stdout, s);
}

/* ---- passwords ---- */

/* A new account password: --password, else asked twice on a terminal, else one line of
 * stdin. xmalloc'ed (wipe and free it), or NULL after printing why. */
static char *new_password(struct ctx *c, const char *address, int *exit_r)
{
    if (c->o->new_password != NULL) return xstrdup(c->o->new_password);
    char pw[PASSWORD_MAX + 2], again[PASSWORD_MAX + 2];
    size_t len = 0, len2 = 0;
    int r;
    char *result = NULL;
    if (isatty(STDIN_FILENO)) {
        char *text = xasprintf("New password for %s: ", address);
        r = tty_prompt_secret(text, pw, sizeof(pw), &len, NULL);
        free(text);
        if (r == 0)
            r = tty_prompt_secret("Retype the password: ", again, sizeof(again), &len2, NULL);
        if (r == 0 && (len != len2 || memcmp(pw, again, len) != 0)) {
            *exit_r = fail(ADMIN_EXIT_REFUSED, "the passwords do not match; nothing changed");
            goto out;
        }
    } else {
        r = tty_read_line(pw, sizeof(pw), &len, NULL);
    }
    if (r < 0 || len == 0)
        *exit_r = fail(ADMIN_EXIT_REFUSED,
                       "no password (empty or longer than %d bytes); nothing"
                       " changed",
                       PASSWORD_MAX);
    else
        result = xstrdup(pw);
out:
    explicit_bzero(pw, sizeof(pw));
    explicit_bzero(again, sizeof(again));
    return result;
}

static void wipe_free(char *s)
{
    if (s == NULL) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* ---- requests ---- */

/* Sends args; on +OK stores the reply in *r and returns 0 (or prints the JSON as is and
 * returns 0 with r->json still set when --json); on -ERR or failure prints why and
 * returns the exit code. */
static int request(struct ctx *c, const char *const *args, size_t nargs, struct admin_reply *r)
{
    char error[512];
    int code;
    if (admin_command(c->ac, args, nargs, r, &code, error, sizeof(error)) < 0)
        return fail_safe(code, NULL, error);
    if (!r->ok) {
        fail_safe(code, NULL, r->text);
        fputs("  (server: -ERR ", stderr);
        admin_fputs_safe(stderr, r->code); /* the server's text too */
        fputs(")\n", stderr);
        admin_reply_clear(r);
        return code;
    }
    if (c->json) {
        out(r->text);
        fputc('\n', stdout);
    }
    return 0;
}

/* For commands whose reply is only {"done":true}: prints message unless --json. */
static int simple(struct ctx *c, const char *const *args, size_t nargs, const char *message)
{
    struct admin_reply r;
    int code = request(c, args, nargs, &r);
    if (code != 0) return code;
    if (!c->json) {
        out(message);
        fputc('\n', stdout);
    }
    admin_reply_clear(&r);
    return 0;
}

/* A JSON scalar as text (for generic printing). */
static void print_scalar(const struct json *v)
{
    if (v == NULL) return;
    switch (v->type) {
    case JSON_NULL: fputs("-", stdout); break;
    case JSON_BOOL: fputs(v->boolean ? "yes" : "no", stdout); break;
    case JSON_NUMBER:
        if (v->is_int)
            printf("%" PRId64, v->integer);
        else
            printf("%g", v->number);
        break;
    case JSON_STRING: out(v->str); break;
    case JSON_ARRAY:
        for (size_t i = 0; i < v->n; i++) {
            if (i) fputc(' ', stdout);
            print_scalar(v->items[i]);
        }
        break;
    case JSON_OBJECT: fputs("{...}", stdout); break;
    }
}

/* key: value lines for an object. */
static void print_object(const struct json *v, const char *indent)
{
    for (size_t i = 0; v != NULL && v->type == JSON_OBJECT && i < v->n; i++) {
        fputs(indent, stdout);
        out(v->keys[i]);
        fputs(":", stdout);
        if (v->items[i]->type == JSON_OBJECT) {
            fputc('\n', stdout);
            char *deeper = xasprintf("%s  ", indent);
            print_object(v->items[i], deeper);
            free(deeper);
        } else {
            fputc(' ', stdout);
            print_scalar(v->items[i]);
            fputc('\n', stdout);
        }
    }
}

/* ---- commands ---- */

static int cmd_config_get(struct ctx *c, char **args, size_t nargs)
{
    const char *req[4] = {"CONFIG", "GET"};
    for (size_t i = 0; i < nargs; i++)
        req[2 + i] = args[i];
    struct admin_reply r;
    int code = request(c, req, 2 + nargs, &r);
    if (code != 0 || c->json) goto done;
    const struct json *s = json_get(r.json, "settings");
    for (size_t i = 0; s != NULL && s->type == JSON_ARRAY && i < s->n; i++) {
        const struct json *e = s->items[i];
        const char *value = json_str(json_get(e, "value"), "");
        const char *def = json_str(json_get(e, "default"), NULL);
        fputc('[', stdout);
        out(json_str(json_get(e, "section"), "?"));
        fputs("] ", stdout);
        out(json_str(json_get(e, "key"), "?"));
        fputs(" = ", stdout);
        out(value);
        if (def != NULL && strcmp(def, value) != 0) {
            fputs("   (default: ", stdout);
            if (*def)
                out(def);
            else
                fputs("empty", stdout);
            fputc(')', stdout);
        }
        fputc('\n', stdout);
    }
done:
    admin_reply_clear(&r);
    return code;
}

static void print_reload(const struct json *rl)
{
    for (size_t i = 0; rl != NULL && rl->type == JSON_OBJECT && i < rl->n; i++) {
        out(rl->keys[i]);
        fputs(": ", stdout);
        print_scalar(rl->items[i]);
        fputc('\n', stdout);
    }
}

static int cmd_config_set(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"CONFIG", "SET", args[0], args[1], args[2]};
    struct admin_reply r;
    int code = request(c, req, 5, &r);
    if (code != 0 || c->json) goto done;
    bool changed = json_bool(json_get(r.json, "changed"), true);
    printf("%s [", changed ? "set" : "unchanged:");
    out(args[0]);
    fputs("] ", stdout);
    out(args[1]);
    fputs(" = ", stdout);
    out(args[2]);
    fputc('\n', stdout);
    print_reload(json_get(r.json, "reload"));
done:
    admin_reply_clear(&r);
    return code;
}

static int cmd_domain_list(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"DOMAIN", "LIST"};
    struct admin_reply r;
    int code = request(c, req, 2, &r);
    if (code != 0 || c->json) goto done;
    admin_print_domain_list(stdout, r.json);
done:
    admin_reply_clear(&r);
    return code;
}

static char *msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *msg(const char *fmt, ...)
{
    va_list ap;
    struct sbuf sb = SBUF_INIT(SBUF_NO_MAX);
    va_start(ap, fmt);
    sbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    return sbuf_steal(&sb);
}

static int simple_msg(struct ctx *c, const char *const *req, size_t n, char *m)
{
    int code = simple(c, req, n, m);
    free(m);
    return code;
}

static int cmd_domain_add(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"DOMAIN", "ADD", args[0]};
    return simple_msg(c, req, 3, msg("added domain %s", args[0]));
}

static int cmd_domain_del(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"DOMAIN", "DEL", args[0], "FORCE"};
    bool force = c->o->cmd_seen & OPT_FORCE;
    return simple_msg(c, req, force ? 4 : 3, msg("deleted domain %s", args[0]));
}

static int cmd_user_list(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"USER", "LIST", nargs ? args[0] : NULL};
    struct admin_reply r;
    int code = request(c, req, 2 + nargs, &r);
    if (code == 0 && !c->json) admin_print_user_list(stdout, r.json);
    admin_reply_clear(&r);
    return code;
}

static int cmd_user_show(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"USER", "SHOW", args[0]};
    struct admin_reply r;
    int code = request(c, req, 3, &r);
    if (code == 0 && !c->json) admin_print_user_show(stdout, r.json, args[0]);
    admin_reply_clear(&r);
    return code;
}

static int cmd_user_add(struct ctx *c, char **args, size_t nargs)
{
    int code = 0;
    char *pw = new_password(c, args[0], &code);
    if (pw == NULL) return code;
    const char *req[7] = {"USER", "ADD", args[0], pw};
    size_t n = 4;
    if (c->o->cmd_seen & OPT_ADMIN) req[n++] = "ADMIN";
    if (c->o->quota) {
        req[n++] = "QUOTA";
        req[n++] = c->o->quota;
    }
    code = simple_msg(c, req, n, msg("added user %s", args[0]));
    wipe_free(pw);
    return code;
}

static int cmd_user_del(struct ctx *c, char **args, size_t nargs)
{
    bool purge = c->o->cmd_seen & OPT_PURGE;
    const char *req[] = {"USER", "DEL", args[0], "PURGE"};
    return simple_msg(c, req, purge ? 4 : 3,
                      msg("deleted %s%s", args[0], purge ? " and removed its mailbox" : ""));
}

static int cmd_user_passwd(struct ctx *c, char **args, size_t nargs)
{
    int code = 0;
    char *pw = new_password(c, args[0], &code);
    if (pw == NULL) return code;
    const char *req[] = {"USER", "PASSWD", args[0], pw};
    code = simple_msg(c, req, 4, msg("password changed for %s", args[0]));
    wipe_free(pw);
    return code;
}

static int cmd_user_set(struct ctx *c, char **args, size_t nargs)
{
    unsigned s = c->o->cmd_seen;
    if (!(s & (OPT_ADMIN | OPT_NO_ADMIN | OPT_QUOTA)))
        return usage_error("user set: nothing to set (--admin, --no-admin or --quota N)");
    const char *req[6] = {"USER", "SET", args[0]};
    size_t n = 3;
    if (s & OPT_ADMIN) req[n++] = "ADMIN";
    if (s & OPT_NO_ADMIN) req[n++] = "NOADMIN";
    if (s & OPT_QUOTA) {
        req[n++] = "QUOTA";
        req[n++] = c->o->quota;
    }
    return simple_msg(c, req, n, msg("changed %s", args[0]));
}

/* A request of fixed words followed by args. */
static int with_args(struct ctx *c, const char *w1, const char *w2, char **args, size_t nargs,
                     const char *last, char *message)
{
    size_t n;
    const char **req = admin_words(w1, w2, args, nargs, last, &n);
    int code = simple_msg(c, req, n, message);
    free(req);
    return code;
}

static int cmd_alias_add(struct ctx *c, char **args, size_t nargs)
{
    char *t = admin_joined(args + 1, nargs - 1);
    int code =
        with_args(c, "ALIAS", "ADD", args, nargs, NULL, msg("alias %s: added %s", args[0], t));
    free(t);
    return code;
}

static int cmd_alias_del(struct ctx *c, char **args, size_t nargs)
{
    char *t = admin_joined(args + 1, nargs - 1);
    char *m =
        nargs == 1 ? msg("deleted alias %s", args[0]) : msg("alias %s: removed %s", args[0], t);
    free(t);
    return with_args(c, "ALIAS", "DEL", args, nargs, NULL, m);
}

static int cmd_forward(struct ctx *c, char **args, size_t nargs)
{
    unsigned s = c->o->cmd_seen;
    bool off = s & OPT_OFF, keep = s & OPT_KEEP;
    if (off && nargs != 1) return usage_error("forward: --off takes no targets");
    if (off && keep) return usage_error("forward: --keep and --off conflict");
    if (!off && nargs < 2) return usage_error("forward: give targets, or --off");
    if (off)
        return with_args(c, "FORWARD", NULL, args, 1, "OFF", msg("forwarding off for %s", args[0]));
    char *t = admin_joined(args + 1, nargs - 1);
    char *m =
        msg("forwarding %s to %s%s", args[0], t, keep ? " (keeping a copy in the mailbox)" : "");
    free(t);
    return with_args(c, "FORWARD", NULL, args, nargs, keep ? "KEEP" : NULL, m);
}

static int cmd_catchall(struct ctx *c, char **args, size_t nargs)
{
    bool off = c->o->cmd_seen & OPT_OFF;
    if (off != (nargs == 1))
        return usage_error("catchall: give DOMAIN and an ADDRESS (or null), or DOMAIN --off");
    if (off)
        return with_args(c, "CATCHALL", NULL, args, 1, "OFF", msg("catch-all off for %s", args[0]));
    return with_args(c, "CATCHALL", NULL, args, 2, NULL,
                     msg("catch-all for %s: %s", args[0],
                         strcasecmp(args[1], "null") == 0 ? "null (discard)" : args[1]));
}

static int cmd_queue_list(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"QUEUE", "LIST"};
    struct admin_reply r;
    int code = request(c, req, 2, &r);
    if (code == 0 && !c->json) admin_print_queue_list(stdout, r.json);
    admin_reply_clear(&r);
    return code;
}

static int cmd_queue_show(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"QUEUE", "SHOW", args[0]};
    struct admin_reply r;
    int code = request(c, req, 3, &r);
    if (code == 0 && !c->json) admin_print_queue_show(stdout, r.json, args[0]);
    admin_reply_clear(&r);
    return code;
}

static int cmd_queue_retry(struct ctx *c, char **args, size_t nargs)
{
    bool all = c->o->cmd_seen & OPT_ALL;
    if (all == (nargs == 1)) return usage_error("queue retry: give an ID, or --all");
    if (all) {
        const char *req[] = {"QUEUE", "RETRY", "ALL"};
        return simple(c, req, 3, "Trying every waiting message now.");
    }
    const char *req[] = {"QUEUE", "RETRY", args[0]};
    return simple_msg(c, req, 3, msg("Trying %s now.", args[0]));
}

static int queue_op(struct ctx *c, const char *op, const char *id, const char *done)
{
    const char *req[] = {"QUEUE", op, id};
    return simple_msg(c, req, 3, msg("%s %s.", done, id));
}

static int cmd_queue_delete(struct ctx *c, char **args, size_t nargs)
{
    return queue_op(c, "DELETE", args[0], "Deleted");
}

static int cmd_queue_hold(struct ctx *c, char **args, size_t nargs)
{
    return queue_op(c, "HOLD", args[0], "Held");
}

static int cmd_queue_release(struct ctx *c, char **args, size_t nargs)
{
    return queue_op(c, "RELEASE", args[0], "Released");
}

static const char *upadmin_time_str(int64_t s, char *buf, size_t size)
{
    if (s < 0) s = 0;
    if (s >= 86400)
        snprintf(buf, size, "%" PRId64 "d %02d:%02d:%02d", s / 86400, (int)(s % 86400 / 3600),
                 (int)(s % 3600 / 60), (int)(s % 60));
    else
        snprintf(buf, size, "%02d:%02d:%02d", (int)(s / 3600), (int)(s % 3600 / 60), (int)(s % 60));
    return buf;
}

static const char *const service_names[] = {"smtpd", "pop3imapd", "controld"};

static int cmd_status(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"STATUS"};
    struct admin_reply r;
    int code = request(c, req, 1, &r);
    if (code != 0 || c->json) goto done;
    const struct json *sv = json_get(r.json, "services");
    for (size_t i = 0; sv != NULL && sv->type == JSON_OBJECT && i < sv->n; i++) {
        const struct json *s = sv->items[i];
        out(sv->keys[i]);
        bool running = json_bool(json_get(s, "running"), json_get(s, "pid") != NULL);
        if (!running) {
            fputs(": not running\n", stdout);
            continue;
        }
        char up[48];
        printf(": running, pid %" PRId64 ", up %s\n", json_int(json_get(s, "pid"), 0),
               upadmin_time_str(json_int(json_get(s, "uptime"), 0), up, sizeof(up)));
        print_object(s, "  ");
    }
done:
    admin_reply_clear(&r);
    return code;
}

static int cmd_reload(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"RELOAD", nargs ? args[0] : NULL};
    struct admin_reply r;
    int code = request(c, req, 1 + nargs, &r);
    if (code == 0 && !c->json) print_reload(json_get(r.json, "reload"));
    admin_reply_clear(&r);
    return code;
}

static int cmd_restart(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"RESTART", args[0]};
    struct admin_reply r;
    int code = request(c, req, 2, &r);
    if (code == 0 && !c->json) {
        fputs("restarted ", stdout);
        out(json_str(json_get(r.json, "restarted"), args[0]));
        fputc('\n', stdout);
    }
    admin_reply_clear(&r);
    return code;
}

static int cmd_log(struct ctx *c, char **args, size_t nargs)
{
    const char *req[] = {"LOG", args[0], nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL};
    struct admin_reply r;
    int code = request(c, req, 1 + nargs, &r);
    if (code != 0 || c->json) goto done;
    const struct json *l = json_get(r.json, "lines");
    for (size_t i = 0; l != NULL && l->type == JSON_ARRAY && i < l->n; i++) {
        print_scalar(l->items[i]);
        fputc('\n', stdout);
    }
done:
    admin_reply_clear(&r);
    return code;
}

/* ---- top ---- */

/* The terminal as it was before top made it raw. */
static struct termios saved_tio;
static volatile sig_atomic_t tio_changed;

static void restore_tty(void)
{
    if (tio_changed) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    tio_changed = 0;
}

static volatile sig_atomic_t top_stop, top_suspend;

static void top_signal(int sig)
{
    if (sig == SIGTSTP)
        top_suspend = 1;
    else
        top_stop = sig;
}

/* The terminal as top wants it: no line buffering, no echo, the cursor hidden. */
static void top_raw(void)
{
    struct termios raw = saved_tio;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tio_changed = 1;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
    fputs("\033[?25l", stdout);
    fflush(stdout);
}

static void top_cooked(void)
{
    fputs("\033[?25h\r\n", stdout);
    fflush(stdout);
    restore_tty();
}

/* Ctrl-Z: the terminal is given back as it was, the process stops, and on fg top takes
 * the terminal again. */
static void top_do_suspend(void)
{
    top_suspend = 0;
    bool raw = tio_changed;
    if (raw) top_cooked();
    struct sigaction dfl = {.sa_handler = SIG_DFL}, mine;
    sigaction(SIGTSTP, &dfl, &mine);
    raise(SIGTSTP); /* stops here until SIGCONT */
    sigaction(SIGTSTP, &mine, NULL);
    if (raw && tcgetattr(STDIN_FILENO, &saved_tio) == 0) top_raw();
}

struct top_sample {
    int64_t t_ms;
    struct json *status;
    char *text;
};

static int64_t num(const struct json *root, const char *service, const char *path)
{
    const struct json *s = json_get(json_get(root, "services"), service);
    return json_int(json_path(s, path), -1);
}

static void fmt_num(char *buf, size_t size, int64_t v)
{
    if (v < 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%" PRId64, v);
}

static void fmt_rate(char *buf, size_t size, int64_t cur, int64_t prev, int64_t dt_ms)
{
    if (cur < 0 || prev < 0 || dt_ms <= 0 || cur < prev)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.1f", (double)(cur - prev) * 1000.0 / (double)dt_ms);
}

static void top_print(const struct top_sample *cur, const struct top_sample *prev, bool tty,
                      const char *host)
{
    const struct json *now = cur->status, *before = prev ? prev->status : NULL;
    int64_t dt = prev ? cur->t_ms - prev->t_ms : 0;
    const char *nl = tty ? "\r\n" : "\n";
    char tbuf[40];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S", &tm);
    if (tty) fputs("\033[H\033[2J", stdout);
    printf("Alkaid System Overview - ");
    out(host);
    printf(" - %s%s%s", tbuf, tty ? "   (q quits)" : "", nl);
    printf("%s%-12s %-12s %8s %16s%s", nl, "Service", "State", "PID", "Uptime", nl);
    for (size_t i = 0; i < 3; i++) {
        const struct json *s = json_get(json_get(now, "services"), service_names[i]);
        bool running = s != NULL && json_bool(json_get(s, "running"), json_get(s, "pid") != NULL);
        char up[48] = "-", pid[24] = "-";
        if (running) {
            upadmin_time_str(json_int(json_get(s, "uptime"), 0), up, sizeof(up));
            fmt_num(pid, sizeof(pid), json_int(json_get(s, "pid"), -1));
        }
        printf("%-12s %-12s %8s %16s%s", service_names[i], running ? "running" : "not running", pid,
               up, nl);
    }
    static const struct {
        const char *label, *service, *obj, *conns;
    } protos[] = {
        {"SMTP", "smtpd", "smtp", "connections"},
        {"POP3", "pop3imapd", "pop3", "connections"},
        {"IMAP", "pop3imapd", "imap", "connections"},
        {"admin", "controld", "admin", "sessions"},
    };
    printf("%s%-12s %8s %14s %14s %10s %10s%s", nl, "Protocol", "Conns", "Bytes in", "Bytes out",
           "In/s", "Out/s", nl);
    for (size_t i = 0; i < 4; i++) {
        char conns[24], bin[24], bout[24], rin[24], rout[24], path[64];
        snprintf(path, sizeof(path), "%s.%s", protos[i].obj, protos[i].conns);
        fmt_num(conns, sizeof(conns), num(now, protos[i].service, path));
        snprintf(path, sizeof(path), "%s.bytes_in", protos[i].obj);
        int64_t in = num(now, protos[i].service, path);
        int64_t in0 = before ? num(before, protos[i].service, path) : -1;
        snprintf(path, sizeof(path), "%s.bytes_out", protos[i].obj);
        int64_t o = num(now, protos[i].service, path);
        int64_t o0 = before ? num(before, protos[i].service, path) : -1;
        fmt_num(bin, sizeof(bin), in);
        fmt_num(bout, sizeof(bout), o);
        fmt_rate(rin, sizeof(rin), in, in0, dt);
        fmt_rate(rout, sizeof(rout), o, o0, dt);
        printf("%-12s %8s %14s %14s %10s %10s%s", protos[i].label, conns, bin, bout, rin, rout, nl);
    }
    static const struct {
        const char *label, *path;
    } counters[] = {
        {"Messages in", "messages_in"},
        {"Messages out", "outbound.sent"},
        {"Local deliv.", "local_deliveries"},
    };
    printf("%s%-12s %14s %10s%s", nl, "Mail", "Total", "Per s", nl);
    for (size_t i = 0; i < 3; i++) {
        char tot[24], rate[24];
        int64_t v = num(now, "smtpd", counters[i].path);
        fmt_num(tot, sizeof(tot), v);
        fmt_rate(rate, sizeof(rate), v, before ? num(before, "smtpd", counters[i].path) : -1, dt);
        printf("%-12s %14s %10s%s", counters[i].label, tot, rate, nl);
    }
    char q[24], queued[24], sending[24];
    fmt_num(q, sizeof(q), num(now, "smtpd", "queue"));
    fmt_num(queued, sizeof(queued), num(now, "smtpd", "outbound.queued"));
    fmt_num(sending, sizeof(sending), num(now, "smtpd", "outbound.sending"));
    const struct json *held =
        json_path(json_get(json_get(now, "services"), "smtpd"), "outbound.held");
    const char *held_s = held == NULL              ? "-"
                         : held->type == JSON_BOOL ? (held->boolean ? "yes" : "no")
                         : json_int(held, 0) > 0   ? "yes"
                                                   : "no";
    printf("%sQueue: %s files, %s queued, %s sending, delivery held: %s%s", nl, q, queued, sending,
           held_s, nl);
    fflush(stdout);
}

static int top_fetch(struct ctx *c, struct top_sample *s)
{
    const char *req[] = {"STATUS"};
    struct admin_reply r;
    char error[512];
    int code;
    if (admin_command(c->ac, req, 1, &r, &code, error, sizeof(error)) < 0)
        return fail_safe(code, NULL, error);
    if (!r.ok) {
        fail_safe(code, NULL, r.text);
        admin_reply_clear(&r);
        return code;
    }
    s->t_ms = conn_now_ms();
    s->status = r.json;
    s->text = r.text;
    r.json = NULL;
    r.text = NULL;
    admin_reply_clear(&r);
    return 0;
}

static int cmd_top(struct ctx *c, char **args, size_t nargs)
{
    bool tty = isatty(STDOUT_FILENO) && isatty(STDIN_FILENO) && !c->json;
    long count = c->o->count > 0 ? c->o->count : (tty ? -1 : 1);
    struct top_sample cur = {0}, prev = {0};
    struct sigaction sa = {.sa_handler = top_signal}, old_int, old_term, old_tstp;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGTSTP, &sa, &old_tstp);
    if (tty && tcgetattr(STDIN_FILENO, &saved_tio) == 0) top_raw();
    const char *host = json_str(json_get(admin_greeting(c->ac), "hostname"), c->o->host);
    int code = 0;
    for (long i = 0; (count < 0 || i < count) && !top_stop; i++) {
        code = top_fetch(c, &cur);
        if (code != 0) break;
        if (c->json) {
            /* one STATUS reply per line, as the server sent it */
            out(cur.text);
            fputc('\n', stdout);
            fflush(stdout);
        } else {
            top_print(&cur, prev.status ? &prev : NULL, tty && !c->json, host);
        }
        free(prev.text);
        json_free(&prev.status);
        prev = cur;
        cur.status = NULL;
        cur.text = NULL;
        if (count >= 0 && i + 1 >= count) break;
        /* wait a second, or less if a key is pressed */
        int64_t until = conn_now_ms() + 1000;
        bool quit = false;
        while (!top_stop && !quit) {
            if (top_suspend) {
                top_do_suspend();
                break; /* draw again at once */
            }
            int64_t left = until - conn_now_ms();
            if (left <= 0) break;
            struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
            int r = tty ? poll(&p, 1, (int)left) : poll(NULL, 0, (int)left);
            if (r > 0) {
                char ch;
                if (read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q' || ch == 3))
                    quit = true;
            }
        }
        if (quit) break;
    }
    json_free(&prev.status);
    json_free(&cur.status);
    free(prev.text);
    free(cur.text);
    if (tio_changed) top_cooked();
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGTSTP, &old_tstp, NULL);
    if (top_stop) {
        int sig = top_stop;
        admin_close(&c->ac);
        signal(sig, SIG_DFL);
        raise(sig);
    }
    return code;
}

static const struct command commands[] = {
    {"config", "get", 0, 2, 0, cmd_config_get, "config get [SECTION [KEY]]"},
    {"config", "set", 3, 3, 0, cmd_config_set, "config set SECTION KEY VALUE"},
    {"domain", "list", 0, 0, 0, cmd_domain_list, "domain list"},
    {"domain", "add", 1, 1, 0, cmd_domain_add, "domain add DOMAIN"},
    {"domain", "del", 1, 1, OPT_FORCE, cmd_domain_del, "domain del DOMAIN [--force]"},
    {"user", "list", 0, 1, 0, cmd_user_list, "user list [DOMAIN]"},
    {"user", "show", 1, 1, 0, cmd_user_show, "user show ADDRESS"},
    {"user", "add", 1, 1, OPT_PASSWORD | OPT_ADMIN | OPT_QUOTA, cmd_user_add,
     "user add ADDRESS [--password P] [--admin] [--quota N]"},
    {"user", "del", 1, 1, OPT_PURGE, cmd_user_del, "user del ADDRESS [--purge]"},
    {"user", "passwd", 1, 1, OPT_PASSWORD, cmd_user_passwd, "user passwd ADDRESS [--password P]"},
    {"user", "set", 1, 1, OPT_ADMIN | OPT_NO_ADMIN | OPT_QUOTA, cmd_user_set,
     "user set ADDRESS [--admin|--no-admin] [--quota N]"},
    {"alias", "add", 2, MAX_ARGS, 0, cmd_alias_add, "alias add ADDRESS TARGET [TARGET...]"},
    {"alias", "del", 1, MAX_ARGS, 0, cmd_alias_del, "alias del ADDRESS [TARGET...]"},
    {"forward", NULL, 1, MAX_ARGS, OPT_KEEP | OPT_OFF, cmd_forward,
     "forward ADDRESS TARGET [TARGET...] [--keep] | forward ADDRESS --off"},
    {"catchall", NULL, 1, 2, OPT_OFF, cmd_catchall,
     "catchall DOMAIN ADDRESS|null | catchall DOMAIN --off"},
    {"queue", "list", 0, 0, 0, cmd_queue_list, "queue list"},
    {"queue", "show", 1, 1, 0, cmd_queue_show, "queue show ID"},
    {"queue", "retry", 0, 1, OPT_ALL, cmd_queue_retry, "queue retry ID | queue retry --all"},
    {"queue", "delete", 1, 1, 0, cmd_queue_delete, "queue delete ID"},
    {"queue", "hold", 1, 1, 0, cmd_queue_hold, "queue hold ID"},
    {"queue", "release", 1, 1, 0, cmd_queue_release, "queue release ID"},
    {"status", NULL, 0, 0, 0, cmd_status, "status"},
    {"reload", NULL, 0, 1, 0, cmd_reload, "reload [SERVICE]"},
    {"restart", NULL, 1, 1, 0, cmd_restart, "restart SERVICE"},
    {"log", NULL, 1, 3, 0, cmd_log, "log CHANNEL [LINES [YYYYMMDD]]"},
    {"top", NULL, 0, 0, OPT_COUNT, cmd_top, "top [--count N]"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

#define USAGE_GLOBAL                                                                               \
    "[--host H] [--port P] --user U [--password P] [--json] [--ca FILE | --insecure]"              \
    " [--timeout S]"

static void usage_one(FILE *f)
{
    if (usage_cmd != NULL)
        fprintf(f, "usage: " PROG " [options] %s\n", usage_cmd->usage);
    else
        fprintf(f, "usage: " PROG " " USAGE_GLOBAL " COMMAND ...  (" PROG " --help lists them)\n");
}

static void usage_long(FILE *f)
{
    fprintf(f, "usage: " PROG " " USAGE_GLOBAL " COMMAND ...\n");
    fprintf(f, "  (the password also from $ALKAID_ADMIN_PASSWORD; the user from"
               " $ALKAID_ADMIN_USER)\n");
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

static const char *opt_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof(opt_defs) / sizeof(opt_defs[0]); i++)
        if (opt_defs[i].bit == bit) return opt_defs[i].name;
    return "?";
}

/* Options before the first positional argument are global; after it they belong to the
 * command (so that `user add A --password P` is the new user's password). */
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
        const struct opt_def *def = NULL;
        char *eq = NULL;
        if (arg[1] == '-') {
            const char *name = arg + 2;
            eq = strchr(name, '=');
            def = find_opt(name, eq ? (size_t)(eq - name) : strlen(name));
        }
        if (def == NULL) {
            free(pos);
            return usage_error("unknown option %s", arg);
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
        bool global = npos == 0 || def->bit == OPT_JSON || def->bit == OPT_HELP;
        if (global && !(def->bit & GLOBAL_OPTS)) global = false;
        if (global) {
            o->seen |= def->bit;
        } else {
            o->cmd_seen |= def->bit;
        }
        switch (def->bit) {
        case OPT_HOST: o->host = value; break;
        case OPT_PORT: o->port_arg = value; break;
        case OPT_USER: o->user = value; break;
        case OPT_CA: o->ca = value; break;
        case OPT_TIMEOUT: o->timeout_arg = value; break;
        case OPT_QUOTA: o->quota = value; break;
        case OPT_COUNT: o->count_arg = value; break;
        case OPT_PASSWORD:
            if (global)
                o->password = value;
            else
                o->new_password = value;
            break;
        default: break;
        }
    }
    *pos_r = pos;
    *npos_r = npos;
    return 0;
}

static bool parse_long(const char *s, long min, long max, long *out_r)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return false;
    *out_r = v;
    return true;
}

/* Copies a secret out of argv and wipes it there. */
static char *take_secret(char *s)
{
    if (s == NULL) return NULL;
    char *copy = xstrdup(s);
    explicit_bzero(s, strlen(s));
    return copy;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    char **pos = NULL;
    size_t npos = 0;
    int code = parse_args(argc, argv, &o, &pos, &npos);
    if (code != 0) return code;
    o.password = take_secret(o.password);
    o.new_password = take_secret(o.new_password);
    char *admin_pw = NULL;
    struct ctx c = {.o = &o, .json = (o.seen & OPT_JSON) != 0};

    const struct command *cmd = NULL;
    size_t skip = 0;
    if ((o.seen | o.cmd_seen) & OPT_HELP) {
        usage_long(stdout);
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
        bool known = false;
        for (size_t i = 0; i < NCOMMANDS; i++)
            known |= strcmp(commands[i].name, pos[0]) == 0;
        if (known)
            code = usage_error("%s: unknown or missing subcommand (" PROG " --help lists them)",
                               pos[0]);
        else
            code = usage_error("unknown command %s", pos[0]);
        goto out;
    }
    usage_cmd = cmd;
    size_t nargs = npos - skip;
    char **args = pos + skip;
    if (nargs < cmd->min_args || nargs > cmd->max_args) {
        code = usage_error("%s: wrong number of arguments", pos[0]);
        goto out;
    }
    unsigned extra = o.cmd_seen & ~(cmd->options | OPT_JSON | OPT_HELP);
    if (extra != 0) {
        unsigned bit = extra & -extra;
        code = usage_error("%s: --%s does not apply here", pos[0], opt_name(bit));
        goto out;
    }
    if (o.cmd_seen & OPT_JSON) c.json = true;
    if ((o.cmd_seen & OPT_ADMIN) && (o.cmd_seen & OPT_NO_ADMIN)) {
        code = usage_error("--admin and --no-admin conflict");
        goto out;
    }
    long v;
    o.port = ADMIN_DEFAULT_PORT;
    if (o.port_arg != NULL) {
        if (!parse_long(o.port_arg, 1, 65535, &v)) {
            code = usage_error("--port %s: expected 1-65535", o.port_arg);
            goto out;
        }
        o.port = (int)v;
    }
    o.timeout = 30;
    if (o.timeout_arg != NULL) {
        if (!parse_long(o.timeout_arg, 1, 86400, &v)) {
            code = usage_error("--timeout %s: expected seconds (1-86400)", o.timeout_arg);
            goto out;
        }
        o.timeout = (int)v;
    }
    if (o.count_arg != NULL) {
        if (!parse_long(o.count_arg, 1, 1000000, &o.count)) {
            code = usage_error("--count %s: expected a positive number", o.count_arg);
            goto out;
        }
    }
    if (o.ca != NULL && (o.seen & OPT_INSECURE)) {
        code = usage_error("--ca and --insecure conflict");
        goto out;
    }
    if (o.host == NULL) o.host = "127.0.0.1";
    if (o.user == NULL) o.user = getenv("ALKAID_ADMIN_USER");
    if (o.user == NULL || o.user[0] == '\0') {
        code = usage_error("no administrator: give --user ADDRESS (or set ALKAID_ADMIN_USER)");
        goto out;
    }
    if (o.password != NULL) {
        admin_pw = xstrdup(o.password);
    } else if (getenv("ALKAID_ADMIN_PASSWORD") != NULL) {
        admin_pw = xstrdup(getenv("ALKAID_ADMIN_PASSWORD"));
    } else if (isatty(STDIN_FILENO)) {
        char pw[PASSWORD_MAX + 2];
        size_t len;
        char *text = xasprintf("Password for %s: ", o.user);
        int r = tty_prompt_secret(text, pw, sizeof(pw), &len, NULL);
        free(text);
        if (r == 0) admin_pw = xstrdup(pw);
        explicit_bzero(pw, sizeof(pw));
    }
    if (admin_pw == NULL) {
        code = usage_error("no password: give --password, set ALKAID_ADMIN_PASSWORD, or run on"
                           " a terminal");
        goto out;
    }
    if (o.seen & OPT_INSECURE)
        fprintf(stderr, PROG ": warning: --insecure: the server's certificate is not checked;"
                             " anyone on the path can read the password\n");

    struct admin_options ao = {.host = o.host,
                               .port = o.port,
                               .ca_file = o.ca,
                               .insecure = (o.seen & OPT_INSECURE) != 0,
                               .timeout_s = o.timeout};
    char error[1024];
    c.ac = admin_connect(&ao, &code, error, sizeof(error));
    if (c.ac == NULL) {
        fail_safe(code, NULL, error);
        goto out;
    }
    code = admin_login(c.ac, o.user, admin_pw, error, sizeof(error));
    wipe_free(admin_pw);
    admin_pw = NULL;
    if (code != 0)
        fail_safe(code, NULL, error);
    else
        code = cmd->run(&c, args, nargs);
    admin_close(&c.ac);

out:
    wipe_free(admin_pw);
    wipe_free(o.password);
    wipe_free(o.new_password);
    free(pos);
    if (fflush(stdout) != 0 && code == 0) code = fail(ADMIN_EXIT_REFUSED, "cannot write output");
    return code;
}

/* service.c - what every Alkaid daemon does the same way
 *
 * The main thread starts everything and then only waits for stop/reload events; all
 * work happens in the threads the service's start hook created. Configurations are
 * never freed while running (a reload adds one to a list), which lets sessions hold a
 * plain pointer without reference counting.
 *
 * SECURITY: see service.h.
 */
#include "service.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "authfail.h"
#include "ctl.h"
#include "fsutil.h"
#include "password.h"
#include "platform.h"
#include "sasl.h"
#include "server.h"
#include "spool.h"
#include "tls.h"
#include "xalloc.h"

struct cfg_node {
    struct alkaid_config *cfg;
    struct cfg_node *next;
};

static struct cfg_node *configs;
static struct alkaid_config *current;
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct service_ops *svc;
static time_t started;
static bool foreground;

const struct alkaid_config *service_config(void)
{
    return __atomic_load_n(&current, __ATOMIC_ACQUIRE);
}

long long service_uptime(void)
{
    return (long long)(time(NULL) - started);
}

bool service_foreground(void)
{
    return foreground;
}

static void push_config(struct alkaid_config *cfg)
{
    struct cfg_node *n = xcalloc(1, sizeof(*n));
    n->cfg = cfg;
    n->next = configs;
    configs = n;
    __atomic_store_n(&current, cfg, __ATOMIC_RELEASE);
}

static void free_configs(void)
{
    while (configs) {
        struct cfg_node *n = configs;
        configs = n->next;
        config_free(&n->cfg);
        free(n);
    }
    current = NULL;
}

struct store *service_open_store(const struct alkaid_config *cfg, const char **error_r)
{
    struct store *st = store_open_sqlite(cfg->store_path, error_r);
    if (st == NULL) return NULL;
    unsigned char key[32];
    if (store_secret(st, "scram-fake-salt-key", key, sizeof(key)) == STORE_OK)
        password_set_fake_key(key, sizeof(key));
    else
        log_error(svc->channel, NULL,
                  "The account store has no shared key yet (busy?); "
                  "unknown users get a per-process SCRAM salt for now");
    OPENSSL_cleanse(key, sizeof(key));
    return st;
}

/* Logs configuration messages (one per line of msgs). */
static void log_messages(enum log_channel ch, const char *what, const struct sbuf *msgs)
{
    const char *p = sbuf_cstr(msgs);
    while (*p) {
        size_t n = strcspn(p, "\n");
        if (n) log_line(ch, NULL, "%s: %.*s", what, (int)n, p);
        p += n;
        if (*p) p++;
    }
}

static void apply_common(const struct alkaid_config *cfg)
{
    log_set_enabled(LOG_SMTP, cfg->log_smtp);
    log_set_enabled(LOG_POP3, cfg->log_pop3);
    log_set_enabled(LOG_IMAP, cfg->log_imap);
    log_set_enabled(LOG_CONTROL, cfg->log_control);
    authfail_configure((unsigned)cfg->auth_delay_after, (unsigned)cfg->auth_lock_after,
                       (unsigned)cfg->auth_lock_time);
    spool_set_hostname(cfg->hostname);
    sasl_set_fake_iterations((unsigned)cfg->password_iterations);
    password_cache_configure((unsigned)cfg->auth_cache_ttl);
}

static int make_dirs(const struct alkaid_config *cfg, const char **error_r)
{
    static __thread char err[512];
    const char *dirs[] = {cfg->mail_dir, cfg->temp_dir, cfg->log_dir, cfg->run_dir};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        if (fs_mkdirs(dirs[i], 0750) < 0) {
            snprintf(err, sizeof(err), "cannot create %s: %s", dirs[i], strerror(errno));
            *error_r = err;
            return -1;
        }
        platform_chown_to(dirs[i], cfg->user);
    }
    /* the store writes its -wal and -shm files next to the database */
    char *dbdir = fs_dirname(cfg->store_path);
    platform_chown_to(dbdir, cfg->user);
    platform_chown_to(cfg->store_path, cfg->user);
    free(dbdir);
    char *forward = xasprintf("%s/FORWARD", cfg->mail_dir);
    int r = fs_mkdirs(forward, 0750);
    if (r == 0) platform_chown_to(forward, cfg->user);
    if (r < 0) {
        snprintf(err, sizeof(err), "cannot create %s: %s", forward, strerror(errno));
        *error_r = err;
    }
    free(forward);
    return r;
}

/* [Directories] and [Store] take effect only at a restart (docs/config.md): a reload keeps
 * the running values, so every session keeps writing where the others read. */
static void keep_restart_settings(struct alkaid_config *cfg, const struct alkaid_config *old)
{
    static const struct {
        const char *name;
        size_t offset;
    } fields[] = {
        {"[Directories] Mail", offsetof(struct alkaid_config, mail_dir)},
        {"[Directories] Temp", offsetof(struct alkaid_config, temp_dir)},
        {"[Directories] Log", offsetof(struct alkaid_config, log_dir)},
        {"[Directories] Run", offsetof(struct alkaid_config, run_dir)},
        {"[Store] Backend", offsetof(struct alkaid_config, store_backend)},
        {"[Store] Database", offsetof(struct alkaid_config, store_path)},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char **now = (char **)((char *)cfg + fields[i].offset);
        char *const *was = (char *const *)((const char *)old + fields[i].offset);
        if (strcmp(*now, *was) == 0) continue;
        log_line(svc->channel, NULL, "%s: the change to %s takes effect at the next restart",
                 fields[i].name, *now);
        free(*now);
        *now = xstrdup(*was);
    }
}

/* Reloads the configuration; appends what happened to reply. */
static int do_reload(struct sbuf *reply)
{
    pthread_mutex_lock(&reload_lock);
    const struct alkaid_config *old = service_config();
    struct sbuf msgs = SBUF_INIT(SBUF_NO_MAX);
    struct alkaid_config *cfg = config_load(old->root, &msgs);
    int ret = -1;
    if (cfg == NULL) {
        log_error(svc->channel, NULL, "Reload refused, keeping the running configuration: %s",
                  sbuf_cstr(&msgs));
        sbuf_printf(reply, "ERR reload refused: %s", sbuf_cstr(&msgs));
        goto out;
    }
    log_messages(svc->channel, "Reload", &msgs);
    keep_restart_settings(cfg, old);
    const char *err = NULL;
    if (make_dirs(cfg, &err) < 0 || log_init(cfg->log_dir) < 0 ||
        (svc->needs_tls &&
         tls_ensure_certificate(cfg->tls_cert, cfg->tls_key, cfg->hostname, &err) < 0) ||
        (svc->reload && svc->reload(cfg, &err) < 0)) {
        log_error(svc->channel, NULL, "Reload failed, keeping the running configuration: %s",
                  err ? err : strerror(errno));
        sbuf_printf(reply, "ERR reload failed: %s\n", err ? err : strerror(errno));
        config_free(&cfg);
        goto out;
    }
    apply_common(cfg);
    push_config(cfg);
    log_line(svc->channel, NULL, "%s Service configuration reloaded", svc->title);
    sbuf_appends(reply, "OK reloaded\n");
    ret = 0;
out:
    sbuf_free(&msgs);
    pthread_mutex_unlock(&reload_lock);
    return ret;
}

static void ctl_handler(const char *command, const char *arg, struct sbuf *reply, void *ctx)
{
    (void)ctx;
    if (strcmp(command, "STATUS") == 0) {
        const struct alkaid_config *cfg = service_config();
        sbuf_printf(reply, "{\"service\":\"%s\",\"pid\":%ld,\"uptime\":%lld,\"hostname\":\"%s\"",
                    svc->name, (long)getpid(), service_uptime(), cfg->hostname);
        if (svc->status) svc->status(reply);
        sbuf_appends(reply, "}\n");
    } else if (strcmp(command, "RELOAD") == 0) {
        do_reload(reply);
    } else if (strcmp(command, "STOP") == 0) {
        sbuf_appends(reply, "OK stopping\n");
        platform_request_stop();
    } else if (svc->command == NULL || svc->command(command, arg, reply) < 0) {
        sbuf_printf(reply, "ERR unknown command '%s'\n", command);
    }
}

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s --root DIR [--foreground]\n"
            "       %s --root DIR --ctl STATUS|RELOAD|STOP%s\n"
            "       %s --root DIR --install | --uninstall   (Windows services)\n"
            "The root may also be given as $ALKAID_ROOT. See docs/ for the configuration.\n",
            prog, prog,
            strcmp(svc->name, "smtpd") == 0      ? "|FLUSH [ID]|HOLD|RELEASE"
            : strcmp(svc->name, "controld") == 0 ? "|RESTART smtpd|pop3imapd"
                                                 : "",
            prog);
}

static int run_ctl(const char *root, const char *command)
{
    /* no full configuration load: the service must be reachable (to STOP it, or to
     * hear why a RELOAD is refused) even while alkaid.ini has an error */
    const char *err;
    if (config_root_prepare(root, &err) < 0) { /* a new root is set up by any program */
        fprintf(stderr, "alkaid-%s: %s\n", svc->name, err);
        return 1;
    }
    char *run = config_run_dir(root);
    char *path = xasprintf("%s/%s.sock", run, svc->name);
    free(run);
    struct sbuf reply = SBUF_INIT(SBUF_NO_MAX);
    int rc = 0;
    if (ctl_request(path, command, &reply, &err) < 0) {
        fprintf(stderr, "alkaid-%s: %s\n", svc->name, err);
        rc = 1;
    } else {
        fputs(sbuf_cstr(&reply), stdout);
        if (strncmp(sbuf_cstr(&reply), "ERR", 3) == 0) rc = 1;
    }
    sbuf_free(&reply);
    free(path);

    return rc;
}

int service_main(int argc, char **argv, const struct service_ops *ops)
{
    svc = ops;
    const char *root = getenv("ALKAID_ROOT");
    const char *ctl_cmd = NULL;
    int install = 0; /* 1 --install, -1 --uninstall */
    const char *prog = argv[0] ? argv[0] : "alkaid";
    if (strrchr(prog, '/')) prog = strrchr(prog, '/') + 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else if (strncmp(a, "--root=", 7) == 0) {
            root = a + 7;
        } else if (strcmp(a, "--foreground") == 0 || strcmp(a, "-f") == 0) {
            foreground = true;
        } else if (strcmp(a, "--ctl") == 0 && i + 1 < argc) {
            ctl_cmd = argv[++i];
        } else if (strcmp(a, "--install") == 0) {
            install = 1;
        } else if (strcmp(a, "--uninstall") == 0) {
            install = -1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout, prog);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("%s %s\n", prog, ALKAID_VERSION);
            return 0;
        } else if (ops->option && ops->option(a) == 1) {
            continue;
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, a);
            usage(stderr, prog);
            return 2;
        }
    }
    if (install < 0 || (install > 0 && root && *root)) {
        const char *err = NULL;
        int r = install > 0 ? platform_service_install(ops->name, ops->title, root, &err)
                            : platform_service_uninstall(ops->name, &err);
        if (r == 0) {
            printf("%s: %s\n", prog, install > 0 ? "installed as a service" : "uninstalled");
            return 0;
        }
        fprintf(stderr, "%s: %s\n", prog, err);
        return r == -2 ? 2 : 1;
    }
    if (root == NULL || *root == '\0') {
        fprintf(stderr, "%s: no root given (--root DIR or $ALKAID_ROOT)\n", prog);
        usage(stderr, prog);
        return 2;
    }
    if (ctl_cmd) return run_ctl(root, ctl_cmd);

    struct sbuf msgs = SBUF_INIT(SBUF_NO_MAX);
    struct alkaid_config *cfg = config_load(root, &msgs);
    if (msgs.len) fprintf(stderr, "%s", sbuf_cstr(&msgs));
    if (cfg == NULL) {
        fprintf(stderr, "%s: not started: the configuration has errors\n", prog);
        sbuf_free(&msgs);
        return 1;
    }
    const char *err = NULL;
    if (make_dirs(cfg, &err) < 0 || log_init(cfg->log_dir) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err ? err : strerror(errno));
        config_free(&cfg);
        sbuf_free(&msgs);
        return 1;
    }
    log_messages(ops->channel, "Configuration", &msgs);
    sbuf_free(&msgs);
    log_set_stderr(foreground);
    push_config(cfg);
    apply_common(cfg);

    /* failed logins are counted for the whole root, whichever service they hit */
    char *aftab = xasprintf("%s/authfail.tab", cfg->run_dir);
    if (authfail_attach(aftab) < 0)
        fprintf(stderr, "%s: %s: %s (failed logins are counted per service)\n", prog, aftab,
                strerror(errno));
    else
        platform_chown_to(aftab, cfg->user);
    free(aftab);
    if (ops->needs_tls &&
        tls_ensure_certificate(cfg->tls_cert, cfg->tls_key, cfg->hostname, &err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        free_configs();
        return 1;
    }
    if (!foreground && platform_daemonize(&err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        free_configs();
        return 1;
    }
    char *pidfile = xasprintf("%s/%s.pid", cfg->run_dir, ops->name);
    char *sockpath = xasprintf("%s/%s.sock", cfg->run_dir, ops->name);
    int pidfd = platform_pidfile(pidfile, &err);
    struct ctl_server *ctl = NULL;
    int rc = 1;
    if (pidfd < 0) goto fail_early;
    started = time(NULL);
    platform_signals_init();
    /* after going to the background (it starts a thread), and after the signals are
     * blocked (so the thread inherits that and SIGTERM reaches the main loop) */
    log_start_batching();
    server_gate_close();
    /* a start that fails half-way may have started threads: stop undoes it */
    if (ops->start(cfg, &err) < 0) goto fail_started;
    if (platform_drop_privileges(cfg->user, &err) < 0) goto fail_started;
    server_gate_open(); /* only now may clients be served */
    ctl = ctl_server_start(sockpath, ctl_handler, NULL, &err);
    if (ctl == NULL) goto fail_started;

    log_line(ops->channel, NULL, "%s Service started (alkaid %s, root %s)", ops->title,
             ALKAID_VERSION, cfg->root);
    platform_ready(NULL);
    for (;;) {
        enum platform_event ev = platform_wait_event();
        if (ev == PLATFORM_EV_STOP) break;
        if (ev == PLATFORM_EV_RELOAD) {
            struct sbuf reply = SBUF_INIT(SBUF_NO_MAX);
            do_reload(&reply);
            sbuf_free(&reply);
        } else if (ev == PLATFORM_EV_PAUSE) {
            server_gate_close();
            log_line(ops->channel, NULL, "%s Service paused (no new connections)", ops->title);
        } else if (ev == PLATFORM_EV_CONTINUE) {
            server_gate_open();
            log_line(ops->channel, NULL, "%s Service continued", ops->title);
        }
        platform_event_handled(ev);
    }
    log_line(ops->channel, NULL, "%s Service stopping", ops->title);
    ctl_server_stop(&ctl);
    ops->stop();
    log_line(ops->channel, NULL, "%s Service stopped", ops->title);
    rc = 0;
    goto out;

fail_started:
    ops->stop();
    /* log_error() also prints to stderr in the foreground */
    log_error(ops->channel, NULL, "%s Service not started: %s", ops->title, err);
    goto report;
fail_early:
    fprintf(stderr, "%s: %s\n", prog, err);
report : {
    char *msg = xasprintf("%s: %s", prog, err);
    platform_ready(msg);
    free(msg);
}
out:
    if (pidfd >= 0) {
        platform_pidfile_remove(pidfile);
        close(pidfd);
    }
    free(pidfile);
    free(sockpath);
    authfail_detach();
    log_shutdown();
    free_configs();
    return rc;
}

/* watchdog.c - alkaid-controld keeps alkaid-smtpd and alkaid-pop3imapd running
 *
 * One thread does everything: every 100 ms it reaps the children (waitpid WNOHANG on
 * their own pids, so nothing else controld starts is disturbed), starts the ones whose
 * back-off has run out, sends SIGKILL to one that ignored SIGTERM for 5 s, and pings the
 * ones due for a ping. Each child is a small state machine: DOWN (start it at
 * next_start) -> RUNNING -> STOPPING (SIGTERM sent: after a failed ping or RESTART) ->
 * DOWN. The ctl thread only reads the state (STATUS) or sets a flag (RESTART), under the
 * same lock; pings run outside it, so a hung child never holds up STATUS for long.
 *
 * A service found already running on the root (its pid file locked: a supervisor before
 * us was killed, or it was started by hand) is adopted: pinged and restarted like a
 * child, its end seen as the pid file's lock going away.
 *
 * Without --supervise the same thread watches the pid files and ctl sockets of services
 * some other manager runs, and runs [Control] WatchdogRestart for one that hangs or died.
 *
 * SECURITY: see watchdog.h. The children get /dev/null as stdin, stdout and stderr (what
 * they have to say is in log/error/), an empty signal mask and default signal actions.
 */
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "fsutil.h"
#include "log.h"
#include "platform.h"
#include "service.h"
#include "spawn_program.h"
#include "xalloc.h"

#define PING_FAILURES  3     /* consecutive failed pings before a restart */
#define TERM_GRACE_MS  5000  /* SIGTERM to SIGKILL when restarting one child */
#define STOP_GRACE_MS  10000 /* SIGTERM to SIGKILL when controld stops */
#define BACKOFF_MIN_MS 1000  /* first delay after a crash */
#define BACKOFF_MAX_MS 60000 /* longest delay */
#define STABLE_MS      60000 /* running this long resets the back-off */
#define START_GRACE_MS 30000 /* a new process's failed pings count after this... */
#define PING_MAX_MS    10000 /* longest wait for a ping's answer */
#define TICK_MS        100
#define MAX_HELPERS    8 /* WatchdogRestart commands not yet reaped */

enum child_state { CHILD_DOWN, CHILD_RUNNING, CHILD_STOPPING };

struct child {
    const char *name; /* "smtpd": binary alkaid-smtpd, socket run/smtpd.sock */
    enum child_state state;
    pid_t pid; /* supervised: our child; otherwise the pid file's owner (0 = none) */
    long long started_ms;
    long long next_start_ms; /* DOWN: when to start it */
    long long kill_ms;       /* STOPPING: when to send SIGKILL */
    long long next_ping_ms;
    long long last_action_ms; /* unsupervised: when WatchdogRestart last ran */
    int failures;             /* consecutive failed pings */
    bool answered;            /* ...or once it has answered one */
    int backoff_ms;
    unsigned restarts;
    bool killed;      /* STOPPING: SIGKILL sent */
    bool restart_now; /* RESTART asked for: no back-off */
    bool ever_started;
    bool adopted; /* supervised, but found running (not our child): watched by pid file */
};

struct helper {
    pid_t pid;
    char *what;
};

static struct child children[] = {{.name = "smtpd"}, {.name = "pop3imapd"}};
#define NCHILDREN (sizeof(children) / sizeof(children[0]))

static bool supervise;
static bool running; /* the thread exists */
static bool stopping;
static char *bindir;
static pthread_t thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static struct helper helpers[MAX_HELPERS];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int watchdog_option(const char *opt)
{
    if (strcmp(opt, "--supervise") != 0) return 0;
    supervise = true;
    return 1;
}

static struct child *find_child(const char *name)
{
    if (strncmp(name, "alkaid-", 7) == 0) name += 7;
    for (size_t i = 0; i < NCHILDREN; i++)
        if (strcmp(children[i].name, name) == 0) return &children[i];
    return NULL;
}

/* "exited with status 1" / "was killed by signal 9 (Killed)" */
static void describe_status(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "ended (wait status %d)", status);
}

/* ---- supervised children ------------------------------------------------------- */

static int start_child(struct child *c, long long now)
{
    const struct alkaid_config *cfg = service_config();
    char *path = xasprintf("%s/alkaid-%s", bindir, c->name);
    char *argv[] = {path, (char *)"--root", cfg->root, (char *)"--foreground", NULL};
    pid_t pid;
    int err = spawn_program(argv, false, SPAWN_OUT_DEVNULL, &pid);
    if (err != 0) {
        log_error(LOG_CONTROL, NULL, "Watchdog: cannot start %s: %s", path, strerror(err));
        free(path);
        errno = err;
        return -1;
    }
    free(path);
    c->pid = pid;
    c->state = CHILD_RUNNING;
    c->started_ms = now;
    c->next_ping_ms = now + (long long)cfg->watchdog_interval * 1000;
    c->failures = 0;
    c->answered = false;
    c->killed = false;
    if (c->ever_started) {
        c->restarts++;
        log_line(LOG_CONTROL, NULL, "Watchdog: restarted alkaid-%s (pid %ld, restart %u)", c->name,
                 (long)pid, c->restarts);
    } else {
        log_line(LOG_CONTROL, NULL, "Watchdog: started alkaid-%s (pid %ld)", c->name, (long)pid);
    }
    c->ever_started = true;
    return 0;
}

/* The pid of the process holding run/<name>.pid's lock, 0 if none. */
static pid_t pidfile_owner(const char *name)
{
    char *pidfile = xasprintf("%s/%s.pid", service_config()->run_dir, name);
    long owner = platform_pidfile_owner(pidfile);
    free(pidfile);
    return owner > 0 ? (pid_t)owner : 0;
}

/* A service already running on the root (left by a supervisor that was killed, or
 * started by hand) is supervised where it is instead of being started a second time,
 * which would only fail. true if c was adopted. */
static bool adopt_child(struct child *c, long long now)
{
    pid_t owner = pidfile_owner(c->name);
    if (owner == 0) return false;
    c->pid = owner;
    c->adopted = true;
    c->state = CHILD_RUNNING;
    c->started_ms = now;
    c->next_ping_ms = now + (long long)service_config()->watchdog_interval * 1000;
    c->failures = 0;
    c->answered = false;
    c->killed = false;
    c->ever_started = true;
    log_line(LOG_CONTROL, NULL, "Watchdog: alkaid-%s is already running (pid %ld): supervising it",
             c->name, (long)owner);
    return true;
}

/* Whether child c has ended; *status_r is its wait status, or -1 for an adopted process
 * (not our child: its end is seen as its pid file's lock going away). */
static bool child_gone(struct child *c, int *status_r)
{
    if (c->adopted) {
        *status_r = -1;
        return pidfile_owner(c->name) != c->pid;
    }
    return waitpid(c->pid, status_r, WNOHANG) == c->pid;
}

static void begin_stop(struct child *c, long long now)
{
    kill(c->pid, SIGTERM);
    kill(c->pid, SIGCONT); /* a stopped process acts on SIGTERM only once continued */
    c->state = CHILD_STOPPING;
    c->kill_ms = now + TERM_GRACE_MS;
    c->killed = false;
}

static void child_exited(struct child *c, int status, long long now)
{
    char how[128];
    if (status == -1)
        snprintf(how, sizeof(how), "ended");
    else
        describe_status(status, how, sizeof(how));
    c->adopted = false;
    bool asked = c->restart_now;
    if (c->state == CHILD_STOPPING)
        log_line(LOG_CONTROL, NULL, "Watchdog: alkaid-%s (pid %ld) %s", c->name, (long)c->pid, how);
    else
        log_error(LOG_CONTROL, NULL, "Watchdog: alkaid-%s (pid %ld) %s", c->name, (long)c->pid,
                  how);
    c->pid = 0;
    c->state = CHILD_DOWN;
    if (asked) {
        c->restart_now = false;
        c->next_start_ms = now;
        return;
    }
    if (now - c->started_ms >= STABLE_MS || c->backoff_ms < BACKOFF_MIN_MS)
        c->backoff_ms = BACKOFF_MIN_MS;
    c->next_start_ms = now + c->backoff_ms;
    log_line(LOG_CONTROL, NULL, "Watchdog: restarting alkaid-%s in %d s", c->name,
             c->backoff_ms / 1000);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* Asks the service at run/<name>.sock for its STATUS. true if it answered. Called
 * without the lock. */
static bool ping(const char *name, int interval_s)
{
    const struct alkaid_config *cfg = service_config();
    char *path = xasprintf("%s/%s.sock", cfg->run_dir, name);
    struct sbuf reply = SBUF_INIT(SBUF_NO_MAX);
    const char *err = NULL;
    int timeout = interval_s * 1000 > PING_MAX_MS ? PING_MAX_MS : interval_s * 1000;
    bool ok = ctl_request_timeout(path, "STATUS", timeout, &reply, &err) == 0 && reply.len > 0 &&
              reply.data[0] == '{';
    free(path);
    sbuf_free(&reply);
    return ok;
}

/* Counts a failed or successful ping; true when the service has now failed too often. A
 * process that has not answered yet is still starting (a new root makes its TLS pair, a
 * sanitizer build is slow) and gets START_GRACE_MS before its silence counts. */
static bool count_ping(struct child *c, bool ok, long long now)
{
    if (ok) {
        c->failures = 0;
        c->answered = true;
        return false;
    }
    if (!c->answered && now - c->started_ms < START_GRACE_MS) return false;
    c->failures++;
    log_line(LOG_CONTROL, NULL, "Watchdog: alkaid-%s did not answer ctl STATUS (%d of %d)", c->name,
             c->failures, PING_FAILURES);
    return c->failures >= PING_FAILURES;
}

static void tick_supervised(struct child *c, long long now)
{
    const struct alkaid_config *cfg = service_config();
    if (c->state != CHILD_DOWN) {
        int status;
        if (child_gone(c, &status)) child_exited(c, status, now);
    }
    switch (c->state) {
    case CHILD_DOWN:
        if (c->restart_now) {
            c->restart_now = false;
            c->next_start_ms = now;
        }
        if (now >= c->next_start_ms && !adopt_child(c, now) && start_child(c, now) < 0) {
            c->backoff_ms = c->backoff_ms < BACKOFF_MIN_MS ? BACKOFF_MIN_MS : c->backoff_ms;
            c->next_start_ms = now + c->backoff_ms;
            c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
        }
        break;
    case CHILD_RUNNING:
        if (c->restart_now) {
            log_line(LOG_CONTROL, NULL, "Watchdog: restarting alkaid-%s (pid %ld) on request",
                     c->name, (long)c->pid);
            begin_stop(c, now);
        } else if (cfg->watchdog && now >= c->next_ping_ms) {
            int interval = cfg->watchdog_interval;
            const char *name = c->name;
            pthread_mutex_unlock(&lock);
            bool ok = ping(name, interval);
            pthread_mutex_lock(&lock);
            now = now_ms();
            c->next_ping_ms = now + (long long)interval * 1000;
            if (c->state == CHILD_RUNNING && !c->restart_now && count_ping(c, ok, now)) {
                log_error(LOG_CONTROL, NULL,
                          "Watchdog: alkaid-%s (pid %ld) stopped answering; restarting it", c->name,
                          (long)c->pid);
                begin_stop(c, now);
            }
        }
        break;
    case CHILD_STOPPING:
        if (!c->killed && now >= c->kill_ms) {
            log_error(LOG_CONTROL, NULL,
                      "Watchdog: alkaid-%s (pid %ld) ignored SIGTERM for %d s; sending SIGKILL",
                      c->name, (long)c->pid, TERM_GRACE_MS / 1000);
            kill(c->pid, SIGKILL);
            c->killed = true;
        }
        break;
    }
}

/* ---- services run by someone else ----------------------------------------------- */

static void reap_helpers(void)
{
    for (size_t i = 0; i < MAX_HELPERS; i++) {
        int status;
        if (helpers[i].pid <= 0 || waitpid(helpers[i].pid, &status, WNOHANG) != helpers[i].pid)
            continue;
        char how[128];
        describe_status(status, how, sizeof(how));
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            log_line(LOG_CONTROL, NULL, "Watchdog: '%s' %s", helpers[i].what, how);
        else
            log_error(LOG_CONTROL, NULL, "Watchdog: '%s' %s", helpers[i].what, how);
        helpers[i].pid = 0;
        free(helpers[i].what);
        helpers[i].what = NULL;
    }
}

/* Replaces every "%s" in word with name. */
static char *substitute(const char *word, const char *name)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    for (const char *p = word; *p;) {
        if (p[0] == '%' && p[1] == 's') {
            sbuf_appends(&out, name);
            p += 2;
        } else {
            sbuf_append(&out, p, 1);
            p++;
        }
    }
    char *s = xstrdup(sbuf_cstr(&out));
    sbuf_free(&out);
    return s;
}

/* Runs [Control] WatchdogRestart for service name (lock held). 0 started, -1 not (the
 * reason appended to why). */
static int run_restart_command(const char *name, struct sbuf *why)
{
    const struct alkaid_config *cfg = service_config();
    const char *tmpl = cfg->watchdog_restart;
    if (tmpl == NULL || tmpl[strspn(tmpl, " \t")] == '\0') {
        sbuf_appends(why, "[Control] WatchdogRestart is empty");
        return -1;
    }
    size_t slot = MAX_HELPERS;
    for (size_t i = 0; i < MAX_HELPERS; i++)
        if (helpers[i].pid <= 0) slot = i;
    if (slot == MAX_HELPERS) {
        sbuf_appends(why, "too many restart commands still running");
        return -1;
    }
    char *copy = xstrdup(tmpl);
    size_t n = 0, cap = 8;
    char **argv = xcalloc(cap + 1, sizeof(*argv));
    char *save = NULL;
    for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        if (n == cap) {
            cap *= 2;
            argv = xrealloc(argv, (cap + 1) * sizeof(*argv));
        }
        argv[n++] = substitute(w, name);
    }
    argv[n] = NULL;
    struct sbuf what = SBUF_INIT(SBUF_NO_MAX);
    for (size_t i = 0; i < n; i++)
        sbuf_printf(&what, "%s%s", i ? " " : "", argv[i]);
    pid_t pid;
    int err = spawn_program(argv, true, SPAWN_OUT_DEVNULL, &pid);
    int ret = 0;
    if (err != 0) {
        log_error(LOG_CONTROL, NULL, "Watchdog: cannot run '%s': %s", sbuf_cstr(&what),
                  strerror(err));
        sbuf_printf(why, "cannot run '%s': %s", sbuf_cstr(&what), strerror(err));
        ret = -1;
    } else {
        log_line(LOG_CONTROL, NULL, "Watchdog: running '%s' (pid %ld)", sbuf_cstr(&what),
                 (long)pid);
        sbuf_appends(why, sbuf_cstr(&what));
        helpers[slot].pid = pid;
        helpers[slot].what = xstrdup(sbuf_cstr(&what));
    }
    sbuf_free(&what);
    for (size_t i = 0; i < n; i++)
        free(argv[i]);
    free(argv);
    free(copy);
    return ret;
}

static void tick_unsupervised(struct child *c, long long now)
{
    const struct alkaid_config *cfg = service_config();
    if (!cfg->watchdog || now < c->next_ping_ms) return;
    int interval = cfg->watchdog_interval;
    c->next_ping_ms = now + (long long)interval * 1000;
    char *pidfile = xasprintf("%s/%s.pid", cfg->run_dir, c->name);
    struct stat st;
    bool there = stat(pidfile, &st) == 0;
    long owner = there ? platform_pidfile_owner(pidfile) : 0;
    free(pidfile);
    if (owner > 0 && (pid_t)owner != c->pid) { /* another process: let it start */
        c->started_ms = now;
        c->answered = false;
    } else if (owner == 0) {
        c->answered = true; /* a dead process is not starting: no grace */
    }
    c->pid = (pid_t)owner;
    if (!there) { /* not running, or stopped cleanly: not ours to start */
        c->failures = 0;
        return;
    }
    bool ok = false;
    if (owner > 0) {
        const char *name = c->name;
        pthread_mutex_unlock(&lock);
        ok = ping(name, interval);
        pthread_mutex_lock(&lock);
        now = now_ms();
    } /* else: the pid file is left behind by a process that died */
    if (ok && now - c->last_action_ms >= STABLE_MS) c->backoff_ms = BACKOFF_MIN_MS;
    if (!count_ping(c, ok, now)) return;
    if (c->last_action_ms && now - c->last_action_ms < c->backoff_ms) return;
    log_error(LOG_CONTROL, NULL, "Watchdog: alkaid-%s %s", c->name,
              owner > 0 ? "stopped answering" : "died (its pid file is left behind)");
    struct sbuf why = SBUF_INIT(SBUF_NO_MAX);
    if (run_restart_command(c->name, &why) == 0)
        c->restarts++;
    else
        log_line(LOG_CONTROL, NULL, "Watchdog: not restarting alkaid-%s: %s", c->name,
                 sbuf_cstr(&why));
    sbuf_free(&why);
    c->failures = 0;
    c->last_action_ms = now;
    if (c->backoff_ms < BACKOFF_MIN_MS) c->backoff_ms = BACKOFF_MIN_MS;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* ---- the thread, start and stop ---------------------------------------------------- */

static void *watchdog_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        for (size_t i = 0; i < NCHILDREN && !stopping; i++) {
            if (supervise)
                tick_supervised(&children[i], now_ms());
            else
                tick_unsupervised(&children[i], now_ms());
        }
        reap_helpers();
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!stopping) pthread_cond_timedwait(&wake, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Stops every running child: SIGTERM, up to STOP_GRACE_MS, then SIGKILL. */
static void stop_children(void)
{
    long long now = now_ms();
    bool any = false;
    for (size_t i = 0; i < NCHILDREN; i++) {
        struct child *c = &children[i];
        if (c->state == CHILD_DOWN) continue;
        log_line(LOG_CONTROL, NULL, "Watchdog: stopping alkaid-%s (pid %ld)", c->name,
                 (long)c->pid);
        begin_stop(c, now);
        c->kill_ms = now + STOP_GRACE_MS;
        any = true;
    }
    while (any) {
        any = false;
        now = now_ms();
        for (size_t i = 0; i < NCHILDREN; i++) {
            struct child *c = &children[i];
            if (c->state == CHILD_DOWN) continue;
            int status;
            if (child_gone(c, &status)) {
                char how[128];
                if (status == -1)
                    snprintf(how, sizeof(how), "ended");
                else
                    describe_status(status, how, sizeof(how));
                c->adopted = false;
                log_line(LOG_CONTROL, NULL, "Watchdog: alkaid-%s (pid %ld) %s", c->name,
                         (long)c->pid, how);
                c->state = CHILD_DOWN;
                c->pid = 0;
                continue;
            }
            if (!c->killed && now >= c->kill_ms) {
                log_error(LOG_CONTROL, NULL,
                          "Watchdog: alkaid-%s (pid %ld) did not stop within %d s; sending "
                          "SIGKILL",
                          c->name, (long)c->pid, STOP_GRACE_MS / 1000);
                kill(c->pid, SIGKILL);
                c->killed = true;
            }
            any = true;
        }
        if (any) usleep(20000);
    }
}

/* The directory of our own executable: the services are installed next to it. */
static char *exe_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0) return NULL;
    buf[n] = '\0';
    return fs_dirname(buf);
}

int watchdog_start(const struct alkaid_config *cfg, const char **error_r)
{
    static char err[512];
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &ca);
    pthread_condattr_destroy(&ca);
    stopping = false;
    if (supervise) {
        bindir = exe_dir();
        if (bindir == NULL) {
            snprintf(err, sizeof(err), "--supervise: cannot find our own executable: %s",
                     strerror(errno));
            *error_r = err;
            return -1;
        }
        long long now = now_ms();
        for (size_t i = 0; i < NCHILDREN; i++) {
            if (!adopt_child(&children[i], now) && start_child(&children[i], now) < 0) {
                snprintf(err, sizeof(err), "--supervise: cannot start %s/alkaid-%s: %s", bindir,
                         children[i].name, strerror(errno));
                *error_r = err;
                stop_children();
                free(bindir);
                bindir = NULL;
                return -1;
            }
        }
        log_line(LOG_CONTROL, NULL,
                 "Watchdog: supervising alkaid-smtpd and alkaid-pop3imapd (ping every %d s%s)",
                 cfg->watchdog_interval, cfg->watchdog ? "" : ", pings off");
    } else if (cfg->watchdog) {
        log_line(LOG_CONTROL, NULL,
                 "Watchdog: watching alkaid-smtpd and alkaid-pop3imapd (ping every %d s)",
                 cfg->watchdog_interval);
    }
    int r = pthread_create(&thread, NULL, watchdog_thread, NULL);
    if (r != 0) {
        snprintf(err, sizeof(err), "cannot start the watchdog thread: %s", strerror(r));
        *error_r = err;
        stop_children();
        return -1;
    }
    running = true;
    return 0;
}

void watchdog_stop(void)
{
    if (running) {
        pthread_mutex_lock(&lock);
        stopping = true;
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&lock);
        pthread_join(thread, NULL);
        running = false;
    }
    pthread_mutex_lock(&lock);
    if (supervise) stop_children();
    for (size_t i = 0; i < MAX_HELPERS; i++) {
        free(helpers[i].what); /* a command still running is left to finish on its own */
        helpers[i].what = NULL;
        helpers[i].pid = 0;
    }
    pthread_mutex_unlock(&lock);
    free(bindir);
    bindir = NULL;
}

void watchdog_status(struct sbuf *json)
{
    const struct alkaid_config *cfg = service_config();
    pthread_mutex_lock(&lock);
    sbuf_printf(json,
                ",\"watchdog\":{\"supervising\":%s,\"enabled\":%s,\"interval\":%d,"
                "\"services\":{",
                supervise ? "true" : "false", cfg->watchdog ? "true" : "false",
                cfg->watchdog_interval);
    for (size_t i = 0; i < NCHILDREN; i++) {
        const struct child *c = &children[i];
        bool up = supervise ? c->state == CHILD_RUNNING : c->pid > 0;
        sbuf_printf(json, "%s\"%s\":{", i ? "," : "", c->name);
        if (c->pid > 0)
            sbuf_printf(json, "\"pid\":%ld", (long)c->pid);
        else
            sbuf_appends(json, "\"pid\":null");
        sbuf_printf(json, ",\"running\":%s,\"answering\":%s,\"restarts\":%u}",
                    up ? "true" : "false", up && c->answered && c->failures == 0 ? "true" : "false",
                    c->restarts);
    }
    sbuf_appends(json, "}}");
    pthread_mutex_unlock(&lock);
}

int watchdog_command(const char *command, const char *arg, struct sbuf *reply)
{
    if (strcmp(command, "RESTART") != 0) return -1;
    struct child *c = find_child(arg);
    if (c == NULL) {
        sbuf_printf(reply, "ERR RESTART smtpd|pop3imapd, not '%s'\n", arg);
        return 0;
    }
    pthread_mutex_lock(&lock);
    if (supervise) {
        c->restart_now = true;
        pthread_cond_broadcast(&wake);
        sbuf_printf(reply, "OK restarting alkaid-%s\n", c->name);
    } else {
        struct sbuf why = SBUF_INIT(SBUF_NO_MAX);
        if (run_restart_command(c->name, &why) == 0) {
            c->restarts++;
            sbuf_printf(reply, "OK running '%s'\n", sbuf_cstr(&why));
        } else {
            sbuf_printf(reply, "ERR not supervising (no --supervise) and %s\n", sbuf_cstr(&why));
        }
        sbuf_free(&why);
    }
    pthread_mutex_unlock(&lock);
    return 0;
}

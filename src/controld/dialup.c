/* dialup.c - the dial-up scheduler of alkaid-controld
 *
 * One thread. The line starts down and smtpd held (smtpd also starts held when [DialUp]
 * Enabled=1, and while the line is down the thread checks every few seconds that smtpd
 * is still held, so a restarted smtpd or a stray RELEASE is held again). At the next time
 * of the Schedule or Interval (or on ctl DIALUP CONNECT) it runs Connect; on success:
 * ctl RELEASE to smtpd (which flushes the queue), ETRN for each of ETRNDomains to
 * ETRNServer, then it polls smtpd's ctl STATUS every second until nothing has been sent,
 * due or received for IdleHangup (or ctl DIALUP DISCONNECT), then ctl HOLD and Disconnect.
 * A Connect that fails is logged and tried again at the next scheduled time.
 *
 * SECURITY: the commands come from the INI only; they run through spawn_program() (posix_spawn)
 * with their arguments split on spaces, never through a shell. ETRN replies are only logged.
 */
#include "dialup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "json.h"
#include "log.h"
#include "service.h"
#include "spawn_program.h"
#include "smtp_client.h"
#include "tls.h"
#include "xalloc.h"

#define DIALUP_POLL_MS    1000 /* smtpd STATUS while the line is up */
#define DIALUP_HOLD_CHECK 5    /* seconds between checks that smtpd is held while down */
#define DIALUP_KILL_GRACE 2    /* seconds between SIGTERM and SIGKILL */
#define DIALUP_ETRN_MAX   64   /* domains of ETRNDomains */
/* a hung smtpd must not hold up the line, nor controld's stop, for ctl's default 30 s */
#define DIALUP_CTL_TIMEOUT_MS 5000

enum dialup_state { DS_DOWN, DS_CONNECTING, DS_UP, DS_HANGING_UP };
static const char *const state_names[] = {"down", "connecting", "up", "hanging-up"};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool started, stopping, connect_now, disconnect_now;
    enum dialup_state state;
    long long last_connect, last_disconnect, last_failure, next;
    long long sched_from; /* the next scheduled time is the first one after this */
    unsigned connects, failures;
} d = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

/* ---- pure parts ------------------------------------------------------------------- */

long long dialup_next_time(const int *minutes, int n, long long interval, long long from)
{
    long long best = 0;
    if (interval > 0) best = from + interval;
    for (int i = 0; i < n; i++) {
        time_t t = (time_t)from;
        struct tm tm;
        localtime_r(&t, &tm);
        tm.tm_hour = minutes[i] / 60;
        tm.tm_min = minutes[i] % 60;
        tm.tm_sec = 0;
        tm.tm_isdst = -1;
        long long at = (long long)mktime(&tm);
        if (at <= from) {
            /* tomorrow at that time (mktime normalises the day; DST is re-evaluated) */
            localtime_r(&t, &tm);
            tm.tm_mday++;
            tm.tm_hour = minutes[i] / 60;
            tm.tm_min = minutes[i] % 60;
            tm.tm_sec = 0;
            tm.tm_isdst = -1;
            at = (long long)mktime(&tm);
        }
        if (at > from && (best == 0 || at < best)) best = at;
    }
    return best;
}

char **dialup_split_command(const char *line)
{
    size_t words = 0, len = strlen(line);
    for (const char *p = line; *p;) {
        while (*p == ' ')
            p++;
        if (*p == '\0') break;
        words++;
        p += strcspn(p, " ");
    }
    if (words == 0) return NULL;
    /* the pointers, then a copy of the text they point into */
    char **argv = xmalloc((words + 1) * sizeof(char *) + len + 1);
    char *text = (char *)(argv + words + 1);
    memcpy(text, line, len + 1);
    size_t i = 0;
    for (char *p = text; *p;) {
        while (*p == ' ')
            *p++ = '\0';
        if (*p == '\0') break;
        argv[i++] = p;
        p += strcspn(p, " ");
    }
    argv[i] = NULL;
    return argv;
}

/* ---- helpers ------------------------------------------------------------------------ */

static long long now_s(void)
{
    return (long long)time(NULL);
}

static void set_state(enum dialup_state st)
{
    pthread_mutex_lock(&d.lock);
    d.state = st;
    pthread_mutex_unlock(&d.lock);
}

/* Runs a command line and waits for it (at most timeout seconds): 0 when it exited 0. */
static int run_command(const char *what, const char *line, int timeout)
{
    if (line == NULL || *line == '\0') return 0; /* nothing to run: the line is "up" */
    char **argv = dialup_split_command(line);
    if (argv == NULL) return 0;
    /* a clean signal state: the program (and a pppd it leaves running) must die of the
     * SIGTERM below, or of poff's */
    pid_t pid;
    int err = spawn_program(argv, false, SPAWN_OUT_INHERIT, &pid);
    if (err != 0) {
        log_error(LOG_CONTROL, NULL, "Dial-up: cannot run the %s program %s: %s", what, argv[0],
                  strerror(err));
        free(argv);
        return -1;
    }
    int status = 0;
    long long deadline = now_s() + timeout;
    bool killed = false;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            status = -1;
            break;
        }
        long long now = now_s();
        if (!killed && __atomic_load_n(&d.stopping, __ATOMIC_ACQUIRE)) {
            /* controld is stopping: it does not wait ConnectTimeout for the program */
            log_error(LOG_CONTROL, NULL, "Dial-up: stopping the %s program %s (controld stops)",
                      what, argv[0]);
            kill(pid, SIGTERM);
            killed = true;
            deadline = now + DIALUP_KILL_GRACE;
        } else if (now >= deadline && !killed) {
            log_error(LOG_CONTROL, NULL,
                      "Dial-up: the %s program %s takes longer than %d s; "
                      "stopping it",
                      what, argv[0], timeout);
            kill(pid, SIGTERM);
            killed = true;
            deadline = now + DIALUP_KILL_GRACE;
        } else if (now >= deadline && killed) {
            kill(pid, SIGKILL);
            deadline = now + 3600;
        }
        usleep(50 * 1000);
    }
    int rc = -1;
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && !killed)
        rc = 0;
    else if (status != -1 && WIFEXITED(status))
        log_error(LOG_CONTROL, NULL, "Dial-up: the %s program %s exited with status %d", what,
                  argv[0], WEXITSTATUS(status));
    else if (status != -1 && WIFSIGNALED(status))
        log_error(LOG_CONTROL, NULL, "Dial-up: the %s program %s was killed by signal %d", what,
                  argv[0], WTERMSIG(status));
    free(argv);
    return rc;
}

/* A ctl command to smtpd; the reply (xmalloc'ed) or NULL. */
static char *smtpd_ctl(const struct alkaid_config *cfg, const char *command)
{
    char *path = xasprintf("%s/smtpd.sock", cfg->run_dir);
    struct sbuf reply = SBUF_INIT(1 << 20);
    const char *error = NULL;
    int r = ctl_request_timeout(path, command, DIALUP_CTL_TIMEOUT_MS, &reply, &error);
    free(path);
    if (r < 0) {
        sbuf_free(&reply);
        return NULL;
    }
    return sbuf_steal(&reply);
}

static void smtpd_hold(const struct alkaid_config *cfg, bool hold)
{
    char *reply = smtpd_ctl(cfg, hold ? "HOLD" : "RELEASE");
    if (reply == NULL)
        log_line(LOG_CONTROL, NULL, "Dial-up: smtpd did not answer ctl %s (not running?)",
                 hold ? "HOLD" : "RELEASE");
    else
        log_line(LOG_CONTROL, NULL, "Dial-up: smtpd: %.*s", (int)strcspn(reply, "\n"), reply);
    free(reply);
}

struct smtpd_view {
    bool ok, held;
    long long sending, due, connections;
};

static struct smtpd_view smtpd_status(const struct alkaid_config *cfg)
{
    struct smtpd_view v = {0};
    char *reply = smtpd_ctl(cfg, "STATUS");
    if (reply == NULL) return v;
    struct json *j = json_parse(reply, strlen(reply), NULL);
    free(reply);
    if (j == NULL) return v;
    v.ok = true;
    v.held = json_bool(json_path(j, "outbound.held"), false);
    v.sending = json_int(json_path(j, "outbound.sending"), 0);
    v.due = json_int(json_path(j, "outbound.due"), 0);
    v.connections = json_int(json_path(j, "smtp.connections"), 0);
    json_free(&j);
    return v;
}

/* ETRN for every domain of ETRNDomains at ETRNServer. */
static void send_etrn(const struct alkaid_config *cfg)
{
    const struct dialup_config *du = &cfg->dialup;
    if (du->etrn_server[0] == '\0' || du->etrn_domains[0] == '\0') return;
    char host[300];
    snprintf(host, sizeof(host), "%s", du->etrn_server);
    char port_s[8] = "25";
    char *colon = strrchr(host, ':');
    if (host[0] == '[') {
        char *close = strchr(host, ']');
        if (close) {
            if (close[1] == ':') snprintf(port_s, sizeof(port_s), "%s", close + 2);
            *close = '\0';
            memmove(host, host + 1, strlen(host));
        }
    } else if (colon && strchr(host, ':') == colon) {
        snprintf(port_s, sizeof(port_s), "%s", colon + 1);
        *colon = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gr = getaddrinfo(host, port_s, &hints, &ai);
    if (gr != 0 || ai == NULL) {
        log_error(LOG_CONTROL, NULL, "Dial-up: ETRN: cannot resolve [DialUp] ETRNServer %s: %s",
                  host, gai_strerror(gr));
        return;
    }
    const char *error = NULL;
    SSL_CTX *tls = tls_client_ctx_new(cfg->queue.ca_file, &error);
    struct smtp_client_options opts = {
        .helo_name = cfg->queue.helo_name[0] ? cfg->queue.helo_name : cfg->hostname,
        .tls = tls ? TLS_MODE_MAY : TLS_MODE_NONE,
        .tls_ctx = tls,
        .connect_timeout_ms = cfg->queue.connect_timeout * 1000,
        .command_timeout_ms = cfg->queue.command_timeout * 1000,
        .data_timeout_ms = cfg->queue.data_timeout * 1000,
        .interrupt = &d.stopping, /* a stop does not wait for a silent server */
    };
    struct smtp_client *c = NULL;
    struct smtp_result res;
    for (struct addrinfo *a = ai; a && c == NULL; a = a->ai_next) {
        char ip[INET6_ADDRSTRLEN] = "";
        const void *src = a->ai_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if (inet_ntop(a->ai_family, src, ip, sizeof(ip)) == NULL) continue;
        c = smtp_client_open(host, ip, atoi(port_s), &opts, &res);
        if (c == NULL) log_error(LOG_CONTROL, ip, "Dial-up: ETRN: %s", res.text);
    }
    freeaddrinfo(ai);
    if (c != NULL) {
        char *list = xstrdup(du->etrn_domains);
        char *save = NULL;
        for (char *dom = strtok_r(list, " ,", &save); dom; dom = strtok_r(NULL, " ,", &save)) {
            char *line = xasprintf("ETRN %s", dom);
            int code = smtp_client_command(c, line, &opts, &res);
            free(line);
            if (code >= 250 && code <= 253)
                log_line(LOG_CONTROL, c->ip, "Dial-up: ETRN %s at %s: %s", dom, c->host, res.text);
            else
                log_error(LOG_CONTROL, c->ip, "Dial-up: ETRN %s at %s refused: %s", dom, c->host,
                          res.text);
            if (code < 0) break;
        }
        free(list);
        smtp_client_close(&c);
    }
    SSL_CTX_free(tls);
}

/* ---- the line ----------------------------------------------------------------------- */

/* While up: true when it is time to hang up (idle, asked to, or stopping). */
static bool wait_idle(void)
{
    long long idle_since = now_s();
    for (;;) {
        pthread_mutex_lock(&d.lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += DIALUP_POLL_MS * 1000000L;
        while (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        if (!d.stopping && !d.disconnect_now) pthread_cond_timedwait(&d.wake, &d.lock, &ts);
        bool stop = d.stopping, hangup = d.disconnect_now;
        d.disconnect_now = false;
        pthread_mutex_unlock(&d.lock);
        if (stop) return false;
        if (hangup) {
            log_line(LOG_CONTROL, NULL, "Dial-up: hanging up (ctl DIALUP DISCONNECT)");
            return true;
        }
        const struct alkaid_config *cfg = service_config();
        struct smtpd_view v = smtpd_status(cfg);
        if (v.ok && v.held) {
            /* restarted while the line is up (it starts held): its mail would wait, "due",
             * and keep the line from ever being idle */
            log_line(LOG_CONTROL, NULL, "Dial-up: smtpd was held while the line is up");
            smtpd_hold(cfg, false);
            idle_since = now_s();
        }
        if (v.ok && (v.sending > 0 || v.due > 0 || v.connections > 0)) idle_since = now_s();
        if (now_s() - idle_since >= cfg->dialup.idle_hangup) {
            log_line(LOG_CONTROL, NULL, "Dial-up: idle for %d s; hanging up",
                     cfg->dialup.idle_hangup);
            return true;
        }
    }
}

static void line_session(void)
{
    const struct alkaid_config *cfg = service_config();
    set_state(DS_CONNECTING);
    log_line(LOG_CONTROL, NULL, "Dial-up: connecting");
    if (run_command("Connect", cfg->dialup.connect, cfg->dialup.connect_timeout) < 0) {
        pthread_mutex_lock(&d.lock);
        d.state = DS_DOWN;
        d.failures++;
        d.last_failure = now_s();
        pthread_mutex_unlock(&d.lock);
        log_error(LOG_CONTROL, NULL,
                  "Dial-up: the line could not be brought up; trying again at the next "
                  "scheduled time");
        return;
    }
    pthread_mutex_lock(&d.lock);
    d.state = DS_UP;
    d.connects++;
    d.last_connect = now_s();
    d.disconnect_now = false;
    pthread_mutex_unlock(&d.lock);
    log_line(LOG_CONTROL, NULL, "Dial-up: the line is up");
    smtpd_hold(cfg, false); /* RELEASE flushes the queue */
    send_etrn(cfg);
    if (!wait_idle()) return; /* stopping: leave the line as it is */
    cfg = service_config();
    set_state(DS_HANGING_UP);
    smtpd_hold(cfg, true);
    run_command("Disconnect", cfg->dialup.disconnect, cfg->dialup.connect_timeout);
    pthread_mutex_lock(&d.lock);
    d.state = DS_DOWN;
    d.last_disconnect = now_s();
    pthread_mutex_unlock(&d.lock);
    log_line(LOG_CONTROL, NULL, "Dial-up: the line is down");
}

static void *dialup_main(void *arg)
{
    (void)arg;
    bool was_enabled = false;
    long long last_hold_check = 0;
    for (;;) {
        const struct alkaid_config *cfg = service_config();
        bool enabled = cfg->dialup.enabled;
        if (enabled != was_enabled) {
            if (enabled) {
                log_line(LOG_CONTROL, NULL, "Dial-up: the line is down; smtpd's queue is held");
                smtpd_hold(cfg, true);
                last_hold_check = now_s();
                pthread_mutex_lock(&d.lock);
                d.sched_from = now_s();
                pthread_mutex_unlock(&d.lock);
            } else if (was_enabled) {
                log_line(LOG_CONTROL, NULL, "Dial-up: turned off; smtpd's queue is released");
                smtpd_hold(cfg, false);
            }
            was_enabled = enabled;
        }
        int mins[CONFIG_MAX_SCHEDULE];
        int n = config_parse_schedule(cfg->dialup.schedule, mins, CONFIG_MAX_SCHEDULE);
        if (n < 0) n = 0;

        pthread_mutex_lock(&d.lock);
        long long next =
            enabled ? dialup_next_time(mins, n, cfg->dialup.interval, d.sched_from) : 0;
        d.next = next;
        long long now = now_s();
        bool go = enabled && (d.connect_now || (next != 0 && next <= now));
        if (!go && !d.stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1; /* re-read the settings and the clock every second */
            pthread_cond_timedwait(&d.wake, &d.lock, &ts);
        }
        bool stop = d.stopping;
        if (go) {
            if (d.connect_now) log_line(LOG_CONTROL, NULL, "Dial-up: connect asked over ctl");
            d.connect_now = false;
            d.sched_from = now;
        }
        pthread_mutex_unlock(&d.lock);
        if (stop) break;
        if (go) {
            line_session();
            pthread_mutex_lock(&d.lock);
            stop = d.stopping;
            d.disconnect_now = false;
            /* a session that ran past scheduled times does not make up for them */
            if (d.sched_from < now_s() - 1) d.sched_from = now_s() - 1;
            pthread_mutex_unlock(&d.lock);
            if (stop) break;
            last_hold_check = now_s();
        } else if (enabled && now_s() - last_hold_check >= DIALUP_HOLD_CHECK) {
            /* the line is down: smtpd must be held (it may have been restarted) */
            last_hold_check = now_s();
            struct smtpd_view v = smtpd_status(cfg);
            if (v.ok && !v.held) {
                log_line(LOG_CONTROL, NULL, "Dial-up: smtpd was not held while the line is down");
                smtpd_hold(cfg, true);
            }
        }
    }
    return NULL;
}

/* ---- the interface ------------------------------------------------------------------ */

/* Says in log/error/ (and on stderr in the foreground) when a program of [DialUp] cannot
 * be run: found at start and at each reload, not only when the line should come up. */
static void check_programs(const struct alkaid_config *cfg)
{
    if (!cfg->dialup.enabled) return;
    const char *keys[] = {"Connect", "Disconnect"};
    const char *lines[] = {cfg->dialup.connect, cfg->dialup.disconnect};
    for (size_t i = 0; i < 2; i++) {
        if (lines[i] == NULL || *lines[i] == '\0') continue;
        char **argv = dialup_split_command(lines[i]);
        if (argv == NULL) continue;
        struct stat st;
        const char *why = NULL;
        if (stat(argv[0], &st) < 0)
            why = strerror(errno);
        else if (!S_ISREG(st.st_mode))
            why = "not a regular file";
        else if (access(argv[0], X_OK) < 0)
            why = "not executable";
        if (why)
            log_error(LOG_CONTROL, NULL, "%s: [DialUp] %s: %s: %s (the line cannot be %s)",
                      cfg->ini_path, keys[i], argv[0], why, i == 0 ? "brought up" : "hung up");
        free(argv);
    }
}

int dialup_start(const struct alkaid_config *cfg, const char **error_r)
{
    check_programs(cfg);
    d.stopping = false;
    d.state = DS_DOWN;
    d.sched_from = now_s();
    if (pthread_create(&d.thread, NULL, dialup_main, NULL) != 0) {
        *error_r = "cannot start the dial-up thread";
        return -1;
    }
    d.started = true;
    return 0;
}

void dialup_reload(const struct alkaid_config *cfg)
{
    check_programs(cfg);
    pthread_mutex_lock(&d.lock);
    pthread_cond_broadcast(&d.wake);
    pthread_mutex_unlock(&d.lock);
}

void dialup_stop(void)
{
    if (!d.started) return;
    pthread_mutex_lock(&d.lock);
    __atomic_store_n(&d.stopping, true, __ATOMIC_RELEASE); /* also read without the lock */
    pthread_cond_broadcast(&d.wake);
    pthread_mutex_unlock(&d.lock);
    pthread_join(d.thread, NULL);
    d.started = false;
}

void dialup_status(struct sbuf *json)
{
    bool enabled = service_config()->dialup.enabled;
    pthread_mutex_lock(&d.lock);
    sbuf_printf(json,
                ",\"dialup\":{\"enabled\":%s,\"state\":\"%s\",\"last_connect\":%lld"
                ",\"last_disconnect\":%lld,\"last_failure\":%lld,\"next\":%lld"
                ",\"connects\":%u,\"failures\":%u}",
                enabled ? "true" : "false", enabled ? state_names[d.state] : "off", d.last_connect,
                d.last_disconnect, d.last_failure, enabled ? d.next : 0, d.connects, d.failures);
    pthread_mutex_unlock(&d.lock);
}

int dialup_command(const char *command, const char *arg, struct sbuf *reply)
{
    if (strcmp(command, "DIALUP") != 0) return -1;
    if (!service_config()->dialup.enabled) {
        sbuf_appends(reply, "ERR dial-up is off ([DialUp] Enabled=0)\n");
        return 0;
    }
    pthread_mutex_lock(&d.lock);
    if (arg && strcasecmp(arg, "CONNECT") == 0) {
        if (d.state == DS_DOWN) {
            d.connect_now = true;
            sbuf_appends(reply, "OK connecting\n");
        } else {
            sbuf_printf(reply, "OK the line is already %s\n", state_names[d.state]);
        }
    } else if (arg && strcasecmp(arg, "DISCONNECT") == 0) {
        if (d.state == DS_UP) {
            d.disconnect_now = true;
            sbuf_appends(reply, "OK hanging up\n");
        } else {
            sbuf_printf(reply, "OK the line is %s\n", state_names[d.state]);
        }
    } else {
        sbuf_appends(reply, "ERR usage: DIALUP CONNECT | DISCONNECT\n");
    }
    pthread_cond_broadcast(&d.wake);
    pthread_mutex_unlock(&d.lock);
    return 0;
}

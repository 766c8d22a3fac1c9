/* queue.c - the FORWARD queue runner: schedule, claims, delivery, retries, bounces
 *
 * The schedule: a hash of every queue id this process knows, and a min-heap of those
 * waiting, by next try. queue_notify() puts a new message at the front; a scanner
 * thread reads mail/FORWARD/ at start and every [Queue] ScanInterval for files put there
 * by others (admin tools, other servers in a cluster) and closes idle connections.
 *
 * One delivery: open <id>.tmp, take its lock, check it is still the file of that name,
 * rename it to <id>.tm$ (the claim); read the envelope; group the recipients by domain
 * (all in one group with a smarthost); for each group find the route (MX or smarthost),
 * take a connection to it from the pool or open one, send; then per recipient: done,
 * failed for good (a DSN), or still to do (the file is rewritten without the others,
 * with the next try from [Queue] RetrySchedule; after GiveUpAfter a DSN instead).
 *
 * SECURITY: the lock is what makes a claim safe between processes and servers: a file
 * is only renamed, rewritten or removed by whoever holds it, and start-up recovery
 * leaves locked .tm$ files alone. A crash between sending and removing the file makes
 * the message go out twice, never not at all.
 */
#include "queue.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "conn.h"
#include "dns.h"
#include "fsutil.h"
#include "log.h"
#include "service.h"
#include "smtp_client.h"
#include "smtpd.h"
#include "spool.h"
#include "tls.h"
#include "xalloc.h"

#define QUEUE_BUCKETS       4096
#define QUEUE_IDLE_CLOSE_MS 5000  /* an unused connection is closed after this */
#define QUEUE_CLAIM_RETRY   300   /* seconds: a file we could not claim or finish */
#define QUEUE_POOL_WAIT_MS  10000 /* waiting for a connection slot to a destination */

struct qentry {
    char *id;
    long long next_try;
    size_t heap_pos; /* SIZE_MAX when not in the heap */
    bool running;
    bool forced; /* FLUSH: ignore the NEXT-TRY in the file */
    char *etrn;  /* ETRN asked for these domains ("d @d ..."): send their recipients */
    struct qentry *hnext;
};

/* What a reload changes, kept alive until the process stops (reloads are rare). */
struct runtime {
    const struct alkaid_config *cfg;
    long long schedule[CONFIG_MAX_RETRIES];
    int nschedule;
    struct dns_resolver *dns;
    SSL_CTX *tls;
    struct runtime *older;
};

/* Idle connections, per destination key. */
struct pooled {
    char *key;
    struct smtp_client *client;
    struct pooled *next;
};
struct busy {
    struct smtp_client *client;
    struct busy *next;
};
struct dest {
    char *key;
    int active; /* connections open (idle or busy) */
    struct dest *next;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work;   /* workers: something may be due */
    pthread_cond_t pooled; /* a connection came back or closed */
    pthread_cond_t scan;   /* the scanner: time to look */
    struct qentry *buckets[QUEUE_BUCKETS];
    struct qentry **heap;
    size_t nheap, capheap, nentries, nrunning;
    bool started, stopping, held, scan_now;
    pthread_t *threads;
    int nthreads;
    pthread_t scanner;
    char *dir;
    struct runtime *rt;
    struct pooled *idle;
    struct busy *busy; /* connections in use, cut when the service stops */
    struct dest *dests;
    uint64_t sent, bounced, deferred, attempts;
} q = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .pooled = PTHREAD_COND_INITIALIZER,
    .scan = PTHREAD_COND_INITIALIZER,
};

static void *worker_main(void *arg);

/* Set when the service stops: every outbound wait gives up. */
static bool interrupt_flag;

long long queue_retry_delay(const long long *schedule, int n, unsigned attempts)
{
    if (n <= 0) return 3600;
    unsigned i = attempts == 0 ? 0 : attempts - 1;
    if (i >= (unsigned)n) i = (unsigned)n - 1;
    return schedule[i];
}

/* ---- the schedule (q.lock held) ---------------------------------------------------- */

static unsigned hash_id(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % QUEUE_BUCKETS;
}

static struct qentry *find(const char *id)
{
    for (struct qentry *e = q.buckets[hash_id(id)]; e; e = e->hnext)
        if (strcmp(e->id, id) == 0) return e;
    return NULL;
}

static void heap_swap(size_t a, size_t b)
{
    struct qentry *t = q.heap[a];
    q.heap[a] = q.heap[b];
    q.heap[b] = t;
    q.heap[a]->heap_pos = a;
    q.heap[b]->heap_pos = b;
}

static void heap_up(size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (q.heap[p]->next_try <= q.heap[i]->next_try) break;
        heap_swap(i, p);
        i = p;
    }
}

static void heap_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q.nheap && q.heap[l]->next_try < q.heap[m]->next_try) m = l;
        if (r < q.nheap && q.heap[r]->next_try < q.heap[m]->next_try) m = r;
        if (m == i) return;
        heap_swap(i, m);
        i = m;
    }
}

static void heap_push(struct qentry *e)
{
    if (q.nheap == q.capheap) {
        q.capheap = q.capheap ? q.capheap * 2 : 256;
        q.heap = xreallocarray(q.heap, q.capheap, sizeof(*q.heap));
    }
    e->heap_pos = q.nheap;
    q.heap[q.nheap++] = e;
    heap_up(e->heap_pos);
}

static void heap_remove(struct qentry *e)
{
    size_t i = e->heap_pos;
    if (i == SIZE_MAX) return;
    q.nheap--;
    if (i != q.nheap) {
        q.heap[i] = q.heap[q.nheap];
        q.heap[i]->heap_pos = i;
        heap_down(i);
        heap_up(i);
    }
    e->heap_pos = SIZE_MAX;
}

static void reschedule(struct qentry *e, long long when)
{
    heap_remove(e);
    e->next_try = when;
    heap_push(e);
}

/* Adds id (or moves it earlier); the entry. */
static struct qentry *add(const char *id, long long next_try)
{
    struct qentry *e = find(id);
    if (e) {
        if (!e->running && e->next_try > next_try) reschedule(e, next_try);
        return e;
    }
    e = xcalloc(1, sizeof(*e));
    e->id = xstrdup(id);
    e->heap_pos = SIZE_MAX;
    unsigned h = hash_id(id);
    e->hnext = q.buckets[h];
    q.buckets[h] = e;
    q.nentries++;
    e->next_try = next_try;
    heap_push(e);
    return e;
}

static void forget(struct qentry *e)
{
    heap_remove(e);
    struct qentry **pp = &q.buckets[hash_id(e->id)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    q.nentries--;
    free(e->id);
    free(e->etrn);
    free(e);
}

/* ---- connections ----------------------------------------------------------------- */

static struct dest *dest_get(const char *key)
{
    for (struct dest *d = q.dests; d; d = d->next)
        if (strcmp(d->key, key) == 0) return d;
    struct dest *d = xcalloc(1, sizeof(*d));
    d->key = xstrdup(key);
    d->next = q.dests;
    q.dests = d;
    return d;
}

/* An idle connection to key, or NULL with a slot reserved to open one. */
static struct smtp_client *pool_take(const char *key, int limit)
{
    pthread_mutex_lock(&q.lock);
    int64_t until = conn_now_ms() + QUEUE_POOL_WAIT_MS;
    struct smtp_client *c = NULL;
    for (;;) {
        for (struct pooled **pp = &q.idle; *pp; pp = &(*pp)->next) {
            if (strcmp((*pp)->key, key) == 0) {
                struct pooled *p = *pp;
                *pp = p->next;
                c = p->client;
                free(p->key);
                free(p);
                goto out;
            }
        }
        struct dest *d = dest_get(key);
        if (d->active < limit || q.stopping || conn_now_ms() >= until) {
            d->active++;
            goto out;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&q.pooled, &q.lock, &ts);
    }
out:
    pthread_mutex_unlock(&q.lock);
    return c;
}

/* Gives a connection (or the slot, when c is NULL) back. */
static void pool_give(const char *key, struct smtp_client *c, int max_per_conn)
{
    if (c && (!c->usable || c->transactions >= (unsigned)max_per_conn)) smtp_client_close(&c);
    pthread_mutex_lock(&q.lock);
    if (c && !q.stopping) {
        struct pooled *p = xcalloc(1, sizeof(*p));
        p->key = xstrdup(key);
        p->client = c;
        p->next = q.idle;
        q.idle = p;
        c = NULL;
    } else {
        dest_get(key)->active--;
    }
    pthread_cond_broadcast(&q.pooled);
    pthread_mutex_unlock(&q.lock);
    if (c) smtp_client_close(&c);
}

/* Closes connections idle for too long (all of them with everything = true). */
static void pool_reap(bool everything)
{
    struct pooled *closing = NULL;
    int64_t now = conn_now_ms();
    pthread_mutex_lock(&q.lock);
    for (struct pooled **pp = &q.idle; *pp;) {
        struct pooled *p = *pp;
        if (everything || now - p->client->idle_since >= QUEUE_IDLE_CLOSE_MS) {
            *pp = p->next;
            dest_get(p->key)->active--;
            p->next = closing;
            closing = p;
        } else {
            pp = &p->next;
        }
    }
    pthread_cond_broadcast(&q.pooled);
    pthread_mutex_unlock(&q.lock);
    while (closing) {
        struct pooled *p = closing;
        closing = p->next;
        smtp_client_close(&p->client);
        free(p->key);
        free(p);
    }
}

static void busy_add(struct smtp_client *c)
{
    struct busy *b = xcalloc(1, sizeof(*b));
    b->client = c;
    pthread_mutex_lock(&q.lock);
    b->next = q.busy;
    q.busy = b;
    if (q.stopping) conn_shutdown(c->conn);
    pthread_mutex_unlock(&q.lock);
}

static void busy_remove(struct smtp_client *c)
{
    pthread_mutex_lock(&q.lock);
    for (struct busy **pp = &q.busy; *pp; pp = &(*pp)->next) {
        if ((*pp)->client == c) {
            struct busy *b = *pp;
            *pp = b->next;
            free(b);
            break;
        }
    }
    pthread_mutex_unlock(&q.lock);
}

static bool stopping(void)
{
    pthread_mutex_lock(&q.lock);
    bool s = q.stopping;
    pthread_mutex_unlock(&q.lock);
    return s;
}

/* ---- one delivery ------------------------------------------------------------------ */

struct rcpt_state {
    char *address;
    const char *domain;
    struct smtp_result res;
    char remote_mta[256];
    bool tried;     /* res holds this attempt's outcome */
    bool etrn_wait; /* an ETRN queue domain not asked for: kept, not tried */
};

static const char *tls_policy_for(const struct alkaid_config *cfg, const char *domain)
{
    const char *p = cfg->queue.tls_policy;
    size_t dlen = strlen(domain);
    static __thread char mode[16];
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, " ,");
        const char *eq = memchr(p, '=', len);
        if (eq) {
            size_t klen = (size_t)(eq - p);
            bool match = false;
            if (p[0] == '.') /* ".example.com": every subdomain */
                match = dlen > klen && strncasecmp(domain + dlen - klen, p, klen) == 0;
            else
                match = klen == dlen && strncasecmp(p, domain, klen) == 0;
            if (match) {
                snprintf(mode, sizeof(mode), "%.*s", (int)(len - klen - 1), eq + 1);
                return mode;
            }
        }
        p += len;
    }
    return cfg->queue.tls;
}

static void set_all(struct rcpt_state **rs, size_t n, enum smtp_outcome o, const char *status,
                    const char *text)
{
    for (size_t i = 0; i < n; i++) {
        rs[i]->res.outcome = o;
        snprintf(rs[i]->res.status, sizeof(rs[i]->res.status), "%s", status);
        snprintf(rs[i]->res.text, sizeof(rs[i]->res.text), "%s", text);
        rs[i]->res.remote = false;
        rs[i]->remote_mta[0] = '\0';
        rs[i]->tried = true;
    }
}

/* Sends the message to the recipients of one destination. */
static void deliver_group(struct runtime *rt, const struct queue_envelope *env, int fd,
                          uint64_t msg_offset, const char *domain, bool by_mx,
                          struct rcpt_state **rs, size_t n)
{
    const struct alkaid_config *cfg = rt->cfg;
    bool smarthost = cfg->smarthost[0] != '\0' && !by_mx;
    struct dns_mx route;
    char host[300];
    int port = 25;
    enum dns_status ds;
    if (smarthost) {
        snprintf(host, sizeof(host), "%s", cfg->smarthost);
        char *colon = strrchr(host, ':');
        if (host[0] == '[') {
            char *close = strchr(host, ']');
            if (close) {
                if (close[1] == ':') port = atoi(close + 2);
                *close = '\0';
                memmove(host, host + 1, strlen(host));
            }
        } else if (colon && strchr(host, ':') == colon) {
            port = atoi(colon + 1);
            *colon = '\0';
        }
        unsigned char a[16];
        if (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1) {
            memset(&route, 0, sizeof(route));
            route.hosts = xcalloc(1, sizeof(*route.hosts));
            route.nhosts = 1;
            route.hosts[0].name = xstrdup(host);
            route.hosts[0].addrs = xcalloc(1, sizeof(char *));
            route.hosts[0].addrs[0] = xstrdup(host);
            route.hosts[0].naddrs = 1;
            ds = route.status = DNS_OK;
        } else {
            ds = dns_resolve_host(rt->dns, host, &route);
        }
    } else {
        ds = dns_resolve_mx(rt->dns, domain, &route);
    }
    char why[400];
    if (ds != DNS_OK || route.null_mx || route.nhosts == 0) {
        if (ds == DNS_TEMPFAIL) {
            snprintf(why, sizeof(why), "cannot find the mail route for %s now: %s",
                     smarthost ? host : domain, route.error[0] ? route.error : "DNS failure");
            set_all(rs, n, SMTP_OUT_TEMP, "4.4.3", why);
        } else if (route.null_mx) {
            snprintf(why, sizeof(why), "the domain %s accepts no mail (null MX)", domain);
            set_all(rs, n, SMTP_OUT_PERM, "5.1.10", why);
        } else if (smarthost) {
            /* a smarthost name that does not resolve is a configuration error: wait */
            snprintf(why, sizeof(why), "[SMTP] Smarthost %s: %s", host,
                     ds == DNS_NXDOMAIN ? "no such host" : "has no address");
            set_all(rs, n, SMTP_OUT_TEMP, "4.4.3", why);
        } else {
            snprintf(why, sizeof(why), "the domain %s %s", domain,
                     ds == DNS_NXDOMAIN  ? "does not exist"
                     : ds == DNS_BADNAME ? "is not a valid domain name"
                                         : "has no mail server (no MX or address record)");
            set_all(rs, n, SMTP_OUT_PERM, ds == DNS_NXDOMAIN ? "5.1.2" : "5.1.2", why);
        }
        dns_mx_clear(&route);
        return;
    }

    enum config_tls_mode tls_mode;
    const char *mode_name =
        smarthost ? (cfg->smarthost_tls[0] ? cfg->smarthost_tls
                                           : (cfg->smarthost_user[0] ? "require" : "may"))
                  : tls_policy_for(cfg, domain);
    tls_mode = (enum config_tls_mode)config_tls_mode(mode_name);
    struct smtp_client_options opts = {
        .helo_name = cfg->queue.helo_name[0] ? cfg->queue.helo_name : cfg->hostname,
        .tls = tls_mode,
        .tls_ctx = rt->tls,
        .auth_user = smarthost ? cfg->smarthost_user : NULL,
        .auth_password = smarthost ? cfg->smarthost_password : NULL,
        .connect_timeout_ms = cfg->queue.connect_timeout * 1000,
        .command_timeout_ms = cfg->queue.command_timeout * 1000,
        .data_timeout_ms = cfg->queue.data_timeout * 1000,
        .interrupt = &interrupt_flag,
    };
    const char *from = env->sender;
    if (smarthost && cfg->relay_from[0] && env->sender[0]) from = cfg->relay_from;

    char key[400];
    snprintf(key, sizeof(key), "%s|%s", smarthost ? "smarthost" : "mx",
             smarthost ? cfg->smarthost : domain);

    char **addrs = xcalloc(n, sizeof(char *));
    struct smtp_result *res = xcalloc(n, sizeof(*res));
    struct smtp_result last = {.outcome = SMTP_OUT_TEMP};
    snprintf(last.status, sizeof(last.status), "4.4.1");
    snprintf(last.text, sizeof(last.text), "no mail server of %s could be reached",
             smarthost ? host : domain);
    size_t todo = n; /* rs[0..todo) still need this attempt */
    char last_mta[256] = "";

    /* first, a connection already open to this destination */
    struct smtp_client *c = pool_take(key, cfg->queue.per_domain);
    size_t hi = 0, ai = 0;
    if (c) busy_add(c);
    while (todo > 0) {
        if (c == NULL) {
            if (stopping()) {
                snprintf(last.text, sizeof(last.text), "interrupted: the service is stopping");
                snprintf(last.status, sizeof(last.status), "4.3.2");
                last.outcome = SMTP_OUT_TEMP;
                last.remote = false;
                last_mta[0] = '\0';
                break;
            }
            /* the next address of the next host */
            while (hi < route.nhosts && ai >= route.hosts[hi].naddrs) {
                hi++;
                ai = 0;
            }
            if (hi >= route.nhosts) break;
            struct dns_mx_host *h = &route.hosts[hi];
            const char *ip = h->addrs[ai++];
            opts.verify_name = h->name;
            __atomic_fetch_add(&q.attempts, 1, __ATOMIC_RELAXED);
            c = smtp_client_open(h->name, ip, port, &opts, &last);
            if (c == NULL) {
                log_line(LOG_SMTP, ip, "%s: %s", env->id, last.text);
                snprintf(last_mta, sizeof(last_mta), "%s", h->name);
                continue;
            }
            busy_add(c);
        }
        for (size_t i = 0; i < todo; i++)
            addrs[i] = rs[i]->address;
        memset(res, 0, todo * sizeof(*res));
        enum smtp_outcome co =
            smtp_client_send(c, from, addrs, todo, fd, msg_offset, env->size, &opts, res);
        /* the recipients this host answered for stay answered; after a lost connection
         * the others go on to the next address */
        for (size_t i = 0; i < todo; i++) {
            struct rcpt_state *r = rs[i];
            r->res = res[i];
            r->tried = true;
            snprintf(r->remote_mta, sizeof(r->remote_mta), "%s", c->host);
            if (co != SMTP_OUT_OK && !res[i].remote) continue;
            if (res[i].outcome == SMTP_OUT_OK)
                log_line(LOG_SMTP, c->ip, "Sent %s from <%s> to <%s> via %s[%s]%s: %s", env->id,
                         env->sender, r->address, c->host, c->ip, c->tls ? " with TLS" : "",
                         res[i].text);
            else
                log_line(LOG_SMTP, c->ip, "%s to <%s> %s by %s[%s]: %s", env->id, r->address,
                         res[i].outcome == SMTP_OUT_PERM ? "refused" : "deferred", c->host, c->ip,
                         res[i].text);
        }
        if (co != SMTP_OUT_OK) {
            log_line(LOG_SMTP, c->ip, "%s: %s", env->id, res[0].text);
            last = res[0];
            snprintf(last_mta, sizeof(last_mta), "%s", c->host);
            busy_remove(c);
            smtp_client_close(&c); /* this worker keeps its slot for the next address */
            /* those still to do first, the answered ones after them */
            size_t w = 0;
            struct rcpt_state **tmp = xcalloc(todo, sizeof(*tmp));
            for (size_t i = 0; i < todo; i++)
                if (!rs[i]->res.remote) tmp[w++] = rs[i];
            size_t rest = w;
            for (size_t i = 0; i < todo; i++)
                if (rs[i]->res.remote) tmp[w++] = rs[i];
            memcpy(rs, tmp, todo * sizeof(*rs));
            free(tmp);
            todo = rest;
            continue;
        }
        todo = 0;
    }
    if (c) busy_remove(c);
    pool_give(key, c, cfg->queue.max_per_conn); /* the connection, or just the slot */
    for (size_t i = 0; i < todo; i++) {
        rs[i]->res = last;
        snprintf(rs[i]->remote_mta, sizeof(rs[i]->remote_mta), "%s", last_mta);
        rs[i]->tried = true;
    }
    free(addrs);
    free(res);
    dns_mx_clear(&route);
}

static char *queue_path(const char *id, const char *suffix)
{
    return xasprintf("%s/%s%s", q.dir, id, suffix);
}

/* The errors line kept in the file for a recipient still to do. */
static char *error_line(const struct rcpt_state *r)
{
    return xasprintf("%s %s %s", r->res.status, r->remote_mta[0] ? r->remote_mta : "-",
                     r->res.text);
}

static void to_bounce(const struct rcpt_state *r, struct bounce_rcpt *b)
{
    memset(b, 0, sizeof(*b));
    b->address = r->address;
    b->status = r->res.status;
    if (r->res.remote) {
        b->diagnostic = r->res.text;
        b->remote_mta = r->remote_mta[0] ? r->remote_mta : NULL;
    } else {
        b->reason = r->res.text;
    }
}

/* Moves the claimed file to failed/ (the bounced message is kept there). */
static void keep_failed(int fd, const char *claimed, const struct queue_envelope *env,
                        uint64_t msg_offset, char **rcpts, size_t n)
{
    char *failed = xasprintf("%s/failed", q.dir);
    fs_mkdirs(failed, 0750);
    char suffix[32];
    snprintf(suffix, sizeof(suffix), ".%lld", (long long)time(NULL));
    if (rcpts == NULL) {
        char *to = xasprintf("%s/%s%s", failed, env->id, suffix);
        if (rename(claimed, to) < 0) {
            log_error(LOG_SMTP, NULL, "Cannot move %s to %s: %s", claimed, to, strerror(errno));
            unlink(claimed);
        }
        free(to);
    } else {
        struct queue_envelope copy = *env;
        copy.rcpts = rcpts;
        copy.nrcpts = n;
        copy.errors = NULL;
        int nfd = -1;
        if (spool_queue_rewrite(failed, &copy, fd, msg_offset, suffix, &nfd) == 0) close(nfd);
    }
    free(failed);
}

enum claim_result { CLAIM_OK, CLAIM_GONE, CLAIM_BUSY };

static enum claim_result claim(const char *id, int *fd_r, char **claimed_r)
{
    char *path = queue_path(id, ".tmp");
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        free(path);
        return CLAIM_GONE;
    }
    if (spool_queue_lock(fd) < 0) {
        close(fd);
        free(path);
        return CLAIM_BUSY;
    }
    struct stat a, b;
    if (fstat(fd, &a) < 0 || stat(path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
        /* the name now belongs to a newer version: not the file we locked */
        close(fd);
        free(path);
        return CLAIM_BUSY;
    }
    char *claimed = queue_path(id, ".tm$");
    if (rename(path, claimed) < 0) {
        close(fd);
        free(path);
        free(claimed);
        return CLAIM_GONE;
    }
    free(path);
    *fd_r = fd;
    *claimed_r = claimed;
    return CLAIM_OK;
}

/* Whether domain matches one of the ETRN requests in list ("d @d ..."; '@' takes the
 * subdomains too, RFC 1985 5.3). */
static bool etrn_listed(const char *list, const char *domain)
{
    size_t dlen = strlen(domain);
    for (const char *p = list; p && *p;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (len == 0) break;
        if (p[0] == '@') {
            size_t plen = len - 1;
            if ((dlen == plen && strncasecmp(domain, p + 1, plen) == 0) ||
                (dlen > plen && domain[dlen - plen - 1] == '.' &&
                 strncasecmp(domain + dlen - plen, p + 1, plen) == 0))
                return true;
        } else if (dlen == len && strncasecmp(domain, p, len) == 0) {
            return true;
        }
        p += len;
    }
    return false;
}

/* Whether domain is an ETRN queue domain of the store. A store failure counts as yes:
 * the mail waits rather than going somewhere it should not. */
static bool is_etrn_domain(const char *domain)
{
    if (smtpd.store == NULL || domain[0] == '\0') return false;
    struct store_domain *d = NULL;
    enum store_result r = store_domain_find(smtpd.store, domain, &d);
    bool etrn = r == STORE_TEMPFAIL || (r == STORE_OK && d != NULL && d->type == DOMAIN_ETRN);
    store_domain_free(&d);
    return etrn;
}

/* Delivers one queue file. Returns when to try it again (0: it is done). etrn: the
 * domains ETRN asked for since the last try (NULL: none). */
static long long deliver_file(struct runtime *rt, const char *id, bool forced, const char *etrn)
{
    const struct alkaid_config *cfg = rt->cfg;
    int fd;
    char *claimed;
    switch (claim(id, &fd, &claimed)) {
    case CLAIM_GONE: return 0;
    case CLAIM_BUSY: return (long long)time(NULL) + QUEUE_CLAIM_RETRY;
    case CLAIM_OK: break;
    }
    long long again = 0;
    struct queue_envelope env;
    uint64_t msg_offset;
    if (spool_queue_read_fd(fd, &env, &msg_offset) < 0) {
        char *damaged = xasprintf("%s/damaged", q.dir);
        fs_mkdirs(damaged, 0700);
        char *to = xasprintf("%s/%s.tmp", damaged, id);
        rename(claimed, to);
        log_error(LOG_SMTP, NULL, "Queue file %s.tmp: damaged; moved to damaged/", id);
        free(to);
        free(damaged);
        close(fd);
        free(claimed);
        return 0;
    }
    long long now = (long long)time(NULL);
    if (!forced && env.next_try > now) {
        /* not due yet (the file says so: another server or tool rescheduled it) */
        char *back = queue_path(id, ".tmp");
        rename(claimed, back);
        free(back);
        again = env.next_try;
        goto out;
    }

    /* the recipients, grouped by destination */
    size_t n = env.nrcpts;
    struct rcpt_state *st = xcalloc(n, sizeof(*st));
    struct rcpt_state **order = xcalloc(n, sizeof(*order));
    bool smarthost = cfg->smarthost[0] != '\0';
    for (size_t i = 0; i < n; i++) {
        st[i].address = env.rcpts[i];
        const char *at = strrchr(env.rcpts[i], '@');
        st[i].domain = at ? at + 1 : "";
        order[i] = &st[i];
    }
    struct rcpt_state **released = xcalloc(n, sizeof(*released));
    bool *grouped = xcalloc(n, sizeof(bool));
    for (size_t i = 0; i < n; i++) {
        if (grouped[i]) continue;
        size_t gn = 0;
        for (size_t j = i; j < n; j++) {
            if (grouped[j]) continue;
            if (smarthost || strcasecmp(st[j].domain, st[i].domain) == 0) {
                order[gn++] = &st[j];
                grouped[j] = true;
            }
        }
        if (st[i].domain[0] == '\0') {
            set_all(order, gn, SMTP_OUT_PERM, "5.1.3", "the address has no domain");
            continue;
        }
        /* with a smarthost a group holds every domain: take the ETRN ones out */
        size_t kept = 0, nrel = 0;
        for (size_t k = 0; k < gn; k++) {
            struct rcpt_state *r = order[k];
            if (!is_etrn_domain(r->domain)) {
                order[kept++] = r;
            } else if (etrn_listed(etrn, r->domain)) {
                released[nrel++] = r; /* asked for: by MX, now */
            } else {
                set_all(&r, 1, SMTP_OUT_TEMP, "4.4.0",
                        "waiting for the domain's server to ask with ETRN");
                r->etrn_wait = true;
            }
        }
        if (kept > 0) deliver_group(rt, &env, fd, msg_offset, order[0]->domain, false, order, kept);
        /* the released ones, one transaction per domain */
        while (nrel > 0) {
            size_t same = 0, rest = 0;
            const char *dom = released[0]->domain;
            for (size_t k = 0; k < nrel; k++) {
                if (strcasecmp(released[k]->domain, dom) == 0)
                    order[same++] = released[k];
                else
                    released[rest++] = released[k];
            }
            deliver_group(rt, &env, fd, msg_offset, order[0]->domain, true, order, same);
            nrel = rest;
        }
    }
    free(grouped);
    free(order);
    free(released);

    /* the outcome */
    size_t nok = 0, nperm = 0, ntemp = 0, nwait = 0;
    for (size_t i = 0; i < n; i++) {
        if (st[i].etrn_wait) nwait++;
        if (st[i].res.outcome == SMTP_OUT_OK)
            nok++;
        else if (st[i].res.outcome == SMTP_OUT_PERM)
            nperm++;
        else
            ntemp++;
    }
    bool expired = now - env.created >= cfg->queue.give_up && !stopping();
    __atomic_fetch_add(&q.sent, nok, __ATOMIC_RELAXED);
    smtpd_today_add(TODAY_MESSAGES_OUT, nok);

    /* the recipients that failed for good now (and, past the retry period, the rest) */
    size_t nb = 0;
    struct bounce_rcpt *b = xcalloc(n, sizeof(*b));
    char **failed_rcpts = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        bool give_up =
            st[i].res.outcome == SMTP_OUT_PERM || (expired && st[i].res.outcome == SMTP_OUT_TEMP);
        if (!give_up) continue;
        to_bounce(&st[i], &b[nb]);
        if (st[i].res.outcome == SMTP_OUT_TEMP) {
            /* RFC 3463: 4.4.7, delivery time expired; keep the last reply as diagnosis */
            b[nb].status = "4.4.7";
            log_line(LOG_SMTP, NULL, "%s to <%s>: giving up after %lld hours: %s", env.id,
                     st[i].address, (now - env.created) / 3600, st[i].res.text);
        }
        failed_rcpts[nb] = st[i].address;
        nb++;
    }
    if (nb > 0) {
        if (bounce_send(cfg, BOUNCE_FAILED, &env, fd, msg_offset, b, nb) < 0) {
            /* the notice cannot be made now: keep everything and come back */
            char *back = queue_path(id, ".tmp");
            rename(claimed, back);
            free(back);
            again = now + QUEUE_CLAIM_RETRY;
            goto done;
        }
        __atomic_fetch_add(&q.bounced, nb, __ATOMIC_RELAXED);
    }
    size_t remaining = n - nok - nb;
    if (remaining == 0) {
        if (nb == n) {
            keep_failed(fd, claimed, &env, msg_offset, NULL, nb); /* the file moves */
        } else {
            if (nb > 0) keep_failed(fd, claimed, &env, msg_offset, failed_rcpts, nb);
            unlink(claimed);
        }
        goto done;
    }
    if (nb > 0) keep_failed(fd, claimed, &env, msg_offset, failed_rcpts, nb);

    /* some are still to do: rewrite the file with just them */
    __atomic_fetch_add(&q.deferred, remaining, __ATOMIC_RELAXED);
    struct queue_envelope next = env;
    next.rcpts = xcalloc(remaining, sizeof(char *));
    next.errors = xcalloc(remaining, sizeof(char *));
    next.nrcpts = 0;
    struct bounce_rcpt *delayed = xcalloc(remaining, sizeof(*delayed));
    for (size_t i = 0; i < n; i++) {
        if (st[i].res.outcome != SMTP_OUT_TEMP) continue;
        next.rcpts[next.nrcpts] = st[i].address;
        next.errors[next.nrcpts] = error_line(&st[i]);
        to_bounce(&st[i], &delayed[next.nrcpts]);
        next.nrcpts++;
    }
    next.attempts = env.attempts + 1;
    next.next_try = now + queue_retry_delay(rt->schedule, rt->nschedule, next.attempts);
    if (nwait == remaining) {
        /* only ETRN domains not asked for yet: no attempt was made; they wait for ETRN
         * (queue_etrn()) or, at the latest, the GiveUpAfter deadline */
        next.attempts = env.attempts;
        next.next_try = env.created + cfg->queue.give_up;
    }
    if (next.next_try > env.created + cfg->queue.give_up)
        next.next_try = env.created + cfg->queue.give_up; /* the last try at the deadline */
    if (next.next_try <= now) next.next_try = now + 1;
    if (stopping()) {
        /* cut short by a stop: not a real attempt; at once after the restart */
        next.attempts = env.attempts;
        next.next_try = 0;
    }
    bool warn = cfg->queue.delay_warning > 0 && !env.delay_notified &&
                now - env.created >= cfg->queue.delay_warning;
    if (warn && bounce_send(cfg, BOUNCE_DELAYED, &env, fd, msg_offset, delayed, next.nrcpts) == 0)
        next.delay_notified = true;
    int nfd = -1;
    if (spool_queue_rewrite(q.dir, &next, fd, msg_offset, ".tm$", &nfd) < 0) {
        log_error(LOG_SMTP, NULL,
                  "Cannot rewrite the queue file of %s: %s (it keeps every "
                  "recipient and will be tried again)",
                  id, strerror(errno));
        next.next_try = now + QUEUE_CLAIM_RETRY;
    } else {
        close(fd);
        fd = nfd;
    }
    char *back = queue_path(id, ".tmp");
    if (rename(claimed, back) < 0)
        log_error(LOG_SMTP, NULL, "Cannot rename %s back: %s", claimed, strerror(errno));
    free(back);
    again = next.next_try;
    char when[64];
    if (next.next_try == 0)
        snprintf(when, sizeof(when), "at the next start");
    else
        log_format_date(when, sizeof(when), next.next_try);
    log_line(LOG_SMTP, NULL, "%s: %zu recipient%s deferred (attempt %u), next try %s", id,
             next.nrcpts, next.nrcpts == 1 ? "" : "s", next.attempts, when);
    for (size_t i = 0; i < next.nrcpts; i++)
        free(next.errors[i]);
    free(next.errors);
    free(next.rcpts);
    free(delayed);
done:
    free(b);
    free(failed_rcpts);
    free(st);
out:
    spool_queue_envelope_clear(&env);
    close(fd);
    free(claimed);
    return again;
}

/* ---- threads ----------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&q.lock);
    while (!q.stopping) {
        long long now = (long long)time(NULL);
        if (q.held || q.nheap == 0 || q.heap[0]->next_try > now) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long long wait = q.held || q.nheap == 0 ? 60 : q.heap[0]->next_try - now;
            if (wait > 60) wait = 60;
            ts.tv_sec += (time_t)wait;
            pthread_cond_timedwait(&q.work, &q.lock, &ts);
            continue;
        }
        struct qentry *e = q.heap[0];
        heap_remove(e);
        e->running = true;
        bool forced = e->forced;
        e->forced = false;
        char *etrn = e->etrn;
        e->etrn = NULL;
        q.nrunning++;
        char *id = xstrdup(e->id);
        struct runtime *rt = q.rt;
        pthread_mutex_unlock(&q.lock);

        long long again = deliver_file(rt, id, forced, etrn);
        free(etrn);

        pthread_mutex_lock(&q.lock);
        q.nrunning--;
        e = find(id);
        free(id);
        if (e == NULL) continue;
        e->running = false;
        if (again == 0)
            forget(e);
        else
            reschedule(e, e->forced ? 0 : again);
    }
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

static bool queue_file_name(const char *name, size_t *idlen_r)
{
    size_t len = strlen(name);
    if (len <= 4 || name[0] == '.' || strcmp(name + len - 4, ".tmp") != 0) return false;
    *idlen_r = len - 4;
    return true;
}

/* Reads mail/FORWARD/ and adds every waiting file not known yet. */
static void scan_dir(void)
{
    DIR *d = opendir(q.dir);
    if (d == NULL) return;
    struct dirent *de;
    size_t added = 0;
    while ((de = readdir(d)) != NULL) {
        size_t idlen;
        if (!queue_file_name(de->d_name, &idlen) || idlen >= SPOOL_ID_MAX) continue;
        char id[SPOOL_ID_MAX];
        memcpy(id, de->d_name, idlen);
        id[idlen] = '\0';
        pthread_mutex_lock(&q.lock);
        bool known = find(id) != NULL;
        pthread_mutex_unlock(&q.lock);
        if (known) continue;
        struct queue_envelope env;
        char *path = queue_path(id, ".tmp");
        long long next = 0;
        if (spool_queue_read(path, &env, NULL) == 0) {
            next = env.next_try;
            spool_queue_envelope_clear(&env);
        } else if (errno == ENOENT) {
            free(path);
            continue;
        }
        free(path);
        pthread_mutex_lock(&q.lock);
        add(id, next);
        pthread_mutex_unlock(&q.lock);
        added++;
    }
    closedir(d);
    if (added) {
        pthread_mutex_lock(&q.lock);
        pthread_cond_broadcast(&q.work);
        pthread_mutex_unlock(&q.lock);
    }
}

static void *scanner_main(void *arg)
{
    (void)arg;
    int64_t last_scan = 0;
    for (;;) {
        pthread_mutex_lock(&q.lock);
        if (q.stopping) {
            pthread_mutex_unlock(&q.lock);
            break;
        }
        bool now_scan = q.scan_now;
        q.scan_now = false;
        int interval = q.rt->cfg->queue.scan_interval;
        pthread_mutex_unlock(&q.lock);
        if (now_scan || conn_now_ms() - last_scan >= (int64_t)interval * 1000) {
            scan_dir();
            last_scan = conn_now_ms();
        }
        pool_reap(false);
        pthread_mutex_lock(&q.lock);
        if (!q.stopping && !q.scan_now) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&q.scan, &q.lock, &ts);
        }
        pthread_mutex_unlock(&q.lock);
    }
    return NULL;
}

/* ---- the interface ----------------------------------------------------------------- */

static struct runtime *runtime_new(const struct alkaid_config *cfg, const char **error_r)
{
    struct runtime *rt = xcalloc(1, sizeof(*rt));
    rt->cfg = cfg;
    rt->nschedule =
        config_parse_time_list(cfg->queue.retry_schedule, rt->schedule, CONFIG_MAX_RETRIES);
    if (rt->nschedule <= 0) {
        rt->schedule[0] = 3600;
        rt->nschedule = 1;
    }
    rt->dns = dns_resolver_new(cfg->dns_servers, cfg->dns_timeout * 1000, cfg->dns_tries, error_r);
    if (rt->dns == NULL) {
        free(rt);
        return NULL;
    }
    rt->tls = tls_client_ctx_new(cfg->queue.ca_file, error_r);
    if (rt->tls == NULL) {
        dns_resolver_free(&rt->dns);
        free(rt);
        return NULL;
    }
    return rt;
}

static void start_threads(int n)
{
    q.threads = xreallocarray(q.threads, (size_t)n, sizeof(pthread_t));
    while (q.nthreads < n) {
        if (pthread_create(&q.threads[q.nthreads], NULL, worker_main, NULL) != 0) break;
        q.nthreads++;
    }
}

int queue_start(const struct alkaid_config *cfg, const char **error_r)
{
    struct runtime *rt = runtime_new(cfg, error_r);
    if (rt == NULL) return -1;
    q.rt = rt;
    q.dir = xasprintf("%s/FORWARD", cfg->mail_dir);
    __atomic_store_n(&interrupt_flag, false, __ATOMIC_RELEASE);
    fs_mkdirs(q.dir, 0750);
    q.stopping = false;
    /* a dial-up line starts down: controld releases the queue once it is up */
    q.held = cfg->queue.hold || cfg->dialup.enabled;
    if (cfg->queue.hold)
        log_line(LOG_SMTP, NULL, "Outbound delivery held ([Queue] Hold)");
    else if (q.held)
        log_line(LOG_SMTP, NULL, "Outbound delivery held until the dial-up line is up");
    scan_dir();
    start_threads(cfg->queue.threads);
    if (pthread_create(&q.scanner, NULL, scanner_main, NULL) != 0) {
        *error_r = "cannot start the queue scanner thread";
        return -1;
    }
    q.started = true;
    return 0;
}

int queue_reload(const struct alkaid_config *cfg, const char **error_r)
{
    if (!q.started) return 0;
    struct runtime *rt = runtime_new(cfg, error_r);
    if (rt == NULL) return -1;
    pthread_mutex_lock(&q.lock);
    bool hold_changed = q.rt->cfg->queue.hold != cfg->queue.hold;
    if (hold_changed) q.held = cfg->queue.hold;
    rt->older = q.rt;
    q.rt = rt;
    if (cfg->queue.threads > q.nthreads) start_threads(cfg->queue.threads);
    q.scan_now = true;
    pthread_cond_broadcast(&q.work);
    pthread_cond_signal(&q.scan);
    pthread_mutex_unlock(&q.lock);
    if (cfg->queue.threads < q.nthreads)
        log_line(LOG_SMTP, NULL,
                 "[Queue] DeliveryThreads: fewer threads take effect at the next "
                 "restart");
    return 0;
}

void queue_stop(void)
{
    if (!q.started) return;
    __atomic_store_n(&interrupt_flag, true, __ATOMIC_RELEASE);
    pthread_mutex_lock(&q.lock);
    q.stopping = true;
    for (struct busy *b = q.busy; b; b = b->next)
        conn_shutdown(b->client->conn);
    pthread_cond_broadcast(&q.work);
    pthread_cond_broadcast(&q.pooled);
    pthread_cond_broadcast(&q.scan);
    pthread_mutex_unlock(&q.lock);
    for (int i = 0; i < q.nthreads; i++)
        pthread_join(q.threads[i], NULL);
    pthread_join(q.scanner, NULL);
    pool_reap(true);
    free(q.threads);
    q.threads = NULL;
    q.nthreads = 0;
    for (size_t b = 0; b < QUEUE_BUCKETS; b++) {
        while (q.buckets[b]) {
            struct qentry *e = q.buckets[b];
            q.buckets[b] = e->hnext;
            free(e->id);
            free(e->etrn);
            free(e);
        }
    }
    free(q.heap);
    q.heap = NULL;
    q.nheap = q.capheap = q.nentries = 0;
    while (q.dests) {
        struct dest *d = q.dests;
        q.dests = d->next;
        free(d->key);
        free(d);
    }
    while (q.rt) {
        struct runtime *rt = q.rt;
        q.rt = rt->older;
        dns_resolver_free(&rt->dns);
        SSL_CTX_free(rt->tls);
        free(rt);
    }
    free(q.dir);
    q.dir = NULL;
    q.started = false;
}

void queue_notify(const char *id)
{
    if (!q.started) return;
    pthread_mutex_lock(&q.lock);
    add(id, 0);
    pthread_cond_signal(&q.work);
    pthread_mutex_unlock(&q.lock);
}

int queue_flush(const char *id)
{
    if (!q.started) return -1;
    int r = 0;
    if (id && *id) {
        /* it may be a file the scanner has not seen yet */
        char *path = queue_path(id, ".tmp");
        bool exists = access(path, F_OK) == 0;
        free(path);
        pthread_mutex_lock(&q.lock);
        struct qentry *e = find(id);
        if (e == NULL && exists) e = add(id, 0);
        if (e) {
            e->forced = true;
            if (!e->running) reschedule(e, 0);
        } else {
            r = -1;
        }
    } else {
        pthread_mutex_lock(&q.lock);
        for (size_t i = 0; i < q.nheap; i++) {
            q.heap[i]->next_try = 0;
            q.heap[i]->forced = true;
        }
        for (size_t b = 0; b < QUEUE_BUCKETS; b++)
            for (struct qentry *e = q.buckets[b]; e; e = e->hnext)
                e->forced = true;
        q.scan_now = true;
        pthread_cond_signal(&q.scan);
    }
    pthread_cond_broadcast(&q.work);
    pthread_mutex_unlock(&q.lock);
    if (id == NULL || *id == '\0') {
        /* new files are picked up by the scanner; mark them forced as they come */
        scan_dir();
        pthread_mutex_lock(&q.lock);
        for (size_t i = 0; i < q.nheap; i++) {
            q.heap[i]->next_try = 0;
            q.heap[i]->forced = true;
        }
        pthread_cond_broadcast(&q.work);
        pthread_mutex_unlock(&q.lock);
    }
    return r;
}

/* Whether the queue file of id has a recipient in a domain that request matches. */
static bool file_has_domain(const char *id, const char *request)
{
    static const char *const suffixes[] = {".tmp", ".tm$"};
    for (size_t k = 0; k < 2; k++) {
        char *path = queue_path(id, suffixes[k]);
        struct queue_envelope env;
        int r = spool_queue_read(path, &env, NULL);
        free(path);
        if (r < 0) continue;
        bool found = false;
        for (size_t i = 0; i < env.nrcpts && !found; i++) {
            const char *at = strrchr(env.rcpts[i], '@');
            found = at && etrn_listed(request, at + 1);
        }
        spool_queue_envelope_clear(&env);
        return found;
    }
    return false;
}

/* Whether request ("d" or "@d") is already one of list's words. */
static bool etrn_pending(const char *list, const char *request)
{
    size_t rlen = strlen(request);
    for (const char *p = list; p && *p;) {
        p += strspn(p, " ");
        size_t len = strcspn(p, " ");
        if (len == rlen && strncasecmp(p, request, len) == 0) return true;
        p += len;
    }
    return false;
}

int queue_etrn(const char *request)
{
    if (!q.started) return -1;
    scan_dir();
    /* the ids first (reading files under the lock would stall the workers) */
    pthread_mutex_lock(&q.lock);
    char **ids = xcalloc(q.nentries + 1, sizeof(char *));
    size_t n = 0;
    for (size_t b = 0; b < QUEUE_BUCKETS; b++)
        for (struct qentry *e = q.buckets[b]; e && n < q.nentries; e = e->hnext)
            ids[n++] = xstrdup(e->id);
    pthread_mutex_unlock(&q.lock);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!file_has_domain(ids[i], request)) continue;
        pthread_mutex_lock(&q.lock);
        struct qentry *e = find(ids[i]);
        if (e) {
            if (!etrn_pending(e->etrn, request)) { /* a repeated ETRN adds nothing */
                char *list = xasprintf("%s %s", e->etrn ? e->etrn : "", request);
                free(e->etrn);
                e->etrn = list;
            }
            e->forced = true;
            if (!e->running) reschedule(e, 0);
            count++;
        }
        pthread_mutex_unlock(&q.lock);
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    pthread_mutex_lock(&q.lock);
    pthread_cond_broadcast(&q.work);
    pthread_mutex_unlock(&q.lock);
    log_line(LOG_SMTP, NULL, "ETRN %s: %d message%s to send", request, count,
             count == 1 ? "" : "s");
    return count;
}

void queue_hold_all(bool hold)
{
    pthread_mutex_lock(&q.lock);
    q.held = hold;
    pthread_cond_broadcast(&q.work);
    pthread_mutex_unlock(&q.lock);
    log_line(LOG_SMTP, NULL, hold ? "Outbound delivery held" : "Outbound delivery released");
}

bool queue_is_held(void)
{
    pthread_mutex_lock(&q.lock);
    bool h = q.held;
    pthread_mutex_unlock(&q.lock);
    return h;
}

void queue_status(struct sbuf *json)
{
    pthread_mutex_lock(&q.lock);
    size_t entries = q.nentries, running = q.nrunning, idle = 0, due = 0;
    for (struct pooled *p = q.idle; p; p = p->next)
        idle++;
    long long now = (long long)time(NULL);
    for (size_t i = 0; i < q.nheap; i++)
        if (q.heap[i]->next_try <= now) due++;
    bool held = q.held;
    pthread_mutex_unlock(&q.lock);
    sbuf_printf(json,
                ",\"outbound\":{\"queued\":%zu,\"sending\":%zu,\"due\":%zu,\"held\":%s,\"idle_"
                "connections\":%zu"
                ",\"sent\":%" PRIu64 ",\"bounced\":%" PRIu64 ",\"deferred\":%" PRIu64
                ",\"connection_attempts\":%" PRIu64 "}",
                entries, running, due, held ? "true" : "false", idle,
                __atomic_load_n(&q.sent, __ATOMIC_RELAXED),
                __atomic_load_n(&q.bounced, __ATOMIC_RELAXED),
                __atomic_load_n(&q.deferred, __ATOMIC_RELAXED),
                __atomic_load_n(&q.attempts, __ATOMIC_RELAXED));
}

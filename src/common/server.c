/* server.c - listeners and one thread per session, with limits
 *
 * One accept thread per listening socket; each connection is counted (in total and per
 * client address) before its session starts, and uncounted when it ends. A session runs
 * on a thread of its own; when it ends the thread waits a while as a spare for the next
 * connection instead of exiting. Active sessions are kept on a list so that
 * server_stop() can wake them.
 *
 * SECURITY: the per-address counts live in a fixed-size open-addressing table sized
 * from the session cap, so a flood of addresses cannot grow memory.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xalloc.h"

#define MAX_LISTENERS 8

struct active {
    struct active *prev, *next;
    struct conn *conn;
};

struct ipcount {
    char ip[64];
    int count;
};

struct listener {
    const struct listener_def *def;
    int fd;
    pthread_t thread;
    bool running;
    struct server *server;
};

#define SERVER_SPARE_THREADS 64 /* threads kept waiting for the next connection */
#define SERVER_SPARE_SECONDS 30 /* how long a spare thread waits before it ends */

struct server {
    char *name;
    enum log_channel channel;
    void *data;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    struct listener listeners[MAX_LISTENERS];
    int nlisteners;
    int max_sessions, max_per_ip, handshake_timeout_s;
    SSL_CTX *tls;
    bool stopping;
    struct active *active;
    unsigned nactive; /* sessions with a thread (including over-limit ones) */
    unsigned counted; /* sessions within the caps */
    struct ipcount *ips;
    size_t nips; /* table size (power of two) */
    struct server_stats stats;
    /* session threads are kept for the next connection (creating one per connection
     * was a measurable part of a short SMTP session) */
    pthread_cond_t work;           /* a spare thread: a session is pending */
    struct session_start *pending; /* sessions handed to spare threads, FIFO */
    struct session_start **pending_tail;
    unsigned npending, nspare; /* queued sessions; threads waiting for one */
    unsigned nthreads;         /* session threads alive (running or spare) */
    pthread_t *ended;          /* threads that have ended, not joined yet */
    size_t nended, capended;
};

struct session_start {
    struct session_start *next; /* on the pending list */
    struct server *server;
    const struct listener_def *def;
    struct conn *conn;
    struct active node; /* on the server's list from accept() on, so stop can reach it */
    char ip[64];
    bool over_limit;
};

static __thread char server_error[256];

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_closed;

void server_gate_close(void)
{
    pthread_mutex_lock(&gate_lock);
    __atomic_store_n(&gate_closed, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&gate_lock);
}

void server_gate_open(void)
{
    pthread_mutex_lock(&gate_lock);
    __atomic_store_n(&gate_closed, false, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* Waits for the gate; false if the server stopped meanwhile. */
static bool pass_gate(struct server *s)
{
    pthread_mutex_lock(&gate_lock);
    while (gate_closed && !server_stopping(s)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&gate_cond, &gate_lock, &until);
    }
    pthread_mutex_unlock(&gate_lock);
    return !server_stopping(s);
}

struct server *server_new(const char *name, enum log_channel channel, void *data)
{
    struct server *s = xcalloc(1, sizeof(*s));
    s->name = xstrdup(name);
    s->channel = channel;
    s->data = data;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    pthread_cond_init(&s->work, NULL);
    s->pending_tail = &s->pending;
    server_set_limits(s, 100, 10, 60);
    return s;
}

void server_free(struct server **sp)
{
    struct server *s = *sp;
    if (s == NULL) return;
    for (int i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].fd >= 0) close(s->listeners[i].fd);
    SSL_CTX_free(s->tls);
    free(s->ips);
    free(s->name);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->idle);
    pthread_cond_destroy(&s->work);
    free(s->ended);
    free(s);
    *sp = NULL;
}

static size_t table_size_for(int max_sessions)
{
    size_t n = 64;
    while (n < (size_t)max_sessions * 2)
        n <<= 1;
    return n;
}

void server_set_limits(struct server *s, int max_sessions, int max_per_ip, int handshake_s)
{
    pthread_mutex_lock(&s->lock);
    s->max_sessions = max_sessions;
    s->max_per_ip = max_per_ip;
    s->handshake_timeout_s = handshake_s;
    size_t want = table_size_for(max_sessions);
    if (want > s->nips) {
        /* rehash the live entries into a bigger table */
        struct ipcount *old = s->ips;
        size_t oldn = s->nips;
        s->ips = xcalloc(want, sizeof(*s->ips));
        s->nips = want;
        for (size_t i = 0; i < oldn; i++) {
            if (old[i].count == 0) continue;
            size_t h = 5381;
            for (const char *p = old[i].ip; *p; p++)
                h = h * 33 + (unsigned char)*p;
            for (size_t j = h & (want - 1);; j = (j + 1) & (want - 1)) {
                if (s->ips[j].count == 0) {
                    s->ips[j] = old[i];
                    break;
                }
            }
        }
        free(old);
    }
    pthread_mutex_unlock(&s->lock);
}

void server_set_tls(struct server *s, SSL_CTX *ctx)
{
    if (ctx) SSL_CTX_up_ref(ctx);
    pthread_mutex_lock(&s->lock);
    SSL_CTX *old = s->tls;
    s->tls = ctx;
    pthread_mutex_unlock(&s->lock);
    SSL_CTX_free(old);
}

SSL_CTX *server_get_tls(struct server *s)
{
    pthread_mutex_lock(&s->lock);
    SSL_CTX *ctx = s->tls;
    if (ctx) SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&s->lock);
    return ctx;
}

bool server_stopping(const struct server *s)
{
    return __atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE);
}

enum log_channel server_channel(const struct server *s)
{
    return s->channel;
}

int server_listen(struct server *s, const struct listener_def *def, const char **error_r)
{
    if (def->port == 0) return 0;
    if (s->nlisteners == MAX_LISTENERS) {
        snprintf(server_error, sizeof(server_error), "too many listeners");
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, def->bind, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)def->port);
        sslen = sizeof(*sin);
    } else if (inet_pton(AF_INET6, def->bind, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)def->port);
        sslen = sizeof(*sin6);
    } else {
        snprintf(server_error, sizeof(server_error), "%s: '%s' is not an address", def->name,
                 def->bind);
        goto fail;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(server_error, sizeof(server_error), "%s: socket: %s", def->name, strerror(errno));
        goto fail;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, 1024) < 0) {
        snprintf(server_error, sizeof(server_error), "%s: cannot listen on %s port %d: %s",
                 def->key ? def->key : def->name, def->bind, def->port, strerror(errno));
        close(fd);
        goto fail;
    }
    struct listener *l = &s->listeners[s->nlisteners++];
    l->def = def;
    l->fd = fd;
    l->server = s;
    l->running = false;
    return 0;
fail:
    if (error_r) *error_r = server_error;
    return -1;
}

static struct ipcount *ip_slot(struct server *s, const char *ip, bool create)
{
    if (s->nips == 0) return NULL;
    size_t h = 5381;
    for (const char *p = ip; *p; p++)
        h = h * 33 + (unsigned char)*p;
    struct ipcount *empty = NULL;
    for (size_t n = 0, j = h & (s->nips - 1); n < s->nips; n++, j = (j + 1) & (s->nips - 1)) {
        struct ipcount *e = &s->ips[j];
        if (e->count == 0) {
            /* linear probing: an empty slot ends the chain only if it was never used;
             * we keep deleted slots at count 0 with ip[0] cleared */
            if (e->ip[0] == '\0') {
                if (empty == NULL) empty = e;
                break;
            }
            if (empty == NULL) empty = e;
            continue;
        }
        if (strcmp(e->ip, ip) == 0) return e;
    }
    if (!create || empty == NULL) return NULL;
    snprintf(empty->ip, sizeof(empty->ip), "%s", ip);
    return empty;
}

/* Counts a new connection; false if it is past a cap. Called with the lock held. */
static bool admit(struct server *s, const char *ip)
{
    if (s->counted >= (unsigned)s->max_sessions) return false;
    struct ipcount *e = ip_slot(s, ip, true);
    if (e == NULL || e->count >= s->max_per_ip) return false;
    e->count++;
    s->counted++;
    return true;
}

static void release(struct server *s, const char *ip)
{
    struct ipcount *e = ip_slot(s, ip, false);
    if (e && e->count > 0) e->count--;
    /* leave ip[] set so probe chains stay intact; the slot is reusable at count 0 */
    s->counted--;
}

/* Called with the lock held. */
static void link_active(struct server *s, struct active *node)
{
    node->prev = NULL;
    node->next = s->active;
    if (s->active) s->active->prev = node;
    s->active = node;
}

/* Called with the lock held. */
static void unlink_active(struct server *s, struct active *node)
{
    if (node->prev)
        node->prev->next = node->next;
    else
        s->active = node->next;
    if (node->next) node->next->prev = node->prev;
}

static void run_session(struct session_start *st)
{
    struct server *s = st->server;
    struct conn *conn = st->conn;
    ERR_clear_error(); /* nothing of an earlier session on this thread */
    pthread_mutex_lock(&s->lock);
    int handshake_s = s->handshake_timeout_s;
    pthread_mutex_unlock(&s->lock);

    bool ok = true;
    if (st->def->implicit_tls) {
        SSL_CTX *ctx = server_get_tls(s);
        const char *err = "no TLS context";
        ok = ctx && conn_starttls(conn, ctx, conn_now_ms() + handshake_s * 1000, &err) == CONN_OK;
        SSL_CTX_free(ctx);
        if (!ok) log_line(s->channel, conn->ip, "TLS handshake failed: %s", err);
    }
    if (ok && st->over_limit) {
        log_line(s->channel, conn->ip, "Connection refused: too many sessions");
        if (st->def->busy_reply) {
            conn_puts(conn, st->def->busy_reply);
            conn_flush(conn, conn_now_ms() + 5000);
        }
    } else if (ok) {
        struct session session = {.conn = conn, .server = s, .listener = st->def, .data = s->data};
        st->def->handler(&session);
    }

    pthread_mutex_lock(&s->lock);
    unlink_active(s, &st->node);
    if (!st->over_limit) release(s, st->ip);
    s->stats.bytes_in += conn->bytes_in;
    s->stats.bytes_out += conn->bytes_out;
    pthread_mutex_unlock(&s->lock);

    /* everything this thread holds goes before it stops counting as active, so a
     * server_stop() that returns leaves no session state behind */
    conn_free(&conn);
    free(st);

    pthread_mutex_lock(&s->lock);
    s->nactive--;
    if (s->nactive == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

/* Runs sessions: the first one given, then those handed over while it waits as a spare
 * (at most SERVER_SPARE_THREADS wait, each for SERVER_SPARE_SECONDS). */
/* Joins the threads that have ended. */
static void join_ended(struct server *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->nended;
    pthread_t *v = n ? xmemdup(s->ended, n * sizeof(pthread_t)) : NULL;
    s->nended = 0;
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++)
        pthread_join(v[i], NULL);
    free(v);
}

static void *session_thread(void *arg)
{
    struct session_start *st = arg;
    struct server *s = st->server;
    for (;;) {
        run_session(st);
        st = NULL;
        pthread_mutex_lock(&s->lock);
        if (!s->stopping && s->nspare < SERVER_SPARE_THREADS) {
            s->nspare++;
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += SERVER_SPARE_SECONDS;
            while (s->pending == NULL && !s->stopping) {
                if (pthread_cond_timedwait(&s->work, &s->lock, &until) == ETIMEDOUT) break;
            }
            s->nspare--;
            if (s->pending) {
                st = s->pending;
                s->pending = st->next;
                if (s->pending == NULL) s->pending_tail = &s->pending;
                s->npending--;
            }
        }
        if (st == NULL) {
            pthread_mutex_unlock(&s->lock);
            /* before it stops counting, so nothing of it is left once server_stop()
             * returns (and the process may exit) */
            OPENSSL_thread_stop();
            pthread_mutex_lock(&s->lock);
            /* to be joined by the next accept or by server_stop(), so that no thread is
             * still on its way out when the server (or the process) goes */
            if (s->nended == s->capended) {
                s->capended = s->capended ? s->capended * 2 : 16;
                s->ended = xreallocarray(s->ended, s->capended, sizeof(pthread_t));
            }
            s->ended[s->nended++] = pthread_self();
            s->nthreads--;
            pthread_cond_broadcast(&s->idle);
            pthread_mutex_unlock(&s->lock);
            break;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static void addr_text(const struct sockaddr_storage *ss, char *ip, size_t iplen, int *port_r)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, (socklen_t)iplen);
        else
            inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)iplen);
        *port_r = ntohs(a->sin6_port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)iplen);
        *port_r = ntohs(a->sin_port);
    }
}

static void *accept_thread(void *arg)
{
    struct listener *l = arg;
    struct server *s = l->server;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, SERVER_STACK_SIZE);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_JOINABLE);

    /* the gate is looked at again before every accept(): a paused service (the Windows
     * Service Control Manager's PAUSE) leaves new connections in the backlog */
    for (bool passed = pass_gate(s); passed;
         passed = !__atomic_load_n(&gate_closed, __ATOMIC_ACQUIRE) || pass_gate(s)) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
        if (server_stopping(s)) {
            if (fd >= 0) close(fd);
            break;
        }
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_error(s->channel, NULL, "%s: accept: %s", l->def->name, strerror(errno));
                usleep(100000);
                continue;
            }
            if (errno == EINVAL) break; /* shut down */
            log_error(s->channel, NULL, "%s: accept: %s", l->def->name, strerror(errno));
            usleep(100000);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct session_start *st = xcalloc(1, sizeof(*st));
        st->server = s;
        st->def = l->def;
        struct conn *conn = conn_new(fd);
        addr_text(&ss, conn->ip, sizeof(conn->ip), &conn->port);
        snprintf(st->ip, sizeof(st->ip), "%s", conn->ip);
        struct sockaddr_storage local;
        socklen_t llen = sizeof(local);
        if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
            char dummy[64];
            addr_text(&local, dummy, sizeof(dummy), &conn->local_port);
        }
        conn->interrupt = &s->stopping;
        st->conn = conn;
        st->node.conn = conn;

        pthread_mutex_lock(&s->lock);
        s->stats.total++;
        st->over_limit = !admit(s, st->ip);
        /* far past the cap: do not even spend a thread on a reply */
        bool drop = st->over_limit && s->nactive >= (unsigned)s->max_sessions * 2 + 16;
        if (st->over_limit) s->stats.rejected++;
        if (!drop) {
            s->nactive++;
            link_active(s, &st->node);
        }
        pthread_mutex_unlock(&s->lock);
        if (drop) {
            conn_free(&conn);
            free(st);
            continue;
        }
        /* a spare thread takes it, or a new one */
        pthread_mutex_lock(&s->lock);
        bool handed = s->nspare > s->npending;
        if (handed) {
            st->next = NULL;
            *s->pending_tail = st;
            s->pending_tail = &st->next;
            s->npending++;
            pthread_cond_signal(&s->work);
        } else {
            s->nthreads++;
        }
        pthread_mutex_unlock(&s->lock);
        if (handed) continue;
        join_ended(s);
        pthread_t tid;
        int err = pthread_create(&tid, &attr, session_thread, st);
        if (err != 0) {
            log_error(s->channel, st->ip, "cannot start a session thread: %s", strerror(err));
            pthread_mutex_lock(&s->lock);
            unlink_active(s, &st->node);
            if (!st->over_limit) release(s, st->ip);
            s->nactive--;
            s->nthreads--;
            if (s->nactive == 0) pthread_cond_broadcast(&s->idle);
            pthread_mutex_unlock(&s->lock);
            conn_free(&conn);
            free(st);
        }
    }
    pthread_attr_destroy(&attr);
    return NULL;
}

int server_listen_pair(struct server *s, struct listener_def defs[2], const char *section,
                       const char *bind, int port, int tls_port, session_handler_fn *handler,
                       const char *busy_reply, const char **error_r)
{
    for (int i = 0; i < 2; i++) {
        struct listener_def *d = &defs[i];
        memset(d, 0, sizeof(*d));
        snprintf(d->names[0], sizeof(d->names[0]), "%s%s", section, i ? "S" : "");
        snprintf(d->names[1], sizeof(d->names[1]), "[%s] %s", section, i ? "TLSPort" : "Port");
        d->name = d->names[0];
        d->key = d->names[1];
        d->bind = bind;
        d->port = i ? tls_port : port;
        d->implicit_tls = i == 1;
        d->kind = i;
        d->handler = handler;
        d->busy_reply = busy_reply;
        if (server_listen(s, d, error_r) < 0) return -1;
        if (d->port)
            log_line(s->channel, NULL, "Listening for %s on %s port %d", d->name, bind, d->port);
    }
    return 0;
}

int server_start(struct server *s)
{
    for (int i = 0; i < s->nlisteners; i++) {
        struct listener *l = &s->listeners[i];
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, SERVER_STACK_SIZE);
        int r = pthread_create(&l->thread, &attr, accept_thread, l);
        pthread_attr_destroy(&attr);
        if (r != 0) return -1;
        l->running = true;
    }
    return 0;
}

void server_stop(struct server *s, int grace_ms)
{
    __atomic_store_n(&s->stopping, true, __ATOMIC_RELEASE);
    for (int i = 0; i < s->nlisteners; i++) {
        struct listener *l = &s->listeners[i];
        if (l->fd >= 0) shutdown(l->fd, SHUT_RDWR);
        if (l->running) pthread_join(l->thread, NULL);
        l->running = false;
        if (l->fd >= 0) close(l->fd);
        l->fd = -1;
    }
    pthread_mutex_lock(&s->lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += grace_ms / 1000;
    until.tv_nsec += (long)(grace_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    while (s->nactive > 0) {
        if (pthread_cond_timedwait(&s->idle, &s->lock, &until) == ETIMEDOUT) break;
    }
    for (struct active *a = s->active; a; a = a->next)
        conn_shutdown(a->conn);
    while (s->nactive > 0)
        pthread_cond_wait(&s->idle, &s->lock);
    /* the spare threads go too, before the server can be freed */
    pthread_cond_broadcast(&s->work);
    while (s->nthreads > 0)
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
    join_ended(s);
}

void server_get_stats(struct server *s, struct server_stats *st)
{
    pthread_mutex_lock(&s->lock);
    *st = s->stats;
    st->active = s->counted;
    for (struct active *a = s->active; a; a = a->next) {
        st->bytes_in += __atomic_load_n(&a->conn->bytes_in, __ATOMIC_RELAXED);
        st->bytes_out += __atomic_load_n(&a->conn->bytes_out, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&s->lock);
}

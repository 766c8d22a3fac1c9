/* imap_server.c - the IMAP front door of alkaid-pop3imapd: ports 143 and 993
 *
 * Two listener definitions, one struct server, and the context every session reads:
 * the store, the counters, and the sessions-per-user table.
 *
 * SECURITY: the per-user table holds only logged-in users (bounded by the session cap).
 */
#include "imap_server.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "imap_session.h"
#include "log.h"
#include "server.h"
#include "xalloc.h"

struct imap_user_count {
    struct imap_user_count *next;
    char *user;
    int count;
};

struct imap_server {
    struct server *server;
    struct imap_context ctx;
    struct listener_def listeners[2];
    char *bind;
    int port, tls_port;
};

static int handshake_timeout(const struct alkaid_config *cfg)
{
    return cfg->imap.timeout > 0 && cfg->imap.timeout < IMAP_HANDSHAKE_TIMEOUT
               ? cfg->imap.timeout
               : IMAP_HANDSHAKE_TIMEOUT;
}

struct imap_server *imap_server_start(const struct alkaid_config *cfg, struct store *store,
                                      SSL_CTX *tls, const char **error_r)
{
    struct imap_server *p = xcalloc(1, sizeof(*p));
    p->ctx.store = store;
    pthread_mutex_init(&p->ctx.users_lock, NULL);
    p->bind = xstrdup(cfg->imap.bind);
    p->port = cfg->imap.port;
    p->tls_port = cfg->imap.tls_port;
    p->server = server_new("IMAP", LOG_IMAP, &p->ctx);
    p->ctx.server = p->server;
    server_set_limits(p->server, cfg->imap.max_sessions, cfg->imap.max_sessions_per_ip,
                      handshake_timeout(cfg));
    server_set_tls(p->server, tls);
    if (server_listen_pair(p->server, p->listeners, "IMAP", p->bind, cfg->imap.port,
                           cfg->imap.tls_port, imap_session_handler, IMAP_BUSY_REPLY, error_r) < 0)
        goto fail;
    if (server_start(p->server) < 0) {
        *error_r = "IMAP: cannot start the listener threads";
        goto fail;
    }
    return p;
fail:
    server_stop(p->server, 0);
    server_free(&p->server);
    pthread_mutex_destroy(&p->ctx.users_lock);
    free(p->bind);
    free(p);
    return NULL;
}

void imap_server_reload(struct imap_server *p, const struct alkaid_config *cfg, SSL_CTX *tls)
{
    server_set_limits(p->server, cfg->imap.max_sessions, cfg->imap.max_sessions_per_ip,
                      handshake_timeout(cfg));
    server_set_tls(p->server, tls);
    if (cfg->imap.port != p->port || cfg->imap.tls_port != p->tls_port ||
        strcmp(cfg->imap.bind, p->bind) != 0)
        log_line(LOG_IMAP, NULL, "IMAP port or address changes take effect at the next restart");
}

void imap_server_stop(struct imap_server **pp, int grace_ms)
{
    struct imap_server *p = *pp;
    if (p == NULL) return;
    server_stop(p->server, grace_ms);
    server_free(&p->server);
    while (p->ctx.users) {
        struct imap_user_count *u = p->ctx.users;
        p->ctx.users = u->next;
        free(u->user);
        free(u);
    }
    pthread_mutex_destroy(&p->ctx.users_lock);
    free(p->bind);
    free(p);
    *pp = NULL;
}

void imap_server_status(struct imap_server *p, struct sbuf *json)
{
    struct server_stats st;
    server_get_stats(p->server, &st);
    const struct imap_context *c = &p->ctx;
    sbuf_printf(json,
                ",\"imap\":{\"connections\":%u,\"connections_total\":%" PRIu64
                ",\"connections_refused\":%" PRIu64 ",\"bytes_in\":%" PRIu64
                ",\"bytes_out\":%" PRIu64 ",\"logins\":%" PRIu64 ",\"auth_failures\":%" PRIu64
                ",\"commands\":%" PRIu64 ",\"appended\":%" PRIu64 ",\"expunged\":%" PRIu64
                ",\"fetched\":%" PRIu64 "}",
                st.active, st.total, st.rejected, st.bytes_in, st.bytes_out,
                __atomic_load_n(&c->logins, __ATOMIC_RELAXED),
                __atomic_load_n(&c->auth_failures, __ATOMIC_RELAXED),
                __atomic_load_n(&c->commands, __ATOMIC_RELAXED),
                __atomic_load_n(&c->appended, __ATOMIC_RELAXED),
                __atomic_load_n(&c->expunged, __ATOMIC_RELAXED),
                __atomic_load_n(&c->fetched, __ATOMIC_RELAXED));
}

bool imap_user_enter(struct imap_context *ctx, const char *user, int max)
{
    pthread_mutex_lock(&ctx->users_lock);
    struct imap_user_count *u = ctx->users;
    while (u && strcmp(u->user, user) != 0)
        u = u->next;
    bool ok = u == NULL || u->count < max;
    if (ok) {
        if (u == NULL) {
            u = xcalloc(1, sizeof(*u));
            u->user = xstrdup(user);
            u->next = ctx->users;
            ctx->users = u;
        }
        u->count++;
    }
    pthread_mutex_unlock(&ctx->users_lock);
    return ok;
}

void imap_user_leave(struct imap_context *ctx, const char *user)
{
    pthread_mutex_lock(&ctx->users_lock);
    for (struct imap_user_count **pp = &ctx->users; *pp; pp = &(*pp)->next) {
        struct imap_user_count *u = *pp;
        if (strcmp(u->user, user) != 0) continue;
        if (--u->count == 0) {
            *pp = u->next;
            free(u->user);
            free(u);
        }
        break;
    }
    pthread_mutex_unlock(&ctx->users_lock);
}

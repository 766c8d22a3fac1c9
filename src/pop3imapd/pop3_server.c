/* pop3_server.c - the POP3 front door of alkaid-pop3imapd: ports 110 and 995
 *
 * Two listener definitions (they must outlive the server, so they live in struct
 * pop3_server), one struct server, and the context every session reads. A reload swaps
 * the context's configuration pointer (configurations are never freed while the
 * service runs, see service.h) and the server's limits and TLS context.
 *
 * SECURITY: see pop3_server.h.
 */
#include "pop3_server.h"

#include <inttypes.h>
#include <string.h>

#include "log.h"
#include "pop3_session.h"
#include "server.h"
#include "xalloc.h"

struct pop3_server {
    struct server *server;
    struct pop3_context ctx;
    struct listener_def listeners[2];
    /* what the listeners were made with, to tell when a reload needs a restart */
    char *bind;
    int port, tls_port;
};

static int handshake_timeout(const struct alkaid_config *cfg)
{
    return cfg->pop3.timeout > 0 && cfg->pop3.timeout < POP3_HANDSHAKE_TIMEOUT
               ? cfg->pop3.timeout
               : POP3_HANDSHAKE_TIMEOUT;
}

struct pop3_server *pop3_server_start(const struct alkaid_config *cfg, struct store *store,
                                      SSL_CTX *tls, const char **error_r)
{
    struct pop3_server *p = xcalloc(1, sizeof(*p));
    p->ctx.store = store;
    p->ctx.cfg = cfg;
    p->bind = xstrdup(cfg->pop3.bind);
    p->port = cfg->pop3.port;
    p->tls_port = cfg->pop3.tls_port;
    p->server = server_new("POP3", LOG_POP3, &p->ctx);
    p->ctx.server = p->server;
    server_set_limits(p->server, cfg->pop3.max_sessions, cfg->pop3.max_sessions_per_ip,
                      handshake_timeout(cfg));
    server_set_tls(p->server, tls);
    if (server_listen_pair(p->server, p->listeners, "POP3", p->bind, cfg->pop3.port,
                           cfg->pop3.tls_port, pop3_session_handler, POP3_BUSY_REPLY, error_r) < 0)
        goto fail;
    if (server_start(p->server) < 0) {
        *error_r = "POP3: cannot start the listener threads";
        goto fail;
    }
    return p;
fail:
    server_stop(p->server, 0);
    server_free(&p->server);
    free(p->bind);
    free(p);
    return NULL;
}

void pop3_server_reload(struct pop3_server *p, const struct alkaid_config *cfg, SSL_CTX *tls)
{
    server_set_limits(p->server, cfg->pop3.max_sessions, cfg->pop3.max_sessions_per_ip,
                      handshake_timeout(cfg));
    server_set_tls(p->server, tls);
    __atomic_store_n(&p->ctx.cfg, cfg, __ATOMIC_RELEASE);
    if (strcmp(cfg->pop3.bind, p->bind) != 0 || cfg->pop3.port != p->port ||
        cfg->pop3.tls_port != p->tls_port)
        log_line(LOG_POP3, NULL,
                 "POP3 listener address or ports changed: they take effect after a restart");
}

void pop3_server_stop(struct pop3_server **pp, int grace_ms)
{
    struct pop3_server *p = *pp;
    if (p == NULL) return;
    server_stop(p->server, grace_ms);
    server_free(&p->server);
    free(p->bind);
    free(p);
    *pp = NULL;
}

void pop3_server_status(struct pop3_server *p, struct sbuf *json)
{
    struct server_stats st;
    server_get_stats(p->server, &st);
    const struct pop3_stats *c = &p->ctx.stats;
    sbuf_printf(json,
                ",\"pop3\":{\"connections\":%u,\"total\":%" PRIu64 ",\"rejected\":%" PRIu64
                ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"logins\":%" PRIu64
                ",\"auth_failures\":%" PRIu64 ",\"retrieved\":%" PRIu64 ",\"deleted\":%" PRIu64 "}",
                st.active, st.total, st.rejected, st.bytes_in, st.bytes_out,
                __atomic_load_n(&c->logins, __ATOMIC_RELAXED),
                __atomic_load_n(&c->auth_failures, __ATOMIC_RELAXED),
                __atomic_load_n(&c->retrieved, __ATOMIC_RELAXED),
                __atomic_load_n(&c->deleted, __ATOMIC_RELAXED));
}

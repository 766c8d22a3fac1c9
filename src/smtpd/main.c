/* main.c - alkaid-smtpd: SMTP receive and submission, local delivery, the queue
 *
 * Wires the modules together: the account store, the SMTP server with its three ports,
 * the TLS context, the start-up checks of temp/ and mail/FORWARD/, and ctl STATUS.
 *
 * SECURITY: ports are opened before privileges are dropped (service.c); nothing here
 * reads from the network.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "fsutil.h"
#include "log.h"
#include "queue.h"
#include "service.h"
#include "smtp_session.h"
#include "smtpd.h"
#include "spool.h"
#include "tls.h"
#include "xalloc.h"

#define SMTP_BUSY_REPLY "421 4.7.0 Too many connections, try again later\r\n"

static struct listener_def listeners[] = {
    {.name = "SMTP",
     .kind = SMTP_PORT_MX,
     .handler = smtp_session_run,
     .busy_reply = SMTP_BUSY_REPLY,
     .key = "[SMTP] Port"},
    {.name = "Submission",
     .kind = SMTP_PORT_SUBMISSION,
     .handler = smtp_session_run,
     .busy_reply = SMTP_BUSY_REPLY,
     .key = "[SMTP] SubmissionPort"},
    {.name = "SMTPS",
     .implicit_tls = true,
     .kind = SMTP_PORT_SMTPS,
     .handler = smtp_session_run,
     .busy_reply = SMTP_BUSY_REPLY,
     .key = "[SMTP] TLSPort"},
};

static void report_damaged(const char *name, const char *why)
{
    log_error(LOG_SMTP, NULL, "Queue file %s: %s", name, why);
}

static SSL_CTX *make_tls(const struct alkaid_config *cfg, const char **error_r)
{
    return tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ciphers, error_r);
}

static void apply_limits(const struct alkaid_config *cfg)
{
    server_set_limits(smtpd.server, cfg->smtp.max_sessions, cfg->smtp.max_sessions_per_ip,
                      cfg->smtp.timeout);
}

static int smtpd_start(const struct alkaid_config *cfg, const char **error_r)
{
    spool_clean_temp(cfg->temp_dir);
    char *forward = xasprintf("%s/FORWARD", cfg->mail_dir);
    int reclaimed = spool_queue_recover(forward, report_damaged);
    free(forward);
    if (reclaimed > 0)
        log_line(LOG_SMTP, NULL, "Reclaimed %d queue file%s left in transmission", reclaimed,
                 reclaimed == 1 ? "" : "s");

    smtpd.store = service_open_store(cfg, error_r);
    if (smtpd.store == NULL) return -1;
    SSL_CTX *tls = make_tls(cfg, error_r);
    if (tls == NULL) return -1;
    smtpd.server = server_new("SMTP", LOG_SMTP, NULL);
    server_set_tls(smtpd.server, tls);
    SSL_CTX_free(tls);
    apply_limits(cfg);
    if (queue_start(cfg, error_r) < 0) return -1;

    listeners[0].bind = listeners[1].bind = listeners[2].bind = cfg->smtp.bind;
    listeners[0].port = cfg->smtp.port;
    listeners[1].port = cfg->smtp.submission_port;
    listeners[2].port = cfg->smtp.tls_port;
    for (size_t i = 0; i < sizeof(listeners) / sizeof(listeners[0]); i++) {
        if (server_listen(smtpd.server, &listeners[i], error_r) < 0) goto fail;
        if (listeners[i].port)
            log_line(LOG_SMTP, NULL, "Listening for %s on %s port %d", listeners[i].name,
                     cfg->smtp.bind, listeners[i].port);
    }
    if (server_start(smtpd.server) < 0) goto fail;
    return 0;
fail:
    /* the service will not call stop: nothing of ours may outlive its configuration */
    queue_stop();
    return -1;
}

static int smtpd_reload(const struct alkaid_config *cfg, const char **error_r)
{
    SSL_CTX *tls = make_tls(cfg, error_r);
    if (tls == NULL) return -1;
    server_set_tls(smtpd.server, tls);
    SSL_CTX_free(tls);
    apply_limits(cfg);
    if (queue_reload(cfg, error_r) < 0) return -1;
    if (cfg->smtp.port != listeners[0].port || cfg->smtp.submission_port != listeners[1].port ||
        cfg->smtp.tls_port != listeners[2].port || strcmp(cfg->smtp.bind, listeners[0].bind) != 0)
        log_line(LOG_SMTP, NULL, "Port or address changes take effect at the next restart");
    return 0;
}

static void smtpd_stop(void)
{
    if (smtpd.server) {
        server_stop(smtpd.server, 5000);
        server_free(&smtpd.server);
    }
    queue_stop();
    spool_pool_drain();
    store_close(&smtpd.store);
}

static unsigned queue_length(const struct alkaid_config *cfg)
{
    char *dir = xasprintf("%s/FORWARD", cfg->mail_dir);
    DIR *d = opendir(dir);
    free(dir);
    if (d == NULL) return 0;
    unsigned n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && (strcmp(de->d_name + len - 4, ".tmp") == 0 ||
                        strcmp(de->d_name + len - 4, ".tm$") == 0))
            n++;
    }
    closedir(d);
    return n;
}

static void smtpd_status(struct sbuf *json)
{
    struct server_stats st = {0};
    if (smtpd.server) server_get_stats(smtpd.server, &st);
    const struct smtpd_counters *c = &smtpd.counters;
    sbuf_printf(json,
                ",\"smtp\":{\"connections\":%u,\"connections_total\":%" PRIu64
                ",\"connections_refused\":%" PRIu64 ",\"bytes_in\":%" PRIu64
                ",\"bytes_out\":%" PRIu64 "},\"messages_in\":%" PRIu64
                ",\"messages_refused\":%" PRIu64 ",\"local_deliveries\":%" PRIu64
                ",\"remote_queued\":%" PRIu64 ",\"auth_ok\":%" PRIu64 ",\"auth_failed\":%" PRIu64
                ",\"queue\":%u",
                st.active, st.total, st.rejected, st.bytes_in, st.bytes_out,
                __atomic_load_n(&c->messages_in, __ATOMIC_RELAXED),
                __atomic_load_n(&c->messages_rejected, __ATOMIC_RELAXED),
                __atomic_load_n(&c->rcpts_local, __ATOMIC_RELAXED),
                __atomic_load_n(&c->rcpts_remote, __ATOMIC_RELAXED),
                __atomic_load_n(&c->auth_ok, __ATOMIC_RELAXED),
                __atomic_load_n(&c->auth_failed, __ATOMIC_RELAXED), queue_length(service_config()));
    queue_status(json);
    smtpd_today_status(json);
}

/* ctl FLUSH [id], HOLD, RELEASE */
static int smtpd_command(const char *command, const char *arg, struct sbuf *reply)
{
    if (strcmp(command, "FLUSH") == 0) {
        if (queue_flush(arg) < 0) {
            sbuf_printf(reply, "ERR no message %s in the queue\n", arg);
            return 0;
        }
        sbuf_appends(reply, arg && *arg ? "OK trying it now\n" : "OK flushing the queue\n");
        return 0;
    }
    if (strcmp(command, "HOLD") == 0 || strcmp(command, "RELEASE") == 0) {
        if (arg && *arg) {
            sbuf_appends(reply, "ERR use alkaid-user queue hold|release ID for one message\n");
            return 0;
        }
        bool hold = strcmp(command, "HOLD") == 0;
        queue_hold_all(hold);
        sbuf_appends(reply,
                     hold ? "OK outbound delivery held\n" : "OK outbound delivery released\n");
        if (!hold) queue_flush(NULL);
        return 0;
    }
    return -1;
}

static const struct service_ops smtpd_ops = {
    .name = "smtpd",
    .title = "SMTP",
    .channel = LOG_SMTP,
    .needs_tls = true,
    .start = smtpd_start,
    .reload = smtpd_reload,
    .stop = smtpd_stop,
    .status = smtpd_status,
    .command = smtpd_command,
};

int main(int argc, char **argv)
{
    return service_main(argc, argv, &smtpd_ops);
}

/* main.c - alkaid-controld: the control service
 *
 * Runs the shared service life cycle (ctl STATUS/RELOAD/STOP, logs), the remote
 * administration port (admin_session.c, docs/admin-protocol.md), the watchdog
 * (watchdog.c: with --supervise it also starts and restarts the other two services) and
 * the dial-up scheduler (dialup.c, docs/dialup.md); the web admin builds on it.
 *
 * SECURITY: the admin port is the only network port: implicit TLS, administrators only
 * (admin.h). It is bound here, before service_main() drops privileges.
 */
#include <stddef.h>

#include "admin.h"
#include "dialup.h"
#include "service.h"
#include "tls.h"
#include "watchdog.h"

static struct store *store;

static int controld_start(const struct alkaid_config *cfg, const char **error_r)
{
    store = service_open_store(cfg, error_r);
    if (store == NULL) return -1;
    SSL_CTX *tls = tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ciphers, error_r);
    if (tls == NULL) return -1;
    int r = admin_start(cfg, store, tls, error_r);
    SSL_CTX_free(tls); /* the port keeps its own reference */
    if (r < 0) return -1;
    if (watchdog_start(cfg, error_r) < 0) return -1;
    return dialup_start(cfg, error_r);
}

static int controld_reload(const struct alkaid_config *cfg, const char **error_r)
{
    SSL_CTX *tls = tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ciphers, error_r);
    if (tls == NULL) return -1;
    admin_reload(cfg, tls);
    SSL_CTX_free(tls);
    dialup_reload(cfg);
    return 0;
}

static void controld_stop(void)
{
    dialup_stop();
    watchdog_stop();
    admin_stop();
    store_close(&store);
}

static void controld_status(struct sbuf *json)
{
    admin_status(json);
    watchdog_status(json);
    dialup_status(json);
}

/* RESTART (watchdog), DIALUP CONNECT|DISCONNECT (dial-up) */
static int controld_command(const char *command, const char *arg, struct sbuf *reply)
{
    if (watchdog_command(command, arg, reply) == 0) return 0;
    return dialup_command(command, arg, reply);
}

static const struct service_ops controld_ops = {
    .name = "controld",
    .title = "Control",
    .channel = LOG_CONTROL,
    .needs_tls = true,
    .start = controld_start,
    .reload = controld_reload,
    .stop = controld_stop,
    .status = controld_status,
    .command = controld_command,
    .option = watchdog_option,
};

int main(int argc, char **argv)
{
    return service_main(argc, argv, &controld_ops);
}

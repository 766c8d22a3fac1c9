/* main.c - alkaid-pop3imapd: the mail readers' service, POP3 and IMAP
 *
 * Wires the shared pieces to the protocol front doors: one account store and one TLS
 * context for the process, handed to each front door (pop3_server.c, imap_server.c).
 * service_main() does everything else a daemon does.
 *
 * SECURITY: the listeners are bound here, before service_main() drops privileges; no
 * client byte is read in this file.
 */
#include <stdlib.h>

#include "imap_server.h"
#include "log.h"
#include "pop3_server.h"
#include "service.h"
#include "store.h"
#include "tls.h"

static struct store *store;
static struct pop3_server *pop3;
static struct imap_server *imap;

static SSL_CTX *make_tls(const struct alkaid_config *cfg, const char **error_r)
{
    return tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ciphers, error_r);
}

static int start(const struct alkaid_config *cfg, const char **error_r)
{
    store = service_open_store(cfg, error_r);
    if (store == NULL) return -1;
    SSL_CTX *tls = make_tls(cfg, error_r);
    if (tls == NULL) return -1;
    pop3 = pop3_server_start(cfg, store, tls, error_r);
    if (pop3) imap = imap_server_start(cfg, store, tls, error_r);
    SSL_CTX_free(tls); /* the servers keep their own references */
    return pop3 != NULL && imap != NULL ? 0 : -1;
}

static int reload(const struct alkaid_config *cfg, const char **error_r)
{
    SSL_CTX *tls = make_tls(cfg, error_r);
    if (tls == NULL) return -1;
    if (pop3) pop3_server_reload(pop3, cfg, tls);
    if (imap) imap_server_reload(imap, cfg, tls);
    SSL_CTX_free(tls);
    return 0;
}

static void stop(void)
{
    pop3_server_stop(&pop3, POP3_STOP_GRACE_MS);
    imap_server_stop(&imap, IMAP_STOP_GRACE_MS);
    store_close(&store);
}

static void status(struct sbuf *json)
{
    if (pop3) pop3_server_status(pop3, json);
    if (imap) imap_server_status(imap, json);
}

static const struct service_ops ops = {
    .name = "pop3imapd",
    .title = "POP3/IMAP",
    .channel = LOG_POP3,
    .needs_tls = true,
    .start = start,
    .reload = reload,
    .stop = stop,
    .status = status,
};

int main(int argc, char **argv)
{
    return service_main(argc, argv, &ops);
}

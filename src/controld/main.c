/* main.c - alkaid-controld: the control service
 *
 * For now it runs the shared service life cycle (ctl STATUS/RELOAD/STOP, logs); the
 * remote admin port, web admin, watchdog and dial-up build on it.
 *
 * SECURITY: it opens no network port yet; the ctl socket is the only way in.
 */
#include <stddef.h>

#include "service.h"

static int controld_start(const struct alkaid_config *cfg, const char **error_r)
{
    (void)cfg;
    (void)error_r;
    return 0;
}

static void controld_stop(void)
{
}

static const struct service_ops controld_ops = {
    .name = "controld",
    .title = "Control",
    .channel = LOG_CONTROL,
    .needs_tls = false,
    .start = controld_start,
    .stop = controld_stop,
};

int main(int argc, char **argv)
{
    return service_main(argc, argv, &controld_ops);
}

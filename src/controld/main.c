/* main.c - alkaid-controld: the control service
 *
 * It runs the shared service life cycle (ctl STATUS/RELOAD/STOP, logs) and the watchdog
 * (watchdog.c: with --supervise it also starts and restarts the other two services); the
 * remote admin port, web admin and dial-up build on it.
 *
 * SECURITY: it opens no network port yet; the ctl socket is the only way in.
 */
#include <stddef.h>

#include "service.h"
#include "watchdog.h"

static int controld_start(const struct alkaid_config *cfg, const char **error_r)
{
    if (watchdog_start(cfg, error_r) < 0) return -1;
    return 0;
}

static void controld_stop(void)
{
    watchdog_stop();
}

static void controld_status(struct sbuf *json)
{
    watchdog_status(json);
}

static int controld_command(const char *command, const char *arg, struct sbuf *reply)
{
    if (watchdog_command(command, arg, reply) == 0) return 0;
    return -1;
}

static const struct service_ops controld_ops = {
    .name = "controld",
    .title = "Control",
    .channel = LOG_CONTROL,
    .needs_tls = false,
    .start = controld_start,
    .stop = controld_stop,
    .status = controld_status,
    .command = controld_command,
    .option = watchdog_option,
};

int main(int argc, char **argv)
{
    return service_main(argc, argv, &controld_ops);
}

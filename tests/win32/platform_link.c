/* platform_link.c - links the Win32 platform layer into a program (CI, with mingw-w64)
 *
 * Not run: it only proves that platform_win32.c provides every call of platform.h and
 * links against the Windows libraries it names (docs/windows.md).
 */
#include <stdio.h>

#include "platform.h"

int main(int argc, char **argv)
{
    const char *err = NULL;
    if (argc > 1 && platform_service_install("smtpd", "SMTP", argv[1], &err) < 0) puts(err);
    if (argc > 2 && platform_service_uninstall("smtpd", &err) < 0) puts(err);
    if (argc > 3) {
        platform_signals_init();
        if (platform_daemonize(&err) < 0) puts(err);
        int fd = platform_pidfile("alkaid.pid", &err);
        printf("%d %ld\n", fd, platform_pidfile_owner("alkaid.pid"));
        platform_drop_privileges("", &err);
        platform_chown_to("alkaid.pid", "");
        platform_ready(NULL);
        platform_request_stop();
        platform_event_handled(platform_wait_event());
        platform_pidfile_remove("alkaid.pid");
    }
    return 0;
}

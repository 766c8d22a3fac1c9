/* platform.h - what differs between operating systems: daemon start, pid files,
 * signals, privileges
 *
 * platform_posix.c implements it for Linux and the BSDs; the Win32 service layer
 * (ServiceMain, the control handler, --install / --uninstall) implements the same calls
 * in platform_win32.c.
 * No other file has an #ifdef for the operating system.
 *
 * SECURITY: the pid file is locked for the life of the process, so two copies of a
 * service can never run on one root; privileges are dropped before any client is read.
 */
#ifndef ALKAID_PLATFORM_H
#define ALKAID_PLATFORM_H

#include <stdbool.h>

enum platform_event {
    PLATFORM_EV_STOP = 1,     /* SIGTERM / SIGINT / service stop */
    PLATFORM_EV_RELOAD = 2,   /* SIGHUP */
    PLATFORM_EV_PAUSE = 3,    /* Windows service pause: stop accepting new connections */
    PLATFORM_EV_CONTINUE = 4, /* Windows service continue: accept again */
};

/* Detaches from the terminal. Returns in the child; the parent stays until the child
 * calls platform_ready() and then exits 0 (or prints the child's error and exits 1). */
int platform_daemonize(const char **error_r);
/* Tells the waiting parent (if any) that start-up succeeded (error NULL) or failed. */
void platform_ready(const char *error);
/* Creates and locks path, writing our pid. -1 with *error_r if another process holds it
 * ("already running (pid N)"). */
int platform_pidfile(const char *path, const char **error_r);
void platform_pidfile_remove(const char *path);
/* The pid written in a pid file whose lock is held by a live process, or 0. */
long platform_pidfile_owner(const char *path);
/* Blocks the signals handled by platform_wait_event() in this and all later threads, and
 * ignores SIGPIPE. Call before creating threads. */
void platform_signals_init(void);
/* Waits for the next event. */
enum platform_event platform_wait_event(void);
/* Tells the service manager that ev has been acted on (Windows: reports SERVICE_PAUSED or
 * SERVICE_RUNNING after PAUSE / CONTINUE; nothing on POSIX). */
void platform_event_handled(enum platform_event ev);
/* Asks this process to stop, as if a stop signal arrived. */
void platform_request_stop(void);
/* Switches to user (and its groups) when running as root. 0, or -1 with *error_r. */
int platform_drop_privileges(const char *user, const char **error_r);
/* Gives ownership of path to user (no-op unless root). */
void platform_chown_to(const char *path, const char *user);

/* Registers alkaid-<name> with the service manager, started at boot with "--root root"
 * (Windows: the Service Control Manager, docs/windows.md). 0 done; -1 failed, *error_r
 * says why; -2 not done this way here (POSIX: *error_r points to the systemd units). */
int platform_service_install(const char *name, const char *title, const char *root,
                             const char **error_r);
/* Stops alkaid-<name> if it runs and removes it from the service manager; as above. */
int platform_service_uninstall(const char *name, const char **error_r);

#endif

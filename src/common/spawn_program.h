/* spawn_program.h - starting a program from a service (the watchdog's children, dial-up's
 * Connect/Disconnect, a service restarted over the admin port)
 *
 * SECURITY: the program is run directly (posix_spawn, no shell), with stdin on
 * /dev/null, an empty signal mask and default signal actions: not the service's blocked
 * SIGTERM/SIGINT/SIGHUP nor its ignored SIGPIPE, so that it can be stopped, and what it
 * leaves running (a pppd) too.
 */
#ifndef ALKAID_SPAWN_PROGRAM_H
#define ALKAID_SPAWN_PROGRAM_H

#include <stdbool.h>
#include <sys/types.h>

#define SPAWN_OUT_DEVNULL (-1) /* stdout and stderr on /dev/null */
#define SPAWN_OUT_INHERIT (-2) /* stdout and stderr as the service's */

/* Starts argv[0] (searched in $PATH when search) with stdout and stderr on out_fd (or as
 * SPAWN_OUT_*). 0 with *pid_r, or an errno value. */
int spawn_program(char *const argv[], bool search, int out_fd, pid_t *pid_r);

#endif

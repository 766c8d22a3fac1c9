/* platform_posix.c - daemon start, pid files, signals and privileges on POSIX systems
 *
 * The daemon's parent waits on a pipe for the child's verdict, so "alkaid-smtpd --root
 * R" exits 0 only once the service listens, and prints the reason when it cannot.
 *
 * SECURITY: privileges are dropped with initgroups/setgid/setuid, checked by trying to
 * regain root afterwards.
 */
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"

static __thread char platform_error[512];
static int ready_fd = -1;

int platform_daemonize(const char **error_r)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) goto fail;
    pid_t pid = fork();
    if (pid < 0) goto fail;
    if (pid > 0) {
        close(pfd[1]);
        char buf[1024];
        size_t len = 0;
        for (;;) {
            ssize_t n = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            len += (size_t)n;
            if (len == sizeof(buf) - 1) break;
        }
        buf[len] = '\0';
        /* drain to the end: a failing child keeps the pipe open until it exits */
        char sink[256];
        while (read(pfd[0], sink, sizeof(sink)) > 0) {
        }
        if (len > 0 && strcmp(buf, "OK") == 0) _exit(0);
        fprintf(stderr, "%s\n", len ? buf : "the service exited during start-up (see log/error/)");
        _exit(1);
    }
    close(pfd[0]);
    ready_fd = pfd[1];
    if (setsid() < 0) goto fail;
    pid = fork();
    if (pid < 0) goto fail;
    if (pid > 0) _exit(0);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO) close(null);
    }
    umask(027);
    return 0;
fail:
    snprintf(platform_error, sizeof(platform_error), "cannot start in the background: %s",
             strerror(errno));
    *error_r = platform_error;
    return -1;
}

void platform_ready(const char *error)
{
    if (ready_fd < 0) return;
    const char *msg = error ? error : "OK";
    (void)fs_write_all(ready_fd, msg, strlen(msg));
    /* on success the waiting parent may go at once; on failure it waits for the end of
     * the pipe, i.e. until this process has exited and let go of its pid file and ports */
    if (error == NULL)
        close(ready_fd);
    else
        fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
    if (error == NULL) ready_fd = -1;
}

int platform_pidfile(const char *path, const char **error_r)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        snprintf(platform_error, sizeof(platform_error), "cannot open %s: %s", path,
                 strerror(errno));
        *error_r = platform_error;
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(platform_error, sizeof(platform_error),
                 "already running on this root (pid %s, %s)", buf[0] ? buf : "?", path);
        *error_r = platform_error;
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        snprintf(platform_error, sizeof(platform_error), "cannot write %s: %s", path,
                 strerror(errno));
        *error_r = platform_error;
        close(fd);
        return -1;
    }
    return fd; /* kept open (and locked) until exit */
}

void platform_pidfile_remove(const char *path)
{
    unlink(path);
}

long platform_pidfile_owner(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return 0;
    long pid = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
        char buf[32];
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            pid = strtol(buf, NULL, 10);
        }
    }
    close(fd);
    return pid;
}

static sigset_t handled;

void platform_signals_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&handled);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &handled, NULL);
}

enum platform_event platform_wait_event(void)
{
    for (;;) {
        int sig = 0;
        if (sigwait(&handled, &sig) != 0) continue;
        if (sig == SIGHUP) return PLATFORM_EV_RELOAD;
        if (sig == SIGTERM || sig == SIGINT) return PLATFORM_EV_STOP;
    }
}

void platform_request_stop(void)
{
    kill(getpid(), SIGTERM);
}

static int lookup_user(const char *user, uid_t *uid, gid_t *gid)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || res == NULL) return -1;
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

int platform_drop_privileges(const char *user, const char **error_r)
{
    if (user == NULL || *user == '\0' || geteuid() != 0) return 0;
    uid_t uid;
    gid_t gid;
    if (lookup_user(user, &uid, &gid) < 0) {
        snprintf(platform_error, sizeof(platform_error), "[System] User: no such user '%s'", user);
        goto fail;
    }
    if (initgroups(user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        snprintf(platform_error, sizeof(platform_error), "cannot switch to user '%s': %s", user,
                 strerror(errno));
        goto fail;
    }
    if (uid != 0 && setuid(0) == 0) {
        snprintf(platform_error, sizeof(platform_error), "could regain root after switching");
        goto fail;
    }
    return 0;
fail:
    *error_r = platform_error;
    return -1;
}

void platform_chown_to(const char *path, const char *user)
{
    uid_t uid;
    gid_t gid;
    if (user == NULL || *user == '\0' || geteuid() != 0) return;
    if (lookup_user(user, &uid, &gid) < 0) return;
    if (chown(path, uid, gid) < 0) {
        /* reported when the service later fails to write there */
    }
}

void platform_event_handled(enum platform_event ev)
{
    (void)ev;
}

static const char *no_scm(const char *name)
{
    snprintf(platform_error, sizeof(platform_error),
             "--install and --uninstall are for Windows' Service Control Manager; here, use "
             "the systemd unit config/alkaid-%s.service (installed by cmake --install: "
             "systemctl enable --now alkaid-%s), see docs/systemd.md",
             name, name);
    return platform_error;
}

int platform_service_install(const char *name, const char *title, const char *root,
                             const char **error_r)
{
    (void)title;
    (void)root;
    *error_r = no_scm(name);
    return -2;
}

int platform_service_uninstall(const char *name, const char **error_r)
{
    *error_r = no_scm(name);
    return -2;
}

/* ctl.c - the local control channel of a service
 *
 * One thread accepts and serves connections one at a time: control traffic is rare
 * and short, and serialising it keeps RELOAD and STOP from racing each other.
 *
 * SECURITY: SO_PEERCRED must name root or our own user; everyone else is turned away
 * before a byte is read.
 */
#include "ctl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "fsutil.h"
#include "xalloc.h"

struct ctl_server {
    int fd;
    char *path;
    pthread_t thread;
    ctl_handler_fn *handler;
    void *ctx;
    bool stopping;
};

static __thread char ctl_error[512];

/* Fills addr for path. Paths too long for sun_path go through /proc/self/fd/N of the
 * directory (Linux); *dirfd_r is then an open descriptor the caller closes. */
static int make_addr(const char *path, struct sockaddr_un *addr, int *dirfd_r)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    *dirfd_r = -1;
    if (strlen(path) < sizeof(addr->sun_path)) {
        memcpy(addr->sun_path, path, strlen(path) + 1);
        return 0;
    }
    char *dir = fs_dirname(path);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (dfd < 0) return -1;
    int n = snprintf(addr->sun_path, sizeof(addr->sun_path), "/proc/self/fd/%d/%s", dfd, base);
    if (n < 0 || (size_t)n >= sizeof(addr->sun_path)) {
        close(dfd);
        errno = ENAMETOOLONG;
        return -1;
    }
    *dirfd_r = dfd;
    return 0;
}

static void serve_one(struct ctl_server *ctl, int fd)
{
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
        const char *msg = "ERR permission denied\n";
        (void)!write(fd, msg, strlen(msg));
        return;
    }
    struct conn *c = conn_new(fd);
    struct sbuf line = SBUF_INIT(CTL_MAX_LINE);
    enum conn_status st = conn_read_line(c, &line, CTL_MAX_LINE, conn_now_ms() + 5000);
    struct sbuf reply = SBUF_INIT(SBUF_NO_MAX);
    if (st == CONN_OK) {
        char *cmd = line.data ? line.data : (char *)"";
        char *arg = cmd + strcspn(cmd, " ");
        if (*arg) *arg++ = '\0';
        for (char *p = cmd; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        ctl->handler(cmd, arg, &reply, ctl->ctx);
    } else if (st == CONN_TOOLONG) {
        sbuf_appends(&reply, "ERR line too long\n");
    }
    if (reply.len) {
        conn_write(c, reply.data, reply.len);
        conn_flush(c, conn_now_ms() + 5000);
    }
    sbuf_free(&reply);
    sbuf_free(&line);
    c->fd = -1; /* the caller closes fd */
    conn_free(&c);
}

static void *ctl_thread(void *arg)
{
    struct ctl_server *ctl = arg;
    for (;;) {
        int fd = accept4(ctl->fd, NULL, NULL, SOCK_CLOEXEC);
        if (__atomic_load_n(&ctl->stopping, __ATOMIC_ACQUIRE)) {
            if (fd >= 0) close(fd);
            break;
        }
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EINVAL) break;
            usleep(100000);
            continue;
        }
        serve_one(ctl, fd);
        close(fd);
    }
    return NULL;
}

struct ctl_server *ctl_server_start(const char *path, ctl_handler_fn *handler, void *ctx,
                                    const char **error_r)
{
    struct sockaddr_un addr;
    int dfd;
    if (make_addr(path, &addr, &dfd) < 0) {
        snprintf(ctl_error, sizeof(ctl_error), "control socket %s: %s", path, strerror(errno));
        *error_r = ctl_error;
        return NULL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail;
    unlink(addr.sun_path); /* a stale socket: the pid file lock says nobody owns it */
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    umask(old);
    if (r < 0 || listen(fd, 16) < 0) goto fail;
    if (dfd >= 0) close(dfd);
    struct ctl_server *ctl = xcalloc(1, sizeof(*ctl));
    ctl->fd = fd;
    ctl->path = xstrdup(path);
    ctl->handler = handler;
    ctl->ctx = ctx;
    if (pthread_create(&ctl->thread, NULL, ctl_thread, ctl) != 0) {
        close(fd);
        free(ctl->path);
        free(ctl);
        snprintf(ctl_error, sizeof(ctl_error), "control socket: cannot start its thread");
        *error_r = ctl_error;
        return NULL;
    }
    return ctl;
fail:
    snprintf(ctl_error, sizeof(ctl_error), "control socket %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    if (dfd >= 0) close(dfd);
    *error_r = ctl_error;
    return NULL;
}

void ctl_server_stop(struct ctl_server **ctlp)
{
    struct ctl_server *ctl = *ctlp;
    if (ctl == NULL) return;
    __atomic_store_n(&ctl->stopping, true, __ATOMIC_RELEASE);
    shutdown(ctl->fd, SHUT_RDWR);
    pthread_join(ctl->thread, NULL);
    close(ctl->fd);
    unlink(ctl->path);
    free(ctl->path);
    free(ctl);
    *ctlp = NULL;
}

int ctl_request(const char *path, const char *command, struct sbuf *reply, const char **error_r)
{
    return ctl_request_timeout(path, command, 30000, reply, error_r);
}

int ctl_request_timeout(const char *path, const char *command, int timeout_ms, struct sbuf *reply,
                        const char **error_r)
{
    struct sockaddr_un addr;
    int dfd;
    if (make_addr(path, &addr, &dfd) < 0) {
        snprintf(ctl_error, sizeof(ctl_error), "%s: %s", path, strerror(errno));
        *error_r = ctl_error;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        snprintf(ctl_error, sizeof(ctl_error), "cannot reach the service at %s: %s", path,
                 strerror(errno));
        goto fail;
    }
    if (dfd >= 0) close(dfd);
    dfd = -1;
    size_t clen = strlen(command);
    if (fs_write_all(fd, command, clen) < 0 || fs_write_all(fd, "\n", 1) < 0) {
        snprintf(ctl_error, sizeof(ctl_error), "%s: %s", path, strerror(errno));
        goto fail;
    }
    char buf[4096];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, timeout_ms);
        if (r == 0) {
            snprintf(ctl_error, sizeof(ctl_error), "%s: no answer within %d ms", path, timeout_ms);
            goto fail;
        }
        if (r < 0 && errno == EINTR) continue;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        sbuf_append(reply, buf, (size_t)n);
    }
    close(fd);
    return 0;
fail:
    if (fd >= 0) close(fd);
    if (dfd >= 0) close(dfd);
    *error_r = ctl_error;
    return -1;
}

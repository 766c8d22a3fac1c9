/* test_ctl.c - unit tests for ctl.c (the local control channel of a service)
 *
 * Each test starts a ctl server on a socket in a fresh directory (mkdtemp() under
 * $ALKAID_TEST_TMP or /tmp) with a recording handler, and talks to it through
 * ctl_request() or a raw Unix socket. Covered: a round trip (the command upper-cased,
 * the argument passed as sent, the reply returned whole); many requests in a row; a
 * socket path longer than sun_path (108) through the /proc/self/fd fallback, for both
 * the server and the client; the longest line accepted and one octet more getting "ERR
 * line too long" without reaching the handler; a STOP-like handler that replies and
 * flags a stop; the socket file's mode 0600; a stale socket file left by a killed
 * service replaced at start; ctl_server_stop() removing the file so that later requests
 * fail with a clear error; a peer with another uid turned away before it is read.
 *
 * SECURITY: the socket mode and the peer credential check are the channel's access
 * control; the line limit bounds what a local client can make the service buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"
#include "fsutil.h"
#include "sbuf.h"
#include "testutil.h"
#include "xalloc.h"

struct record {
    pthread_mutex_t lock;
    int calls;
    char command[CTL_MAX_LINE + 1];
    char arg[CTL_MAX_LINE + 1];
    bool stop_requested;
};

struct fixture {
    char *dir;
    char *path;
    struct record rec;
    struct ctl_server *ctl;
};

static void handler(const char *command, const char *arg, struct sbuf *reply, void *ctx)
{
    struct record *r = ctx;
    pthread_mutex_lock(&r->lock);
    r->calls++;
    snprintf(r->command, sizeof(r->command), "%s", command);
    snprintf(r->arg, sizeof(r->arg), "%s", arg);
    if (strcmp(command, "STOP") == 0) {
        r->stop_requested = true;
        sbuf_appends(reply, "OK stopping\n");
    } else if (strcmp(command, "BIG") == 0) {
        /* a reply much bigger than a socket buffer and the client's read size */
        for (int i = 0; i < 20000; i++)
            sbuf_printf(reply, "line %05d\n", i);
    } else if (strcmp(command, "SILENT") == 0) {
        /* no reply at all */
    } else {
        sbuf_printf(reply, "OK %s [%s]\n", command, arg);
    }
    pthread_mutex_unlock(&r->lock);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    f->dir = make_tmpdir("ctl");
    if (f->dir == NULL) {
        free(f);
        return -1;
    }
    f->path = xasprintf("%s/test.sock", f->dir);
    pthread_mutex_init(&f->rec.lock, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ctl_server_stop(&f->ctl);
    rm_rf(f->dir);
    pthread_mutex_destroy(&f->rec.lock);
    free(f->path);
    free(f->dir);
    free(f);
    return 0;
}

static void start(struct fixture *f)
{
    const char *err = NULL;
    f->ctl = ctl_server_start(f->path, handler, &f->rec, &err);
    if (f->ctl == NULL) fail_msg("ctl_server_start: %s", err ? err : "?");
}

/* Sends command and returns the reply (caller frees); NULL with the error printed. */
static char *request(const char *path, const char *command)
{
    struct sbuf reply = SBUF_INIT(SBUF_NO_MAX);
    const char *err = NULL;
    if (ctl_request(path, command, &reply, &err) < 0) {
        sbuf_free(&reply);
        print_message("ctl_request: %s\n", err ? err : "?");
        return NULL;
    }
    char *s = xstrdup(sbuf_cstr(&reply));
    sbuf_free(&reply);
    return s;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    start(f);
    char *r = request(f->path, "status");
    assert_non_null(r);
    assert_string_equal(r, "OK STATUS []\n");
    free(r);
    assert_int_equal(f->rec.calls, 1);
    assert_string_equal(f->rec.command, "STATUS");
    assert_string_equal(f->rec.arg, "");

    /* the command is upper-cased, the argument is passed exactly as sent */
    r = request(f->path, "ScAn /var/Mail/x y.eml");
    assert_non_null(r);
    assert_string_equal(r, "OK SCAN [/var/Mail/x y.eml]\n");
    free(r);
    assert_string_equal(f->rec.command, "SCAN");
    assert_string_equal(f->rec.arg, "/var/Mail/x y.eml");
    assert_int_equal(f->rec.calls, 2);
}

static void test_many_requests(void **state)
{
    struct fixture *f = *state;
    start(f);
    for (int i = 0; i < 50; i++) {
        char cmd[32], want[64];
        snprintf(cmd, sizeof(cmd), "PING %d", i);
        snprintf(want, sizeof(want), "OK PING [%d]\n", i);
        char *r = request(f->path, cmd);
        assert_non_null(r);
        assert_string_equal(r, want);
        free(r);
    }
    assert_int_equal(f->rec.calls, 50);
}

static void test_big_reply(void **state)
{
    struct fixture *f = *state;
    start(f);
    char *r = request(f->path, "BIG");
    assert_non_null(r);
    assert_int_equal(strlen(r), 20000 * 11);
    assert_memory_equal(r, "line 00000\n", 11);
    assert_string_equal(r + 19999 * 11, "line 19999\n");
    free(r);
    /* an empty reply is still a completed request */
    r = request(f->path, "SILENT");
    assert_non_null(r);
    assert_string_equal(r, "");
    free(r);
}

static void test_long_path(void **state)
{
    struct fixture *f = *state;
    /* a directory whose path alone is longer than sun_path */
    struct sockaddr_un sun;
    char *deep = xasprintf("%s/%s/%s", f->dir,
                           "a-rather-long-directory-name-to-push-past-sun-path-0123456789",
                           "and-another-long-directory-name-to-be-sure-of-it-0123456789");
    assert_int_equal(fs_mkdirs(deep, 0700), 0);
    free(f->path);
    f->path = xasprintf("%s/service.sock", deep);
    assert_true(strlen(f->path) >= sizeof(sun.sun_path));

    start(f);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0); /* bound at the real (long) path */
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    char *r = request(f->path, "STATUS");
    assert_non_null(r);
    assert_string_equal(r, "OK STATUS []\n");
    free(r);

    /* no descriptor leaks from the fallback: many requests still work */
    for (int i = 0; i < 20; i++) {
        r = request(f->path, "PING");
        assert_non_null(r);
        free(r);
    }
    ctl_server_stop(&f->ctl);
    assert_null(f->ctl);
    assert_int_equal(access(f->path, F_OK), -1);
    free(deep);
}

static void test_line_too_long(void **state)
{
    struct fixture *f = *state;
    start(f);
    /* CTL_MAX_LINE counts the LF: CTL_MAX_LINE - 1 octets of command are the most */
    char *cmd = xmalloc(CTL_MAX_LINE + 2);
    memset(cmd, 'a', CTL_MAX_LINE - 1);
    cmd[CTL_MAX_LINE - 1] = '\0';
    char *r = request(f->path, cmd);
    assert_non_null(r);
    assert_memory_equal(r, "OK AAAA", 7);
    free(r);
    assert_int_equal(f->rec.calls, 1);

    memset(cmd, 'a', CTL_MAX_LINE);
    cmd[CTL_MAX_LINE] = '\0';
    r = request(f->path, cmd);
    assert_non_null(r);
    assert_string_equal(r, "ERR line too long\n");
    free(r);
    assert_int_equal(f->rec.calls, 1); /* never reached the handler */

    /* far past the limit */
    char *huge = xmalloc(64 * 1024 + 1);
    memset(huge, 'b', 64 * 1024);
    huge[64 * 1024] = '\0';
    r = request(f->path, huge);
    assert_non_null(r);
    assert_string_equal(r, "ERR line too long\n");
    free(r);
    free(huge);
    assert_int_equal(f->rec.calls, 1);

    /* the server is still fine */
    r = request(f->path, "STATUS");
    assert_non_null(r);
    assert_string_equal(r, "OK STATUS []\n");
    free(r);
    free(cmd);
}

static void test_stop_handler(void **state)
{
    struct fixture *f = *state;
    start(f);
    char *r = request(f->path, "stop");
    assert_non_null(r);
    assert_string_equal(r, "OK stopping\n");
    free(r);
    assert_true(f->rec.stop_requested);
    /* as a service does when it acts on the stop */
    ctl_server_stop(&f->ctl);
    assert_null(f->ctl);
    assert_int_equal(access(f->path, F_OK), -1);
}

static void test_socket_mode(void **state)
{
    struct fixture *f = *state;
    mode_t old = umask(0); /* the service's umask must not widen the socket */
    start(f);
    umask(old);
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    /* the process umask is restored by ctl_server_start() */
    mode_t now = umask(old);
    assert_int_equal(now, old);
}

static void test_stale_socket_replaced(void **state)
{
    struct fixture *f = *state;
    /* a socket file left behind by a service that was killed */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);
    assert_int_equal(access(f->path, F_OK), 0);

    start(f);
    char *r = request(f->path, "STATUS");
    assert_non_null(r);
    assert_string_equal(r, "OK STATUS []\n");
    free(r);
}

static void test_stop_removes_socket(void **state)
{
    struct fixture *f = *state;
    start(f);
    assert_int_equal(access(f->path, F_OK), 0);
    ctl_server_stop(&f->ctl);
    assert_null(f->ctl);
    assert_int_equal(access(f->path, F_OK), -1);
    ctl_server_stop(&f->ctl); /* a second stop is harmless */

    struct sbuf reply = SBUF_INIT(SBUF_NO_MAX);
    const char *err = NULL;
    assert_int_equal(ctl_request(f->path, "STATUS", &reply, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, "cannot reach"));
    assert_non_null(strstr(err, f->path));
    sbuf_free(&reply);

    /* and a new server can be started on the same path */
    start(f);
    char *r = request(f->path, "STATUS");
    assert_non_null(r);
    free(r);
}

static void test_start_errors(void **state)
{
    struct fixture *f = *state;
    char *bad = xasprintf("%s/no/such/dir/x.sock", f->dir);
    const char *err = NULL;
    struct ctl_server *c = ctl_server_start(bad, handler, &f->rec, &err);
    assert_null(c);
    assert_non_null(err);
    assert_non_null(strstr(err, bad));
    free(bad);
}

static void test_other_user_refused(void **state)
{
    struct fixture *f = *state;
    if (geteuid() != 0) skip(); /* needs to become another user */
    /* a directory another user can reach (the test tree may be closed to others) */
    char pub[] = "/tmp/alkaid-ctl-XXXXXX";
    assert_non_null(mkdtemp(pub));
    assert_int_equal(chmod(pub, 0711), 0);
    free(f->path);
    f->path = xasprintf("%s/test.sock", pub);
    start(f);
    /* let another user reach the socket, to see the credential check by itself */
    assert_int_equal(chmod(f->path, 0666), 0);

    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        alarm(10);
        close(pfd[0]);
        char out[256] = "";
        if (setgid(65534) < 0 || setuid(65534) < 0) {
            snprintf(out, sizeof(out), "SETUID-FAILED");
        } else {
            int fd = socket(AF_UNIX, SOCK_STREAM, 0);
            struct sockaddr_un sun = {.sun_family = AF_UNIX};
            snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->path);
            if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
                snprintf(out, sizeof(out), "CONNECT-FAILED %s", strerror(errno));
            } else {
                (void)!write(fd, "STOP\n", 5);
                size_t len = 0;
                ssize_t n;
                while (len < sizeof(out) - 1 &&
                       (n = read(fd, out + len, sizeof(out) - 1 - len)) > 0)
                    len += (size_t)n;
                out[len] = '\0';
            }
        }
        (void)!write(pfd[1], out, strlen(out));
        _exit(0);
    }
    close(pfd[1]);
    char got[256];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(got) - 1 && (n = read(pfd[0], got + len, sizeof(got) - 1 - len)) > 0)
        len += (size_t)n;
    got[len] = '\0';
    close(pfd[0]);
    waitpid(child, NULL, 0);
    ctl_server_stop(&f->ctl);
    rmdir(pub);
    if (strncmp(got, "CONNECT-FAILED", 14) == 0 || strcmp(got, "SETUID-FAILED") == 0) {
        print_message("cannot run the check here: %s\n", got);
        skip();
    }
    assert_string_equal(got, "ERR permission denied\n");
    assert_int_equal(f->rec.calls, 0);
    assert_false(f->rec.stop_requested);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* a server closing early must fail a test, not kill it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_socket_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_removes_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_user_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

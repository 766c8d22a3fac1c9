/* test_platform.c - unit tests for platform_posix.c (pid files, signals, privileges)
 *
 * Each test works in a fresh directory made by mkdtemp() under $ALKAID_TEST_TMP (or
 * /tmp). Covered: a pid file is created with our pid and locked, so a second
 * platform_pidfile() on the same path fails with "already running" naming the holder's
 * pid, and platform_pidfile_owner() reports that pid; the lock dies with its holder (a
 * forked child takes it, is seen as the owner, exits, and then the file can be taken
 * again although the child's pid is still written in it); a stale pid file with a dead
 * pid and no lock is taken over and rewritten; platform_pidfile_owner() of a missing or
 * unlocked file is 0; a pid file that is a symbolic link is refused; the file is removed
 * by platform_pidfile_remove(); platform_drop_privileges() with an unknown user names
 * [System] User (as root) and with "" or NULL changes nothing; the ctl/stop and SIGHUP
 * events come out of platform_wait_event().
 *
 * SECURITY: the pid file lock is what keeps two copies of a service off one root.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "platform.h"
#include "testutil.h"
#include "xalloc.h"

struct fixture {
    char *dir;
    char *pidfile;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    f->dir = make_tmpdir("platform");
    if (f->dir == NULL) {
        free(f);
        return -1;
    }
    f->pidfile = xasprintf("%s/test.pid", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rm_rf(f->dir);
    free(f->pidfile);
    free(f->dir);
    free(f);
    return 0;
}

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) return NULL;
    char buf[256];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return xstrdup(buf);
}

/* ---- pid files ------------------------------------------------------------------------ */

static void test_pidfile_written_and_locked(void **state)
{
    struct fixture *f = *state;
    const char *err = NULL;
    int fd = platform_pidfile(f->pidfile, &err);
    assert_true(fd >= 0);

    char *content = read_file(f->pidfile);
    assert_non_null(content);
    char want[32];
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    assert_string_equal(content, want);
    free(content);

    assert_int_equal(platform_pidfile_owner(f->pidfile), (long)getpid());

    /* a second taker (another open file description) is refused */
    err = NULL;
    assert_int_equal(platform_pidfile(f->pidfile, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, "already running"));
    char pidtext[32];
    snprintf(pidtext, sizeof(pidtext), "pid %ld", (long)getpid());
    assert_non_null(strstr(err, pidtext));
    assert_non_null(strstr(err, f->pidfile));
    /* the refused attempt did not disturb the holder's file */
    content = read_file(f->pidfile);
    assert_string_equal(content, want);
    free(content);
    assert_int_equal(platform_pidfile_owner(f->pidfile), (long)getpid());

    platform_pidfile_remove(f->pidfile);
    close(fd);
    assert_int_equal(access(f->pidfile, F_OK), -1);
    assert_int_equal(platform_pidfile_owner(f->pidfile), 0);
}

static void test_lock_dies_with_holder(void **state)
{
    struct fixture *f = *state;
    int go[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        alarm(10); /* never outlive a parent that failed an assertion */
        close(go[1]);
        close(ready[0]);
        const char *e = NULL;
        int fd = platform_pidfile(f->pidfile, &e);
        char c = fd >= 0 ? 'y' : 'n';
        (void)!write(ready[1], &c, 1);
        (void)!read(go[0], &c, 1); /* wait for the parent's word (or its exit) */
        _exit(0);                  /* no unlink: the file stays, the lock goes */
    }
    close(go[0]);
    close(ready[1]);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');

    /* the child holds it */
    assert_int_equal(platform_pidfile_owner(f->pidfile), (long)child);
    const char *err = NULL;
    assert_int_equal(platform_pidfile(f->pidfile, &err), -1);
    assert_non_null(strstr(err, "already running"));
    char pidtext[32];
    snprintf(pidtext, sizeof(pidtext), "pid %ld", (long)child);
    assert_non_null(strstr(err, pidtext));

    /* the child exits without cleaning up */
    assert_int_equal(write(go[1], "x", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    close(go[1]);
    close(ready[0]);

    assert_int_equal(access(f->pidfile, F_OK), 0);           /* a stale file is left */
    assert_int_equal(platform_pidfile_owner(f->pidfile), 0); /* ...owned by nobody */
    err = NULL;
    int fd = platform_pidfile(f->pidfile, &err);
    assert_true(fd >= 0);
    assert_int_equal(platform_pidfile_owner(f->pidfile), (long)getpid());
    platform_pidfile_remove(f->pidfile);
    close(fd);
}

static void test_stale_pidfile_taken_over(void **state)
{
    struct fixture *f = *state;
    /* a long pid left by someone else, longer than ours, must be replaced entirely */
    FILE *fp = fopen(f->pidfile, "w");
    assert_non_null(fp);
    fputs("123456789012\n", fp);
    fclose(fp);
    assert_int_equal(platform_pidfile_owner(f->pidfile), 0);

    const char *err = NULL;
    int fd = platform_pidfile(f->pidfile, &err);
    assert_true(fd >= 0);
    char *content = read_file(f->pidfile);
    char want[32];
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    assert_string_equal(content, want);
    free(content);
    platform_pidfile_remove(f->pidfile);
    close(fd);
}

static void test_pidfile_owner_missing(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(platform_pidfile_owner(f->pidfile), 0);
    char *nodir = xasprintf("%s/no/such/dir/x.pid", f->dir);
    const char *err = NULL;
    assert_int_equal(platform_pidfile(nodir, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, nodir));
    free(nodir);
}

static void test_pidfile_symlink_refused(void **state)
{
    struct fixture *f = *state;
    char *target = xasprintf("%s/target", f->dir);
    FILE *fp = fopen(target, "w");
    assert_non_null(fp);
    fputs("precious\n", fp);
    fclose(fp);
    assert_int_equal(symlink(target, f->pidfile), 0);

    const char *err = NULL;
    assert_int_equal(platform_pidfile(f->pidfile, &err), -1);
    assert_non_null(err);
    char *content = read_file(target);
    assert_string_equal(content, "precious\n"); /* not followed, not truncated */
    free(content);
    free(target);
}

/* ---- privileges ----------------------------------------------------------------------- */

static void test_drop_privileges_unknown_user(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        /* not root: the setting does not apply and is ignored by design */
        const char *err = NULL;
        assert_int_equal(platform_drop_privileges("no-such-user-alkaid-x", &err), 0);
        skip();
    }
    const char *err = NULL;
    assert_int_equal(platform_drop_privileges("no-such-user-alkaid-x", &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, "[System] User"));
    assert_non_null(strstr(err, "no-such-user-alkaid-x"));
    assert_int_equal(geteuid(), 0); /* still root: nothing was switched */
}

static void test_drop_privileges_empty_is_noop(void **state)
{
    (void)state;
    uid_t uid = getuid(), euid = geteuid();
    gid_t gid = getgid(), egid = getegid();
    const char *err = NULL;
    assert_int_equal(platform_drop_privileges("", &err), 0);
    assert_int_equal(platform_drop_privileges(NULL, &err), 0);
    assert_null(err);
    assert_int_equal(getuid(), uid);
    assert_int_equal(geteuid(), euid);
    assert_int_equal(getgid(), gid);
    assert_int_equal(getegid(), egid);
}

/* ---- events (last: blocks the handled signals for the rest of the process) ------------ */

static void test_wait_event(void **state)
{
    (void)state;
    platform_signals_init();
    platform_request_stop();
    assert_int_equal(platform_wait_event(), PLATFORM_EV_STOP);
    kill(getpid(), SIGHUP);
    assert_int_equal(platform_wait_event(), PLATFORM_EV_RELOAD);
    kill(getpid(), SIGINT);
    assert_int_equal(platform_wait_event(), PLATFORM_EV_STOP);
    /* SIGPIPE is ignored: writing to a closed pipe gives EPIPE, not death */
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    assert_int_equal(write(p[1], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pidfile_written_and_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_dies_with_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_pidfile_taken_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pidfile_owner_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pidfile_symlink_refused, setup, teardown),
        cmocka_unit_test(test_drop_privileges_unknown_user),
        cmocka_unit_test(test_drop_privileges_empty_is_noop),
        cmocka_unit_test(test_wait_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

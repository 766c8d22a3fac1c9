/* test_spawn_program.c - unit tests for spawn_program.c
 *
 * The started program gets an empty signal mask and default actions even when the
 * caller blocks SIGTERM and ignores SIGPIPE (as every service does), its output goes
 * where asked (a pipe, /dev/null), $PATH is searched only when asked, and a program that
 * does not exist is an errno value.
 */
#include <errno.h>
#include <setjmp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "spawn_program.h"

/* Runs argv with stdout on a pipe; returns what it printed (static buffer). */
static const char *run(char *const argv[], bool search, int *status_r)
{
    static char out[4096];
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid;
    int err = spawn_program(argv, search, p[1], &pid);
    close(p[1]);
    assert_int_equal(err, 0);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof(out) - 1 && (r = read(p[0], out + n, sizeof(out) - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    assert_int_equal(waitpid(pid, status_r, 0), pid);
    return out;
}

static void test_clean_signal_state(void **state)
{
    (void)state;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGINT);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
    char *argv[] = {(char *)"/bin/sh", (char *)"-c",
                    (char *)"grep -E '^Sig(Blk|Ign):' /proc/self/status", NULL};
    int status;
    const char *out = run(argv, false, &status);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_non_null(strstr(out, "SigBlk:\t0000000000000000"));
    /* SIGPIPE (13) is not ignored: bit 12 of SigIgn is clear */
    const char *ign = strstr(out, "SigIgn:\t");
    assert_non_null(ign);
    unsigned long long mask = strtoull(ign + 8, NULL, 16);
    assert_false(mask & (1ULL << (SIGPIPE - 1)));
    signal(SIGPIPE, old_pipe);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void test_output_and_search(void **state)
{
    (void)state;
    int status;
    char *echo[] = {(char *)"echo", (char *)"hello", NULL};
    assert_string_equal(run(echo, true, &status), "hello\n");
    /* without search a bare name is not looked up in $PATH */
    pid_t pid;
    assert_int_equal(spawn_program(echo, false, SPAWN_OUT_DEVNULL, &pid), ENOENT);
    char *missing[] = {(char *)"/nonexistent/program", NULL};
    assert_int_equal(spawn_program(missing, false, SPAWN_OUT_DEVNULL, &pid), ENOENT);
    /* stderr goes to the same place as stdout */
    char *err[] = {(char *)"/bin/sh", (char *)"-c", (char *)"echo oops >&2", NULL};
    assert_string_equal(run(err, false, &status), "oops\n");
    /* /dev/null: nothing, and the program still runs to the end */
    char *quiet[] = {(char *)"/bin/sh", (char *)"-c", (char *)"echo lost; exit 3", NULL};
    assert_int_equal(spawn_program(quiet, false, SPAWN_OUT_DEVNULL, &pid), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_signal_state),
        cmocka_unit_test(test_output_and_search),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_authfail.c - unit tests for authfail.c
 *
 * Delays and lock-out with the default and a configured policy, expiry of locks and of
 * the counting window on an injected clock, attempts counted before the password is
 * checked (parallel and held-open ones), a success taking back only its own attempt,
 * address keys (IPv6 /64, IPv4-mapped), eviction from a full table, concurrent use from
 * several threads, and one table shared by several processes.
 *
 * SECURITY: the lock-out is what stops password guessing; these tests pin down exactly
 * when it starts and ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/wait.h>
#include <unistd.h>

#include "authfail.h"
#include "testutil.h"

#define T0 1000000ULL /* injected clock start, ms */

static unsigned long long now;

static void advance_ms(unsigned long long ms)
{
    now += ms;
    authfail_test_set_clock(now);
}

/* One attempt that failed, as a session makes it: a slot first, then the verdict.
 * Returns the delay, or UINT32_MAX if the attempt was refused (locked out / no slot). */
static unsigned failed(const char *ip)
{
    struct authfail_attempt a;
    if (authfail_begin(ip, &a) != 0) return UINT32_MAX;
    return authfail_failure(&a);
}

/* One attempt that succeeded. Returns what authfail_begin() said. */
static unsigned succeeded(const char *ip)
{
    struct authfail_attempt a;
    unsigned r = authfail_begin(ip, &a);
    if (r == 0) authfail_done(&a);
    return r;
}

static int setup(void **state)
{
    authfail_configure(3, 10, 900);
    authfail_reset();
    now = T0;
    authfail_test_set_clock(now);
    return 0;
}

static int teardown(void **state)
{
    authfail_test_set_clock(0);
    return 0;
}

static void test_defaults(void **state)
{
    /* the policy before any authfail_configure() call: this test runs first */
    authfail_reset();
    now = T0;
    authfail_test_set_clock(now);
    const unsigned expect[] = {0, 0, 0, 500, 1000, 2000, 4000, 5000, 5000};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        assert_int_equal(authfail_locked("192.0.2.1"), 0);
        assert_int_equal(failed("192.0.2.1"), expect[i]);
    }
    assert_int_equal(authfail_locked("192.0.2.1"), 0);
    assert_int_equal(failed("192.0.2.1"), AUTHFAIL_MAX_DELAY_MS); /* the 10th */
    assert_int_equal(authfail_locked("192.0.2.1"), 900);
    authfail_test_set_clock(0);
}

static void test_delays(void **state)
{
    assert_int_equal(failed("192.0.2.1"), 0);
    assert_int_equal(failed("192.0.2.1"), 0);
    assert_int_equal(failed("192.0.2.1"), 0);
    assert_int_equal(failed("192.0.2.1"), 500);
    assert_int_equal(failed("192.0.2.1"), 1000);
    /* another address is not affected */
    assert_int_equal(failed("192.0.2.2"), 0);
    assert_int_equal(authfail_locked("192.0.2.2"), 0);
}

static void test_lockout_and_expiry(void **state)
{
    for (int i = 0; i < 9; i++)
        failed("198.51.100.7");
    assert_int_equal(authfail_locked("198.51.100.7"), 0);
    failed("198.51.100.7");
    assert_int_equal(authfail_locked("198.51.100.7"), 900);
    advance_ms(1);
    assert_int_equal(authfail_locked("198.51.100.7"), 900); /* rounded up */
    advance_ms(100 * 1000);
    assert_int_equal(authfail_locked("198.51.100.7"), 800);
    /* attempts while locked are refused, counted as nothing, and do not extend the lock */
    assert_int_equal(failed("198.51.100.7"), UINT32_MAX);
    assert_int_equal(authfail_locked("198.51.100.7"), 800);
    advance_ms(799 * 1000);
    assert_int_equal(authfail_locked("198.51.100.7"), 1);
    advance_ms(999);
    assert_int_equal(authfail_locked("198.51.100.7"), 0);
    /* after the lock-out the address starts again from nothing */
    assert_int_equal(failed("198.51.100.7"), 0);
    assert_int_equal(failed("198.51.100.7"), 0);
    assert_int_equal(failed("198.51.100.7"), 0);
    assert_int_equal(failed("198.51.100.7"), 500);
}

static void test_window(void **state)
{
    for (int i = 0; i < 9; i++)
        failed("203.0.113.9");
    /* the window of 900 s from the first failure ends: the count starts over */
    advance_ms(900 * 1000);
    assert_int_equal(failed("203.0.113.9"), 0);
    assert_int_equal(authfail_locked("203.0.113.9"), 0);
    for (int i = 0; i < 8; i++)
        failed("203.0.113.9");
    assert_int_equal(authfail_locked("203.0.113.9"), 0);
    advance_ms(899 * 1000);
    failed("203.0.113.9"); /* the 10th within the window */
    assert_int_equal(authfail_locked("203.0.113.9"), 900);
}

static void test_success_counts_nothing(void **state)
{
    for (int i = 0; i < 5; i++)
        failed("192.0.2.50");
    assert_int_equal(authfail_test_entries(), 1);
    /* a good login (to the client's own account, say) does not wipe the 5 guesses */
    assert_int_equal(succeeded("192.0.2.50"), 0);
    assert_int_equal(authfail_test_entries(), 1);
    assert_int_equal(failed("192.0.2.50"), 2000); /* the 6th failure */
    for (int i = 0; i < 4; i++)
        assert_int_equal(succeeded("192.0.2.50"), 0);
    /* 6 failures: 4 more guesses are allowed, then the lock-out */
    for (int i = 0; i < 4; i++)
        assert_int_not_equal(failed("192.0.2.50"), UINT32_MAX);
    assert_int_equal(authfail_locked("192.0.2.50"), 900);
    assert_int_equal(succeeded("192.0.2.50"), 900);
}

static void test_inflight_bounded(void **state)
{
    /* attempts opened at once (in parallel, or held at the password prompt) hold slots:
     * with 0 failures and lock_after 10, ten may be in flight; the eleventh waits (here,
     * with the test clock, it is refused at once with 1) */
    struct authfail_attempt a[11];
    for (int i = 0; i < 10; i++)
        assert_int_equal(authfail_begin("198.51.100.20", &a[i]), 0);
    assert_int_equal(authfail_begin("198.51.100.20", &a[10]), 1);
    assert_int_equal(authfail_locked("198.51.100.20"), 0); /* busy is not a lock-out */
    /* nine turn out wrong: only 10 - 9 = 1 may be in flight, and one still is */
    for (int i = 0; i < 9; i++)
        authfail_failure(&a[i]);
    assert_int_equal(authfail_begin("198.51.100.20", &a[10]), 1);
    authfail_done(&a[9]); /* the tenth was right */
    assert_int_equal(authfail_begin("198.51.100.20", &a[10]), 0);
    authfail_failure(&a[10]); /* the tenth failure: locked */
    assert_int_equal(authfail_begin("198.51.100.20", &a[0]), 900);
    /* so never more than lock_after passwords were judged wrong */
}

static void test_abandoned_slots_expire(void **state)
{
    struct authfail_attempt a;
    authfail_configure(3, 2, 900);
    assert_int_equal(authfail_begin("192.0.2.90", &a), 0);
    assert_int_equal(authfail_begin("192.0.2.90", &a), 0);
    assert_int_equal(authfail_begin("192.0.2.90", &a), 1); /* both slots held */
    /* the processes holding them died: the slots come back after AUTHFAIL_SLOT_MS */
    advance_ms(AUTHFAIL_SLOT_MS + 1);
    assert_int_equal(authfail_begin("192.0.2.90", &a), 0);
    authfail_done(&a);
    authfail_done(&a); /* twice is harmless */
}

static void test_shared_between_processes(void **state)
{
    char *dir = make_tmpdir("authfail");
    char path[4096];
    snprintf(path, sizeof(path), "%s/authfail.tab", dir);
    assert_int_equal(authfail_attach(path), 0);
    authfail_reset();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* another service of the root: its failures count for everyone */
        int bad = authfail_attach(path) != 0;
        for (int i = 0; i < 10; i++)
            bad |= failed("192.0.2.77") == UINT32_MAX;
        _exit(bad);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(authfail_locked("192.0.2.77"), 900);
    assert_int_equal(succeeded("192.0.2.77"), 900);
    /* a second attach (a restart) keeps what is there */
    assert_int_equal(authfail_attach(path), 0);
    assert_int_equal(authfail_locked("192.0.2.77"), 900);
    authfail_detach();
    assert_int_equal(authfail_locked("192.0.2.77"), 0); /* back to the private table */
    rm_rf(dir);
    free(dir);
}

static void test_configure(void **state)
{
    authfail_configure(1, 2, 60);
    assert_int_equal(failed("192.0.2.1"), 0);
    assert_int_equal(failed("192.0.2.1"), 500);
    assert_int_equal(authfail_locked("192.0.2.1"), 60);
    advance_ms(60 * 1000);
    assert_int_equal(authfail_locked("192.0.2.1"), 0);

    /* delays from the first failure */
    authfail_configure(0, 100, 60);
    assert_int_equal(failed("192.0.2.2"), 500);
    assert_int_equal(failed("192.0.2.2"), 1000);

    /* lock_after 0: never locked, only slowed down */
    authfail_configure(3, 0, 60);
    for (int i = 0; i < 50; i++)
        failed("192.0.2.3");
    assert_int_equal(authfail_locked("192.0.2.3"), 0);
    assert_int_equal(failed("192.0.2.3"), AUTHFAIL_MAX_DELAY_MS);

    /* lock_seconds 0: no lock-out either */
    authfail_configure(3, 2, 0);
    for (int i = 0; i < 5; i++)
        failed("192.0.2.4");
    assert_int_equal(authfail_locked("192.0.2.4"), 0);
}

static void test_address_keys(void **state)
{
    authfail_configure(100, 3, 60);
    /* one IPv6 /64 counts as one client */
    failed("2001:db8:1:2::1");
    failed("2001:db8:1:2:ffff:ffff:ffff:ffff");
    assert_int_equal(authfail_locked("2001:db8:1:2::99"), 0);
    failed("2001:DB8:1:2:0:0:0:7");
    assert_int_equal(authfail_locked("2001:db8:1:2::1"), 60);
    assert_int_equal(authfail_locked("2001:db8:1:3::1"), 0);
    assert_int_equal(authfail_test_entries(), 1);

    /* an IPv4-mapped address is its IPv4 address */
    failed("::ffff:192.0.2.9");
    failed("192.0.2.9");
    failed("::ffff:192.0.2.9");
    assert_int_equal(authfail_locked("192.0.2.9"), 60);
    assert_int_equal(authfail_locked("192.0.2.10"), 0);

    /* anything else is a key as given, cut to a fixed length */
    char longname[300];
    memset(longname, 'h', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    failed(longname);
    failed("SYSTEM");
    assert_int_equal(authfail_test_entries(), 4);
}

static void test_eviction(void **state)
{
    char ip[32];

    /* an old locked address survives a flood of new ones */
    for (int i = 0; i < 10; i++)
        failed("192.0.2.200");
    assert_int_equal(authfail_locked("192.0.2.200"), 900);
    advance_ms(10);
    failed("192.0.2.201"); /* the oldest unlocked entry */

    for (unsigned i = 0; i < AUTHFAIL_TABLE_SIZE - 2; i++) {
        advance_ms(1);
        snprintf(ip, sizeof(ip), "10.%u.%u.%u", i >> 16 & 255, i >> 8 & 255, i & 255);
        failed(ip);
    }
    assert_int_equal(authfail_test_entries(), AUTHFAIL_TABLE_SIZE);
    /* the table is full: a new address replaces the oldest unlocked one */
    advance_ms(1);
    failed("192.0.2.202");
    assert_int_equal(authfail_test_entries(), AUTHFAIL_TABLE_SIZE);
    assert_int_equal(authfail_locked("192.0.2.200"), 900 - 4); /* still locked */

    /* 192.0.2.201 was forgotten: with delay_after 3, its count starts over */
    authfail_configure(1, 10, 900);
    advance_ms(1);
    assert_int_equal(failed("192.0.2.201"), 0);
    /* and now 10.0.0.0, the next oldest, is gone: its second failure is its first */
    assert_int_equal(failed("10.0.0.1"), 500); /* still remembered */
    assert_int_equal(failed("10.0.0.0"), 0);
    assert_int_equal(authfail_test_entries(), AUTHFAIL_TABLE_SIZE);

    /* entries whose window is over are reused first */
    advance_ms(900 * 1000);
    failed("192.0.2.203");
    assert_int_equal(authfail_locked("192.0.2.200"), 0);
}

#define THREADS    8
#define PER_THREAD 200

static void *hammer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    char ip[32];
    for (unsigned i = 0; i < PER_THREAD; i++) {
        snprintf(ip, sizeof(ip), "172.16.%u.%u", id, i % 50);
        failed(ip);
        (void)authfail_locked(ip);
        if (i % 7 == 0) succeeded("172.16.255.255");
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t t[THREADS];
    authfail_configure(100, 1000, 900);
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* every address, plus the one the successful logins came from */
    assert_int_equal(authfail_test_entries(), THREADS * 50 + 1);
    /* each address saw exactly PER_THREAD / 50 failures */
    authfail_configure(3, 1000, 900);
    assert_int_equal(failed("172.16.3.7"), 1000); /* the 5th failure */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_delays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_success_counts_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflight_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandoned_slots_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_between_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_address_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

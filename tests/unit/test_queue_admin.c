/* test_queue_admin.c - unit tests for queue_admin.c and queue_retry_delay() (queue.c)
 *
 * queue_retry_delay() against the schedule {900, 1800, 3600}. queue_admin_* on a scratch
 * FORWARD directory: list (oldest first, states from the suffixes .tmp/.tm$/.hold,
 * damaged and foreign files skipped), show (envelope and the header section up to the
 * blank line), delete/hold/release/retry with their NOTFOUND cases, BUSY when another
 * open file holds the claim lock or when only a ".tm$" exists, and INVALID ids.
 *
 * SECURITY: ids come from the command line; "../x" or "a/b" must never reach a path.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "queue.h"
#include "queue_admin.h"
#include "spool.h"
#include "testutil.h"
#include "xalloc.h"

/* ---- queue_retry_delay() ------------------------------------------------------------ */

static void test_retry_delay(void **state)
{
    (void)state;
    const long long sched[] = {900, 1800, 3600};
    assert_int_equal(queue_retry_delay(sched, 3, 0), 900);
    assert_int_equal(queue_retry_delay(sched, 3, 1), 900);
    assert_int_equal(queue_retry_delay(sched, 3, 2), 1800);
    assert_int_equal(queue_retry_delay(sched, 3, 3), 3600);
    assert_int_equal(queue_retry_delay(sched, 3, 10), 3600);
    assert_int_equal(queue_retry_delay(sched, 3, 4000000000u), 3600);
    const long long one[] = {60};
    assert_int_equal(queue_retry_delay(one, 1, 1), 60);
    assert_int_equal(queue_retry_delay(one, 1, 7), 60);
}

/* ---- a scratch queue ---------------------------------------------------------------- */

static int setup(void **state)
{
    char *dir = make_tmpdir("qadmin");
    if (dir == NULL) return -1;
    spool_set_hostname("mx1.example.com");
    *state = dir;
    return 0;
}

static const char msg[] = "From: <a@example.com>\r\nSubject: hello\r\n\r\nbody line\r\n";

static char *rcpts[] = {"b@example.org", "c@example.net"};

/* Writes dir/<id><suffix> with the given creation time and next try; returns the path. */
static char *put(const char *dir, const char *id, long long created, long long next_try,
                 const char *suffix)
{
    char *src = xasprintf("%s/msg.src", dir);
    write_plain(src, msg, strlen(msg));
    int fd = open(src, O_RDONLY);
    assert_true(fd >= 0);
    struct queue_envelope env = {
        .id = (char *)id,
        .created = created,
        .sender = "a@example.com",
        .rcpts = rcpts,
        .nrcpts = 2,
        .attempts = 3,
        .next_try = next_try,
        .size = strlen(msg),
    };
    char *path = NULL;
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, &path), 0);
    close(fd);
    unlink(src);
    free(src);
    char *final = xasprintf("%s/%s%s", dir, id, suffix);
    assert_int_equal(rename(path, final), 0);
    free(path);
    return final;
}

static bool present(const char *dir, const char *id, const char *suffix)
{
    char *p = xasprintf("%s/%s%s", dir, id, suffix);
    bool e = exists(p);
    free(p);
    return e;
}

/* Opens and locks path as a delivery thread would; the fd to close later. */
static int hold_lock(const char *path)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(spool_queue_lock(fd), 0);
    return fd;
}

/* ---- ids ---------------------------------------------------------------------------- */

static void test_id_valid(void **state)
{
    (void)state;
    assert_true(queue_id_valid("1795305600.M123456P42Q1.mx1.example.com"));
    assert_true(queue_id_valid("a_b-c.d"));
    assert_false(queue_id_valid(""));
    assert_false(queue_id_valid("../x"));
    assert_false(queue_id_valid("a/b"));
    assert_false(queue_id_valid(".hidden"));
    assert_false(queue_id_valid("a b"));
    assert_false(queue_id_valid("a$"));
    char longid[SPOOL_ID_MAX + 1];
    memset(longid, 'a', SPOOL_ID_MAX);
    longid[SPOOL_ID_MAX] = '\0';
    assert_false(queue_id_valid(longid));
    longid[SPOOL_ID_MAX - 1] = '\0';
    assert_true(queue_id_valid(longid));
}

static void test_invalid_ids(void **state)
{
    char *dir = xasprintf("%s/q", (const char *)*state);
    assert_int_equal(mkdir(dir, 0700), 0);
    /* a file that "../x" would reach if the id were used as a path */
    char *outside = xasprintf("%s/x.tmp", (const char *)*state);
    write_plain(outside, "x", 1);
    static const char *const bad[] = {"../x", "", "a/b"};
    for (size_t i = 0; i < 3; i++) {
        struct queue_item item;
        assert_int_equal(queue_admin_show(dir, bad[i], &item, NULL), QUEUE_ADMIN_INVALID);
        assert_int_equal(queue_admin_delete(dir, bad[i]), QUEUE_ADMIN_INVALID);
        assert_int_equal(queue_admin_hold(dir, bad[i]), QUEUE_ADMIN_INVALID);
        assert_int_equal(queue_admin_release(dir, bad[i]), QUEUE_ADMIN_INVALID);
        assert_int_equal(queue_admin_retry(dir, bad[i]), QUEUE_ADMIN_INVALID);
    }
    assert_true(exists(outside));
    free(outside);
    free(dir);
}

/* ---- list and show ------------------------------------------------------------------ */

static void test_list(void **state)
{
    const char *dir = *state;
    free(put(dir, "c.mx1", 300, 0, ".tmp"));
    free(put(dir, "a.mx1", 100, 0, ".tm$"));
    free(put(dir, "b.mx1", 200, 0, ".hold"));
    free(put(dir, "b0.mx1", 200, 0, ".tmp")); /* same time: by id */
    char *damaged = put(dir, "d.mx1", 50, 0, ".tmp");
    assert_int_equal(truncate(damaged, 30), 0);
    free(put(dir, "e.mx1", 10, 0, ".new")); /* not a state of the queue */
    char *readme = xasprintf("%s/README", dir);
    write_plain(readme, "x", 1);

    struct queue_item *items;
    size_t n;
    assert_int_equal(queue_admin_list(dir, &items, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(items[0].env.id, "a.mx1");
    assert_int_equal(items[0].state, QUEUE_SENDING);
    assert_string_equal(items[1].env.id, "b.mx1");
    assert_int_equal(items[1].state, QUEUE_HELD);
    assert_string_equal(items[2].env.id, "b0.mx1");
    assert_int_equal(items[2].state, QUEUE_WAITING);
    assert_string_equal(items[3].env.id, "c.mx1");
    assert_int_equal(items[3].state, QUEUE_WAITING);
    assert_int_equal(items[3].env.nrcpts, 2);
    assert_string_equal(items[3].env.rcpts[1], "c@example.net");
    queue_items_free(items, n);

    assert_string_equal(queue_state_name(QUEUE_WAITING), "waiting");
    assert_string_equal(queue_state_name(QUEUE_SENDING), "sending");
    assert_string_equal(queue_state_name(QUEUE_HELD), "held");

    /* a missing directory is an empty queue */
    char *missing = xasprintf("%s/none", dir);
    items = (struct queue_item *)1;
    n = 99;
    assert_int_equal(queue_admin_list(missing, &items, &n), 0);
    assert_int_equal(n, 0);
    assert_null(items);
    free(missing);
    free(readme);
    free(damaged);
}

static void test_show(void **state)
{
    const char *dir = *state;
    free(put(dir, "w.mx1", 100, 777, ".tmp"));
    free(put(dir, "h.mx1", 100, 0, ".hold"));
    free(put(dir, "s.mx1", 100, 0, ".tm$"));

    struct queue_item item;
    struct sbuf headers = SBUF_INIT(SBUF_NO_MAX);
    assert_int_equal(queue_admin_show(dir, "w.mx1", &item, &headers), QUEUE_ADMIN_OK);
    assert_int_equal(item.state, QUEUE_WAITING);
    assert_string_equal(item.env.id, "w.mx1");
    assert_string_equal(item.env.sender, "a@example.com");
    assert_int_equal(item.env.next_try, 777);
    assert_string_equal(sbuf_cstr(&headers), "From: <a@example.com>\r\nSubject: hello\r\n");
    spool_queue_envelope_clear(&item.env);

    assert_int_equal(queue_admin_show(dir, "h.mx1", &item, NULL), QUEUE_ADMIN_OK);
    assert_int_equal(item.state, QUEUE_HELD);
    spool_queue_envelope_clear(&item.env);
    assert_int_equal(queue_admin_show(dir, "s.mx1", &item, NULL), QUEUE_ADMIN_OK);
    assert_int_equal(item.state, QUEUE_SENDING);
    spool_queue_envelope_clear(&item.env);

    assert_int_equal(queue_admin_show(dir, "nope.mx1", &item, &headers), QUEUE_ADMIN_NOTFOUND);
    sbuf_free(&headers);
}

/* ---- delete, hold, release, retry --------------------------------------------------- */

static void test_delete(void **state)
{
    const char *dir = *state;
    free(put(dir, "w.mx1", 100, 0, ".tmp"));
    free(put(dir, "h.mx1", 100, 0, ".hold"));
    free(put(dir, "s.mx1", 100, 0, ".tm$"));
    char *locked = put(dir, "l.mx1", 100, 0, ".tmp");

    assert_int_equal(queue_admin_delete(dir, "w.mx1"), QUEUE_ADMIN_OK);
    assert_false(present(dir, "w.mx1", ".tmp"));
    assert_int_equal(queue_admin_delete(dir, "w.mx1"), QUEUE_ADMIN_NOTFOUND);
    assert_int_equal(queue_admin_delete(dir, "h.mx1"), QUEUE_ADMIN_OK);
    assert_false(present(dir, "h.mx1", ".hold"));
    /* being sent: only a .tm$ */
    assert_int_equal(queue_admin_delete(dir, "s.mx1"), QUEUE_ADMIN_BUSY);
    assert_true(present(dir, "s.mx1", ".tm$"));
    /* claimed by another open file */
    int fd = hold_lock(locked);
    assert_int_equal(queue_admin_delete(dir, "l.mx1"), QUEUE_ADMIN_BUSY);
    assert_true(exists(locked));
    close(fd);
    assert_int_equal(queue_admin_delete(dir, "l.mx1"), QUEUE_ADMIN_OK);
    assert_false(exists(locked));
    assert_int_equal(queue_admin_delete(dir, "never.mx1"), QUEUE_ADMIN_NOTFOUND);
    free(locked);
}

static void test_hold_release(void **state)
{
    const char *dir = *state;
    char *w = put(dir, "w.mx1", 100, 0, ".tmp");
    free(put(dir, "s.mx1", 100, 0, ".tm$"));

    assert_int_equal(queue_admin_hold(dir, "w.mx1"), QUEUE_ADMIN_OK);
    assert_false(present(dir, "w.mx1", ".tmp"));
    assert_true(present(dir, "w.mx1", ".hold"));
    assert_int_equal(queue_admin_hold(dir, "w.mx1"), QUEUE_ADMIN_NOTFOUND); /* already held */
    struct queue_item item;
    assert_int_equal(queue_admin_show(dir, "w.mx1", &item, NULL), QUEUE_ADMIN_OK);
    assert_int_equal(item.state, QUEUE_HELD);
    spool_queue_envelope_clear(&item.env);

    assert_int_equal(queue_admin_release(dir, "w.mx1"), QUEUE_ADMIN_OK);
    assert_true(present(dir, "w.mx1", ".tmp"));
    assert_false(present(dir, "w.mx1", ".hold"));
    assert_int_equal(queue_admin_release(dir, "w.mx1"), QUEUE_ADMIN_NOTFOUND); /* not held */

    assert_int_equal(queue_admin_hold(dir, "s.mx1"), QUEUE_ADMIN_BUSY);
    assert_int_equal(queue_admin_release(dir, "s.mx1"), QUEUE_ADMIN_BUSY);
    assert_true(present(dir, "s.mx1", ".tm$"));
    assert_int_equal(queue_admin_hold(dir, "never.mx1"), QUEUE_ADMIN_NOTFOUND);
    assert_int_equal(queue_admin_release(dir, "never.mx1"), QUEUE_ADMIN_NOTFOUND);

    int fd = hold_lock(w);
    assert_int_equal(queue_admin_hold(dir, "w.mx1"), QUEUE_ADMIN_BUSY);
    assert_true(present(dir, "w.mx1", ".tmp"));
    close(fd);
    free(w);
}

static void test_retry(void **state)
{
    const char *dir = *state;
    char *w = put(dir, "w.mx1", 100, 1795309200LL, ".tmp");
    free(put(dir, "h.mx1", 100, 1795309200LL, ".hold"));
    free(put(dir, "s.mx1", 100, 1795309200LL, ".tm$"));

    assert_int_equal(queue_admin_retry(dir, "w.mx1"), QUEUE_ADMIN_OK);
    struct queue_envelope env;
    uint64_t off;
    assert_int_equal(spool_queue_read(w, &env, &off), 0);
    assert_int_equal(env.next_try, 0);
    assert_int_equal(env.attempts, 3);
    assert_int_equal(env.created, 100);
    assert_int_equal(env.nrcpts, 2);
    assert_int_equal(env.size, strlen(msg));
    spool_queue_envelope_clear(&env);
    assert_false(present(dir, "w.mx1", ".new"));
    /* nothing keeps it locked afterwards */
    int fd = hold_lock(w);
    assert_int_equal(queue_admin_retry(dir, "w.mx1"), QUEUE_ADMIN_BUSY);
    close(fd);
    /* already due: fine */
    assert_int_equal(queue_admin_retry(dir, "w.mx1"), QUEUE_ADMIN_OK);

    assert_int_equal(queue_admin_retry(dir, "h.mx1"), QUEUE_ADMIN_NOTFOUND); /* held */
    assert_int_equal(queue_admin_retry(dir, "s.mx1"), QUEUE_ADMIN_BUSY);
    assert_int_equal(queue_admin_retry(dir, "never.mx1"), QUEUE_ADMIN_NOTFOUND);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_delay),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test_setup_teardown(test_invalid_ids, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_show, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_hold_release, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_retry, setup, teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

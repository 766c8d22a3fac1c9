/* test_spool_queue2.c - unit tests for the queue-runner side of spool.c
 *
 * What the FORWARD queue runner adds to queue files: per-recipient LAST-ERROR lines
 * (written for the recipients that have one, read back matched by address, whatever
 * their order), DELAY-NOTIFIED, spool_queue_rewrite() (a new version under a new suffix
 * replacing an existing file atomically, its fd returned open and locked),
 * spool_queue_lock() (an OFD lock: a second open file of the same path cannot take it)
 * and spool_queue_recover() leaving a ".tm$" locked by a live sender alone.
 *
 * SECURITY: the lock is what keeps two servers sharing mail/ from sending one message
 * twice; the LAST-ERROR parser reads text that came from remote servers.
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
#include "spool.h"
#include "testutil.h"
#include "xalloc.h"

static int setup(void **state)
{
    char *dir = make_tmpdir("spoolq2");
    if (dir == NULL) return -1;
    spool_set_hostname("mx1.example.com");
    *state = dir;
    return 0;
}

static const char msg[] = "From: <a@example.com>\r\nSubject: hi\r\n\r\nHello\r\n.dot\r\n";

/* A file holding "PREFIX" + msg, open for reading; the message is at offset 6. */
static int make_message(const char *dir)
{
    char *path = xasprintf("%s/message.src", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, "PREFIX", 6), 0);
    assert_int_equal(fs_write_all(fd, msg, strlen(msg)), 0);
    unlink(path);
    free(path);
    return fd;
}

static char *rcpts[] = {"b@example.org", "b@example.org.uk", "c@example.net"};

static void fill_env(struct queue_envelope *env, char *id, char **errors)
{
    memset(env, 0, sizeof(*env));
    env->id = id;
    env->created = 1795305600LL;
    env->sender = "a@example.com";
    env->rcpts = rcpts;
    env->nrcpts = 3;
    env->errors = errors;
    env->attempts = 2;
    env->next_try = 1795309200LL;
    env->size = strlen(msg);
}

static char *read_all(const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = xmalloc((size_t)st.st_size + 1);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    buf[st.st_size] = '\0';
    close(fd);
    return buf;
}

/* The message part of a queue file matches msg. */
static void check_message(const char *path)
{
    char *all = read_all(path);
    struct queue_envelope env;
    uint64_t off;
    assert_int_equal(spool_queue_read(path, &env, &off), 0);
    assert_int_equal(env.size, strlen(msg));
    assert_memory_equal(all + off, msg, strlen(msg));
    spool_queue_envelope_clear(&env);
    free(all);
}

/* ---- LAST-ERROR and DELAY-NOTIFIED ---------------------------------------------------- */

static void test_errors_roundtrip(void **state)
{
    const char *dir = *state;
    int mfd = make_message(dir);
    char *errors[] = {"4.2.1 mx.example.org 450 4.2.1 mailbox busy", NULL,
                      "4.4.1 - no mail server of example.net could be reached"};
    struct queue_envelope env;
    fill_env(&env, "q1.mx1.example.com", errors);
    env.delay_notified = true;
    char *path = NULL;
    assert_int_equal(spool_queue_write(dir, &env, mfd, 6, &path), 0);
    close(mfd);

    char *text = read_all(path);
    assert_non_null(
        strstr(text, "\nLAST-ERROR <b@example.org> 4.2.1 mx.example.org 450 4.2.1 mailbox busy\n"));
    assert_null(strstr(text, "LAST-ERROR <b@example.org.uk>"));
    assert_non_null(strstr(text, "\nDELAY-NOTIFIED 1\n"));
    free(text);

    struct queue_envelope got;
    assert_int_equal(spool_queue_read(path, &got, NULL), 0);
    assert_int_equal(got.nrcpts, 3);
    assert_non_null(got.errors);
    assert_string_equal(got.errors[0], errors[0]);
    assert_null(got.errors[1]);
    assert_string_equal(got.errors[2], errors[2]);
    assert_true(got.delay_notified);
    assert_int_equal(got.attempts, 2);
    spool_queue_envelope_clear(&got);
    check_message(path);
    free(path);
}

static void test_no_errors(void **state)
{
    const char *dir = *state;
    int mfd = make_message(dir);
    struct queue_envelope env;
    fill_env(&env, "q2.mx1.example.com", NULL);
    char *path = NULL;
    assert_int_equal(spool_queue_write(dir, &env, mfd, 6, &path), 0);
    close(mfd);
    char *text = read_all(path);
    assert_null(strstr(text, "LAST-ERROR"));
    assert_null(strstr(text, "DELAY-NOTIFIED"));
    free(text);
    struct queue_envelope got;
    assert_int_equal(spool_queue_read(path, &got, NULL), 0);
    assert_null(got.errors);
    assert_false(got.delay_notified);
    spool_queue_envelope_clear(&got);
    free(path);
}

static void test_errors_refuse_line_breaks(void **state)
{
    const char *dir = *state;
    int mfd = make_message(dir);
    char *errors[] = {NULL, "4.0.0 x 450 a\nRCPT <evil@example.com>", NULL};
    struct queue_envelope env;
    fill_env(&env, "q3.mx1.example.com", errors);
    errno = 0;
    assert_int_equal(spool_queue_write(dir, &env, mfd, 6, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(count_entries(dir), 0);
    close(mfd);
}

/* Writes a queue file by hand with the given envelope lines (after the magic). */
static char *hand_file(const char *dir, const char *name, const char *lines)
{
    struct sbuf s = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&s, SPOOL_QUEUE_MAGIC);
    sbuf_appends(&s, lines);
    sbuf_printf(&s, "SIZE %zu\n\n", strlen(msg));
    sbuf_appends(&s, msg);
    sbuf_appends(&s, SPOOL_QUEUE_END);
    char *path = xasprintf("%s/%s", dir, name);
    write_plain(path, s.data, s.len);
    sbuf_free(&s);
    return path;
}

static void test_errors_matched_by_address(void **state)
{
    const char *dir = *state;
    /* LAST-ERROR before, between and after the RCPTs; one for an address not listed */
    char *path = hand_file(dir, "h1.tmp",
                           "ID h1\nCREATED 1\nFROM <a@example.com>\n"
                           "LAST-ERROR <c@example.net> 4.4.1 - third\n"
                           "RCPT <b@example.org>\n"
                           "LAST-ERROR <nobody@example.com> 4.0.0 - nobody\n"
                           "RCPT <b@example.org.uk>\n"
                           "RCPT <c@example.net>\n"
                           "LAST-ERROR <b@example.org.uk> 4.2.2 mx.example.uk 452 full\n"
                           "ATTEMPTS 1\nNEXT-TRY 5\nDELAY-NOTIFIED 0\n");
    struct queue_envelope got;
    assert_int_equal(spool_queue_read(path, &got, NULL), 0);
    assert_int_equal(got.nrcpts, 3);
    assert_non_null(got.errors);
    assert_null(got.errors[0]); /* a prefix of another address is not a match */
    assert_string_equal(got.errors[1], "4.2.2 mx.example.uk 452 full");
    assert_string_equal(got.errors[2], "4.4.1 - third");
    assert_false(got.delay_notified);
    spool_queue_envelope_clear(&got);
    free(path);

    /* the later of two LAST-ERRORs for one address wins */
    path = hand_file(dir, "h2.tmp",
                     "ID h2\nCREATED 1\nFROM <>\nRCPT <b@example.org>\n"
                     "LAST-ERROR <b@example.org> 4.0.0 - old\n"
                     "LAST-ERROR <b@example.org> 4.0.0 - new\n"
                     "ATTEMPTS 1\nNEXT-TRY 5\nDELAY-NOTIFIED 1\n");
    assert_int_equal(spool_queue_read(path, &got, NULL), 0);
    assert_string_equal(got.sender, "");
    assert_string_equal(got.errors[0], "4.0.0 - new");
    assert_true(got.delay_notified);
    spool_queue_envelope_clear(&got);
    free(path);
}

static void test_errors_malformed(void **state)
{
    const char *dir = *state;
    static const char *const bad[] = {
        "LAST-ERROR b@example.org 4.0.0 - x\n", /* no brackets */
        "LAST-ERROR <b@example.org>4.0.0\n",    /* no space after '>' */
        "LAST-ERROR <b@example.org\n",          /* no '>' */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *lines = xasprintf("ID h\nCREATED 1\nFROM <a@example.com>\nRCPT <b@example.org>\n%s"
                                "ATTEMPTS 1\nNEXT-TRY 5\n",
                                bad[i]);
        char *path = hand_file(dir, "bad.tmp", lines);
        struct queue_envelope got;
        errno = 0;
        assert_int_equal(spool_queue_read(path, &got, NULL), -1);
        assert_int_equal(errno, EINVAL);
        assert_null(got.id);
        assert_null(got.errors);
        free(path);
        free(lines);
    }
}

/* ---- rewrite and lock ----------------------------------------------------------------- */

static void test_lock(void **state)
{
    const char *dir = *state;
    char *path = xasprintf("%s/lockme", dir);
    write_plain(path, "x", 1);
    int a = open(path, O_RDWR), b = open(path, O_RDWR);
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(spool_queue_lock(a), 0);
    assert_int_equal(spool_queue_lock(a), 0); /* the holder may ask again */
    errno = 0;
    assert_int_equal(spool_queue_lock(b), -1);
    assert_int_equal(errno, EAGAIN);
    /* a dup() of the holder shares its open file, and so the lock */
    int d = dup(a);
    assert_int_equal(spool_queue_lock(d), 0);
    close(d);
    assert_int_equal(spool_queue_lock(b), -1); /* a still holds it */
    close(a);
    assert_int_equal(spool_queue_lock(b), 0); /* released by close */
    close(b);
    free(path);
}

static void test_rewrite_replaces_and_locks(void **state)
{
    const char *dir = *state;
    char *id = "rw.mx1.example.com";
    int mfd = make_message(dir);
    struct queue_envelope env;
    fill_env(&env, id, NULL);
    char *tmp_path = NULL;
    assert_int_equal(spool_queue_write(dir, &env, mfd, 6, &tmp_path), 0);
    close(mfd);

    /* a stale .tm$ of the same id is in the way: it is replaced */
    char *inflight = xasprintf("%s/%s.tm$", dir, id);
    write_plain(inflight, "stale", 5);
    struct stat before;
    assert_int_equal(stat(inflight, &before), 0);

    int old = open(tmp_path, O_RDONLY);
    assert_true(old >= 0);
    struct queue_envelope cur;
    uint64_t off;
    assert_int_equal(spool_queue_read_fd(old, &cur, &off), 0);
    char *errors[] = {"4.2.1 mx 450 busy", NULL, NULL};
    struct queue_envelope next = cur;
    next.errors = errors;
    next.attempts = 3;
    next.next_try = 1795310000LL;
    next.delay_notified = true;
    int nfd = -1;
    assert_int_equal(spool_queue_rewrite(dir, &next, old, off, ".tm$", &nfd), 0);
    assert_true(nfd >= 0);
    close(old);
    spool_queue_envelope_clear(&cur);

    /* the new version is in place, whole; no .new is left */
    char *newp = xasprintf("%s/%s.new", dir, id);
    assert_false(exists(newp));
    assert_true(exists(tmp_path)); /* the old name is the caller's business */
    struct stat after;
    assert_int_equal(stat(inflight, &after), 0);
    assert_true(after.st_ino != before.st_ino);
    struct queue_envelope got;
    assert_int_equal(spool_queue_read(inflight, &got, NULL), 0);
    assert_string_equal(got.id, id);
    assert_int_equal(got.attempts, 3);
    assert_int_equal(got.next_try, 1795310000LL);
    assert_true(got.delay_notified);
    assert_string_equal(got.errors[0], "4.2.1 mx 450 busy");
    assert_null(got.errors[1]);
    spool_queue_envelope_clear(&got);
    check_message(inflight);

    /* the returned fd is that file, and it holds the lock */
    struct stat fst;
    assert_int_equal(fstat(nfd, &fst), 0);
    assert_true(fst.st_ino == after.st_ino);
    int other = open(inflight, O_RDWR);
    assert_true(other >= 0);
    errno = 0;
    assert_int_equal(spool_queue_lock(other), -1);
    assert_int_equal(errno, EAGAIN);
    close(nfd);
    assert_int_equal(spool_queue_lock(other), 0);
    close(other);

    free(newp);
    free(inflight);
    free(tmp_path);
}

static void test_rewrite_same_suffix(void **state)
{
    const char *dir = *state;
    char *id = "same.mx1.example.com";
    int mfd = make_message(dir);
    struct queue_envelope env;
    fill_env(&env, id, NULL);
    char *path = NULL;
    assert_int_equal(spool_queue_write(dir, &env, mfd, 6, &path), 0);
    close(mfd);
    int old = open(path, O_RDWR);
    assert_int_equal(spool_queue_lock(old), 0);
    struct queue_envelope cur;
    uint64_t off;
    assert_int_equal(spool_queue_read_fd(old, &cur, &off), 0);
    cur.next_try = 0;
    int nfd = -1;
    assert_int_equal(spool_queue_rewrite(dir, &cur, old, off, ".tmp", &nfd), 0);
    spool_queue_envelope_clear(&cur);
    close(old);
    struct queue_envelope got;
    assert_int_equal(spool_queue_read(path, &got, NULL), 0);
    assert_int_equal(got.next_try, 0);
    assert_int_equal(got.attempts, 2);
    spool_queue_envelope_clear(&got);
    check_message(path);
    assert_int_equal(count_entries(dir), 1);
    close(nfd);
    free(path);
}

/* ---- recovery --------------------------------------------------------------------------- */

static void test_recover_leaves_locked(void **state)
{
    const char *dir = *state;
    int mfd = make_message(dir);
    struct queue_envelope env;
    char *paths[2];
    char *ids[] = {"locked.mx1.example.com", "free.mx1.example.com"};
    for (int i = 0; i < 2; i++) {
        fill_env(&env, ids[i], NULL);
        assert_int_equal(spool_queue_write(dir, &env, mfd, 6, &paths[i]), 0);
    }
    close(mfd);
    char *locked = xasprintf("%s/%s.tm$", dir, ids[0]);
    char *unlocked = xasprintf("%s/%s.tm$", dir, ids[1]);
    assert_int_equal(rename(paths[0], locked), 0);
    assert_int_equal(rename(paths[1], unlocked), 0);
    int holder = open(locked, O_RDWR);
    assert_int_equal(spool_queue_lock(holder), 0);

    assert_int_equal(spool_queue_recover(dir, NULL), 1);
    assert_true(exists(locked));    /* a live sender's: left alone */
    assert_false(exists(paths[0])); /* not turned into .tmp */
    assert_false(exists(unlocked)); /* a crash's leftover: reclaimed */
    assert_true(exists(paths[1]));
    /* the holder's lock is still there */
    int again = open(locked, O_RDWR);
    assert_int_equal(spool_queue_lock(again), -1);
    close(again);

    close(holder);
    assert_int_equal(spool_queue_recover(dir, NULL), 1);
    assert_false(exists(locked));
    assert_true(exists(paths[0]));
    free(locked);
    free(unlocked);
    free(paths[0]);
    free(paths[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_errors_roundtrip, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_no_errors, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_errors_refuse_line_breaks, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_errors_matched_by_address, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_errors_malformed, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_rewrite_replaces_and_locks, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_rewrite_same_suffix, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_recover_leaves_locked, setup, teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

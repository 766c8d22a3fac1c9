/* test_mailbox.c - unit tests for mailbox.c (delivering into a mailbox, listing, size)
 *
 * Each test works in a fresh directory made by mkdtemp() under $ALKAID_TEST_TMP (or
 * /tmp). Covered: mailbox_path; mailbox_create (nested, existing, a file in the way);
 * mailbox_deliver by hard link on one file system (the same inode), creating missing
 * directories, refusing to replace a delivered message; the copy fallback when the
 * source is on another file system (forced through /dev/shm or /tmp when one of them is
 * a different file system, skipped otherwise); mailbox_undeliver; mailbox_list (sorted,
 * ignoring dot-files, non-.eml names, directories and symbolic links); mailbox_usage
 * (folders counted recursively, symbolic links ignored); mailbox_clean (only old hidden
 * ".part" files go).
 *
 * SECURITY: the symbolic-link cases check that nothing here follows a link planted in a
 * mailbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "mailbox.h"
#include "testutil.h"
#include "xalloc.h"

static int setup(void **state)
{
    char *dir = make_tmpdir("mailbox");
    if (dir == NULL) return -1;
    *state = dir;
    return 0;
}

static void write_size(const char *path, size_t len)
{
    char *data = xmalloc(len + 1);
    memset(data, 'm', len);
    write_plain(path, data, len);
    free(data);
}

static const char message[] = "From: a@example.com\r\nTo: b@example.com\r\nSubject: test\r\n\r\n"
                              "Body line\r\n";

/* A complete "TEMP" message file under dir; returns its path and an open fd. */
static char *make_source(const char *dir, int *fd_r)
{
    char *path = xasprintf("%s/source.tmp", dir);
    write_plain(path, message, strlen(message));
    *fd_r = open(path, O_RDONLY);
    assert_true(*fd_r >= 0);
    return path;
}

/* ---- paths and directories -------------------------------------------------------- */

static void test_path(void **state)
{
    char *p = mailbox_path("/srv/mail", "example.com", "alice");
    assert_string_equal(p, "/srv/mail/example.com/alice");
    free(p);
    p = mailbox_path("/srv/mail", "%.example.com", "bob");
    assert_string_equal(p, "/srv/mail/%.example.com/bob");
    free(p);
}

static void test_create(void **state)
{
    const char *dir = *state;
    char *mb = xasprintf("%s/mail/example.com/alice", dir);
    assert_int_equal(mailbox_create(mb), 0);
    struct stat st;
    assert_int_equal(stat(mb, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0077, 0);  /* private to the service user */
    assert_int_equal(mailbox_create(mb), 0); /* existing */

    /* a second mailbox in an existing domain directory */
    char *mb2 = xasprintf("%s/mail/example.com/bob", dir);
    assert_int_equal(mailbox_create(mb2), 0);
    assert_int_equal(stat(mb2, &st), 0);

    /* a file in the way */
    char *file = xasprintf("%s/mail/example.com/carol", dir);
    write_plain(file, "x", 1);
    errno = 0;
    assert_int_equal(mailbox_create(file), -1);
    assert_int_equal(errno, ENOTDIR);
    free(file);
    free(mb2);
    free(mb);
}

/* ---- delivery --------------------------------------------------------------------- */

static void test_deliver_link(void **state)
{
    const char *dir = *state;
    int fd;
    char *src = make_source(dir, &fd);
    char *mb = xasprintf("%s/mail/example.com/alice", dir);
    const char *id = "1795305600.M000001P1Q1.mx1.example.com";

    /* the mailbox and its domain do not exist yet: created */
    assert_int_equal(mailbox_deliver(mb, id, src, fd), 0);
    char *final = xasprintf("%s/%s.eml", mb, id);
    struct stat a, b;
    assert_int_equal(stat(src, &a), 0);
    assert_int_equal(stat(final, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    assert_int_equal(a.st_dev, b.st_dev);
    assert_int_equal(b.st_nlink, 2);
    size_t len;
    char *text = fs_read_file(final, 1 << 20, &len);
    assert_int_equal(len, strlen(message));
    assert_memory_equal(text, message, len);
    free(text);
    assert_int_equal(count_entries(mb), 1); /* no work file left */

    /* a second mailbox gets another link to the same file */
    char *mb2 = xasprintf("%s/mail/example.com/bob", dir);
    assert_int_equal(mailbox_deliver(mb2, id, src, fd), 0);
    assert_int_equal(stat(src, &a), 0);
    assert_int_equal(a.st_nlink, 3);

    /* the same id again is refused, not overwritten */
    errno = 0;
    assert_int_equal(mailbox_deliver(mb, id, src, fd), -1);
    assert_int_equal(errno, EEXIST);

    /* the TEMP file can go; the messages stay */
    unlink(src);
    text = fs_read_file(final, 1 << 20, &len);
    assert_non_null(text);
    free(text);

    /* undeliver */
    mailbox_undeliver(mb, id);
    assert_false(exists(final));
    assert_int_equal(count_entries(mb), 0);
    mailbox_undeliver(mb, id); /* already gone: harmless */
    mailbox_undeliver(mb, "no-such-id");

    close(fd);
    free(mb2);
    free(final);
    free(mb);
    free(src);
}

static void test_deliver_errors(void **state)
{
    const char *dir = *state;
    int fd;
    char *src = make_source(dir, &fd);
    /* the mailbox path is a file */
    char *file = xasprintf("%s/notadir", dir);
    write_plain(file, "x", 1);
    assert_int_equal(mailbox_deliver(file, "id1", src, fd), -1);
    /* the source does not exist */
    char *mb = xasprintf("%s/mail/example.com/alice", dir);
    char *missing = xasprintf("%s/missing.tmp", dir);
    assert_int_equal(mailbox_deliver(mb, "id2", missing, fd), -1);
    char *final = xasprintf("%s/id2.eml", mb);
    assert_false(exists(final));
    close(fd);
    free(final);
    free(missing);
    free(mb);
    free(file);
    free(src);
}

/* A directory on a file system other than dir's, or NULL. */
static char *other_fs_dir(const char *dir)
{
    struct stat here;
    if (stat(dir, &here) < 0) return NULL;
    static const char *const candidates[] = {"/dev/shm", "/tmp", "/var/tmp", "/run/user"};
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        struct stat st;
        if (stat(candidates[i], &st) < 0 || st.st_dev == here.st_dev) continue;
        if (access(candidates[i], W_OK) < 0) continue;
        char *d = make_tmpdir_in(candidates[i], "alkaid-mailbox");
        if (d) return d;
    }
    return NULL;
}

static void test_deliver_copy_across_fs(void **state)
{
    const char *dir = *state;
    char *other = other_fs_dir(dir);
    if (other == NULL) {
        print_message("no second file system to force EXDEV; copy fallback not tested\n");
        skip();
    }
    int fd;
    char *src = make_source(other, &fd);
    /* a larger message too, to go through more than one copy chunk */
    char *big = xasprintf("%s/big.tmp", other);
    size_t bigsize = (1u << 20) * 2 + 7;
    char *bigdata = xmalloc(bigsize);
    for (size_t i = 0; i < bigsize; i++)
        bigdata[i] = (char)(i % 251);
    write_plain(big, bigdata, bigsize);
    int bigfd = open(big, O_RDONLY);
    lseek(bigfd, 12345, SEEK_SET); /* the copy must start at 0 anyway */

    char *mb = xasprintf("%s/mail/example.com/alice", dir);
    assert_int_equal(mailbox_deliver(mb, "copy1", src, fd), 0);
    assert_int_equal(mailbox_deliver(mb, "copy2", big, bigfd), 0);

    char *final = xasprintf("%s/copy1.eml", mb);
    struct stat a, b;
    assert_int_equal(stat(src, &a), 0);
    assert_int_equal(stat(final, &b), 0);
    assert_true(a.st_dev != b.st_dev);
    assert_int_equal(b.st_nlink, 1);
    assert_int_equal(b.st_mode & 0077, 0);
    size_t len;
    char *text = fs_read_file(final, 1 << 20, &len);
    assert_int_equal(len, strlen(message));
    assert_memory_equal(text, message, len);
    free(text);
    char *final2 = xasprintf("%s/copy2.eml", mb);
    text = fs_read_file(final2, 8u << 20, &len);
    assert_int_equal(len, bigsize);
    assert_memory_equal(text, bigdata, bigsize);
    free(text);
    /* no hidden work file left behind */
    assert_int_equal(count_entries(mb), 2);

    /* the same id again is refused and leaves no work file */
    errno = 0;
    assert_int_equal(mailbox_deliver(mb, "copy1", src, fd), -1);
    assert_int_equal(count_entries(mb), 2);

    mailbox_undeliver(mb, "copy1");
    assert_false(exists(final));

    close(fd);
    close(bigfd);
    rm_rf(other);
    free(final2);
    free(final);
    free(mb);
    free(bigdata);
    free(big);
    free(src);
    free(other);
}

/* ---- listing, usage, cleaning ----------------------------------------------------- */

static void test_list(void **state)
{
    const char *dir = *state;
    char *mb = xasprintf("%s/mb", dir);
    assert_int_equal(mkdir(mb, 0700), 0);
    static const struct {
        const char *name;
        size_t size;
    } files[] = {
        {"1795305602.M000000P1Q3.h.eml", 30},
        {"1795305600.M000000P1Q1.h.eml", 10},
        {"1795305601.M000000P1Q2.h.eml", 20},
        {".hidden.eml", 5},
        {".1795305603.h.part", 7},
        {"notes.txt", 9},
        {"x.eml.bak", 3},
        {".eml", 4},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *p = xasprintf("%s/%s", mb, files[i].name);
        write_size(p, files[i].size);
        free(p);
    }
    /* a directory named like a message, and symbolic links */
    char *d = xasprintf("%s/folder.eml", mb);
    assert_int_equal(mkdir(d, 0700), 0);
    char *outside = xasprintf("%s/outside", dir);
    write_size(outside, 1000);
    char *link = xasprintf("%s/1795305699.link.eml", mb);
    assert_int_equal(symlink(outside, link), 0);
    char *dangling = xasprintf("%s/1795305698.dangling.eml", mb);
    assert_int_equal(symlink("/nonexistent/x", dangling), 0);

    struct mailbox_msg *msgs = NULL;
    size_t n = 99;
    assert_int_equal(mailbox_list(mb, &msgs, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(msgs[0].name, "1795305600.M000000P1Q1.h.eml");
    assert_string_equal(msgs[1].name, "1795305601.M000000P1Q2.h.eml");
    assert_string_equal(msgs[2].name, "1795305602.M000000P1Q3.h.eml");
    assert_int_equal(msgs[0].size, 10);
    assert_int_equal(msgs[1].size, 20);
    assert_int_equal(msgs[2].size, 30);
    time_t now = time(NULL);
    assert_true(msgs[0].mtime <= now && msgs[0].mtime > now - 60);
    mailbox_list_free(&msgs, n);
    assert_null(msgs);
    mailbox_list_free(&msgs, 0); /* twice */

    /* a missing mailbox is empty */
    char *missing = xasprintf("%s/none", dir);
    msgs = (struct mailbox_msg *)1;
    assert_int_equal(mailbox_list(missing, &msgs, &n), 0);
    assert_int_equal(n, 0);
    assert_null(msgs);
    mailbox_list_free(&msgs, n);

    /* an empty one too */
    char *empty = xasprintf("%s/empty", dir);
    assert_int_equal(mkdir(empty, 0700), 0);
    assert_int_equal(mailbox_list(empty, &msgs, &n), 0);
    assert_int_equal(n, 0);
    mailbox_list_free(&msgs, n);

    /* many messages: all listed, in order */
    char *many = xasprintf("%s/many", dir);
    assert_int_equal(mkdir(many, 0700), 0);
    for (int i = 199; i >= 0; i--) {
        char *p = xasprintf("%s/%010d.M%06dP1Q%d.h.eml", many, 1795305600 + i, i, i);
        write_size(p, (size_t)i);
        free(p);
    }
    assert_int_equal(mailbox_list(many, &msgs, &n), 0);
    assert_int_equal(n, 200);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(msgs[i - 1].name, msgs[i].name) < 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(msgs[i].size, i);
    mailbox_list_free(&msgs, n);

    free(many);
    free(empty);
    free(missing);
    free(dangling);
    free(link);
    free(outside);
    free(d);
    free(mb);
}

static void test_usage(void **state)
{
    const char *dir = *state;
    char *mb = xasprintf("%s/mb", dir);
    char *sent = xasprintf("%s/Sent", mb);
    char *archive = xasprintf("%s/Archive/2026/11", mb);
    assert_int_equal(fs_mkdirs(sent, 0700), 0);
    assert_int_equal(fs_mkdirs(archive, 0700), 0);
    struct {
        const char *rel;
        size_t size;
    } files[] = {
        {"a.eml", 100},
        {"b.eml", 200},
        {"Sent/c.eml", 300},
        {"Archive/2026/11/d.eml", 400},
        {"Archive/e.eml", 500},
        /* not messages */
        {".index", 10000},
        {".x.part", 10000},
        {"Sent/.hidden.eml", 10000},
        {"notes.txt", 10000},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *p = xasprintf("%s/%s", mb, files[i].rel);
        write_size(p, files[i].size);
        free(p);
    }
    /* a hidden folder is not a folder */
    char *hidden = xasprintf("%s/.trash", mb);
    assert_int_equal(mkdir(hidden, 0700), 0);
    char *hf = xasprintf("%s/f.eml", hidden);
    write_size(hf, 10000);
    /* symbolic links to a big file and to a big directory are not followed */
    char *outside = xasprintf("%s/outside", dir);
    assert_int_equal(mkdir(outside, 0700), 0);
    char *bigf = xasprintf("%s/big.eml", outside);
    write_size(bigf, 50000);
    char *l1 = xasprintf("%s/link.eml", mb);
    assert_int_equal(symlink(bigf, l1), 0);
    char *l2 = xasprintf("%s/LinkedFolder", mb);
    assert_int_equal(symlink(outside, l2), 0);
    char *l3 = xasprintf("%s/Sent/loop", mb);
    assert_int_equal(symlink(mb, l3), 0);

    uint64_t messages = 99;
    assert_int_equal(mailbox_usage(mb, &messages), 1500);
    assert_int_equal(messages, 5);
    assert_int_equal(mailbox_usage(mb, NULL), 1500);
    char *missing = xasprintf("%s/none", dir);
    assert_int_equal(mailbox_usage(missing, &messages), 0);
    assert_int_equal(messages, 0);
    /* the mailbox path itself being a link is the caller's business; a file is 0 */
    assert_int_equal(mailbox_usage(bigf, NULL), 0);

    free(missing);
    free(l3);
    free(l2);
    free(l1);
    free(bigf);
    free(outside);
    free(hf);
    free(hidden);
    free(archive);
    free(sent);
    free(mb);
}

static void test_usage_depth_bounded(void **state)
{
    const char *dir = *state;
    /* folders nested deeper than anyone uses: still finishes */
    char *p = xasprintf("%s/mb", dir);
    for (int i = 0; i < 40; i++) {
        char *q = xasprintf("%s/f", p);
        free(p);
        p = q;
    }
    assert_int_equal(fs_mkdirs(p, 0700), 0);
    char *m = xasprintf("%s/mb/f/x.eml", dir);
    write_size(m, 42);
    char *mb = xasprintf("%s/mb", dir);
    assert_int_equal(mailbox_usage(mb, NULL), 42);
    free(mb);
    free(m);
    free(p);
}

static void set_age(const char *path, time_t seconds)
{
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = time(NULL) - seconds;
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void test_clean(void **state)
{
    const char *dir = *state;
    char *mb = xasprintf("%s/mb", dir);
    assert_int_equal(mkdir(mb, 0700), 0);
    struct {
        const char *name;
        bool work; /* a hidden work file, removed once old enough */
    } files[] = {
        {".old.part", true},
        {".1795305600.M1P1Q1.h.part", true},
        {"old.part", false},           /* not hidden: not ours */
        {".old.eml", false},           /* not a work file */
        {"1795305600.old.eml", false}, /* a message */
        {".index", false},
        {".part", false}, /* just the suffix */
    };
    size_t n = sizeof(files) / sizeof(files[0]);
    for (size_t i = 0; i < n; i++) {
        char *p = xasprintf("%s/%s", mb, files[i].name);
        write_size(p, 10);
        /* an APPEND sets its work file's mtime to an old internal date: that must not
         * make it look abandoned (the age is the ctime) */
        set_age(p, 40 * 3600);
        free(p);
    }
    time_t now = time(NULL);
    mailbox_clean_at(mb, now);             /* just written: nothing goes */
    mailbox_clean_at(mb, now + 35 * 3600); /* 35 hours on: still nothing */
    for (size_t i = 0; i < n; i++) {
        char *p = xasprintf("%s/%s", mb, files[i].name);
        assert_true(exists(p));
        free(p);
    }
    mailbox_clean_at(mb, now + 37 * 3600); /* 37 hours on: the work files go */
    for (size_t i = 0; i < n; i++) {
        char *p = xasprintf("%s/%s", mb, files[i].name);
        if (exists(p) == files[i].work)
            print_error("%s: %s\n", files[i].name, files[i].work ? "kept" : "removed");
        assert_int_equal(exists(p), !files[i].work);
        free(p);
    }
    char *missing = xasprintf("%s/none", dir);
    mailbox_clean(missing); /* no crash */
    free(missing);
    free(mb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path),
        cmocka_unit_test_setup_teardown(test_create, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_deliver_link, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_deliver_errors, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_deliver_copy_across_fs, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_usage_depth_bounded, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_clean, setup, teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_fsutil.c - unit tests for fsutil.c (file system primitives with the durability rule)
 *
 * Each test works in a fresh directory made by mkdtemp() under $ALKAID_TEST_TMP (or
 * /tmp). Covered: fs_mkdirs (nested, existing, through a file, empty and over-long
 * paths), fs_write_file_atomic (contents, mode, replacing a file, no temporary name left,
 * failure in a missing directory), fs_write_all, fs_copy_fd (sendfile and its read/write
 * fallback, from offset 0 whatever the file position, large files), fs_read_file with
 * its maximum, fs_dirname, fs_fsync_dir and fs_free_space.
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
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "testutil.h"
#include "xalloc.h"

static int setup(void **state)
{
    char *dir = make_tmpdir("fsutil");
    if (dir == NULL) return -1;
    umask(022);
    *state = dir;
    return 0;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- fs_mkdirs -------------------------------------------------------------------- */

static void test_mkdirs(void **state)
{
    const char *dir = *state;
    char *deep = xasprintf("%s/a/b/c/d", dir);
    assert_int_equal(fs_mkdirs(deep, 0750), 0);
    assert_true(is_dir(deep));
    struct stat st;
    assert_int_equal(stat(deep, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0750);
    /* again: existing directories are fine */
    assert_int_equal(fs_mkdirs(deep, 0750), 0);
    char *mid = xasprintf("%s/a/b", dir);
    assert_int_equal(fs_mkdirs(mid, 0750), 0);
    /* trailing and doubled slashes */
    char *odd = xasprintf("%s/x//y/", dir);
    assert_int_equal(fs_mkdirs(odd, 0755), 0);
    char *y = xasprintf("%s/x/y", dir);
    assert_true(is_dir(y));

    /* a file in the way */
    char *file = xasprintf("%s/file", dir);
    write_plain(file, "x", 1);
    assert_int_equal(fs_mkdirs(file, 0755), -1);
    assert_int_equal(errno, ENOTDIR);
    char *below = xasprintf("%s/file/sub", dir);
    assert_int_equal(fs_mkdirs(below, 0755), -1);
    assert_int_equal(errno, ENOTDIR);

    /* empty and over-long */
    assert_int_equal(fs_mkdirs("", 0755), -1);
    char *longp = xmalloc(PATH_MAX + 10);
    memset(longp, 'a', PATH_MAX + 9);
    longp[0] = '/';
    longp[PATH_MAX + 9] = '\0';
    assert_int_equal(fs_mkdirs(longp, 0755), -1);
    assert_int_equal(errno, ENAMETOOLONG);

    /* relative paths */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(fs_mkdirs("rel/one", 0755), 0);
    assert_true(is_dir("rel/one"));
    assert_int_equal(chdir(cwd), 0);

    free(longp);
    free(below);
    free(file);
    free(y);
    free(odd);
    free(mid);
    free(deep);
}

/* ---- fs_write_file_atomic --------------------------------------------------------- */

static void test_write_file_atomic(void **state)
{
    const char *dir = *state;
    char *path = xasprintf("%s/out.txt", dir);
    const char data[] = "line one\nline two\n\0binary\xff";
    assert_int_equal(fs_write_file_atomic(path, data, sizeof(data), 0640), 0);
    size_t len = 0;
    char *back = fs_read_file(path, 1 << 20, &len);
    assert_non_null(back);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(back, data, sizeof(data));
    free(back);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(count_entries(dir), 1); /* no temporary file left */

    /* replacing an existing file; the old inode is not written to */
    int keep = open(path, O_RDONLY);
    assert_true(keep >= 0);
    assert_int_equal(fs_write_file_atomic(path, "new", 3, 0600), 0);
    char buf[64];
    ssize_t n = pread(keep, buf, sizeof(buf), 0);
    assert_int_equal(n, (ssize_t)sizeof(data)); /* a reader of the old file sees it whole */
    close(keep);
    back = fs_read_file(path, 1 << 20, &len);
    assert_int_equal(len, 3);
    assert_string_equal(back, "new");
    free(back);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_entries(dir), 1);

    /* empty contents */
    assert_int_equal(fs_write_file_atomic(path, "", 0, 0600), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);

    /* a missing directory: fails, leaves nothing */
    char *missing = xasprintf("%s/nodir/out.txt", dir);
    errno = 0;
    assert_int_equal(fs_write_file_atomic(missing, "x", 1, 0600), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(count_entries(dir), 1);

    /* the target is a directory: rename fails, the temporary file is removed */
    char *sub = xasprintf("%s/subdir", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(fs_write_file_atomic(sub, "x", 1, 0600), -1);
    assert_int_equal(count_entries(dir), 2);
    assert_int_equal(count_entries(sub), 0);

    /* a relative name (no directory part) */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(fs_write_file_atomic("rel.txt", "rel", 3, 0644), 0);
    assert_int_equal(chdir(cwd), 0);
    char *rel = xasprintf("%s/rel.txt", dir);
    back = fs_read_file(rel, 100, &len);
    assert_string_equal(back, "rel");
    free(back);
    assert_int_equal(count_entries(dir), 3);

    free(rel);
    free(sub);
    free(missing);
    free(path);
}

static void test_write_all_pipe(void **state)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fs_write_all(p[1], "hello", 5), 0);
    assert_int_equal(fs_write_all(p[1], "", 0), 0);
    close(p[1]);
    char buf[16];
    assert_int_equal(read(p[0], buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "hello", 5);
    close(p[0]);
    /* a closed descriptor */
    assert_int_equal(fs_write_all(p[1], "x", 1), -1);
    assert_int_equal(errno, EBADF);
}

/* ---- fs_copy_fd ------------------------------------------------------------------- */

static char *pattern(size_t n)
{
    char *d = xmalloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245 + 12345;
        d[i] = (char)(x >> 16);
    }
    return d;
}

static void check_copy(const char *dir, size_t size, int dst_flags)
{
    char *src = xasprintf("%s/src-%zu", dir, size);
    char *dst = xasprintf("%s/dst-%zu", dir, size);
    char *data = pattern(size);
    write_plain(src, data, size);
    int in = open(src, O_RDONLY);
    assert_true(in >= 0);
    /* the copy starts at offset 0 whatever the descriptor's position */
    lseek(in, (off_t)(size / 2), SEEK_SET);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | dst_flags, 0600);
    assert_true(out >= 0);
    assert_int_equal(fs_copy_fd(in, out), 0);
    close(in);
    close(out);
    size_t len = 0;
    char *back = fs_read_file(dst, size + 1, &len);
    assert_non_null(back);
    assert_int_equal(len, size);
    if (size) assert_memory_equal(back, data, size);
    free(back);
    unlink(src);
    unlink(dst);
    free(data);
    free(src);
    free(dst);
}

static void test_copy_fd(void **state)
{
    const char *dir = *state;
    static const size_t sizes[] = {0, 1, 4095, 65536, 65537, (1u << 20) + 3, 3u << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        check_copy(dir, sizes[i], 0);
}

static void test_copy_fd_fallback(void **state)
{
    const char *dir = *state;
    /* sendfile(2) refuses an O_APPEND destination (EINVAL): the read/write path runs */
    static const size_t sizes[] = {0, 1, 65535, 65536, 200000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        check_copy(dir, sizes[i], O_APPEND);
}

static void test_copy_fd_to_pipe(void **state)
{
    const char *dir = *state;
    char *src = xasprintf("%s/src", dir);
    write_plain(src, "through a pipe", 14);
    int in = open(src, O_RDONLY);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fs_copy_fd(in, p[1]), 0);
    close(p[1]);
    char buf[64];
    assert_int_equal(read(p[0], buf, sizeof(buf)), 14);
    assert_memory_equal(buf, "through a pipe", 14);
    close(p[0]);
    close(in);
    /* a bad source */
    assert_int_equal(fs_copy_fd(-1, STDOUT_FILENO), -1);
    free(src);
}

/* ---- fs_read_file ----------------------------------------------------------------- */

static void test_read_file(void **state)
{
    const char *dir = *state;
    char *path = xasprintf("%s/r", dir);
    write_plain(path, "abc\0def", 7);
    size_t len = 99;
    char *t = fs_read_file(path, 100, &len);
    assert_non_null(t);
    assert_int_equal(len, 7);
    assert_memory_equal(t, "abc\0def", 8); /* NUL-terminated */
    free(t);
    t = fs_read_file(path, 100, NULL); /* len_r is optional */
    assert_non_null(t);
    free(t);

    /* empty file */
    write_plain(path, "", 0);
    t = fs_read_file(path, 100, &len);
    assert_non_null(t);
    assert_int_equal(len, 0);
    assert_string_equal(t, "");
    free(t);

    /* missing file */
    char *missing = xasprintf("%s/none", dir);
    errno = 0;
    assert_null(fs_read_file(missing, 100, &len));
    assert_int_equal(errno, ENOENT);
    free(missing);

    /* a directory */
    assert_null(fs_read_file(dir, 100, &len));

    /* large */
    size_t big = (1u << 20) + 17;
    char *data = pattern(big);
    write_plain(path, data, big);
    t = fs_read_file(path, 4u << 20, &len);
    assert_non_null(t);
    assert_int_equal(len, big);
    assert_memory_equal(t, data, big);
    assert_int_equal(t[big], '\0');
    free(t);
    free(data);
    free(path);
}

/* The maximum: a file of exactly max bytes is read, one of max + 1 is refused (EFBIG),
 * whatever max is. */
static void check_max(const char *dir, size_t max)
{
    char *path = xasprintf("%s/max-%zu", dir, max);
    char *data = pattern(max + 1);
    size_t len = 0;

    write_plain(path, data, max);
    char *t = fs_read_file(path, max, &len);
    bool exact_ok = t != NULL && len == max;
    if (!exact_ok)
        print_error("fs_read_file(max=%zu) refused a file of exactly %zu bytes: %s\n", max, max,
                    strerror(errno));
    free(t);

    write_plain(path, data, max + 1);
    errno = 0;
    t = fs_read_file(path, max, &len);
    int err = errno;
    bool over_refused = t == NULL && err == EFBIG;
    if (!over_refused)
        print_error("fs_read_file(max=%zu) returned a file of %zu bytes (len %zu)\n", max, max + 1,
                    len);
    free(t);
    free(data);
    unlink(path);
    free(path);
    assert_true(exact_ok);
    assert_true(over_refused);
}

static void test_read_file_max_large(void **state)
{
    const char *dir = *state;
    check_max(dir, 5000);
    check_max(dir, 10000);
    check_max(dir, 100000);
}

static void test_read_file_max_small(void **state)
{
    const char *dir = *state;
    check_max(dir, 10);
    check_max(dir, 1000);
}

static void test_read_file_max_buffer_size(void **state)
{
    const char *dir = *state;
    check_max(dir, 4096);
    check_max(dir, 8192);
}

/* ---- small ones ------------------------------------------------------------------- */

static void check_dirname(const char *in, const char *want)
{
    char *d = fs_dirname(in);
    if (strcmp(d, want) != 0) print_error("fs_dirname(\"%s\")\n", in);
    assert_string_equal(d, want);
    free(d);
}

static void test_dirname(void **state)
{
    check_dirname("/a/b/c", "/a/b");
    check_dirname("a/b", "a");
    check_dirname("file", ".");
    check_dirname("", ".");
    check_dirname("/file", "/");
    check_dirname("/", "/");
    check_dirname("/srv/mail/example.com/alice", "/srv/mail/example.com");
    check_dirname("./x", ".");
}

static void test_fsync_dir_and_free_space(void **state)
{
    const char *dir = *state;
    assert_int_equal(fs_fsync_dir(dir), 0);
    char *missing = xasprintf("%s/none", dir);
    assert_int_equal(fs_fsync_dir(missing), -1);
    assert_int_equal(errno, ENOENT);
    char *file = xasprintf("%s/f", dir);
    write_plain(file, "x", 1);
    assert_int_equal(fs_fsync_dir(file), -1);
    assert_int_equal(errno, ENOTDIR);

    uint64_t free_bytes = fs_free_space(dir);
    assert_true(free_bytes > 0);
    assert_true(free_bytes != UINT64_MAX);
    assert_int_equal(fs_free_space(missing), UINT64_MAX);
    free(file);
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mkdirs, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_write_file_atomic, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_write_all_pipe, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_copy_fd, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_copy_fd_fallback, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_copy_fd_to_pipe, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_read_file, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_read_file_max_large, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_read_file_max_small, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_read_file_max_buffer_size, setup, teardown_tmpdir),
        cmocka_unit_test(test_dirname),
        cmocka_unit_test_setup_teardown(test_fsync_dir_and_free_space, setup, teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

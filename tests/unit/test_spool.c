/* test_spool.c - unit tests for spool.c (unique names, TEMP files, FORWARD queue files)
 *
 * Each test works in a fresh directory made by mkdtemp() under $ALKAID_TEST_TMP (or
 * /tmp). Covered: ids unique across 8 threads x 4000, ascending in time, carrying a
 * sanitised host name; spool_file create / write (small, large and many writes) / sync /
 * discard and a failing disk; spool_clean_temp; queue files written and read back field
 * by field; a queue file cut at EVERY possible length is never accepted, nor one with
 * extra bytes or a wrong end marker; CR/LF in any envelope value refused; and
 * spool_queue_recover: ".tm$" back to ".tmp", damaged files to damaged/ (reported), our
 * own "<id>.new" leftovers removed, other hosts' left alone.
 *
 * SECURITY: the truncation and injection cases are what keeps a crash or a client from
 * making the queue send something that was never acknowledged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
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
#include "spool.h"
#include "testutil.h"
#include "xalloc.h"

/* ---- helpers ---------------------------------------------------------------------- */

static int setup(void **state)
{
    char *dir = make_tmpdir("spool");
    if (dir == NULL) return -1;
    spool_set_hostname("mx1.example.com");
    *state = dir;
    return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- ids -------------------------------------------------------------------------- */

static void test_id_format(void **state)
{
    char id[SPOOL_ID_MAX];
    spool_make_id(id, sizeof(id));
    assert_true(has_suffix(id, ".mx1.example.com"));
    /* "<10 digits>.M<6 digits>P<pid>Q<n>.<host>" */
    unsigned long long sec;
    unsigned usec;
    long pid;
    unsigned long q;
    char host[100];
    assert_int_equal(sscanf(id, "%10llu.M%6uP%ldQ%lu.%99s", &sec, &usec, &pid, &q, host), 5);
    assert_int_equal(pid, (long)getpid());
    assert_true(usec < 1000000);
    long long now = (long long)time(NULL);
    assert_true((long long)sec >= now - 2 && (long long)sec <= now + 2);
    assert_string_equal(host, "mx1.example.com");
    /* safe as a file name */
    assert_null(strchr(id, '/'));
    assert_true(id[0] != '.');

    /* the host part is made safe */
    spool_set_hostname("evil/../host name\n");
    spool_make_id(id, sizeof(id));
    assert_null(strchr(id, '/'));
    assert_null(strchr(id, ' '));
    assert_null(strchr(id, '\n'));
    assert_true(has_suffix(id, ".evil_.._host_name_"));
    spool_set_hostname("");
    spool_make_id(id, sizeof(id));
    assert_true(has_suffix(id, ".localhost"));
    /* a very long host name still fits */
    char longhost[300];
    memset(longhost, 'h', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = '\0';
    spool_set_hostname(longhost);
    spool_make_id(id, sizeof(id));
    assert_true(strlen(id) < SPOOL_ID_MAX);
    spool_set_hostname("mx1.example.com");
}

#define ID_THREADS     8
#define IDS_PER_THREAD 4000

struct id_batch {
    char (*ids)[SPOOL_ID_MAX];
};

static void *make_ids(void *p)
{
    struct id_batch *b = p;
    for (int i = 0; i < IDS_PER_THREAD; i++)
        spool_make_id(b->ids[i], SPOOL_ID_MAX);
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_ids_unique_across_threads(void **state)
{
    size_t total = ID_THREADS * IDS_PER_THREAD;
    char(*all)[SPOOL_ID_MAX] = xcalloc(total, SPOOL_ID_MAX);
    pthread_t th[ID_THREADS];
    struct id_batch b[ID_THREADS];
    for (int t = 0; t < ID_THREADS; t++) {
        b[t].ids = all + t * IDS_PER_THREAD;
        assert_int_equal(pthread_create(&th[t], NULL, make_ids, &b[t]), 0);
    }
    for (int t = 0; t < ID_THREADS; t++)
        pthread_join(th[t], NULL);
    qsort(all, total, SPOOL_ID_MAX, cmp_str);
    size_t dups = 0;
    for (size_t i = 1; i < total; i++)
        if (strcmp(all[i - 1], all[i]) == 0) dups++;
    free(all);
    assert_int_equal(dups, 0);
}

static void test_ids_unique_across_processes(void **state)
{
    /* two processes at the same instant differ by pid */
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char id[SPOOL_ID_MAX];
        spool_make_id(id, sizeof(id));
        ssize_t n = write(p[1], id, strlen(id) + 1);
        _exit(n > 0 ? 0 : 1);
    }
    char mine[SPOOL_ID_MAX], theirs[SPOOL_ID_MAX] = "";
    spool_make_id(mine, sizeof(mine));
    close(p[1]);
    ssize_t n = read(p[0], theirs, sizeof(theirs));
    close(p[0]);
    waitpid(pid, NULL, 0);
    assert_true(n > 0);
    assert_string_not_equal(mine, theirs);
}

/* "ascending in time": an id made later sorts after one made earlier. */
static void test_ids_sort_by_time(void **state)
{
    char prev[SPOOL_ID_MAX], cur[SPOOL_ID_MAX];
    spool_make_id(prev, sizeof(prev));
    for (int i = 0; i < 20; i++) {
        usleep(1500);
        spool_make_id(cur, sizeof(cur));
        if (strcmp(prev, cur) >= 0) print_error("'%s' then '%s'\n", prev, cur);
        assert_true(strcmp(prev, cur) < 0);
        memcpy(prev, cur, sizeof(prev));
    }
    /* in a tight loop the time part never goes backwards */
    spool_make_id(prev, sizeof(prev));
    for (int i = 0; i < 10000; i++) {
        spool_make_id(cur, sizeof(cur));
        size_t tlen = (size_t)(strchr(cur, 'P') - cur);
        assert_true(strncmp(prev, cur, tlen) <= 0);
        memcpy(prev, cur, sizeof(prev));
    }
}

/* ---- the TEMP file ---------------------------------------------------------------- */

static void test_spool_file(void **state)
{
    const char *dir = *state;
    struct spool_file f;
    assert_int_equal(spool_file_create(&f, dir, ".tmp"), 0);
    assert_true(f.fd >= 0);
    assert_non_null(f.path);
    char *want_path = xasprintf("%s/%s.tmp", dir, f.id);
    assert_string_equal(f.path, want_path);
    free(want_path);
    assert_true(has_suffix(f.id, ".mx1.example.com"));
    struct stat st;
    assert_int_equal(stat(f.path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* small writes, a large one, then many small ones across the buffer size */
    size_t big = 200000;
    char *expect = xmalloc(big + 100000 + 100);
    size_t elen = 0;
    spool_file_write(&f, "Received: x\r\n", 13);
    memcpy(expect + elen, "Received: x\r\n", 13);
    elen += 13;
    char *blob = xmalloc(big);
    for (size_t i = 0; i < big; i++)
        blob[i] = (char)('a' + i % 23);
    spool_file_write(&f, blob, big);
    memcpy(expect + elen, blob, big);
    elen += big;
    for (int i = 0; i < 10000; i++) {
        char line[16];
        int n = snprintf(line, sizeof(line), "%05d\r\n", i);
        spool_file_write(&f, line, (size_t)n);
        memcpy(expect + elen, line, (size_t)n);
        elen += (size_t)n;
    }
    spool_file_write(&f, "", 0);
    assert_int_equal(f.size, elen);
    assert_int_equal(spool_file_sync(&f), 0);
    assert_int_equal(f.error, 0);
    size_t len;
    char *back = fs_read_file(f.path, 1 << 22, &len);
    assert_non_null(back);
    assert_int_equal(len, elen);
    assert_memory_equal(back, expect, elen);
    free(back);
    /* sync again is harmless */
    assert_int_equal(spool_file_sync(&f), 0);

    char *path = xstrdup(f.path);
    spool_file_discard(&f);
    spool_pool_drain(); /* a spent TEMP file is kept for reuse until then */
    assert_false(exists(path));
    assert_null(f.path);
    assert_int_equal(f.fd, -1);
    spool_file_discard(&f); /* twice is fine */
    free(path);
    free(blob);
    free(expect);
}

static void test_spool_file_unique_names(void **state)
{
    const char *dir = *state;
    struct spool_file f[50];
    for (int i = 0; i < 50; i++)
        assert_int_equal(spool_file_create(&f[i], dir, ".tmp"), 0);
    assert_int_equal(count_entries(dir), 50);
    for (int i = 0; i < 50; i++)
        spool_file_discard(&f[i]);
    spool_pool_drain();
    assert_int_equal(count_entries(dir), 0);
}

/* A spent TEMP file is emptied and reused for the next message, unless a mailbox links
 * to it (then reusing it would overwrite a delivered message). */
static void test_spool_file_reuse(void **state)
{
    const char *dir = *state;
    struct spool_file f, g, h;
    assert_int_equal(spool_file_create(&f, dir, ".tmp"), 0);
    spool_file_write(&f, "first message\r\n", 15);
    assert_int_equal(spool_file_sync(&f), 0);
    char *path = xstrdup(f.path);
    char *id = xstrdup(f.id);
    spool_file_discard(&f);
    assert_true(exists(path));
    assert_int_equal(spool_file_create(&g, dir, ".tmp"), 0);
    assert_string_equal(g.path, path); /* the same file ... */
    assert_string_not_equal(g.id, id); /* ... under a new id */
    spool_file_write(&g, "2nd\r\n", 5);
    assert_int_equal(spool_file_sync(&g), 0);
    size_t len;
    char *back = fs_read_file(g.path, 1 << 20, &len);
    assert_int_equal(len, 5); /* emptied before reuse */
    assert_memory_equal(back, "2nd\r\n", 5);
    free(back);
    /* linked into a "mailbox": not reused, and the link keeps its content */
    char *other = xasprintf("%s/delivered", dir);
    assert_int_equal(link(g.path, other), 0);
    spool_file_discard(&g);
    assert_false(exists(path));
    back = fs_read_file(other, 1 << 20, &len);
    assert_int_equal(len, 5);
    free(back);
    assert_int_equal(spool_file_create(&h, dir, ".tmp"), 0);
    assert_string_not_equal(h.path, path);
    spool_file_discard(&h);
    spool_pool_drain();
    unlink(other);
    free(other);
    free(path);
    free(id);
    assert_int_equal(count_entries(dir), 0);
}

static void test_spool_file_errors(void **state)
{
    const char *dir = *state;
    struct spool_file f;
    /* a directory removed under the server is made again */
    char *missing = xasprintf("%s/none", dir);
    assert_int_equal(spool_file_create(&f, missing, ".tmp"), 0);
    spool_file_discard(&f);
    spool_pool_drain();
    assert_int_equal(rmdir(missing), 0);
    /* one that cannot be made is an error */
    char *blocked = xasprintf("%s/file/none", dir);
    char *file = xasprintf("%s/file", dir);
    write_plain(file, "x", 1);
    errno = 0;
    assert_int_equal(spool_file_create(&f, blocked, ".tmp"), -1);
    assert_int_equal(errno, ENOTDIR);
    assert_null(f.path);
    unlink(file);
    free(file);
    free(blocked);
    free(missing);

    /* a disk that fills up: the error is kept and reported by sync */
    assert_int_equal(spool_file_create(&f, dir, ".tmp"), 0);
    int full = open("/dev/full", O_WRONLY);
    if (full < 0) {
        spool_file_discard(&f);
        skip();
    }
    dup2(full, f.fd);
    close(full);
    char chunk[70000];
    memset(chunk, 'x', sizeof(chunk));
    spool_file_write(&f, chunk, sizeof(chunk)); /* large: written straight through */
    spool_file_write(&f, "more", 4);
    assert_int_equal(f.size, sizeof(chunk) + 4);
    errno = 0;
    assert_int_equal(spool_file_sync(&f), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(spool_file_sync(&f), -1); /* stays failed */
    spool_file_discard(&f);
    assert_int_equal(count_entries(dir), 0);

    /* a failure in a buffered write shows at sync */
    assert_int_equal(spool_file_create(&f, dir, ".tmp"), 0);
    full = open("/dev/full", O_WRONLY);
    dup2(full, f.fd);
    close(full);
    spool_file_write(&f, "small", 5);
    assert_int_equal(spool_file_sync(&f), -1);
    assert_int_equal(errno, ENOSPC);
    spool_file_discard(&f);
}

static void test_clean_temp(void **state)
{
    const char *dir = *state;
    /* message files of any host go; anything else stays (Temp might be set to a
     * directory that holds other things) */
    char *a = xasprintf("%s/1795303806.M408082P9681Q1.mail.example.com.tmp", dir);
    char *a2 = xasprintf("%s/1.M1P1Q1.old-name.tmp", dir);
    char *b = xasprintf("%s/b.anything", dir);
    char *c = xasprintf("%s/notes.tmp", dir);
    char *dot = xasprintf("%s/.keep", dir);
    write_plain(a, "a", 1);
    write_plain(a2, "a", 1);
    write_plain(b, "b", 1);
    write_plain(c, "c", 1);
    write_plain(dot, "k", 1);
    spool_clean_temp(dir);
    assert_false(exists(a));
    assert_false(exists(a2));
    assert_true(exists(b));
    assert_true(exists(c));
    assert_true(exists(dot));
    free(a2);
    free(c);
    char *missing = xasprintf("%s/none", dir);
    spool_clean_temp(missing); /* no crash */
    free(missing);
    free(a);
    free(b);
    free(dot);
}

/* ---- queue files ------------------------------------------------------------------ */

static const char msg_prefix[] = "Received: from client\r\n";
static const char msg_body[] = "From: <a@example.com>\r\nTo: <b@example.org>\r\nSubject: hi\r\n"
                               "\r\nHello\r\n\r\n.dot line\r\nALKAID-END\r\nbye\r\n";

/* A TEMP-like file holding prefix + body; returns its fd (open for reading). */
static int make_message(const char *dir, char **path_r)
{
    char *path = xasprintf("%s/message.src", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, msg_prefix, strlen(msg_prefix)), 0);
    assert_int_equal(fs_write_all(fd, msg_body, strlen(msg_body)), 0);
    if (path_r)
        *path_r = path;
    else
        free(path);
    return fd;
}

static char *rcpts3[] = {"b@example.org", "c@example.net", "D@Example.COM"};

static void fill_env(struct queue_envelope *env, char *id)
{
    memset(env, 0, sizeof(*env));
    env->id = id;
    env->created = 1795305600LL;
    env->sender = "a@example.com";
    env->auth = "alice@example.com";
    env->client = "192.0.2.7";
    env->rcpts = rcpts3;
    env->nrcpts = 3;
    env->attempts = 4;
    env->next_try = 1795309200LL;
    env->size = strlen(msg_body);
}

/* Writes the standard queue file into dir; returns its path. */
static char *write_queue(const char *dir, char *id)
{
    int fd = make_message(dir, NULL);
    struct queue_envelope env;
    fill_env(&env, id);
    char *path = NULL;
    assert_int_equal(spool_queue_write(dir, &env, fd, strlen(msg_prefix), &path), 0);
    close(fd);
    char *src = xasprintf("%s/message.src", dir);
    unlink(src);
    free(src);
    return path;
}

static void test_queue_roundtrip(void **state)
{
    const char *dir = *state;
    char id[SPOOL_ID_MAX];
    spool_make_id(id, sizeof(id));
    char *path = write_queue(dir, id);
    char *want = xasprintf("%s/%s.tmp", dir, id);
    assert_string_equal(path, want);
    free(want);
    /* no "<id>.new" left */
    assert_int_equal(count_entries(dir), 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0077, 0);

    struct queue_envelope env;
    uint64_t off = 0;
    assert_int_equal(spool_queue_read(path, &env, &off), 0);
    assert_string_equal(env.id, id);
    assert_int_equal(env.created, 1795305600LL);
    assert_string_equal(env.sender, "a@example.com");
    assert_string_equal(env.auth, "alice@example.com");
    assert_string_equal(env.client, "192.0.2.7");
    assert_int_equal(env.nrcpts, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(env.rcpts[i], rcpts3[i]);
    assert_int_equal(env.attempts, 4);
    assert_int_equal(env.next_try, 1795309200LL);
    assert_int_equal(env.size, strlen(msg_body));

    /* the message sits at the offset, followed by the end marker and nothing else */
    size_t len;
    char *text = fs_read_file(path, 1 << 20, &len);
    assert_true(off < len);
    assert_int_equal(strncmp(text, SPOOL_QUEUE_MAGIC, strlen(SPOOL_QUEUE_MAGIC)), 0);
    assert_memory_equal(text + off, msg_body, strlen(msg_body));
    assert_int_equal(len, off + strlen(msg_body) + strlen(SPOOL_QUEUE_END));
    assert_string_equal(text + off + strlen(msg_body), SPOOL_QUEUE_END);
    free(text);

    spool_queue_envelope_clear(&env);
    assert_null(env.id);
    assert_null(env.rcpts);
    assert_int_equal(env.nrcpts, 0);
    spool_queue_envelope_clear(&env); /* twice is fine */
    free(path);
}

static void test_queue_optional_fields(void **state)
{
    const char *dir = *state;
    int fd = make_message(dir, NULL);
    char *one[] = {"x@example.org"};
    struct queue_envelope env = {
        .id = "1795305600.M000001P1Q1.mx1.example.com",
        .created = 0,
        .sender = "", /* the null reverse-path, as a bounce has */
        .auth = NULL,
        .client = NULL,
        .rcpts = one,
        .nrcpts = 1,
        .attempts = 0,
        .next_try = 0,
        .size = 0, /* an empty message */
    };
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), 0);
    close(fd);
    char *path = xasprintf("%s/%s.tmp", dir, env.id);
    struct queue_envelope back;
    uint64_t off;
    assert_int_equal(spool_queue_read(path, &back, &off), 0);
    assert_string_equal(back.sender, "");
    assert_null(back.auth);
    assert_null(back.client);
    assert_int_equal(back.nrcpts, 1);
    assert_string_equal(back.rcpts[0], "x@example.org");
    assert_int_equal(back.size, 0);
    assert_int_equal(back.attempts, 0);
    spool_queue_envelope_clear(&back);

    /* many recipients */
    char **many = xcalloc(500, sizeof(char *));
    for (int i = 0; i < 500; i++)
        many[i] = xasprintf("user%d@example.net", i);
    fd = make_message(dir, NULL);
    env.id = "1795305600.M000002P1Q2.mx1.example.com";
    env.rcpts = many;
    env.nrcpts = 500;
    env.size = strlen(msg_prefix) + strlen(msg_body);
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), 0);
    close(fd);
    free(path);
    path = xasprintf("%s/%s.tmp", dir, env.id);
    assert_int_equal(spool_queue_read(path, &back, &off), 0);
    assert_int_equal(back.nrcpts, 500);
    for (int i = 0; i < 500; i++)
        assert_string_equal(back.rcpts[i], many[i]);
    assert_int_equal(back.size, env.size);
    spool_queue_envelope_clear(&back);
    for (int i = 0; i < 500; i++)
        free(many[i]);
    free(many);
    free(path);
}

static void test_queue_large_message(void **state)
{
    const char *dir = *state;
    char *src = xasprintf("%s/big.src", dir);
    size_t size = (1u << 20) * 3 + 12345;
    char *data = xmalloc(size);
    for (size_t i = 0; i < size; i++)
        data[i] = (char)(i * 31 + 7);
    write_plain(src, data, size);
    int fd = open(src, O_RDONLY);
    char *one[] = {"x@example.org"};
    struct queue_envelope env = {.id = "big.mx1.example.com",
                                 .sender = "s@example.com",
                                 .rcpts = one,
                                 .nrcpts = 1,
                                 .size = size - 100};
    char *path = NULL;
    assert_int_equal(spool_queue_write(dir, &env, fd, 100, &path), 0);
    close(fd);
    struct queue_envelope back;
    uint64_t off;
    assert_int_equal(spool_queue_read(path, &back, &off), 0);
    assert_int_equal(back.size, size - 100);
    size_t len;
    char *text = fs_read_file(path, 8u << 20, &len);
    assert_memory_equal(text + off, data + 100, size - 100);
    spool_queue_envelope_clear(&back);
    free(text);
    free(path);
    free(data);
    free(src);
}

/* The message file is shorter than the envelope says: nothing is left behind. */
static void test_queue_short_source(void **state)
{
    const char *dir = *state;
    int fd = make_message(dir, NULL);
    struct queue_envelope env;
    fill_env(&env, "short.mx1.example.com");
    env.size = 100000;
    errno = 0;
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), -1);
    assert_int_equal(errno, EIO);
    close(fd);
    assert_int_equal(count_entries(dir), 1); /* only message.src */
}

static void test_queue_refuses_injection(void **state)
{
    const char *dir = *state;
    int fd = make_message(dir, NULL);
    struct queue_envelope env;
    char *bad_rcpts[] = {"ok@example.org", "x@example.org>\nRCPT <victim@example.net"};
    char *cr_rcpts[] = {"a@example.org\r"};

    fill_env(&env, "inj1.mx1.example.com");
    env.sender = "a@example.com>\nRCPT <victim@example.net";
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);

    fill_env(&env, "inj2.mx1.example.com");
    env.sender = "a@example.com\r";
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);

    fill_env(&env, "inj3.mx1.example.com");
    env.auth = "alice\nSIZE 1";
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);

    fill_env(&env, "inj4.mx1.example.com");
    env.client = "192.0.2.1\r\nRCPT <x@y>";
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);

    fill_env(&env, "inj5.mx1.example.com");
    env.rcpts = bad_rcpts;
    env.nrcpts = 2;
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);

    fill_env(&env, "inj6.mx1.example.com");
    env.rcpts = cr_rcpts;
    env.nrcpts = 1;
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);

    /* the id becomes a file name: no path separators, no line breaks */
    fill_env(&env, "../escape");
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);
    fill_env(&env, "id\nRCPT <x@y>");
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);

    /* no recipients */
    fill_env(&env, "norcpt.mx1.example.com");
    env.nrcpts = 0;
    assert_int_equal(spool_queue_write(dir, &env, fd, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);

    close(fd);
    assert_int_equal(count_entries(dir), 1); /* nothing written */

    /* a directory that cannot be made (a file is in the way) */
    char *file = xasprintf("%s/file", dir);
    write_plain(file, "x", 1);
    char *missing = xasprintf("%s/file/none", dir);
    fd = make_message(dir, NULL);
    fill_env(&env, "nodir.mx1.example.com");
    assert_int_equal(spool_queue_write(missing, &env, fd, 0, NULL), -1);
    assert_int_equal(errno, ENOTDIR);
    close(fd);
    unlink(file);
    free(file);
    free(missing);
}

/* The heart of it: whatever length a crash leaves the file at, it is never taken as a
 * complete queue file. */
static void test_queue_truncated_everywhere(void **state)
{
    const char *dir = *state;
    char *path = write_queue(dir, "trunc.mx1.example.com");
    size_t len;
    char *full = fs_read_file(path, 1 << 20, &len);
    assert_non_null(full);
    char *cut = xasprintf("%s/cut.tmp", dir);
    size_t accepted = 0;
    for (size_t l = 0; l < len; l++) {
        write_plain(cut, full, l);
        struct queue_envelope env;
        errno = 0;
        int r = spool_queue_read(cut, &env, NULL);
        if (r == 0) {
            print_error("a queue file cut at %zu of %zu bytes was accepted\n", l, len);
            accepted++;
            spool_queue_envelope_clear(&env);
        } else {
            assert_int_equal(errno, EINVAL);
            /* a refused read leaves nothing allocated */
            assert_null(env.id);
            assert_null(env.rcpts);
        }
    }
    assert_int_equal(accepted, 0);
    /* the whole file is fine */
    write_plain(cut, full, len);
    struct queue_envelope env;
    assert_int_equal(spool_queue_read(cut, &env, NULL), 0);
    spool_queue_envelope_clear(&env);
    free(cut);
    free(full);
    free(path);
}

static void expect_rejected(const char *dir, const char *text, size_t len, const char *what)
{
    char *p = xasprintf("%s/bad.tmp", dir);
    write_plain(p, text, len);
    struct queue_envelope env;
    errno = 0;
    int r = spool_queue_read(p, &env, NULL);
    if (r == 0) {
        print_error("accepted: %s\n", what);
        spool_queue_envelope_clear(&env);
    }
    unlink(p);
    free(p);
    assert_int_equal(r, -1);
    assert_int_equal(errno, EINVAL);
}

static void test_queue_damaged(void **state)
{
    const char *dir = *state;
    char *path = write_queue(dir, "dmg.mx1.example.com");
    size_t len;
    char *full = fs_read_file(path, 1 << 20, &len);
    char *buf = xmalloc(len + 64);

    /* extra bytes after the end marker */
    memcpy(buf, full, len);
    memcpy(buf + len, "x", 1);
    expect_rejected(dir, buf, len + 1, "one extra byte");
    memcpy(buf + len, SPOOL_QUEUE_END, strlen(SPOOL_QUEUE_END));
    expect_rejected(dir, buf, len + strlen(SPOOL_QUEUE_END), "a second end marker");
    memcpy(buf + len, "\n", 1);
    expect_rejected(dir, buf, len + 1, "a trailing newline");

    /* the end marker damaged (same length) */
    memcpy(buf, full, len);
    buf[len - 2] = 'X';
    expect_rejected(dir, buf, len, "a damaged end marker");
    /* wrong magic */
    memcpy(buf, full, len);
    buf[0] = 'X';
    expect_rejected(dir, buf, len, "wrong magic");
    expect_rejected(dir, "", 0, "an empty file");
    expect_rejected(dir, "garbage\n\n", 9, "garbage");

    /* fields that do not parse, or required fields missing */
    static const char *const bad_headers[] = {
        "ALKAID-QUEUE 1\nID x\nFROM <a@b>\nRCPT <c@d>\nSIZE 0\n",    /* no blank line */
        "ALKAID-QUEUE 1\nFROM <a@b>\nRCPT <c@d>\nSIZE 0\n\n",        /* no ID */
        "ALKAID-QUEUE 1\nID x\nRCPT <c@d>\nSIZE 0\n\n",              /* no FROM */
        "ALKAID-QUEUE 1\nID x\nFROM <a@b>\nSIZE 0\n\n",              /* no RCPT */
        "ALKAID-QUEUE 1\nID x\nFROM <a@b>\nRCPT <c@d>\n\n",          /* no SIZE */
        "ALKAID-QUEUE 1\nID x\nFROM a@b\nRCPT <c@d>\nSIZE 0\n\n",    /* FROM not <> */
        "ALKAID-QUEUE 1\nID x\nFROM <a@b>\nRCPT c@d\nSIZE 0\n\n",    /* RCPT not <> */
        "ALKAID-QUEUE 1\nID x\nFROM <a@b>\nRCPT <c@d>\nSIZE x\n\n",  /* SIZE not a number */
        "ALKAID-QUEUE 1\nID x\nFROM <a@b>\nRCPT <c@d>\nSIZE -1\n\n", /* negative */
        "ALKAID-QUEUE 1\nID x\nFROM <a@b>\nRCPT <c@d>\nSIZE 0\nATTEMPTS -2\n\n",
        "ALKAID-QUEUE 1\nID x\nFROM <a@b>\nRCPT <c@d>\nSIZE 0\nCREATED soon\n\n",
        "ALKAID-QUEUE 1\nID x\nFROM <a@b>\nRCPT <c@d>\nSIZE 0\nNOSPACE\n\n",
        "ALKAID-QUEUE 2\nID x\nFROM <a@b>\nRCPT <c@d>\nSIZE 0\n\n", /* another version */
    };
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
        char *t = xasprintf("%s%s", bad_headers[i], SPOOL_QUEUE_END);
        expect_rejected(dir, t, strlen(t), bad_headers[i]);
        free(t);
    }
    /* a minimal hand-written file is fine (and unknown keys are ignored) */
    char *ok = xasprintf("ALKAID-QUEUE 1\nID x\nFROM <>\nRCPT <c@d>\nFUTURE thing\nSIZE 2\n\n"
                         "hi%s",
                         SPOOL_QUEUE_END);
    char *okp = xasprintf("%s/ok.tmp", dir);
    write_plain(okp, ok, strlen(ok));
    struct queue_envelope env;
    uint64_t moff;
    assert_int_equal(spool_queue_read(okp, &env, &moff), 0);
    assert_string_equal(env.sender, "");
    assert_int_equal(env.size, 2);
    spool_queue_envelope_clear(&env);
    /* the same with the size one off either way */
    free(ok);
    ok = xasprintf("ALKAID-QUEUE 1\nID x\nFROM <>\nRCPT <c@d>\nSIZE 3\n\nhi%s", SPOOL_QUEUE_END);
    expect_rejected(dir, ok, strlen(ok), "SIZE one too many");
    free(ok);
    ok = xasprintf("ALKAID-QUEUE 1\nID x\nFROM <>\nRCPT <c@d>\nSIZE 1\n\nhi%s", SPOOL_QUEUE_END);
    expect_rejected(dir, ok, strlen(ok), "SIZE one too few");
    /* a huge SIZE must not overflow the arithmetic into a match */
    free(ok);
    ok = xasprintf("ALKAID-QUEUE 1\nID x\nFROM <>\nRCPT <c@d>\nSIZE 9223372036854775807\n\nhi%s",
                   SPOOL_QUEUE_END);
    expect_rejected(dir, ok, strlen(ok), "SIZE huge");

    /* unreadable: missing file */
    errno = 0;
    char *missing = xasprintf("%s/none.tmp", dir);
    assert_int_equal(spool_queue_read(missing, &env, NULL), -1);
    assert_int_equal(errno, ENOENT);
    /* a symbolic link is not followed */
    char *link = xasprintf("%s/link.tmp", dir);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(spool_queue_read(link, &env, NULL), -1);

    free(link);
    free(missing);
    free(okp);
    free(ok);
    free(buf);
    free(full);
    free(path);
}

/* ---- recovery at start-up --------------------------------------------------------- */

static char reported[16][256];
static int nreported;

static void report(const char *name, const char *why)
{
    assert_non_null(why);
    if (nreported < 16) snprintf(reported[nreported], sizeof(reported[0]), "%s", name);
    nreported++;
}

static void test_queue_recover(void **state)
{
    const char *dir = *state;
    nreported = 0;
    char idA[SPOOL_ID_MAX], idB[SPOOL_ID_MAX], idC[SPOOL_ID_MAX], idD[SPOOL_ID_MAX];
    char idN[SPOOL_ID_MAX];
    spool_make_id(idA, sizeof(idA));
    spool_make_id(idB, sizeof(idB));
    spool_make_id(idC, sizeof(idC));
    spool_make_id(idD, sizeof(idD));
    spool_make_id(idN, sizeof(idN));

    /* A: complete, in flight when we crashed -> back to .tmp */
    char *a = write_queue(dir, idA);
    char *a_inflight = xasprintf("%s/%s.tm$", dir, idA);
    assert_int_equal(rename(a, a_inflight), 0);
    /* B: damaged .tmp -> damaged/ */
    char *b = write_queue(dir, idB);
    assert_int_equal(truncate(b, 40), 0);
    /* C: complete .tmp -> untouched */
    char *c = write_queue(dir, idC);
    /* D: damaged .tm$ -> damaged/ */
    char *d = write_queue(dir, idD);
    char *d_inflight = xasprintf("%s/%s.tm$", dir, idD);
    assert_int_equal(rename(d, d_inflight), 0);
    assert_int_equal(truncate(d_inflight, 100), 0);
    /* our own unfinished write -> removed */
    char *n = xasprintf("%s/%s.new", dir, idN);
    write_plain(n, "ALKAID-QUEUE 1\nID", 17);
    /* another host's unfinished write (it may still be writing) -> kept */
    char *other = xasprintf("%s/1795305600.M000001P99Q1.mx2.example.com.new", dir);
    write_plain(other, "partial", 7);
    /* things that are not queue files -> kept */
    char *hidden = xasprintf("%s/.lock", dir);
    write_plain(hidden, "", 0);
    char *txt = xasprintf("%s/README", dir);
    write_plain(txt, "x", 1);

    int r = spool_queue_recover(dir, report);
    assert_int_equal(r, 1);

    char *a_tmp = xasprintf("%s/%s.tmp", dir, idA);
    assert_true(exists(a_tmp));
    assert_false(exists(a_inflight));
    struct queue_envelope env;
    assert_int_equal(spool_queue_read(a_tmp, &env, NULL), 0);
    assert_string_equal(env.id, idA);
    spool_queue_envelope_clear(&env);

    char *b_dmg = xasprintf("%s/damaged/%s.tmp", dir, idB);
    assert_false(exists(b));
    assert_true(exists(b_dmg));
    char *d_dmg = xasprintf("%s/damaged/%s.tm$", dir, idD);
    assert_false(exists(d_inflight));
    assert_true(exists(d_dmg));
    assert_true(exists(c));
    assert_false(exists(n));
    assert_true(exists(other));
    assert_true(exists(hidden));
    assert_true(exists(txt));

    assert_int_equal(nreported, 2);
    bool saw_b = false, saw_d = false;
    char *b_name = xasprintf("%s.tmp", idB);
    char *d_name = xasprintf("%s.tm$", idD);
    for (int i = 0; i < nreported; i++) {
        saw_b |= strcmp(reported[i], b_name) == 0;
        saw_d |= strcmp(reported[i], d_name) == 0;
    }
    assert_true(saw_b);
    assert_true(saw_d);

    /* a second run has nothing to do */
    nreported = 0;
    assert_int_equal(spool_queue_recover(dir, report), 0);
    assert_int_equal(nreported, 0);
    assert_true(exists(a_tmp));
    assert_true(exists(c));

    /* without a report function, and on a missing directory */
    char *e = write_queue(dir, "e.mx1.example.com");
    assert_int_equal(truncate(e, 10), 0);
    assert_int_equal(spool_queue_recover(dir, NULL), 0);
    assert_false(exists(e));
    char *missing = xasprintf("%s/none", dir);
    assert_int_equal(spool_queue_recover(missing, report), 0);

    free(missing);
    free(e);
    free(b_name);
    free(d_name);
    free(d_dmg);
    free(b_dmg);
    free(a_tmp);
    free(txt);
    free(hidden);
    free(other);
    free(n);
    free(d_inflight);
    free(d);
    free(c);
    free(b);
    free(a_inflight);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_id_format, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_ids_unique_across_threads, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_ids_unique_across_processes, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_ids_sort_by_time, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_spool_file, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_spool_file_unique_names, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_spool_file_reuse, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_spool_file_errors, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_clean_temp, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_queue_roundtrip, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_queue_optional_fields, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_queue_large_message, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_queue_short_source, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_queue_refuses_injection, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_queue_truncated_everywhere, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_queue_damaged, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_queue_recover, setup, teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

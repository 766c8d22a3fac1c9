/* test_log.c - unit tests for log.c (the "[IP] [Thread] [Date] [Action]" logs)
 *
 * Each test logs into a fresh directory made by mkdtemp() under $ALKAID_TEST_TMP (or
 * /tmp). Covered: the exact line format ("IP [XXXXXXXX] Day, DD Mon YYYY HH:MM:SS +ZZZZ
 * action", "SYSTEM [00000000]" for the service itself, the thread id of the caller), the
 * file <dir>/<channel>/YYYYMMDD.log of each channel, escaping of control characters,
 * a backslash before 'x' and non-ASCII (a client cannot inject a line), over-long actions cut with
 * "...", log_proto() splitting multi-line text, disabled channels (log_error() still
 * reaches error/), stderr copies, a directory change on reload, lines from many threads
 * never interleaving, and log_format_date() in several time zones.
 *
 * SECURITY: the escaping tests are the log-forging tricks a client could try.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "log.h"
#include "testutil.h"
#include "xalloc.h"

/* ---- helpers ---------------------------------------------------------------------- */

static int setup(void **state)
{
    char *dir = make_tmpdir("log");
    if (dir == NULL) return -1;
    for (int ch = 0; ch < LOG_NCHANNELS; ch++)
        log_set_enabled((enum log_channel)ch, true);
    log_set_stderr(false);
    if (log_init(dir) < 0) return -1;
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    char *dir = *state;
    log_shutdown();
    for (int ch = 0; ch < LOG_NCHANNELS; ch++)
        log_set_enabled((enum log_channel)ch, true);
    rm_rf(dir);
    free(dir);
    return 0;
}

static const char *const chan_dir[LOG_NCHANNELS] = {"smtp", "pop3", "imap", "control", "error"};

static int today_ymd(void)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

/* The contents of today's file of channel ch ("" if there is none). */
static char *read_channel(const char *dir, enum log_channel ch)
{
    log_flush(); /* lines are written in batches */
    char *path = xasprintf("%s/%s/%08d.log", dir, chan_dir[ch], today_ymd());
    size_t len;
    char *text = fs_read_file(path, 64 << 20, &len);
    free(path);
    if (text == NULL) return xstrdup("");
    assert_int_equal(strlen(text), len); /* never a NUL byte in a log */
    return text;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

static bool channel_file_exists(const char *dir, enum log_channel ch)
{
    char *path = xasprintf("%s/%s/%08d.log", dir, chan_dir[ch], today_ymd());
    struct stat st;
    bool r = stat(path, &st) == 0;
    free(path);
    return r;
}

#define LINE_RE                                                                                    \
    "^([^ ]+) \\[([0-9A-F]{8})\\] "                                                                \
    "((Sun|Mon|Tue|Wed|Thu|Fri|Sat), [0-9]{2} "                                                    \
    "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "                                  \
    "[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}) (.*)$"

struct parsed {
    char ip[64];
    unsigned tid;
    char date[48];
    char action[8192];
};

/* Parses one line (without its LF); false if it does not have the format. */
static bool parse_line(const char *line, struct parsed *p)
{
    static regex_t re;
    static bool compiled;
    if (!compiled) {
        assert_int_equal(regcomp(&re, LINE_RE, REG_EXTENDED), 0);
        compiled = true;
    }
    regmatch_t m[7];
    if (regexec(&re, line, 7, m, 0) != 0) return false;
    snprintf(p->ip, sizeof(p->ip), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
    char tid[9];
    snprintf(tid, sizeof(tid), "%.*s", 8, line + m[2].rm_so);
    p->tid = (unsigned)strtoul(tid, NULL, 16);
    snprintf(p->date, sizeof(p->date), "%.*s", (int)(m[3].rm_eo - m[3].rm_so), line + m[3].rm_so);
    snprintf(p->action, sizeof(p->action), "%s", line + m[6].rm_so);
    return true;
}

/* Splits text into its lines (each must end in LF) and parses line i. */
static void get_line(const char *text, size_t i, struct parsed *p)
{
    const char *s = text;
    for (size_t k = 0; k < i; k++) {
        s = strchr(s, '\n');
        assert_non_null(s);
        s++;
    }
    const char *e = strchr(s, '\n');
    assert_non_null(e);
    char *line = xstrndup(s, (size_t)(e - s));
    if (!parse_line(line, p)) {
        print_error("line does not have the log format: '%s'\n", line);
        free(line);
        fail();
    }
    free(line);
}

static unsigned my_tid(void)
{
    return (unsigned)syscall(SYS_gettid);
}

/* ---- format ----------------------------------------------------------------------- */

static void test_line_format(void **state)
{
    const char *dir = *state;
    time_t before = time(NULL);
    log_line(LOG_SMTP, "192.0.2.7", "<<< EHLO %s", "client.example");
    time_t after = time(NULL);

    char *text = read_channel(dir, LOG_SMTP);
    assert_int_equal(count_lines(text), 1);
    struct parsed p;
    get_line(text, 0, &p);
    assert_string_equal(p.ip, "192.0.2.7");
    assert_int_equal(p.tid, my_tid());
    assert_string_equal(p.action, "<<< EHLO client.example");
    /* the date is now, formatted by log_format_date() */
    bool date_ok = false;
    for (time_t t = before; t <= after && !date_ok; t++) {
        char want[48];
        log_format_date(want, sizeof(want), t);
        date_ok = strcmp(want, p.date) == 0;
    }
    if (!date_ok) print_error("date '%s' is not now\n", p.date);
    assert_true(date_ok);
    /* exactly one space between the fields: rebuild the line and compare */
    char rebuilt[256];
    snprintf(rebuilt, sizeof(rebuilt), "192.0.2.7 [%08X] %s <<< EHLO client.example\n", my_tid(),
             p.date);
    assert_string_equal(text, rebuilt);
    free(text);

    /* the file name and mode */
    char *path = xasprintf("%s/smtp/%08d.log", dir, today_ymd());
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0007, 0);
    free(path);
}

static void test_system_line(void **state)
{
    const char *dir = *state;
    log_line(LOG_SMTP, NULL, "SMTP Service started");
    log_line(LOG_SMTP, "2001:db8::1", "IPv6 client");
    char *text = read_channel(dir, LOG_SMTP);
    assert_int_equal(count_lines(text), 2);
    struct parsed p;
    get_line(text, 0, &p);
    assert_string_equal(p.ip, "SYSTEM");
    assert_int_equal(p.tid, 0);
    assert_string_equal(p.action, "SMTP Service started");
    assert_int_equal(strncmp(text, "SYSTEM [00000000] ", 18), 0);
    get_line(text, 1, &p);
    assert_string_equal(p.ip, "2001:db8::1");
    assert_int_equal(p.tid, my_tid());
    assert_string_equal(p.action, "IPv6 client");
    free(text);
}

/* Client lines are written in batches: by the flusher within LOG_FLUSH_MS (100 ms), at
 * once after an error (with the lines before it) and for the service's own lines. */
static char *read_raw(const char *dir, enum log_channel ch)
{
    char *path = xasprintf("%s/%s/%08d.log", dir, chan_dir[ch], today_ymd());
    size_t len;
    char *text = fs_read_file(path, 1 << 20, &len);
    free(path);
    return text ? text : xstrdup("");
}

static void test_batched_writes(void **state)
{
    const char *dir = *state;
    log_start_batching();
    log_flush();
    log_line(LOG_POP3, "198.51.100.2", "batched line");
    /* the flusher writes it within 100 ms; allow a loaded machine a second */
    char *text = NULL;
    for (int i = 0; i < 100; i++) {
        free(text);
        text = read_raw(dir, LOG_POP3);
        if (strstr(text, "batched line")) break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_non_null(strstr(text, "batched line"));
    free(text);
    /* an error writes out the channel at once, in order */
    log_line(LOG_IMAP, "198.51.100.3", "before the error");
    log_error(LOG_IMAP, "198.51.100.3", "the error");
    text = read_raw(dir, LOG_IMAP);
    char *a = strstr(text, "before the error"), *b = strstr(text, "the error\n");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
    free(text);
    text = read_raw(dir, LOG_ERROR);
    assert_non_null(strstr(text, "the error"));
    free(text);
    /* the service's own lines are written at once */
    log_line(LOG_CONTROL, NULL, "service event");
    text = read_raw(dir, LOG_CONTROL);
    assert_non_null(strstr(text, "service event"));
    free(text);
}

static void test_channels(void **state)
{
    const char *dir = *state;
    for (int ch = 0; ch < LOG_NCHANNELS; ch++)
        log_line((enum log_channel)ch, "198.51.100.1", "on channel %s", chan_dir[ch]);
    for (int ch = 0; ch < LOG_NCHANNELS; ch++) {
        char *text = read_channel(dir, (enum log_channel)ch);
        assert_int_equal(count_lines(text), 1);
        struct parsed p;
        get_line(text, 0, &p);
        char want[64];
        snprintf(want, sizeof(want), "on channel %s", chan_dir[ch]);
        assert_string_equal(p.action, want);
        free(text);
    }
    /* log_line() on the error channel writes there once */
    log_line(LOG_ERROR, NULL, "second");
    char *text = read_channel(dir, LOG_ERROR);
    assert_int_equal(count_lines(text), 2);
    free(text);
}

/* ---- sanitising ------------------------------------------------------------------- */

static void test_escaping(void **state)
{
    const char *dir = *state;
    /* a client trying to forge a second log line, and bytes that are not printable */
    log_line(LOG_SMTP, "192.0.2.9", "<<< %s",
             "HELO x\r\nSYSTEM [00000000] Fri, 19 Jan 2001 11:36:54 +0100 forged");
    log_line(LOG_SMTP, "192.0.2.9", "%s", "tab\there bell\a del\x7f esc\x1b[31m");
    log_line(LOG_SMTP, "192.0.2.9", "%s", "caf\xc3\xa9 \xff\x80");
    log_line(LOG_SMTP, "192.0.2.9", "%s", "back\\slash \\x0A");
    log_proto(LOG_SMTP, "192.0.2.9", "<<<", "a\0b\x01", 4);

    char *text = read_channel(dir, LOG_SMTP);
    assert_int_equal(count_lines(text), 5);
    struct parsed p;
    get_line(text, 0, &p);
    assert_string_equal(p.action, "<<< HELO x\\x0D\\x0ASYSTEM [00000000] Fri, 19 Jan 2001 "
                                  "11:36:54 +0100 forged");
    get_line(text, 1, &p);
    assert_string_equal(p.action, "tab\\x09here bell\\x07 del\\x7F esc\\x1B[31m");
    get_line(text, 2, &p);
    assert_string_equal(p.action, "caf\\xC3\\xA9 \\xFF\\x80");
    /* a backslash before 'x' is escaped, so "\x0A" typed by a client is not mistaken
     * for an escaped newline; other backslashes (IMAP's \Seen) stay as they are */
    get_line(text, 3, &p);
    assert_string_equal(p.action, "back\\slash \\x5Cx0A");
    get_line(text, 4, &p);
    assert_string_equal(p.action, "<<< a\\x00b\\x01");
    /* nothing but printable ASCII and LF in the whole file */
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        assert_true(*c == '\n' || (*c >= 0x20 && *c < 0x7f));
    free(text);
}

static void test_long_action_cut(void **state)
{
    const char *dir = *state;
    char *big = xmalloc(5001);
    memset(big, 'A', 5000);
    big[5000] = '\0';
    log_line(LOG_SMTP, "192.0.2.1", "%s", big);
    char *text = read_channel(dir, LOG_SMTP);
    assert_int_equal(count_lines(text), 1);
    struct parsed p;
    get_line(text, 0, &p);
    size_t n = strlen(p.action);
    bool cut_ok = n <= LOG_MAX_ACTION + 3 && n >= LOG_MAX_ACTION && n >= 3 &&
                  strcmp(p.action + n - 3, "...") == 0;
    for (size_t i = 0; cut_ok && i < n - 3; i++)
        cut_ok = p.action[i] == 'A';
    if (!cut_ok)
        print_error("an action of 5000 characters was logged as %zu characters ending in "
                    "'%s' (expected at most %d kept, then \"...\")\n",
                    n, n >= 3 ? p.action + n - 3 : p.action, LOG_MAX_ACTION);
    free(text);
    free(big);
    assert_true(cut_ok);
}

static void test_long_escaped_action_cut(void **state)
{
    const char *dir = *state;
    /* escaping makes text four times longer; the line must stay bounded */
    char *big = xmalloc(3001);
    memset(big, '\x01', 3000);
    big[3000] = '\0';
    log_line(LOG_POP3, "192.0.2.1", "%s", big);
    log_error(LOG_POP3, "192.0.2.1", "%s", big);
    char *text = read_channel(dir, LOG_POP3);
    assert_int_equal(count_lines(text), 2);
    for (size_t i = 0; i < 2; i++) {
        struct parsed p;
        get_line(text, i, &p);
        size_t n = strlen(p.action);
        assert_true(n <= LOG_MAX_ACTION + 3 + 4);
        assert_true(n >= LOG_MAX_ACTION);
        assert_string_equal(p.action + n - 3, "...");
        assert_int_equal(strncmp(p.action, "\\x01\\x01", 8), 0);
    }
    free(text);
    free(big);
}

/* ---- log_proto -------------------------------------------------------------------- */

static void test_proto_lines(void **state)
{
    const char *dir = *state;
    const char *in = "EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>"
                     "\r\n";
    log_proto(LOG_SMTP, "192.0.2.3", "<<<", in, strlen(in));
    const char *out = "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000";
    log_proto(LOG_SMTP, "192.0.2.3", ">>>", out, strlen(out)); /* no final CRLF */
    const char *lf = "bare\nlines\n";
    log_proto(LOG_SMTP, "192.0.2.3", "<<<", lf, strlen(lf));
    const char *cr = "inner\rcr\r\n";
    log_proto(LOG_SMTP, "192.0.2.3", "<<<", cr, strlen(cr));
    log_proto(LOG_SMTP, "192.0.2.3", "<<<", "ignored", 0);

    static const char *const want[] = {
        "<<< EHLO client.example",
        "<<< MAIL FROM:<a@example.com>",
        "<<< RCPT TO:<b@example.org>",
        ">>> 250-mx.example",
        ">>> 250-PIPELINING",
        ">>> 250 SIZE 1000",
        "<<< bare",
        "<<< lines",
        "<<< inner\\x0Dcr",
    };
    char *text = read_channel(dir, LOG_SMTP);
    size_t nwant = sizeof(want) / sizeof(want[0]);
    if (count_lines(text) != nwant) print_error("log:\n%s", text);
    assert_int_equal(count_lines(text), nwant);
    for (size_t i = 0; i < nwant; i++) {
        struct parsed p;
        get_line(text, i, &p);
        assert_string_equal(p.ip, "192.0.2.3");
        assert_int_equal(p.tid, my_tid());
        assert_string_equal(p.action, want[i]);
    }
    free(text);
}

static void test_proto_long_line(void **state)
{
    const char *dir = *state;
    size_t n = 3000;
    char *in = xmalloc(n + 32);
    memset(in, 'x', n);
    memcpy(in + n, "\r\nQUIT\r\n", 9);
    log_proto(LOG_SMTP, "192.0.2.4", "<<<", in, strlen(in));
    char *text = read_channel(dir, LOG_SMTP);
    assert_int_equal(count_lines(text), 2);
    struct parsed p;
    get_line(text, 0, &p);
    size_t len = strlen(p.action);
    assert_int_equal(strncmp(p.action, "<<< xxxx", 8), 0);
    assert_true(len <= LOG_MAX_ACTION + 3);
    assert_string_equal(p.action + len - 3, "...");
    get_line(text, 1, &p);
    assert_string_equal(p.action, "<<< QUIT");
    free(text);
    free(in);
}

/* ---- switching channels off ------------------------------------------------------- */

static void test_disabled_channel(void **state)
{
    const char *dir = *state;
    log_set_enabled(LOG_POP3, false);
    assert_false(log_enabled(LOG_POP3));
    assert_true(log_enabled(LOG_SMTP));
    log_line(LOG_POP3, "192.0.2.5", "not written");
    log_proto(LOG_POP3, "192.0.2.5", "<<<", "USER x\r\n", 8);
    assert_false(channel_file_exists(dir, LOG_POP3));
    assert_false(channel_file_exists(dir, LOG_ERROR));

    /* an error still reaches error/ */
    log_error(LOG_POP3, "192.0.2.5", "disk %s", "full");
    assert_false(channel_file_exists(dir, LOG_POP3));
    char *text = read_channel(dir, LOG_ERROR);
    assert_int_equal(count_lines(text), 1);
    struct parsed p;
    get_line(text, 0, &p);
    assert_string_equal(p.ip, "192.0.2.5");
    assert_string_equal(p.action, "disk full");
    free(text);

    /* the error channel cannot be switched off */
    log_set_enabled(LOG_ERROR, false);
    assert_true(log_enabled(LOG_ERROR));
    log_error(LOG_ERROR, NULL, "still here");
    log_line(LOG_ERROR, NULL, "and here");
    text = read_channel(dir, LOG_ERROR);
    assert_int_equal(count_lines(text), 3);
    free(text);

    /* back on */
    log_set_enabled(LOG_POP3, true);
    log_line(LOG_POP3, NULL, "written");
    text = read_channel(dir, LOG_POP3);
    assert_int_equal(count_lines(text), 1);
    free(text);
}

static void test_error_goes_to_both(void **state)
{
    const char *dir = *state;
    log_error(LOG_IMAP, "192.0.2.6", "something failed: %d", 42);
    char *imap = read_channel(dir, LOG_IMAP);
    char *err = read_channel(dir, LOG_ERROR);
    assert_int_equal(count_lines(imap), 1);
    assert_int_equal(count_lines(err), 1);
    struct parsed a, b;
    get_line(imap, 0, &a);
    get_line(err, 0, &b);
    assert_string_equal(a.action, "something failed: 42");
    assert_string_equal(imap, err); /* the very same line */
    assert_string_equal(b.ip, "192.0.2.6");
    free(imap);
    free(err);
}

static void test_stderr_copy(void **state)
{
    const char *dir = *state;
    char *path = xasprintf("%s/stderr.txt", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    log_set_stderr(true);
    log_error(LOG_SMTP, NULL, "to stderr too");
    log_line(LOG_SMTP, NULL, "not an error");
    log_set_stderr(false);
    log_error(LOG_SMTP, NULL, "not copied");
    dup2(saved, STDERR_FILENO);
    close(saved);
    size_t len;
    char *text = fs_read_file(path, 1 << 20, &len);
    assert_non_null(text);
    assert_int_equal(count_lines(text), 1);
    struct parsed p;
    get_line(text, 0, &p);
    assert_string_equal(p.action, "to stderr too");
    free(text);
    free(path);
}

static void test_reinit_moves(void **state)
{
    const char *dir = *state;
    log_line(LOG_CONTROL, NULL, "first");
    char *other = xasprintf("%s/moved", dir);
    assert_int_equal(log_init(other), 0);
    log_line(LOG_CONTROL, NULL, "second");
    char *a = read_channel(dir, LOG_CONTROL);
    char *b = read_channel(other, LOG_CONTROL);
    assert_int_equal(count_lines(a), 1);
    assert_int_equal(count_lines(b), 1);
    assert_non_null(strstr(a, "first"));
    assert_non_null(strstr(b, "second"));
    /* every channel directory exists in the new place */
    for (int ch = 0; ch < LOG_NCHANNELS; ch++) {
        char *sub = xasprintf("%s/%s", other, chan_dir[ch]);
        struct stat st;
        assert_int_equal(stat(sub, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        free(sub);
    }
    /* init with the same directory again keeps writing there */
    assert_int_equal(log_init(other), 0);
    log_line(LOG_CONTROL, NULL, "third");
    free(b);
    b = read_channel(other, LOG_CONTROL);
    assert_int_equal(count_lines(b), 2);
    free(a);
    free(b);
    free(other);
}

static void test_init_fails(void **state)
{
    const char *dir = *state;
    char *file = xasprintf("%s/afile", dir);
    assert_int_equal(fs_write_file_atomic(file, "x", 1, 0600), 0);
    assert_int_equal(log_init(file), -1);
    free(file);
    /* after shutdown, logging is a harmless no-op */
    log_shutdown();
    log_line(LOG_SMTP, NULL, "nowhere");
    log_error(LOG_SMTP, NULL, "nowhere");
    log_proto(LOG_SMTP, NULL, "<<<", "x\r\n", 3);
}

/* ---- threads ---------------------------------------------------------------------- */

#define NTHREADS 8
#define NLINES   300

struct thread_arg {
    int n;
    unsigned tid;
};

static void *writer(void *p)
{
    struct thread_arg *a = p;
    a->tid = my_tid();
    char payload[200];
    memset(payload, 'a' + a->n, sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    for (int i = 0; i < NLINES; i++) {
        if (i % 2)
            log_line(LOG_IMAP, "203.0.113.1", "t%d n%d %s", a->n, i, payload);
        else
            log_proto(LOG_IMAP, "203.0.113.1", ">>>", payload, strlen(payload));
    }
    return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
    const char *dir = *state;
    pthread_t th[NTHREADS];
    struct thread_arg args[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        args[i].n = i;
        assert_int_equal(pthread_create(&th[i], NULL, writer, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    char *text = read_channel(dir, LOG_IMAP);
    assert_int_equal(count_lines(text), NTHREADS * NLINES);
    int per_thread[NTHREADS] = {0};
    const char *s = text;
    struct parsed *p = xmalloc(sizeof(*p));
    for (size_t i = 0; i < NTHREADS * NLINES; i++) {
        const char *e = strchr(s, '\n');
        char *line = xstrndup(s, (size_t)(e - s));
        if (!parse_line(line, p)) {
            print_error("garbled line: %s\n", line);
            fail();
        }
        int who = -1;
        for (int k = 0; k < NTHREADS; k++)
            if (args[k].tid == p->tid) who = k;
        assert_true(who >= 0);
        per_thread[who]++;
        /* the payload is the writer's own letter, whole */
        char *payload = strrchr(p->action, ' ');
        assert_non_null(payload);
        assert_int_equal(strlen(payload + 1), 199);
        for (const char *c = payload + 1; *c; c++)
            assert_int_equal(*c, 'a' + who);
        free(line);
        s = e + 1;
    }
    for (int k = 0; k < NTHREADS; k++)
        assert_int_equal(per_thread[k], NLINES);
    free(p);
    free(text);
}

/* ---- dates ------------------------------------------------------------------------ */

static void date_in(const char *tz, long long t, const char *want)
{
    setenv("TZ", tz, 1);
    tzset();
    char buf[48];
    log_format_date(buf, sizeof(buf), t);
    if (strcmp(buf, want) != 0) print_error("TZ=%s t=%lld\n", tz, t);
    assert_string_equal(buf, want);
}

static void test_format_date(void **state)
{
    char *old = getenv("TZ") ? xstrdup(getenv("TZ")) : NULL;
    date_in("UTC0", 0, "Thu, 01 Jan 1970 00:00:00 +0000");
    date_in("UTC0", 1000000000, "Sun, 09 Sep 2001 01:46:40 +0000");
    date_in("CET-1", 979900614, "Fri, 19 Jan 2001 11:36:54 +0100");
    date_in("EST5", 979900614, "Fri, 19 Jan 2001 05:36:54 -0500");
    date_in("IST-5:30", 0, "Thu, 01 Jan 1970 05:30:00 +0530");
    date_in("NPT-5:45", 0, "Thu, 01 Jan 1970 05:45:00 +0545");
    date_in("NST3:30", 0, "Wed, 31 Dec 1969 20:30:00 -0330");
    date_in("UTC0", -1, "Wed, 31 Dec 1969 23:59:59 +0000");
    date_in("UTC0", 4102444800LL, "Fri, 01 Jan 2100 00:00:00 +0000");
    date_in("UTC0", 1795305600LL, "Sun, 22 Nov 2026 00:00:00 +0000");
    /* summer time: Central Europe in July */
    date_in("CET-1CEST,M3.5.0,M10.5.0/3", 1720000000LL, "Wed, 03 Jul 2024 11:46:40 +0200");

    /* a short buffer gets a terminated prefix */
    setenv("TZ", "UTC0", 1);
    tzset();
    char small[10];
    log_format_date(small, sizeof(small), 0);
    assert_string_equal(small, "Thu, 01 J");

    if (old) {
        setenv("TZ", old, 1);
        free(old);
    } else {
        unsetenv("TZ");
    }
    tzset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_action_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_escaped_action_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proto_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proto_long_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_goes_to_both, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stderr_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reinit_moves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_do_not_interleave, setup, teardown),
        cmocka_unit_test(test_format_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

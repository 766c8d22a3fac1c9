/* test_conn.c - unit tests for conn.c (buffered, deadline-bound connection I/O)
 *
 * Every test runs over a socketpair: one end wrapped in a struct conn, the other written
 * and read directly (from a helper thread when timing matters). Covered: lines ending in
 * CRLF and in LF, NUL bytes inside a line, the maximum (counting the line end) with the
 * over-long line skipped and the next one read fine, over-long lines bigger than the read
 * buffer, a line fed one byte at a time with delays, the absolute deadline (a peer
 * sending one byte every 100 ms is cut off at the deadline, not kept alive per byte), a
 * silent peer, EOF (clean and mid-line), conn_shutdown() waking a blocked reader,
 * write/puts/printf buffered until conn_flush(), large writes, a failed flush, the byte
 * counters, conn_pending(), conn_fill/peek/consume and conn_wait_readable().
 *
 * SECURITY: the timing tests are the slowloris defence; the over-long tests show a line
 * past the maximum is never stored.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "fsutil.h"
#include "xalloc.h"

struct pair {
    struct conn *conn;
    int peer;
};

static int setup(void **state)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -1;
    struct pair *p = xcalloc(1, sizeof(*p));
    p->conn = conn_new(sv[0]);
    p->peer = sv[1];
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    conn_free(&p->conn);
    if (p->peer >= 0) close(p->peer);
    free(p);
    return 0;
}

static void peer_send(struct pair *p, const char *data, size_t len)
{
    assert_int_equal(fs_write_all(p->peer, data, len), 0);
}

static void peer_sends(struct pair *p, const char *s)
{
    peer_send(p, s, strlen(s));
}

/* Bytes available at the peer within timeout_ms (0 if none). */
static size_t peer_recv(struct pair *p, char *buf, size_t size, int timeout_ms)
{
    struct pollfd pfd = {.fd = p->peer, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0) return 0;
    ssize_t n = recv(p->peer, buf, size, MSG_DONTWAIT);
    return n > 0 ? (size_t)n : 0;
}

static int64_t soon(int ms)
{
    return conn_now_ms() + ms;
}

/* ---- lines ------------------------------------------------------------------------ */

static void test_read_lines(void **state)
{
    struct pair *p = *state;
    struct sbuf line = SBUF_INIT(0);
    const char *in = "EHLO client.example\r\nMAIL FROM:<a@b>\nlast\r\n\r\n\n";
    peer_sends(p, in);
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_OK);
    assert_string_equal(sbuf_cstr(&line), "EHLO client.example");
    assert_int_equal(line.len, 19);
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_OK);
    assert_string_equal(sbuf_cstr(&line), "MAIL FROM:<a@b>");
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_OK);
    assert_string_equal(sbuf_cstr(&line), "last");
    /* empty lines, CRLF and LF */
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_OK);
    assert_int_equal(line.len, 0);
    assert_string_equal(sbuf_cstr(&line), "");
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_OK);
    assert_int_equal(line.len, 0);
    assert_int_equal(p->conn->bytes_in, strlen(in));

    /* a CR alone is part of the line; only a CR right before the LF is dropped */
    peer_sends(p, "a\rb\r\r\n");
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_OK);
    assert_int_equal(line.len, 4);
    assert_memory_equal(line.data, "a\rb\r", 5);

    /* NUL bytes are kept: the caller compares len and strlen */
    peer_send(p, "x\0y\r\n", 5);
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_OK);
    assert_int_equal(line.len, 3);
    assert_memory_equal(line.data, "x\0y", 4);
    assert_int_equal(strlen(line.data), 1);
    sbuf_free(&line);
}

static void test_line_max(void **state)
{
    struct pair *p = *state;
    struct sbuf line = SBUF_INIT(0);
    /* max counts the line end: 8 + CRLF = 10 fits, 9 + CRLF does not */
    peer_sends(p, "12345678\r\n123456789\r\nnext\r\n1234567890\nok\n");
    assert_int_equal(conn_read_line(p->conn, &line, 10, soon(1000)), CONN_OK);
    assert_string_equal(line.data, "12345678");
    assert_int_equal(conn_read_line(p->conn, &line, 10, soon(1000)), CONN_TOOLONG);
    assert_int_equal(line.len, 0); /* never stored */
    assert_int_equal(conn_read_line(p->conn, &line, 10, soon(1000)), CONN_OK);
    assert_string_equal(line.data, "next");
    assert_int_equal(conn_read_line(p->conn, &line, 10, soon(1000)), CONN_TOOLONG);
    assert_int_equal(conn_read_line(p->conn, &line, 10, soon(1000)), CONN_OK);
    assert_string_equal(line.data, "ok");
    sbuf_free(&line);

    /* the line's own sbuf maximum is honoured too */
    struct sbuf small = SBUF_INIT(4);
    peer_sends(p, "abcdef\nxy\n");
    assert_int_equal(conn_read_line(p->conn, &small, 1000, soon(1000)), CONN_TOOLONG);
    assert_int_equal(conn_read_line(p->conn, &small, 1000, soon(1000)), CONN_OK);
    assert_string_equal(small.data, "xy");
    sbuf_free(&small);
}

struct sender {
    int fd;
    const char *data;
    size_t len;
    size_t chunk;
    int delay_ms;
    size_t limit; /* with len 0 (endless): stop after this many bytes anyway */
    volatile bool stop;
    size_t sent;
};

static void *send_thread(void *arg)
{
    struct sender *s = arg;
    size_t off = 0;
    while (!s->stop && (s->len == 0 || off < s->len) && (s->limit == 0 || off < s->limit)) {
        size_t n = s->chunk;
        const char *src = s->data + (s->len ? off : 0);
        if (s->len && n > s->len - off) n = s->len - off;
        if (send(s->fd, src, n, MSG_NOSIGNAL) < 0) break;
        off += n;
        s->sent = off;
        if (s->delay_ms) usleep((useconds_t)s->delay_ms * 1000);
    }
    return NULL;
}

static void test_long_line_bigger_than_buffer(void **state)
{
    struct pair *p = *state;
    size_t n = CONN_RBUF_SIZE * 5 + 123;
    char *data = xmalloc(n + 32);
    memset(data, 'z', n);
    memcpy(data + n, "\r\nQUIT\r\n", 8);
    struct sender s = {.fd = p->peer, .data = data, .len = n + 8, .chunk = 7000};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_thread, &s), 0);
    struct sbuf line = SBUF_INIT(0);
    assert_int_equal(conn_read_line(p->conn, &line, 1000, soon(5000)), CONN_TOOLONG);
    assert_true(line.cap < 2000); /* the excess was dropped, not stored */
    assert_int_equal(conn_read_line(p->conn, &line, 1000, soon(5000)), CONN_OK);
    assert_string_equal(line.data, "QUIT");
    pthread_join(th, NULL);

    /* a long line within the maximum but longer than the read buffer is read whole */
    memset(data, 'y', n);
    memcpy(data + n, "\r\n", 2);
    struct sender s2 = {.fd = p->peer, .data = data, .len = n + 2, .chunk = 5000};
    assert_int_equal(pthread_create(&th, NULL, send_thread, &s2), 0);
    assert_int_equal(conn_read_line(p->conn, &line, n + 2, soon(5000)), CONN_OK);
    assert_int_equal(line.len, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(line.data[i], 'y');
    pthread_join(th, NULL);
    sbuf_free(&line);
    free(data);
}

static void test_one_byte_at_a_time(void **state)
{
    struct pair *p = *state;
    const char *text = "EHLO client.example\r\nRCPT TO:<x@example.org>\r\n";
    struct sender s = {.fd = p->peer, .data = text, .len = strlen(text), .chunk = 1, .delay_ms = 2};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_thread, &s), 0);
    struct sbuf line = SBUF_INIT(0);
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(5000)), CONN_OK);
    assert_string_equal(line.data, "EHLO client.example");
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(5000)), CONN_OK);
    assert_string_equal(line.data, "RCPT TO:<x@example.org>");
    pthread_join(th, NULL);

    /* one byte at a time, over-long: skipped through its LF */
    const char *text2 = "0123456789abcdef\r\nok\r\n";
    struct sender s2 = {
        .fd = p->peer, .data = text2, .len = strlen(text2), .chunk = 1, .delay_ms = 1};
    assert_int_equal(pthread_create(&th, NULL, send_thread, &s2), 0);
    assert_int_equal(conn_read_line(p->conn, &line, 8, soon(5000)), CONN_TOOLONG);
    assert_int_equal(conn_read_line(p->conn, &line, 8, soon(5000)), CONN_OK);
    assert_string_equal(line.data, "ok");
    pthread_join(th, NULL);
    sbuf_free(&line);
}

/* ---- deadlines -------------------------------------------------------------------- */

static void test_deadline_is_absolute(void **state)
{
    struct pair *p = *state;
    /* a peer that sends one byte every 100 ms and never ends the line */
    static const char x[1] = {'x'};
    /* (it gives up after 40 bytes, 4 s, so a per-byte deadline fails instead of hanging) */
    struct sender s = {
        .fd = p->peer, .data = x, .len = 0, .chunk = 1, .delay_ms = 100, .limit = 40};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_thread, &s), 0);
    struct sbuf line = SBUF_INIT(0);
    int64_t start = conn_now_ms();
    enum conn_status st = conn_read_line(p->conn, &line, 100000, start + 500);
    int64_t took = conn_now_ms() - start;
    s.stop = true;
    pthread_join(th, NULL);
    assert_int_equal(st, CONN_TIMEOUT);
    if (took < 490 || took > 1500) print_error("timed out after %lld ms\n", (long long)took);
    assert_true(took >= 490);
    assert_true(took <= 1500);
    assert_true(s.sent >= 3); /* bytes did arrive in between */
    sbuf_free(&line);
}

static void test_silent_peer_times_out(void **state)
{
    struct pair *p = *state;
    struct sbuf line = SBUF_INIT(0);
    int64_t start = conn_now_ms();
    assert_int_equal(conn_read_line(p->conn, &line, 512, start + 150), CONN_TIMEOUT);
    int64_t took = conn_now_ms() - start;
    assert_true(took >= 145 && took < 1500);
    /* a deadline already past */
    assert_int_equal(conn_read_line(p->conn, &line, 512, conn_now_ms() - 1), CONN_TIMEOUT);
    /* partial line then silence */
    peer_sends(p, "HELO");
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(100)), CONN_TIMEOUT);
    /* conn_fill and conn_wait_readable time out the same way (the partial line was
     * consumed by the read above) */
    start = conn_now_ms();
    assert_int_equal(conn_fill(p->conn, start + 100), CONN_TIMEOUT);
    assert_false(conn_wait_readable(p->conn, soon(50)));
    sbuf_free(&line);
}

/* ---- end of connection ------------------------------------------------------------ */

static void test_eof(void **state)
{
    struct pair *p = *state;
    struct sbuf line = SBUF_INIT(0);
    peer_sends(p, "QUIT\r\npartial");
    close(p->peer);
    p->peer = -1;
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_OK);
    assert_string_equal(line.data, "QUIT");
    /* a line cut by the close is not returned as a line */
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_EOF);
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_EOF);
    assert_int_equal(conn_fill(p->conn, soon(1000)), CONN_EOF);
    sbuf_free(&line);
}

struct blocked_reader {
    struct conn *conn;
    enum conn_status st;
    int64_t took;
};

static void *blocked_read(void *arg)
{
    struct blocked_reader *b = arg;
    struct sbuf line = SBUF_INIT(0);
    int64_t start = conn_now_ms();
    b->st = conn_read_line(b->conn, &line, 512, start + 30000);
    b->took = conn_now_ms() - start;
    sbuf_free(&line);
    return NULL;
}

static void test_shutdown_wakes_reader(void **state)
{
    struct pair *p = *state;
    struct blocked_reader b = {.conn = p->conn};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, blocked_read, &b), 0);
    usleep(100000);
    conn_shutdown(p->conn);
    pthread_join(th, NULL);
    assert_true(b.st == CONN_EOF || b.st == CONN_ERROR);
    assert_true(b.took < 5000);
    /* writing after shutdown fails cleanly */
    conn_puts(p->conn, "421 bye\r\n");
    assert_int_equal(conn_flush(p->conn, soon(1000)), CONN_ERROR);
}

/* ---- writing ---------------------------------------------------------------------- */

static void test_write_flush(void **state)
{
    struct pair *p = *state;
    char buf[4096];
    conn_puts(p->conn, "220 mx.example ESMTP\r\n");
    conn_printf(p->conn, "250-%s %d\r\n", "SIZE", 1000);
    conn_write(p->conn, "250 OK\r\n", 8);
    /* buffered: nothing has left yet */
    assert_int_equal(peer_recv(p, buf, sizeof(buf), 50), 0);
    assert_int_equal(p->conn->bytes_out, 0);
    assert_int_equal(conn_flush(p->conn, soon(1000)), CONN_OK);
    const char *want = "220 mx.example ESMTP\r\n250-SIZE 1000\r\n250 OK\r\n";
    size_t got = 0;
    while (got < strlen(want)) {
        size_t n = peer_recv(p, buf + got, sizeof(buf) - got, 1000);
        assert_true(n > 0);
        got += n;
    }
    assert_int_equal(got, strlen(want));
    assert_memory_equal(buf, want, got);
    assert_int_equal(p->conn->bytes_out, strlen(want));
    /* flushing an empty buffer is fine */
    assert_int_equal(conn_flush(p->conn, soon(1000)), CONN_OK);
    assert_int_equal(p->conn->bytes_out, strlen(want));

    /* a printf longer than its internal buffer is cut, never overflows */
    char longs[3000];
    memset(longs, 'p', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    conn_printf(p->conn, "%s", longs);
    assert_int_equal(conn_flush(p->conn, soon(1000)), CONN_OK);
    got = 0;
    size_t n;
    while ((n = peer_recv(p, buf + got, sizeof(buf) - got, 200)) > 0)
        got += n;
    assert_true(got > 0 && got < sizeof(longs));
}

struct drain {
    int fd;
    char *buf;
    size_t size, got;
};

static void *drain_thread(void *arg)
{
    struct drain *d = arg;
    while (d->got < d->size) {
        ssize_t n = read(d->fd, d->buf + d->got, d->size - d->got);
        if (n <= 0) break;
        d->got += (size_t)n;
    }
    return NULL;
}

static void test_large_write(void **state)
{
    struct pair *p = *state;
    /* larger than CONN_WBUF_MAX and than the socket buffer: the peer reads meanwhile */
    size_t n = CONN_WBUF_MAX * 3 + 777;
    char *data = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 13 + i / 7);
    struct drain d = {.fd = p->peer, .buf = xmalloc(n + 10), .size = n + 10};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, drain_thread, &d), 0);
    conn_write(p->conn, "head", 4);
    conn_write(p->conn, data, n);
    conn_write(p->conn, "tail\r\n", 6);
    assert_int_equal(conn_flush(p->conn, soon(10000)), CONN_OK);
    pthread_join(th, NULL);
    assert_int_equal(d.got, n + 10);
    assert_memory_equal(d.buf, "head", 4);
    assert_memory_equal(d.buf + 4, data, n);
    assert_memory_equal(d.buf + 4 + n, "tail\r\n", 6);
    assert_int_equal(p->conn->bytes_out, n + 10);
    assert_false(p->conn->write_failed);

    /* many small writes past the buffer limit */
    struct drain d2 = {.fd = p->peer, .buf = xmalloc(CONN_WBUF_MAX * 2), .size = 0};
    char chunk[1000];
    memset(chunk, 'c', sizeof(chunk));
    size_t total = 0;
    d2.size = (CONN_WBUF_MAX / sizeof(chunk) + 100) * sizeof(chunk);
    assert_int_equal(pthread_create(&th, NULL, drain_thread, &d2), 0);
    while (total < d2.size) {
        conn_write(p->conn, chunk, sizeof(chunk));
        total += sizeof(chunk);
    }
    assert_int_equal(conn_flush(p->conn, soon(10000)), CONN_OK);
    pthread_join(th, NULL);
    assert_int_equal(d2.got, d2.size);
    free(d2.buf);
    free(d.buf);
    free(data);
}

static void test_flush_to_closed_peer(void **state)
{
    struct pair *p = *state;
    close(p->peer);
    p->peer = -1;
    conn_puts(p->conn, "250 OK\r\n");
    assert_int_equal(conn_flush(p->conn, soon(1000)), CONN_ERROR);
    assert_true(p->conn->write_failed);
    /* later writes are dropped and flush keeps failing, without blocking */
    conn_puts(p->conn, "more\r\n");
    int64_t start = conn_now_ms();
    assert_int_equal(conn_flush(p->conn, soon(5000)), CONN_ERROR);
    assert_true(conn_now_ms() - start < 1000);
}

static void test_flush_deadline(void **state)
{
    struct pair *p = *state;
    /* a peer that never reads: the flush gives up at its deadline */
    int small = 4096;
    setsockopt(p->peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    size_t n = 4u << 20;
    char *data = xcalloc(1, n);
    struct sbuf *wb = &p->conn->wbuf;
    assert_int_equal(sbuf_append(wb, data, CONN_WBUF_MAX), 0);
    int64_t start = conn_now_ms();
    assert_int_equal(conn_flush(p->conn, start + 300), CONN_ERROR);
    int64_t took = conn_now_ms() - start;
    assert_true(took >= 290 && took < 2000);
    assert_true(p->conn->write_failed);
    free(data);
}

/* ---- pending, peek and consume ---------------------------------------------------- */

static void test_pending(void **state)
{
    struct pair *p = *state;
    struct sbuf line = SBUF_INIT(0);
    assert_int_equal(conn_pending(p->conn), 0);
    /* pipelined commands arrive together */
    peer_sends(p, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    usleep(20000);
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_OK);
    assert_string_equal(line.data, "MAIL FROM:<a@b>");
    assert_int_equal(conn_pending(p->conn), strlen("RCPT TO:<c@d>\r\nDATA\r\n"));
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_OK);
    assert_int_equal(conn_pending(p->conn), strlen("DATA\r\n"));
    assert_int_equal(conn_read_line(p->conn, &line, 512, soon(1000)), CONN_OK);
    assert_string_equal(line.data, "DATA");
    assert_int_equal(conn_pending(p->conn), 0); /* time to flush the replies */
    sbuf_free(&line);
}

static void test_peek_consume(void **state)
{
    struct pair *p = *state;
    peer_sends(p, "hello world");
    assert_true(conn_wait_readable(p->conn, soon(1000)));
    assert_int_equal(conn_fill(p->conn, soon(1000)), CONN_OK);
    size_t len;
    const char *d = conn_peek(p->conn, &len);
    assert_int_equal(len, 11);
    assert_memory_equal(d, "hello world", 11);
    conn_consume(p->conn, 6);
    d = conn_peek(p->conn, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(d, "world", 5);
    assert_int_equal(conn_pending(p->conn), 5);
    /* fill with data buffered returns at once */
    int64_t start = conn_now_ms();
    assert_int_equal(conn_fill(p->conn, start + 5000), CONN_OK);
    assert_true(conn_now_ms() - start < 100);
    conn_consume(p->conn, 5);
    assert_int_equal(conn_pending(p->conn), 0);
    d = conn_peek(p->conn, &len);
    assert_int_equal(len, 0);
    /* a line after a peek/consume mix */
    struct sbuf line = SBUF_INIT(0);
    peer_sends(p, "line\r\n");
    assert_int_equal(conn_read_line(p->conn, &line, 100, soon(1000)), CONN_OK);
    assert_string_equal(line.data, "line");
    sbuf_free(&line);
}

static void test_new_and_free(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct conn *c = conn_new(sv[0]);
    assert_non_null(c);
    assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    assert_false(conn_is_tls(c));
    assert_int_equal(conn_pending(c), 0);
    conn_free(&c);
    assert_null(c);
    conn_free(&c); /* NULL is fine */
    /* the descriptor was closed: the peer sees EOF */
    char b;
    assert_int_equal(read(sv[1], &b, 1), 0);
    close(sv[1]);
    /* the monotonic clock moves forward */
    int64_t a = conn_now_ms();
    usleep(20000);
    assert_true(conn_now_ms() - a >= 19);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_bigger_than_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_byte_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_is_absolute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_peer_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_wakes_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_to_closed_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peek_consume, setup, teardown),
        cmocka_unit_test(test_new_and_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_server.c - unit tests for server.c (listeners, a thread per session, limits)
 *
 * Each test starts a server on 127.0.0.1 and a free port (found by binding port 0 and
 * releasing it) with an echo handler, and talks to it over real TCP connections; clients
 * bind to 127.0.0.x to appear as different addresses. Covered: a session from greeting
 * to QUIT with the session's fields filled in; the per-address cap and the total cap
 * (the busy reply, then the connection closed without reaching the handler; a freed slot
 * is usable again); server_stop() ending sessions blocked in a read after the grace time,
 * and not waiting the whole grace when handlers notice server_stopping(); the listener
 * closed after stop; statistics (sessions, rejections, bytes); listen errors; the TLS
 * context reference; an implicit-TLS listener with no context never reaching the
 * handler.
 *
 * SECURITY: the caps are the service's defence against one address (or many) taking
 * every thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
#include "server.h"
#include "xalloc.h"

#define BUSY "421 4.7.0 Too many connections, try again later\r\n"

struct ctx {
    int started, ended;
    int read_ms;         /* deadline of each read in the handler */
    bool watch_stopping; /* poll server_stopping() between short reads */
    enum conn_status last_status;
    char ip[64];
    int port, local_port, kind;
    void *data_seen;
    pthread_mutex_t lock;
};

struct fixture {
    struct ctx ctx;
    struct server *server;
    struct listener_def def;
    int port;
};

static void echo_handler(struct session *s)
{
    struct ctx *c = s->data;
    pthread_mutex_lock(&c->lock);
    c->started++;
    snprintf(c->ip, sizeof(c->ip), "%s", s->conn->ip);
    c->port = s->conn->port;
    c->local_port = s->conn->local_port;
    c->kind = s->listener->kind;
    c->data_seen = s->data;
    int read_ms = c->read_ms;
    bool watch = c->watch_stopping;
    pthread_mutex_unlock(&c->lock);

    conn_puts(s->conn, "220 hello\r\n");
    conn_flush(s->conn, conn_now_ms() + 2000);
    struct sbuf line = SBUF_INIT(0);
    enum conn_status st;
    for (;;) {
        if (watch && server_stopping(s->server)) {
            st = CONN_EOF;
            break;
        }
        st = conn_read_line(s->conn, &line, 1000, conn_now_ms() + (watch ? 50 : read_ms));
        if (st == CONN_TIMEOUT && watch) continue;
        if (st != CONN_OK) break;
        if (strcmp(sbuf_cstr(&line), "QUIT") == 0) {
            conn_puts(s->conn, "221 bye\r\n");
            conn_flush(s->conn, conn_now_ms() + 2000);
            break;
        }
        conn_printf(s->conn, "echo %s\r\n", sbuf_cstr(&line));
        conn_flush(s->conn, conn_now_ms() + 2000);
    }
    sbuf_free(&line);
    pthread_mutex_lock(&c->lock);
    c->last_status = st;
    c->ended++;
    pthread_mutex_unlock(&c->lock);
}

static int ctx_get(struct ctx *c, const int *field)
{
    pthread_mutex_lock(&c->lock);
    int v = *field;
    pthread_mutex_unlock(&c->lock);
    return v;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts a server with an echo handler; limits as given (max_sessions 0: the defaults of
 * server_new(), server_set_limits() not called). */
static struct fixture *start(int max_sessions, int max_per_ip, int read_ms, bool implicit_tls)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    pthread_mutex_init(&f->ctx.lock, NULL);
    f->ctx.read_ms = read_ms;
    f->server = server_new("TEST", LOG_SMTP, &f->ctx);
    if (max_sessions > 0) server_set_limits(f->server, max_sessions, max_per_ip, 2);
    const char *err = NULL;
    for (int attempt = 0; attempt < 10; attempt++) {
        f->port = free_port();
        f->def = (struct listener_def){.name = "TEST",
                                       .bind = "127.0.0.1",
                                       .port = f->port,
                                       .implicit_tls = implicit_tls,
                                       .kind = 7,
                                       .handler = echo_handler,
                                       .busy_reply = BUSY};
        if (server_listen(f->server, &f->def, &err) == 0) break;
        f->port = -1;
    }
    assert_true(f->port > 0);
    assert_int_equal(server_start(f->server), 0);
    return f;
}

static void finish(struct fixture *f)
{
    server_stop(f->server, 1000);
    server_free(&f->server);
    assert_null(f->server);
    pthread_mutex_destroy(&f->ctx.lock);
    free(f);
}

/* A client connection from source address src (127.0.0.x). */
static int client(const struct fixture *f, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (src) {
        struct sockaddr_in me = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &me.sin_addr);
        assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one line (with its CRLF) within timeout_ms; "" on EOF, "TIMEOUT" on none. */
static void client_line(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t n = 0;
    int64_t deadline = conn_now_ms() + timeout_ms;
    buf[0] = '\0';
    while (n + 1 < size) {
        int64_t left = deadline - conn_now_ms();
        if (left <= 0) {
            snprintf(buf, size, "TIMEOUT");
            return;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) continue;
        ssize_t r = recv(fd, buf + n, 1, 0);
        if (r <= 0) break;
        n++;
        if (buf[n - 1] == '\n') break;
    }
    buf[n] = '\0';
}

static void client_send(int fd, const char *s)
{
    assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* True if the server closed the connection (EOF) within timeout_ms. */
static bool client_sees_eof(int fd, int timeout_ms)
{
    char buf[256];
    client_line(fd, buf, sizeof(buf), timeout_ms);
    return buf[0] == '\0';
}

static struct server_stats stats(struct fixture *f)
{
    struct server_stats st;
    server_get_stats(f->server, &st);
    return st;
}

/* Waits until the server counts `active` sessions. */
static void wait_active(struct fixture *f, unsigned active)
{
    for (int i = 0; i < 3000 && stats(f).active != active; i++)
        usleep(1000);
    assert_int_equal(stats(f).active, active);
}

static void wait_ended(struct fixture *f, int ended)
{
    for (int i = 0; i < 3000 && ctx_get(&f->ctx, &f->ctx.ended) != ended; i++)
        usleep(1000);
    assert_int_equal(ctx_get(&f->ctx, &f->ctx.ended), ended);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_echo_session(void **state)
{
    struct fixture *f = start(10, 5, 5000, false);
    assert_int_equal(server_channel(f->server), LOG_SMTP);
    assert_false(server_stopping(f->server));
    int fd = client(f, NULL);
    assert_true(fd >= 0);
    char buf[256];
    client_line(fd, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "220 hello\r\n");
    client_send(fd, "ping\r\n");
    client_line(fd, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "echo ping\r\n");
    client_send(fd, "QUIT\r\n");
    client_line(fd, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "221 bye\r\n");
    assert_true(client_sees_eof(fd, 2000));

    /* the session's fields */
    struct sockaddr_in me;
    socklen_t len = sizeof(me);
    getsockname(fd, (struct sockaddr *)&me, &len);
    close(fd);
    wait_ended(f, 1);
    assert_string_equal(f->ctx.ip, "127.0.0.1");
    assert_int_equal(f->ctx.port, ntohs(me.sin_port));
    assert_int_equal(f->ctx.local_port, f->port);
    assert_int_equal(f->ctx.kind, 7);
    assert_ptr_equal(f->ctx.data_seen, &f->ctx);

    wait_active(f, 0);
    struct server_stats st = stats(f);
    assert_int_equal(st.total, 1);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.bytes_in, strlen("ping\r\nQUIT\r\n"));
    assert_int_equal(st.bytes_out, strlen("220 hello\r\necho ping\r\n221 bye\r\n"));
    finish(f);
}

static void test_stats_many_sessions(void **state)
{
    struct fixture *f = start(10, 5, 5000, false);
    char buf[256];
    for (int i = 0; i < 5; i++) {
        int fd = client(f, NULL);
        client_line(fd, buf, sizeof(buf), 2000);
        assert_string_equal(buf, "220 hello\r\n");
        client_send(fd, "hello\r\nQUIT\r\n");
        client_line(fd, buf, sizeof(buf), 2000);
        assert_string_equal(buf, "echo hello\r\n");
        client_line(fd, buf, sizeof(buf), 2000);
        assert_string_equal(buf, "221 bye\r\n");
        close(fd);
    }
    wait_ended(f, 5);
    wait_active(f, 0);
    struct server_stats st = stats(f);
    assert_int_equal(st.total, 5);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.bytes_in, 5 * strlen("hello\r\nQUIT\r\n"));
    assert_int_equal(st.bytes_out, 5 * strlen("220 hello\r\necho hello\r\n221 bye\r\n"));

    /* bytes of sessions still running are counted too */
    int fd = client(f, NULL);
    client_line(fd, buf, sizeof(buf), 2000);
    client_send(fd, "abc\r\n");
    client_line(fd, buf, sizeof(buf), 2000);
    st = stats(f);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.bytes_in, 5 * strlen("hello\r\nQUIT\r\n") + 5);
    close(fd);
    finish(f);
}

static void test_per_ip_cap(void **state)
{
    struct fixture *f = start(10, 2, 5000, false);
    char buf[256];
    int c1 = client(f, "127.0.0.1");
    client_line(c1, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "220 hello\r\n");
    int c2 = client(f, "127.0.0.1");
    client_line(c2, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "220 hello\r\n");
    /* a third from the same address: the busy reply, then closed */
    int c3 = client(f, "127.0.0.1");
    client_line(c3, buf, sizeof(buf), 2000);
    assert_string_equal(buf, BUSY);
    assert_true(client_sees_eof(c3, 2000));
    close(c3);
    /* another address is still welcome */
    int c4 = client(f, "127.0.0.2");
    client_line(c4, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "220 hello\r\n");
    assert_int_equal(ctx_get(&f->ctx, &f->ctx.started), 3); /* c3 never reached it */

    struct server_stats st = stats(f);
    assert_int_equal(st.total, 4);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.active, 3);

    /* a slot freed by the address is usable again */
    close(c1);
    wait_active(f, 2);
    int c5 = client(f, "127.0.0.1");
    client_line(c5, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "220 hello\r\n");

    close(c2);
    close(c4);
    close(c5);
    finish(f);
}

static void test_total_cap(void **state)
{
    struct fixture *f = start(2, 10, 5000, false);
    char buf[256];
    int c1 = client(f, "127.0.0.1");
    client_line(c1, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "220 hello\r\n");
    int c2 = client(f, "127.0.0.2");
    client_line(c2, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "220 hello\r\n");
    int c3 = client(f, "127.0.0.3");
    client_line(c3, buf, sizeof(buf), 2000);
    assert_string_equal(buf, BUSY);
    assert_true(client_sees_eof(c3, 2000));
    close(c3);
    assert_int_equal(ctx_get(&f->ctx, &f->ctx.started), 2);
    struct server_stats st = stats(f);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.active, 2);

    close(c2);
    wait_active(f, 1);
    int c4 = client(f, "127.0.0.4");
    client_line(c4, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "220 hello\r\n");
    close(c1);
    close(c4);
    finish(f);
}

/* Many addresses coming and going must not exhaust the per-address table. */
static void test_many_addresses(void **state)
{
    struct fixture *f = start(4, 1, 5000, false);
    char buf[256];
    for (int i = 1; i <= 200; i++) {
        char src[32];
        snprintf(src, sizeof(src), "127.0.%d.%d", i / 250, i % 250 + 1);
        int fd = client(f, src);
        assert_true(fd >= 0);
        client_line(fd, buf, sizeof(buf), 2000);
        if (strcmp(buf, "220 hello\r\n") != 0) print_error("client %d from %s: %s\n", i, src, buf);
        assert_string_equal(buf, "220 hello\r\n");
        client_send(fd, "QUIT\r\n");
        client_line(fd, buf, sizeof(buf), 2000);
        close(fd);
        wait_active(f, 0);
    }
    assert_int_equal(stats(f).rejected, 0);
    finish(f);
}

static void test_stop_interrupts_idle_sessions(void **state)
{
    struct fixture *f = start(10, 5, 30000, false); /* handlers block up to 30 s */
    char buf[256];
    int c1 = client(f, "127.0.0.1");
    client_line(c1, buf, sizeof(buf), 2000);
    int64_t t0 = conn_now_ms();
    server_stop(f->server, 5000);
    int64_t took = conn_now_ms() - t0;
    if (took > 1000) print_error("server_stop took %lld ms\n", (long long)took);
    assert_true(took <= 1000); /* an idle read gives up well before the grace time */
    assert_int_equal(f->ctx.last_status, CONN_STOPPED);
    assert_true(client_sees_eof(c1, 1000));
    close(c1);
    finish(f);
}

static void test_stop_ends_blocked_sessions(void **state)
{
    struct fixture *f = start(10, 5, 30000, false); /* handlers block up to 30 s */
    char buf[256];
    int c1 = client(f, "127.0.0.1");
    int c2 = client(f, "127.0.0.2");
    client_line(c1, buf, sizeof(buf), 2000);
    client_line(c2, buf, sizeof(buf), 2000);
    assert_int_equal(ctx_get(&f->ctx, &f->ctx.started), 2);
    /* c2 is in the middle of a line: only the end of the grace time stops it */
    client_send(c2, "half a li");
    usleep(100 * 1000);

    int64_t t0 = conn_now_ms();
    server_stop(f->server, 300);
    int64_t took = conn_now_ms() - t0;
    if (took < 280 || took > 3000) print_error("server_stop took %lld ms\n", (long long)took);
    assert_true(took >= 280);  /* the grace time was given to the session mid-line */
    assert_true(took <= 3000); /* then its blocked read was ended */
    assert_true(server_stopping(f->server));
    assert_int_equal(ctx_get(&f->ctx, &f->ctx.ended), 2);
    assert_true(f->ctx.last_status == CONN_EOF || f->ctx.last_status == CONN_ERROR);
    assert_int_equal(stats(f).active, 0);
    assert_true(client_sees_eof(c1, 1000));
    assert_true(client_sees_eof(c2, 1000));
    close(c1);
    close(c2);

    /* nothing listens any more */
    assert_int_equal(client(f, NULL), -1);

    server_stop(f->server, 100); /* twice is harmless */
    server_free(&f->server);
    pthread_mutex_destroy(&f->ctx.lock);
    free(f);
}

static void test_stop_without_waiting_the_grace(void **state)
{
    struct fixture *f = start(10, 5, 0, false);
    f->ctx.watch_stopping = true;
    char buf[256];
    int c1 = client(f, NULL);
    client_line(c1, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "220 hello\r\n");
    int64_t t0 = conn_now_ms();
    server_stop(f->server, 10000);
    int64_t took = conn_now_ms() - t0;
    assert_true(took < 2000); /* the handler noticed and ended on its own */
    assert_int_equal(ctx_get(&f->ctx, &f->ctx.ended), 1);
    close(c1);
    server_free(&f->server);
    pthread_mutex_destroy(&f->ctx.lock);
    free(f);

    /* an idle server stops at once */
    f = start(10, 5, 1000, false);
    t0 = conn_now_ms();
    server_stop(f->server, 10000);
    assert_true(conn_now_ms() - t0 < 2000);
    server_free(&f->server);
    pthread_mutex_destroy(&f->ctx.lock);
    free(f);
}

/* server_stop() must end every session, also one whose thread was created just before the
 * stop and had not yet registered itself when the grace time ran out. Handlers here
 * block in a read with a 2 s deadline; a stop that misses a session waits for it. */
static void test_stop_right_after_accept(void **state)
{
    int slow = 0;
    for (int i = 0; i < 400 && !slow; i++) {
        struct fixture *f = start(50, 50, 2000, false);
        int fds[4];
        for (int k = 0; k < 4; k++) {
            fds[k] = client(f, NULL);
            assert_true(fds[k] >= 0);
        }
        /* stop the moment the accept thread has taken them all: the last session threads
         * have just been created */
        int64_t until = conn_now_ms() + 1000;
        while (stats(f).total < 4 && conn_now_ms() < until)
            continue;
        int64_t t0 = conn_now_ms();
        server_stop(f->server, 0);
        int64_t took = conn_now_ms() - t0;
        if (took > 1000) {
            slow++;
            print_error("round %d: server_stop(grace 0) took %lld ms (a session was missed)\n", i,
                        (long long)took);
        }
        for (int k = 0; k < 4; k++)
            close(fds[k]);
        server_free(&f->server);
        pthread_mutex_destroy(&f->ctx.lock);
        free(f);
    }
    assert_int_equal(slow, 0);
}

/* server_new() documents defaults (100 sessions, 10 per address); a server started
 * without server_set_limits() must use them, not refuse everybody. */
static void test_default_limits(void **state)
{
    struct fixture *f = start(0, 0, 5000, false);
    int fd = client(f, NULL);
    assert_true(fd >= 0);
    char buf[256];
    client_line(fd, buf, sizeof(buf), 2000);
    if (strcmp(buf, "220 hello\r\n") != 0)
        print_error("without server_set_limits() the first client got: %s", buf);
    bool ok = strcmp(buf, "220 hello\r\n") == 0;
    close(fd);
    finish(f);
    assert_true(ok);
}

static void test_listen_errors(void **state)
{
    struct server *s = server_new("ERR", LOG_POP3, NULL);
    const char *err = NULL;
    struct listener_def off = {
        .name = "OFF", .bind = "127.0.0.1", .port = 0, .handler = echo_handler};
    assert_int_equal(server_listen(s, &off, &err), 0); /* port 0: turned off */

    struct listener_def bad = {
        .name = "BAD", .bind = "not-an-address", .port = 2525, .handler = echo_handler};
    assert_int_equal(server_listen(s, &bad, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, "BAD"));
    assert_non_null(strstr(err, "not-an-address"));

    /* a port already in use */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 1), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    struct listener_def busy = {
        .name = "BUSY", .bind = "127.0.0.1", .port = ntohs(a.sin_port), .handler = echo_handler};
    err = NULL;
    assert_int_equal(server_listen(s, &busy, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, "cannot listen"));
    close(fd);

    /* IPv6 loopback works when the host has it */
    int port = free_port();
    struct listener_def v6 = {.name = "V6", .bind = "::1", .port = port, .handler = echo_handler};
    (void)server_listen(s, &v6, &err);

    assert_int_equal(server_start(s), 0);
    server_stop(s, 100);
    server_free(&s);
    assert_null(s);
    server_free(&s); /* NULL is fine */
}

static void test_tls_context(void **state)
{
    struct server *s = server_new("TLS", LOG_IMAP, NULL);
    assert_null(server_get_tls(s));
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    server_set_tls(s, ctx);
    SSL_CTX *got = server_get_tls(s);
    assert_ptr_equal(got, ctx);
    SSL_CTX_free(got);
    SSL_CTX_free(ctx); /* the server keeps its own reference */
    got = server_get_tls(s);
    assert_non_null(got);
    SSL_CTX_free(got);
    server_set_tls(s, NULL);
    assert_null(server_get_tls(s));
    server_free(&s);
}

static void test_implicit_tls_without_context(void **state)
{
    struct fixture *f = start(10, 5, 5000, true);
    int fd = client(f, NULL);
    assert_true(fd >= 0);
    /* no TLS context: the handshake fails and the handler never runs */
    assert_true(client_sees_eof(fd, 3000));
    close(fd);
    wait_active(f, 0);
    assert_int_equal(ctx_get(&f->ctx, &f->ctx.started), 0);
    assert_int_equal(stats(f).total, 1);
    finish(f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_session),
        cmocka_unit_test(test_stats_many_sessions),
        cmocka_unit_test(test_per_ip_cap),
        cmocka_unit_test(test_total_cap),
        cmocka_unit_test(test_many_addresses),
        cmocka_unit_test(test_stop_interrupts_idle_sessions),
        cmocka_unit_test(test_stop_ends_blocked_sessions),
        cmocka_unit_test(test_stop_without_waiting_the_grace),
        cmocka_unit_test(test_stop_right_after_accept),
        cmocka_unit_test(test_default_limits),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_tls_context),
        cmocka_unit_test(test_implicit_tls_without_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

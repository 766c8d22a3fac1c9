/* test_smtp_client.c - unit tests for smtp_client.c (the outbound SMTP client)
 *
 * smtp_client_stuff(): CRLF line ends and dot-stuffing, with the state carried across
 * chunk boundaries (CRLF split between chunks, a '.' that starts a chunk in mid-line or
 * at a line start, bare LF, bare CR, no final newline, an empty message) and the same
 * output when the message is fed one byte at a time.
 *
 * The session runs against a scripted fake server in a thread on 127.0.0.1 (port 0):
 * greetings (220, 554, multi-line, garbage, closed, silent), EHLO refused -> HELO,
 * EHLO keywords (PIPELINING, SIZE, 8BITMIME), pipelined MAIL/RCPT/DATA with mixed
 * recipient answers, MAIL refused, every recipient refused (no DATA, or "." after 354),
 * a 452 final reply, SIZE too small, malformed replies (mismatched codes, too many
 * lines), enhanced status codes, the message as it reaches the wire, CommandTimeout,
 * AUTH PLAIN in cleartext with the policy "none", TLS "may" without a context, RSET.
 *
 * SECURITY: the malformed-reply and timeout cases are what keeps a hostile or stuck
 * remote server from wedging a delivery thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "sbuf.h"
#include "smtp_client.h"
#include "testutil.h"
#include "xalloc.h"

/* ---- smtp_client_stuff() ------------------------------------------------------------ */

/* The wire form of the chunks (NULL-terminated list), as one string. */
static char *stuff_chunks(const char *const *chunks)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    int state = 0;
    for (size_t i = 0; chunks[i]; i++)
        smtp_client_stuff(chunks[i], strlen(chunks[i]), &state, &out);
    smtp_client_stuff_end(&state, &out);
    assert_int_equal(state, 0);
    return sbuf_steal(&out);
}

static void check_stuff(const char *const *chunks, const char *want)
{
    char *got = stuff_chunks(chunks);
    assert_string_equal(got, want);
    free(got);
}

#define STUFF(want, ...)                                                                           \
    do {                                                                                           \
        const char *const c_[] = {__VA_ARGS__, NULL};                                              \
        check_stuff(c_, want);                                                                     \
    } while (0)

static void test_stuff_line_ends(void **state)
{
    (void)state;
    STUFF("a\r\nb\r\n", "a\r\nb\r\n");   /* CRLF kept */
    STUFF("a\r\nb\r\n", "a\nb\n");       /* bare LF */
    STUFF("a\r\nb\r\n", "a\rb\r");       /* bare CR */
    STUFF("\r\n\r\n", "\n\n");           /* empty lines */
    STUFF("\r\n\r\n", "\r\r");           /* empty lines ended by bare CRs */
    STUFF("\r\n\r\n", "\r\n\r\n");       /* empty CRLF lines */
    STUFF("a\r\n\r\nb\r\n", "a\r\r\nb"); /* CR, then CRLF */
    STUFF("abc\r\n", "abc");             /* no final newline */
    STUFF("abc\r\n", "abc\r");           /* ends on a CR */
    STUFF("", "");                       /* empty message */
}

static void test_stuff_dots(void **state)
{
    (void)state;
    STUFF("..x\r\n", ".x\n");
    STUFF("..\r\n", ".\n");           /* a line of just "." */
    STUFF("..\r\n", ".");             /* "." without a newline */
    STUFF("a\r\n...b\r\n", "a\n..b"); /* ".." gets one more */
    STUFF("a.b\r\nc.\r\n", "a.b\nc.\n");
    STUFF("a\r\n..b\r\n", "a\r.b");   /* a line ended by a bare CR */
    STUFF("a\r\n..b\r\n", "a\r\n.b"); /* CRLF */
}

static void test_stuff_chunk_boundaries(void **state)
{
    (void)state;
    /* CRLF split across chunks: still one line end */
    STUFF("a\r\nb\r\n", "a\r", "\nb\n");
    /* a '.' at the start of a chunk in the middle of a line */
    STUFF("ab.c\r\n", "ab", ".c\n");
    /* a '.' at the start of a chunk at a line start */
    STUFF("ab\r\n..c\r\n", "ab\n", ".c\n");
    STUFF("ab\r\n..c\r\n", "ab\r\n", ".c\n");
    /* a CR ends a chunk, the next starts with '.' : the CR was a line end */
    STUFF("a\r\n..b\r\n", "a\r", ".b");
    /* a CR ends a chunk, the next starts a new line */
    STUFF("a\r\nb\r\n", "a\r", "b");
    /* empty chunks change nothing */
    STUFF("a\r\n..b\r\n", "a\r", "", "", "\n", "", ".b");
    /* the first chunk is a '.' alone */
    STUFF("..\r\n", ".", "\n");
}

static void test_stuff_byte_at_a_time(void **state)
{
    (void)state;
    static const char msg[] = ".start\n..two\r\nmid.dot\r.cr\r\r\n.\n\nend.\r";
    static const char want[] = "..start\r\n...two\r\nmid.dot\r\n..cr\r\n\r\n..\r\n\r\nend.\r\n";
    struct sbuf one = SBUF_INIT(SBUF_NO_MAX), bytes = SBUF_INIT(SBUF_NO_MAX);
    int st = 0;
    smtp_client_stuff(msg, strlen(msg), &st, &one);
    smtp_client_stuff_end(&st, &one);
    assert_string_equal(sbuf_cstr(&one), want);
    st = 0;
    for (size_t i = 0; i < strlen(msg); i++)
        smtp_client_stuff(msg + i, 1, &st, &bytes);
    smtp_client_stuff_end(&st, &bytes);
    assert_string_equal(sbuf_cstr(&bytes), want);
    /* every split point in two chunks gives the same */
    for (size_t k = 0; k <= strlen(msg); k++) {
        struct sbuf two = SBUF_INIT(SBUF_NO_MAX);
        st = 0;
        smtp_client_stuff(msg, k, &st, &two);
        smtp_client_stuff(msg + k, strlen(msg) - k, &st, &two);
        smtp_client_stuff_end(&st, &two);
        assert_string_equal(sbuf_cstr(&two), want);
        sbuf_free(&two);
    }
    sbuf_free(&one);
    sbuf_free(&bytes);
}

/* ---- the fake server ---------------------------------------------------------------- */

/* A script is a NULL-terminated list of steps:
 *   "S<text>"  send text (with its own CRLFs)
 *   "R<n>"     read n lines
 *   "D"        read lines up to and including ".\r\n"
 *   "W<ms>"    sleep
 *   "C"        close the connection now
 * After the last step the server reads until EOF, answering QUIT with 221. Everything the
 * client sent is in got. */
struct fake {
    int lfd, fd, port;
    const char *const *script;
    pthread_t thread;
    struct sbuf got;
    char pending[65536];
    size_t npending;
    bool eof;
};

/* One line from the client into line (with its line end), or false at EOF/error/5 s. */
static bool fake_read_line(struct fake *f, struct sbuf *line)
{
    sbuf_reset(line);
    for (;;) {
        char *nl = memchr(f->pending, '\n', f->npending);
        if (nl) {
            size_t n = (size_t)(nl - f->pending) + 1;
            sbuf_append(line, f->pending, n);
            sbuf_append(&f->got, f->pending, n);
            memmove(f->pending, f->pending + n, f->npending - n);
            f->npending -= n;
            return true;
        }
        if (f->eof || f->npending == sizeof(f->pending)) return false;
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) return false;
        ssize_t r = recv(f->fd, f->pending + f->npending, sizeof(f->pending) - f->npending, 0);
        if (r <= 0) {
            f->eof = true;
            sbuf_append(&f->got, f->pending, f->npending); /* a partial last line */
            f->npending = 0;
            return false;
        }
        f->npending += (size_t)r;
    }
}

static void fake_send(struct fake *f, const char *text)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = send(f->fd, text + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) return;
        off += (size_t)w;
    }
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    if (poll(&p, 1, 5000) <= 0) return NULL;
    f->fd = accept(f->lfd, NULL, NULL);
    if (f->fd < 0) return NULL;
    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    bool closed = false;
    for (size_t i = 0; f->script[i] && !closed; i++) {
        const char *s = f->script[i];
        switch (s[0]) {
        case 'S': fake_send(f, s + 1); break;
        case 'R':
            for (int n = atoi(s + 1); n > 0; n--)
                if (!fake_read_line(f, &line)) break;
            break;
        case 'D':
            while (fake_read_line(f, &line) && strcmp(sbuf_cstr(&line), ".\r\n") != 0) {
            }
            break;
        case 'W': usleep((useconds_t)atoi(s + 1) * 1000); break;
        case 'C': closed = true; break;
        default: break;
        }
    }
    while (!closed && fake_read_line(f, &line))
        if (strncasecmp(sbuf_cstr(&line), "QUIT", 4) == 0) fake_send(f, "221 2.0.0 Bye\r\n");
    sbuf_free(&line);
    close(f->fd);
    f->fd = -1;
    return NULL;
}

static void fake_start(struct fake *f, const char *const *script)
{
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    f->script = script;
    sbuf_init(&f->got, SBUF_NO_MAX);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(f->lfd, 4), 0);
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin, &len), 0);
    f->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

/* Waits for the server to finish (the client must have closed) and returns what it got. */
static const char *fake_finish(struct fake *f)
{
    pthread_join(f->thread, NULL);
    close(f->lfd);
    return sbuf_cstr(&f->got);
}

static void fake_free(struct fake *f)
{
    sbuf_free(&f->got);
}

static struct smtp_client_options default_opts(void)
{
    struct smtp_client_options o = {
        .helo_name = "client.example",
        .tls = TLS_MODE_NONE,
        .connect_timeout_ms = 2000,
        .command_timeout_ms = 2000,
        .data_timeout_ms = 2000,
    };
    return o;
}

static struct smtp_client *open_fake(struct fake *f, const struct smtp_client_options *o,
                                     struct smtp_result *res)
{
    memset(res, 0, sizeof(*res));
    return smtp_client_open("mx.example", "127.0.0.1", f->port, o, res);
}

/* A seekable file holding text (removed from its directory at once). */
static int msg_file(const char *text)
{
    const char *base = getenv("ALKAID_TEST_TMP");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    fs_mkdirs(base, 0700);
    char *path = xasprintf("%s/msg-XXXXXX", base);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    free(path);
    assert_int_equal(fs_write_all(fd, text, strlen(text)), 0);
    return fd;
}

static int64_t now_ms(void)
{
    return conn_now_ms();
}

#define EHLO_PLAIN "S250 fake.example\r\n"
#define EHLO_PIPE  "S250-fake.example\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n"

static char *rcpts1[] = {"bob@y.example"};
static char *rcpts3[] = {"b1@y.example", "b2@y.example", "b3@y.example"};

/* ---- greetings ---------------------------------------------------------------------- */

static void test_greeting_220_ehlo(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n", "R1", EHLO_PLAIN, NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res;
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    assert_true(c->esmtp);
    assert_false(c->pipelining);
    assert_false(c->eightbit);
    assert_int_equal(c->size_limit, 0);
    assert_false(c->tls);
    assert_true(c->usable);
    assert_string_equal(c->host, "mx.example");
    assert_string_equal(c->ip, "127.0.0.1");
    smtp_client_close(&c);
    assert_null(c);
    assert_string_equal(fake_finish(&f), "EHLO client.example\r\nQUIT\r\n");
    fake_free(&f);
}

static void test_greeting_554(void **state)
{
    (void)state;
    static const char *const script[] = {"S554 5.3.2 no service for you\r\n", NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res;
    assert_null(open_fake(&f, &o, &res));
    /* 5xx: PERM (the queue still tries the other addresses) */
    assert_int_equal(res.outcome, SMTP_OUT_PERM);
    assert_string_equal(res.status, "5.3.2");
    assert_string_equal(res.text, "554 5.3.2 no service for you");
    assert_true(res.remote);
    /* no EHLO after a refusing greeting */
    assert_null(strstr(fake_finish(&f), "EHLO"));
    fake_free(&f);
}

static void test_greeting_multiline(void **state)
{
    (void)state;
    static const char *const script[] = {
        "S220-fake.example ESMTP\r\n220-second line\r\n220 third\r\n", "R1", EHLO_PLAIN, NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res;
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    smtp_client_close(&c);
    assert_non_null(strstr(fake_finish(&f), "EHLO client.example\r\n"));
    fake_free(&f);
}

static void test_greeting_garbage(void **state)
{
    (void)state;
    static const char *const script[] = {"SHello, this is not SMTP\r\n", NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res;
    assert_null(open_fake(&f, &o, &res));
    assert_int_equal(res.outcome, SMTP_OUT_TEMP);
    assert_string_equal(res.status, "4.4.2");
    assert_false(res.remote);
    assert_non_null(strstr(res.text, "greeting"));
    assert_null(strstr(fake_finish(&f), "EHLO"));
    fake_free(&f);
}

static void test_greeting_closed(void **state)
{
    (void)state;
    static const char *const script[] = {"C", NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res;
    assert_null(open_fake(&f, &o, &res));
    assert_int_equal(res.outcome, SMTP_OUT_TEMP);
    assert_false(res.remote);
    assert_non_null(strstr(res.text, "connection closed"));
    fake_finish(&f);
    fake_free(&f);
}

static void test_greeting_timeout(void **state)
{
    (void)state;
    static const char *const script[] = {NULL}; /* never says anything */
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    o.command_timeout_ms = 300;
    struct smtp_result res;
    int64_t t0 = now_ms();
    assert_null(open_fake(&f, &o, &res));
    int64_t took = now_ms() - t0;
    assert_true(took >= 250);
    assert_true(took < 2000);
    assert_int_equal(res.outcome, SMTP_OUT_TEMP);
    assert_non_null(strstr(res.text, "timed out"));
    fake_finish(&f);
    fake_free(&f);
}

static void test_connect_refused(void **state)
{
    (void)state;
    /* a port that was just free: nobody listens there */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &len), 0);
    close(s);
    struct smtp_client_options o = default_opts();
    struct smtp_result res;
    memset(&res, 0, sizeof(res));
    assert_null(smtp_client_open("mx.example", "127.0.0.1", ntohs(sin.sin_port), &o, &res));
    assert_int_equal(res.outcome, SMTP_OUT_TEMP);
    assert_string_equal(res.status, "4.4.1");
    assert_false(res.remote);
}

/* ---- EHLO --------------------------------------------------------------------------- */

static void test_ehlo_refused_helo(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 old.example SMTP\r\n",
                                         "R1",
                                         "S500 5.5.1 what is EHLO\r\n",
                                         "R1",
                                         "S250 old.example hello\r\n",
                                         "R1",
                                         "S250 ok\r\n",
                                         "R1",
                                         "S250 ok\r\n",
                                         "R1",
                                         "S354 go on\r\n",
                                         "D",
                                         "S250 queued\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[1];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    assert_false(c->esmtp);
    assert_false(c->pipelining);
    int fd = msg_file("Subject: x\n\nbody\n");
    /* one command per reply: the server would stall a pipelined client here */
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts1, 1, fd, 0, 16, &o, rr), SMTP_OUT_OK);
    assert_int_equal(rr[0].outcome, SMTP_OUT_OK);
    assert_string_equal(rr[0].text, "250 queued");
    assert_string_equal(rr[0].status, "2.0.0");
    smtp_client_close(&c);
    close(fd);
    const char *got = fake_finish(&f);
    assert_string_equal(got, "EHLO client.example\r\n"
                             "HELO client.example\r\n"
                             "MAIL FROM:<a@x.example>\r\n" /* no ESMTP parameters */
                             "RCPT TO:<bob@y.example>\r\n"
                             "DATA\r\n"
                             "Subject: x\r\n\r\nbody\r\n.\r\n"
                             "QUIT\r\n");
    fake_free(&f);
}

static void test_ehlo_keywords(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n", "R1", EHLO_PIPE, NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res;
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    assert_true(c->esmtp);
    assert_true(c->pipelining);
    assert_true(c->eightbit);
    assert_int_equal(c->size_limit, 1000000);
    smtp_client_close(&c);
    fake_finish(&f);
    fake_free(&f);
}

static void test_ehlo_4xx_fails(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n", "R1",
                                         "S421 4.3.2 shutting down\r\n", NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res;
    assert_null(open_fake(&f, &o, &res));
    assert_int_equal(res.outcome, SMTP_OUT_TEMP);
    assert_string_equal(res.status, "4.3.2");
    assert_string_equal(res.text, "421 4.3.2 shutting down");
    /* no HELO after a 4xx */
    assert_null(strstr(fake_finish(&f), "HELO"));
    fake_free(&f);
}

/* ---- pipelined transactions --------------------------------------------------------- */

static void test_pipelined_mixed_recipients(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",
                                         "R1",
                                         EHLO_PIPE,
                                         "R5", /* MAIL, 3 RCPT, DATA in one go */
                                         "S250 2.1.0 Ok\r\n"
                                         "550 5.1.1 <b1@y.example>: no such user\r\n"
                                         "450 4.2.1 mailbox busy\r\n"
                                         "250 2.1.5 Ok\r\n"
                                         "354 End data with <CR><LF>.<CR><LF>\r\n",
                                         "D",
                                         "S250 2.0.0 Ok: queued as 123\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[3];
    memset(rr, 0, sizeof(rr));
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    static const char msg[] = "Subject: t\n\n.leading dot\n..two\nlast line no newline";
    int fd = msg_file(msg);
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts3, 3, fd, 0, strlen(msg), &o, rr),
                     SMTP_OUT_OK);
    assert_int_equal(rr[0].outcome, SMTP_OUT_PERM);
    assert_string_equal(rr[0].status, "5.1.1");
    assert_string_equal(rr[0].text, "550 5.1.1 <b1@y.example>: no such user");
    assert_true(rr[0].remote);
    assert_int_equal(rr[1].outcome, SMTP_OUT_TEMP);
    assert_string_equal(rr[1].status, "4.2.1");
    assert_string_equal(rr[1].text, "450 4.2.1 mailbox busy");
    assert_int_equal(rr[2].outcome, SMTP_OUT_OK);
    assert_string_equal(rr[2].status, "2.0.0");
    assert_string_equal(rr[2].text, "250 2.0.0 Ok: queued as 123");
    assert_true(c->usable);
    assert_int_equal(c->transactions, 1);
    smtp_client_close(&c);
    close(fd);
    char *want = xasprintf("EHLO client.example\r\n"
                           "MAIL FROM:<a@x.example> SIZE=%zu BODY=8BITMIME\r\n"
                           "RCPT TO:<b1@y.example>\r\n"
                           "RCPT TO:<b2@y.example>\r\n"
                           "RCPT TO:<b3@y.example>\r\n"
                           "DATA\r\n"
                           "Subject: t\r\n\r\n"
                           "..leading dot\r\n"
                           "...two\r\n"
                           "last line no newline\r\n"
                           ".\r\n"
                           "QUIT\r\n",
                           strlen(msg));
    assert_string_equal(fake_finish(&f), want);
    free(want);
    fake_free(&f);
}

static void test_pipelined_mail_refused(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",
                                         "R1",
                                         EHLO_PIPE,
                                         "R5",
                                         "S553 5.7.1 sender rejected\r\n"
                                         "503 5.5.1 need MAIL first\r\n"
                                         "503 5.5.1 need MAIL first\r\n"
                                         "503 5.5.1 need MAIL first\r\n"
                                         "503 5.5.1 need MAIL first\r\n",
                                         "R1", /* RSET */
                                         "S250 2.0.0 reset\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[3];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("Subject: t\r\n\r\nSECRET BODY\r\n");
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts3, 3, fd, 0, 27, &o, rr), SMTP_OUT_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rr[i].outcome, SMTP_OUT_PERM);
        assert_string_equal(rr[i].status, "5.7.1");
        assert_string_equal(rr[i].text, "553 5.7.1 sender rejected");
        assert_true(rr[i].remote);
    }
    assert_true(c->usable);
    smtp_client_close(&c);
    close(fd);
    const char *got = fake_finish(&f);
    assert_null(strstr(got, "SECRET BODY"));
    assert_non_null(strstr(got, "DATA\r\nRSET\r\nQUIT\r\n"));
    fake_free(&f);
}

static void test_mail_refused_not_pipelined(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n", "R1", EHLO_PLAIN,    "R1",
                                         "S550 5.7.1 go away\r\n",      "R1", "S250 ok\r\n", NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[3];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("x\r\n");
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts3, 3, fd, 0, 3, &o, rr), SMTP_OUT_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rr[i].outcome, SMTP_OUT_PERM);
        assert_string_equal(rr[i].status, "5.7.1");
        assert_string_equal(rr[i].text, "550 5.7.1 go away");
    }
    smtp_client_close(&c);
    close(fd);
    assert_string_equal(fake_finish(&f), "EHLO client.example\r\n"
                                         "MAIL FROM:<a@x.example>\r\n"
                                         "RSET\r\n"
                                         "QUIT\r\n");
    fake_free(&f);
}

static void test_all_refused_data_refused(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",
                                         "R1",
                                         EHLO_PIPE,
                                         "R4",
                                         "S250 2.1.0 Ok\r\n"
                                         "550 5.1.1 no such user\r\n"
                                         "551 5.1.6 moved\r\n"
                                         "554 5.5.1 no valid recipients\r\n",
                                         "R1",
                                         "S250 2.0.0 reset\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[2];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("SECRET BODY\r\n");
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts3, 2, fd, 0, 13, &o, rr), SMTP_OUT_OK);
    assert_int_equal(rr[0].outcome, SMTP_OUT_PERM);
    assert_string_equal(rr[0].status, "5.1.1");
    assert_int_equal(rr[1].outcome, SMTP_OUT_PERM);
    assert_string_equal(rr[1].status, "5.1.6");
    assert_string_equal(rr[1].text, "551 5.1.6 moved");
    assert_true(c->usable);
    smtp_client_close(&c);
    close(fd);
    const char *got = fake_finish(&f);
    assert_null(strstr(got, "SECRET"));
    assert_non_null(strstr(got, "DATA\r\nRSET\r\nQUIT\r\n"));
    fake_free(&f);
}

static void test_all_refused_data_354(void **state)
{
    (void)state;
    /* RFC 2920 3.1: DATA got 354 although no recipient was accepted: send just "." */
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",
                                         "R1",
                                         EHLO_PIPE,
                                         "R4",
                                         "S250 2.1.0 Ok\r\n"
                                         "550 5.1.1 no such user\r\n"
                                         "550 5.1.1 no such user either\r\n"
                                         "354 go ahead\r\n",
                                         "R1", /* "." */
                                         "S554 5.5.1 no valid recipients\r\n",
                                         "R1",
                                         "S250 2.0.0 reset\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[2];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("SECRET BODY\r\n");
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts3, 2, fd, 0, 13, &o, rr), SMTP_OUT_OK);
    assert_int_equal(rr[0].outcome, SMTP_OUT_PERM);
    assert_string_equal(rr[0].text, "550 5.1.1 no such user");
    assert_int_equal(rr[1].outcome, SMTP_OUT_PERM);
    assert_string_equal(rr[1].text, "550 5.1.1 no such user either");
    assert_true(c->usable);
    smtp_client_close(&c);
    close(fd);
    const char *got = fake_finish(&f);
    assert_null(strstr(got, "SECRET"));
    assert_non_null(strstr(got, "DATA\r\n.\r\nRSET\r\nQUIT\r\n"));
    fake_free(&f);
}

static void test_final_452(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",
                                         "R1",
                                         EHLO_PIPE,
                                         "R5",
                                         "S250 2.1.0 Ok\r\n"
                                         "250 2.1.5 Ok\r\n"
                                         "550 5.1.1 no such user\r\n"
                                         "250 2.1.5 Ok\r\n"
                                         "354 go ahead\r\n",
                                         "D",
                                         "S452 4.3.1 insufficient system storage\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[3];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("body\r\n");
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts3, 3, fd, 0, 6, &o, rr), SMTP_OUT_OK);
    assert_int_equal(rr[0].outcome, SMTP_OUT_TEMP);
    assert_string_equal(rr[0].status, "4.3.1");
    assert_string_equal(rr[0].text, "452 4.3.1 insufficient system storage");
    assert_int_equal(rr[1].outcome, SMTP_OUT_PERM); /* keeps its RCPT answer */
    assert_string_equal(rr[1].status, "5.1.1");
    assert_int_equal(rr[2].outcome, SMTP_OUT_TEMP);
    assert_string_equal(rr[2].status, "4.3.1");
    smtp_client_close(&c);
    close(fd);
    fake_finish(&f);
    fake_free(&f);
}

static void test_size_limit(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n", "R1",
                                         "S250-fake.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[2];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    assert_int_equal(c->size_limit, 100);
    char big[501];
    memset(big, 'x', 500);
    big[500] = '\0';
    int fd = msg_file(big);
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts3, 2, fd, 0, 500, &o, rr),
                     SMTP_OUT_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rr[i].outcome, SMTP_OUT_PERM);
        assert_string_equal(rr[i].status, "5.3.4");
        assert_false(rr[i].remote);
    }
    assert_true(c->usable);
    smtp_client_close(&c);
    close(fd);
    /* nothing of the transaction went out */
    assert_string_equal(fake_finish(&f), "EHLO client.example\r\nQUIT\r\n");
    fake_free(&f);
}

/* ---- malformed replies ------------------------------------------------------------ */

static void test_reply_mismatched_codes(void **state)
{
    (void)state;
    static const char *const script[] = {
        "S220 fake.example ESMTP\r\n",  "R1", EHLO_PLAIN, "R1", "S250 ok\r\n", "R1",
        "S250-first\r\n251 second\r\n", NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[1];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("body\r\n");
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts1, 1, fd, 0, 6, &o, rr),
                     SMTP_OUT_TEMP);
    assert_int_equal(rr[0].outcome, SMTP_OUT_TEMP);
    assert_false(rr[0].remote);
    assert_false(c->usable);
    smtp_client_close(&c);
    close(fd);
    const char *got = fake_finish(&f);
    assert_null(strstr(got, "DATA"));
    assert_null(strstr(got, "QUIT")); /* an unusable connection is just dropped */
    fake_free(&f);
}

static void test_reply_mismatched_greeting(void **state)
{
    (void)state;
    static const char *const script[] = {"S220-fake.example\r\n250 ESMTP\r\n", NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res;
    assert_null(open_fake(&f, &o, &res));
    assert_int_equal(res.outcome, SMTP_OUT_TEMP);
    assert_false(res.remote);
    fake_finish(&f);
    fake_free(&f);
}

/* An EHLO reply of nlines lines. */
static char *long_ehlo(int nlines)
{
    struct sbuf s = SBUF_INIT(SBUF_NO_MAX);
    sbuf_putc(&s, 'S');
    for (int i = 0; i < nlines - 1; i++)
        sbuf_printf(&s, "250-X-KEYWORD%d\r\n", i);
    sbuf_appends(&s, "250 PIPELINING\r\n");
    return sbuf_steal(&s);
}

static void test_reply_too_many_lines(void **state)
{
    (void)state;
    /* SMTP_CLIENT_MAX_LINES lines are fine */
    char *ok = long_ehlo(SMTP_CLIENT_MAX_LINES);
    const char *script_ok[] = {"S220 fake.example ESMTP\r\n", "R1", ok, NULL};
    struct fake f;
    fake_start(&f, script_ok);
    struct smtp_client_options o = default_opts();
    struct smtp_result res;
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    assert_true(c->pipelining); /* the last line was read */
    smtp_client_close(&c);
    fake_finish(&f);
    fake_free(&f);
    free(ok);

    /* one more is a protocol error */
    char *bad = long_ehlo(SMTP_CLIENT_MAX_LINES + 1);
    const char *script_bad[] = {"S220 fake.example ESMTP\r\n", "R1", bad, NULL};
    fake_start(&f, script_bad);
    assert_null(open_fake(&f, &o, &res));
    assert_int_equal(res.outcome, SMTP_OUT_TEMP);
    assert_false(res.remote);
    assert_non_null(strstr(res.text, "EHLO"));
    fake_finish(&f);
    fake_free(&f);
    free(bad);
}

static void test_enhanced_status(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",
                                         "R1",
                                         EHLO_PLAIN,
                                         "R1",
                                         "S250 2.1.0 sender ok\r\n",
                                         "R1",
                                         "S250 2.1.5 Ok\r\n",
                                         "R1",
                                         "S550 no such user\r\n",
                                         "R1",
                                         "S550 2.1.5 class does not match\r\n",
                                         "R1",
                                         "S354 go\r\n",
                                         "D",
                                         "S250 2.1.5 Ok\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[3];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("body\r\n");
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts3, 3, fd, 0, 6, &o, rr), SMTP_OUT_OK);
    assert_int_equal(rr[0].outcome, SMTP_OUT_OK);
    assert_string_equal(rr[0].status, "2.1.5"); /* the final reply's */
    assert_string_equal(rr[0].text, "250 2.1.5 Ok");
    assert_int_equal(rr[1].outcome, SMTP_OUT_PERM);
    assert_string_equal(rr[1].status, "5.0.0");
    assert_string_equal(rr[1].text, "550 no such user");
    assert_int_equal(rr[2].outcome, SMTP_OUT_PERM);
    assert_string_equal(rr[2].status, "5.0.0");
    smtp_client_close(&c);
    close(fd);
    fake_finish(&f);
    fake_free(&f);
}

static void test_enhanced_status_accepted(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",
                                         "R1",
                                         EHLO_PLAIN,
                                         "R1",
                                         "S250 2.1.0 sender ok\r\n",
                                         "R1",
                                         "S450-4.2.1 first line\r\n450 4.2.2 second \x01line\r\n",
                                         "R1",
                                         "S250 ok\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[1];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("body\r\n");
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts1, 1, fd, 0, 6, &o, rr), SMTP_OUT_OK);
    assert_int_equal(rr[0].outcome, SMTP_OUT_TEMP);
    assert_string_equal(rr[0].status, "4.2.1"); /* the first line's */
    /* lines joined, control characters made spaces */
    assert_string_equal(rr[0].text, "450 4.2.1 first line / 4.2.2 second  line");
    assert_true(c->usable);
    smtp_client_close(&c);
    close(fd);
    fake_finish(&f);
    fake_free(&f);
}

/* ---- timeouts ----------------------------------------------------------------------- */

static void test_command_timeout(void **state)
{
    (void)state;
    /* greets, answers EHLO, then never answers again */
    static const char *const script[] = {"S220 fake.example ESMTP\r\n", "R1", EHLO_PLAIN, NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    o.command_timeout_ms = 300;
    struct smtp_result res, rr[1];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("body\r\n");
    int64_t t0 = now_ms();
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts1, 1, fd, 0, 6, &o, rr),
                     SMTP_OUT_TEMP);
    int64_t took = now_ms() - t0;
    assert_true(took >= 250);
    assert_true(took < 2000);
    assert_int_equal(rr[0].outcome, SMTP_OUT_TEMP);
    assert_string_equal(rr[0].status, "4.4.2");
    assert_non_null(strstr(rr[0].text, "timed out"));
    assert_non_null(strstr(rr[0].text, "MAIL FROM"));
    assert_false(c->usable);
    t0 = now_ms();
    smtp_client_close(&c);
    assert_true(now_ms() - t0 < 500); /* no QUIT wait on a dead connection */
    close(fd);
    fake_finish(&f);
    fake_free(&f);
}

static void test_data_timeout(void **state)
{
    (void)state;
    /* takes the message, then never answers the final dot */
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",     "R1", EHLO_PIPE, "R3",
                                         "S250 ok\r\n250 ok\r\n354 go\r\n", "D",  NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    o.data_timeout_ms = 300;
    struct smtp_result res, rr[1];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("body\r\n");
    int64_t t0 = now_ms();
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts1, 1, fd, 0, 6, &o, rr),
                     SMTP_OUT_TEMP);
    int64_t took = now_ms() - t0;
    assert_true(took >= 250 && took < 2000);
    assert_int_equal(rr[0].outcome, SMTP_OUT_TEMP);
    assert_non_null(strstr(rr[0].text, "timed out"));
    smtp_client_close(&c);
    close(fd);
    fake_finish(&f);
    fake_free(&f);
}

/* ---- AUTH and TLS ------------------------------------------------------------------- */

static void test_auth_plain(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 smarthost.example ESMTP\r\n",
                                         "R1",
                                         "S250-smarthost.example\r\n250-AUTH LOGIN PLAIN\r\n"
                                         "250 PIPELINING\r\n",
                                         "R1",
                                         "S235 2.7.0 Authentication successful\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    o.auth_user = "user";
    o.auth_password = "secret";
    struct smtp_result res;
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    assert_true(c->auth_ok);
    smtp_client_close(&c);
    /* base64("\0user\0secret") */
    assert_string_equal(fake_finish(&f), "EHLO client.example\r\n"
                                         "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"
                                         "QUIT\r\n");
    fake_free(&f);
}

static void test_auth_refused(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 smarthost.example ESMTP\r\n",
                                         "R1",
                                         "S250-smarthost.example\r\n250 AUTH PLAIN\r\n",
                                         "R1",
                                         "S535 5.7.8 bad credentials\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    o.auth_user = "user";
    o.auth_password = "wrong";
    struct smtp_result res;
    assert_null(open_fake(&f, &o, &res));
    /* a configuration problem: the mail stays queued */
    assert_int_equal(res.outcome, SMTP_OUT_TEMP);
    assert_string_equal(res.status, "4.7.0");
    assert_string_equal(res.text, "535 5.7.8 bad credentials");
    fake_finish(&f);
    fake_free(&f);
}

static void test_auth_not_in_cleartext(void **state)
{
    (void)state;
    /* the policy "may" without TLS: the password is never sent */
    static const char *const script[] = {"S220 smarthost.example ESMTP\r\n", "R1",
                                         "S250-smarthost.example\r\n250 AUTH PLAIN\r\n", NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    o.tls = TLS_MODE_MAY;
    o.auth_user = "user";
    o.auth_password = "secret";
    struct smtp_result res;
    assert_null(open_fake(&f, &o, &res));
    assert_int_equal(res.outcome, SMTP_OUT_TEMP);
    assert_string_equal(res.status, "4.7.0");
    assert_null(strstr(fake_finish(&f), "AUTH"));
    fake_free(&f);
}

static void test_tls_may_without_ctx(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",
                                         "R1",
                                         "S250-fake.example\r\n250-STARTTLS\r\n250 PIPELINING\r\n",
                                         "R3",
                                         "S250 ok\r\n250 ok\r\n354 go\r\n",
                                         "D",
                                         "S250 2.0.0 queued\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    o.tls = TLS_MODE_MAY;
    o.tls_ctx = NULL;
    struct smtp_result res, rr[1];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    assert_false(c->tls);
    int fd = msg_file("hello\n");
    assert_int_equal(smtp_client_send(c, "", rcpts1, 1, fd, 0, 6, &o, rr), SMTP_OUT_OK);
    assert_int_equal(rr[0].outcome, SMTP_OUT_OK);
    smtp_client_close(&c);
    close(fd);
    const char *got = fake_finish(&f);
    assert_null(strstr(got, "STARTTLS"));
    assert_string_equal(got, "EHLO client.example\r\n"
                             "MAIL FROM:<>\r\n"
                             "RCPT TO:<bob@y.example>\r\n"
                             "DATA\r\n"
                             "hello\r\n.\r\n"
                             "QUIT\r\n");
    fake_free(&f);
}

/* ---- more than one transaction, RSET ------------------------------------------------ */

static void test_reuse_and_reset(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",
                                         "R1",
                                         EHLO_PIPE,
                                         "R3",
                                         "S250 ok\r\n250 ok\r\n354 go\r\n",
                                         "D",
                                         "S250 2.0.0 first\r\n",
                                         "R1",
                                         "S250 2.0.0 reset\r\n",
                                         "R3",
                                         "S250 ok\r\n250 ok\r\n354 go\r\n",
                                         "D",
                                         "S250 2.0.0 second\r\n",
                                         "R1",
                                         "S421 4.3.2 going away\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[1];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("XXXXone\r\n");
    /* an offset into the file: only the message part is sent */
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts1, 1, fd, 4, 5, &o, rr), SMTP_OUT_OK);
    assert_string_equal(rr[0].text, "250 2.0.0 first");
    assert_true(smtp_client_reset(c, &o));
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts1, 1, fd, 4, 5, &o, rr), SMTP_OUT_OK);
    assert_string_equal(rr[0].text, "250 2.0.0 second");
    assert_int_equal(c->transactions, 2);
    assert_false(smtp_client_reset(c, &o)); /* 421 */
    smtp_client_close(&c);
    close(fd);
    const char *got = fake_finish(&f);
    assert_null(strstr(got, "XXXX"));
    const char *first = strstr(got, "DATA\r\none\r\n.\r\nRSET\r\n");
    assert_non_null(first);
    assert_non_null(strstr(first + 1, "DATA\r\none\r\n.\r\nRSET\r\n"));
    fake_free(&f);
}

static void test_empty_message(void **state)
{
    (void)state;
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",
                                         "R1",
                                         EHLO_PIPE,
                                         "R3",
                                         "S250 ok\r\n250 ok\r\n354 go\r\n",
                                         "D",
                                         "S250 2.0.0 queued\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[1];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file("");
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts1, 1, fd, 0, 0, &o, rr), SMTP_OUT_OK);
    assert_int_equal(rr[0].outcome, SMTP_OUT_OK);
    smtp_client_close(&c);
    close(fd);
    assert_non_null(strstr(fake_finish(&f), "DATA\r\n.\r\nQUIT\r\n"));
    fake_free(&f);
}

/* Appends filler lines to m (and want) until the next line starts at offset at. */
static void fill_to(struct sbuf *m, struct sbuf *want, size_t at)
{
    while (m->len < at) {
        size_t n = at - m->len > 100 ? 100 : at - m->len;
        if (at - m->len - n < 3 && at - m->len > n) n = at - m->len - 3;
        if (n < 3) n = at - m->len;
        for (size_t i = 0; i + 2 < n; i++) {
            sbuf_putc(m, 'a');
            sbuf_putc(want, 'a');
        }
        sbuf_appends(m, "\r\n");
        sbuf_appends(want, "\r\n");
    }
    assert_int_equal(m->len, at);
}

static void test_large_message_chunks(void **state)
{
    (void)state;
    /* the client reads the message in 64 KiB chunks: a '.' starts the second chunk at a
     * line start, and a CRLF is split between the second and the third */
    struct sbuf m = SBUF_INIT(SBUF_NO_MAX), want = SBUF_INIT(SBUF_NO_MAX);
    fill_to(&m, &want, 65536);
    sbuf_appends(&m, ".dot at a chunk start\r\n");
    sbuf_appends(&want, "..dot at a chunk start\r\n");
    fill_to(&m, &want, 2 * 65536 - 10);
    sbuf_appends(&m, "123456789\r\n"); /* CR is the last octet of chunk 2 */
    sbuf_appends(&want, "123456789\r\n");
    assert_int_equal(m.data[2 * 65536 - 1], '\r');
    sbuf_appends(&m, ".after\r\nend");
    sbuf_appends(&want, "..after\r\nend\r\n.\r\n");
    static const char *const script[] = {"S220 fake.example ESMTP\r\n",
                                         "R1",
                                         EHLO_PIPE,
                                         "R3",
                                         "S250 ok\r\n250 ok\r\n354 go\r\n",
                                         "D",
                                         "S250 2.0.0 queued\r\n",
                                         NULL};
    struct fake f;
    fake_start(&f, script);
    struct smtp_client_options o = default_opts();
    struct smtp_result res, rr[1];
    struct smtp_client *c = open_fake(&f, &o, &res);
    assert_non_null(c);
    int fd = msg_file(sbuf_cstr(&m));
    assert_int_equal(smtp_client_send(c, "a@x.example", rcpts1, 1, fd, 0, m.len, &o, rr),
                     SMTP_OUT_OK);
    assert_int_equal(rr[0].outcome, SMTP_OUT_OK);
    smtp_client_close(&c);
    close(fd);
    const char *got = fake_finish(&f);
    const char *body = strstr(got, "DATA\r\n");
    assert_non_null(body);
    body += 6;
    assert_true(strlen(body) == want.len + strlen("QUIT\r\n"));
    assert_memory_equal(body, want.data, want.len);
    fake_free(&f);
    sbuf_free(&m);
    sbuf_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stuff_line_ends),
        cmocka_unit_test(test_stuff_dots),
        cmocka_unit_test(test_stuff_chunk_boundaries),
        cmocka_unit_test(test_stuff_byte_at_a_time),
        cmocka_unit_test(test_greeting_220_ehlo),
        cmocka_unit_test(test_greeting_554),
        cmocka_unit_test(test_greeting_multiline),
        cmocka_unit_test(test_greeting_garbage),
        cmocka_unit_test(test_greeting_closed),
        cmocka_unit_test(test_greeting_timeout),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_ehlo_refused_helo),
        cmocka_unit_test(test_ehlo_keywords),
        cmocka_unit_test(test_ehlo_4xx_fails),
        cmocka_unit_test(test_pipelined_mixed_recipients),
        cmocka_unit_test(test_pipelined_mail_refused),
        cmocka_unit_test(test_mail_refused_not_pipelined),
        cmocka_unit_test(test_all_refused_data_refused),
        cmocka_unit_test(test_all_refused_data_354),
        cmocka_unit_test(test_final_452),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_reply_mismatched_codes),
        cmocka_unit_test(test_reply_mismatched_greeting),
        cmocka_unit_test(test_reply_too_many_lines),
        cmocka_unit_test(test_enhanced_status),
        cmocka_unit_test(test_enhanced_status_accepted),
        cmocka_unit_test(test_command_timeout),
        cmocka_unit_test(test_data_timeout),
        cmocka_unit_test(test_auth_plain),
        cmocka_unit_test(test_auth_refused),
        cmocka_unit_test(test_auth_not_in_cleartext),
        cmocka_unit_test(test_tls_may_without_ctx),
        cmocka_unit_test(test_reuse_and_reset),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_large_message_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

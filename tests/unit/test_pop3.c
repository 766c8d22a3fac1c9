/* test_pop3.c - unit tests for the POP3 side of pop3imapd
 *
 * The command-line parser (valid and refused lines, every prefix of every valid line
 * in an exactly-sized buffer), the command table, message numbers, UIDL derivation, the
 * dot-stuffing writer (whole, one byte at a time and split at every point), and whole
 * sessions driven over a socketpair against a temporary mailbox and SQLite store:
 * login, STAT/LIST/UIDL/RETR/TOP/DELE/RSET/QUIT, deletion only at QUIT, a dropped
 * connection that deletes nothing, the maildrop lock, plaintext refusal and AUTH PLAIN.
 *
 * SECURITY: inputs live in exactly-sized heap copies so that ASan sees any read past
 * their end; every session is run to its end and its connection freed (LeakSanitizer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "authfail.h"
#include "base64.h"
#include "config.h"
#include "conn.h"
#include "mailbox.h"
#include "password.h"
#include "pop3_dotstuff.h"
#include "pop3_maildrop.h"
#include "pop3_parse.h"
#include "pop3_session.h"
#include "sbuf.h"
#include "store.h"
#include "testutil.h"
#include "xalloc.h"

/* ---- the parser ---- */

struct parse_case {
    const char *line;
    const char *keyword;
    const char *rest;
    size_t nargs;
    const char *args[3];
};

static const struct parse_case valid[] = {
    {"STAT", "STAT", "", 0, {NULL}},
    {"stat", "STAT", "", 0, {NULL}},
    {"List 1", "LIST", "1", 1, {"1"}},
    {"TOP 1 10", "TOP", "1 10", 2, {"1", "10"}},
    {"top  2   3 ", "TOP", " 2   3 ", 2, {"2", "3"}},
    {"USER alice@example.test", "USER", "alice@example.test", 1, {"alice@example.test"}},
    {"PASS two words  here", "PASS", "two words  here", 3, {"two", "words", "here"}},
    {"PASS p\xc3\xa4ss", "PASS", "p\xc3\xa4ss", 1, {"p\xc3\xa4ss"}},
    {"AUTH PLAIN AGFsaWNlAHNlY3JldA==",
     "AUTH",
     "PLAIN AGFsaWNlAHNlY3JldA==",
     2,
     {"PLAIN", "AGFsaWNlAHNlY3JldA=="}},
    {"QUIT ", "QUIT", "", 0, {NULL}},
    {"NOOP", "NOOP", "", 0, {NULL}},
    {"X", "X", "", 0, {NULL}},
    {"a b c d e f", "A", "b c d e f", 5, {"b", "c", "d"}},
};

static void check_valid(const struct parse_case *tc)
{
    size_t len = strlen(tc->line);
    char *copy = xmemdup(tc->line, len); /* exactly sized, not NUL-terminated */
    struct pop3_command *cmd = xmalloc(sizeof(*cmd));
    enum pop3_parse_result r = pop3_parse_command(copy, len, cmd);
    if (r != POP3_PARSE_OK) {
        print_error("refused [%s]: %d\n", tc->line, r);
        fail();
    }
    assert_string_equal(cmd->keyword, tc->keyword);
    assert_string_equal(cmd->rest, tc->rest);
    assert_int_equal(cmd->nargs, tc->nargs);
    for (size_t i = 0; i < tc->nargs && i < 3; i++)
        assert_string_equal(cmd->args[i], tc->args[i]);
    free(cmd);
    free(copy);
}

static void test_parse_valid(void **state)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        check_valid(&valid[i]);
}

static void check_refused(const char *line, size_t len, enum pop3_parse_result expect)
{
    char *copy = xmemdup(line, len);
    struct pop3_command *cmd = xmalloc(sizeof(*cmd));
    enum pop3_parse_result r = pop3_parse_command(copy, len, cmd);
    if (r != expect) {
        print_error("[%.*s]: got %d, expected %d\n", (int)len, line, r, expect);
        fail();
    }
    assert_string_equal(cmd->keyword, "");
    assert_int_equal(cmd->nargs, 0);
    assert_true(strncmp(pop3_parse_error(r), "-ERR ", 5) == 0);
    free(cmd);
    free(copy);
}

static void test_parse_refused(void **state)
{
    check_refused("", 0, POP3_PARSE_EMPTY);
    check_refused("   ", 3, POP3_PARSE_EMPTY);
    check_refused("NO\0OP", 5, POP3_PARSE_NUL);
    check_refused("\0", 1, POP3_PARSE_NUL);
    check_refused("LIST\t1", 6, POP3_PARSE_CONTROL);
    check_refused("USER a\rb", 8, POP3_PARSE_CONTROL);
    check_refused("PASS \x7f", 6, POP3_PARSE_CONTROL);
    check_refused("STATS", 5, POP3_PARSE_KEYWORD);
    check_refused("ST4T", 4, POP3_PARSE_KEYWORD);
    check_refused(" STAT", 5, POP3_PARSE_KEYWORD);
    check_refused("RETR1", 5, POP3_PARSE_KEYWORD);
    check_refused("\xc3\xa4", 2, POP3_PARSE_KEYWORD);
    check_refused("1 2", 3, POP3_PARSE_KEYWORD);

    /* the longest line accepted, and one more octet */
    char *line = xmalloc(POP3_MAX_LINE + 1);
    memcpy(line, "PASS ", 5);
    memset(line + 5, 'x', POP3_MAX_LINE + 1 - 5);
    struct pop3_command *cmd = xmalloc(sizeof(*cmd));
    assert_int_equal(pop3_parse_command(line, POP3_MAX_LINE, cmd), POP3_PARSE_OK);
    assert_int_equal(strlen(cmd->rest), POP3_MAX_LINE - 5);
    assert_int_equal(strlen(cmd->args[0]), POP3_MAX_LINE - 5);
    free(cmd);
    check_refused(line, POP3_MAX_LINE + 1, POP3_PARSE_TOOLONG);
    free(line);
}

/* Every prefix of every valid line, each in an exactly-sized buffer. */
static void test_parse_byte_at_a_time(void **state)
{
    struct pop3_command *cmd = xmalloc(sizeof(*cmd));
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        size_t len = strlen(valid[i].line);
        for (size_t n = 0; n <= len; n++) {
            char *copy = xmemdup(valid[i].line, n ? n : 1);
            enum pop3_parse_result r = pop3_parse_command(copy, n, cmd);
            if (r == POP3_PARSE_OK) {
                assert_true(strlen(cmd->keyword) >= 1 && strlen(cmd->keyword) <= 4);
                assert_true(strlen(cmd->rest) < n);
            } else {
                /* every non-empty prefix of a valid line is a valid line */
                assert_int_equal(n, 0);
                assert_int_equal(r, POP3_PARSE_EMPTY);
            }
            free(copy);
        }
        check_valid(&valid[i]);
    }
    free(cmd);
}

static void test_parse_number(void **state)
{
    unsigned long n = 7;
    assert_int_equal(pop3_parse_number("0", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(pop3_parse_number("1", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(pop3_parse_number("000000012", &n), 0);
    assert_int_equal(n, 12);
    assert_int_equal(pop3_parse_number("999999999", &n), 0);
    assert_int_equal(n, 999999999);
    n = 7;
    assert_int_equal(pop3_parse_number("", &n), -1);
    assert_int_equal(pop3_parse_number("1000000000", &n), -1);
    assert_int_equal(pop3_parse_number("-1", &n), -1);
    assert_int_equal(pop3_parse_number("+1", &n), -1);
    assert_int_equal(pop3_parse_number("1a", &n), -1);
    assert_int_equal(pop3_parse_number(" 1", &n), -1);
    assert_int_equal(pop3_parse_number("0x10", &n), -1);
    assert_int_equal(n, 7);
}

static void test_command_table(void **state)
{
    static const struct {
        const char *name;
        unsigned states;
    } expect[] = {
        {"USER", POP3_IN_AUTHORIZATION},
        {"PASS", POP3_IN_AUTHORIZATION},
        {"AUTH", POP3_IN_AUTHORIZATION},
        {"STLS", POP3_IN_AUTHORIZATION},
        {"CAPA", POP3_IN_AUTHORIZATION | POP3_IN_TRANSACTION},
        {"QUIT", POP3_IN_AUTHORIZATION | POP3_IN_TRANSACTION},
        {"STAT", POP3_IN_TRANSACTION},
        {"LIST", POP3_IN_TRANSACTION},
        {"RETR", POP3_IN_TRANSACTION},
        {"DELE", POP3_IN_TRANSACTION},
        {"RSET", POP3_IN_TRANSACTION},
        {"TOP", POP3_IN_TRANSACTION},
        {"UIDL", POP3_IN_TRANSACTION},
    };
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        const struct pop3_cmd_def *def = pop3_command_find(expect[i].name);
        assert_non_null(def);
        assert_string_equal(def->name, expect[i].name);
        assert_int_equal(def->states, expect[i].states);
        assert_non_null(def->handler);
        assert_true(strncmp(def->syntax, "-ERR ", 5) == 0);
        assert_true(def->min_args <= def->max_args);
    }
    assert_non_null(pop3_command_find("NOOP"));
    assert_null(pop3_command_find("APOP"));
    assert_null(pop3_command_find("stat")); /* the parser upper-cases */
    assert_null(pop3_command_find(""));
    assert_int_equal(pop3_command_find("TOP")->min_args, 2);
    assert_int_equal(pop3_command_find("PASS")->max_args, POP3_ARGS_ANY);

    /* parser and table together, as the session uses them */
    struct pop3_command *cmd = xmalloc(sizeof(*cmd));
    assert_int_equal(pop3_parse_command("uidl 3", 6, cmd), POP3_PARSE_OK);
    const struct pop3_cmd_def *def = pop3_command_find(cmd->keyword);
    assert_non_null(def);
    assert_true(cmd->nargs >= def->min_args && cmd->nargs <= def->max_args);
    free(cmd);
}

/* ---- UIDL ---- */

static void hash_prefix(const char *name, char *out)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)name, strlen(name), md);
    for (size_t i = 0; i < POP3_UIDL_HASH_HEX / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_uidl(void **state)
{
    char uidl[POP3_UIDL_MAX + 1], expect[POP3_UIDL_HASH_HEX + 1];
    pop3_uidl("1763766131.M000001P1Q1.test.eml", uidl);
    assert_string_equal(uidl, "1763766131.M000001P1Q1.test");

    char name[200];
    memset(name, 'a', 70);
    memcpy(name + 70, ".eml", 5);
    pop3_uidl(name, uidl);
    assert_int_equal(strlen(uidl), 70);
    assert_memory_equal(uidl, name, 70);

    memset(name, 'a', 71);
    memcpy(name + 71, ".eml", 5);
    pop3_uidl(name, uidl);
    hash_prefix(name, expect);
    assert_string_equal(uidl, expect);
    assert_int_equal(strlen(uidl), POP3_UIDL_HASH_HEX);
    char again[POP3_UIDL_MAX + 1];
    pop3_uidl(name, again); /* stable */
    assert_string_equal(uidl, again);

    pop3_uidl("with space.eml", uidl);
    hash_prefix("with space.eml", expect);
    assert_string_equal(uidl, expect);
    pop3_uidl("caf\xc3\xa9.eml", uidl);
    hash_prefix("caf\xc3\xa9.eml", expect);
    assert_string_equal(uidl, expect);
    pop3_uidl("x.eml", uidl);
    assert_string_equal(uidl, "x");
    pop3_uidl("noext", uidl);
    assert_string_equal(uidl, "noext");
}

/* ---- dot-stuffing ---- */

static void sbuf_out(void *ctx, const char *data, size_t len)
{
    assert_int_equal(sbuf_append(ctx, data, len), 0);
}

struct stuff_case {
    const char *in;
    long top;
    const char *out;
};

static const struct stuff_case stuff_cases[] = {
    {"", -1, ".\r\n"},
    {"a\r\nb\r\n", -1, "a\r\nb\r\n.\r\n"},
    {"a\r\nb", -1, "a\r\nb\r\n.\r\n"},
    {".\r\n", -1, "..\r\n.\r\n"},
    {".a\r\n..b\r\nc.d\r\n.", -1, "..a\r\n...b\r\nc.d\r\n..\r\n.\r\n"},
    {"bare\nlf\n.x", -1, "bare\r\nlf\r\n..x\r\n.\r\n"},
    {"bare\rcr\r.x\r", -1, "bare\r\ncr\r\n..x\r\n.\r\n"},
    {"cr\r\r\nlf", -1, "cr\r\n\r\nlf\r\n.\r\n"},
    {"\r\n\r\n", -1, "\r\n\r\n.\r\n"},
    {"H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\nb3\r\n", 0, "H: 1\r\nH: 2\r\n\r\n.\r\n"},
    {"H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\nb3\r\n", 2, "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\n.\r\n"},
    {"H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\nb3\r\n", 9, "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\nb3\r\n.\r\n"},
    {"H: 1\r\n\r\n.b1\r\n\r\nb3", 2, "H: 1\r\n\r\n..b1\r\n\r\n.\r\n"},
    {"H: only headers\r\nH: 2", 1, "H: only headers\r\nH: 2\r\n.\r\n"},
    {"H: 1\n\nb1\nb2\n", 1, "H: 1\r\n\r\nb1\r\n.\r\n"},
    {"\r\nbody\r\n", 0, "\r\n.\r\n"},
};

static void check_stuff(const struct stuff_case *tc, size_t split1, size_t split2)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    struct pop3_dotstuff d;
    pop3_dotstuff_init(&d, tc->top, sbuf_out, &out);
    size_t len = strlen(tc->in);
    size_t cuts[] = {0, split1 < len ? split1 : len, split2 < len ? split2 : len, len};
    for (size_t i = 0; i + 1 < 4; i++) {
        if (cuts[i + 1] <= cuts[i]) continue;
        char *piece = xmemdup(tc->in + cuts[i], cuts[i + 1] - cuts[i]);
        bool done = pop3_dotstuff_feed(&d, piece, cuts[i + 1] - cuts[i]);
        free(piece);
        if (done) break;
    }
    pop3_dotstuff_finish(&d);
    if (strcmp(sbuf_cstr(&out), tc->out) != 0) {
        print_error("[%s] top %ld split %zu/%zu: got [%s]\n", tc->in, tc->top, split1, split2,
                    sbuf_cstr(&out));
        fail();
    }
    sbuf_free(&out);
}

static void test_dotstuff(void **state)
{
    for (size_t i = 0; i < sizeof(stuff_cases) / sizeof(stuff_cases[0]); i++) {
        const struct stuff_case *tc = &stuff_cases[i];
        size_t len = strlen(tc->in);
        for (size_t a = 0; a <= len; a++)
            for (size_t b = a; b <= len; b++)
                check_stuff(tc, a, b);
    }
}

static void test_dotstuff_byte_at_a_time(void **state)
{
    for (size_t i = 0; i < sizeof(stuff_cases) / sizeof(stuff_cases[0]); i++) {
        const struct stuff_case *tc = &stuff_cases[i];
        struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
        struct pop3_dotstuff d;
        pop3_dotstuff_init(&d, tc->top, sbuf_out, &out);
        for (const char *p = tc->in; *p; p++) {
            char *one = xmemdup(p, 1);
            bool done = pop3_dotstuff_feed(&d, one, 1);
            free(one);
            if (done) break;
        }
        pop3_dotstuff_finish(&d);
        assert_string_equal(sbuf_cstr(&out), tc->out);
        sbuf_free(&out);
    }
}

/* Random bytes in: never a bare CR or LF out, and the body ends the response once. */
static void test_dotstuff_random(void **state)
{
    unsigned seed = 12345;
    static const char alphabet[] = "\r\n.ab";
    for (int round = 0; round < 2000; round++) {
        char in[64];
        size_t len = (size_t)(round % 64);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245 + 12345;
            in[i] = alphabet[(seed >> 16) % 5];
        }
        struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
        struct pop3_dotstuff d;
        pop3_dotstuff_init(&d, -1, sbuf_out, &out);
        for (size_t i = 0; i < len; i++)
            pop3_dotstuff_feed(&d, in + i, 1);
        pop3_dotstuff_finish(&d);
        const char *o = sbuf_cstr(&out);
        for (size_t i = 0; i < out.len; i++) {
            if (o[i] == '\r') assert_true(i + 1 < out.len && o[i + 1] == '\n');
            if (o[i] == '\n') assert_true(i > 0 && o[i - 1] == '\r');
        }
        assert_true(out.len >= 3 && strcmp(o + out.len - 3, ".\r\n") == 0);
        /* the only line that is exactly "." is the last */
        const char *end = strstr(o, "\r\n.\r\n");
        if (end)
            assert_ptr_equal(end + 5, o + out.len);
        else
            assert_string_equal(o, ".\r\n");
        sbuf_free(&out);
    }
}

/* ---- whole sessions ---- */

#define ALICE_PW "alice-secret"
#define MSG1     "Subject: one\r\n\r\nfirst\r\n.dot\r\n"
#define MSG2     "Subject: two\r\n\r\nl1\r\nl2\r\nl3\r\n"
#define NAME1    "1763766131.M000001P1Q1.test.eml"
#define NAME2    "1763766132.M000002P1Q2.test.eml"

struct fixture {
    char *dir;
    char *mail_dir;
    char *db;
    char *alice_dir;
    struct store *st;
    struct alkaid_config cfg;
    struct pop3_context ctx;
};

static void write_file(const char *dir, const char *name, const char *data)
{
    char *path = xasprintf("%s/%s", dir, name);
    write_plain(path, data, strlen(data));
    free(path);
}

static bool file_exists(const char *dir, const char *name)
{
    char *path = xasprintf("%s/%s", dir, name);
    struct stat st;
    bool r = stat(path, &st) == 0;
    free(path);
    return r;
}

static int session_setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    if ((f->dir = make_tmpdir("pop3")) == NULL) return -1;
    f->mail_dir = xasprintf("%s/mail", f->dir);
    f->db = xasprintf("%s/accounts.db", f->dir);
    const char *error = NULL;
    f->st = store_open_sqlite(f->db, &error);
    if (f->st == NULL) return -1;
    if (store_domain_add(f->st, "example.test", &error) != STORE_OK) return -1;
    const char *users[][2] = {{"alice", ALICE_PW}, {"bob", "bob-pw"}};
    for (size_t i = 0; i < 2; i++) {
        char *hash = password_hash(users[i][1], strlen(users[i][1]), 4096);
        struct store_account a = {.localpart = (char *)users[i][0],
                                  .domain = "example.test",
                                  .type = ACCOUNT_USER,
                                  .password_hash = hash};
        enum store_result r = store_account_add(f->st, &a, &error);
        free(hash);
        if (r != STORE_OK) return -1;
    }
    f->alice_dir = mailbox_path(f->mail_dir, "example.test", "alice");
    if (fs_mkdirs(f->alice_dir, 0700) < 0) return -1;
    write_file(f->alice_dir, NAME1, MSG1);
    write_file(f->alice_dir, NAME2, MSG2);

    f->cfg.hostname = "test.example";
    f->cfg.mail_dir = f->mail_dir;
    f->cfg.pop3.timeout = 30;
    f->cfg.pop3.allow_plaintext_auth = true;
    f->ctx.store = f->st;
    f->ctx.cfg = &f->cfg;
    f->ctx.server = NULL;
    authfail_reset();
    authfail_configure(1000, 0, 0); /* no delays, no lock-out in these tests */
    *state = f;
    return 0;
}

static int session_teardown(void **state)
{
    struct fixture *f = *state;
    store_close(&f->st);
    rm_rf(f->dir);
    free(f->dir);
    free(f->mail_dir);
    free(f->db);
    free(f->alice_dir);
    free(f);
    return 0;
}

struct client {
    int fd;
    pthread_t thread;
    struct conn *conn;
    struct pop3_context *ctx;
    char buf[1 << 16];
    size_t len;
};

static void *session_thread(void *arg)
{
    struct client *c = arg;
    pop3_session_run(c->conn, c->ctx, "test");
    conn_free(&c->conn);
    return NULL;
}

static struct client *client_start(struct fixture *f)
{
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    struct client *c = xcalloc(1, sizeof(*c));
    c->fd = fds[1];
    struct timeval tv = {.tv_sec = 20};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    c->conn = conn_new(fds[0]);
    snprintf(c->conn->ip, sizeof(c->conn->ip), "192.0.2.1");
    c->ctx = &f->ctx;
    assert_int_equal(pthread_create(&c->thread, NULL, session_thread, c), 0);
    return c;
}

/* Waits for the session to end (after QUIT, or after the client hung up). */
static void client_end(struct client **cp)
{
    struct client *c = *cp;
    if (c->fd >= 0) close(c->fd);
    pthread_join(c->thread, NULL);
    free(c);
    *cp = NULL;
}

static void client_send(struct client *c, const char *data, size_t len)
{
    assert_int_equal(write(c->fd, data, len), (ssize_t)len);
}

static bool client_fill(struct client *c)
{
    assert_true(c->len < sizeof(c->buf));
    ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
    if (n <= 0) return false;
    c->len += (size_t)n;
    return true;
}

/* The next line without CRLF (static buffer); asserts there is no bare CR or LF. */
static const char *client_line(struct client *c)
{
    static char line[4096];
    char *end;
    while ((end = memchr(c->buf, '\n', c->len)) == NULL) {
        if (!client_fill(c)) fail_msg("connection closed, buffered [%.*s]", (int)c->len, c->buf);
    }
    size_t n = (size_t)(end - c->buf);
    assert_true(n >= 1 && c->buf[n - 1] == '\r');
    assert_true(n - 1 < sizeof(line));
    memcpy(line, c->buf, n - 1);
    line[n - 1] = '\0';
    assert_null(memchr(line, '\r', n - 1));
    memmove(c->buf, end + 1, c->len - n - 1);
    c->len -= n + 1;
    return line;
}

static const char *cmd(struct client *c, const char *line)
{
    client_send(c, line, strlen(line));
    client_send(c, "\r\n", 2);
    return client_line(c);
}

/* A multi-line body as sent (up to and including ".\r\n"); caller frees. */
static char *client_body(struct client *c)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    for (;;) {
        const char *ln = client_line(c);
        sbuf_appends(&out, ln);
        sbuf_appends(&out, "\r\n");
        if (strcmp(ln, ".") == 0) break;
    }
    return sbuf_steal(&out);
}

static bool client_closed(struct client *c)
{
    char b;
    return c->len == 0 && read(c->fd, &b, 1) == 0;
}

#define assert_prefix(s, p) assert_true(strncmp((s), (p), strlen(p)) == 0)

static void login_alice(struct client *c)
{
    assert_prefix(client_line(c), "+OK ");
    assert_string_equal(cmd(c, "USER alice@example.test"), "+OK Send your password");
    assert_string_equal(cmd(c, "PASS " ALICE_PW), "+OK Logged in, 2 messages (57 octets)");
}

static void test_session_full(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(strlen(MSG1) + strlen(MSG2), 57);
    struct client *c = client_start(f);
    login_alice(c);
    assert_string_equal(cmd(c, "STAT"), "+OK 2 57");
    assert_string_equal(cmd(c, "LIST"), "+OK 2 messages (57 octets)");
    char *body = client_body(c);
    assert_string_equal(body, "1 29\r\n2 28\r\n.\r\n");
    free(body);
    assert_string_equal(cmd(c, "LIST 2"), "+OK 2 28");
    assert_string_equal(cmd(c, "LIST 3"), "-ERR No such message");
    assert_string_equal(cmd(c, "LIST 0"), "-ERR No such message");
    assert_string_equal(cmd(c, "LIST x"), "-ERR Invalid message number");
    assert_string_equal(cmd(c, "uidl"), "+OK Unique-ID listing follows");
    body = client_body(c);
    assert_string_equal(body,
                        "1 1763766131.M000001P1Q1.test\r\n2 1763766132.M000002P1Q2.test\r\n.\r\n");
    free(body);
    assert_string_equal(cmd(c, "UIDL 1"), "+OK 1 1763766131.M000001P1Q1.test");
    assert_string_equal(cmd(c, "RETR 1"), "+OK 29 octets");
    body = client_body(c);
    assert_string_equal(body, "Subject: one\r\n\r\nfirst\r\n..dot\r\n.\r\n");
    free(body);
    assert_string_equal(cmd(c, "TOP 2 1"), "+OK Top of message 2 follows");
    body = client_body(c);
    assert_string_equal(body, "Subject: two\r\n\r\nl1\r\n.\r\n");
    free(body);
    assert_string_equal(cmd(c, "TOP 2"), "-ERR Syntax: TOP msg lines");
    assert_string_equal(cmd(c, "RETR"), "-ERR Syntax: RETR msg");
    assert_string_equal(cmd(c, "USER x"), "-ERR Command not valid in this state");

    assert_string_equal(cmd(c, "DELE 1"), "+OK Message 1 deleted");
    assert_string_equal(cmd(c, "DELE 1"), "-ERR Message 1 already deleted");
    assert_string_equal(cmd(c, "RETR 1"), "-ERR Message 1 already deleted");
    assert_string_equal(cmd(c, "STAT"), "+OK 1 28");
    assert_string_equal(cmd(c, "RSET"), "+OK 2 messages (57 octets)");
    assert_string_equal(cmd(c, "STAT"), "+OK 2 57");
    assert_string_equal(cmd(c, "DELE 2"), "+OK Message 2 deleted");
    assert_string_equal(cmd(c, "NOOP"), "+OK");
    assert_true(file_exists(f->alice_dir, NAME1));
    assert_true(file_exists(f->alice_dir, NAME2)); /* not before QUIT */
    assert_string_equal(cmd(c, "QUIT"), "+OK Alkaid POP3 server signing off (1 messages left)");
    assert_true(client_closed(c));
    client_end(&c);
    assert_true(file_exists(f->alice_dir, NAME1));
    assert_false(file_exists(f->alice_dir, NAME2));
    assert_int_equal(f->ctx.stats.logins, 1);
    assert_int_equal(f->ctx.stats.retrieved, 1);
    assert_int_equal(f->ctx.stats.deleted, 1);
}

static void test_session_dropped_connection(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_start(f);
    login_alice(c);
    assert_string_equal(cmd(c, "DELE 1"), "+OK Message 1 deleted");
    assert_string_equal(cmd(c, "DELE 2"), "+OK Message 2 deleted");
    client_end(&c); /* hangs up without QUIT */
    assert_true(file_exists(f->alice_dir, NAME1));
    assert_true(file_exists(f->alice_dir, NAME2));
    assert_int_equal(f->ctx.stats.deleted, 0);

    /* the lock went with the session */
    c = client_start(f);
    login_alice(c);
    /* pipelined: all replies come back, in order */
    const char *batch = "STAT\r\nDELE 1\r\nQUIT\r\n";
    client_send(c, batch, strlen(batch));
    assert_string_equal(client_line(c), "+OK 2 57");
    assert_string_equal(client_line(c), "+OK Message 1 deleted");
    assert_prefix(client_line(c), "+OK Alkaid POP3 server signing off");
    client_end(&c);
    assert_false(file_exists(f->alice_dir, NAME1));
}

static void test_session_in_use_and_snapshot(void **state)
{
    struct fixture *f = *state;
    struct client *a = client_start(f);
    login_alice(a);
    struct client *b = client_start(f);
    assert_prefix(client_line(b), "+OK ");
    assert_string_equal(cmd(b, "USER alice@example.test"), "+OK Send your password");
    assert_string_equal(cmd(b, "PASS " ALICE_PW),
                        "-ERR [IN-USE] Mailbox is locked by another POP3 session");
    /* a delivery while the maildrop is locked: not seen until the next session */
    write_file(f->alice_dir, "1763766199.M000009P1Q9.test.eml", "Subject: new\r\n\r\nx\r\n");
    assert_string_equal(cmd(a, "STAT"), "+OK 2 57");
    assert_string_equal(cmd(a, "RETR 3"), "-ERR No such message");
    assert_prefix(cmd(a, "QUIT"), "+OK");
    client_end(&a);
    assert_string_equal(cmd(b, "USER alice@example.test"), "+OK Send your password");
    assert_string_equal(cmd(b, "PASS " ALICE_PW), "+OK Logged in, 3 messages (76 octets)");
    /* a file removed by someone else meanwhile */
    char *gone = xasprintf("%s/%s", f->alice_dir, NAME1);
    assert_int_equal(unlink(gone), 0);
    free(gone);
    assert_string_equal(cmd(b, "RETR 1"), "-ERR Message 1 has been removed meanwhile");
    assert_string_equal(cmd(b, "RETR 3"), "+OK 19 octets");
    char *body = client_body(b);
    assert_string_equal(body, "Subject: new\r\n\r\nx\r\n.\r\n");
    free(body);
    assert_prefix(cmd(b, "QUIT"), "+OK");
    client_end(&b);
}

static void test_session_auth(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_start(f);
    assert_prefix(client_line(c), "+OK ");
    assert_string_equal(cmd(c, "PASS x"), "-ERR Send USER first");
    assert_string_equal(cmd(c, "STAT"), "-ERR Command not valid in this state");
    assert_string_equal(cmd(c, "USER nobody@example.test"), "+OK Send your password");
    assert_string_equal(cmd(c, "PASS x"), "-ERR [AUTH] Authentication failed");
    assert_string_equal(cmd(c, "USER alice@example.test"), "+OK Send your password");
    assert_string_equal(cmd(c, "PASS wrong"), "-ERR [AUTH] Authentication failed");
    assert_string_equal(cmd(c, "AUTH PLAIN"), "+ ");
    assert_string_equal(cmd(c, "*"), "-ERR Authentication cancelled");
    assert_string_equal(cmd(c, "AUTH FOO"), "-ERR Unsupported authentication mechanism");
    struct sbuf ir = SBUF_INIT(1024);
    sbuf_appends(&ir, "AUTH PLAIN ");
    base64_encode("\0alice@example.test\0" ALICE_PW, 20 + strlen(ALICE_PW), &ir);
    assert_string_equal(cmd(c, sbuf_cstr(&ir)), "+OK Logged in, 2 messages (57 octets)");
    sbuf_free(&ir);
    assert_string_equal(cmd(c, "AUTH PLAIN"), "-ERR Command not valid in this state");
    assert_string_equal(cmd(c, "CAPA"), "+OK Capability list follows");
    char *body = client_body(c);
    assert_string_equal(body, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
                              "IMPLEMENTATION Alkaid\r\n.\r\n");
    free(body);
    assert_prefix(cmd(c, "QUIT"), "+OK");
    client_end(&c);
    assert_int_equal(f->ctx.stats.auth_failures, 2);
}

static void test_session_plaintext_refused(void **state)
{
    struct fixture *f = *state;
    f->cfg.pop3.allow_plaintext_auth = false;
    struct client *c = client_start(f);
    assert_prefix(client_line(c), "+OK ");
    assert_string_equal(cmd(c, "CAPA"), "+OK Capability list follows");
    char *body = client_body(c);
    assert_null(strstr(body, "USER"));
    assert_null(strstr(body, "SASL"));
    assert_null(strstr(body, "STLS")); /* no TLS context without a server */
    free(body);
    assert_prefix(cmd(c, "USER alice@example.test"), "-ERR [AUTH] ");
    assert_prefix(cmd(c, "PASS " ALICE_PW), "-ERR [AUTH] ");
    assert_prefix(cmd(c, "AUTH PLAIN"), "-ERR [AUTH] ");
    assert_string_equal(cmd(c, "STLS"), "-ERR STLS is not available");
    assert_string_equal(cmd(c, "QUIT"), "+OK Alkaid POP3 server signing off");
    client_end(&c);
}

static void test_session_line_limits(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_start(f);
    assert_prefix(client_line(c), "+OK ");
    char *longline = xmalloc(5000);
    memset(longline, 'A', 4999);
    longline[4999] = '\0';
    assert_string_equal(cmd(c, longline), "-ERR Line too long");
    free(longline);
    assert_string_equal(cmd(c, "NOOP"), "+OK");
    client_send(c, "NO\0OP\r\n", 7);
    assert_string_equal(client_line(c), "-ERR NUL character in command");
    assert_string_equal(cmd(c, ""), "-ERR Empty command");
    for (int i = 3; i < POP3_MAX_BAD_COMMANDS; i++)
        assert_string_equal(cmd(c, "BOGUS"), "-ERR Unknown command");
    assert_string_equal(client_line(c), "-ERR Too many bad commands, closing connection");
    assert_true(client_closed(c));
    client_end(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_refused),
        cmocka_unit_test(test_parse_byte_at_a_time),
        cmocka_unit_test(test_parse_number),
        cmocka_unit_test(test_command_table),
        cmocka_unit_test(test_uidl),
        cmocka_unit_test(test_dotstuff),
        cmocka_unit_test(test_dotstuff_byte_at_a_time),
        cmocka_unit_test(test_dotstuff_random),
        cmocka_unit_test_setup_teardown(test_session_full, session_setup, session_teardown),
        cmocka_unit_test_setup_teardown(test_session_dropped_connection, session_setup,
                                        session_teardown),
        cmocka_unit_test_setup_teardown(test_session_in_use_and_snapshot, session_setup,
                                        session_teardown),
        cmocka_unit_test_setup_teardown(test_session_auth, session_setup, session_teardown),
        cmocka_unit_test_setup_teardown(test_session_plaintext_refused, session_setup,
                                        session_teardown),
        cmocka_unit_test_setup_teardown(test_session_line_limits, session_setup, session_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

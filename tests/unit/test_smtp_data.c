/* test_smtp_data.c - unit tests for the DATA/BDAT reader (smtp_data.c)
 *
 * Every case runs at least three ways - the whole input in one feed, one byte per feed,
 * and split in two at every position - plus a few pseudo-random chunkings, and all of
 * them must give the same output, flags, counts and consumed length. The SMTP smuggling
 * variants (CVE-2023-51764/5/6) each have a case.
 *
 * SECURITY: the inputs are copied into exactly-sized heap buffers so that ASan catches a
 * read past the end of a feed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sbuf.h"
#include "smtp_data.h"
#include "xalloc.h"

struct opts {
    bool bdat;
    unsigned long long max_size;
    size_t max_line;
};

struct expect {
    const char *out;
    size_t out_len;
    size_t consumed;
    bool done;
    bool too_big;
    bool line_too_long;
    bool has_nul;
    bool bare_newline;
    unsigned received;
    unsigned long long size; /* checked only when too_big; otherwise must be out_len */
};

/* Feeds in[0..len) in chunks ending at the given cut positions (ascending, < len). In
 * BDAT mode smtp_data_finish() follows the last chunk. Returns the total consumed. */
static size_t run(const struct opts *o, const char *in, size_t len, const size_t *cuts,
                  size_t ncuts, struct smtp_data *d, struct sbuf *out)
{
    size_t pos = 0, consumed = 0;
    smtp_data_init(d, o->max_size, o->max_line, o->bdat);
    sbuf_init(out, 0);
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        assert_true(end >= pos);
        size_t n = end - pos;
        char *chunk = xmemdup(in + pos, n); /* exact size: ASan sees over-reads */
        bool was_done = d->done;
        size_t r = smtp_data_feed(d, chunk, n, out);
        free(chunk);
        assert_int_not_equal(r, (size_t)-1);
        assert_true(r <= n);
        if (was_done) assert_int_equal(r, 0);
        if (!o->bdat && !d->done) assert_int_equal(r, n);
        if (o->bdat) assert_int_equal(r, n);
        consumed += r;
        pos = end;
    }
    if (o->bdat) smtp_data_finish(d, out);
    return consumed;
}

static void check_result(const struct expect *e, const struct smtp_data *d, const struct sbuf *out,
                         size_t consumed, const char *how)
{
    if (out->len != e->out_len || memcmp(sbuf_cstr(out), e->out, e->out_len) != 0) {
        print_error("output differs (%s): got %zu octets, expected %zu\n", how, out->len,
                    e->out_len);
        fail();
    }
    for (size_t i = 0; i < out->len; i++) {
        char c = out->data[i];
        if (c == '\r') assert_true(i + 1 < out->len && out->data[i + 1] == '\n');
        if (c == '\n') assert_true(i > 0 && out->data[i - 1] == '\r');
    }
    assert_int_equal(consumed, e->consumed);
    assert_int_equal(d->done, e->done);
    assert_int_equal(d->too_big, e->too_big);
    assert_int_equal(d->line_too_long, e->line_too_long);
    assert_int_equal(d->has_nul, e->has_nul);
    assert_int_equal(d->bare_newline, e->bare_newline);
    assert_int_equal(d->received, e->received);
    if (e->too_big)
        assert_int_equal(d->size, e->size);
    else
        assert_int_equal(d->size, out->len);
}

static void check(const struct opts *o, const char *in, size_t len, const struct expect *e)
{
    struct smtp_data d;
    struct sbuf out;
    size_t consumed;
    size_t *cuts = xcalloc(len + 1, sizeof(size_t));

    /* whole */
    consumed = run(o, in, len, NULL, 0, &d, &out);
    check_result(e, &d, &out, consumed, "whole");
    sbuf_free(&out);

    /* one byte at a time */
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    consumed = run(o, in, len, cuts, len ? len - 1 : 0, &d, &out);
    check_result(e, &d, &out, consumed, "bytewise");
    sbuf_free(&out);

    /* split in two at every position, including empty first and last feeds */
    for (size_t k = 0; k <= len; k++) {
        cuts[0] = k;
        consumed = run(o, in, len, cuts, 1, &d, &out);
        check_result(e, &d, &out, consumed, "split");
        sbuf_free(&out);
    }

    /* a few pseudo-random chunkings */
    uint32_t seed = 12345;
    for (int round = 0; round < 8; round++) {
        size_t n = 0, pos = 0;
        for (;;) {
            seed = seed * 1103515245u + 12345u;
            pos += (seed >> 16) % 7;
            if (pos >= len) break;
            cuts[n++] = pos;
        }
        consumed = run(o, in, len, cuts, n, &d, &out);
        check_result(e, &d, &out, consumed, "random");
        sbuf_free(&out);
    }
    free(cuts);
}

#define S(lit) lit, sizeof(lit) - 1

static const struct opts DATA = {false, 0, 0};
static const struct opts BDAT = {true, 0, 0};

/* A complete DATA message: all input consumed, output given, no flags. */
static void check_plain(const struct opts *o, const char *in, size_t len, const char *out,
                        size_t out_len, bool bare)
{
    struct expect e = {out, out_len, len, true, false, false, false, bare, 0, 0};
    check(o, in, len, &e);
}

static void test_simple(void **state)
{
    check_plain(&DATA, S("Subject: x\r\n\r\nhello\r\n.\r\n"), S("Subject: x\r\n\r\nhello\r\n"),
                false);
}

static void test_empty_message(void **state)
{
    /* the CRLF of "DATA" is the first CRLF of the terminator */
    check_plain(&DATA, S(".\r\n"), S(""), false);
    /* an empty first line, then the terminator */
    check_plain(&DATA, S("\r\n.\r\n"), S("\r\n"), false);
}

static void test_pipelined_after_terminator(void **state)
{
    const char in[] = "hi\r\n.\r\nQUIT\r\n";
    struct expect e = {S("hi\r\n"), 7, true, false, false, false, false, 0, 0};
    check(&DATA, in, sizeof(in) - 1, &e);

    const char in2[] = ".\r\nRSET\r\n";
    struct expect e2 = {S(""), 3, true, false, false, false, false, 0, 0};
    check(&DATA, in2, sizeof(in2) - 1, &e2);

    /* a second message's worth of bytes after the first terminator is not consumed */
    const char in3[] = "a\r\n.\r\nb\r\n.\r\n";
    struct expect e3 = {S("a\r\n"), 6, true, false, false, false, false, 0, 0};
    check(&DATA, in3, sizeof(in3) - 1, &e3);
}

static void test_feed_after_done(void **state)
{
    struct smtp_data d;
    struct sbuf out = SBUF_INIT(0);
    smtp_data_init(&d, 0, 0, false);
    assert_int_equal(smtp_data_feed(&d, S(".\r\nx"), &out), 3);
    assert_true(d.done);
    assert_int_equal(smtp_data_feed(&d, S("more\r\n.\r\n"), &out), 0);
    assert_int_equal(out.len, 0);
    sbuf_free(&out);
}

static void test_dot_stuffing(void **state)
{
    check_plain(&DATA, S("..a\r\n..\r\n...\r\n.b.\r\nc.\r\n.\r\n"),
                S(".a\r\n.\r\n..\r\nb.\r\nc.\r\n"), false);
    /* a '.' line start only after a real CRLF */
    check_plain(&DATA, S("x\r\n..\r\n.\r\n"), S("x\r\n.\r\n"), false);
}

/* Each smuggling variant between "a" and an SMTP command must stay content. */
static void test_smuggling(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\n.\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n"},
        {"a\r.\rMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n"},
        {"a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n"},
        {"a\r.\r\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n"},
        /* a real line start, but the '.' is not followed by CRLF: unstuffed */
        {"a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n\r\nMAIL FROM:<x@y>\r\n"},
        {"a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n", "a\r\n\r\nMAIL FROM:<x@y>\r\n"},
        {"a\r\n.\r\rMAIL FROM:<x@y>\r\n.\r\n", "a\r\n\r\n\r\nMAIL FROM:<x@y>\r\n"},
        {"a\r\n.\r.\r\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n\r\n.\r\nMAIL FROM:<x@y>\r\n"},
        {"a\n\r.\r\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n\r\n.\r\nMAIL FROM:<x@y>\r\n"},
        {"a\r\r\n.\r\nMAIL", "a\r\n\r\n"}, /* "\r\r\n" is bare CR + CRLF: this ends */
        {"a\r\n\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n\r\n.\r\nMAIL FROM:<x@y>\r\n"},
        {"a\r\n.\0\r\nMAIL FROM:<x@y>\r\n.\r\n", NULL}, /* handled below */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].out == NULL) continue;
        size_t len = strlen(cases[i].in);
        bool ends = strstr(cases[i].in, "MAIL FROM") != NULL;
        struct expect e = {cases[i].out,
                           strlen(cases[i].out),
                           ends ? len : 0,
                           true,
                           false,
                           false,
                           false,
                           true,
                           0,
                           0};
        if (!ends) e.consumed = 7; /* "a\r\r\n.\r\n" */
        check(&DATA, cases[i].in, len, &e);
    }

    /* smuggled terminators alone: not the end of data */
    static const char *const open_ended[] = {"a\n.\n",   "a\r.\r",   "a\n.\r\n", "a\r.\r\n",
                                             "a\r\n.\n", "a\r\n.\r", "\n.\n",    "\r.\r",
                                             "\n.\r\n",  "\r\n.\n",  ".\n",      ".\r"};
    for (size_t i = 0; i < sizeof(open_ended) / sizeof(open_ended[0]); i++) {
        struct smtp_data d;
        struct sbuf out = SBUF_INIT(0);
        size_t len = strlen(open_ended[i]);
        smtp_data_init(&d, 0, 0, false);
        assert_int_equal(smtp_data_feed(&d, open_ended[i], len, &out), len);
        assert_false(d.done);
        sbuf_free(&out);
    }

    /* '.' NUL CRLF at a line start: unstuffed, NUL kept and flagged */
    const char in[] = "a\r\n.\0\r\n.\r\n";
    struct expect e = {"a\r\n\0\r\n", 6, sizeof(in) - 1, true, false, false, true, false, 0, 0};
    check(&DATA, in, sizeof(in) - 1, &e);
}

static void test_bare_newlines(void **state)
{
    check_plain(&DATA, S("a\nb\rc\r\n.\r\n"), S("a\r\nb\r\nc\r\n"), true);
    check_plain(&DATA, S("\n\r\r\n.\r\n"), S("\r\n\r\n\r\n"), true);
    /* a '.' after a bare LF is content, so ".." stays ".." */
    check_plain(&DATA, S("a\n..\r\n.\r\n"), S("a\r\n..\r\n"), true);
}

static void test_crlf_split(void **state)
{
    /* the split runs cover every position; these make the CR/LF boundary explicit */
    struct smtp_data d;
    struct sbuf out = SBUF_INIT(0);
    smtp_data_init(&d, 0, 0, false);
    assert_int_equal(smtp_data_feed(&d, S("abc\r"), &out), 4);
    assert_int_equal(smtp_data_feed(&d, S("\n.\r"), &out), 3);
    assert_false(d.done);
    assert_int_equal(smtp_data_feed(&d, S("\nNOOP\r\n"), &out), 1);
    assert_true(d.done);
    assert_false(d.bare_newline);
    assert_string_equal(sbuf_cstr(&out), "abc\r\n");
    sbuf_free(&out);
}

static void test_line_length(void **state)
{
    const size_t max = SMTP_MAX_TEXT_LINE;
    char *in = xmalloc(max + 16);
    struct expect e = {0};

    /* exactly max_line octets with the CRLF: fine */
    memset(in, 'x', max - 2);
    memcpy(in + max - 2, "\r\n.\r\n", 5);
    e = (struct expect){in, max, max + 3, true, false, false, false, false, 0, 0};
    check(&DATA, in, max + 3, &e);

    /* one more: too long, but still read to the end */
    memset(in, 'x', max - 1);
    memcpy(in + max - 1, "\r\n.\r\n", 5);
    e = (struct expect){in, max + 1, max + 4, true, false, true, false, false, 0, 0};
    check(&DATA, in, max + 4, &e);

    /* the stuffed '.' does not count (RFC 5321 4.5.3.1.6): 1000 octets stored, 1001 sent */
    in[0] = '.';
    memset(in + 1, 'x', max - 2);
    memcpy(in + max - 1, "\r\n.\r\n", 5);
    e = (struct expect){in + 1, max, max + 4, true, false, false, false, false, 0, 0};
    check(&DATA, in, max + 4, &e);

    /* ... but one octet more after it is too long */
    in[0] = '.';
    memset(in + 1, 'x', max - 1);
    memcpy(in + max, "\r\n.\r\n", 5);
    e = (struct expect){in + 1, max + 1, max + 5, true, false, true, false, false, 0, 0};
    check(&DATA, in, max + 5, &e);
    free(in);

    /* a small limit, in BDAT mode too, and a bare LF ending a line */
    struct opts o = {false, 0, 5};
    e = (struct expect){S("abc\r\nabcd\r\n"), 14, true, false, true, false, false, 0, 0};
    check(&o, S("abc\r\nabcd\r\n.\r\n"), &e);
    e = (struct expect){S("abcd\r\nx\r\n"), 11, true, false, false, false, true, 0, 0};
    check(&o, S("abcd\nx\r\n.\r\n"), &e);
    /* a bare CR: "abcd" CR is 5, then "efg" CRLF is 5 */
    e = (struct expect){S("abcd\r\nefg\r\n"), 13, true, false, false, false, true, 0, 0};
    check(&o, S("abcd\refg\r\n.\r\n"), &e);
    /* the terminator line itself is never too long, even with max_line 1 */
    struct opts o1 = {false, 0, 1};
    e = (struct expect){S(""), 3, true, false, false, false, false, 0, 0};
    check(&o1, S(".\r\n"), &e);
    /* a long line with no line end at all */
    struct opts ob = {true, 0, 5};
    e = (struct expect){S("abcdef"), 6, true, false, true, false, false, 0, 0};
    check(&ob, S("abcdef"), &e);
    e = (struct expect){S("abcde"), 5, true, false, false, false, false, 0, 0};
    check(&ob, S("abcde"), &e);
}

static void test_nul(void **state)
{
    const char in[] = "a\0b\r\n\0\r\n.\r\n";
    struct expect e = {"a\0b\r\n\0\r\n", 8, sizeof(in) - 1, true, false, false, true, false, 0, 0};
    check(&DATA, in, sizeof(in) - 1, &e);
}

static void test_too_big(void **state)
{
    struct opts o = {false, 5, 0};
    struct expect e = {S("hello"), 16, true, true, false, false, false, 0, 13};
    check(&o, S("hello world\r\n.\r\n"), &e);

    /* a CRLF is written whole or not at all */
    o.max_size = 6;
    e = (struct expect){S("hello"), 10, true, true, false, false, false, 0, 7};
    check(&o, S("hello\r\n.\r\n"), &e);

    /* exactly at the limit */
    o.max_size = 7;
    e = (struct expect){S("hello\r\n"), 10, true, false, false, false, false, 0, 0};
    check(&o, S("hello\r\n.\r\n"), &e);

    /* reading goes on to the terminator; flags and counts still work past the limit */
    o.max_size = 3;
    e = (struct expect){S("Rec"), 31, true, true, false, true, true, 2, 29};
    check(&o, S("Received: a\r\nReceived: b\n\0\r\n.\r\nNOOP\r\n"), &e);
}

static void test_received(void **state)
{
    const char in[] = "Received: a\r\n"
                      "received:b\r\n"
                      "RECEIVED :c\r\n"
                      "Received \t :d\r\n"
                      " Received: continuation\r\n"
                      "\tReceived: continuation\r\n"
                      "X-Received: no\r\n"
                      "ReceivedX: no\r\n"
                      "Received no colon\r\n"
                      "Receive: no\r\n"
                      ".Received: stuffed, counted\r\n"
                      "..Received: no\r\n"
                      "\r\n"
                      "Received: in the body\r\n"
                      ".\r\n";
    const char out[] = "Received: a\r\n"
                       "received:b\r\n"
                       "RECEIVED :c\r\n"
                       "Received \t :d\r\n"
                       " Received: continuation\r\n"
                       "\tReceived: continuation\r\n"
                       "X-Received: no\r\n"
                       "ReceivedX: no\r\n"
                       "Received no colon\r\n"
                       "Receive: no\r\n"
                       "Received: stuffed, counted\r\n"
                       ".Received: no\r\n"
                       "\r\n"
                       "Received: in the body\r\n";
    struct expect e = {out,   sizeof(out) - 1, sizeof(in) - 1, true, false,
                       false, false,           false,          5,    0};
    check(&DATA, in, sizeof(in) - 1, &e);

    /* output lines count: a bare LF starts a new field; an empty line made of bare LFs
     * ends the header */
    e = (struct expect){S("Received: a\r\nReceived: b\r\n\r\nReceived: c\r\n"),
                        41,
                        true,
                        false,
                        false,
                        false,
                        true,
                        2,
                        0};
    check(&DATA, S("Received: a\nReceived: b\n\nReceived: c\r\n.\r\n"), &e);

    /* a message with no header section at all */
    e = (struct expect){S("\r\nReceived: x\r\n"), 18, true, false, false, false, false, 0, 0};
    check(&DATA, S("\r\nReceived: x\r\n.\r\n"), &e);

    /* BDAT counts too */
    e = (struct expect){
        S("Received: x\r\nReceived: y\r\n\r\n"), 28, true, false, false, false, false, 2, 0};
    check(&BDAT, S("Received: x\r\nReceived: y\r\n\r\n"), &e);
}

static void test_bdat(void **state)
{
    check_plain(&BDAT, S("hello\r\nworld\r\n"), S("hello\r\nworld\r\n"), false);
    /* no dot handling and no terminator */
    check_plain(&BDAT, S(".\r\n..x\r\n.\r\nmore"), S(".\r\n..x\r\n.\r\nmore"), false);
    /* bare line ends are normalised; a trailing CR is flushed by finish */
    check_plain(&BDAT, S("a\nb\rc\r"), S("a\r\nb\r\nc\r\n"), true);
    check_plain(&BDAT, S("\r"), S("\r\n"), true);
    check_plain(&BDAT, S(""), S(""), false);
    /* several BDAT chunks into one reader: CRLF split across chunks */
    struct smtp_data d;
    struct sbuf out = SBUF_INIT(0);
    smtp_data_init(&d, 0, 0, true);
    assert_int_equal(smtp_data_feed(&d, S("line one\r"), &out), 9);
    assert_int_equal(smtp_data_feed(&d, S("\nline two\r"), &out), 10);
    assert_int_equal(smtp_data_feed(&d, S(""), &out), 0);
    assert_int_equal(smtp_data_feed(&d, S("\n"), &out), 1);
    assert_false(d.done);
    smtp_data_finish(&d, &out);
    assert_true(d.done);
    assert_false(d.bare_newline);
    assert_string_equal(sbuf_cstr(&out), "line one\r\nline two\r\n");
    assert_int_equal(d.size, out.len);
    /* nothing more after finish */
    assert_int_equal(smtp_data_feed(&d, S("x"), &out), 0);
    sbuf_free(&out);

    /* too_big in BDAT */
    struct opts o = {true, 4, 0};
    struct expect e = {S("abcd"), 9, true, true, false, false, true, 0, 11};
    check(&o, S("abcdefg\r\r"), &e);
}

static void test_finish_data_mode_is_noop(void **state)
{
    struct smtp_data d;
    struct sbuf out = SBUF_INIT(0);
    smtp_data_init(&d, 0, 0, false);
    assert_int_equal(smtp_data_feed(&d, S("a\r"), &out), 2);
    smtp_data_finish(&d, &out);
    assert_false(d.done);
    assert_string_equal(sbuf_cstr(&out), "a");
    sbuf_free(&out);
}

static void test_out_full(void **state)
{
    struct smtp_data d;
    struct sbuf out = SBUF_INIT(3);
    smtp_data_init(&d, 0, 0, false);
    assert_int_equal(smtp_data_feed(&d, S("hello\r\n.\r\n"), &out), (size_t)-1);
    sbuf_free(&out);
}

static void test_defaults(void **state)
{
    struct smtp_data d;
    smtp_data_init(&d, 0, 0, false);
    assert_int_equal(d.max_line, SMTP_MAX_TEXT_LINE);
    assert_int_equal(d.max_size, 0);
    assert_false(d.done);
    assert_int_equal(d.received, 0);
    assert_int_equal(d.size, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_pipelined_after_terminator),
        cmocka_unit_test(test_feed_after_done),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_bare_newlines),
        cmocka_unit_test(test_crlf_split),
        cmocka_unit_test(test_line_length),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_received),
        cmocka_unit_test(test_bdat),
        cmocka_unit_test(test_finish_data_mode_is_noop),
        cmocka_unit_test(test_out_full),
        cmocka_unit_test(test_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

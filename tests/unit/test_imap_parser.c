/* test_imap_parser.c - unit tests for the IMAP command parser (imap_parser.c)
 *
 * Each case is a byte string and the transcript it must give: every status other than
 * MORE with the number of octets consumed so far, the parsed command written out
 * (atoms bare, quoted strings in quotes, literals as {n}text, sunk ones as {n:sunk},
 * lists in parentheses), and the sink's calls. The input is fed whole, one byte at a
 * time, split in two at every position, and in pseudo-random chunks, each with and
 * without imap_parser_reset() after DONE; all transcripts must be the same. Sequence sets
 * and the argument helpers are tested directly.
 *
 * SECURITY: chunks are copied into exactly-sized heap buffers so that ASan catches a read
 * past the end of a feed; every limit is tested together with the next command on the
 * same input, which must parse normally (nothing of a refused command leaks into it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap_parser.h"
#include "sbuf.h"
#include "xalloc.h"

#define S(lit) lit, sizeof(lit) - 1

struct opts {
    struct imap_limits limits;
    bool sink;        /* install the test sink (wants APPEND literals after the mailbox) */
    bool refuse;      /* its begin() fails */
    bool write_fails; /* its write() fails */
};

static const struct opts BASE = {{1000, 100, 0, 8, 100}, false, false, false};
static const struct opts SINK = {{1000, 100, 1000, 8, 100}, true, false, false};

struct ctx {
    const struct opts *o;
    struct sbuf *log;
    struct sbuf data;  /* sink octets not yet logged */
    uint64_t expected; /* size given to begin() */
    uint64_t written;
    bool begun;
};

static void put_escaped(struct sbuf *log, const char *s, size_t len, bool quotes)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (quotes && (c == '"' || c == '\\')) {
            sbuf_printf(log, "\\%c", c);
        } else if (c < 0x20 || c >= 0x7f) {
            sbuf_printf(log, "\\x%02x", c);
        } else {
            sbuf_putc(log, (char)c);
        }
    }
}

static void flush_data(struct ctx *c)
{
    if (c->data.len == 0) return;
    sbuf_appends(c->log, "DATA ");
    put_escaped(c->log, c->data.data, c->data.len, false);
    sbuf_putc(c->log, '\n');
    sbuf_reset(&c->data);
}

static bool sink_wants(void *vctx, const struct imap_command *cmd, size_t nargs, uint64_t size)
{
    struct ctx *c = vctx;
    assert_int_equal(nargs, cmd->nargs);
    assert_string_not_equal(cmd->tag, "");
    flush_data(c);
    sbuf_printf(c->log, "WANTS %s %zu %llu\n", cmd->name, nargs, (unsigned long long)size);
    return strcmp(cmd->name, "APPEND") == 0 && nargs >= 1;
}

static int sink_begin(void *vctx, uint64_t size)
{
    struct ctx *c = vctx;
    assert_true(size <= c->o->limits.max_sink_literal);
    flush_data(c);
    sbuf_printf(c->log, "BEGIN %llu\n", (unsigned long long)size);
    if (c->o->refuse) return -1;
    c->begun = true;
    c->expected = size;
    c->written = 0;
    return 0;
}

static int sink_write(void *vctx, const char *data, size_t len)
{
    struct ctx *c = vctx;
    assert_true(c->begun);
    assert_true(len > 0);
    assert_true(c->written + len <= c->expected);
    c->written += len;
    if (c->o->write_fails) return -1;
    assert_int_equal(sbuf_append(&c->data, data, len), 0);
    return 0;
}

static void put_arg(struct sbuf *log, const struct imap_arg *a)
{
    switch (a->type) {
    case IMAP_ARG_ATOM:
        assert_false(a->literal || a->sunk || a->literal8);
        assert_int_equal(strlen(a->str), a->len);
        sbuf_append(log, a->str, a->len);
        break;
    case IMAP_ARG_NIL: sbuf_appends(log, "NIL"); break;
    case IMAP_ARG_STRING:
        if (a->sunk) {
            assert_true(a->literal);
            assert_null(a->str);
            sbuf_printf(log, "%s{%zu:sunk}", a->literal8 ? "~" : "", a->len);
        } else if (a->literal) {
            assert_int_equal(a->str[a->len], '\0');
            sbuf_printf(log, "%s{%zu}", a->literal8 ? "~" : "", a->len);
            put_escaped(log, a->str, a->len, false);
        } else {
            assert_false(a->literal8);
            assert_int_equal(strlen(a->str), a->len);
            sbuf_putc(log, '"');
            put_escaped(log, a->str, a->len, true);
            sbuf_putc(log, '"');
        }
        break;
    case IMAP_ARG_LIST:
        sbuf_putc(log, '(');
        for (size_t i = 0; i < a->nitems; i++) {
            if (i > 0) sbuf_putc(log, ' ');
            put_arg(log, &a->items[i]);
        }
        sbuf_putc(log, ')');
        break;
    }
}

static void put_command(struct sbuf *log, const struct imap_command *cmd)
{
    sbuf_printf(log, "%s %s%s", cmd->tag, cmd->uid ? "UID " : "", cmd->name);
    for (size_t i = 0; i < cmd->nargs; i++) {
        sbuf_putc(log, ' ');
        put_arg(log, &cmd->args[i]);
    }
}

/* Feeds in[0..len) in chunks ending at cuts[]; returns the transcript. */
static char *run(const struct opts *o, const char *in, size_t len, const size_t *cuts, size_t ncuts,
                 bool reset)
{
    struct sbuf log = SBUF_INIT(SBUF_NO_MAX);
    struct ctx c = {o, &log, SBUF_INIT(SBUF_NO_MAX), 0, 0, false};
    struct imap_literal_sink sink = {sink_wants, sink_begin, sink_write, &c};
    struct imap_parser *p = imap_parser_new(&o->limits);
    size_t pos = 0, total = 0;

    if (o->sink) imap_parser_set_sink(p, &sink);
    sbuf_appends(&log, "");
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        size_t n = end - pos, off = 0;
        char *chunk = xmemdup(in + pos, n); /* exact size: ASan sees over-reads */
        do {
            size_t used = 12345;
            enum imap_parse_status st = imap_parser_feed(p, chunk + off, n - off, &used);
            assert_true(used <= n - off);
            off += used;
            total += used;
            if (st == IMAP_PARSE_MORE) {
                assert_int_equal(off, n);
                continue;
            }
            assert_true(used > 0);
            assert_false(imap_parser_busy(p) && st != IMAP_PARSE_CONTINUE);
            if (st != IMAP_PARSE_ERROR) flush_data(&c);
            sbuf_printf(&log, "@%zu ", total);
            if (st == IMAP_PARSE_CONTINUE) {
                assert_true(imap_parser_busy(p));
                assert_null(imap_parser_command(p));
                sbuf_appends(&log, "CONTINUE\n");
            } else if (st == IMAP_PARSE_DONE) {
                const struct imap_command *cmd = imap_parser_command(p);
                assert_non_null(cmd);
                assert_string_equal(imap_parser_tag(p), cmd->tag);
                assert_string_equal(imap_parser_error(p), "");
                sbuf_appends(&log, "DONE ");
                put_command(&log, cmd);
                sbuf_putc(&log, '\n');
                if (c.begun) assert_int_equal(c.written, c.expected);
                c.begun = false;
                if (reset) imap_parser_reset(p);
            } else {
                assert_int_equal(st, IMAP_PARSE_ERROR);
                assert_null(imap_parser_command(p));
                /* how much reached a sink before the error depends on the chunks */
                sbuf_reset(&c.data);
                sbuf_printf(&log, "ERROR %s|%s\n", imap_parser_tag(p), imap_parser_error(p));
                c.begun = false;
            }
        } while (off < n);
        free(chunk);
        pos = end;
    }
    flush_data(&c);
    assert_int_equal(total, len);
    if (imap_parser_busy(p)) sbuf_appends(&log, "BUSY\n");
    imap_parser_free(&p);
    assert_null(p);
    sbuf_free(&c.data);
    return sbuf_steal(&log);
}

static void expect(const char *got, const char *want, const char *how, const char *in, size_t len)
{
    if (strcmp(got, want) == 0) return;
    print_error("input (%zu octets): \"", len);
    for (size_t i = 0; i < len; i++)
        print_error(in[i] >= 0x20 && in[i] < 0x7f ? "%c" : "\\x%02x", (unsigned char)in[i]);
    print_error("\"\nfed %s, got:\n%sexpected:\n%s", how, got, want);
    fail();
}

/* Runs every chunking of in and compares each transcript with want. */
static void check(const struct opts *o, const char *in, size_t len, const char *want)
{
    size_t *cuts = xcalloc(len + 1, sizeof(size_t));
    char *got;

    for (int reset = 0; reset <= 1; reset++) {
        got = run(o, in, len, NULL, 0, reset);
        expect(got, want, "whole", in, len);
        free(got);

        for (size_t i = 0; i + 1 < len; i++)
            cuts[i] = i + 1;
        got = run(o, in, len, cuts, len ? len - 1 : 0, reset);
        expect(got, want, "one byte at a time", in, len);
        free(got);

        for (size_t k = 0; k <= len; k++) {
            cuts[0] = k;
            got = run(o, in, len, cuts, 1, reset);
            expect(got, want, "split in two", in, len);
            free(got);
        }

        uint32_t seed = 7;
        for (int round = 0; round < 6; round++) {
            size_t n = 0, pos = 0;
            for (;;) {
                seed = seed * 1103515245u + 12345u;
                pos += (seed >> 16) % 9;
                if (pos >= len) break;
                cuts[n++] = pos;
            }
            got = run(o, in, len, cuts, n, reset);
            expect(got, want, "in random chunks", in, len);
            free(got);
        }
    }
    free(cuts);
}

#define CHECK(o, in, want) check(o, S(in), want)

/* ---- commands, tags, names ---- */

static void test_simple(void **state)
{
    CHECK(&BASE, "a NOOP\r\n", "@8 DONE a NOOP\n");
    CHECK(&BASE, "A1 capability\r\n", "@15 DONE A1 CAPABILITY\n");
    CHECK(&BASE, "a NOOP\n", "@7 DONE a NOOP\n");
    CHECK(&BASE, "a NOOP\r\nb Logout\nc noop\r\n",
          "@8 DONE a NOOP\n@17 DONE b LOGOUT\n@25 DONE c NOOP\n");
    CHECK(&BASE, "a NOOP  \r\n", "@10 DONE a NOOP\n");
    CHECK(&BASE, "a  NOOP\r\n", "@9 DONE a NOOP\n");
    CHECK(&BASE, "a SELECT INBOX\r\n", "@16 DONE a SELECT INBOX\n");
    CHECK(&BASE, "a NOOP\r\nb NOO", "@8 DONE a NOOP\nBUSY\n");
    CHECK(&BASE, "", "");
}

static void test_tags(void **state)
{
    CHECK(&BASE, "a.b-c_1]'!#$&/:;<=>?@^`|}~ NOOP\r\n",
          "@33 DONE a.b-c_1]'!#$&/:;<=>?@^`|}~ NOOP\n");
    CHECK(&BASE, "[x] NOOP\r\n", "@10 DONE [x] NOOP\n");
    CHECK(&BASE, "+ NOOP\r\nb NOOP\r\n",
          "@8 ERROR |BAD Invalid characters in tag\n@16 DONE b NOOP\n");
    CHECK(&BASE, "a+b NOOP\r\n", "@10 ERROR |BAD Invalid characters in tag\n");
    CHECK(&BASE, "* NOOP\r\n", "@8 ERROR |BAD Invalid characters in tag\n");
    CHECK(&BASE, "a%b NOOP\r\n", "@10 ERROR |BAD Invalid characters in tag\n");
    CHECK(&BASE, "a*b NOOP\r\n", "@10 ERROR |BAD Invalid characters in tag\n");
    CHECK(&BASE, "a\\b NOOP\r\n", "@10 ERROR |BAD Invalid characters in tag\n");
    CHECK(&BASE, "a\"b NOOP\r\n", "@10 ERROR |BAD Invalid characters in tag\n");
    CHECK(&BASE, "a(b NOOP\r\n", "@10 ERROR |BAD Invalid characters in tag\n");
    CHECK(&BASE, "a{b NOOP\r\n", "@10 ERROR |BAD Invalid characters in tag\n");
    CHECK(&BASE, "a\tb NOOP\r\n", "@10 ERROR |BAD Control character in command\n");
    CHECK(&BASE, "a\xc3\xa9 NOOP\r\n", "@10 ERROR |BAD 8-bit octet outside a quoted string\n");
    CHECK(&BASE, "a\0 NOOP\r\nb NOOP\r\n", "@9 ERROR |BAD NUL octet in command\n@17 DONE b NOOP\n");
    /* missing tag, empty lines */
    CHECK(&BASE, " NOOP\r\nb NOOP\r\n", "@7 ERROR |BAD Missing tag\n@15 DONE b NOOP\n");
    CHECK(&BASE, "\r\nb NOOP\r\n", "@2 ERROR |BAD Empty command line\n@10 DONE b NOOP\n");
    CHECK(&BASE, "\n\n", "@1 ERROR |BAD Empty command line\n@2 ERROR |BAD Empty command line\n");
    /* a word alone is a tag without a command */
    CHECK(&BASE, "NOOP\r\n", "@6 ERROR NOOP|BAD Missing command\n");
    CHECK(&BASE, "a \r\n", "@4 ERROR a|BAD Missing command\n");

    /* IMAP_TAG_MAX octets, then one more */
    char in[IMAP_TAG_MAX + 32], want[IMAP_TAG_MAX + 64];
    memset(in, 't', IMAP_TAG_MAX);
    memcpy(in + IMAP_TAG_MAX, " NOOP\r\n", 8);
    snprintf(want, sizeof(want), "@%d DONE %.*s NOOP\n", IMAP_TAG_MAX + 7, IMAP_TAG_MAX, in);
    check(&BASE, in, strlen(in), want);
    memset(in, 't', IMAP_TAG_MAX + 1);
    memcpy(in + IMAP_TAG_MAX + 1, " NOOP\r\nb NOOP\r\n", 16);
    snprintf(want, sizeof(want), "@%d ERROR |BAD Tag too long\n@%d DONE b NOOP\n", IMAP_TAG_MAX + 8,
             IMAP_TAG_MAX + 16);
    check(&BASE, in, strlen(in), want);
}

static void test_names(void **state)
{
    CHECK(&BASE, "a UID FETCH 1:2 FLAGS\r\n", "@23 DONE a UID FETCH 1:2 FLAGS\n");
    CHECK(&BASE, "a uid  store 1 +FLAGS \\Seen\r\n", "@29 DONE a UID STORE 1 +FLAGS \\Seen\n");
    CHECK(&BASE, "a UIDFETCH\r\n", "@12 DONE a UIDFETCH\n");
    CHECK(&BASE, "a UID\r\nb NOOP\r\n",
          "@7 ERROR a|BAD Missing command after UID\n@15 DONE b NOOP\n");
    CHECK(&BASE, "a UID \r\n", "@8 ERROR a|BAD Missing command after UID\n");
    CHECK(&BASE, "a UID UID\r\n", "@11 DONE a UID UID\n");
    CHECK(&BASE, "a 123\r\nb NOOP\r\n", "@7 ERROR a|BAD Invalid command name\n@15 DONE b NOOP\n");
    CHECK(&BASE, "a FETCH1 x\r\n", "@12 ERROR a|BAD Invalid command name\n");
    CHECK(&BASE, "a X-FOO\r\n", "@9 ERROR a|BAD Invalid command name\n");
    CHECK(&BASE, "a FETCH(FLAGS)\r\n", "@16 ERROR a|BAD Invalid command name\n");
    CHECK(&BASE, "a NO\xc3\xa9P\r\n", "@9 ERROR a|BAD 8-bit octet outside a quoted string\n");
    CHECK(&BASE, "a ABCDEFGHIJKLMNOPQRSTUVWXYZabcde\r\n",
          "@35 DONE a ABCDEFGHIJKLMNOPQRSTUVWXYZABCDE\n");
    CHECK(&BASE, "a ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef\r\nb NOOP\r\n",
          "@36 ERROR a|BAD Command name too long\n@44 DONE b NOOP\n");
}

/* ---- atoms ---- */

static void test_atoms(void **state)
{
    /* RFC 3501 6.4.5's examples */
    CHECK(&BASE, "A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
          "@56 DONE A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\n");
    CHECK(&BASE, "a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.2048>)\r\n",
          "@66 DONE a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.2048>)\n");
    CHECK(&BASE, "a003 fetch 12 full\r\n", "@20 DONE a003 FETCH 12 full\n");
    CHECK(&BASE, "a004 fetch 12 body[header]\r\n", "@28 DONE a004 FETCH 12 body[header]\n");
    CHECK(&BASE, "a FETCH 1 (BODY[] BODY[1.2.MIME] BINARY[1]<0.10> RFC822.SIZE)\r\n",
          "@63 DONE a FETCH 1 (BODY[] BODY[1.2.MIME] BINARY[1]<0.10> RFC822.SIZE)\n");
    /* brackets hold spaces, parentheses, and quoted strings with ']' and escapes */
    CHECK(&BASE, "a FETCH 1 BODY[HEADER.FIELDS.NOT (\"X]\" \"a\\\"b\" Date)]<5.6> FLAGS\r\n",
          "@65 DONE a FETCH 1 BODY[HEADER.FIELDS.NOT (\"X]\" \"a\\\"b\" Date)]<5.6> FLAGS\n");
    CHECK(&BASE, "a FETCH 1 (BODY[TEXT])\r\n", "@24 DONE a FETCH 1 (BODY[TEXT])\n");
    CHECK(&BASE, "a X [a b]c[d]\r\n", "@15 DONE a X [a b]c[d]\n");
    /* flags, wildcards, specials allowed in atoms */
    CHECK(&BASE, "a STORE 1,3:5 +FLAGS.SILENT (\\Seen \\Deleted $Forwarded)\r\n",
          "@57 DONE a STORE 1,3:5 +FLAGS.SILENT (\\Seen \\Deleted $Forwarded)\n");
    CHECK(&BASE, "a LIST ~/mail %/* \r\n", "@20 DONE a LIST ~/mail %/*\n");
    CHECK(&BASE, "a SELECT ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n",
          "@42 DONE a SELECT ~peter/mail/&U,BTFw-/&ZeVnLIqe-\n");
    CHECK(&BASE, "a X a]b} +\r\n", "@12 DONE a X a]b} +\n");
    /* refused */
    CHECK(&BASE, "a FETCH 1 BODY[HEADER\r\nb NOOP\r\n",
          "@23 ERROR a|BAD Missing ']'\n@31 DONE b NOOP\n");
    CHECK(&BASE, "a FETCH 1 BODY[HEADER.FIELDS (\"Date)]\r\n",
          "@39 ERROR a|BAD Unterminated quoted string\n");
    CHECK(&BASE, "a FETCH 1 BODY[\"\\x\"]\r\n",
          "@22 ERROR a|BAD Invalid escape in quoted string\n");
    CHECK(&BASE, "a X a[b[c]]\r\n", "@13 ERROR a|BAD Invalid characters in atom\n");
    CHECK(&BASE, "a X a[\tb]\r\n", "@11 ERROR a|BAD Control character in command\n");
    CHECK(&BASE, "a X a[\xc3\xa9]\r\n", "@11 ERROR a|BAD 8-bit octet outside a quoted string\n");
    CHECK(&BASE, "a X a(b\r\nb NOOP\r\n",
          "@9 ERROR a|BAD Invalid characters in atom\n@17 DONE b NOOP\n");
    CHECK(&BASE, "a X a\"b\"\r\n", "@10 ERROR a|BAD Invalid characters in atom\n");
    CHECK(&BASE, "a X a{3}\r\n", "@10 ERROR a|BAD Invalid characters in atom\n");
    CHECK(&BASE, "a X ab\xc3\xa9\r\n", "@10 ERROR a|BAD 8-bit octet outside a quoted string\n");
    CHECK(&BASE, "a X \xc3\xa9\r\n", "@8 ERROR a|BAD 8-bit octet outside a quoted string\n");
    CHECK(&BASE, "a X a\x7f\r\n", "@8 ERROR a|BAD Control character in command\n");
    CHECK(&BASE, "a X a\0b\r\nb NOOP\r\n",
          "@9 ERROR a|BAD NUL octet in command\n@17 DONE b NOOP\n");
    CHECK(&BASE, "a X \0\r\n", "@7 ERROR a|BAD NUL octet in command\n");
}

/* ---- quoted strings ---- */

static void test_quoted(void **state)
{
    CHECK(&BASE, "a LOGIN \"fred\" \"a\\\"b\\\\c\"\r\n",
          "@26 DONE a LOGIN \"fred\" \"a\\\"b\\\\c\"\n");
    CHECK(&BASE, "a LIST \"\" \"*\"\r\n", "@15 DONE a LIST \"\" \"*\"\n");
    CHECK(&BASE, "a X \"a (b) {3} [c\"\r\n", "@20 DONE a X \"a (b) {3} [c\"\n");
    CHECK(&BASE, "a X \"tab\there\"\r\n", "@16 DONE a X \"tab\\x09here\"\n");
    /* UTF-8 */
    CHECK(&BASE, "a CREATE \"caf\xc3\xa9 \xe5\x8f\xb0 \xf0\x9f\x98\x80\"\r\n",
          "@27 DONE a CREATE \"caf\\xc3\\xa9 \\xe5\\x8f\\xb0 \\xf0\\x9f\\x98\\x80\"\n");
    CHECK(&BASE, "a X \"\xc3\"\r\nb NOOP\r\n",
          "@9 ERROR a|BAD Invalid UTF-8 in quoted string\n@17 DONE b NOOP\n");
    CHECK(&BASE, "a X \"\xff\"\r\n", "@9 ERROR a|BAD Invalid UTF-8 in quoted string\n");
    CHECK(&BASE, "a X \"\xc0\xaf\"\r\n", "@10 ERROR a|BAD Invalid UTF-8 in quoted string\n");
    CHECK(&BASE, "a X \"\xed\xa0\x80\"\r\n", "@11 ERROR a|BAD Invalid UTF-8 in quoted string\n");
    CHECK(&BASE, "a X \"\xf4\x90\x80\x80\"\r\n",
          "@12 ERROR a|BAD Invalid UTF-8 in quoted string\n");
    CHECK(&BASE, "a X \"\x80\"\r\n", "@9 ERROR a|BAD Invalid UTF-8 in quoted string\n");
    /* refused */
    CHECK(&BASE, "a X \"abc\r\nb NOOP\r\n",
          "@10 ERROR a|BAD Unterminated quoted string\n@18 DONE b NOOP\n");
    CHECK(&BASE, "a X \"abc\nb NOOP\r\n",
          "@9 ERROR a|BAD Unterminated quoted string\n@17 DONE b NOOP\n");
    CHECK(&BASE, "a X \"a\\b\"\r\n", "@11 ERROR a|BAD Invalid escape in quoted string\n");
    CHECK(&BASE, "a X \"a\\\r\n", "@9 ERROR a|BAD Invalid escape in quoted string\n");
    CHECK(&BASE, "a X \"a\0b\"\r\n", "@11 ERROR a|BAD NUL octet in command\n");
    CHECK(&BASE, "a X \"a\"b\r\n", "@10 ERROR a|BAD Missing space after argument\n");
    CHECK(&BASE, "a X \"a\"\"b\"\r\n", "@12 ERROR a|BAD Missing space after argument\n");
    CHECK(&BASE, "a X \"a\"(b)\r\n", "@12 ERROR a|BAD Missing space after argument\n");
}

/* ---- literals ---- */

static void test_literals(void **state)
{
    CHECK(&BASE, "a LOGIN {4}\r\nfred {6}\r\nsecret\r\n",
          "@13 CONTINUE\n@23 CONTINUE\n@31 DONE a LOGIN {4}fred {6}secret\n");
    CHECK(&BASE, "a LOGIN {4+}\r\nfred {6+}\r\nsecret\r\n", "@33 DONE a LOGIN {4}fred {6}secret\n");
    CHECK(&BASE, "a LOGIN {4}\nfred {6+}\nsecret\n",
          "@12 CONTINUE\n@29 DONE a LOGIN {4}fred {6}secret\n");
    /* CRLF, parentheses and quotes inside a literal are data */
    CHECK(&BASE, "a X {8}\r\n\r\n)(\"{1}\r\n", "@9 CONTINUE\n@19 DONE a X {8}\\x0d\\x0a)(\"{1}\n");
    /* empty literals: a synchronizing one still waits for the continuation */
    CHECK(&BASE, "a X {0}\r\n {0+}\r\n\r\n", "@9 CONTINUE\n@18 DONE a X {0} {0}\n");
    CHECK(&BASE, "a X {00012}\r\nhello world!\r\n",
          "@13 CONTINUE\n@27 DONE a X {12}hello world!\n");
    /* literal8 may hold NUL; "~" alone or before something else is an atom */
    CHECK(&BASE, "a X ~{3}\r\na\0b ~{2+}\r\n\0\0\r\n",
          "@10 CONTINUE\n@25 DONE a X ~{3}a\\x00b ~{2}\\x00\\x00\n");
    CHECK(&BASE, "a X ~ ~x ~/a\r\n", "@14 DONE a X ~ ~x ~/a\n");
    CHECK(&BASE, "a X (~{1+}\r\nx)\r\n", "@16 DONE a X (~{1}x)\n");
    /* 8-bit data in a literal */
    CHECK(&BASE, "a X {2+}\r\n\xff\x80\r\n", "@14 DONE a X {2}\\xff\\x80\n");
    /* a literal is followed by a space, ')' or the line end */
    CHECK(&BASE, "a X {1+}\r\nxy\r\nb NOOP\r\n",
          "@14 ERROR a|BAD Missing space after argument\n@22 DONE b NOOP\n");
    /* NUL in a literal: refused, the rest of it discarded */
    CHECK(&BASE, "a X {5}\r\nab\0\r\n\r\nb NOOP\r\n",
          "@9 CONTINUE\n@16 ERROR a|BAD NUL octet in literal\n@24 DONE b NOOP\n");
    CHECK(&BASE, "a X {5+}\r\nab\0de NOOP\r\nb NOOP\r\n",
          "@22 ERROR a|BAD NUL octet in literal\n@30 DONE b NOOP\n");
    /* malformed announcements */
    CHECK(&BASE, "a X {}\r\nb NOOP\r\n", "@8 ERROR a|BAD Invalid literal\n@16 DONE b NOOP\n");
    CHECK(&BASE, "a X {+}\r\n", "@9 ERROR a|BAD Invalid literal\n");
    CHECK(&BASE, "a X {-1}\r\n", "@10 ERROR a|BAD Invalid literal\n");
    CHECK(&BASE, "a X {1 }\r\n", "@10 ERROR a|BAD Invalid literal\n");
    CHECK(&BASE, "a X {1++}\r\n", "@11 ERROR a|BAD Invalid literal\n");
    CHECK(&BASE, "a X {3\r\n", "@8 ERROR a|BAD Invalid literal\n");
    CHECK(&BASE, "a X {3}x\r\n", "@10 ERROR a|BAD Missing CRLF after literal\n");
    CHECK(&BASE, "a X {3} \r\n", "@10 ERROR a|BAD Missing CRLF after literal\n");
    CHECK(&BASE, "a X {3}\rx\r\n", "@11 ERROR a|BAD Missing CRLF after literal\n");
    CHECK(&BASE, "a X ~{3\r\n", "@9 ERROR a|BAD Invalid literal\n");
    CHECK(&BASE, "a X ~x{3}\r\n", "@11 ERROR a|BAD Invalid characters in atom\n");
    /* a literal where no argument may start */
    CHECK(&BASE, "{3}\r\n", "@5 ERROR |BAD Invalid characters in tag\n");
    CHECK(&BASE, "a {3}\r\n", "@7 ERROR a|BAD Invalid command name\n");
}

/* ---- lists and NIL ---- */

static void test_lists(void **state)
{
    CHECK(&BASE, "a X (a (b (c)) () \"d\" {1}\r\ne) f\r\n",
          "@27 CONTINUE\n@33 DONE a X (a (b (c)) () \"d\" {1}e) f\n");
    CHECK(&BASE, "a X ((a)) ( b )\r\n", "@17 DONE a X ((a)) (b)\n");
    CHECK(&BASE, "a X ()()\r\n", "@10 ERROR a|BAD Missing space after argument\n");
    CHECK(&BASE, "a X (a)b\r\n", "@10 ERROR a|BAD Missing space after argument\n");
    CHECK(&BASE, "a X NIL nil (NIL Nil) \"NIL\" NILS\r\n",
          "@34 DONE a X NIL NIL (NIL NIL) \"NIL\" NILS\n");
    CHECK(&BASE, "a X a)\r\nb NOOP\r\n", "@8 ERROR a|BAD Unexpected ')'\n@16 DONE b NOOP\n");
    CHECK(&BASE, "a X )\r\n", "@7 ERROR a|BAD Unexpected ')'\n");
    CHECK(&BASE, "a X (a (b)\r\nb NOOP\r\n", "@12 ERROR a|BAD Missing ')'\n@20 DONE b NOOP\n");
    CHECK(&BASE, "a X (\n", "@6 ERROR a|BAD Missing ')'\n");
}

/* ---- line ends ---- */

static void test_line_ends(void **state)
{
    CHECK(&BASE, "a NOOP\rb NOOP\r\nc NOOP\r\n",
          "@15 ERROR a|BAD CR without LF\n@23 DONE c NOOP\n");
    CHECK(&BASE, "a NOOP\r\r\n", "@9 ERROR a|BAD CR without LF\n");
    CHECK(&BASE, "a X y\rz\r\n", "@9 ERROR a|BAD CR without LF\n");
    CHECK(&BASE, "a\r", "BUSY\n");
    CHECK(&BASE, "a NOOP", "BUSY\n");
    /* garbage */
    CHECK(&BASE, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
          "@12 ERROR |BAD Control character in command\n");
    CHECK(&BASE, "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
          "@16 ERROR GET|BAD Invalid command name\n@25 DONE Host: X\n"
          "@27 ERROR |BAD Empty command line\n");
}

/* ---- the sink ---- */

static void test_sink(void **state)
{
    CHECK(&SINK, "a APPEND INBOX (\\Seen) \"01-Jan-2024 10:00:00 +0000\" {5}\r\nhello\r\n",
          "WANTS APPEND 3 5\nBEGIN 5\n@57 CONTINUE\nDATA hello\n"
          "@64 DONE a APPEND INBOX (\\Seen) \"01-Jan-2024 10:00:00 +0000\" {5:sunk}\n");
    CHECK(&SINK, "a APPEND INBOX {7+}\r\nhi\r\nyou\r\nb NOOP\r\n",
          "WANTS APPEND 1 7\nBEGIN 7\nDATA hi\\x0d\\x0ayou\n@30 DONE a APPEND INBOX {7:sunk}\n"
          "@38 DONE b NOOP\n");
    CHECK(&SINK, "a APPEND INBOX ~{3+}\r\na\0b\r\n",
          "WANTS APPEND 1 3\nBEGIN 3\nDATA a\\x00b\n@27 DONE a APPEND INBOX ~{3:sunk}\n");
    CHECK(&SINK, "a APPEND INBOX {0}\r\n\r\n",
          "WANTS APPEND 1 0\nBEGIN 0\n@20 CONTINUE\n@22 DONE a APPEND INBOX {0:sunk}\n");
    /* not wanted: the mailbox name, other commands, literals inside lists */
    CHECK(&SINK, "a APPEND {5}\r\nINBOX {2+}\r\nhi\r\n",
          "WANTS APPEND 0 5\n@14 CONTINUE\nWANTS APPEND 1 2\nBEGIN 2\nDATA hi\n"
          "@30 DONE a APPEND {5}INBOX {2:sunk}\n");
    CHECK(&SINK, "a LOGIN {1+}\r\nx {1+}\r\ny\r\n",
          "WANTS LOGIN 0 1\nWANTS LOGIN 1 1\n@25 DONE a LOGIN {1}x {1}y\n");
    CHECK(&SINK, "a APPEND INBOX ({1+}\r\nx)\r\n", "@26 DONE a APPEND INBOX ({1}x)\n");
    /* past the sink's limit, or refused by begin(): NO [TOOBIG] */
    CHECK(&SINK, "a APPEND INBOX {1001}\r\nb NOOP\r\n",
          "WANTS APPEND 1 1001\n@23 ERROR a|NO [TOOBIG] Message too large\n@31 DONE b NOOP\n");
    CHECK(&SINK, "a APPEND INBOX {99999999999999999999999999}\r\n",
          "WANTS APPEND 1 18446744073709551615\n@45 ERROR a|NO [TOOBIG] Message too large\n");
    struct opts o = SINK;
    o.refuse = true;
    CHECK(&o, "a APPEND INBOX {10}\r\nb NOOP\r\n",
          "WANTS APPEND 1 10\nBEGIN 10\n@21 ERROR a|NO [TOOBIG] Message too large\n"
          "@29 DONE b NOOP\n");
    CHECK(&o, "a APPEND INBOX {10+}\r\n0123456789 x\r\nb NOOP\r\n",
          "WANTS APPEND 1 10\nBEGIN 10\n@36 ERROR a|NO [TOOBIG] Message too large\n"
          "@44 DONE b NOOP\n");
    /* NUL in a sunk (non-literal8) literal stops it; the rest is discarded */
    CHECK(&SINK, "a APPEND INBOX {5+}\r\nab\0de\r\nb NOOP\r\n",
          "WANTS APPEND 1 5\nBEGIN 5\n@28 ERROR a|BAD NUL octet in literal\n@36 DONE b NOOP\n");
    /* write() failing */
    o = SINK;
    o.write_fails = true;
    CHECK(&o, "a APPEND INBOX {5+}\r\nhello\r\nb NOOP\r\n",
          "WANTS APPEND 1 5\nBEGIN 5\n@28 ERROR a|NO Cannot store the message\n@36 DONE b NOOP\n");
    /* max_sink_literal 0: no sink literals, the in-memory limit applies */
    o = SINK;
    o.limits.max_sink_literal = 0;
    CHECK(&o, "a APPEND INBOX {5}\r\nhello\r\n",
          "@20 CONTINUE\n@27 DONE a APPEND INBOX {5}hello\n");
    CHECK(&o, "a APPEND INBOX {101}\r\n", "@22 ERROR a|BAD Literal too large\n");
    /* an error after a sunk literal still fails the command */
    CHECK(&SINK, "a APPEND INBOX {2+}\r\nhi (\r\n",
          "WANTS APPEND 1 2\nBEGIN 2\n@27 ERROR a|BAD Missing ')'\n");
}

/* The sink gets each piece as soon as it is fed: nothing is buffered. */
static void test_sink_streams(void **state)
{
    struct sbuf log = SBUF_INIT(SBUF_NO_MAX);
    struct ctx c = {&SINK, &log, SBUF_INIT(SBUF_NO_MAX), 0, 0, false};
    struct imap_literal_sink sink = {sink_wants, sink_begin, sink_write, &c};
    struct imap_parser *p = imap_parser_new(&SINK.limits);
    size_t used;

    imap_parser_set_sink(p, &sink);
    assert_int_equal(imap_parser_feed(p, S("a APPEND x {1000+}\r\n"), &used), IMAP_PARSE_MORE);
    assert_int_equal(used, 20);
    assert_true(c.begun);
    assert_int_equal(c.expected, 1000);
    char piece[37];
    memset(piece, 'm', sizeof(piece));
    uint64_t sent = 0;
    while (sent < 1000) {
        size_t n = 1000 - sent < sizeof(piece) ? (size_t)(1000 - sent) : sizeof(piece);
        assert_int_equal(imap_parser_feed(p, piece, n, &used), IMAP_PARSE_MORE);
        assert_int_equal(used, n);
        sent += n;
        assert_int_equal(c.written, sent);
        assert_int_equal(c.data.len, sent);
        assert_true(imap_parser_busy(p));
    }
    assert_int_equal(imap_parser_feed(p, S("\r\n"), &used), IMAP_PARSE_DONE);
    const struct imap_command *cmd = imap_parser_command(p);
    assert_int_equal(cmd->nargs, 2);
    assert_true(cmd->args[1].sunk);
    assert_null(cmd->args[1].str);
    assert_int_equal(cmd->args[1].len, 1000);
    assert_null(imap_arg_astring(&cmd->args[1]));
    imap_parser_free(&p);
    sbuf_free(&c.data);
    sbuf_free(&log);
}

/* ---- limits ---- */

static void test_limit_line(void **state)
{
    struct opts o = BASE;
    o.limits.max_line = 16; /* "a X 1234567890\r\n" is 16 */
    CHECK(&o, "a X 1234567890\r\nb NOOP\r\n", "@16 DONE a X 1234567890\n@24 DONE b NOOP\n");
    CHECK(&o, "a X 12345678901\r\nb NOOP\r\n",
          "@17 ERROR a|BAD Command line too long\n@25 DONE b NOOP\n");
    CHECK(&o, "a X \"12345678901234567890\"\r\nb NOOP\r\n",
          "@28 ERROR a|BAD Command line too long\n@36 DONE b NOOP\n");
    /* literals do not count, the text around them does */
    CHECK(&o, "a X {20+}\r\n01234567890123456789 ab\r\n",
          "@36 DONE a X {20}01234567890123456789 ab\n");
    CHECK(&o, "a X {1+}\r\nx 1234567\r\n", "@21 ERROR a|BAD Command line too long\n");
    /* a long tag: nothing of it is reported */
    CHECK(&o, "abcdefghijklmnopq NOOP\r\nb NOOP\r\n",
          "@24 ERROR |BAD Command line too long\n@32 DONE b NOOP\n");
    /* the limit trips on the LF of "{n+}\r\n": the literal is still discarded */
    CHECK(&o, "a X 123456 {5+}\r\nb BAD\r\nc NOOP\r\n",
          "@24 ERROR a|BAD Command line too long\n@32 DONE c NOOP\n");
    /* a synchronizing literal after the limit: no continuation, nothing discarded */
    CHECK(&o, "a X 123456 {5}\r\n", "@16 CONTINUE\nBUSY\n");
    CHECK(&o, "a X 1234567 {5}\r\nb NOOP\r\n",
          "@17 ERROR a|BAD Command line too long\n@25 DONE b NOOP\n");
    /* set_limits applies to the next command */
    struct imap_parser *p = imap_parser_new(&BASE.limits);
    size_t used;
    assert_int_equal(imap_parser_feed(p, S("a X "), &used), IMAP_PARSE_MORE);
    imap_parser_set_limits(p, &o.limits);
    assert_int_equal(imap_parser_feed(p, S("123456789012345\r\n"), &used), IMAP_PARSE_DONE);
    assert_int_equal(imap_parser_feed(p, S("a X 12345678901\r\n"), &used), IMAP_PARSE_ERROR);
    assert_string_equal(imap_parser_error(p), "BAD Command line too long");
    imap_parser_set_limits(p, &BASE.limits);
    assert_int_equal(imap_parser_feed(p, S("a X 12345678901\r\n"), &used), IMAP_PARSE_DONE);
    imap_parser_free(&p);
}

static void test_limit_literal(void **state)
{
    struct opts o = BASE;
    o.limits.max_literal = 10;
    CHECK(&o, "a X {10}\r\n0123456789\r\n", "@10 CONTINUE\n@22 DONE a X {10}0123456789\n");
    /* synchronizing: refused before any continuation, the client sends nothing more */
    CHECK(&o, "a X {11}\r\nb NOOP\r\n", "@10 ERROR a|BAD Literal too large\n@18 DONE b NOOP\n");
    CHECK(&o, "a X ~{11}\r\nb NOOP\r\n", "@11 ERROR a|BAD Literal too large\n@19 DONE b NOOP\n");
    CHECK(&o, "a X {18446744073709551616}\r\nb NOOP\r\n",
          "@28 ERROR a|BAD Literal too large\n@36 DONE b NOOP\n");
    /* non-synchronizing: its octets are read and discarded, then the rest of the line */
    CHECK(&o, "a X {11+}\r\nb DELETE xy rest {2+}\r\nzz\r\nc NOOP\r\n",
          "@38 ERROR a|BAD Literal too large\n@46 DONE c NOOP\n");
    CHECK(&o, "a X {12+}\r\n\r\nb DELETE\r\n\r\nc NOOP\r\n",
          "@25 ERROR a|BAD Literal too large\n@33 DONE c NOOP\n");
    /* all of a command's in-memory literals count together */
    CHECK(&o, "a X {6+}\r\n012345 {4+}\r\n6789\r\n", "@29 DONE a X {6}012345 {4}6789\n");
    CHECK(&o, "a X {6+}\r\n012345 {5+}\r\n6789x\r\nb NOOP\r\n",
          "@30 ERROR a|BAD Literal too large\n@38 DONE b NOOP\n");
    o.limits.max_literal = 0;
    CHECK(&o, "a X {0}\r\n\r\n", "@9 CONTINUE\n@11 DONE a X {0}\n");
    CHECK(&o, "a X {1}\r\n", "@9 ERROR a|BAD Literal too large\n");
}

/* After an error anywhere, a "{n+}" ending the line is still a literal to discard; a
 * synchronizing one is not sent by the client. */
static void test_skip_literals(void **state)
{
    CHECK(&BASE, "a X ) {5+}\r\nb BAD\r\nc NOOP\r\n",
          "@19 ERROR a|BAD Unexpected ')'\n@27 DONE c NOOP\n");
    CHECK(&BASE, "a X ) {5+}\r\n12345 {2+}\nzz {3}\r\nc NOOP\r\n",
          "@31 ERROR a|BAD Unexpected ')'\n@39 DONE c NOOP\n");
    CHECK(&BASE, "a X ) {5}\r\nc NOOP\r\n", "@11 ERROR a|BAD Unexpected ')'\n@19 DONE c NOOP\n");
    CHECK(&BASE, "a X \"x{2+}\r\nab\r\nc NOOP\r\n",
          "@16 ERROR a|BAD Unterminated quoted string\n@24 DONE c NOOP\n");
    CHECK(&BASE, "a X BODY[{2+}\r\nab\r\nc NOOP\r\n",
          "@19 ERROR a|BAD Missing ']'\n@27 DONE c NOOP\n");
    CHECK(&BASE, "a X {5+}x\r\n", "@11 ERROR a|BAD Missing CRLF after literal\n");
    CHECK(&BASE, "a X {5+} {2+}\rx\nb NOOP\r\n",
          "@16 ERROR a|BAD Missing CRLF after literal\n@24 DONE b NOOP\n");
    CHECK(&BASE, "a X {5+}\r\n12\0\0\0 ) {1+}\r\n\n\r\nb NOOP\r\n",
          "@27 ERROR a|BAD NUL octet in literal\n@35 DONE b NOOP\n");
    /* a huge announced size: everything after it is literal data */
    CHECK(&BASE, "a X ) {99999999999999999999+}\r\nb NOOP\r\n", "BUSY\n");
}

static void test_limit_depth(void **state)
{
    struct opts o = BASE;
    o.limits.max_depth = 2;
    CHECK(&o, "a X ((a) (b)) (c)\r\n", "@19 DONE a X ((a) (b)) (c)\n");
    CHECK(&o, "a X (((a)))\r\nb NOOP\r\n",
          "@13 ERROR a|BAD Lists nested too deeply\n@21 DONE b NOOP\n");
    o.limits.max_depth = 0;
    CHECK(&o, "a X ()\r\nb NOOP\r\n", "@8 ERROR a|BAD Lists nested too deeply\n@16 DONE b NOOP\n");
    /* deep nesting within the limit, built without recursion */
    o.limits.max_depth = 200;
    o.limits.max_args = 1000;
    char in[512], want[600];
    size_t n = 0;
    memcpy(in, "a X ", 4);
    n = 4;
    for (int i = 0; i < 200; i++)
        in[n++] = '(';
    for (int i = 0; i < 200; i++)
        in[n++] = ')';
    memcpy(in + n, "\r\n", 3);
    snprintf(want, sizeof(want), "@%zu DONE %.*s\n", n + 2, (int)n, in);
    check(&o, in, n + 2, want);
    in[4] = '(';
    memmove(in + 5, in + 4, n - 2);
    snprintf(want, sizeof(want), "@%zu ERROR a|BAD Lists nested too deeply\n", n + 3);
    check(&o, in, n + 3, want);
}

static void test_limit_args(void **state)
{
    struct opts o = BASE;
    o.limits.max_args = 5; /* all levels: a list is one, its members more */
    CHECK(&o, "a X 1 2 (3 4)\r\n", "@15 DONE a X 1 2 (3 4)\n");
    CHECK(&o, "a X 1 2 3 4 5 6\r\nb NOOP\r\n",
          "@17 ERROR a|BAD Too many arguments\n@25 DONE b NOOP\n");
    CHECK(&o, "a X (1 2 (3 4 ()))\r\n", "@20 ERROR a|BAD Too many arguments\n");
    CHECK(&o, "a X 1 2 3 4 5 \"6\"\r\n", "@19 ERROR a|BAD Too many arguments\n");
    CHECK(&o, "a X 1 2 3 4 5 {6+}\r\nb NOOP\r\nc NOOP\r\n",
          "@28 ERROR a|BAD Too many arguments\n@36 DONE c NOOP\n");
    CHECK(&o, "a X 1 2 3 4 5 {6}\r\nb NOOP\r\n",
          "@19 ERROR a|BAD Too many arguments\n@27 DONE b NOOP\n");
    o.limits.max_args = 0;
    CHECK(&o, "a NOOP\r\na X y\r\n", "@8 DONE a NOOP\n@15 ERROR a|BAD Too many arguments\n");
}

/* ---- API details ---- */

static void test_api(void **state)
{
    struct imap_parser *p = imap_parser_new(&BASE.limits);
    size_t used;

    assert_false(imap_parser_busy(p));
    assert_string_equal(imap_parser_tag(p), "");
    assert_string_equal(imap_parser_error(p), "");
    assert_null(imap_parser_command(p));
    assert_int_equal(imap_parser_feed(p, "", 0, &used), IMAP_PARSE_MORE);
    assert_int_equal(used, 0);
    assert_false(imap_parser_busy(p));

    /* several commands in one buffer: each DONE stops the feed */
    const char in[] = "a NOOP\r\nb1 SELECT \"x\"\r\n";
    assert_int_equal(imap_parser_feed(p, S(in), &used), IMAP_PARSE_DONE);
    assert_int_equal(used, 8);
    assert_false(imap_parser_busy(p));
    const struct imap_command *cmd = imap_parser_command(p);
    assert_string_equal(cmd->tag, "a");
    assert_string_equal(cmd->name, "NOOP");
    assert_int_equal(cmd->nargs, 0);
    /* an empty feed keeps the command; the next feed starts a new one without reset */
    assert_int_equal(imap_parser_feed(p, "", 0, &used), IMAP_PARSE_MORE);
    assert_non_null(imap_parser_command(p));
    assert_int_equal(imap_parser_feed(p, in + 8, 5, &used), IMAP_PARSE_MORE);
    assert_null(imap_parser_command(p));
    assert_true(imap_parser_busy(p));
    assert_int_equal(imap_parser_feed(p, in + 13, sizeof(in) - 14, &used), IMAP_PARSE_DONE);
    cmd = imap_parser_command(p);
    assert_string_equal(imap_parser_tag(p), "b1");
    assert_int_equal(cmd->nargs, 1);
    assert_string_equal(imap_arg_astring(&cmd->args[0]), "x");
    imap_parser_reset(p);
    assert_null(imap_parser_command(p));
    assert_string_equal(imap_parser_tag(p), "");

    /* an error: tag and text stay until the next feed */
    assert_int_equal(imap_parser_feed(p, S("t1 X (\r\n"), &used), IMAP_PARSE_ERROR);
    assert_string_equal(imap_parser_tag(p), "t1");
    assert_string_equal(imap_parser_error(p), "BAD Missing ')'");
    assert_false(imap_parser_busy(p));
    assert_int_equal(imap_parser_feed(p, S("t2 X"), &used), IMAP_PARSE_MORE);
    assert_string_equal(imap_parser_error(p), "");
    /* skipping is busy too */
    assert_int_equal(imap_parser_feed(p, S(" ) y"), &used), IMAP_PARSE_MORE);
    assert_true(imap_parser_busy(p));
    assert_int_equal(imap_parser_feed(p, S("\n"), &used), IMAP_PARSE_ERROR);
    assert_string_equal(imap_parser_tag(p), "t2");
    imap_parser_free(&p);
    imap_parser_free(&p); /* NULL is fine */

    /* a sink can be removed */
    struct sbuf log = SBUF_INIT(SBUF_NO_MAX);
    struct ctx c = {&SINK, &log, SBUF_INIT(SBUF_NO_MAX), 0, 0, false};
    struct imap_literal_sink sink = {sink_wants, sink_begin, sink_write, &c};
    p = imap_parser_new(&SINK.limits);
    imap_parser_set_sink(p, &sink);
    imap_parser_set_sink(p, NULL);
    assert_int_equal(imap_parser_feed(p, S("a APPEND x {1+}\r\ny\r\n"), &used), IMAP_PARSE_DONE);
    assert_false(imap_parser_command(p)->args[1].sunk);
    assert_int_equal(log.len, 0);
    imap_parser_free(&p);
    sbuf_free(&log);
}

static void test_arg_helpers(void **state)
{
    struct imap_parser *p = imap_parser_new(&BASE.limits);
    size_t used;
    const char in[] = "a X atom \"quoted\" {3+}\r\nlit NIL (x) ~{2+}\r\n\0y nil\r\n";
    assert_int_equal(imap_parser_feed(p, S(in), &used), IMAP_PARSE_DONE);
    const struct imap_command *cmd = imap_parser_command(p);
    assert_int_equal(cmd->nargs, 7);
    assert_string_equal(imap_arg_astring(&cmd->args[0]), "atom");
    assert_string_equal(imap_arg_astring(&cmd->args[1]), "quoted");
    assert_string_equal(imap_arg_astring(&cmd->args[2]), "lit");
    assert_null(imap_arg_astring(&cmd->args[3])); /* NIL */
    assert_null(imap_arg_astring(&cmd->args[4])); /* list */
    assert_null(imap_arg_astring(&cmd->args[5])); /* literal8 */
    assert_null(imap_arg_astring(NULL));
    assert_int_equal(cmd->args[3].type, IMAP_ARG_NIL);
    assert_int_equal(cmd->args[6].type, IMAP_ARG_NIL);
    assert_true(imap_arg_is_atom(&cmd->args[0], "ATOM"));
    assert_true(imap_arg_is_atom(&cmd->args[0], "atom"));
    assert_false(imap_arg_is_atom(&cmd->args[0], "ato"));
    assert_false(imap_arg_is_atom(&cmd->args[1], "quoted"));
    assert_false(imap_arg_is_atom(&cmd->args[2], "lit"));
    assert_true(imap_arg_is_atom(&cmd->args[3], "NIL"));
    assert_false(imap_arg_is_atom(&cmd->args[4], "x"));
    assert_true(imap_arg_is_atom(&cmd->args[4].items[0], "X"));
    assert_false(imap_arg_is_atom(NULL, "x"));
    assert_int_equal(cmd->args[5].len, 2);
    assert_memory_equal(cmd->args[5].str, "\0y", 3);
    imap_parser_free(&p);
}

/* ---- sequence sets ---- */

static void seq_ok(const char *s, const struct imap_range *want, size_t n)
{
    struct imap_seqset set;
    if (imap_seqset_parse(s, &set) != 0) fail_msg("refused: %s", s);
    assert_int_equal(set.nranges, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(set.ranges[i].lo, want[i].lo);
        assert_int_equal(set.ranges[i].hi, want[i].hi);
    }
    imap_seqset_free(&set);
    assert_null(set.ranges);
    assert_int_equal(set.nranges, 0);
}

static void seq_bad(const char *s)
{
    struct imap_seqset set = {(struct imap_range *)&set, 99};
    if (imap_seqset_parse(s, &set) == 0) fail_msg("accepted: %s", s);
    assert_null(set.ranges);
    assert_int_equal(set.nranges, 0);
}

#define STAR IMAP_SEQ_STAR

static void test_seqset(void **state)
{
    seq_ok("1", (struct imap_range[]){{1, 1}}, 1);
    seq_ok("1:5", (struct imap_range[]){{1, 5}}, 1);
    seq_ok("5:1", (struct imap_range[]){{1, 5}}, 1);
    seq_ok("*", (struct imap_range[]){{STAR, STAR}}, 1);
    seq_ok("1:*", (struct imap_range[]){{1, STAR}}, 1);
    seq_ok("*:3", (struct imap_range[]){{STAR, 3}}, 1); /* ordered once '*' is known */
    seq_ok("1,3,5:7", (struct imap_range[]){{1, 1}, {3, 3}, {5, 7}}, 3);
    /* the largest UID is a number, not '*' (RFC 3501 9) */
    seq_ok("4294967295", (struct imap_range[]){{4294967295u, 4294967295u}}, 1);
    seq_ok("4294967294:2", (struct imap_range[]){{2, 4294967294u}}, 1);
    seq_ok("10,10,1:2", (struct imap_range[]){{10, 10}, {10, 10}, {1, 2}}, 3);

    seq_bad("");
    seq_bad("0");
    seq_bad("0:5");
    seq_bad("1:0");
    seq_bad("01");
    seq_bad("1:");
    seq_bad(":1");
    seq_bad(",1");
    seq_bad("1,");
    seq_bad("1,,2");
    seq_bad("1:2:3");
    seq_bad("1 2");
    seq_bad("1,2 ");
    seq_bad("-1");
    seq_bad("+1");
    seq_bad("$");
    seq_bad("1:$");
    seq_bad("**");
    seq_bad("1*");
    seq_bad("4294967296");
    seq_bad("1:4294967296");
    seq_bad("99999999999999999999999999");
    seq_bad("a");

    /* IMAP_SEQSET_MAX_RANGES ranges, then one more (refused before allocating) */
    struct sbuf sb = SBUF_INIT(SBUF_NO_MAX);
    for (int i = 0; i < IMAP_SEQSET_MAX_RANGES; i++)
        sbuf_printf(&sb, "%s%d", i ? "," : "", i + 1);
    struct imap_seqset set;
    assert_int_equal(imap_seqset_parse(sb.data, &set), 0);
    assert_int_equal(set.nranges, IMAP_SEQSET_MAX_RANGES);
    assert_true(imap_seqset_contains(&set, IMAP_SEQSET_MAX_RANGES, 1));
    imap_seqset_free(&set);
    sbuf_appends(&sb, ",1");
    seq_bad(sb.data);
    sbuf_free(&sb);
}

static void test_seqset_contains(void **state)
{
    struct imap_seqset set;
    assert_int_equal(imap_seqset_parse("2,4:6,9:*", &set), 0);
    for (uint32_t n = 1; n <= 12; n++)
        assert_int_equal(imap_seqset_contains(&set, n, 12), n == 2 || (n >= 4 && n <= 6) || n >= 9);
    /* "9:*" with only 7 messages is 7:9 */
    assert_true(imap_seqset_contains(&set, 7, 7));
    assert_true(imap_seqset_contains(&set, 8, 7));
    assert_false(imap_seqset_contains(&set, 10, 7));
    assert_false(imap_seqset_contains(&set, 3, 7));
    imap_seqset_free(&set);

    assert_int_equal(imap_seqset_parse("*", &set), 0);
    assert_true(imap_seqset_contains(&set, 5, 5));
    assert_false(imap_seqset_contains(&set, 4, 5));
    imap_seqset_free(&set);

    assert_int_equal(imap_seqset_parse("*:3", &set), 0);
    assert_true(imap_seqset_contains(&set, 3, 10));
    assert_true(imap_seqset_contains(&set, 10, 10));
    assert_false(imap_seqset_contains(&set, 2, 10));
    assert_true(imap_seqset_contains(&set, 2, 2)); /* 2:3 */
    imap_seqset_free(&set);

    struct imap_seqset empty = {NULL, 0};
    assert_false(imap_seqset_contains(&empty, 1, 1));
    imap_seqset_free(&empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_atoms),
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_line_ends),
        cmocka_unit_test(test_sink),
        cmocka_unit_test(test_sink_streams),
        cmocka_unit_test(test_limit_line),
        cmocka_unit_test(test_limit_literal),
        cmocka_unit_test(test_skip_literals),
        cmocka_unit_test(test_limit_depth),
        cmocka_unit_test(test_limit_args),
        cmocka_unit_test(test_api),
        cmocka_unit_test(test_arg_helpers),
        cmocka_unit_test(test_seqset),
        cmocka_unit_test(test_seqset_contains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

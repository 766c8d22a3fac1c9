/* test_mime.c - unit tests for mime.c (MIME tree, ENVELOPE, BODYSTRUCTURE, SEARCH text)
 *
 * The renderings are compared byte for byte with what they must be: the RFC 3501
 * examples, and for the other messages the output Dovecot 2.3 gives for the same message
 * (lower-cased types and the raw-octet sizes are where we differ on purpose). Then the
 * part numbering of RFC 3501 6.4.5, HEADER.FIELDS, RFC 2047 and RFC 2231 decoding, body
 * text decoding, dates, and malformed input: every prefix of a complex message (the
 * byte-at-a-time test), every single-byte corruption of it, and messages built to be
 * expensive (1000-deep nesting, 100000 parts, pathological boundaries), whose limits and
 * invariants are checked.
 *
 * SECURITY: the rendered strings go into IMAP responses; check_imap() verifies that
 * every output here is well formed (balanced, quoted strings clean, literal lengths
 * right), whatever the input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mime.h"
#include "sbuf.h"
#include "xalloc.h"

/* ---- helpers ----------------------------------------------------------------------- */

/* True if s[0..n) is a sequence of IMAP tokens with balanced parentheses: quoted strings
 * without CR, LF, NUL or 8-bit octets, literals whose length is right, atoms. */
static bool check_imap(const char *s, size_t n)
{
    long depth = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '(') {
            depth++;
            i++;
        } else if (c == ')') {
            if (--depth < 0) return false;
            i++;
        } else if (c == '"') {
            i++;
            while (i < n && s[i] != '"') {
                unsigned char q = (unsigned char)s[i];
                if (q == '\r' || q == '\n' || q == 0 || q >= 0x80) return false;
                if (q == '\\') {
                    if (i + 1 >= n || (s[i + 1] != '"' && s[i + 1] != '\\')) return false;
                    i++;
                }
                i++;
            }
            if (i >= n) return false;
            i++;
        } else if (c == '{') {
            size_t len = 0, j = i + 1;
            while (j < n && s[j] >= '0' && s[j] <= '9')
                len = len * 10 + (size_t)(s[j++] - '0');
            if (j + 3 > n || s[j] != '}' || s[j + 1] != '\r' || s[j + 2] != '\n') return false;
            j += 3;
            if (n - j < len || memchr(s + j, '\0', len) != NULL) return false;
            i = j + len;
        } else if (c == '\r' || c == '\n' || c == 0 || c >= 0x80) {
            return false;
        } else {
            i++;
        }
    }
    return depth == 0;
}

static char *render_bs(const struct mime_message *m, const struct mime_part *p, bool ext)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    mime_bodystructure(m, p, ext, &out);
    assert_true(check_imap(sbuf_cstr(&out), out.len));
    return sbuf_steal(&out);
}

static char *render_env(const struct mime_message *m, const struct mime_part *p)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    mime_envelope(m, p, &out);
    assert_true(check_imap(sbuf_cstr(&out), out.len));
    return sbuf_steal(&out);
}

static void expect_bs(const char *msg, bool ext, const char *want)
{
    struct mime_message m;
    mime_parse(&m, msg, strlen(msg));
    char *got = render_bs(&m, &m.root, ext);
    assert_string_equal(got, want);
    free(got);
    mime_free(&m);
}

static void expect_env(const char *msg, const char *want)
{
    struct mime_message m;
    mime_parse(&m, msg, strlen(msg));
    char *got = render_env(&m, &m.root);
    assert_string_equal(got, want);
    free(got);
    mime_free(&m);
}

static unsigned count_lf(const char *s, size_t a, size_t b)
{
    unsigned n = 0;
    for (size_t i = a; i < b; i++)
        n += s[i] == '\n';
    return n;
}

/* Structural invariants of a parsed part; returns the depth of the deepest part. */
static unsigned check_part(const struct mime_message *m, const struct mime_part *p, size_t lo,
                           size_t hi, unsigned depth, size_t *count)
{
    (*count)++;
    assert_true(lo <= p->header_start);
    assert_true(p->header_start <= p->header_end);
    assert_int_equal(p->header_end, p->body_start);
    assert_true(p->body_start <= p->body_end);
    assert_true(p->body_end <= hi);
    assert_true(hi <= m->len);
    assert_int_equal(p->lines, count_lf(m->data, p->body_start, p->body_end));
    assert_non_null(p->type);
    assert_non_null(p->subtype);
    assert_true(p->nparams <= MIME_MAX_PARAMS);
    assert_true(p->ndisp_params <= MIME_MAX_PARAMS);
    if (strcmp(p->type, "multipart") == 0) assert_true(p->nchildren >= 1);
    if (p->is_message) assert_int_equal(p->nchildren, 1);
    unsigned deepest = depth;
    size_t prev_end = p->body_start;
    for (size_t i = 0; i < p->nchildren; i++) {
        const struct mime_part *c = &p->children[i];
        assert_true(c->header_start >= prev_end);
        prev_end = c->body_end;
        unsigned d = check_part(m, c, p->body_start, p->body_end, depth + 1, count);
        if (d > deepest) deepest = d;
    }
    return deepest;
}

static bool collect_text(const char *text, size_t len, void *ctx)
{
    sbuf_append(ctx, text, len);
    return false;
}

/* Parses, checks the invariants, and renders and extracts everything. */
static void exercise(const char *data, size_t len, size_t *nparts_r, unsigned *depth_r)
{
    struct mime_message m;
    mime_parse(&m, data, len);
    size_t count = 0;
    unsigned depth = check_part(&m, &m.root, 0, len, 0, &count);
    assert_int_equal(count, m.nparts);
    assert_true(m.nparts <= MIME_MAX_PARTS);
    assert_true(depth <= MIME_MAX_DEPTH);
    char *s = render_bs(&m, &m.root, true);
    free(s);
    s = render_bs(&m, &m.root, false);
    free(s);
    s = render_env(&m, &m.root);
    free(s);
    const char *names[] = {"subject", "from"};
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    mime_header_fields(&m, &m.root, names, 2, false, &out);
    mime_header_fields(&m, &m.root, names, 2, true, &out);
    mime_text_foreach(&m, collect_text, &out);
    sbuf_free(&out);
    free(mime_header_get(&m, &m.root, "subject", true));
    if (nparts_r) *nparts_r = m.nparts;
    if (depth_r) *depth_r = depth;
    mime_free(&m);
}

/* ---- RFC 3501 examples ---------------------------------------------------------------- */

static void test_rfc3501_fetch_example(void **state)
{
    /* RFC 3501 6.4.5 (FETCH response of message 12): a plain text message with a body
     * of 3028 octets in 92 lines. */
    struct sbuf msg = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&msg, "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
                       "From: Terry Gray <gray@cac.washington.edu>\r\n"
                       "Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
                       "To: imap@cac.washington.edu\r\n"
                       "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
                       "Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
                       "MIME-Version: 1.0\r\n"
                       "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
                       "Content-Transfer-Encoding: 7BIT\r\n\r\n");
    for (int i = 0; i < 91; i++)
        sbuf_appends(&msg, "0123456789012345678901234567890\r\n");
    sbuf_appends(&msg, "01234567890123456789012\r\n");

    struct mime_message m;
    mime_parse(&m, msg.data, msg.len);
    char *env = render_env(&m, &m.root);
    /* the RFC's example has a space between the two cc addresses, which its own
     * grammar (env-cc = "(" 1*address ")") does not allow */
    assert_string_equal(env, "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" "
                             "\"IMAP4rev1 WG mtg summary and minutes\" "
                             "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
                             "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
                             "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
                             "((NIL NIL \"imap\" \"cac.washington.edu\")) "
                             "((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")"
                             "(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL "
                             "\"<B27397-0100000@cac.washington.edu>\")");
    free(env);
    char *body = render_bs(&m, &m.root, false);
    assert_string_equal(body, "(\"text\" \"plain\" (\"charset\" \"US-ASCII\") NIL NIL \"7BIT\" "
                              "3028 92)");
    free(body);
    mime_free(&m);
    sbuf_free(&msg);
}

static void test_rfc3501_bodystructure_example(void **state)
{
    /* RFC 3501 7.4.2: (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)
     * ("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff")
     * "<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73)
     * "MIXED") */
    struct sbuf msg = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&msg, "From: Terry Gray <gray@cac.washington.edu>\r\n"
                       "MIME-Version: 1.0\r\n"
                       "Content-Type: MULTIPART/MIXED; BOUNDARY=\"----=_b\"\r\n\r\n"
                       "This is a multi-part message in MIME format.\r\n"
                       "------=_b\r\n"
                       "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
                       "Content-Transfer-Encoding: 7BIT\r\n\r\n");
    /* 1152 octets, 23 line ends (the CRLF before the delimiter is not the part's) */
    for (int i = 0; i < 23; i++)
        sbuf_appends(&msg, "0123456789012345678901234567890123456789012345\r\n");
    for (int i = 0; i < 1152 - 23 * 48; i++)
        sbuf_putc(&msg, 'x');
    sbuf_appends(&msg, "\r\n------=_b\r\n"
                       "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n"
                       "Content-ID: <960723163407.20117h@cac.washington.edu>\r\n"
                       "Content-Description: Compiler diff\r\n"
                       "Content-Transfer-Encoding: BASE64\r\n\r\n");
    for (int i = 0; i < 73; i++)
        sbuf_appends(&msg, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJz\r\n");
    for (int i = 0; i < 4554 - 73 * 62; i++)
        sbuf_putc(&msg, 'Q');
    sbuf_appends(&msg, "\r\n------=_b--\r\nepilogue\r\n");

    struct mime_message m;
    mime_parse(&m, msg.data, msg.len);
    char *body = render_bs(&m, &m.root, false);
    assert_string_equal(
        body, "((\"text\" \"plain\" (\"charset\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23)"
              "(\"text\" \"plain\" (\"charset\" \"US-ASCII\" \"name\" \"cc.diff\") "
              "\"<960723163407.20117h@cac.washington.edu>\" \"Compiler diff\" \"BASE64\" 4554 "
              "73) \"mixed\")");
    free(body);
    char *ext = render_bs(&m, &m.root, true);
    assert_string_equal(
        ext, "((\"text\" \"plain\" (\"charset\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23 NIL NIL "
             "NIL NIL)(\"text\" \"plain\" (\"charset\" \"US-ASCII\" \"name\" \"cc.diff\") "
             "\"<960723163407.20117h@cac.washington.edu>\" \"Compiler diff\" \"BASE64\" 4554 "
             "73 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"----=_b\") NIL NIL NIL)");
    free(ext);
    assert_int_equal(m.nparts, 3);
    mime_free(&m);
    sbuf_free(&msg);
}

/* ---- simple messages ------------------------------------------------------------------ */

static void test_simple_text(void **state)
{
    const char *msg = "Subject: hi\r\nFrom: \"Fred Foo\" <fred@example.com>\r\n\r\nhello\r\nworld";
    /* Dovecot 2.3: identical */
    expect_bs(
        msg, true,
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 1 NIL NIL NIL NIL)");
    expect_bs(msg, false, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 1)");
    expect_env(msg, "(NIL \"hi\" ((\"Fred Foo\" NIL \"fred\" \"example.com\")) "
                    "((\"Fred Foo\" NIL \"fred\" \"example.com\")) "
                    "((\"Fred Foo\" NIL \"fred\" \"example.com\")) NIL NIL NIL NIL NIL)");

    struct mime_message m;
    mime_parse(&m, msg, strlen(msg));
    assert_int_equal(m.nparts, 1);
    assert_int_equal(m.root.header_start, 0);
    assert_int_equal(m.root.body_start, strlen(msg) - 12);
    assert_int_equal(m.root.header_end, m.root.body_start);
    assert_ptr_equal(mime_find(&m, ""), &m.root);
    assert_ptr_equal(mime_find(&m, "1"), &m.root);
    assert_null(mime_find(&m, "2"));
    assert_null(mime_find(&m, "1.1"));
    assert_null(mime_find(&m, "0"));
    char *v = mime_header_raw(&m, &m.root, "SUBJECT");
    assert_string_equal(v, "hi");
    free(v);
    assert_null(mime_header_raw(&m, &m.root, "to"));
    assert_null(mime_header_get(&m, &m.root, "to", false));
    mime_free(&m);

    /* empty message; a message that is only a header; one that is only a body */
    expect_bs(
        "", true,
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)");
    expect_env("", "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
    expect_bs("Subject: nosep\r\nFrom: x@y", false,
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
    expect_env("Subject: nosep\r\nFrom: x@y",
               "(NIL \"nosep\" ((NIL NIL \"x\" \"y\")) ((NIL NIL \"x\" \"y\")) "
               "((NIL NIL \"x\" \"y\")) NIL NIL NIL NIL NIL)");
    expect_bs("\r\nbody only", false,
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0)");
}

static void test_content_fields(void **state)
{
    /* comments, odd case, RFC 2045 fields, Content-Location folded (Dovecot keeps the
     * blank of the fold) */
    const char *msg = "Subject: x\r\n"
                      "Content-Type: Text/HTML; CharSet=\"UTF-8\" (comment); format=flowed (x)\r\n"
                      "Content-Transfer-Encoding: quoted-printable (qp)\r\n"
                      "Content-ID:  <cid@x> \r\n"
                      "Content-Description: =?utf-8?q?d?=  desc\r\n"
                      "Content-Language: (c) en-US , fr\r\n"
                      "Content-Location: http://x.example/\r\n a\r\n"
                      "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
                      "Content-Disposition: INLINE; filename=\"a.txt\";\r\n"
                      " creation-date=\"Mon, 1 Jan 2024 00:00:00 +0000\"\r\n\r\nA=3D\r\n";
    expect_bs(msg, true,
              "(\"text\" \"html\" (\"charset\" \"UTF-8\" \"format\" \"flowed\") \"<cid@x>\" "
              "\"=?utf-8?q?d?=  desc\" \"quoted-printable\" 6 1 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" "
              "(\"inline\" (\"filename\" \"a.txt\" \"creation-date\" "
              "\"Mon, 1 Jan 2024 00:00:00 +0000\")) (\"en-US\" \"fr\") \"http://x.example/ a\")");

    struct mime_message m;
    mime_parse(&m, msg, strlen(msg));
    assert_string_equal(m.root.type, "text");
    assert_string_equal(m.root.subtype, "html");
    assert_string_equal(m.root.encoding, "quoted-printable");
    assert_string_equal(m.root.disposition, "inline");
    assert_int_equal(m.root.nlanguages, 2);
    assert_string_equal(m.root.params[0].name, "charset");
    assert_string_equal(m.root.params[0].value, "UTF-8");
    mime_free(&m);

    /* a bad Content-Type is text/plain; the first of two Content-Types counts */
    expect_bs("Content-Type: text\r\n\r\nA", false,
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)");
    expect_bs("Content-Type: /plain\r\n\r\nA", false,
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)");
    expect_bs("Content-Type: image/png\r\nContent-Type: text/html\r\n\r\nA", false,
              "(\"image\" \"png\" NIL NIL NIL \"7bit\" 1)");
    /* unterminated quoted string and comment run to the end of the field */
    expect_bs("Content-Type: text/plain; name=\"abc\r\nContent-ID: (<x@y>\r\n\r\n", false,
              "(\"text\" \"plain\" (\"name\" \"abc\" \"charset\" \"us-ascii\") \"(<x@y>\" NIL "
              "\"7bit\" 0 0)");
    expect_bs("Content-Type: text/plain (unterminated; charset=utf-8\r\n\r\n", false,
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
    /* junk between parameters, unquoted values with '=' (Outlook boundaries) */
    expect_bs("Content-Type: text/plain junk; a=b=c;;; =x; c\r\n\r\n", false,
              "(\"text\" \"plain\" (\"a\" \"b=c\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
}

/* ---- multipart -------------------------------------------------------------------------- */

static const char mixed_msg[] = "From: a@example.com\r\n"
                                "Subject: mixed\r\n"
                                "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
                                "preamble\r\n"
                                "--b1\r\n"
                                "Content-Type: multipart/alternative; boundary=b2\r\n\r\n"
                                "--b2\r\n"
                                "Content-Type: text/plain; charset=iso-8859-1\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                                "Caf=E9 =\r\n"
                                "au lait\r\n"
                                "--b2\r\n"
                                "Content-Type: text/html; charset=utf-8\r\n\r\n"
                                "<p>Caf\xc3\xa9</p>\r\n"
                                "--b2--\r\n"
                                "\r\n"
                                "--b1\r\n"
                                "Content-Type: application/pdf; name=\"doc.pdf\"\r\n"
                                "Content-Transfer-Encoding: base64\r\n"
                                "Content-Disposition: attachment; filename=\"doc.pdf\"\r\n\r\n"
                                "JVBERi0xLjQK\r\n"
                                "--b1\r\n"
                                "Content-Type: text/plain; name=notes.txt\r\n"
                                "Content-Transfer-Encoding: base64\r\n"
                                "Content-Disposition: attachment; filename=notes.txt\r\n\r\n"
                                "bm90ZXMgaGVyZQ==\r\n"
                                "--b1--\r\n"
                                "epilogue\r\n";

static void test_multipart_mixed(void **state)
{
    const char *want =
        "(((\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL \"quoted-printable\" 17 1 "
        "NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 0 NIL "
        "NIL NIL NIL) \"alternative\" (\"boundary\" \"b2\") NIL NIL NIL)"
        "(\"application\" \"pdf\" (\"name\" \"doc.pdf\") NIL NIL \"base64\" 12 NIL "
        "(\"attachment\" (\"filename\" \"doc.pdf\")) NIL NIL)"
        "(\"text\" \"plain\" (\"name\" \"notes.txt\" \"charset\" \"us-ascii\") NIL NIL "
        "\"base64\" 16 0 NIL (\"attachment\" (\"filename\" \"notes.txt\")) NIL NIL) "
        "\"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)";
    expect_bs(mixed_msg, true, want);
    expect_bs(mixed_msg, false,
              "(((\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL \"quoted-printable\" "
              "17 1)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 0) "
              "\"alternative\")(\"application\" \"pdf\" (\"name\" \"doc.pdf\") NIL NIL "
              "\"base64\" 12)(\"text\" \"plain\" (\"name\" \"notes.txt\" \"charset\" "
              "\"us-ascii\") NIL NIL \"base64\" 16 0) \"mixed\")");

    struct mime_message m;
    mime_parse(&m, mixed_msg, sizeof(mixed_msg) - 1);
    assert_int_equal(m.nparts, 6);
    const struct mime_part *p1 = mime_find(&m, "1");
    assert_ptr_equal(p1, &m.root.children[0]);
    assert_string_equal(p1->subtype, "alternative");
    const struct mime_part *p11 = mime_find(&m, "1.1");
    assert_non_null(p11);
    assert_memory_equal(mixed_msg + p11->body_start, "Caf=E9 =\r\nau lait", 17);
    assert_int_equal(p11->body_end - p11->body_start, 17);
    assert_string_equal(mime_find(&m, "1.2")->subtype, "html");
    assert_null(mime_find(&m, "1.3"));
    assert_string_equal(mime_find(&m, "2")->subtype, "pdf");
    assert_memory_equal(mixed_msg + mime_find(&m, "2")->body_start, "JVBERi0xLjQK\r\n--b1", 18);
    assert_string_equal(mime_find(&m, "3")->subtype, "plain");
    assert_null(mime_find(&m, "4"));
    assert_null(mime_find(&m, "2.1"));
    assert_null(mime_find(&m, "1."));
    assert_null(mime_find(&m, ".1"));
    assert_null(mime_find(&m, "01"));
    assert_null(mime_find(&m, "1..1"));
    assert_null(mime_find(&m, "1x"));
    assert_null(mime_find(&m, "99999999999999999999999"));
    /* MIME header of part 2 */
    const struct mime_part *p2 = mime_find(&m, "2");
    assert_memory_equal(mixed_msg + p2->header_start, "Content-Type: application/pdf", 29);
    assert_memory_equal(mixed_msg + p2->header_end - 5, "\"\r\n\r\n", 5);

    /* the SEARCH text of every text/ part: QP undone and Latin-1 converted, base64 undone */
    struct sbuf text = SBUF_INIT(SBUF_NO_MAX);
    mime_text_foreach(&m, collect_text, &text);
    assert_string_equal(sbuf_cstr(&text), "Caf\xc3\xa9 au lait<p>Caf\xc3\xa9</p>notes here");
    sbuf_free(&text);
    mime_free(&m);
}

static void test_multipart_boundaries(void **state)
{
    /* transport padding after the delimiter, the CRLF before a delimiter belongs to it,
     * an empty part, a delimiter right at the start of the body, no preamble */
    const char *msg = "Content-Type: multipart/mixed; boundary=\"a b\"\r\n\r\n"
                      "--a b  \t\r\n\r\none\r\n--a b\r\n--a b\r\n\r\n\r\n--a b--  \r\n";
    struct mime_message m;
    mime_parse(&m, msg, strlen(msg));
    assert_int_equal(m.root.nchildren, 3);
    const struct mime_part *c = m.root.children;
    assert_int_equal(c[0].body_end - c[0].body_start, 3);
    assert_memory_equal(msg + c[0].body_start, "one", 3);
    assert_int_equal(c[1].body_end, c[1].body_start);
    assert_int_equal(c[2].header_end - c[2].header_start, 2);
    assert_int_equal(c[2].body_end - c[2].body_start, 0);
    mime_free(&m);

    /* "--b1x" is not a delimiter for "b1"; "--b1--x" closes */
    msg = "Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n\r\n--b1x\r\n--b1--x\r\nepi";
    mime_parse(&m, msg, strlen(msg));
    assert_int_equal(m.root.nchildren, 1);
    assert_memory_equal(msg + m.root.children[0].body_start, "--b1x", 5);
    assert_int_equal(m.root.children[0].body_end - m.root.children[0].body_start, 5);
    mime_free(&m);

    /* the final boundary is missing: the last part runs to the end */
    msg = "Subject: x\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nunterminated "
          "part\r\n";
    expect_bs(msg, true,
              "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 19 1 NIL NIL NIL "
              "NIL) \"mixed\" (\"boundary\" \"x\") NIL NIL NIL)");
    /* the boundary is never found, or there is none: one empty text/plain part (Dovecot) */
    expect_bs("Content-Type: multipart/alternative; boundary=b2\r\n\r\nnever found\r\n", true,
              "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL "
              "NIL) \"alternative\" (\"boundary\" \"b2\") NIL NIL NIL)");
    expect_bs("Content-Type: multipart/alternative\r\n\r\n--\r\n", false,
              "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) "
              "\"alternative\")");
    mime_parse(&m, "Content-Type: multipart/mixed\r\n\r\nx", 33);
    assert_non_null(mime_find(&m, "1"));
    assert_int_equal(mime_find(&m, "1")->body_end - mime_find(&m, "1")->body_start, 0);
    mime_free(&m);

    /* the CRLF before a delimiter is the delimiter's, even when it is the empty line
     * that would end a header: this part has a header and no body */
    msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html"
          "\r\n\r\n--b\r\nX: y\r\n--b--\r\n";
    mime_parse(&m, msg, strlen(msg));
    assert_int_equal(m.root.nchildren, 2);
    c = m.root.children;
    assert_memory_equal(msg + c[0].header_start, "Content-Type: text/html\r\n", 25);
    assert_int_equal(c[0].header_end - c[0].header_start, 25);
    assert_int_equal(c[0].body_end, c[0].body_start);
    assert_string_equal(c[0].subtype, "html");
    assert_int_equal(c[1].header_end - c[1].header_start, 4);
    assert_int_equal(c[1].body_end, c[1].body_start);
    mime_free(&m);

    /* a nested multipart that reuses its parent's boundary (Outlook Express for Mac)
     * parses as Dovecot parses it */
    msg = "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
          "Content-Type: multipart/alternative; boundary=o\r\n\r\n--o\r\n"
          "Content-Type: text/plain\r\n\r\nA\r\n--o\r\nContent-Type: text/html\r\n\r\nB\r\n"
          "--o--\r\n\r\n--o\r\nContent-Type: image/gif\r\n\r\nGIF\r\n--o--\r\n";
    expect_bs(msg, false,
              "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)"
              "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) "
              "\"alternative\")(\"image\" \"gif\" NIL NIL NIL \"7bit\" 3) \"mixed\")");

    /* an inner multipart without its close delimiter ends at the outer boundary */
    msg = "Subject: a\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
          "Content-Type: multipart/mixed; boundary=y\r\n\r\n--y\r\n\r\ninner1\r\n--x\r\n\r\n"
          "outer2\r\n--x--\r\n";
    expect_bs(msg, false,
              "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0) \"mixed\")"
              "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0) \"mixed\")");
    /* ... even when the inner boundary is a prefix of the outer one */
    msg = "Content-Type: multipart/mixed; boundary=xx\r\n\r\n--xx\r\n"
          "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\ninner\r\n--xx\r\n\r\n"
          "outer2\r\n--xx--\r\n";
    mime_parse(&m, msg, strlen(msg));
    assert_int_equal(m.root.nchildren, 2);
    assert_int_equal(m.root.children[0].nchildren, 1);
    assert_memory_equal(msg + mime_find(&m, "1.1")->body_start, "inner", 5);
    assert_int_equal(mime_find(&m, "1.1")->body_end - mime_find(&m, "1.1")->body_start, 5);
    mime_free(&m);
}

static void test_bare_lf(void **state)
{
    const char *msg = "Subject: lf\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
                      "Content-Type: text/plain; charset=\"iso-8859-1\"; format=flowed\n\n"
                      "bare\nlf\n--b--\n";
    expect_bs(msg, false,
              "((\"text\" \"plain\" (\"charset\" \"iso-8859-1\" \"format\" \"flowed\") NIL NIL "
              "\"7bit\" 7 1) \"mixed\")");
    struct mime_message m;
    mime_parse(&m, msg, strlen(msg));
    const char *names[] = {"subject"};
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    mime_header_fields(&m, &m.root, names, 1, false, &out);
    assert_string_equal(sbuf_cstr(&out), "Subject: lf\r\n\r\n");
    sbuf_free(&out);
    assert_int_equal(m.root.header_end, strlen("Subject: lf\nContent-Type: multipart/mixed; "
                                               "boundary=b\n\n"));
    mime_free(&m);
}

/* ---- message/rfc822 -------------------------------------------------------------------- */

static const char rfc822_msg[] = "From: outer@example.com\r\n"
                                 "Subject: fwd\r\n"
                                 "Content-Type: multipart/mixed; boundary=\"==b==\"\r\n\r\n"
                                 "--==b==\r\n"
                                 "Content-Type: text/plain\r\n\r\n"
                                 "A\r\n"
                                 "--==b==\r\n"
                                 "Content-Type: message/rfc822\r\n\r\n"
                                 "From: x@y\r\n"
                                 "Subject: inner\r\n"
                                 "Content-Type: multipart/alternative; boundary=alt\r\n\r\n"
                                 "--alt\r\n"
                                 "Content-Type: text/plain\r\n\r\n"
                                 "plain\r\n"
                                 "--alt\r\n"
                                 "Content-Type: text/html\r\n\r\n"
                                 "<b>html</b>\r\n"
                                 "--alt--\r\n"
                                 "\r\n"
                                 "--==b==--";

static void test_message_rfc822(void **state)
{
    /* Dovecot 2.3: identical */
    expect_bs(rfc822_msg, true,
              "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL "
              "NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 178 (NIL \"inner\" ((NIL NIL \"x\" "
              "\"y\")) ((NIL NIL \"x\" \"y\")) ((NIL NIL \"x\" \"y\")) NIL NIL NIL NIL NIL) "
              "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL "
              "NIL)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0 NIL NIL "
              "NIL NIL) \"alternative\" (\"boundary\" \"alt\") NIL NIL NIL) 13 NIL NIL NIL NIL) "
              "\"mixed\" (\"boundary\" \"==b==\") NIL NIL NIL)");

    struct mime_message m;
    mime_parse(&m, rfc822_msg, sizeof(rfc822_msg) - 1);
    assert_int_equal(m.nparts, 6);
    const struct mime_part *p2 = mime_find(&m, "2");
    assert_non_null(p2);
    assert_true(p2->is_message);
    assert_int_equal(p2->nchildren, 1);
    const struct mime_part *enc = &p2->children[0];
    assert_int_equal(enc->header_start, p2->body_start);
    assert_int_equal(enc->body_end, p2->body_end);
    /* 2.1 and 2.2 are the parts of the encapsulated multipart */
    assert_ptr_equal(mime_find(&m, "2.1"), &enc->children[0]);
    assert_ptr_equal(mime_find(&m, "2.2"), &enc->children[1]);
    assert_null(mime_find(&m, "2.3"));
    assert_null(mime_find(&m, "2.1.1")); /* 2.1 is a text/plain body part */
    assert_null(mime_find(&m, "1.1"));
    assert_memory_equal(rfc822_msg + mime_find(&m, "2.2")->body_start, "<b>html</b>", 11);

    /* ENVELOPE of the part or of its encapsulated message: the same */
    const char *want = "(NIL \"inner\" ((NIL NIL \"x\" \"y\")) ((NIL NIL \"x\" \"y\")) ((NIL NIL "
                       "\"x\" \"y\")) NIL NIL NIL NIL NIL)";
    char *e = render_env(&m, p2);
    assert_string_equal(e, want);
    free(e);
    e = render_env(&m, enc);
    assert_string_equal(e, want);
    free(e);
    /* HEADER.FIELDS of the encapsulated message */
    const char *names[] = {"SUBJECT"};
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    mime_header_fields(&m, enc, names, 1, false, &out);
    assert_string_equal(sbuf_cstr(&out), "Subject: inner\r\n\r\n");
    sbuf_reset(&out);
    /* MIME header of part 2 */
    mime_header_fields(&m, p2, names, 1, true, &out);
    assert_string_equal(sbuf_cstr(&out), "Content-Type: message/rfc822\r\n\r\n");
    sbuf_free(&out);
    char *s = mime_header_get(&m, enc, "subject", false);
    assert_string_equal(s, "inner");
    free(s);
    mime_free(&m);

    /* a message that is itself message/rfc822 around a plain text message */
    const char *wrap = "Subject: outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\n"
                       "text\r\n";
    mime_parse(&m, wrap, strlen(wrap));
    assert_ptr_equal(mime_find(&m, "1"), &m.root);
    assert_ptr_equal(mime_find(&m, "1.1"), &m.root.children[0]);
    assert_null(mime_find(&m, "1.2"));
    assert_null(mime_find(&m, "2"));
    e = render_env(&m, &m.root);
    assert_string_equal(e, "(NIL \"outer\" NIL NIL NIL NIL NIL NIL NIL NIL)");
    free(e);
    e = render_env(&m, &m.root.children[0]);
    assert_string_equal(e, "(NIL \"in\" NIL NIL NIL NIL NIL NIL NIL NIL)");
    free(e);
    mime_free(&m);

    /* a base64 message/rfc822 is parsed as a message all the same (Dovecot does) */
    expect_bs("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
              "U3ViamVjdDogaGkNCg0KYm9keQ0K",
              false,
              "(\"message\" \"rfc822\" NIL NIL NIL \"base64\" 28 (NIL NIL NIL NIL NIL NIL NIL NIL "
              "NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) 0)");
    /* message/global is a message too (RFC 9051) */
    expect_bs("Content-Type: message/global\r\n\r\nSubject: g\r\n\r\nx", false,
              "(\"message\" \"global\" NIL NIL NIL \"7bit\" 15 (NIL \"g\" NIL NIL NIL NIL NIL "
              "NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) "
              "2)");
}

static void test_digest(void **state)
{
    const char *msg = "From: a\r\nSubject: \r\nTo: <>, @, a@, @b, \"q\"@\r\n"
                      "Content-Type: message/rfc822\r\n\r\n"
                      "Subject: inner\r\nContent-Type: multipart/digest; boundary=\"d d\"\r\n\r\n"
                      "--d d\r\n\r\nSubject: m1\r\n\r\nbody1\r\n--d d  \r\n"
                      "Content-Type: text/plain\r\n\r\nx\r\n--d d--\r\n";
    /* Dovecot 2.3: identical */
    expect_bs(msg, true,
              "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 146 (NIL \"inner\" NIL NIL NIL NIL NIL "
              "NIL NIL NIL) ((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 20 (NIL \"m1\" NIL NIL "
              "NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
              "\"7bit\" 5 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" "
              "\"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL) \"digest\" (\"boundary\" \"d "
              "d\") NIL NIL NIL) 13 NIL NIL NIL NIL)");
    expect_env(msg,
               "(NIL \"\" ((NIL NIL \"a\" \"MISSING_DOMAIN\")) ((NIL NIL \"a\" "
               "\"MISSING_DOMAIN\")) ((NIL NIL \"a\" \"MISSING_DOMAIN\")) ((NIL NIL "
               "\"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL NIL \"MISSING_MAILBOX\" "
               "\"MISSING_DOMAIN\")(NIL NIL \"a\" \"MISSING_DOMAIN\")(NIL NIL "
               "\"MISSING_MAILBOX\" \"b\")(NIL NIL \"q\" \"MISSING_DOMAIN\")) NIL NIL NIL NIL)");

    struct mime_message m;
    mime_parse(&m, msg, strlen(msg));
    /* 1 is the encapsulated digest's body: 1.1 its first part (a message), 1.1.1 that
     * message's text, 1.2 the text/plain part */
    const struct mime_part *p = mime_find(&m, "1.1");
    assert_non_null(p);
    assert_true(p->is_message);
    assert_ptr_equal(mime_find(&m, "1.1.1"), &p->children[0]);
    assert_string_equal(mime_find(&m, "1.2")->type, "text");
    assert_null(mime_find(&m, "1.2.1"));
    mime_free(&m);
}

/* ---- parameters --------------------------------------------------------------------- */

static void test_rfc2231(void **state)
{
    const char *msg =
        "Content-Type: application/octet-stream; name*0*=utf-8''%E2%82; name*1*=%AC.txt;\r\n"
        " title*=us-ascii'en'This%20is; a=\"q\\\"x\"; latin*=iso-8859-1''%E4%\r\n"
        "Content-Disposition: attachment; filename*0=\"long \"; filename*1=\"name.txt\";\r\n"
        " filename=\"fallback\"; x*1=lost; y*=''; z*0*='lang'%41; z*2=gap\r\n\r\nxx\r\n";
    struct mime_message m;
    mime_parse(&m, msg, strlen(msg));
    const struct mime_part *p = &m.root;
    assert_int_equal(p->nparams, 4);
    assert_string_equal(p->params[0].name, "name");
    assert_string_equal(p->params[0].value, "\xe2\x82\xac.txt");
    assert_string_equal(p->params[1].name, "title");
    assert_string_equal(p->params[1].value, "This is");
    assert_string_equal(p->params[2].name, "a");
    assert_string_equal(p->params[2].value, "q\"x");
    assert_string_equal(p->params[3].name, "latin");
    assert_string_equal(p->params[3].value, "\xc3\xa4%");
    assert_int_equal(p->ndisp_params, 3);
    assert_string_equal(p->disp_params[0].name, "filename");
    assert_string_equal(p->disp_params[0].value, "long name.txt");
    assert_string_equal(p->disp_params[1].name, "y");
    assert_string_equal(p->disp_params[1].value, "");
    assert_string_equal(p->disp_params[2].name, "z");
    assert_string_equal(p->disp_params[2].value, "A");
    /* 8-bit values go out in RFC 2231 form, as Dovecot passes them through */
    char *s = render_bs(&m, p, true);
    assert_string_equal(s,
                        "(\"application\" \"octet-stream\" (\"name*\" \"utf-8''%E2%82%AC.txt\" "
                        "\"title\" \"This is\" \"a\" \"q\\\"x\" \"latin*\" \"utf-8''%C3%A4%25\") "
                        "NIL NIL \"7bit\" 4 NIL (\"attachment\" (\"filename\" \"long name.txt\" "
                        "\"y\" \"\" \"z\" \"A\")) NIL NIL)");
    free(s);
    mime_free(&m);

    /* raw 8-bit parameter: valid UTF-8 is re-encoded, anything else is a literal */
    expect_bs("Content-Type: text/plain; name=\"\xc3\xa4.txt\"; n2=\"\xe4\"\r\n\r\n", false,
              "(\"text\" \"plain\" (\"name*\" \"utf-8''%C3%A4.txt\" \"n2\" {1}\r\n\xe4 "
              "\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
    /* CR/LF smuggled through percent-encoding cannot reach the response raw */
    expect_bs("Content-Type: text/plain; a*=''x%0D%0A%00y\r\n\r\n", false,
              "(\"text\" \"plain\" (\"a*\" \"utf-8''x%0D%0Ay\" \"charset\" \"us-ascii\") NIL "
              "NIL \"7bit\" 0 0)");
}

static void test_param_limits(void **state)
{
    /* more than MIME_MAX_PARAMS parameters: the first ones are kept */
    struct sbuf msg = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&msg, "Content-Type: text/plain");
    for (int i = 0; i < 200; i++)
        sbuf_printf(&msg, "; p%d=%d", i, i);
    sbuf_appends(&msg, "\r\n\r\nbody");
    struct mime_message m;
    mime_parse(&m, msg.data, msg.len);
    assert_int_equal(m.root.nparams, MIME_MAX_PARAMS);
    assert_string_equal(m.root.params[0].name, "p0");
    mime_free(&m);

    /* an over-long boundary is dropped, and the multipart shows one empty part */
    sbuf_reset(&msg);
    sbuf_appends(&msg, "Content-Type: multipart/mixed; boundary=");
    for (int i = 0; i < 9000; i++)
        sbuf_putc(&msg, 'b');
    sbuf_appends(&msg, "\r\n\r\n--bbb\r\n\r\nx\r\n");
    mime_parse(&m, msg.data, msg.len);
    assert_int_equal(m.root.nparams, 0);
    assert_int_equal(m.root.nchildren, 1);
    assert_int_equal(m.root.children[0].body_end - m.root.children[0].body_start, 0);
    mime_free(&m);

    /* an over-long parameter name is dropped, a long type makes the type the default */
    sbuf_reset(&msg);
    sbuf_appends(&msg, "Content-Type: text/plain; ");
    for (int i = 0; i < 200; i++)
        sbuf_putc(&msg, 'n');
    sbuf_appends(&msg, "=v; ok=1\r\n\r\n");
    mime_parse(&m, msg.data, msg.len);
    assert_int_equal(m.root.nparams, 1);
    assert_string_equal(m.root.params[0].name, "ok");
    mime_free(&m);
    sbuf_free(&msg);
}

/* ---- header access and RFC 2047 ---------------------------------------------------- */

static void test_encoded_words(void **state)
{
    const char *v = "=?ISO-8859-1?Q?Caf=E9?= and =?UTF-8?B?w6k=?= =?UTF-8?B?w6k=?=";
    char *s = mime_decode_words(v, strlen(v));
    assert_string_equal(s, "Caf\xc3\xa9 and \xc3\xa9\xc3\xa9");
    free(s);
    /* adjacent words, folded between them, joined without the blanks */
    v = "=?utf-8?q?a?=\r\n =?utf-8?q?b?=\t=?iso-8859-1?q?_c?=";
    s = mime_decode_words(v, strlen(v));
    assert_string_equal(s, "ab c");
    free(s);
    /* a multibyte character split over two words */
    v = "=?utf-8?B?4oI=?= =?utf-8?B?rA==?=";
    s = mime_decode_words(v, strlen(v));
    assert_string_equal(s, "\xe2\x82\xac");
    free(s);
    /* not encoded-words: left as they are */
    const char *raw[] = {"=?utf-8?x?abc?=",
                         "=?utf-8?q?a b?=",
                         "=??q?abc?=",
                         "=?utf-8?q?abc",
                         "a =? b ?= c",
                         "=?",
                         "?="};
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        s = mime_decode_words(raw[i], strlen(raw[i]));
        assert_string_equal(s, raw[i]);
        free(s);
    }
    /* text between words keeps its blanks; words in text; RFC 2231 language suffix */
    v = "x =?utf-8?q?a?= y=?utf-8*en?Q?b?=z";
    s = mime_decode_words(v, strlen(v));
    assert_string_equal(s, "x a yb"
                           "z");
    free(s);
    /* unknown charset: the octets pass through; invalid bytes in a known one: U+FFFD */
    v = "=?x-unknown?q?=E9?= =?utf-16le?b?QQBCAA==?= =?shift_jis?b?gqA=?=";
    s = mime_decode_words(v, strlen(v));
    assert_string_equal(s, "\xe9"
                           "AB\xe3\x81\x82");
    free(s);
    v = "=?../../etc/passwd?q?x?=";
    s = mime_decode_words(v, strlen(v));
    assert_string_equal(s, "x");
    free(s);
    s = mime_decode_words("=?utf-8?q?nul=00byte?=", 22);
    assert_string_equal(s, "nulbyte");
    free(s);
    s = mime_decode_words(NULL, 0);
    assert_string_equal(s, "");
    free(s);

    const char *msg = "Subject: =?ISO-8859-1?Q?Caf=E9?=\r\n =?UTF-8?B?w6k=?=\r\n"
                      "X-Two: one\r\nx-two: =?utf-8?q?two?=\r\nX-8bit: \xc3\xa9t\xc3\xa9\r\n\r\n";
    struct mime_message m;
    mime_parse(&m, msg, strlen(msg));
    s = mime_header_get(&m, &m.root, "subject", false);
    assert_string_equal(s, "Caf\xc3\xa9\xc3\xa9");
    free(s);
    s = mime_header_get(&m, &m.root, "X-TWO", false);
    assert_string_equal(s, "one");
    free(s);
    s = mime_header_get(&m, &m.root, "x-two", true);
    assert_string_equal(s, "one\ntwo");
    free(s);
    s = mime_header_raw(&m, &m.root, "subject");
    assert_string_equal(s, "=?ISO-8859-1?Q?Caf=E9?=\r\n =?UTF-8?B?w6k=?=");
    free(s);
    s = mime_header_get(&m, &m.root, "x-8bit", false);
    assert_string_equal(s, "\xc3\xa9t\xc3\xa9");
    free(s);
    /* ENVELOPE sends encoded-words raw, and 8-bit as a literal */
    s = render_env(&m, &m.root);
    assert_string_equal(s, "(NIL \"=?ISO-8859-1?Q?Caf=E9?= =?UTF-8?B?w6k=?=\" NIL NIL NIL NIL NIL "
                           "NIL NIL NIL)");
    free(s);
    mime_free(&m);
    expect_env("From: Ab Cd <ab@x>\r\nSubject: \xe4\xf6 8bit\r\n\r\nbody",
               "(NIL {7}\r\n\xe4\xf6 8bit ((\"Ab Cd\" NIL \"ab\" \"x\")) ((\"Ab Cd\" NIL \"ab\" "
               "\"x\")) ((\"Ab Cd\" NIL \"ab\" \"x\")) NIL NIL NIL NIL NIL)");
}

static void test_header_fields(void **state)
{
    const char *msg = "From: a@b\r\nSubject: folded\r\n  line\r\nTO: c@d\nbad line\r\n"
                      "X-Last: 1";
    struct mime_message m;
    mime_parse(&m, msg, strlen(msg));
    const char *names[] = {"to", "subject", "missing"};
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    mime_header_fields(&m, &m.root, names, 3, false, &out);
    assert_string_equal(sbuf_cstr(&out), "Subject: folded\r\n  line\r\nTO: c@d\r\n\r\n");
    sbuf_reset(&out);
    mime_header_fields(&m, &m.root, names, 3, true, &out);
    assert_string_equal(sbuf_cstr(&out), "From: a@b\r\nbad line\r\nX-Last: 1\r\n\r\n");
    sbuf_reset(&out);
    mime_header_fields(&m, &m.root, names + 2, 1, false, &out);
    assert_string_equal(sbuf_cstr(&out), "\r\n");
    sbuf_reset(&out);
    mime_header_fields(&m, &m.root, NULL, 0, true, &out);
    assert_string_equal(sbuf_cstr(&out), "From: a@b\r\nSubject: folded\r\n  line\r\nTO: c@d\r\n"
                                         "bad line\r\nX-Last: 1\r\n\r\n");
    sbuf_free(&out);
    char *s = mime_header_get(&m, &m.root, "subject", false);
    assert_string_equal(s, "folded  line");
    free(s);
    s = mime_header_get(&m, &m.root, "x-last", false);
    assert_string_equal(s, "1");
    free(s);
    /* "Subject :" (obsolete blank before the colon) is still Subject */
    mime_free(&m);
    mime_parse(&m, "Subject : old\r\n\r\n", 17);
    s = mime_header_get(&m, &m.root, "subject", false);
    assert_string_equal(s, "old");
    free(s);
    mime_free(&m);
}

/* ---- ENVELOPE ------------------------------------------------------------------------- */

static void test_envelope_addresses(void **state)
{
    const char *msg = "Subject:   spaced subject   \r\n"
                      "From: fred@example.com (Fred Comment), \"john doe\"@example.com, user,\r\n"
                      " <@r1.example,@r2.example:bob@example.org>, Group: a@b.c, Bee <d@e.f>;,\r\n"
                      " undisclosed-recipients:;\r\n"
                      "To: John  Q.  Public <jqp@x.example>, \"Smith, J\\\"x\\\"\" <s@x>\r\n"
                      "Cc: =?utf-8?q?J=C3=B6rg?= <j@x>, [1.2.3.4]\r\n"
                      "Sender:\r\n"
                      "Reply-To: (nobody)\r\n"
                      "Bcc: empty:;\r\n"
                      "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
                      "Message-ID:  <B27397-0100000@Blurdybloop.example.com> \r\n"
                      "In-Reply-To: <a@b> (comment)\r\n\r\n";
    const char *from = "((\"Fred Comment\" NIL \"fred\" \"example.com\")(NIL NIL \"john doe\" "
                       "\"example.com\")(NIL NIL \"user\" \"MISSING_DOMAIN\")(NIL "
                       "\"@r1.example,@r2.example\" \"bob\" \"example.org\")(NIL NIL \"Group\" "
                       "NIL)(NIL NIL \"a\" \"b.c\")(\"Bee\" NIL \"d\" \"e.f\")(NIL NIL NIL NIL)"
                       "(NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))";
    struct sbuf want = SBUF_INIT(SBUF_NO_MAX);
    sbuf_printf(&want,
                "(\"Mon, 7 Feb 1994 21:52:25 -0800 (PST)\" \"spaced subject\" %s %s %s "
                "((\"John Q. Public\" NIL \"jqp\" \"x.example\")(\"Smith, J\\\"x\\\"\" NIL \"s\" "
                "\"x\")) ((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"x\")(NIL NIL \"MISSING_MAILBOX\" "
                "\"MISSING_DOMAIN\")) ((NIL NIL \"empty\" NIL)(NIL NIL NIL NIL)) \"<a@b> "
                "(comment)\" \"<B27397-0100000@Blurdybloop.example.com>\")",
                from, from, from);
    expect_env(msg, sbuf_cstr(&want));
    sbuf_free(&want);

    /* empty display names and local parts; every To: field counts (as in Dovecot) */
    expect_env("From: \"\" <a@b>, \"\"@c\r\nTo: x@y\r\nto: z@w\r\n\r\n",
               "(NIL NIL ((NIL NIL \"a\" \"b\")(NIL NIL \"MISSING_MAILBOX\" \"c\")) ((NIL NIL "
               "\"a\" \"b\")(NIL NIL \"MISSING_MAILBOX\" \"c\")) ((NIL NIL \"a\" \"b\")(NIL NIL "
               "\"MISSING_MAILBOX\" \"c\")) ((NIL NIL \"x\" \"y\")(NIL NIL \"z\" \"w\")) NIL NIL "
               "NIL NIL)");
    /* Sender and Reply-To of their own */
    expect_env("From: a@b\r\nSender: s@b\r\nReply-To: r@b, \"R 2\" <r2@b>\r\n\r\n",
               "(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"s\" \"b\")) ((NIL NIL \"r\" \"b\")"
               "(\"R 2\" NIL \"r2\" \"b\")) NIL NIL NIL NIL NIL)");
    /* unterminated quotes and angles, garbage */
    expect_env("From: \"unterminated <a@b>\r\nTo: <x@y\r\nCc: ,,, ;;; <<>>\r\nBcc: @@@\r\n\r\n",
               "(NIL NIL ((NIL NIL \"unterminated <a@b>\" \"MISSING_DOMAIN\")) ((NIL NIL "
               "\"unterminated <a@b>\" \"MISSING_DOMAIN\")) ((NIL NIL \"unterminated <a@b>\" "
               "\"MISSING_DOMAIN\")) ((NIL NIL \"x\" \"y\")) ((NIL NIL \"MISSING_MAILBOX\" "
               "\"MISSING_DOMAIN\")) ((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) NIL NIL)");
    /* a header value with CR/LF/NUL cannot break the response */
    static const char nul[] = "Subject: a\0b\r\n\tc\r\nMessage-ID: \"x\\\"\r\n\r\n";
    struct mime_message m;
    mime_parse(&m, nul, sizeof(nul) - 1);
    char *s = render_env(&m, &m.root);
    assert_string_equal(s, "(NIL \"ab c\" NIL NIL NIL NIL NIL NIL NIL \"\\\"x\\\\\\\"\")");
    free(s);
    mime_free(&m);
}

/* ---- SEARCH text ----------------------------------------------------------------------- */

struct stopper {
    int calls;
    size_t total;
    bool stop;
    bool bad_utf8;
};

static bool count_chunks(const char *text, size_t len, void *ctx)
{
    struct stopper *s = ctx;
    s->calls++;
    s->total += len;
    /* every chunk starts at a character */
    if (len > 0 && ((unsigned char)text[0] & 0xc0) == 0x80) s->bad_utf8 = true;
    return s->stop;
}

static void test_text_foreach(void **state)
{
    const char *msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                      "Content-Type: text/plain; charset=\"iso-8859-1\"\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\n"
                      "Q2Fm6SBv\r\nbGU=\r\n--b\r\n"
                      "Content-Type: text/plain; charset=x-unknown\r\n"
                      "Content-Transfer-Encoding: Quoted-Printable\r\n\r\n"
                      "soft=\r\nbreak=  \r\n=3D=e9  \r\nend=\r\n--b\r\n"
                      "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                      "iVBORw0KGgo=\r\n--b\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n\r\nbroken =ZZ = end\r\n"
                      "--b\r\nContent-Type: text/plain; charset=utf-16le\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\nQQBCAD3Y\r\n--b--\r\n";
    struct mime_message m;
    mime_parse(&m, msg, strlen(msg));
    struct sbuf text = SBUF_INIT(SBUF_NO_MAX);
    mime_text_foreach(&m, collect_text, &text);
    assert_string_equal(sbuf_cstr(&text), "Caf\xc3\xa9 ole"
                                          "softbreak=\xe9\r\nend"
                                          "broken =ZZ = end"
                                          "AB\xef\xbf\xbd");
    sbuf_free(&text);
    struct stopper st = {0, 0, true, false};
    mime_text_foreach(&m, count_chunks, &st);
    assert_int_equal(st.calls, 1);
    mime_free(&m);

    /* a big part comes in chunks, cut at characters, and all of it */
    struct sbuf big = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&big, "Content-Type: text/plain; charset=iso-8859-1\r\n\r\n");
    for (int i = 0; i < 300000; i++)
        sbuf_putc(&big, (char)(i % 7 == 0 ? 0xe9 : 'a'));
    mime_parse(&m, big.data, big.len);
    struct stopper st2 = {0, 0, false, false};
    mime_text_foreach(&m, count_chunks, &st2);
    assert_true(st2.calls > 2);
    assert_false(st2.bad_utf8);
    assert_int_equal(st2.total, 300000 + 300000 / 7 + 1);
    mime_free(&m);
    sbuf_free(&big);
}

/* ---- dates ---------------------------------------------------------------------------- */

static void test_parse_date(void **state)
{
    time_t t;
    int zone;
    assert_int_equal(mime_parse_date("Mon, 7 Feb 1994 21:52:25 -0800 (PST)", &t, &zone), 0);
    assert_int_equal(t, 760686745);
    assert_int_equal(zone, -480);
    assert_int_equal(mime_parse_date("1 Jan 2024 10:00 +0100", &t, &zone), 0);
    assert_int_equal(t, 1704099600);
    assert_int_equal(zone, 60);
    /* obsolete forms: two-digit years, named zones, comments, folding, odd spacing */
    assert_int_equal(mime_parse_date("Thu, 01 Jan 70 00:00:00 GMT", &t, &zone), 0);
    assert_int_equal(t, 0);
    assert_int_equal(mime_parse_date("(c) Sat,\r\n 1 jan 00 00 : 00 : 01 EDT", &t, &zone), 0);
    assert_int_equal(t, 946699201);
    assert_int_equal(zone, -240);
    assert_int_equal(mime_parse_date("1 Feb 049 12:00:00 +0000", &t, NULL), 0); /* 1949 */
    assert_int_equal(t, -659966400);
    assert_int_equal(mime_parse_date("29 Feb 2024 23:59:60 Z", &t, &zone), 0);
    assert_int_equal(t, 1709251200);
    assert_int_equal(mime_parse_date("1 Mar 2024 12:00:00 A", &t, &zone), 0); /* military */
    assert_int_equal(zone, 0);
    assert_int_equal(mime_parse_date("1 Mar 2024 12:00:00", &t, &zone), 0);
    assert_int_equal(mime_parse_date("17-Jul-1996 02:44:25 -0700", &t, &zone), 0);
    assert_int_equal(t, 837596665);

    const char *bad[] = {"",
                         "garbage",
                         "Mon, 32 Jan 2024 10:00 +0000",
                         "29 Feb 2023 10:00 +0000",
                         "1 Foo 2024 10:00 +0000",
                         "1 Jan 2024 24:00 +0000",
                         "1 Jan 2024 10:60 +0000",
                         "1 Jan 2024 10:00 +0960",
                         "1 Jan 2024",
                         "1 Jan 2024 10",
                         "Xyz, 1 Jan 2024 10:00 +0000",
                         "1 Jan 2024 10:00 +01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = 42;
        zone = 42;
        assert_int_equal(mime_parse_date(bad[i], &t, &zone), -1);
        assert_int_equal(t, 0);
        assert_int_equal(zone, 0);
    }
}

/* ---- malformed and hostile input ------------------------------------------------------ */

static void test_every_prefix(void **state)
{
    /* the byte-at-a-time test: every prefix of a message that has everything */
    struct sbuf all = SBUF_INIT(SBUF_NO_MAX);
    sbuf_append(&all, mixed_msg, sizeof(mixed_msg) - 1);
    sbuf_append(&all, rfc822_msg, sizeof(rfc822_msg) - 1);
    for (size_t n = 0; n <= sizeof(mixed_msg) - 1; n++)
        exercise(mixed_msg, n, NULL, NULL);
    for (size_t n = 0; n <= sizeof(rfc822_msg) - 1; n++)
        exercise(rfc822_msg, n, NULL, NULL);
    /* every single byte changed to a character that matters to the parser */
    static const char specials[] = {'\n', '\r', '-', '"', '(', '\\', ';', ':', '=', '\0'};
    char *copy = xmemdup(mixed_msg, sizeof(mixed_msg));
    for (size_t i = 0; i < sizeof(mixed_msg) - 1; i++) {
        for (size_t k = 0; k < sizeof(specials); k++) {
            char saved = copy[i];
            copy[i] = specials[k];
            exercise(copy, sizeof(mixed_msg) - 1, NULL, NULL);
            copy[i] = saved;
        }
    }
    free(copy);
    sbuf_free(&all);
}

static void test_deep_nesting(void **state)
{
    /* 1000 nested multiparts: parts deeper than MIME_MAX_DEPTH are opaque */
    struct sbuf msg = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&msg, "Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n");
    for (int i = 1; i < 1000; i++)
        sbuf_printf(&msg, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i - 1, i);
    sbuf_appends(&msg, "--b999\r\n\r\nleaf\r\n");
    size_t nparts;
    unsigned depth;
    exercise(msg.data, msg.len, &nparts, &depth);
    assert_int_equal(depth, MIME_MAX_DEPTH);
    struct mime_message m;
    mime_parse(&m, msg.data, msg.len);
    const struct mime_part *p = &m.root;
    while (p->nchildren > 0)
        p = &p->children[0];
    assert_string_equal(p->type, "application");
    assert_string_equal(p->subtype, "octet-stream");
    mime_free(&m);

    /* 1000 nested message/rfc822 */
    sbuf_reset(&msg);
    for (int i = 0; i < 1000; i++)
        sbuf_appends(&msg, "Content-Type: message/rfc822\r\n\r\n");
    sbuf_appends(&msg, "Subject: leaf\r\n\r\nx");
    exercise(msg.data, msg.len, &nparts, &depth);
    assert_int_equal(depth, MIME_MAX_DEPTH);
    assert_int_equal(nparts, MIME_MAX_DEPTH + 1);
    sbuf_free(&msg);
}

static void test_many_parts(void **state)
{
    /* 100000 empty parts: MIME_MAX_PARTS of them; what follows is skipped like an
     * epilogue */
    struct sbuf msg = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&msg, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
    for (int i = 0; i < 100000; i++)
        sbuf_appends(&msg, "--b\r\n");
    sbuf_appends(&msg, "--b--\r\n");
    size_t nparts;
    exercise(msg.data, msg.len, &nparts, NULL);
    assert_int_equal(nparts, MIME_MAX_PARTS);
    struct mime_message m;
    mime_parse(&m, msg.data, msg.len);
    assert_int_equal(m.root.nchildren, MIME_MAX_PARTS - 1);
    const struct mime_part *last = &m.root.children[m.root.nchildren - 1];
    assert_int_equal(last->body_end, last->body_start);
    assert_int_equal(m.root.body_end, msg.len);
    assert_null(mime_find(&m, "2000"));
    assert_non_null(mime_find(&m, "1999"));
    mime_free(&m);

    /* parts spread over nested multiparts share the same budget */
    sbuf_reset(&msg);
    sbuf_appends(&msg, "Content-Type: multipart/mixed; boundary=o\r\n\r\n");
    for (int i = 0; i < 300; i++) {
        sbuf_appends(&msg, "--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n");
        for (int j = 0; j < 30; j++)
            sbuf_appends(&msg, "--i\r\n\r\nx\r\n");
        sbuf_appends(&msg, "--i--\r\n");
    }
    sbuf_appends(&msg, "--o--\r\n");
    exercise(msg.data, msg.len, &nparts, NULL);
    assert_int_equal(nparts, MIME_MAX_PARTS);

    /* a pathological boundary: long, and nearly matched on every line */
    sbuf_reset(&msg);
    sbuf_appends(&msg, "Content-Type: multipart/mixed; boundary=\"");
    for (int i = 0; i < 4000; i++)
        sbuf_putc(&msg, 'a');
    sbuf_appends(&msg, "\"\r\n\r\n");
    for (int i = 0; i < 2000; i++) {
        sbuf_appends(&msg, "--");
        for (int j = 0; j < 3999; j++)
            sbuf_putc(&msg, 'a');
        sbuf_appends(&msg, "b\r\n");
    }
    exercise(msg.data, msg.len, &nparts, NULL);
    assert_int_equal(nparts, 2);
    sbuf_free(&msg);
}

static void test_hostile_headers(void **state)
{
    /* a huge header of encoded-word starts, comments, quotes: linear and bounded */
    struct sbuf msg = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&msg, "Subject: ");
    for (int i = 0; i < 100000; i++)
        sbuf_appends(&msg, "=?a?q?");
    sbuf_appends(&msg, "\r\nFrom: ");
    for (int i = 0; i < 100000; i++)
        sbuf_appends(&msg, "(((\"<,@:;");
    sbuf_appends(&msg, "\r\nContent-Type: text/plain; ");
    for (int i = 0; i < 100000; i++)
        sbuf_appends(&msg, "a*0*=%;");
    sbuf_appends(&msg, "\r\n\r\n");
    exercise(msg.data, msg.len, NULL, NULL);
    /* 8-bit and control bytes everywhere */
    sbuf_reset(&msg);
    for (int i = 1; i < 256; i++) {
        sbuf_printf(&msg, "X-%d: ", i);
        sbuf_putc(&msg, (char)i);
        sbuf_appends(&msg, "\r\nFrom: ");
        sbuf_putc(&msg, (char)i);
        sbuf_appends(&msg, "@x\r\n");
    }
    sbuf_appends(&msg, "\r\n");
    exercise(msg.data, msg.len, NULL, NULL);
    sbuf_free(&msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3501_fetch_example),
        cmocka_unit_test(test_rfc3501_bodystructure_example),
        cmocka_unit_test(test_simple_text),
        cmocka_unit_test(test_content_fields),
        cmocka_unit_test(test_multipart_mixed),
        cmocka_unit_test(test_multipart_boundaries),
        cmocka_unit_test(test_bare_lf),
        cmocka_unit_test(test_message_rfc822),
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_rfc2231),
        cmocka_unit_test(test_param_limits),
        cmocka_unit_test(test_encoded_words),
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_envelope_addresses),
        cmocka_unit_test(test_text_foreach),
        cmocka_unit_test(test_parse_date),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_many_parts),
        cmocka_unit_test(test_hostile_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_imap_search.c - unit tests for IMAP SEARCH programs (imap_search.c)
 *
 * The parser: every RFC 3501 / RFC 7162 key, the tree it builds (OR and NOT bind one key
 * each, groups join the enclosing AND, cheap keys first), CHARSET, refused programs, the
 * depth and key-count limits, and programs that arrive through imap_parser.c one byte at
 * a time (the same tree as when fed whole) or cut short at every point (refused, never a
 * crash). Matching: index-only keys against hand-made folder_msg records, and header,
 * date and body keys against in-memory messages parsed with mime.h (encoded-words,
 * base64 and quoted-printable bodies, Date: zones, case folding), including that a
 * message is loaded only when a key needs it. The date helpers and the folding too.
 *
 * SECURITY: programs are parsed from exactly-sized copies through the real command
 * parser, so ASan sees any read past an argument.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imap_parser.h"
#include "imap_search.h"
#include "sbuf.h"
#include "testutil.h"
#include "xalloc.h"

/* ---- helpers ---------------------------------------------------------------------- */

static const struct imap_limits limits = {65536, 65536, 0, 16, 10000};

/* Parses "t SEARCH <program>\r\n" with the real command parser, whole or byte by byte.
 * *pp owns the command. NULL if the command parser refused it. */
static const struct imap_command *command(struct imap_parser **pp, const char *program,
                                          bool bytewise)
{
    char *line = xasprintf("t SEARCH %s\r\n", program);
    size_t len = strlen(line);
    char *copy = xmemdup(line, len); /* exactly sized */
    free(line);
    *pp = imap_parser_new(&limits);
    size_t off = 0;
    enum imap_parse_status st = IMAP_PARSE_MORE;
    while (off < len) {
        size_t used = 0;
        size_t chunk = bytewise ? 1 : len - off;
        st = imap_parser_feed(*pp, copy + off, chunk, &used);
        off += used;
        if (st == IMAP_PARSE_DONE || st == IMAP_PARSE_ERROR) break;
    }
    free(copy);
    if (st != IMAP_PARSE_DONE) return NULL;
    return imap_parser_command(*pp);
}

static const char *const op_names[] = {
    "ALL",        "AND",    "OR",        "NOT",     "SEQ",    "UID",  "FLAG",
    "KW",         "RECENT", "LARGER",    "SMALLER", "BEFORE", "ON",   "SINCE",
    "SENTBEFORE", "SENTON", "SENTSINCE", "MODSEQ",  "HEADER", "BODY", "TEXT",
};

static void dump_key(const struct imap_search_key *k, struct sbuf *out)
{
    sbuf_appends(out, op_names[k->op]);
    switch (k->op) {
    case IMAP_SK_FLAG: sbuf_printf(out, "%c%u", k->want ? '+' : '-', k->flags); break;
    case IMAP_SK_KEYWORD: sbuf_printf(out, "%c%s", k->want ? '+' : '-', k->name); break;
    case IMAP_SK_RECENT: sbuf_putc(out, k->want ? '+' : '-'); break;
    case IMAP_SK_LARGER:
    case IMAP_SK_SMALLER:
    case IMAP_SK_MODSEQ: sbuf_printf(out, "=%llu", (unsigned long long)k->num); break;
    case IMAP_SK_BEFORE:
    case IMAP_SK_ON:
    case IMAP_SK_SINCE:
    case IMAP_SK_SENTBEFORE:
    case IMAP_SK_SENTON:
    case IMAP_SK_SENTSINCE: sbuf_printf(out, "=%ld", k->day); break;
    case IMAP_SK_HEADER: sbuf_printf(out, ":%s=%s", k->name, k->value); break;
    case IMAP_SK_BODY:
    case IMAP_SK_TEXT: sbuf_printf(out, "=%s", k->value); break;
    case IMAP_SK_SEQSET:
    case IMAP_SK_UIDSET: sbuf_printf(out, "/%zu", k->set.nranges); break;
    default: break;
    }
    if (k->nchildren > 0) {
        sbuf_putc(out, '(');
        for (size_t i = 0; i < k->nchildren; i++) {
            if (i > 0) sbuf_putc(out, ',');
            dump_key(&k->children[i], out);
        }
        sbuf_putc(out, ')');
    }
}

/* The program's tree as text, or "BAD: ..." / "BADCHARSET". */
static char *dump_program(const char *program, bool bytewise)
{
    struct imap_parser *p = NULL;
    const struct imap_command *cmd = command(&p, program, bytewise);
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    if (cmd == NULL) {
        sbuf_appends(&out, "PARSER");
    } else {
        struct imap_search_program *prog = NULL;
        const char *error = NULL;
        enum imap_search_result r = imap_search_parse(cmd->args, cmd->nargs, &prog, &error);
        if (r == IMAP_SEARCH_OK) {
            assert_non_null(prog);
            assert_null(error);
            dump_key(&prog->root, &out);
            imap_search_free(&prog);
            assert_null(prog);
        } else {
            assert_null(prog);
            assert_non_null(error);
            sbuf_appends(&out, r == IMAP_SEARCH_BADCHARSET ? "BADCHARSET" : "BAD");
        }
    }
    imap_parser_free(&p);
    return sbuf_steal(&out);
}

static void expect_tree(const char *program, const char *tree)
{
    char *whole = dump_program(program, false);
    if (strcmp(whole, tree) != 0) fail_msg("%s: got %s, want %s", program, whole, tree);
    char *bytes = dump_program(program, true);
    assert_string_equal(whole, bytes);
    free(whole);
    free(bytes);
}

static long day(int y, int m, int d)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    return (long)(timegm(&tm) / 86400);
}

/* ---- parsing ---------------------------------------------------------------------- */

static void test_every_key(void **state)
{
    (void)state;
    char buf[64];
    expect_tree("ALL", "AND(ALL)");
    expect_tree("ANSWERED", "AND(FLAG+2)");
    expect_tree("DELETED", "AND(FLAG+8)");
    expect_tree("DRAFT", "AND(FLAG+16)");
    expect_tree("FLAGGED", "AND(FLAG+4)");
    expect_tree("SEEN", "AND(FLAG+1)");
    expect_tree("UNANSWERED", "AND(FLAG-2)");
    expect_tree("UNDELETED", "AND(FLAG-8)");
    expect_tree("UNDRAFT", "AND(FLAG-16)");
    expect_tree("UNFLAGGED", "AND(FLAG-4)");
    expect_tree("UNSEEN", "AND(FLAG-1)");
    expect_tree("RECENT", "AND(RECENT+)");
    expect_tree("OLD", "AND(RECENT-)");
    expect_tree("NEW", "AND(RECENT+,FLAG-1)");
    expect_tree("KEYWORD $Forwarded", "AND(KW+$Forwarded)");
    expect_tree("UNKEYWORD Junk", "AND(KW-Junk)");
    expect_tree("LARGER 1000", "AND(LARGER=1000)");
    expect_tree("SMALLER 4294967295", "AND(SMALLER=4294967295)");
    snprintf(buf, sizeof(buf), "AND(BEFORE=%ld)", day(1994, 2, 1));
    expect_tree("BEFORE 1-Feb-1994", buf);
    snprintf(buf, sizeof(buf), "AND(ON=%ld)", day(2024, 2, 29));
    expect_tree("ON 29-feb-2024", buf);
    snprintf(buf, sizeof(buf), "AND(SINCE=%ld)", day(2026, 12, 31));
    expect_tree("SINCE \"31-Dec-2026\"", buf);
    snprintf(buf, sizeof(buf), "AND(SENTBEFORE=%ld)", day(2000, 1, 1));
    expect_tree("SENTBEFORE 01-Jan-2000", buf);
    snprintf(buf, sizeof(buf), "AND(SENTON=%ld)", day(1970, 1, 1));
    expect_tree("SENTON 1-Jan-1970", buf);
    snprintf(buf, sizeof(buf), "AND(SENTSINCE=%ld)", day(1969, 12, 31));
    expect_tree("SENTSINCE 31-Dec-1969", buf);
    expect_tree("FROM alice", "AND(HEADER:from=alice)");
    expect_tree("TO \"Bob Smith\"", "AND(HEADER:to=bob smith)");
    expect_tree("CC {3}\r\nX.Y", "AND(HEADER:cc=x.y)");
    expect_tree("BCC nil", "AND(HEADER:bcc=nil)");
    expect_tree("SUBJECT \"\"", "AND(HEADER:subject=)");
    expect_tree("HEADER Message-ID <a@b>", "AND(HEADER:message-id=<a@b>)");
    expect_tree("HEADER X-Spam \"\"", "AND(HEADER:x-spam=)");
    expect_tree("BODY hello", "AND(BODY=hello)");
    expect_tree("TEXT WORLD", "AND(TEXT=world)");
    expect_tree("UID 1:5,7", "AND(UID/2)");
    expect_tree("UID *", "AND(UID/1)");
    expect_tree("1:3,5,*", "AND(SEQ/3)");
    expect_tree("MODSEQ 12345", "AND(MODSEQ=12345)");
    expect_tree("MODSEQ \"/flags/\\\\draft\" all 620162338", "AND(MODSEQ=620162338)");
    expect_tree("MODSEQ \"/flags/\\\\seen\" priv 0", "AND(MODSEQ=0)");
    expect_tree("MODSEQ 9223372036854775807", "AND(MODSEQ=9223372036854775807)");
    expect_tree("NOT SEEN", "AND(NOT(FLAG+1))");
    expect_tree("OR SEEN FLAGGED", "AND(OR(FLAG+1,FLAG+4))");
    expect_tree("(SEEN)", "AND(FLAG+1)");
    /* case-insensitive key names */
    expect_tree("or not Seen unflagged", "AND(OR(NOT(FLAG+1),FLAG-4))");
}

static void test_structure(void **state)
{
    (void)state;
    /* keys side by side are an AND; cheap keys first (stable), costly last */
    expect_tree("BODY x SEEN FROM y LARGER 5", "AND(FLAG+1,LARGER=5,HEADER:from=y,BODY=x)");
    /* OR and NOT take exactly one key each */
    expect_tree("OR SEEN FLAGGED DELETED", "AND(OR(FLAG+1,FLAG+4),FLAG+8)");
    expect_tree("NOT SEEN FLAGGED", "AND(NOT(FLAG+1),FLAG+4)");
    expect_tree("NOT FROM x SEEN", "AND(FLAG+1,NOT(HEADER:from=x))");
    expect_tree("NOT OR SEEN FLAGGED", "AND(NOT(OR(FLAG+1,FLAG+4)))");
    expect_tree("OR NOT SEEN FLAGGED", "AND(OR(NOT(FLAG+1),FLAG+4))");
    /* nested ORs flatten, costly alternatives last */
    expect_tree("OR OR FROM a SEEN OR DRAFT BODY b",
                "AND(OR(FLAG+1,FLAG+16,HEADER:from=a,BODY=b))");
    /* a group takes several keys; in an AND it joins it */
    expect_tree("(SEEN FLAGGED) DELETED", "AND(FLAG+1,FLAG+4,FLAG+8)");
    expect_tree("OR (SEEN FLAGGED) DELETED", "AND(OR(AND(FLAG+1,FLAG+4),FLAG+8))");
    expect_tree("NOT (SEEN (FLAGGED (DRAFT)))", "AND(NOT(AND(FLAG+1,FLAG+4,FLAG+16)))");
    expect_tree("((((ALL))))", "AND(ALL)");
    /* CHARSET, only at the start */
    expect_tree("CHARSET UTF-8 SUBJECT \"\xc3\x84pfel\"", "AND(HEADER:subject=\xc3\xa4pfel)");
    expect_tree("charset us-ascii ALL", "AND(ALL)");
    expect_tree("CHARSET \"UTF-8\" ALL", "AND(ALL)");
}

static void test_bad_programs(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "FOO",
        "SEEN FOO",
        "FROM",
        "HEADER Subject",
        "HEADER \"\" x",
        "HEADER \"a b\" x",
        "HEADER a:b x",
        "KEYWORD",
        "KEYWORD \\Seen",
        "KEYWORD \"quoted\"",
        "KEYWORD (a)",
        "LARGER",
        "LARGER x",
        "LARGER -1",
        "LARGER 4294967296",
        "SMALLER 99999999999999999999999",
        "BEFORE",
        "BEFORE 1-Foo-2000",
        "BEFORE 32-Jan-2000",
        "BEFORE 29-Feb-2023",
        "BEFORE 1-Jan-20",
        "BEFORE 001-Jan-2000",
        "BEFORE 1-Jan-2000x",
        "SINCE 1/1/2000",
        "SENTON 0-Jan-2000",
        "UID",
        "UID x",
        "UID 0",
        "UID 1,,2",
        "1:",
        "0",
        "1.5",
        "MODSEQ",
        "MODSEQ x",
        "MODSEQ 9223372036854775808",
        "MODSEQ \"/flags/\\\\seen\" everyone 5",
        "MODSEQ \"/flags/\\\\seen\" 5",
        "NOT",
        "OR SEEN",
        "OR",
        "()",
        "(SEEN ())",
        "(SEEN FOO)",
        "NIL",
        "\"SEEN\"",
        "CHARSET",
        "CHARSET UTF-8",
        "SEEN CHARSET UTF-8",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *got = dump_program(bad[i], false);
        if (strcmp(got, "BAD") != 0 && strcmp(got, "PARSER") != 0)
            fail_msg("%s: got %s, want BAD", bad[i], got);
        free(got);
    }
    char *got = dump_program("CHARSET ISO-8859-1 SUBJECT x", false);
    assert_string_equal(got, "BADCHARSET");
    free(got);
    got = dump_program("CHARSET KOI8-R ALL", true);
    assert_string_equal(got, "BADCHARSET");
    free(got);

    /* the empty program */
    struct imap_search_program *prog = NULL;
    const char *error = NULL;
    assert_int_equal(imap_search_parse(NULL, 0, &prog, &error), IMAP_SEARCH_BAD);
    assert_null(prog);
    assert_non_null(error);
}

static struct imap_arg atom(const char *s)
{
    struct imap_arg a;
    memset(&a, 0, sizeof(a));
    a.type = IMAP_ARG_ATOM;
    a.str = (char *)s;
    a.len = strlen(s);
    return a;
}

static void test_limits(void **state)
{
    (void)state;
    /* NOT nested IMAP_SEARCH_MAX_DEPTH times is fine, once more is not */
    for (int extra = 0; extra <= 1; extra++) {
        size_t depth = IMAP_SEARCH_MAX_DEPTH + (size_t)extra;
        struct sbuf p = SBUF_INIT(SBUF_NO_MAX);
        for (size_t i = 0; i < depth; i++)
            sbuf_appends(&p, "NOT ");
        sbuf_appends(&p, "SEEN");
        char *got = dump_program(p.data, false);
        if (extra)
            assert_string_equal(got, "BAD");
        else
            assert_true(strncmp(got, "AND(NOT(NOT(", 12) == 0);
        free(got);
        sbuf_free(&p);
    }
    /* OR chains too */
    {
        struct sbuf p = SBUF_INIT(SBUF_NO_MAX);
        for (size_t i = 0; i < IMAP_SEARCH_MAX_DEPTH + 1; i++)
            sbuf_appends(&p, "OR SEEN ");
        sbuf_appends(&p, "SEEN");
        char *got = dump_program(p.data, false);
        assert_string_equal(got, "BAD");
        free(got);
        sbuf_free(&p);
    }
    /* the key count, with arguments made by hand (the command parser stops at 10000) */
    size_t n = IMAP_SEARCH_MAX_KEYS + 1;
    struct imap_arg *args = xcalloc(n, sizeof(*args));
    for (size_t i = 0; i < n; i++)
        args[i] = atom("SEEN");
    struct imap_search_program *prog = NULL;
    const char *error = NULL;
    assert_int_equal(imap_search_parse(args, n - 1, &prog, &error), IMAP_SEARCH_OK);
    assert_int_equal(prog->nkeys, n - 1);
    imap_search_free(&prog);
    assert_int_equal(imap_search_parse(args, n, &prog, &error), IMAP_SEARCH_BAD);
    assert_null(prog);
    assert_string_equal(error, "Too many search keys");
    /* NOT counts as a key of its own */
    args[0] = atom("NOT");
    assert_int_equal(imap_search_parse(args, n - 1, &prog, &error), IMAP_SEARCH_OK);
    assert_int_equal(prog->nkeys, n - 1);
    imap_search_free(&prog);
    assert_int_equal(imap_search_parse(args, n, &prog, &error), IMAP_SEARCH_BAD);
    free(args);
}

/* Every prefix of valid programs, fed byte by byte: refused or parsed, never a crash. */
static void test_truncated(void **state)
{
    (void)state;
    static const char *const programs[] = {
        "OR (FROM alice SUBJECT \"hi there\") NOT KEYWORD $Junk",
        "CHARSET UTF-8 HEADER X-Y {5}\r\nab\"cd UID 1:*,4 SENTSINCE 1-Jan-2020",
        "MODSEQ \"/flags/\\\\draft\" all 620162338 NOT (1,2 LARGER 10)",
    };
    for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++) {
        size_t len = strlen(programs[i]);
        for (size_t cut = 0; cut <= len; cut++) {
            char *prefix = xstrndup(programs[i], cut);
            char *got = dump_program(prefix, cut % 2 == 0);
            assert_non_null(got);
            free(got);
            free(prefix);
        }
    }
}

static void test_bind(void **state)
{
    (void)state;
    struct imap_parser *p = NULL;
    const struct imap_command *cmd =
        command(&p, "KEYWORD $forwarded UNKEYWORD nothere OR 1:3 4,*", false);
    assert_non_null(cmd);
    struct imap_search_program *prog = NULL;
    const char *error = NULL;
    assert_int_equal(imap_search_parse(cmd->args, cmd->nargs, &prog, &error), IMAP_SEARCH_OK);
    const char *const kw[] = {"Junk", "$Forwarded"};
    assert_int_equal(imap_search_bind(prog, kw, 2, 4), 0);
    assert_int_equal(prog->root.children[0].keyword_bit, 1);
    assert_int_equal(prog->root.children[1].keyword_bit, -1);
    assert_int_equal(imap_search_bind(prog, kw, 2, 3), -1); /* 4 is past the end */
    assert_int_equal(imap_search_bind(prog, kw, 2, 0), -1); /* '*' in an empty view */
    assert_int_equal(imap_search_bind(prog, kw, 2, 100), 0);
    imap_search_free(&prog);
    imap_parser_free(&p);
}

/* ---- matching --------------------------------------------------------------------- */

struct fake {
    const char *text;
    int loads;
};

static int fake_load(void *ctx, const char **data_r, size_t *len_r)
{
    struct fake *f = ctx;
    f->loads++;
    if (f->text == NULL) return -1;
    *data_r = f->text;
    *len_r = strlen(f->text);
    return 0;
}

/* Whether program matches the message (record msg, text or NULL for gone). */
static bool match(const char *program, const struct folder_msg *msg, uint32_t seq, bool recent,
                  const char *text, int *loads_r)
{
    struct imap_parser *p = NULL;
    const struct imap_command *cmd = command(&p, program, false);
    assert_non_null(cmd);
    struct imap_search_program *prog = NULL;
    const char *error = NULL;
    if (imap_search_parse(cmd->args, cmd->nargs, &prog, &error) != IMAP_SEARCH_OK)
        fail_msg("%s: %s", program, error);
    const char *const kw[] = {"Junk", "$Forwarded", "NonJunk"};
    assert_int_equal(imap_search_bind(prog, kw, 3, 10), 0);
    struct fake f = {text, 0};
    struct imap_search_msg m;
    memset(&m, 0, sizeof(m));
    m.msg = msg;
    m.seq = seq;
    m.recent = recent;
    m.max_seq = 10;
    m.max_uid = 500;
    m.load = fake_load;
    m.load_ctx = &f;
    bool r = imap_search_match(prog, &m);
    imap_search_msg_done(&m);
    imap_search_free(&prog);
    imap_parser_free(&p);
    assert_true(f.loads <= 1);
    if (loads_r) *loads_r = f.loads;
    return r;
}

static void test_match_index(void **state)
{
    (void)state;
    struct folder_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.uid = 42;
    msg.flags = FOLDER_SEEN | FOLDER_FLAGGED;
    msg.keywords = 2; /* $Forwarded */
    msg.modseq = 1000;
    msg.size = 2048;
    msg.internaldate = (time_t)day(2026, 3, 15) * 86400 + 23 * 3600 + 59 * 60; /* 23:59 UTC */
    int loads = -1;
    const char *text = "Subject: x\r\n\r\nbody\r\n";

    assert_true(match("ALL", &msg, 3, false, text, &loads));
    assert_int_equal(loads, 0);
    assert_true(match("SEEN FLAGGED UNANSWERED UNDELETED UNDRAFT", &msg, 3, false, NULL, NULL));
    assert_false(match("UNSEEN", &msg, 3, false, NULL, NULL));
    assert_false(match("ANSWERED", &msg, 3, false, NULL, NULL));
    assert_true(match("NOT DELETED", &msg, 3, false, NULL, NULL));
    assert_true(match("OR DELETED FLAGGED", &msg, 3, false, NULL, NULL));
    assert_false(match("OR DELETED DRAFT", &msg, 3, false, NULL, NULL));
    assert_true(match("KEYWORD $FORWARDED", &msg, 3, false, NULL, NULL));
    assert_false(match("KEYWORD Junk", &msg, 3, false, NULL, NULL));
    assert_true(match("UNKEYWORD Junk", &msg, 3, false, NULL, NULL));
    /* a keyword the folder does not have: nothing has it */
    assert_false(match("KEYWORD Unknown", &msg, 3, false, NULL, NULL));
    assert_true(match("UNKEYWORD Unknown", &msg, 3, false, NULL, NULL));
    assert_true(match("RECENT", &msg, 3, true, NULL, NULL));
    assert_false(match("OLD", &msg, 3, true, NULL, NULL));
    assert_false(match("NEW", &msg, 3, true, NULL, NULL)); /* seen */
    msg.flags = 0;
    assert_true(match("NEW", &msg, 3, true, NULL, NULL));
    assert_false(match("NEW", &msg, 3, false, NULL, NULL));
    assert_true(match("LARGER 2047 SMALLER 2049", &msg, 3, false, NULL, NULL));
    assert_false(match("LARGER 2048", &msg, 3, false, NULL, NULL));
    assert_false(match("SMALLER 2048", &msg, 3, false, NULL, NULL));
    assert_true(match("3", &msg, 3, false, NULL, NULL));
    assert_true(match("1:2,3:4", &msg, 3, false, NULL, NULL));
    assert_false(match("1,2,4:*", &msg, 3, false, NULL, NULL));
    assert_true(match("*", &msg, 10, false, NULL, NULL));
    assert_true(match("UID 42", &msg, 3, false, NULL, NULL));
    assert_true(match("UID 40:50", &msg, 3, false, NULL, NULL));
    assert_false(match("UID 43:*", &msg, 3, false, NULL, NULL));
    assert_true(match("UID *:40", &msg, 3, false, NULL, NULL)); /* = 40:500 */
    assert_true(match("MODSEQ 1000", &msg, 3, false, NULL, NULL));
    assert_false(match("MODSEQ 1001", &msg, 3, false, NULL, NULL));
    /* internal dates by day (TZ is UTC here) */
    assert_true(match("ON 15-Mar-2026", &msg, 3, false, NULL, NULL));
    assert_true(match("SINCE 15-Mar-2026", &msg, 3, false, NULL, NULL));
    assert_false(match("SINCE 16-Mar-2026", &msg, 3, false, NULL, NULL));
    assert_true(match("BEFORE 16-Mar-2026", &msg, 3, false, NULL, NULL));
    assert_false(match("BEFORE 15-Mar-2026", &msg, 3, false, NULL, NULL));
    /* none of these needed the text */
    assert_true(match("NOT OR ON 1-Jan-2000 KEYWORD Junk", &msg, 3, false, text, &loads));
    assert_int_equal(loads, 0);
    /* a cheap key that fails spares the load */
    assert_false(match("BODY body DELETED", &msg, 3, false, text, &loads));
    assert_int_equal(loads, 0);
}

static const char message[] = "Return-Path: <alice@example.test>\r\n"
                              "From: =?UTF-8?B?w4RsaWNl?= <alice@example.test>\r\n"
                              "To: Bob <bob@example.test>,\r\n"
                              " Carol <carol@example.test>\r\n"
                              "Cc: dave@example.test\r\n"
                              "Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\r\n"
                              "Date: Sun, 1 Mar 2026 01:30:00 +0200\r\n"
                              "Message-ID: <m1@example.test>\r\n"
                              "X-Empty:\r\n"
                              "MIME-Version: 1.0\r\n"
                              "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
                              "\r\n"
                              "preamble\r\n"
                              "--b1\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Content-Transfer-Encoding: base64\r\n"
                              "\r\n"
                              "SGVsbG8gV8OWUkxEIGZyb20gdGhlIGJhc2U2NCBwYXJ0Lg==\r\n"
                              "--b1\r\n"
                              "Content-Type: text/html; charset=iso-8859-1\r\n"
                              "Content-Transfer-Encoding: quoted-printable\r\n"
                              "\r\n"
                              "<p>Stra=DFe und M=FChle, a soft=\r\n"
                              "break</p>\r\n"
                              "--b1--\r\n";

static void test_match_message(void **state)
{
    (void)state;
    struct folder_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.uid = 7;
    msg.size = sizeof(message) - 1;
    int loads;
    /* header keys, with encoded-words decoded and case folded */
    assert_true(match("FROM alice", &msg, 1, false, message, &loads));
    assert_int_equal(loads, 1);
    assert_true(match("FROM \"\xc3\xa4lice\"", &msg, 1, false, message, NULL));
    assert_true(match("CHARSET UTF-8 FROM \"\xc3\x84LICE\"", &msg, 1, false, message, NULL));
    assert_true(match("FROM EXAMPLE.TEST", &msg, 1, false, message, NULL));
    assert_false(match("FROM bob", &msg, 1, false, message, NULL));
    assert_true(match("TO carol", &msg, 1, false, message, NULL)); /* folded line */
    assert_true(match("CC dave", &msg, 1, false, message, NULL));
    assert_false(match("BCC dave", &msg, 1, false, message, NULL)); /* no Bcc field */
    assert_true(match("SUBJECT \"gr\xc3\xbc\xc3\x9f"
                      "e aus k\xc3\xb6ln\"",
                      &msg, 1, false, message, NULL));
    assert_true(match("SUBJECT \"\"", &msg, 1, false, message, NULL));
    assert_true(match("HEADER message-id m1@", &msg, 1, false, message, NULL));
    assert_true(match("HEADER X-Empty \"\"", &msg, 1, false, message, NULL));
    assert_false(match("HEADER X-Missing \"\"", &msg, 1, false, message, NULL));
    /* sent dates by day in the Date: field's own zone (+0200: 1 March, UTC: 28 Feb) */
    assert_true(match("SENTON 1-Mar-2026", &msg, 1, false, message, NULL));
    assert_true(match("SENTSINCE 1-Mar-2026", &msg, 1, false, message, NULL));
    assert_false(match("SENTBEFORE 1-Mar-2026", &msg, 1, false, message, NULL));
    assert_true(match("SENTBEFORE 2-Mar-2026", &msg, 1, false, message, NULL));
    /* body: base64 and quoted-printable undone, charsets converted */
    assert_true(match("BODY \"hello w\xc3\xb6rld\"", &msg, 1, false, message, NULL));
    assert_true(match("BODY \"STRA\xc3\x9f"
                      "E UND M\xc3\x9cHLE\"",
                      &msg, 1, false, message, NULL));
    assert_true(match("BODY softbreak", &msg, 1, false, message, NULL));
    assert_false(match("BODY alice", &msg, 1, false, message, NULL)); /* header only */
    assert_false(match("BODY preamble", &msg, 1, false, message, NULL));
    /* TEXT: header or body */
    assert_true(match("TEXT alice", &msg, 1, false, message, NULL));
    assert_true(match("TEXT \"base64 part\"", &msg, 1, false, message, NULL));
    assert_true(match("TEXT \"k\xc3\xb6ln\"", &msg, 1, false, message, NULL));
    assert_false(match("TEXT nowhere", &msg, 1, false, message, NULL));
    /* combinations load the message once */
    assert_true(
        match("OR BODY nothing FROM alice NOT SUBJECT xyz", &msg, 1, false, message, &loads));
    assert_int_equal(loads, 1);
    /* a message that is gone matches no content key (and NOT of one) */
    assert_false(match("FROM alice", &msg, 1, false, NULL, NULL));
    assert_true(match("NOT BODY x", &msg, 1, false, NULL, NULL));
    /* no Date: field: no SENT* match */
    assert_false(match("SENTSINCE 1-Jan-1970", &msg, 1, false, "Subject: x\r\n\r\nbody\r\n", NULL));
    assert_false(
        match("SENTBEFORE 1-Jan-2100", &msg, 1, false, "Subject: x\r\n\r\nbody\r\n", NULL));
}

/* A body split into many chunks by the decoder still matches across chunk ends. */
static void test_match_long_body(void **state)
{
    (void)state;
    struct sbuf m = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&m, "Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    for (int i = 0; i < 20000; i++)
        sbuf_appends(&m, "filler \xc3\x84 line of text\r\n");
    sbuf_appends(&m, "the NEEDLE \xc3\x96sterreich is here\r\n");
    struct folder_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.size = m.len;
    assert_true(match("BODY \"needle \xc3\xb6sterreich\"", &msg, 1, false, m.data, NULL));
    assert_false(match("BODY \"needle austria\"", &msg, 1, false, m.data, NULL));
    assert_true(match("BODY \"\xc3\xa4 line\"", &msg, 1, false, m.data, NULL));
    sbuf_free(&m);
}

/* ---- helpers ---------------------------------------------------------------------- */

static void test_dates(void **state)
{
    (void)state;
    long d;
    assert_int_equal(imap_parse_day("1-Jan-1970", 10, &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(imap_parse_day("17-Jul-1996", 11, &d), 0);
    assert_int_equal(d, day(1996, 7, 17));
    assert_int_equal(imap_parse_day("29-Feb-2000", 11, &d), 0);
    assert_int_equal(imap_parse_day("29-Feb-1900", 11, &d), -1);
    assert_int_equal(imap_parse_day("31-Apr-2000", 11, &d), -1);
    assert_int_equal(imap_parse_day("1-Jan-1970x", 10, &d), 0); /* length says where it ends */
    assert_int_equal(imap_parse_day("", 0, &d), -1);
    assert_int_equal(imap_parse_day("1-Jan-", 6, &d), -1);

    time_t t;
    const char *s = "17-Jul-1996 02:44:25 -0700";
    assert_int_equal(imap_parse_datetime(s, strlen(s), &t), 0);
    assert_int_equal((long long)t, 837596665LL);
    s = " 7-Jul-1996 09:44:25 +0000";
    assert_int_equal(imap_parse_datetime(s, strlen(s), &t), 0);
    assert_int_equal((long long)t, 836732665LL);
    s = "7-Jul-1996 09:44:25 +0000";
    assert_int_equal(imap_parse_datetime(s, strlen(s), &t), 0);
    static const char *const bad[] = {"17-Jul-1996 02:44:25",        "17-Jul-1996 24:00:00 +0000",
                                      "17-Jul-1996 02:44:25 0700",   "17-Jul-1996 2:44:25 +0000",
                                      "17-Jul-1996  02:44:25 +0000", "17-Jul-1996 02:44:25 +07"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(imap_parse_datetime(bad[i], strlen(bad[i]), &t), -1);
}

static void test_fold(void **state)
{
    (void)state;
    char s[] = "ABC xyz \xc3\x84\xc3\x96\xc3\x9c\xc3\x97 \xce\xa3 \xd0\x96\xd0\x81 "
               "\xc5\x81\xc5\xbd \xe2\x82\xac \xc3";
    imap_search_fold(s, sizeof(s) - 1);
    assert_string_equal(s, "abc xyz \xc3\xa4\xc3\xb6\xc3\xbc\xc3\x97 \xcf\x83 \xd0\xb6\xd1\x91 "
                           "\xc5\x82\xc5\xbe \xe2\x82\xac \xc3");
}

int main(void)
{
    setenv("TZ", "UTC0", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_bad_programs),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bind),
        cmocka_unit_test(test_match_index),
        cmocka_unit_test(test_match_message),
        cmocka_unit_test(test_match_long_body),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_fold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

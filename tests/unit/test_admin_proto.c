/* test_admin_proto.c - unit tests for the admin port's argument parser and JSON writer
 *
 * Covered: atoms and quoted strings, \" and \\ escapes, empty quoted arguments, every
 * syntax error (unterminated string, bad escape, quote inside an atom, junk after a
 * quote, double and trailing spaces, control characters and NUL, non-ASCII outside
 * quotes, invalid UTF-8), TAB and UTF-8 inside quotes, the argument count limit; the
 * parser fed every prefix of a line (it must never read past len); the JSON string
 * escaper (quotes, backslashes, control characters as \u00XX, DEL, UTF-8 passed through,
 * a stray 8-bit octet as \u00XX).
 *
 * SECURITY: the parser sees the raw network line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin.h"
#include "sbuf.h"
#include "xalloc.h"

static struct admin_args parse_ok(const char *line, size_t argc)
{
    struct admin_args a;
    const char *err = NULL;
    assert_int_equal(admin_parse_args(line, strlen(line), &a, &err), 0);
    assert_int_equal(a.argc, argc);
    return a;
}

static void parse_bad(const char *line, size_t len)
{
    struct admin_args a;
    const char *err = NULL;
    assert_int_equal(admin_parse_args(line, len, &a, &err), -1);
    assert_non_null(err);
    assert_null(a.argv);
}

static void test_atoms_and_quotes(void **state)
{
    (void)state;
    struct admin_args a = parse_ok("LOGIN admin@example.com \"secret pass\"", 3);
    assert_string_equal(a.argv[0], "LOGIN");
    assert_string_equal(a.argv[1], "admin@example.com");
    assert_string_equal(a.argv[2], "secret pass");
    admin_args_free(&a);

    a = parse_ok("X \"a\\\"b\\\\c\" \"\" \"\"", 4);
    assert_string_equal(a.argv[1], "a\"b\\c");
    assert_string_equal(a.argv[2], "");
    assert_string_equal(a.argv[3], "");
    admin_args_free(&a);

    a = parse_ok("CONFIG SET SMTP Banner \"tab\there \xc3\xa9t\xc3\xa9\"", 5);
    assert_string_equal(a.argv[4], "tab\there \xc3\xa9t\xc3\xa9");
    admin_args_free(&a);

    a = parse_ok("QUIT", 1);
    assert_string_equal(a.argv[0], "QUIT");
    admin_args_free(&a);

    a = parse_ok("a!#$%&'()*+,-./:;<=>?@[]^_`{|}~", 1);
    admin_args_free(&a);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "X \"open",
        "X \"bad\\n\"",
        "X a\"b",
        "X a\\b",
        "X \"a\"b",
        "X  Y",
        "X Y ",
        " X",
        "X\tY",
        "X \x01",
        "X \x7f",
        "X \xc3\xa9",
        "X \"\xff\"",
        "X \"\xc3\"",
        "X \"\xed\xa0\x80\"",
        "X \"\xc0\xaf\"",
        "X \"a\\\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_bad(bad[i], strlen(bad[i]));
    parse_bad("X \0Y", 4);
    parse_bad("X \"a\0b\"", 7);
}

static void test_argument_limit(void **state)
{
    (void)state;
    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&line, "ALIAS");
    for (int i = 1; i < ADMIN_MAX_ARGS; i++)
        sbuf_appends(&line, " a");
    struct admin_args a;
    const char *err;
    assert_int_equal(admin_parse_args(line.data, line.len, &a, &err), 0);
    assert_int_equal(a.argc, ADMIN_MAX_ARGS);
    admin_args_free(&a);
    sbuf_appends(&line, " a");
    assert_int_equal(admin_parse_args(line.data, line.len, &a, &err), -1);
    sbuf_free(&line);
}

/* Every prefix of a line, from a buffer of exactly that size (ASan sees over-reads). */
static void test_prefixes(void **state)
{
    (void)state;
    const char *line = "USER ADD \"bob@example.com\" \"p \\\"w\\\\\" QUOTA 10M";
    size_t n = strlen(line);
    for (size_t k = 0; k <= n; k++) {
        char *copy = xmemdup(line, k);
        struct admin_args a;
        const char *err;
        if (admin_parse_args(copy, k, &a, &err) == 0) admin_args_free(&a);
        free(copy);
    }
    struct admin_args a = parse_ok(line, 6);
    assert_string_equal(a.argv[3], "p \"w\\");
    admin_args_free(&a);
}

static void check_json(const char *in, size_t len, const char *want)
{
    struct sbuf j = SBUF_INIT(SBUF_NO_MAX);
    admin_json_string_n(&j, in, len);
    assert_string_equal(sbuf_cstr(&j), want);
    sbuf_free(&j);
}

static void test_json_string(void **state)
{
    (void)state;
    check_json("plain", 5, "\"plain\"");
    check_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    check_json("\n\r\t\x01\x1f\x7f", 6, "\"\\u000a\\u000d\\u0009\\u0001\\u001f\\u007f\"");
    check_json("nul\0x", 5, "\"nul\\u0000x\"");
    check_json("\xc3\xa9t\xc3\xa9 \xf0\x9f\x93\xa7", 10, "\"\xc3\xa9t\xc3\xa9 \xf0\x9f\x93\xa7\"");
    check_json("bad\xff", 4, "\"bad\\u00ff\"");
    check_json("cut\xc3", 4, "\"cut\\u00c3\"");
    struct sbuf j = SBUF_INIT(SBUF_NO_MAX);
    admin_json_string(&j, NULL);
    assert_string_equal(sbuf_cstr(&j), "\"\"");
    sbuf_free(&j);
    assert_true(admin_utf8_valid("\xe2\x82\xac", 3));
    assert_false(admin_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(admin_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atoms_and_quotes), cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_argument_limit),   cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_json_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

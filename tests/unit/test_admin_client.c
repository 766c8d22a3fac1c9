/* test_admin_client.c - unit tests for admin_client.c's argument quoting
 *
 * Atoms stay atoms; spaces, quotes, backslashes, TAB, non-ASCII and empty strings are
 * quoted with \" and \\ escapes; CR, LF and other control characters are refused (a line
 * break would let an argument start a second command); an over-long line is refused;
 * and -ERR codes map to the documented exit codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin_client.h"
#include "sbuf.h"

static void check(const char *arg, const char *expected)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    const char *why = NULL;
    assert_int_equal(admin_quote(&out, arg, &why), 0);
    assert_string_equal(sbuf_cstr(&out), expected);
    sbuf_free(&out);
}

static void test_quote(void **state)
{
    check("example.com", "example.com");
    check("a@b.c", "a@b.c");
    check("", "\"\"");
    check("two words", "\"two words\"");
    check("say \"hi\"", "\"say \\\"hi\\\"\"");
    check("back\\slash", "\"back\\\\slash\"");
    check("tab\there", "\"tab\there\"");
    check("caf\xc3\xa9", "\"caf\xc3\xa9\"");
    check("{}[]()=!#", "{}[]()=!#");
}

static void test_refused(void **state)
{
    static const char *const bad[] = {"a\rb", "a\nb", "\r\n", "bell\a", "esc\x1b[0m", "del\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
        sbuf_appends(&out, "KEEP");
        const char *why = NULL;
        assert_int_equal(admin_quote(&out, bad[i], &why), -1);
        assert_non_null(why);
        assert_string_equal(sbuf_cstr(&out), "KEEP");
        sbuf_free(&out);
    }
}

static void test_format(void **state)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    char error[256];
    const char *args[] = {"CONFIG", "SET", "SMTP", "Banner", "Hello \"you\""};
    assert_int_equal(admin_format(&out, args, 5, error, sizeof(error)), 0);
    assert_string_equal(sbuf_cstr(&out), "CONFIG SET SMTP Banner \"Hello \\\"you\\\"\"");
    const char *evil[] = {"LOGIN", "a", "b\r\nDOMAIN DEL x"};
    assert_int_equal(admin_format(&out, evil, 3, error, sizeof(error)), -1);
    assert_non_null(strstr(error, "line break"));
    char *big = malloc(ADMIN_LINE_MAX);
    memset(big, 'x', ADMIN_LINE_MAX - 1);
    big[ADMIN_LINE_MAX - 1] = '\0';
    const char *toolong[] = {"DOMAIN", big};
    assert_int_equal(admin_format(&out, toolong, 2, error, sizeof(error)), -1);
    big[ADMIN_LINE_MAX - 10] = '\0'; /* "DOMAIN " + 8182 + CRLF = 8191 */
    assert_int_equal(admin_format(&out, toolong, 2, error, sizeof(error)), 0);
    free(big);
    sbuf_free(&out);
}

static void test_exit_codes(void **state)
{
    assert_int_equal(admin_exit_code("NOTFOUND"), 1);
    assert_int_equal(admin_exit_code("EXISTS"), 1);
    assert_int_equal(admin_exit_code("INVALID"), 1);
    assert_int_equal(admin_exit_code("DENIED"), 1);
    assert_int_equal(admin_exit_code("SYNTAX"), 2);
    assert_int_equal(admin_exit_code("AUTH"), 3);
    assert_int_equal(admin_exit_code("LOCKED"), 3);
    assert_int_equal(admin_exit_code("BUSY"), 75);
    assert_int_equal(admin_exit_code("UNAVAILABLE"), 75);
    assert_int_equal(admin_exit_code("TIMEOUT"), 75);
    assert_int_equal(admin_exit_code("WHATEVER"), 1);
}

/* What admin_fputs_safe() writes for s. */
static char *safe(const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    admin_fputs_safe(f, s);
    fclose(f);
    return buf;
}

static void test_fputs_safe(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain text", "plain text"},
        {"tab\there", "tab\\x09here"},
        {"\x1b[2J", "\\x1b[2J"},
        {"del\x7f", "del\\x7f"},
        {"j\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x93\xa7",
         "j\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x93\xa7"},
        {"c1 \xc2\x9b"
         "31m",
         "c1 \\x9b31m"}, /* CSI as UTF-8 */
        {"lone \x9b"
         "31m",
         "lone \\x9b31m"},                  /* CSI as a raw 8-bit byte */
        {"cut \xe2\x82", "cut \\xe2\\x82"}, /* a sequence the string ends in */
        {"overlong \xc0\xaf", "overlong \\xc0\\xaf"},
        {"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80"},
        {"too big \xf4\x90\x80\x80", "too big \\xf4\\x90\\x80\\x80"},
        {"latin1 caf\xe9!", "latin1 caf\\xe9!"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = safe(cases[i].in);
        assert_string_equal(got, cases[i].out);
        free(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote),      cmocka_unit_test(test_refused),
        cmocka_unit_test(test_format),     cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_fputs_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

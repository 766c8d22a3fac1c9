/* test_admin_ini.c - unit tests for admin_ini_rewrite(), CONFIG SET's INI rewriter
 *
 * Covered: a key replaced in place with comments, blank lines, other sections and the
 * "Key = " spacing kept; case-insensitive section and key names; a key added after the
 * section's last setting (before the blank line and the next section's comments); a
 * section added at the end (also to a file without a final newline, and to an empty
 * file); CRLF files stay CRLF; commented-out keys are not touched; values that need
 * quotes get them; CR, LF and values the INI cannot hold are refused. (That iniparser
 * reads a quoted value back as set is checked end to end in test_admin_port.py.)
 *
 * SECURITY: a value must never be able to add a line to alkaid.ini.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin.h"
#include "sbuf.h"
#include "xalloc.h"

static char *rewrite(const char *in, const char *sec, const char *key, const char *value)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    const char *err = NULL;
    int r = admin_ini_rewrite(in, strlen(in), sec, key, value, &out, &err);
    if (r < 0) {
        sbuf_free(&out);
        return NULL;
    }
    return sbuf_steal(&out);
}

static void expect(const char *in, const char *sec, const char *key, const char *value,
                   const char *want)
{
    char *got = rewrite(in, sec, key, value);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static const char *const base = "; top comment\n"
                                "[System]\n"
                                "; the name\n"
                                "Hostname=old.example\n"
                                "User=\n"
                                "\n"
                                "; about SMTP\n"
                                "[SMTP]\n"
                                "Port = 25\n"
                                ";Banner=commented\n"
                                "MaxSessions=500\n"
                                "\n";

static void test_replace_in_place(void **state)
{
    (void)state;
    expect(base, "System", "Hostname", "new.example",
           "; top comment\n[System]\n; the name\nHostname=new.example\nUser=\n\n; about SMTP\n"
           "[SMTP]\nPort = 25\n;Banner=commented\nMaxSessions=500\n\n");
    /* names are case-insensitive; the spacing before the value is kept */
    expect(base, "smtp", "port", "2525",
           "; top comment\n[System]\n; the name\nHostname=old.example\nUser=\n\n; about SMTP\n"
           "[SMTP]\nPort = 2525\n;Banner=commented\nMaxSessions=500\n\n");
    /* the same value: the same text */
    expect(base, "SMTP", "Port", "25", base);
}

static void test_add_key(void **state)
{
    (void)state;
    /* after the section's last setting, not after the next section's comment */
    expect(base, "System", "Extra", "1",
           "; top comment\n[System]\n; the name\nHostname=old.example\nUser=\nExtra=1\n\n"
           "; about SMTP\n[SMTP]\nPort = 25\n;Banner=commented\nMaxSessions=500\n\n");
    /* a commented-out key is left alone */
    expect(base, "SMTP", "Banner", "Hi",
           "; top comment\n[System]\n; the name\nHostname=old.example\nUser=\n\n; about SMTP\n"
           "[SMTP]\nPort = 25\n;Banner=commented\nMaxSessions=500\nBanner=Hi\n\n");
    /* a section with no setting yet */
    expect("[A]\n[B]\nx=1\n", "A", "k", "v", "[A]\nk=v\n[B]\nx=1\n");
    /* the last line without its newline */
    expect("[A]\nx=1", "A", "k", "v", "[A]\nx=1\nk=v\n");
    expect("[A]\nx=1", "A", "x", "2", "[A]\nx=2\n");
}

static void test_add_section(void **state)
{
    (void)state;
    expect("[A]\nx=1\n", "DNS", "Tries", "3", "[A]\nx=1\n\n[DNS]\nTries=3\n");
    expect("[A]\nx=1", "DNS", "Tries", "3", "[A]\nx=1\n\n[DNS]\nTries=3\n");
    expect("", "DNS", "Tries", "3", "[DNS]\nTries=3\n");
    expect("[A]\r\nx=1\r\n", "B", "k", "v", "[A]\r\nx=1\r\n\r\n[B]\r\nk=v\r\n");
    expect("[A]\r\nx=1\r\n", "A", "x", "2", "[A]\r\nx=2\r\n");
}

static void test_values(void **state)
{
    (void)state;
    expect("[A]\nk=1\n", "A", "k", "", "[A]\nk=\n");
    expect("[A]\nk=1\n", "A", "k", "a;b", "[A]\nk=\"a;b\"\n");
    expect("[A]\nk=1\n", "A", "k", " lead", "[A]\nk=\" lead\"\n");
    expect("[A]\nk=1\n", "A", "k", "say \"hi\" #1", "[A]\nk='say \"hi\" #1'\n");
    expect("[A]\nk=1\n", "A", "k", "ends\\", "[A]\nk=\"ends\\\"\n");
    assert_null(rewrite("[A]\nk=1\n", "A", "k", "two\nlines"));
    assert_null(rewrite("[A]\nk=1\n", "A", "k", "cr\rhere"));
    assert_null(rewrite("[A]\nk=1\n", "A", "k", "both \" and ' ;"));
    char *big = xmalloc(2000);
    memset(big, 'x', 1999);
    big[1999] = '\0';
    assert_null(rewrite("[A]\nk=1\n", "A", "k", big));
    free(big);
    /* a file holding a NUL is not rewritten */
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    const char *err;
    assert_int_equal(admin_ini_rewrite("[A]\0k=1\n", 8, "A", "k", "2", &out, &err), -1);
    sbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replace_in_place),
        cmocka_unit_test(test_add_key),
        cmocka_unit_test(test_add_section),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

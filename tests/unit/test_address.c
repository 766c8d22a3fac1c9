/* test_address.c - unit tests for address.c (splitting, name rules, wildcard matching)
 *
 * SECURITY: the rules tested here keep account and domain names from escaping mail/;
 * the cases below include the path tricks ("..", "/", "\\", leading dots) they refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "address.h"

static void test_split(void **state)
{
    char *l = NULL, *d = NULL;
    assert_int_equal(address_split("Bob.Smith@Example.COM", &l, &d), 0);
    assert_string_equal(l, "bob.smith");
    assert_string_equal(d, "example.com");
    free(l);
    free(d);

    /* The last '@' separates the domain. */
    assert_int_equal(address_split("a@b@c.example", &l, &d), 0);
    assert_string_equal(l, "a@b");
    assert_string_equal(d, "c.example");
    free(l);
    free(d);

    l = d = NULL;
    assert_int_equal(address_split("nobody", &l, &d), -1);
    assert_int_equal(address_split("@example.com", &l, &d), -1);
    assert_int_equal(address_split("bob@", &l, &d), -1);
    assert_int_equal(address_split("", &l, &d), -1);
    assert_null(l);
    assert_null(d);
}

static void test_domain_valid(void **state)
{
    assert_true(address_domain_valid("example.com", false));
    assert_true(address_domain_valid("EXAMPLE.com", false));
    assert_true(address_domain_valid("localhost", false));
    assert_true(address_domain_valid("mail-1.sub.example.co.uk", false));
    assert_true(address_domain_valid("1.2.3.example", false));

    assert_false(address_domain_valid("", false));
    assert_false(address_domain_valid(".example.com", false));
    assert_false(address_domain_valid("example.com.", false));
    assert_false(address_domain_valid("example..com", false));
    assert_false(address_domain_valid("-example.com", false));
    assert_false(address_domain_valid("example-.com", false));
    assert_false(address_domain_valid("exa_mple.com", false));
    assert_false(address_domain_valid("exa mple.com", false));
    assert_false(address_domain_valid("../etc", false));
    assert_false(address_domain_valid("a/b.com", false));
    assert_false(address_domain_valid("a\\b.com", false));
    assert_false(address_domain_valid("a%b.com", false));
    assert_false(address_domain_valid("*.example.com", false));
    assert_false(address_domain_valid("exa\nmple.com", false));

    /* Label and total lengths. */
    char label[70];
    memset(label, 'a', 63);
    memcpy(label + 63, ".com", 5);
    assert_true(address_domain_valid(label, false));
    memset(label, 'a', 64);
    memcpy(label + 64, ".com", 5);
    assert_false(address_domain_valid(label, false));

    char longname[300];
    size_t n = 0;
    while (n + 10 <= 253) {
        memcpy(longname + n, "abcdefghi.", 10);
        n += 10;
    }
    memcpy(longname + n, "com", 4); /* 250 + 3 = 253 */
    assert_int_equal(strlen(longname), 253);
    assert_true(address_domain_valid(longname, false));
    memcpy(longname + n, "comm", 5);
    assert_false(address_domain_valid(longname, false));

    /* Wildcards. */
    assert_true(address_domain_valid("*.example.com", true));
    assert_true(address_domain_valid("*example.com", true));
    assert_true(address_domain_valid("mail*.example.com", true));
    assert_true(address_domain_valid("*.com", true));
    assert_false(address_domain_valid("*", true));
    assert_false(address_domain_valid("*.*", true));
    assert_false(address_domain_valid("example.*", true));
    assert_false(address_domain_valid("example.c*", true));
    assert_false(address_domain_valid(".*.example.com", true));
    assert_false(address_domain_valid("*..example.com", true));
}

static void test_localpart_valid(void **state)
{
    assert_true(address_localpart_valid("bob"));
    assert_true(address_localpart_valid("Bob.Smith"));
    assert_true(address_localpart_valid("bob+tag"));
    assert_true(address_localpart_valid("a_b=c-d"));
    assert_true(address_localpart_valid("0"));
    assert_true(address_localpart_valid("null"));

    assert_false(address_localpart_valid(""));
    assert_false(address_localpart_valid("."));
    assert_false(address_localpart_valid(".."));
    assert_false(address_localpart_valid(".bob"));
    assert_false(address_localpart_valid("bob."));
    assert_false(address_localpart_valid("bo..b"));
    assert_false(address_localpart_valid("bo/b"));
    assert_false(address_localpart_valid("bo\\b"));
    assert_false(address_localpart_valid("bo b"));
    assert_false(address_localpart_valid("bo@b"));
    assert_false(address_localpart_valid("bo\tb"));
    assert_false(address_localpart_valid("bo\"b"));
    assert_false(address_localpart_valid("b\xc3\xb6"));

    char s[70];
    memset(s, 'x', 64);
    s[64] = '\0';
    assert_true(address_localpart_valid(s));
    s[64] = 'x';
    s[65] = '\0';
    assert_false(address_localpart_valid(s));
}

static void test_domain_match(void **state)
{
    assert_true(address_domain_match("*.example.com", "mail.example.com"));
    assert_true(address_domain_match("*.example.com", "a.b.example.com"));
    assert_false(address_domain_match("*.example.com", "example.com"));
    assert_false(address_domain_match("*.example.com", "mail.example.com.evil"));
    assert_false(address_domain_match("*.example.com", "badexample.com"));
    assert_true(address_domain_match("*example.com", "example.com"));
    assert_true(address_domain_match("*example.com", "myexample.com"));
    assert_true(address_domain_match("*example.com", "a.example.com"));
    assert_true(address_domain_match("mail*.example.com", "mail.example.com"));
    assert_true(address_domain_match("mail*.example.com", "mail2.example.com"));
    assert_false(address_domain_match("mail*.example.com", "web.example.com"));
    assert_true(address_domain_match("*.EXAMPLE.com", "Mail.Example.COM"));
    assert_true(address_domain_match("example.com", "EXAMPLE.COM"));
    assert_false(address_domain_match("example.com", "example.co"));
    assert_false(address_domain_match("example.co", "example.com"));
    assert_true(address_domain_match("a*b*c.com", "axxbyyc.com"));
    assert_true(address_domain_match("a*b*c.com", "abc.com"));
    assert_false(address_domain_match("a*b*c.com", "acb.com"));
    assert_true(address_domain_match("**.com", "x.com"));
    assert_false(address_domain_match("*.com", ""));
    assert_false(address_domain_match("", "x.com"));
    assert_true(address_domain_match("", ""));

    /* Many stars against a long non-matching name stays fast (no exponential
     * backtracking); this would take ages with a naive recursive matcher. */
    char pattern[200], domain[260];
    size_t p = 0;
    for (int i = 0; i < 60; i++) {
        pattern[p++] = '*';
        pattern[p++] = 'a';
    }
    pattern[p++] = 'b';
    pattern[p] = '\0';
    memset(domain, 'a', 250);
    domain[250] = '\0';
    assert_false(address_domain_match(pattern, domain));
}

static void test_domain_dir_and_lower(void **state)
{
    char *d = address_domain_dir("*.Example.COM");
    assert_string_equal(d, "%.example.com");
    free(d);
    d = address_domain_dir("mail*x*.example.com");
    assert_string_equal(d, "mail%x%.example.com");
    free(d);
    d = address_domain_dir("example.com");
    assert_string_equal(d, "example.com");
    free(d);

    char s[] = "MiXeD.Case-123@X";
    assert_ptr_equal(address_lower(s), s);
    assert_string_equal(s, "mixed.case-123@x");
    char u[] = "\xc3\x96";
    assert_string_equal(address_lower(u), "\xc3\x96");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_localpart_valid),
        cmocka_unit_test(test_domain_valid),
        cmocka_unit_test(test_domain_match),
        cmocka_unit_test(test_domain_dir_and_lower),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

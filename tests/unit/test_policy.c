/* test_policy.c - unit tests for policy.c ([SMTP] RelayIPs: who may relay)
 *
 * Covered: exact addresses (no prefix matches), '*' wildcards for IPv4 and IPv6 (case
 * does not matter), CIDR networks for IPv4 and IPv6 at byte and non-byte boundaries,
 * /0 and full-length prefixes, an IPv4 network never matching an IPv6 address and the
 * reverse, lists separated by spaces, commas and tabs in any mix, empty and NULL inputs,
 * and bad patterns (prefix too long, negative, empty, trailing garbage, not an address,
 * over-long) matching nothing while the good patterns around them still work.
 *
 * SECURITY: a pattern the administrator got wrong must never open the relay to
 * everybody.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

static void yes(const char *patterns, const char *ip)
{
    if (!policy_ip_listed(patterns, ip)) {
        print_error("'%s' should list %s\n", patterns ? patterns : "(null)", ip ? ip : "(null)");
        fail();
    }
}

static void no(const char *patterns, const char *ip)
{
    if (policy_ip_listed(patterns, ip)) {
        print_error("'%s' should not list %s\n", patterns ? patterns : "(null)",
                    ip ? ip : "(null)");
        fail();
    }
}

static void test_exact(void **state)
{
    yes("127.0.0.1", "127.0.0.1");
    no("127.0.0.1", "127.0.0.2");
    /* no prefix or suffix matches */
    no("192.168.1.1", "192.168.1.10");
    no("192.168.1.10", "192.168.1.1");
    no("10.0.0.1", "110.0.0.1");
    yes("::1", "::1");
    no("::1", "::2");
    yes("2001:db8::1", "2001:db8::1");
    yes("2001:DB8::1", "2001:db8::1");
}

static void test_wildcards(void **state)
{
    yes("192.168.1.*", "192.168.1.5");
    yes("192.168.1.*", "192.168.1.255");
    no("192.168.1.*", "192.168.2.5");
    no("192.168.1.*", "192.168.10.5");
    yes("10.*", "10.1.2.3");
    no("10.*", "100.1.2.3");
    no("10.*", "110.1.2.3");
    yes("*.*.*.1", "192.0.2.1");
    no("*.*.*.1", "192.0.2.10");
    yes("192.168.*.1", "192.168.77.1");
    no("192.168.*.1", "192.169.77.1");
    yes("2001:db8:*", "2001:db8::1");
    yes("2001:db8:*", "2001:db8:ffff::1");
    yes("2001:DB8:*", "2001:db8:a::1");
    yes("2001:db8:*", "2001:DB8:A::1");
    no("2001:db8:*", "2001:db9::1");
    yes("fe80::*", "fe80::1");
    /* "*" alone lists everybody: that is what it says */
    yes("*", "203.0.113.9");
    yes("*", "2001:db8::9");
}

static void test_cidr_v4(void **state)
{
    yes("10.0.0.0/8", "10.0.0.0");
    yes("10.0.0.0/8", "10.255.255.255");
    no("10.0.0.0/8", "11.0.0.0");
    no("10.0.0.0/8", "9.255.255.255");
    yes("192.168.0.0/16", "192.168.200.1");
    no("192.168.0.0/16", "192.169.0.1");
    /* non-byte boundaries */
    yes("192.168.1.128/25", "192.168.1.128");
    yes("192.168.1.128/25", "192.168.1.255");
    no("192.168.1.128/25", "192.168.1.127");
    no("192.168.1.128/25", "192.168.1.0");
    yes("172.16.0.0/12", "172.31.255.255");
    no("172.16.0.0/12", "172.32.0.0");
    no("172.16.0.0/12", "172.15.255.255");
    yes("100.64.0.0/10", "100.127.0.1");
    no("100.64.0.0/10", "100.128.0.1");
    /* host bits in the network are ignored */
    yes("10.1.2.3/8", "10.200.0.1");
    yes("192.168.1.77/24", "192.168.1.1");
    /* /32 and /0 */
    yes("192.0.2.1/32", "192.0.2.1");
    no("192.0.2.1/32", "192.0.2.0");
    no("192.0.2.1/32", "192.0.2.3");
    yes("0.0.0.0/0", "203.0.113.1");
    yes("0.0.0.0/0", "0.0.0.0");
    yes("0.0.0.0/0", "255.255.255.255");
    /* /31 */
    yes("192.0.2.4/31", "192.0.2.5");
    no("192.0.2.4/31", "192.0.2.6");
    /* an IPv4 network never matches an IPv6 address */
    no("0.0.0.0/0", "::1");
    no("0.0.0.0/0", "2001:db8::1");
}

static void test_cidr_v6(void **state)
{
    yes("2001:db8::/32", "2001:db8::1");
    yes("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
    no("2001:db8::/32", "2001:db9::1");
    no("2001:db8::/32", "2001:db7:ffff::1");
    yes("2001:db8:abcd::/48", "2001:db8:abcd:12::1");
    no("2001:db8:abcd::/48", "2001:db8:abce::1");
    /* non-byte boundaries */
    yes("2001:db8::/29", "2001:dbf::1");
    no("2001:db8::/29", "2001:dc0::1");
    yes("fe80::/10", "febf::1");
    no("fe80::/10", "fec0::1");
    yes("fc00::/7", "fdff::1");
    no("fc00::/7", "fe00::1");
    /* /128 and /0 */
    yes("::1/128", "::1");
    no("::1/128", "::2");
    yes("::/0", "2001:db8::1");
    yes("::/0", "::");
    /* an IPv6 network never matches an IPv4 address */
    no("::/0", "192.0.2.1");
    /* upper case in the pattern or the address */
    yes("2001:DB8::/32", "2001:db8::5");
    yes("2001:db8::/32", "2001:DB8::5");
}

static void test_lists(void **state)
{
    const char *list = "127.0.0.1, 192.168.1.*  ,10.0.0.0/8\t2001:db8::/32,,  ";
    yes(list, "127.0.0.1");
    yes(list, "192.168.1.20");
    yes(list, "10.9.8.7");
    yes(list, "2001:db8::7");
    no(list, "127.0.0.2");
    no(list, "192.168.2.20");
    no(list, "11.0.0.1");
    no(list, "2001:db9::7");
    yes("  127.0.0.1", "127.0.0.1");
    yes("127.0.0.1  ", "127.0.0.1");
    yes(",127.0.0.1,", "127.0.0.1");
    yes("192.0.2.1,192.0.2.2,192.0.2.3", "192.0.2.3");
    yes("192.0.2.1 192.0.2.2 192.0.2.3", "192.0.2.2");
    yes("192.0.2.1\t192.0.2.2", "192.0.2.2");
    /* a long list */
    char big[8192] = "";
    for (int i = 0; i < 250; i++) {
        char one[32];
        snprintf(one, sizeof(one), "198.51.100.%d, ", i);
        strcat(big, one);
    }
    strcat(big, "203.0.113.0/24");
    yes(big, "198.51.100.249");
    yes(big, "203.0.113.77");
    no(big, "198.51.101.1");
}

static void test_empty_and_null(void **state)
{
    no("", "127.0.0.1");
    no("   ", "127.0.0.1");
    no(", ,\t,", "127.0.0.1");
    no(NULL, "127.0.0.1");
    no("127.0.0.1", NULL);
    no("*", NULL);
    no(NULL, NULL);
    /* an empty address is listed by nothing specific */
    no("127.0.0.1", "");
    no("10.0.0.0/8", "");
}

static void test_bad_patterns_match_nothing(void **state)
{
    static const char *const addrs[] = {"10.0.0.1",        "192.0.2.1", "0.0.0.0",
                                        "255.255.255.255", "::1",       "2001:db8::1"};
    static const char *const bad[] = {
        "10.0.0.0/33",               /* prefix longer than the address */
        "::/129",      "0.0.0.0/-1", /* negative */
        "0.0.0.0/",                  /* no prefix */
        "/8",                        /* no network */
        "/0",          "0.0.0.0/8x", /* trailing garbage */
        "0.0.0.0/0x",  "0.0.0.0/ 0",    "0.0.0.0/0/0",
        "10.0.0/8", /* not an address */
        "256.0.0.0/0", "example.com/0", "0.0.0.0/99999999999999999999999",
        "1.2.3.4.5",   "10.0.0.1.",     "10.0.0.",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        for (size_t j = 0; j < sizeof(addrs) / sizeof(addrs[0]); j++)
            no(bad[i], addrs[j]);

    /* an over-long pattern is skipped whole, not cut into something that matches */
    char longpat[200];
    memset(longpat, ' ', sizeof(longpat));
    snprintf(longpat, sizeof(longpat), "10.0.0.1%0120d", 0);
    no(longpat, "10.0.0.1");
    char longwild[200];
    memset(longwild, '*', 150);
    longwild[150] = '\0';
    no(longwild, "10.0.0.1");

    /* bad entries do not spoil good ones next to them */
    yes("0.0.0.0/33, 10.0.0.0/8", "10.1.1.1");
    yes("garbage/x 192.0.2.1", "192.0.2.1");
    no("garbage/x 192.0.2.1", "192.0.2.2");
    char mixed[400];
    snprintf(mixed, sizeof(mixed), "%s 192.0.2.9", longpat);
    yes(mixed, "192.0.2.9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_cidr_v4),
        cmocka_unit_test(test_cidr_v6),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_bad_patterns_match_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_dialup.c - unit tests for the dial-up scheduler's pure parts (dialup.c, config.c)
 *
 * config_parse_schedule() ("08:00 12:30", "8:05"; "24:00", "8:5", "noon" refused),
 * dialup_next_time() (times of day, an interval, both, across midnight) in UTC, and
 * dialup_split_command() (spaces, no shell quoting).
 *
 * SECURITY: the command is split on spaces only: quotes and shell characters are plain
 * argument text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "config.h"
#include "dialup.h"
#include "sbuf.h"

/* 2024-03-10 00:00:00 UTC */
#define DAY0 1710028800LL
#define H(h) ((long long)(h)*3600)
#define M(m) ((long long)(m)*60)

static void test_parse_schedule(void **state)
{
    (void)state;
    int m[CONFIG_MAX_SCHEDULE];
    assert_int_equal(config_parse_schedule("", m, CONFIG_MAX_SCHEDULE), 0);
    assert_int_equal(config_parse_schedule("08:00 18:30", m, CONFIG_MAX_SCHEDULE), 2);
    assert_int_equal(m[0], 8 * 60);
    assert_int_equal(m[1], 18 * 60 + 30);
    assert_int_equal(config_parse_schedule(" 8:05,23:59 ", m, CONFIG_MAX_SCHEDULE), 2);
    assert_int_equal(m[0], 8 * 60 + 5);
    assert_int_equal(m[1], 23 * 60 + 59);
    static const char *const bad[] = {"24:00", "8:5", "noon", "08:60", "08:00x", "123:00", ":30"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(config_parse_schedule(bad[i], m, CONFIG_MAX_SCHEDULE), -1);
    assert_int_equal(config_parse_schedule("01:00 02:00 03:00", m, 2), -1);

    struct sbuf why = SBUF_INIT(4096);
    assert_int_equal(config_check_value("DialUp", "Schedule", "08:00 12:30 18:00", &why), 0);
    assert_int_equal(config_check_value("DialUp", "Schedule", "8am", &why), -1);
    assert_int_equal(config_check_value("DialUp", "Connect", "pon isp", &why), -1);
    assert_int_equal(config_check_value("DialUp", "Connect", "/usr/bin/pon isp", &why), 0);
    assert_int_equal(config_check_value("DialUp", "ETRNServer", "mail.isp.example:2525", &why), 0);
    assert_int_equal(config_check_value("DialUp", "ETRNDomains", "a.example b.example", &why), 0);
    assert_int_equal(config_check_value("DialUp", "ETRNDomains", "a.example b/c", &why), -1);
    sbuf_free(&why);
}

static void test_next_time(void **state)
{
    (void)state;
    int m[2] = {8 * 60, 18 * 60 + 30};
    /* before the first time of the day */
    assert_int_equal(dialup_next_time(m, 2, 0, DAY0 + H(7)), DAY0 + H(8));
    /* exactly at a time: the next one */
    assert_int_equal(dialup_next_time(m, 2, 0, DAY0 + H(8)), DAY0 + H(18) + M(30));
    /* after the last one: tomorrow's first, across midnight */
    assert_int_equal(dialup_next_time(m, 2, 0, DAY0 + H(19)), DAY0 + H(24 + 8));
    assert_int_equal(dialup_next_time(m, 2, 0, DAY0 + H(23) + M(59) + 59), DAY0 + H(24 + 8));
    /* an interval alone */
    assert_int_equal(dialup_next_time(NULL, 0, 1800, DAY0 + H(10)), DAY0 + H(10) + M(30));
    /* both: whichever comes first */
    assert_int_equal(dialup_next_time(m, 2, 1800, DAY0 + H(7) + M(50)), DAY0 + H(8));
    assert_int_equal(dialup_next_time(m, 2, 1800, DAY0 + H(7)), DAY0 + H(7) + M(30));
    assert_int_equal(dialup_next_time(m, 2, H(3), DAY0 + H(23) + M(50)), DAY0 + H(26) + M(50));
    assert_int_equal(dialup_next_time(m, 2, H(12), DAY0 + H(23)), DAY0 + H(24 + 8));
    /* neither */
    assert_int_equal(dialup_next_time(NULL, 0, 0, DAY0), 0);
}

static void test_split_command(void **state)
{
    (void)state;
    assert_null(dialup_split_command(""));
    assert_null(dialup_split_command("   "));
    char **v = dialup_split_command("  /usr/bin/pon  isp 'a b' ;rm ");
    assert_non_null(v);
    assert_string_equal(v[0], "/usr/bin/pon");
    assert_string_equal(v[1], "isp");
    assert_string_equal(v[2], "'a");
    assert_string_equal(v[3], "b'");
    assert_string_equal(v[4], ";rm");
    assert_null(v[5]);
    free(v);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_schedule),
        cmocka_unit_test(test_next_time),
        cmocka_unit_test(test_split_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

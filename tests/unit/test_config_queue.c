/* test_config_queue.c - unit tests for the outbound-delivery settings of config.c
 *
 * config_parse_time() ("90", "90s", "15m", "1h", "2d"; "", "1x", "m", "-5" refused),
 * config_parse_time_list() (commas and spaces, the item limit, each item 1 s to 7 d),
 * config_tls_mode(), and config_check_value() for [Queue] TLSPolicy, [Queue]
 * RetrySchedule and [SMTP] RelayFrom.
 *
 * SECURITY: RelayFrom goes into MAIL FROM: an address with spaces or brackets would let
 * the configuration inject SMTP parameters.
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

#include "config.h"
#include "sbuf.h"

static void test_parse_time(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        long long v;
    } good[] = {{"90", 90},     {"90s", 90}, {"15m", 900}, {"1h", 3600},
                {"2d", 172800}, {"0", 0},    {"007", 7},   {"604800", 604800}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        long long v = -1;
        assert_int_equal(config_parse_time(good[i].s, &v), 0);
        assert_int_equal(v, good[i].v);
    }
    static const char *const bad[] = {"", "1x", "m", "-5", "1m5", " 5", "5 ", "1.5h", "h1", "1mm"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long long v = 12345;
        assert_int_equal(config_parse_time(bad[i], &v), -1);
        assert_int_equal(v, 12345); /* untouched */
    }
}

static void test_parse_time_list(void **state)
{
    (void)state;
    long long t[CONFIG_MAX_RETRIES];
    assert_int_equal(config_parse_time_list("15m,30m,1h", t, CONFIG_MAX_RETRIES), 3);
    assert_int_equal(t[0], 900);
    assert_int_equal(t[1], 1800);
    assert_int_equal(t[2], 3600);
    memset(t, 0, sizeof(t));
    assert_int_equal(config_parse_time_list(" 15m , 30m  1h ", t, CONFIG_MAX_RETRIES), 3);
    assert_int_equal(t[0], 900);
    assert_int_equal(t[2], 3600);
    assert_int_equal(config_parse_time_list("7d", t, CONFIG_MAX_RETRIES), 1);
    assert_int_equal(t[0], 604800);
    assert_int_equal(config_parse_time_list("", t, CONFIG_MAX_RETRIES), 0);

    /* too many items */
    assert_int_equal(config_parse_time_list("1m,2m,3m", t, 2), -1);
    assert_int_equal(config_parse_time_list("1m,2m", t, 2), 2);
    struct sbuf many = SBUF_INIT(SBUF_NO_MAX);
    for (int i = 0; i < CONFIG_MAX_RETRIES; i++)
        sbuf_printf(&many, "%s%dm", i ? "," : "", i + 1);
    assert_int_equal(config_parse_time_list(sbuf_cstr(&many), t, CONFIG_MAX_RETRIES),
                     CONFIG_MAX_RETRIES);
    assert_int_equal(t[CONFIG_MAX_RETRIES - 1], CONFIG_MAX_RETRIES * 60);
    sbuf_appends(&many, ",1h");
    assert_int_equal(config_parse_time_list(sbuf_cstr(&many), t, CONFIG_MAX_RETRIES), -1);
    sbuf_free(&many);

    /* an item of 0 or over 7 days, or not a time */
    assert_int_equal(config_parse_time_list("15m,0,1h", t, CONFIG_MAX_RETRIES), -1);
    assert_int_equal(config_parse_time_list("0s", t, CONFIG_MAX_RETRIES), -1);
    assert_int_equal(config_parse_time_list("8d", t, CONFIG_MAX_RETRIES), -1);
    assert_int_equal(config_parse_time_list("604801", t, CONFIG_MAX_RETRIES), -1);
    assert_int_equal(config_parse_time_list("15m,x", t, CONFIG_MAX_RETRIES), -1);
    assert_int_equal(config_parse_time_list("15m;30m", t, CONFIG_MAX_RETRIES), -1);
}

static void test_tls_mode(void **state)
{
    (void)state;
    assert_int_equal(config_tls_mode("none"), TLS_MODE_NONE);
    assert_int_equal(config_tls_mode("may"), TLS_MODE_MAY);
    assert_int_equal(config_tls_mode("MAY"), TLS_MODE_MAY);
    assert_int_equal(config_tls_mode("Require"), TLS_MODE_REQUIRE);
    assert_int_equal(config_tls_mode("verify"), TLS_MODE_VERIFY);
    assert_int_equal(config_tls_mode(""), -1);
    assert_int_equal(config_tls_mode("bogus"), -1);
    assert_int_equal(config_tls_mode("may "), -1);
    assert_int_equal(config_tls_mode("encrypt"), -1);
}

/* config_check_value() result; a refusal must name the section and key. */
static int check(const char *section, const char *key, const char *value)
{
    struct sbuf msg = SBUF_INIT(SBUF_NO_MAX);
    int r = config_check_value(section, key, value, &msg);
    if (r == 0) {
        assert_int_equal(msg.len, 0);
    } else {
        struct sbuf want = SBUF_INIT(SBUF_NO_MAX);
        sbuf_printf(&want, "[%s] %s: ", section, key);
        assert_non_null(strstr(sbuf_cstr(&msg), sbuf_cstr(&want)));
        sbuf_free(&want);
    }
    sbuf_free(&msg);
    return r;
}

static void test_check_tls_policy(void **state)
{
    (void)state;
    assert_int_equal(check("Queue", "TLSPolicy", "a.example=verify .b.example=require"), 0);
    assert_int_equal(check("Queue", "TLSPolicy", ""), 0);
    assert_int_equal(check("Queue", "TLSPolicy", "a.example=may,b.example=NONE"), 0);
    assert_int_equal(check("Queue", "TLSPolicy", "a.example=bogus"), -1);
    assert_int_equal(check("Queue", "TLSPolicy", "=may"), -1);
    assert_int_equal(check("Queue", "TLSPolicy", "a.example"), -1);
    assert_int_equal(check("Queue", "TLSPolicy", "a.example= may"), -1);
    assert_int_equal(check("Queue", "TLSPolicy", "a.example=verify b/x=may"), -1);
    assert_int_equal(check("Queue", "TLSPolicy", ".=may"), -1);
    assert_int_equal(check("Queue", "TLS", "require"), 0);
    assert_int_equal(check("Queue", "TLS", "sometimes"), -1);
}

static void test_check_retry_schedule(void **state)
{
    (void)state;
    assert_int_equal(check("Queue", "RetrySchedule", "15m,30m,1h"), 0);
    assert_int_equal(check("Queue", "RetrySchedule", "1h 2h"), 0);
    assert_int_equal(check("Queue", "RetrySchedule", ""), -1); /* at least one */
    assert_int_equal(check("Queue", "RetrySchedule", "15m,0"), -1);
    assert_int_equal(check("Queue", "RetrySchedule", "8d"), -1);
    assert_int_equal(check("Queue", "RetrySchedule", "soon"), -1);
}

static void test_check_relay_from(void **state)
{
    (void)state;
    assert_int_equal(check("SMTP", "RelayFrom", "x@y.example"), 0);
    assert_int_equal(check("SMTP", "RelayFrom", ""), 0);
    assert_int_equal(check("SMTP", "RelayFrom", "nobody"), -1);
    assert_int_equal(check("SMTP", "RelayFrom", "a b@c"), -1);
    assert_int_equal(check("SMTP", "RelayFrom", "@y.example"), -1);
    assert_int_equal(check("SMTP", "RelayFrom", "x@"), -1);
    assert_int_equal(check("SMTP", "RelayFrom", "<x@y.example>"), -1);
    assert_int_equal(check("SMTP", "RelayFrom", "x@y.example> SIZE=1"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_parse_time_list),
        cmocka_unit_test(test_tls_mode),
        cmocka_unit_test(test_check_tls_policy),
        cmocka_unit_test(test_check_retry_schedule),
        cmocka_unit_test(test_check_relay_from),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

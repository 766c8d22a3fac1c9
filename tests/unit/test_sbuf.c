/* test_sbuf.c - unit tests for sbuf.c (growable byte strings that cannot overflow)
 *
 * Covered: growth from empty to megabytes with the contents intact and NUL-terminated,
 * binary data, the hard maximum (an append that would pass it fails and leaves the buffer
 * exactly as it was), printf (short, longer than the internal 256-byte buffer, past the
 * maximum), consume, truncate, reset, steal, and requests whose sizes would overflow
 * size_t.
 *
 * SECURITY: the maximum and overflow cases are what parsers rely on to bound what a
 * client can make us allocate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sbuf.h"

/* A snapshot of a buffer, to check that a failed call changed nothing. */
struct snap {
    char *data;
    size_t len, cap, max;
    char *copy;
};

static struct snap take(const struct sbuf *sb)
{
    struct snap s = {sb->data, sb->len, sb->cap, sb->max, NULL};
    if (sb->data) {
        s.copy = malloc(sb->len + 1);
        memcpy(s.copy, sb->data, sb->len + 1);
    }
    return s;
}

static void assert_unchanged(const struct sbuf *sb, struct snap *s)
{
    assert_ptr_equal(sb->data, s->data);
    assert_int_equal(sb->len, s->len);
    assert_int_equal(sb->cap, s->cap);
    assert_int_equal(sb->max, s->max);
    if (s->copy) assert_memory_equal(sb->data, s->copy, s->len + 1);
    free(s->copy);
    s->copy = NULL;
}

static void test_init_empty(void **state)
{
    struct sbuf sb;
    sbuf_init(&sb, 100);
    assert_null(sb.data);
    assert_int_equal(sb.len, 0);
    assert_int_equal(sb.max, 100);
    assert_string_equal(sbuf_cstr(&sb), "");
    sbuf_init(&sb, 0);
    assert_int_equal(sb.max, SBUF_NO_MAX);
    struct sbuf sb2 = SBUF_INIT(7);
    assert_null(sb2.data);
    assert_int_equal(sb2.max, 7);
    /* freeing and resetting an empty buffer is fine */
    sbuf_reset(&sb2);
    sbuf_free(&sb2);
    assert_null(sb2.data);
}

static void test_growth(void **state)
{
    struct sbuf sb = SBUF_INIT(0); /* max 0 means "no maximum" */
    size_t prev_cap = 0;
    int grew = 0;
    for (size_t i = 0; i < 300000; i++) {
        char c = (char)('a' + i % 26);
        assert_int_equal(sbuf_putc(&sb, c), 0);
        assert_int_equal(sb.len, i + 1);
        assert_true(sb.cap > sb.len);
        assert_int_equal(sb.data[sb.len], '\0');
        if (sb.cap != prev_cap) {
            grew++;
            prev_cap = sb.cap;
        }
    }
    /* amortised growth: a handful of reallocations, not one per byte */
    assert_true(grew < 40);
    for (size_t i = 0; i < sb.len; i++)
        assert_int_equal(sb.data[i], (char)('a' + i % 26));
    assert_int_equal(strlen(sbuf_cstr(&sb)), 300000);

    /* one big append */
    size_t big = 3u << 20;
    char *blob = malloc(big);
    for (size_t i = 0; i < big; i++)
        blob[i] = (char)(i * 7);
    sbuf_reset(&sb);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sbuf_cstr(&sb), "");
    assert_int_equal(sbuf_append(&sb, blob, big), 0);
    assert_int_equal(sb.len, big);
    assert_memory_equal(sb.data, blob, big);
    assert_int_equal(sb.data[big], '\0');
    free(blob);
    sbuf_free(&sb);
    assert_null(sb.data);
    assert_int_equal(sb.len, 0);
    assert_int_equal(sb.cap, 0);
}

static void test_binary_and_appends(void **state)
{
    struct sbuf sb = SBUF_INIT(1000);
    assert_int_equal(sbuf_append(&sb, "a\0b", 3), 0);
    assert_int_equal(sb.len, 3);
    assert_memory_equal(sb.data, "a\0b", 4);
    assert_int_equal(sbuf_appends(&sb, "cd"), 0);
    assert_int_equal(sb.len, 5);
    assert_memory_equal(sb.data, "a\0bcd", 6);
    /* empty appends succeed and change nothing */
    assert_int_equal(sbuf_append(&sb, "", 0), 0);
    assert_int_equal(sbuf_appends(&sb, ""), 0);
    assert_int_equal(sb.len, 5);
    sbuf_free(&sb);

    /* an empty append on a fresh buffer gives a valid empty string */
    assert_int_equal(sbuf_append(&sb, "", 0), 0);
    assert_non_null(sb.data);
    assert_string_equal(sb.data, "");
    sbuf_free(&sb);
}

static void test_reserve(void **state)
{
    struct sbuf sb = SBUF_INIT(1000);
    assert_int_equal(sbuf_reserve(&sb, 500), 0);
    assert_true(sb.cap >= 501);
    assert_int_equal(sb.len, 0);
    assert_int_equal(sbuf_reserve(&sb, 1000), 0);
    assert_true(sb.cap >= 1001);
    struct snap s = take(&sb);
    assert_int_equal(sbuf_reserve(&sb, 1001), -1);
    assert_unchanged(&sb, &s);
    sbuf_free(&sb);
}

static void test_max_enforced(void **state)
{
    struct sbuf sb = SBUF_INIT(10);
    assert_int_equal(sbuf_appends(&sb, "0123456789"), 0); /* exactly max: fine */
    assert_int_equal(sb.len, 10);

    struct snap s = take(&sb);
    assert_int_equal(sbuf_putc(&sb, 'x'), -1);
    assert_unchanged(&sb, &s);
    s = take(&sb);
    assert_int_equal(sbuf_appends(&sb, "x"), -1);
    assert_unchanged(&sb, &s);
    s = take(&sb);
    assert_int_equal(sbuf_printf(&sb, "%d", 1), -1);
    assert_unchanged(&sb, &s);
    assert_string_equal(sb.data, "0123456789");

    /* partially full: an append that would straddle the maximum adds nothing */
    sbuf_truncate(&sb, 8);
    s = take(&sb);
    assert_int_equal(sbuf_append(&sb, "abc", 3), -1);
    assert_unchanged(&sb, &s);
    assert_string_equal(sb.data, "01234567");
    assert_int_equal(sbuf_append(&sb, "ab", 2), 0);
    assert_string_equal(sb.data, "01234567ab");
    sbuf_free(&sb);

    /* first append larger than max on a fresh buffer: nothing allocated */
    struct sbuf sb2 = SBUF_INIT(4);
    assert_int_equal(sbuf_appends(&sb2, "hello"), -1);
    assert_null(sb2.data);
    assert_int_equal(sb2.len, 0);
    assert_int_equal(sb2.cap, 0);
    assert_string_equal(sbuf_cstr(&sb2), "");
    sbuf_free(&sb2);
}

static void test_printf(void **state)
{
    struct sbuf sb = SBUF_INIT(0);
    assert_int_equal(sbuf_printf(&sb, "%s=%d", "x", 42), 0);
    assert_string_equal(sb.data, "x=42");
    assert_int_equal(sbuf_printf(&sb, "%c", '!'), 0);
    assert_string_equal(sb.data, "x=42!");
    assert_int_equal(sbuf_printf(&sb, "%s", ""), 0);
    assert_int_equal(sb.len, 5);

    /* longer than the internal first-try buffer (256) */
    char longs[1000];
    memset(longs, 'L', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    assert_int_equal(sbuf_printf(&sb, "[%s]%d", longs, 7), 0);
    assert_int_equal(sb.len, 5 + 1 + 999 + 1 + 1);
    assert_memory_equal(sb.data, "x=42![", 6);
    assert_int_equal(sb.data[6], 'L');
    assert_int_equal(sb.data[6 + 998], 'L');
    assert_string_equal(sb.data + 6 + 999, "]7");
    assert_int_equal(strlen(sb.data), sb.len);
    sbuf_free(&sb);

    /* exactly 255 and 256 characters: both sides of the internal buffer */
    for (size_t n = 250; n < 262; n++) {
        struct sbuf t = SBUF_INIT(0);
        assert_int_equal(sbuf_printf(&t, "%.*s", (int)n, longs), 0);
        assert_int_equal(t.len, n);
        assert_int_equal(strlen(t.data), n);
        sbuf_free(&t);
    }

    /* a long printf past the maximum leaves the buffer unchanged */
    struct sbuf lim = SBUF_INIT(600);
    assert_int_equal(sbuf_appends(&lim, "start"), 0);
    struct snap s = take(&lim);
    assert_int_equal(sbuf_printf(&lim, "%s", longs), -1);
    assert_unchanged(&lim, &s);
    /* a long printf that fits exactly */
    assert_int_equal(sbuf_printf(&lim, "%.*s", 595, longs), 0);
    assert_int_equal(lim.len, 600);
    assert_int_equal(lim.data[600], '\0');
    sbuf_free(&lim);
}

static int call_vprintf(struct sbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = sbuf_vprintf(sb, fmt, ap);
    va_end(ap);
    return r;
}

static void test_vprintf(void **state)
{
    struct sbuf sb = SBUF_INIT(0);
    char longs[700];
    memset(longs, 'v', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    assert_int_equal(call_vprintf(&sb, "%s|%s", longs, "end"), 0);
    assert_int_equal(sb.len, 699 + 4);
    assert_string_equal(sb.data + 699, "|end");
    sbuf_free(&sb);
}

static void test_consume(void **state)
{
    struct sbuf sb = SBUF_INIT(0);
    sbuf_consume(&sb, 0); /* empty, never allocated */
    sbuf_consume(&sb, 5);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sbuf_cstr(&sb), "");

    sbuf_appends(&sb, "hello world");
    sbuf_consume(&sb, 0);
    assert_string_equal(sb.data, "hello world");
    sbuf_consume(&sb, 6);
    assert_int_equal(sb.len, 5);
    assert_string_equal(sb.data, "world");
    sbuf_consume(&sb, 5);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sbuf_cstr(&sb), "");
    sbuf_appends(&sb, "abc");
    sbuf_consume(&sb, 1000);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sbuf_cstr(&sb), "");
    /* usable again afterwards */
    sbuf_appends(&sb, "xyz");
    assert_string_equal(sb.data, "xyz");

    /* binary */
    sbuf_reset(&sb);
    sbuf_append(&sb, "a\0b\0c", 5);
    sbuf_consume(&sb, 2);
    assert_int_equal(sb.len, 3);
    assert_memory_equal(sb.data, "b\0c", 4);
    sbuf_free(&sb);
}

static void test_truncate(void **state)
{
    struct sbuf sb = SBUF_INIT(0);
    sbuf_truncate(&sb, 0); /* never allocated: no-op */
    sbuf_truncate(&sb, 10);
    assert_null(sb.data);
    sbuf_appends(&sb, "abcdef");
    sbuf_truncate(&sb, 10); /* longer: no-op */
    assert_string_equal(sb.data, "abcdef");
    sbuf_truncate(&sb, 6);
    assert_string_equal(sb.data, "abcdef");
    sbuf_truncate(&sb, 3);
    assert_int_equal(sb.len, 3);
    assert_string_equal(sb.data, "abc");
    sbuf_truncate(&sb, 0);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.data, "");
    sbuf_free(&sb);
}

static void test_steal(void **state)
{
    struct sbuf sb = SBUF_INIT(100);
    char *p = sbuf_steal(&sb); /* never allocated: a fresh "" */
    assert_non_null(p);
    assert_string_equal(p, "");
    free(p);

    sbuf_appends(&sb, "stolen");
    char *data = sb.data;
    p = sbuf_steal(&sb);
    assert_ptr_equal(p, data);
    assert_string_equal(p, "stolen");
    assert_null(sb.data);
    assert_int_equal(sb.len, 0);
    assert_int_equal(sb.cap, 0);
    assert_int_equal(sb.max, 100); /* the limit stays */
    assert_string_equal(sbuf_cstr(&sb), "");
    /* the buffer is usable again and independent of the stolen memory */
    sbuf_appends(&sb, "new");
    assert_string_equal(sb.data, "new");
    assert_string_equal(p, "stolen");
    free(p);
    sbuf_free(&sb);
}

static void test_overflow_sizes(void **state)
{
    static const char src[8] = "1234567";
    struct sbuf sb = SBUF_INIT(0);
    struct snap s = take(&sb);
    assert_int_equal(sbuf_reserve(&sb, SIZE_MAX), -1);
    assert_unchanged(&sb, &s);
    assert_int_equal(sbuf_append(&sb, src, SIZE_MAX), -1);
    assert_int_equal(sbuf_reserve(&sb, SBUF_NO_MAX + 1), -1);
    assert_unchanged(&sb, &s);

    sbuf_appends(&sb, "12345");
    s = take(&sb);
    assert_int_equal(sbuf_reserve(&sb, SIZE_MAX), -1);
    assert_int_equal(sbuf_reserve(&sb, SIZE_MAX - 5), -1);
    assert_int_equal(sbuf_reserve(&sb, SIZE_MAX - 4), -1);
    assert_int_equal(sbuf_reserve(&sb, SIZE_MAX - 6), -1);
    assert_int_equal(sbuf_reserve(&sb, SBUF_NO_MAX), -1); /* 5 + NO_MAX > NO_MAX */
    assert_int_equal(sbuf_append(&sb, src, SIZE_MAX - 4), -1);
    assert_unchanged(&sb, &s);
    sbuf_free(&sb);

    /* a buffer with a small maximum refuses huge requests the same way */
    struct sbuf small = SBUF_INIT(16);
    sbuf_appends(&small, "abc");
    s = take(&small);
    assert_int_equal(sbuf_reserve(&small, SIZE_MAX), -1);
    assert_int_equal(sbuf_reserve(&small, SIZE_MAX - 2), -1);
    assert_unchanged(&small, &s);
    sbuf_free(&small);
}

/* A caller may give the largest possible maximum to mean "no limit of my own". The
 * overflow checks must still hold: len + extra + 1 must not wrap around. */
static void test_overflow_with_huge_max(void **state)
{
    struct sbuf sb;
    sbuf_init(&sb, SIZE_MAX);
    struct snap s = take(&sb);
    /* len 0, extra SIZE_MAX: len + extra + 1 wraps to 0 */
    assert_int_equal(sbuf_reserve(&sb, SIZE_MAX), -1);
    assert_unchanged(&sb, &s);

    sbuf_appends(&sb, "x");
    s = take(&sb);
    /* len 1, extra SIZE_MAX - 1: need wraps to 0; a "success" here would let
     * sbuf_append() memcpy SIZE_MAX - 1 bytes into a 64-byte buffer */
    assert_int_equal(sbuf_reserve(&sb, SIZE_MAX - 1), -1);
    assert_unchanged(&sb, &s);
    sbuf_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_empty),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_binary_and_appends),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_max_enforced),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_vprintf),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_steal),
        cmocka_unit_test(test_overflow_sizes),
        cmocka_unit_test(test_overflow_with_huge_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_json.c - unit tests for json.c
 *
 * Every value type, string escapes (\uXXXX to UTF-8, surrogate pairs), numbers as
 * integers and doubles, member lookup, json_write() round trips, and the refusals:
 * malformed input of every kind, lone surrogates, control characters in strings,
 * trailing garbage, and nesting past JSON_MAX_DEPTH (also fed one byte shorter at a time
 * so that no prefix is accepted by mistake).
 *
 * SECURITY: replies from the admin port are parsed here; a hostile server must not crash
 * the client or make it recurse without bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"
#include "sbuf.h"

static struct json *parse(const char *s)
{
    return json_parse(s, strlen(s), NULL);
}

static void test_scalars(void **state)
{
    struct json *v = parse(" true ");
    assert_non_null(v);
    assert_int_equal(v->type, JSON_BOOL);
    assert_true(v->boolean);
    json_free(&v);
    assert_null(v);
    v = parse("null");
    assert_int_equal(v->type, JSON_NULL);
    json_free(&v);
    v = parse("-12345678901234");
    assert_true(v->is_int);
    assert_true(v->integer == -12345678901234ll);
    json_free(&v);
    v = parse("9223372036854775807");
    assert_true(v->is_int && v->integer == INT64_MAX);
    json_free(&v);
    v = parse("99999999999999999999");
    assert_false(v->is_int);
    json_free(&v);
    v = parse("1.5e3");
    assert_false(v->is_int);
    assert_true(v->number == 1500.0);
    assert_int_equal(json_int(v, 0), 1500);
    json_free(&v);
}

static void test_strings(void **state)
{
    struct json *v = parse("\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\u20ac\\ud83d\\ude00\"");
    assert_non_null(v);
    assert_string_equal(v->str, "a\"b\\c/d\n\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    json_free(&v);
    v = parse("\"x\\u0000y\"");
    assert_non_null(v);
    assert_int_equal(v->str_len, 3);
    assert_memory_equal(v->str, "x\0y", 3);
    json_free(&v);
    v = parse("\"\"");
    assert_string_equal(v->str, "");
    json_free(&v);
}

static void test_objects(void **state)
{
    const char *text = "{\"services\":{\"smtpd\":{\"smtp\":{\"bytes_in\":42},\"held\":false},"
                       "\"list\":[1,\"two\",null,[],{}]},\"a\":1,\"a\":2}";
    struct json *v = parse(text);
    assert_non_null(v);
    assert_int_equal(json_int(json_path(v, "services.smtpd.smtp.bytes_in"), -1), 42);
    assert_false(json_bool(json_path(v, "services.smtpd.held"), true));
    assert_null(json_path(v, "services.smtpd.nothing"));
    assert_null(json_path(v, "a.b"));
    assert_int_equal(json_int(json_get(v, "a"), 0), 1); /* the first of duplicates */
    const struct json *list = json_path(v, "services.list");
    assert_int_equal(list->type, JSON_ARRAY);
    assert_int_equal(list->n, 5);
    assert_string_equal(json_str(list->items[1], NULL), "two");
    assert_int_equal(json_int(list->items[1], -7), -7);
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    json_write(&out, v);
    assert_string_equal(sbuf_cstr(&out), text);
    sbuf_free(&out);
    json_free(&v);
}

static void test_write_escapes(void **state)
{
    struct json *v = parse("[\"q\\\"\\u0001\\n\", 1.25, -0, true]");
    assert_non_null(v);
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    json_write(&out, v);
    assert_string_equal(sbuf_cstr(&out), "[\"q\\\"\\u0001\\u000a\",1.25,0,true]");
    sbuf_free(&out);
    json_free(&v);
}

static void test_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "[",
        "[1,]",
        "[,1]",
        "{\"a\"}",
        "{\"a\":}",
        "{a:1}",
        "{\"a\":1,}",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"a\nb\"",
        "tru",
        "nul",
        "falsey",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "+1",
        "1 2",
        "[1] x",
        "{\"a\":1}}",
        "NaN",
        "Infinity",
        "[\"a\" \"b\"]",
        "\"\\",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err = NULL;
        struct json *v = json_parse(bad[i], strlen(bad[i]), &err);
        if (v != NULL) fail_msg("accepted %s", bad[i]);
        assert_non_null(err);
    }
}

static void test_depth(void **state)
{
    char buf[2 * (JSON_MAX_DEPTH + 10) + 1];
    for (int depth = JSON_MAX_DEPTH - 1; depth <= JSON_MAX_DEPTH + 1; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++)
            buf[n++] = '[';
        for (int i = 0; i < depth; i++)
            buf[n++] = ']';
        buf[n] = '\0';
        const char *err = NULL;
        struct json *v = json_parse(buf, n, &err);
        if (depth <= JSON_MAX_DEPTH) {
            assert_non_null(v);
        } else {
            assert_null(v);
            assert_non_null(strstr(err, "nested"));
        }
        json_free(&v);
    }
    /* a very deep input is refused without recursing into all of it */
    size_t big = 1000000;
    char *deep = malloc(big);
    memset(deep, '[', big);
    assert_null(json_parse(deep, big, NULL));
    memset(deep, '{', big);
    assert_null(json_parse(deep, big, NULL));
    free(deep);
}

static void test_prefixes(void **state)
{
    /* no proper prefix of a valid document is accepted, and the length is respected */
    const char *text = "{\"a\":[1,2,{\"b\":\"c\\u00e9\"}],\"d\":true}";
    size_t len = strlen(text);
    for (size_t n = 0; n < len; n++) {
        char *copy = malloc(n + 1);
        memcpy(copy, text, n);
        struct json *v = json_parse(copy, n, NULL);
        if (v != NULL) fail_msg("accepted a prefix of %zu bytes", n);
        free(copy);
    }
    struct json *v = json_parse(text, len, NULL);
    assert_non_null(v);
    json_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),   cmocka_unit_test(test_strings),
        cmocka_unit_test(test_objects),   cmocka_unit_test(test_write_escapes),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_depth),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

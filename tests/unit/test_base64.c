/* test_base64.c - unit tests for base64.c
 *
 * RFC 4648 section 10 vectors both ways, binary round trips of every length up to a few
 * hundred bytes, and the strict decoder's refusals: wrong length, characters outside the
 * alphabet (including whitespace and the URL-safe alphabet), misplaced or missing
 * padding, non-zero trailing bits, and a full output buffer.
 *
 * SECURITY: the decoder guards SASL input; every refusal here is one a client could try.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"

static const struct {
    const char *plain;
    const char *encoded;
} vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static void test_encode_vectors(void **state)
{
    for (size_t i = 0; i < NVECTORS; i++) {
        struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
        assert_int_equal(base64_encode(vectors[i].plain, strlen(vectors[i].plain), &out), 0);
        assert_string_equal(sbuf_cstr(&out), vectors[i].encoded);
        assert_int_equal(out.len, strlen(vectors[i].encoded));
        sbuf_free(&out);
    }
}

static void test_decode_vectors(void **state)
{
    for (size_t i = 0; i < NVECTORS; i++) {
        struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
        assert_int_equal(base64_decode(vectors[i].encoded, strlen(vectors[i].encoded), &out), 0);
        assert_int_equal(out.len, strlen(vectors[i].plain));
        assert_string_equal(sbuf_cstr(&out), vectors[i].plain);
        sbuf_free(&out);
    }
}

static void test_appends(void **state)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    assert_int_equal(sbuf_appends(&out, "x:"), 0);
    assert_int_equal(base64_encode("foo", 3, &out), 0);
    assert_string_equal(sbuf_cstr(&out), "x:Zm9v");
    sbuf_reset(&out);
    assert_int_equal(sbuf_appends(&out, "y:"), 0);
    assert_int_equal(base64_decode("Zm9vYg==", 8, &out), 0);
    assert_string_equal(sbuf_cstr(&out), "y:foob");
    sbuf_free(&out);
}

static void test_binary_round_trip(void **state)
{
    unsigned char data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(data); len++) {
        struct sbuf enc = SBUF_INIT(SBUF_NO_MAX), dec = SBUF_INIT(SBUF_NO_MAX);
        assert_int_equal(base64_encode(data, len, &enc), 0);
        assert_int_equal(enc.len, (len + 2) / 3 * 4);
        assert_int_equal(base64_decode(enc.data ? enc.data : "", enc.len, &dec), 0);
        assert_int_equal(dec.len, len);
        if (len) assert_memory_equal(dec.data, data, len);
        sbuf_free(&enc);
        sbuf_free(&dec);
    }
}

static void test_all_byte_values(void **state)
{
    unsigned char data[256];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)i;
    struct sbuf enc = SBUF_INIT(SBUF_NO_MAX), dec = SBUF_INIT(SBUF_NO_MAX);
    assert_int_equal(base64_encode(data, sizeof(data), &enc), 0);
    assert_int_equal(base64_decode(enc.data, enc.len, &dec), 0);
    assert_int_equal(dec.len, sizeof(data));
    assert_memory_equal(dec.data, data, sizeof(data));
    sbuf_free(&enc);
    sbuf_free(&dec);
}

static void test_full_alphabet(void **state)
{
    const char *text = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct sbuf dec = SBUF_INIT(SBUF_NO_MAX), enc = SBUF_INIT(SBUF_NO_MAX);
    assert_int_equal(base64_decode(text, strlen(text), &dec), 0);
    assert_int_equal(dec.len, 48);
    assert_int_equal(base64_encode(dec.data, dec.len, &enc), 0);
    assert_string_equal(sbuf_cstr(&enc), text);
    sbuf_free(&dec);
    sbuf_free(&enc);
}

static void expect_reject(const char *text, size_t len)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    assert_int_equal(sbuf_appends(&out, "keep"), 0);
    if (base64_decode(text, len, &out) != -1) fail_msg("accepted \"%.*s\"", (int)len, text);
    /* the buffer is left as it was */
    assert_int_equal(out.len, 4);
    assert_string_equal(sbuf_cstr(&out), "keep");
    sbuf_free(&out);
}

#define REJECT(s) expect_reject((s), sizeof(s) - 1)

static void test_reject_length(void **state)
{
    REJECT("Z");
    REJECT("Zg");  /* missing padding */
    REJECT("Zg="); /* short padding */
    REJECT("Zm9");
    REJECT("Zm9vY");
    REJECT("Zm9vYg=");
    REJECT("Zm9vYg===");
}

static void test_reject_characters(void **state)
{
    REJECT("Zm9v\n");
    REJECT("Zm9v\r\n");
    REJECT(" Zm9v");
    REJECT("Zm 9v");
    REJECT("Zm\t9v");
    REJECT("Zm9vYg==\n");
    REJECT("Zm-v"); /* URL-safe alphabet */
    REJECT("Zm_v");
    REJECT("Zm9*");
    REJECT("Zm9\x80");
    REJECT("\xc3\xa9Zm");
    REJECT("Zm\0v"); /* embedded NUL */
    REJECT("Zm9v\0\0\0\0");
}

static void test_reject_padding(void **state)
{
    REJECT("====");
    REJECT("Z===");
    REJECT("=Zm9");
    REJECT("Z=m9");
    REJECT("Zm=9");
    REJECT("Zg==Zm9v"); /* padding before the end */
    REJECT("Zm8=Zm9v");
    REJECT("Zg=a");
    REJECT("Zm9vYg=a");
}

static void test_reject_trailing_bits(void **state)
{
    /* "f" is Zg==; Zh== .. Zv== carry the same byte with non-zero unused bits */
    REJECT("Zh==");
    REJECT("Zv==");
    REJECT("Zm9="); /* "fo" with a low bit set in the third character */
    REJECT("Zm/=");
}

static void test_trailing_bits_boundary(void **state)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    assert_int_equal(base64_decode("Zm8=", 4, &out), 0); /* "fo": low two bits of '8' zero */
    assert_string_equal(sbuf_cstr(&out), "fo");
    sbuf_reset(&out);
    assert_int_equal(base64_decode("Zm9=", 4, &out), -1); /* '9' has a low bit set */
    assert_int_equal(base64_decode("Zm+=", 4, &out), -1);
    assert_int_equal(base64_decode("Zg==", 4, &out), 0);
    assert_string_equal(sbuf_cstr(&out), "f");
    sbuf_free(&out);
}

static void test_empty(void **state)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    assert_int_equal(base64_decode("", 0, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(base64_encode("", 0, &out), 0);
    assert_int_equal(out.len, 0);
    assert_string_equal(sbuf_cstr(&out), "");
    sbuf_free(&out);
}

static void test_max_reached(void **state)
{
    struct sbuf out = SBUF_INIT(5);
    assert_int_equal(base64_decode("Zm9vYmFy", 8, &out), -1); /* 6 bytes > 5 */
    assert_int_equal(out.len, 0);
    assert_int_equal(base64_decode("Zm9vYmE=", 8, &out), 0); /* exactly 5 */
    assert_string_equal(sbuf_cstr(&out), "fooba");
    assert_int_equal(base64_decode("Zg==", 4, &out), -1);
    assert_string_equal(sbuf_cstr(&out), "fooba");
    sbuf_free(&out);

    struct sbuf enc = SBUF_INIT(7);
    assert_int_equal(base64_encode("foobar", 6, &enc), -1);
    assert_int_equal(enc.len, 0);
    assert_int_equal(base64_encode("foo", 3, &enc), 0);
    assert_string_equal(sbuf_cstr(&enc), "Zm9v");
    sbuf_free(&enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_vectors),
        cmocka_unit_test(test_decode_vectors),
        cmocka_unit_test(test_appends),
        cmocka_unit_test(test_binary_round_trip),
        cmocka_unit_test(test_all_byte_values),
        cmocka_unit_test(test_full_alphabet),
        cmocka_unit_test(test_reject_length),
        cmocka_unit_test(test_reject_characters),
        cmocka_unit_test(test_reject_padding),
        cmocka_unit_test(test_reject_trailing_bits),
        cmocka_unit_test(test_trailing_bits_boundary),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_max_reached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_mutf7.c - unit tests for modified UTF-7 (mutf7.c)
 *
 * RFC 3501 5.1.3's example and other vectors both ways (BMP, surrogate pairs, "&-"),
 * every prefix of each valid encoding (valid exactly when the cut is outside an
 * "&...-" sequence, and then it decodes to a prefix of the whole and encodes back to
 * itself), every BMP code point and some supplementary ones round-tripped, and the
 * refusals: printable ASCII in a run, adjacent runs, unterminated runs, characters
 * outside the alphabet, padding bits, incomplete units, lone and reversed surrogates,
 * NUL, control and 8-bit octets; on the encoding side malformed UTF-8 and NUL. A refused
 * conversion leaves the output buffer as it was.
 *
 * SECURITY: the decoder decides which folder a client names; every refusal here is a
 * second spelling of some name that must not be accepted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mutf7.h"
#include "sbuf.h"
#include "xalloc.h"

static const struct {
    const char *mutf7;
    const char *utf8;
} vectors[] = {
    {"", ""},
    {"INBOX", "INBOX"},
    {"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
                                        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
    {"&-", "&"},
    {"&-&-", "&&"},
    {"a&-b", "a&b"},
    {"&Jjo-", "\xe2\x98\xba"},
    {"&Jjo-&-", "\xe2\x98\xba&"},
    {"&-&Jjo-", "&\xe2\x98\xba"},
    {"&Jjo-a&Jjo-", "\xe2\x98\xba"
                    "a\xe2\x98\xba"},
    {"&2D3eAA-", "\xf0\x9f\x98\x80"},
    {"a&2D3eAA-b", "a\xf0\x9f\x98\x80"
                   "b"},
    {"&2,,f,w-", "\xf4\x8f\xbf\xbf"},
    {"&AOnYPd4ATi0-", "\xc3\xa9\xf0\x9f\x98\x80\xe4\xb8\xad"},
    {"&ANw-n&AO8-c&APY-d&AOk- &JxM-", "\xc3\x9cn\xc3\xaf"
                                      "c\xc3\xb6"
                                      "d\xc3\xa9 \xe2\x9c\x93"},
    {"&AAk-", "\t"},
    {"&AH8-", "\x7f"},
    {"&AOk-", "\xc3\xa9"},
    {" !\"#$%'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~",
     " !\"#$%'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~"},
};

#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static void test_decode_vectors(void **state)
{
    for (size_t i = 0; i < NVECTORS; i++) {
        struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
        const char *m = vectors[i].mutf7;
        assert_true(mutf7_valid(m, strlen(m)));
        assert_int_equal(mutf7_to_utf8(m, strlen(m), &out), 0);
        assert_string_equal(sbuf_cstr(&out), vectors[i].utf8);
        assert_int_equal(out.len, strlen(vectors[i].utf8));
        sbuf_free(&out);
    }
}

static void test_encode_vectors(void **state)
{
    for (size_t i = 0; i < NVECTORS; i++) {
        struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
        const char *u = vectors[i].utf8;
        assert_int_equal(mutf7_from_utf8(u, strlen(u), &out), 0);
        assert_string_equal(sbuf_cstr(&out), vectors[i].mutf7);
        sbuf_free(&out);
    }
}

/* Output is appended after what the buffer already holds. */
static void test_appends(void **state)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    assert_int_equal(sbuf_appends(&out, "x/"), 0);
    assert_int_equal(mutf7_to_utf8("&Jjo-", 5, &out), 0);
    assert_int_equal(mutf7_from_utf8("\xe2\x98\xba", 3, &out), 0);
    assert_string_equal(sbuf_cstr(&out), "x/\xe2\x98\xba&Jjo-");
    sbuf_free(&out);
}

/* Every prefix of a valid name: valid iff the cut is outside "&...-"; a valid prefix
 * decodes to a prefix of the full name and encodes back to itself. */
static void test_prefixes(void **state)
{
    for (size_t i = 0; i < NVECTORS; i++) {
        const char *m = vectors[i].mutf7;
        size_t len = strlen(m);
        bool inside = false;
        for (size_t k = 0; k <= len; k++) {
            /* inside is whether m[0..k) ends within an &...- sequence */
            char *pre = xmemdup(m, k); /* exact size: ASan sees over-reads */
            struct sbuf out = SBUF_INIT(SBUF_NO_MAX), back = SBUF_INIT(SBUF_NO_MAX);
            assert_int_equal(mutf7_valid(pre, k), !inside);
            assert_int_equal(mutf7_to_utf8(pre, k, &out), inside ? -1 : 0);
            if (!inside) {
                assert_int_equal(strncmp(sbuf_cstr(&out), vectors[i].utf8, out.len), 0);
                assert_int_equal(mutf7_from_utf8(sbuf_cstr(&out), out.len, &back), 0);
                assert_int_equal(back.len, k);
                assert_memory_equal(sbuf_cstr(&back), m, k);
            } else {
                assert_int_equal(out.len, 0);
            }
            sbuf_free(&out);
            sbuf_free(&back);
            free(pre);
            if (k < len) {
                if (!inside && m[k] == '&')
                    inside = true;
                else if (inside && m[k] == '-')
                    inside = false;
            }
        }
    }
}

static void check_invalid(const char *m, size_t len)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    char *copy = xmemdup(m, len);
    assert_int_equal(sbuf_appends(&out, "keep"), 0);
    if (mutf7_valid(copy, len)) fail_msg("accepted: \"%.*s\"", (int)len, m);
    assert_int_equal(mutf7_to_utf8(copy, len, &out), -1);
    assert_string_equal(sbuf_cstr(&out), "keep");
    assert_int_equal(out.len, 4);
    sbuf_free(&out);
    free(copy);
}

#define INVALID(lit) check_invalid(lit, sizeof(lit) - 1)

static void test_invalid(void **state)
{
    /* a run of printable ASCII (RFC 3501: must be represented as itself) */
    INVALID("&AGE-");    /* 'a' */
    INVALID("&ACY-");    /* '&' */
    INVALID("&ACA-");    /* ' ' */
    INVALID("&AH4-");    /* '~' */
    INVALID("&AGEAYg-"); /* "ab" */
    INVALID("&JjoAYQ-"); /* U+263A then 'a' in the same run */
    /* adjacent runs */
    INVALID("&Jjo-&Jjo-");
    INVALID("a&Jjo-&AOk-b");
    /* unterminated */
    INVALID("&");
    INVALID("a&");
    INVALID("&Jjo");
    INVALID("&Jjo&-");
    INVALID("&U,BTFw");
    /* characters outside the modified alphabet */
    INVALID("&Jj/-");
    INVALID("&Jj=-");
    INVALID("&Jjo=-");
    INVALID("&Jj o-");
    INVALID("&Jj.-");
    INVALID("&Jj_-");
    /* non-zero padding bits */
    INVALID("&Jjp-");
    INVALID("&Jjr-");
    INVALID("&U,BTFx-");
    /* incomplete units or an extra character */
    INVALID("&J-");
    INVALID("&Jj-");
    INVALID("&JjoA-");
    INVALID("&JjoAA-");
    INVALID("&U,BTFwA-");
    INVALID("&U,BTFwAA-");
    /* surrogates: lone high, lone low, reversed, high then non-surrogate */
    INVALID("&2D0-");
    INVALID("&2D3YPQ-");
    INVALID("&3gA-");
    INVALID("&3gDYPQ-");
    INVALID("&2D0mOg-");
    INVALID("&2D0-a&3gA-");
    /* NUL, encoded or raw */
    INVALID("&AAA-");
    INVALID("&JjoAAA-");
    check_invalid("a\0b", 3);
    check_invalid("\0", 1);
    /* octets outside printable ASCII in the input */
    INVALID("\xe5\x8f\xb0");
    INVALID("a\xff");
    INVALID("a\tb");
    INVALID("a\r\nb");
    INVALID("\x7f");
    INVALID("&Jjo\x80-");
}

static void check_bad_utf8(const char *u, size_t len)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    char *copy = xmemdup(u, len);
    assert_int_equal(sbuf_appends(&out, "keep"), 0);
    assert_int_equal(mutf7_from_utf8(copy, len, &out), -1);
    assert_string_equal(sbuf_cstr(&out), "keep");
    sbuf_free(&out);
    free(copy);
}

#define BAD_UTF8(lit) check_bad_utf8(lit, sizeof(lit) - 1)

static void test_encode_invalid(void **state)
{
    BAD_UTF8("\0");
    BAD_UTF8("a\0");
    BAD_UTF8("\xc3\xa9\0");
    BAD_UTF8("\x80");
    BAD_UTF8("\xbf");
    BAD_UTF8("\xc0\xaf");         /* overlong '/' */
    BAD_UTF8("\xc1\xbf");         /* overlong */
    BAD_UTF8("\xe0\x80\xaf");     /* overlong */
    BAD_UTF8("\xf0\x80\x80\xaf"); /* overlong */
    BAD_UTF8("\xed\xa0\x80");     /* U+D800 */
    BAD_UTF8("\xed\xbf\xbf");     /* U+DFFF */
    BAD_UTF8("\xf4\x90\x80\x80"); /* U+110000 */
    BAD_UTF8("\xf5\x80\x80\x80");
    BAD_UTF8("\xff");
    BAD_UTF8("\xe5\x8f");     /* truncated */
    BAD_UTF8("a\xe5");        /* truncated */
    BAD_UTF8("\xf0\x9f\x98"); /* truncated */
    BAD_UTF8("\xe5\x8f"
             "a"); /* ASCII where a continuation belongs */
    BAD_UTF8("\xc3\xc3\xa9");
}

/* A full output buffer fails both ways and leaves the buffer as it was. */
static void test_buffer_max(void **state)
{
    struct sbuf out = SBUF_INIT(6);
    assert_int_equal(sbuf_appends(&out, "ab"), 0);
    assert_int_equal(mutf7_from_utf8("\xe2\x98\xba\xe2\x98\xba", 6, &out), -1);
    assert_string_equal(sbuf_cstr(&out), "ab");
    assert_int_equal(mutf7_to_utf8("&JjomOg-", 8, &out), -1);
    assert_string_equal(sbuf_cstr(&out), "ab");
    assert_int_equal(mutf7_to_utf8("&Jjo-", 5, &out), 0);
    assert_string_equal(sbuf_cstr(&out), "ab\xe2\x98\xba");
    sbuf_free(&out);
}

static void utf8_of(uint32_t cp, char *b, size_t *n)
{
    if (cp < 0x80) {
        b[0] = (char)cp;
        *n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3f));
        *n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | cp >> 12);
        b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        *n = 3;
    } else {
        b[0] = (char)(0xf0 | cp >> 18);
        b[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (char)(0x80 | (cp >> 6 & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        *n = 4;
    }
}

static void round_trip(const char *u, size_t len)
{
    struct sbuf m = SBUF_INIT(SBUF_NO_MAX), back = SBUF_INIT(SBUF_NO_MAX);
    assert_int_equal(mutf7_from_utf8(u, len, &m), 0);
    assert_true(mutf7_valid(m.data ? m.data : "", m.len));
    assert_int_equal(mutf7_to_utf8(sbuf_cstr(&m), m.len, &back), 0);
    assert_int_equal(back.len, len);
    assert_memory_equal(sbuf_cstr(&back), u, len);
    sbuf_free(&m);
    sbuf_free(&back);
}

/* Every code point but NUL and the surrogates, alone and between others. */
static void test_round_trip_all(void **state)
{
    char b[16];
    size_t n, k;
    for (uint32_t cp = 1; cp <= 0x10ffff; cp += cp < 0x10000 ? 1 : 97) {
        if (cp >= 0xd800 && cp <= 0xdfff) continue;
        utf8_of(cp, b, &n);
        round_trip(b, n);
        /* next to a non-ASCII character and between ASCII ones */
        b[n] = 'x';
        utf8_of(0x263a, b + n + 1, &k);
        round_trip(b, n + 1 + k);
        utf8_of(0xe9, b, &n);
        utf8_of(cp, b + n, &k);
        b[n + k] = '&';
        round_trip(b, n + k + 1);
    }
    /* pseudo-random mixtures of every run length */
    uint32_t seed = 1;
    for (int round = 0; round < 2000; round++) {
        char s[200];
        size_t len = 0;
        int count = (int)(seed % 20);
        for (int j = 0; j < count; j++) {
            seed = seed * 1103515245u + 12345u;
            uint32_t r = seed >> 8, cp;
            switch (r % 4) {
            case 0: cp = 0x20 + r / 4 % 95; break;
            case 1: cp = 1 + r / 4 % 0x7ff; break;
            case 2: cp = 0xe000 + r / 4 % 0x2000; break;
            default: cp = 0x10000 + r / 4 % 0x100000; break;
            }
            utf8_of(cp, s + len, &n);
            len += n;
        }
        seed = seed * 1103515245u + 12345u;
        round_trip(s, len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_vectors), cmocka_unit_test(test_encode_vectors),
        cmocka_unit_test(test_appends),        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_invalid),        cmocka_unit_test(test_encode_invalid),
        cmocka_unit_test(test_buffer_max),     cmocka_unit_test(test_round_trip_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

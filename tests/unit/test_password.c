/* test_password.c - unit tests for password.c
 *
 * Round trips of password_hash() / password_verify(), the RFC 7677 test vector as a
 * stored form computed independently with OpenSSL, iteration clamping, the stored-form
 * parser's refusals, and password_fake_secret() stability.
 *
 * SECURITY: the stored forms refused here are the ones a damaged or hostile account
 * store could hand us; none may be half-accepted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"
#include "password.h"
#include "sbuf.h"
#include "testutil.h"

/* RFC 7677 section 3: user "user", password "pencil", this salt, 4096 iterations */
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="

static void test_round_trip(void **state)
{
    char *hash = password_hash("correct horse", 13, 4096);
    assert_non_null(hash);
    assert_int_equal(strncmp(hash, "$scram-sha-256$4096$", 20), 0);
    assert_int_equal(password_verify("correct horse", 13, hash), 1);
    assert_int_equal(password_verify("correct horsE", 13, hash), 0);
    assert_int_equal(password_verify("correct hors", 12, hash), 0);
    assert_int_equal(password_verify("correct horse ", 14, hash), 0);
    assert_int_equal(password_verify("", 0, hash), 0);

    struct scram_secret s;
    assert_int_equal(password_scram_secret(hash, &s), 0);
    assert_int_equal(s.iterations, 4096);
    assert_int_equal(s.salt_len, 16);
    free(hash);
}

static void test_default_iterations(void **state)
{
    char *hash = password_hash("pw", 2, PASSWORD_DEFAULT_ITERATIONS);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "$scram-sha-256$%u$", (unsigned)PASSWORD_DEFAULT_ITERATIONS);
    assert_int_equal(strncmp(hash, prefix, strlen(prefix)), 0);
    assert_int_equal(password_verify("pw", 2, hash), 1);
    free(hash);
}

static void test_salt_is_random(void **state)
{
    char *a = password_hash("same", 4, 4096);
    char *b = password_hash("same", 4, 4096);
    assert_string_not_equal(a, b);
    assert_int_equal(password_verify("same", 4, a), 1);
    assert_int_equal(password_verify("same", 4, b), 1);
    free(a);
    free(b);
}

static void test_binary_password(void **state)
{
    /* the length counts, not the NUL */
    char *hash = password_hash("a\0b", 3, 4096);
    assert_int_equal(password_verify("a\0b", 3, hash), 1);
    assert_int_equal(password_verify("a\0c", 3, hash), 0);
    assert_int_equal(password_verify("a", 1, hash), 0);
    free(hash);

    hash = password_hash("", 0, 4096);
    assert_int_equal(password_verify("", 0, hash), 1);
    assert_int_equal(password_verify("x", 1, hash), 0);
    free(hash);
}

static void test_rfc7677_vector(void **state)
{
    char *form = reference_form("pencil", RFC_SALT, 4096);
    /* the keys of the RFC 7677 example, computed once with Python's hashlib */
    assert_string_equal(form, "$scram-sha-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
                              "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=$"
                              "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
    assert_int_equal(password_verify("pencil", 6, form), 1);
    assert_int_equal(password_verify("pencul", 6, form), 0);

    struct scram_secret s;
    assert_int_equal(password_scram_secret(form, &s), 0);
    assert_int_equal(s.iterations, 4096);
    assert_int_equal(s.salt_len, 16);
    assert_memory_equal(s.salt, "\x5b\x6d\x99\x68\x9d\x12\x35\x8e\xec\xa0\x4b\x14\x12\x36\xfa\x81",
                        16);
    free(form);
}

static void test_iterations_clamped(void **state)
{
    struct scram_secret s;
    char *hash = password_hash("pw", 2, 0);
    assert_int_equal(strncmp(hash, "$scram-sha-256$4096$", 20), 0);
    assert_int_equal(password_verify("pw", 2, hash), 1);
    free(hash);

    hash = password_hash("pw", 2, PASSWORD_MIN_ITERATIONS - 1);
    assert_int_equal(password_scram_secret(hash, &s), 0);
    assert_int_equal(s.iterations, PASSWORD_MIN_ITERATIONS);
    free(hash);
    /* the upper clamp is the same function, seen through password_fake_secret() in
     * test_fake_secret: a hash at PASSWORD_MAX_ITERATIONS costs seconds */
}

static void expect_malformed(const char *form)
{
    struct scram_secret s;
    memset(&s, 0x5a, sizeof(s));
    if (password_scram_secret(form, &s) != -1) fail_msg("accepted stored form \"%s\"", form);
    if (password_verify("pencil", 6, form) != -1) fail_msg("verified with \"%s\"", form);
}

#define K1   "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
#define K2   "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define GOOD "$scram-sha-256$4096$" RFC_SALT "$" K1 "$" K2

static void test_malformed_forms(void **state)
{
    struct scram_secret s;
    assert_int_equal(password_scram_secret(GOOD, &s), 0);

    assert_int_equal(password_scram_secret(NULL, &s), -1);
    expect_malformed("");
    expect_malformed("pencil");
    expect_malformed("$scram-sha-1$4096$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("$SCRAM-SHA-256$4096$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("scram-sha-256$4096$" RFC_SALT "$" K1 "$" K2);
    expect_malformed(" $scram-sha-256$4096$" RFC_SALT "$" K1 "$" K2);
    /* iterations */
    expect_malformed("$scram-sha-256$$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("$scram-sha-256$04096$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("$scram-sha-256$+4096$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("$scram-sha-256$-4096$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("$scram-sha-256$ 4096$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("$scram-sha-256$4096x$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("$scram-sha-256$0$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("$scram-sha-256$4095$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("$scram-sha-256$10000001$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("$scram-sha-256$99999999999$" RFC_SALT "$" K1 "$" K2);
    expect_malformed("$scram-sha-256$4294967296$" RFC_SALT "$" K1 "$" K2);
    /* fields missing, extra, empty */
    expect_malformed("$scram-sha-256$4096");
    expect_malformed("$scram-sha-256$4096$");
    expect_malformed("$scram-sha-256$4096$" RFC_SALT);
    expect_malformed("$scram-sha-256$4096$" RFC_SALT "$" K1);
    expect_malformed("$scram-sha-256$4096$" RFC_SALT "$" K1 "$");
    expect_malformed("$scram-sha-256$4096$" RFC_SALT "$" K1 "$" K2 "$");
    expect_malformed("$scram-sha-256$4096$" RFC_SALT "$" K1 "$" K2 "$" K2);
    expect_malformed("$scram-sha-256$4096$$" K1 "$" K2);
    expect_malformed("$scram-sha-256$4096$" RFC_SALT "$$" K2);
    /* bad base64 */
    expect_malformed("$scram-sha-256$4096$W22ZaJ0SNY7soEsUEjb6gQ$" K1 "$" K2);
    expect_malformed("$scram-sha-256$4096$W22ZaJ0SNY7soEsUEjb6gR==$" K1 "$" K2);
    expect_malformed("$scram-sha-256$4096$" RFC_SALT "$" K1 "$" K2 " ");
    expect_malformed("$scram-sha-256$4096$" RFC_SALT "$" K1 "$" K2 "\n");
    expect_malformed("$scram-sha-256$4096$" RFC_SALT "$" K1
                     "$wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU");
    expect_malformed("$scram-sha-256$4096$" RFC_SALT "$" K1
                     "$wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZq-xSrmfPwDl2dU=");
    /* wrong lengths: a 31-byte key, a 33-byte key, a 4-byte salt, a salt over 64 bytes */
    expect_malformed("$scram-sha-256$4096$" RFC_SALT "$" K1
                     "$wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2Q==");
    expect_malformed("$scram-sha-256$4096$" RFC_SALT "$" K1
                     "$wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dUA");
    expect_malformed("$scram-sha-256$4096$AAAAAA==$" K1 "$" K2);
    expect_malformed("$scram-sha-256$4096$"
                     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                     "AAAAAAAAAAAAAAAA$" K1 "$" K2);

    /* nothing longer than the parser's bound, even if it were otherwise well-formed */
    char big[2048];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "$scram-sha-256$4096$", 20);
    expect_malformed(big);
}

static void test_fake_secret(void **state)
{
    struct scram_secret a, b, c;
    password_fake_secret("nobody@example.com", 4096, &a);
    password_fake_secret("nobody@example.com", 4096, &b);
    password_fake_secret("someone@example.com", 4096, &c);
    assert_int_equal(a.iterations, 4096);
    assert_int_equal(a.salt_len, 16);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_memory_not_equal(a.salt, c.salt, 16);
    assert_memory_not_equal(a.stored_key, c.stored_key, 32);
    assert_memory_not_equal(a.stored_key, a.server_key, 32);

    password_fake_secret("nobody@example.com", 1, &a);
    assert_int_equal(a.iterations, PASSWORD_MIN_ITERATIONS);
    assert_memory_equal(a.salt, b.salt, 16);
    password_fake_secret("nobody@example.com", 0xffffffffu, &a);
    assert_int_equal(a.iterations, PASSWORD_MAX_ITERATIONS);
}

static void test_dummy_verify(void **state)
{
    /* no result to check: it must run, on any input, without touching anything */
    password_dummy_verify("anything", 8);
    password_dummy_verify("", 0);
}

static void test_cache(void **state)
{
    char *hash = password_hash("right horse", 11, PASSWORD_MIN_ITERATIONS);
    password_cache_configure(3600);
    unsigned long runs = password_test_pbkdf2_runs();
    assert_int_equal(password_verify("right horse", 11, hash), 1);
    assert_int_equal(password_test_pbkdf2_runs(), runs + 1);
    /* the same password again: from the cache, no PBKDF2 */
    assert_int_equal(password_verify("right horse", 11, hash), 1);
    assert_int_equal(password_test_pbkdf2_runs(), runs + 1);
    /* a wrong one always costs the full derivation and is never cached */
    assert_int_equal(password_verify("wrong horse", 11, hash), 0);
    assert_int_equal(password_verify("wrong horse", 11, hash), 0);
    assert_int_equal(password_test_pbkdf2_runs(), runs + 3);
    /* a new password (a new stored form) does not match the old entry */
    char *hash2 = password_hash("new secret!", 11, PASSWORD_MIN_ITERATIONS);
    assert_int_equal(password_verify("right horse", 11, hash2), 0);
    assert_int_equal(password_verify("new secret!", 11, hash2), 1);
    /* off: every check derives again, and stays correct */
    password_cache_configure(0);
    runs = password_test_pbkdf2_runs();
    assert_int_equal(password_verify("right horse", 11, hash), 1);
    assert_int_equal(password_verify("right horse", 11, hash), 1);
    assert_int_equal(password_test_pbkdf2_runs(), runs + 2);
    free(hash);
    free(hash2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_default_iterations),
        cmocka_unit_test(test_salt_is_random),
        cmocka_unit_test(test_binary_password),
        cmocka_unit_test(test_rfc7677_vector),
        cmocka_unit_test(test_iterations_clamped),
        cmocka_unit_test(test_malformed_forms),
        cmocka_unit_test(test_fake_secret),
        cmocka_unit_test(test_dummy_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

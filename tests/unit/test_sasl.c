/* test_sasl.c - unit tests for sasl.c
 *
 * PLAIN and LOGIN conversations (success, wrong password, unknown user, authzid, bad
 * base64, oversize input, a failing store), SCRAM-SHA-256 against the RFC 7677 example
 * with the server nonce forced, full SCRAM exchanges driven by a client written here
 * with OpenSSL from RFC 5802's definitions, and tampered SCRAM messages.
 *
 * SECURITY: an unknown user must end exactly like a wrong password; a malformed or
 * tampered exchange must never end in SASL_STATUS_OK.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base64.h"
#include "password.h"
#include "sasl.h"
#include "sbuf.h"
#include "testutil.h"
#include "xalloc.h"

/* ---- a small account store ---- */

struct account {
    const char *user;
    char *hash;
};

static struct store {
    struct account accounts[4];
    size_t naccounts;
    int tempfail;
    int calls;
    char last_user[SASL_MAX_RESPONSE + 1];
} store;

static int lookup(void *ctx, const char *user, char **hash_r)
{
    struct store *st = ctx;
    st->calls++;
    snprintf(st->last_user, sizeof(st->last_user), "%s", user);
    if (st->tempfail) return -1;
    for (size_t i = 0; i < st->naccounts; i++) {
        if (strcmp(st->accounts[i].user, user) == 0) {
            *hash_r = xstrdup(st->accounts[i].hash);
            return 1;
        }
    }
    return 0;
}

static int group_setup(void **state)
{
    memset(&store, 0, sizeof(store));
    store.accounts[0].user = "joe@example.com";
    store.accounts[0].hash = password_hash("secret", 6, 4096);
    store.accounts[1].user = "user";
    store.accounts[1].hash = reference_form("pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096);
    store.accounts[2].user = "a,b=c@example.com";
    store.accounts[2].hash = password_hash("pw", 2, 4096);
    store.accounts[3].user = "broken@example.com";
    store.accounts[3].hash = xstrdup("$scram-sha-256$4096$garbage");
    store.naccounts = 4;
    return 0;
}

static int group_teardown(void **state)
{
    for (size_t i = 0; i < store.naccounts; i++)
        free(store.accounts[i].hash);
    return 0;
}

static int test_setup(void **state)
{
    store.tempfail = 0;
    store.calls = 0;
    store.last_user[0] = '\0';
    sasl_test_set_nonce(NULL);
    return 0;
}

/* ---- helpers ---- */

static char *b64(const void *data, size_t len)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    assert_int_equal(base64_encode(data, len, &out), 0);
    return sbuf_steal(&out);
}

static char *unb64(const struct sbuf *text)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    assert_int_equal(base64_decode(sbuf_cstr(text), text->len, &out), 0);
    return sbuf_steal(&out);
}

/* One step with the base64 of data[0..len). */
static enum sasl_status step_raw(struct sasl_server *sasl, const void *data, size_t len,
                                 struct sbuf *challenge)
{
    char *text = b64(data, len);
    enum sasl_status st = sasl_server_step(sasl, text, challenge);
    free(text);
    return st;
}

static enum sasl_status step_str(struct sasl_server *sasl, const char *s, struct sbuf *challenge)
{
    return step_raw(sasl, s, strlen(s), challenge);
}

/* A whole PLAIN exchange with an initial response. */
static enum sasl_status plain(const void *msg, size_t len)
{
    struct sbuf ch = SBUF_INIT(SBUF_NO_MAX);
    struct sasl_server *sasl = sasl_server_new(SASL_MECH_PLAIN, lookup, &store);
    enum sasl_status st = step_raw(sasl, msg, len, &ch);
    assert_int_equal(ch.len, 0);
    /* nothing more after an end */
    if (st != SASL_STATUS_CONTINUE)
        assert_int_equal(sasl_server_step(sasl, "", &ch), SASL_STATUS_MALFORMED);
    sasl_server_free(&sasl);
    assert_null(sasl);
    sbuf_free(&ch);
    return st;
}

#define PLAIN(lit) plain((lit), sizeof(lit) - 1)

/* ---- mechanisms ---- */

static void test_mech_names(void **state)
{
    enum sasl_mech m;
    assert_int_equal(sasl_mech_parse("PLAIN", &m), 0);
    assert_int_equal(m, SASL_MECH_PLAIN);
    assert_int_equal(sasl_mech_parse("login", &m), 0);
    assert_int_equal(m, SASL_MECH_LOGIN);
    assert_int_equal(sasl_mech_parse("Scram-Sha-256", &m), 0);
    assert_int_equal(m, SASL_MECH_SCRAM_SHA_256);
    assert_int_equal(sasl_mech_parse("SCRAM-SHA-256-PLUS", &m), -1);
    assert_int_equal(sasl_mech_parse("CRAM-MD5", &m), -1);
    assert_int_equal(sasl_mech_parse("", &m), -1);
    assert_string_equal(sasl_mech_name(SASL_MECH_PLAIN), "PLAIN");
    assert_string_equal(sasl_mech_name(SASL_MECH_LOGIN), "LOGIN");
    assert_string_equal(sasl_mech_name(SASL_MECH_SCRAM_SHA_256), "SCRAM-SHA-256");
    assert_string_equal(sasl_mech_list(), "PLAIN LOGIN SCRAM-SHA-256");
}

/* ---- PLAIN ---- */

static void test_plain_ok(void **state)
{
    assert_int_equal(PLAIN("\0joe@example.com\0secret"), SASL_STATUS_OK);
    assert_string_equal(store.last_user, "joe@example.com");
    /* authzid equal to authcid, in any case */
    assert_int_equal(PLAIN("joe@example.com\0joe@example.com\0secret"), SASL_STATUS_OK);
    assert_int_equal(PLAIN("JOE@example.com\0joe@EXAMPLE.com\0secret"), SASL_STATUS_OK);
    /* the user name is lower-cased before the lookup */
    assert_int_equal(PLAIN("\0Joe@Example.COM\0secret"), SASL_STATUS_OK);
    assert_string_equal(store.last_user, "joe@example.com");
}

static void test_plain_no_initial_response(void **state)
{
    struct sbuf ch = SBUF_INIT(SBUF_NO_MAX);
    struct sasl_server *sasl = sasl_server_new(SASL_MECH_PLAIN, lookup, &store);
    assert_null(sasl_server_user(sasl));
    assert_int_equal(sbuf_appends(&ch, "stale"), 0);
    assert_int_equal(sasl_server_step(sasl, NULL, &ch), SASL_STATUS_CONTINUE);
    assert_int_equal(ch.len, 0);
    assert_int_equal(step_raw(sasl, "\0JOE@example.com\0secret", 23, &ch), SASL_STATUS_OK);
    assert_string_equal(sasl_server_user(sasl), "joe@example.com");
    assert_int_equal(sasl_server_step(sasl, "", &ch), SASL_STATUS_MALFORMED);
    assert_int_equal(sasl_server_step(sasl, NULL, &ch), SASL_STATUS_MALFORMED);
    sasl_server_free(&sasl);
    sasl_server_free(&sasl); /* a second free is harmless */
    sbuf_free(&ch);
}

static void test_plain_fail(void **state)
{
    assert_int_equal(PLAIN("\0joe@example.com\0Secret"), SASL_STATUS_FAIL);
    assert_int_equal(PLAIN("\0joe@example.com\0secret "), SASL_STATUS_FAIL);
    /* an unknown user gets the very same answer, after a lookup */
    store.calls = 0;
    assert_int_equal(PLAIN("\0nobody@example.com\0secret"), SASL_STATUS_FAIL);
    assert_int_equal(store.calls, 1);
    /* an account whose stored form is damaged cannot log in */
    assert_int_equal(PLAIN("\0broken@example.com\0secret"), SASL_STATUS_FAIL);
}

static void test_plain_authzid_mismatch(void **state)
{
    assert_int_equal(PLAIN("admin@example.com\0joe@example.com\0secret"), SASL_STATUS_FAIL);
    assert_int_equal(PLAIN("joe@example.co\0joe@example.com\0secret"), SASL_STATUS_FAIL);
    assert_int_equal(PLAIN("joe@example.comm\0joe@example.com\0secret"), SASL_STATUS_FAIL);
}

static void test_plain_malformed(void **state)
{
    assert_int_equal(PLAIN(""), SASL_STATUS_MALFORMED);
    assert_int_equal(PLAIN("joe@example.com"), SASL_STATUS_MALFORMED);
    assert_int_equal(PLAIN("\0joe@example.com"), SASL_STATUS_MALFORMED);
    assert_int_equal(PLAIN("\0joe@example.com\0"), SASL_STATUS_MALFORMED); /* no password */
    assert_int_equal(PLAIN("\0\0secret"), SASL_STATUS_MALFORMED);          /* no user */
    assert_int_equal(PLAIN("\0joe@example.com\0sec\0ret"), SASL_STATUS_MALFORMED);
    /* control characters in the user name (CR LF would forge log lines) */
    assert_int_equal(PLAIN("\0joe@example.com\r\nX\0secret"), SASL_STATUS_MALFORMED);
    assert_int_equal(PLAIN("\0joe\x7f@example.com\0secret"), SASL_STATUS_MALFORMED);
}

static void test_plain_bad_base64(void **state)
{
    const char *bad[] = {"AGpvZUBleGFtcGxlLmNvbQBzZWNyZXQ",    /* padding missing */
                         "AGpvZUBleGFtcGxlLmNvbQBzZWNyZXQ= ",  /* trailing space */
                         "AGpvZUBleGFtcGxlLmNvbQBzZWNyZX Q=",  /* embedded space */
                         "AGpvZUBleGFtcGxlLmNvbQBzZWNyZXR=",   /* trailing bits */
                         "AGpvZUBleGFtcGxlLmNvbQBzZWNyZXQ=\r", /* CR left in */
                         "*"};
    struct sbuf ch = SBUF_INIT(SBUF_NO_MAX);
    /* the good form, for reference */
    struct sasl_server *sasl = sasl_server_new(SASL_MECH_PLAIN, lookup, &store);
    assert_int_equal(sasl_server_step(sasl, "AGpvZUBleGFtcGxlLmNvbQBzZWNyZXQ=", &ch),
                     SASL_STATUS_OK);
    sasl_server_free(&sasl);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        store.calls = 0;
        sasl = sasl_server_new(SASL_MECH_PLAIN, lookup, &store);
        assert_int_equal(sasl_server_step(sasl, bad[i], &ch), SASL_STATUS_MALFORMED);
        assert_int_equal(store.calls, 0);
        sasl_server_free(&sasl);
    }
    sbuf_free(&ch);
}

static void test_plain_oversize(void **state)
{
    char msg[SASL_MAX_RESPONSE + 1];
    memset(msg, 'x', sizeof(msg));
    memcpy(msg, "\0joe@example.com\0", 17);
    /* exactly the maximum is parsed (and is the wrong password) */
    assert_int_equal(plain(msg, SASL_MAX_RESPONSE), SASL_STATUS_FAIL);
    /* one byte more is refused before anything is looked up */
    store.calls = 0;
    assert_int_equal(plain(msg, SASL_MAX_RESPONSE + 1), SASL_STATUS_MALFORMED);
    assert_int_equal(store.calls, 0);

    /* a huge line of valid base64 */
    size_t big = 1 << 20;
    char *text = xmalloc(big + 1);
    memset(text, 'A', big);
    text[big] = '\0';
    struct sbuf ch = SBUF_INIT(SBUF_NO_MAX);
    struct sasl_server *sasl = sasl_server_new(SASL_MECH_PLAIN, lookup, &store);
    assert_int_equal(sasl_server_step(sasl, text, &ch), SASL_STATUS_MALFORMED);
    sasl_server_free(&sasl);
    sbuf_free(&ch);
    free(text);
}

static void test_plain_tempfail(void **state)
{
    store.tempfail = 1;
    assert_int_equal(PLAIN("\0joe@example.com\0secret"), SASL_STATUS_TEMPFAIL);
    assert_int_equal(PLAIN("\0nobody@example.com\0secret"), SASL_STATUS_TEMPFAIL);
}

/* ---- LOGIN ---- */

static void test_login_ok(void **state)
{
    struct sbuf ch = SBUF_INIT(SBUF_NO_MAX);
    struct sasl_server *sasl = sasl_server_new(SASL_MECH_LOGIN, lookup, &store);
    assert_int_equal(sasl_server_step(sasl, NULL, &ch), SASL_STATUS_CONTINUE);
    assert_string_equal(sbuf_cstr(&ch), "VXNlcm5hbWU6"); /* "Username:" */
    assert_int_equal(step_str(sasl, "Joe@Example.com", &ch), SASL_STATUS_CONTINUE);
    assert_string_equal(sbuf_cstr(&ch), "UGFzc3dvcmQ6"); /* "Password:" */
    assert_string_equal(sasl_server_user(sasl), "joe@example.com");
    assert_int_equal(step_str(sasl, "secret", &ch), SASL_STATUS_OK);
    assert_int_equal(ch.len, 0);
    assert_string_equal(sasl_server_user(sasl), "joe@example.com");
    assert_string_equal(store.last_user, "joe@example.com");
    assert_int_equal(step_str(sasl, "secret", &ch), SASL_STATUS_MALFORMED);
    sasl_server_free(&sasl);
    sbuf_free(&ch);
}

static enum sasl_status login_initial(const char *user, const char *password)
{
    struct sbuf ch = SBUF_INIT(SBUF_NO_MAX);
    struct sasl_server *sasl = sasl_server_new(SASL_MECH_LOGIN, lookup, &store);
    enum sasl_status st = step_str(sasl, user, &ch);
    if (st == SASL_STATUS_CONTINUE) {
        assert_string_equal(sbuf_cstr(&ch), "UGFzc3dvcmQ6");
        st = step_str(sasl, password, &ch);
    }
    sasl_server_free(&sasl);
    sbuf_free(&ch);
    return st;
}

static void test_login_initial_response(void **state)
{
    assert_int_equal(login_initial("joe@example.com", "secret"), SASL_STATUS_OK);
    assert_int_equal(login_initial("joe@example.com", "wrong"), SASL_STATUS_FAIL);
    assert_int_equal(login_initial("joe@example.com", ""), SASL_STATUS_FAIL);
    assert_int_equal(login_initial("nobody@example.com", "secret"), SASL_STATUS_FAIL);
    assert_int_equal(login_initial("", "secret"), SASL_STATUS_MALFORMED);
    assert_int_equal(login_initial("joe\n@example.com", "secret"), SASL_STATUS_MALFORMED);
    store.tempfail = 1;
    assert_int_equal(login_initial("joe@example.com", "secret"), SASL_STATUS_TEMPFAIL);
}

static void test_login_bad_input(void **state)
{
    struct sbuf ch = SBUF_INIT(SBUF_NO_MAX);
    struct sasl_server *sasl = sasl_server_new(SASL_MECH_LOGIN, lookup, &store);
    assert_int_equal(sasl_server_step(sasl, NULL, &ch), SASL_STATUS_CONTINUE);
    assert_int_equal(step_str(sasl, "joe@example.com", &ch), SASL_STATUS_CONTINUE);
    assert_int_equal(sasl_server_step(sasl, "c2VjcmV0=", &ch), SASL_STATUS_MALFORMED);
    assert_int_equal(ch.len, 0);
    sasl_server_free(&sasl);

    /* a NULL response is only an absent initial response */
    sasl = sasl_server_new(SASL_MECH_LOGIN, lookup, &store);
    assert_int_equal(sasl_server_step(sasl, NULL, &ch), SASL_STATUS_CONTINUE);
    assert_int_equal(sasl_server_step(sasl, NULL, &ch), SASL_STATUS_MALFORMED);
    sasl_server_free(&sasl);

    char big[SASL_MAX_RESPONSE + 1];
    memset(big, 'a', sizeof(big));
    sasl = sasl_server_new(SASL_MECH_LOGIN, lookup, &store);
    assert_int_equal(step_str(sasl, "joe@example.com", &ch), SASL_STATUS_CONTINUE);
    assert_int_equal(step_raw(sasl, big, sizeof(big), &ch), SASL_STATUS_MALFORMED);
    sasl_server_free(&sasl);
    sbuf_free(&ch);
}

/* ---- SCRAM-SHA-256 ---- */

#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"

static void test_scram_rfc7677(void **state)
{
    struct sbuf ch = SBUF_INIT(SBUF_NO_MAX);
    char *text;

    sasl_test_set_nonce(RFC_SNONCE);
    struct sasl_server *sasl = sasl_server_new(SASL_MECH_SCRAM_SHA_256, lookup, &store);
    assert_int_equal(sasl_server_step(sasl, NULL, &ch), SASL_STATUS_CONTINUE);
    assert_int_equal(ch.len, 0);

    assert_int_equal(step_str(sasl, "n,,n=user,r=" RFC_CNONCE, &ch), SASL_STATUS_CONTINUE);
    text = unb64(&ch);
    assert_string_equal(text, "r=" RFC_CNONCE RFC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    free(text);
    assert_string_equal(sasl_server_user(sasl), "user");

    assert_int_equal(step_str(sasl,
                              "c=biws,r=" RFC_CNONCE RFC_SNONCE
                              ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                              &ch),
                     SASL_STATUS_CONTINUE);
    text = unb64(&ch);
    assert_string_equal(text, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    free(text);

    assert_int_equal(sasl_server_step(sasl, "", &ch), SASL_STATUS_OK);
    assert_int_equal(ch.len, 0);
    assert_string_equal(sasl_server_user(sasl), "user");
    assert_int_equal(sasl_server_step(sasl, "", &ch), SASL_STATUS_MALFORMED);
    sasl_server_free(&sasl);
    sbuf_free(&ch);
}

/* The client side of SCRAM-SHA-256, from RFC 5802 section 3. */
struct scram_client {
    const char *password;
    char gs2[128];
    char bare[512];     /* client-first-message-bare */
    char final[1024];   /* client-final-message */
    char expected[128]; /* the server-final-message we expect */
};

/* Builds the client-final message for server_first; "tamper" alters one part. */
enum tamper { T_NONE, T_NONCE, T_CBIND, T_PROOF, T_PROOF_LEN, T_NO_PROOF, T_PROOF_FIRST };

static void scram_client_final(struct scram_client *c, const char *server_first, enum tamper t)
{
    char nonce[512];
    struct sbuf salt = SBUF_INIT(SBUF_NO_MAX), am = SBUF_INIT(SBUF_NO_MAX);
    unsigned iterations = 0;
    unsigned char salted[32], client_key[32], stored[32], client_sig[32], proof[32], server_key[32],
        server_sig[32];
    unsigned n;

    /* r=<nonce>,s=<salt>,i=<iterations> */
    assert_int_equal(strncmp(server_first, "r=", 2), 0);
    const char *s = strstr(server_first, ",s=");
    const char *i = strstr(server_first, ",i=");
    assert_non_null(s);
    assert_non_null(i);
    assert_true((size_t)(s - server_first - 2) < sizeof(nonce));
    memcpy(nonce, server_first + 2, (size_t)(s - server_first - 2));
    nonce[s - server_first - 2] = '\0';
    assert_int_equal(base64_decode(s + 3, (size_t)(i - s - 3), &salt), 0);
    iterations = (unsigned)strtoul(i + 3, NULL, 10);
    assert_true(iterations >= 4096);
    /* the server nonce extends ours */
    const char *r = strstr(c->bare, ",r=");
    assert_non_null(r);
    size_t cnonce_len = strcspn(r + 3, ",");
    assert_int_equal(strncmp(nonce, r + 3, cnonce_len), 0);
    assert_true(strlen(nonce) >= cnonce_len + 24);

    assert_int_equal(PKCS5_PBKDF2_HMAC(c->password, (int)strlen(c->password),
                                       (const unsigned char *)salt.data, (int)salt.len,
                                       (int)iterations, EVP_sha256(), 32, salted),
                     1);
    HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, client_key, &n);
    SHA256(client_key, 32, stored);
    HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key", 10, server_key, &n);

    char *cbind = b64(c->gs2, strlen(c->gs2));
    const char *cb = t == T_CBIND ? (c->gs2[0] == 'n' ? "eSws" : "biws") : cbind;
    if (t == T_NONCE) nonce[strlen(nonce) - 1] ^= 1;
    char without_proof[768];
    snprintf(without_proof, sizeof(without_proof), "c=%s,r=%s", cb, nonce);
    free(cbind);

    assert_int_equal(sbuf_printf(&am, "%s,%s,%s", c->bare, server_first, without_proof), 0);
    HMAC(EVP_sha256(), stored, 32, (unsigned char *)am.data, am.len, client_sig, &n);
    for (size_t k = 0; k < 32; k++)
        proof[k] = client_key[k] ^ client_sig[k];
    HMAC(EVP_sha256(), server_key, 32, (unsigned char *)am.data, am.len, server_sig, &n);
    if (t == T_PROOF) proof[7] ^= 0x40;

    char *p = b64(proof, t == T_PROOF_LEN ? 31 : 32);
    char *v = b64(server_sig, 32);
    if (t == T_NO_PROOF)
        snprintf(c->final, sizeof(c->final), "%s", without_proof);
    else if (t == T_PROOF_FIRST)
        snprintf(c->final, sizeof(c->final), "p=%s,%s", p, without_proof);
    else
        snprintf(c->final, sizeof(c->final), "%s,p=%s", without_proof, p);
    snprintf(c->expected, sizeof(c->expected), "v=%s", v);
    free(p);
    free(v);
    sbuf_free(&salt);
    sbuf_free(&am);
}

struct scram_result {
    enum sasl_status first, final, ack;
    char server_first[1024];
};

/* A whole exchange: gs2 header, client-first-bare ("%s" marks where a random nonce goes). */
static struct scram_result scram_run(const char *gs2, const char *bare_fmt, const char *password,
                                     enum tamper t)
{
    struct scram_client c;
    struct scram_result res = {SASL_STATUS_MALFORMED, SASL_STATUS_MALFORMED, SASL_STATUS_MALFORMED,
                               ""};
    struct sbuf ch = SBUF_INIT(SBUF_NO_MAX);
    unsigned char rnd[15];
    char *cnonce;

    memset(&c, 0, sizeof(c));
    c.password = password;
    assert_int_equal(RAND_bytes(rnd, sizeof(rnd)), 1);
    cnonce = b64(rnd, sizeof(rnd));
    snprintf(c.gs2, sizeof(c.gs2), "%s", gs2);
    const char *at = strstr(bare_fmt, "%s"); /* where the nonce goes */
    assert_non_null(at);
    snprintf(c.bare, sizeof(c.bare), "%.*s%s%s", (int)(at - bare_fmt), bare_fmt, cnonce, at + 2);
    free(cnonce);

    struct sasl_server *sasl = sasl_server_new(SASL_MECH_SCRAM_SHA_256, lookup, &store);
    char first[700];
    snprintf(first, sizeof(first), "%s%s", c.gs2, c.bare);
    res.first = step_str(sasl, first, &ch);
    if (res.first == SASL_STATUS_CONTINUE) {
        char *sf = unb64(&ch);
        snprintf(res.server_first, sizeof(res.server_first), "%s", sf);
        free(sf);
        scram_client_final(&c, res.server_first, t);
        res.final = step_str(sasl, c.final, &ch);
        if (res.final == SASL_STATUS_CONTINUE) {
            char *v = unb64(&ch);
            assert_string_equal(v, c.expected); /* the server proves itself */
            free(v);
            res.ack = sasl_server_step(sasl, "", &ch);
        } else {
            assert_int_equal(ch.len, 0);
        }
    }
    if (res.first != SASL_STATUS_CONTINUE || res.final != SASL_STATUS_CONTINUE)
        assert_int_equal(sasl_server_step(sasl, "", &ch), SASL_STATUS_MALFORMED);
    sasl_server_free(&sasl);
    sbuf_free(&ch);
    return res;
}

static void test_scram_exchange(void **state)
{
    struct scram_result r = scram_run("n,,", "n=joe@example.com,r=%s", "secret", T_NONE);
    assert_int_equal(r.first, SASL_STATUS_CONTINUE);
    assert_int_equal(r.final, SASL_STATUS_CONTINUE);
    assert_int_equal(r.ack, SASL_STATUS_OK);

    /* "y": the client could bind but believes we cannot: fine, we offer no -PLUS */
    r = scram_run("y,,", "n=joe@example.com,r=%s", "secret", T_NONE);
    assert_int_equal(r.ack, SASL_STATUS_OK);
    /* an authzid equal to the user; upper case lowered */
    r = scram_run("n,a=joe@example.com,", "n=Joe@Example.com,r=%s", "secret", T_NONE);
    assert_int_equal(r.ack, SASL_STATUS_OK);
    assert_string_equal(store.last_user, "joe@example.com");
    /* extensions after the nonce are ignored */
    r = scram_run("n,,", "n=joe@example.com,r=%s,x=whatever", "secret", T_NONE);
    assert_int_equal(r.ack, SASL_STATUS_OK);
    /* escaped user name */
    r = scram_run("n,,", "n=a=2Cb=3Dc@example.com,r=%s", "pw", T_NONE);
    assert_int_equal(r.ack, SASL_STATUS_OK);
    assert_string_equal(store.last_user, "a,b=c@example.com");
}

static void test_scram_wrong_password(void **state)
{
    struct scram_result r = scram_run("n,,", "n=joe@example.com,r=%s", "Secret", T_NONE);
    assert_int_equal(r.first, SASL_STATUS_CONTINUE);
    assert_int_equal(r.final, SASL_STATUS_FAIL);
    r = scram_run("n,,", "n=joe@example.com,r=%s", "secret", T_PROOF);
    assert_int_equal(r.final, SASL_STATUS_FAIL);
    r = scram_run("n,,", "n=broken@example.com,r=%s", "secret", T_NONE);
    assert_int_equal(r.final, SASL_STATUS_FAIL);
}

/* Splits "r=<nonce>,s=<salt>,i=<n>" into its salt and iteration parts. */
static void salt_and_iterations(const char *server_first, char *out, size_t size)
{
    const char *s = strstr(server_first, ",s=");
    assert_non_null(s);
    snprintf(out, size, "%s", s);
}

static void test_scram_unknown_user(void **state)
{
    /* unknown users are offered the configured count, which real accounts have too */
    sasl_set_fake_iterations(4096);
    struct scram_result known = scram_run("n,,", "n=joe@example.com,r=%s", "x", T_NONE);
    assert_int_equal(known.final, SASL_STATUS_FAIL);

    struct scram_result a = scram_run("n,,", "n=nobody@example.com,r=%s", "secret", T_NONE);
    struct scram_result b = scram_run("n,,", "n=nobody@example.com,r=%s", "secret", T_NONE);
    struct scram_result c = scram_run("n,,", "n=other@example.com,r=%s", "secret", T_NONE);
    /* the same course as a known user with a wrong password */
    assert_int_equal(a.first, SASL_STATUS_CONTINUE);
    assert_int_equal(a.final, SASL_STATUS_FAIL);
    assert_int_equal(c.final, SASL_STATUS_FAIL);
    /* a salt that is stable per name, of the usual size, and the usual iteration count */
    char sa[256], sb[256], sc[256], sk[256];
    salt_and_iterations(a.server_first, sa, sizeof(sa));
    salt_and_iterations(b.server_first, sb, sizeof(sb));
    salt_and_iterations(c.server_first, sc, sizeof(sc));
    salt_and_iterations(known.server_first, sk, sizeof(sk));
    assert_string_equal(sa, sb);
    assert_string_not_equal(sa, sc);
    assert_int_equal(strlen(sa), strlen(sk));
    assert_string_equal(strstr(sa, ",i="), strstr(sk, ",i="));
    assert_int_equal(strlen(a.server_first), strlen(known.server_first));
}

static void test_scram_tampered_final(void **state)
{
    struct scram_result r;
    r = scram_run("n,,", "n=joe@example.com,r=%s", "secret", T_NONCE);
    assert_int_equal(r.final, SASL_STATUS_MALFORMED);
    r = scram_run("n,,", "n=joe@example.com,r=%s", "secret", T_CBIND);
    assert_int_equal(r.final, SASL_STATUS_MALFORMED);
    r = scram_run("y,,", "n=joe@example.com,r=%s", "secret", T_CBIND);
    assert_int_equal(r.final, SASL_STATUS_MALFORMED);
    r = scram_run("n,,", "n=joe@example.com,r=%s", "secret", T_PROOF_LEN);
    assert_int_equal(r.final, SASL_STATUS_MALFORMED);
    r = scram_run("n,,", "n=joe@example.com,r=%s", "secret", T_NO_PROOF);
    assert_int_equal(r.final, SASL_STATUS_MALFORMED);
    r = scram_run("n,,", "n=joe@example.com,r=%s", "secret", T_PROOF_FIRST);
    assert_int_equal(r.final, SASL_STATUS_MALFORMED);
}

static enum sasl_status scram_first_only(const char *msg, size_t len)
{
    struct sbuf ch = SBUF_INIT(SBUF_NO_MAX);
    struct sasl_server *sasl = sasl_server_new(SASL_MECH_SCRAM_SHA_256, lookup, &store);
    enum sasl_status st = step_raw(sasl, msg, len, &ch);
    if (st != SASL_STATUS_CONTINUE) assert_int_equal(ch.len, 0);
    sasl_server_free(&sasl);
    sbuf_free(&ch);
    return st;
}

#define FIRST(lit) scram_first_only((lit), sizeof(lit) - 1)

static void test_scram_first_malformed(void **state)
{
    assert_int_equal(FIRST("n,,n=joe@example.com,r=abc"), SASL_STATUS_CONTINUE);
    assert_int_equal(FIRST(""), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,"), SASL_STATUS_MALFORMED);
    /* channel binding requested: we offer no SCRAM-SHA-256-PLUS */
    assert_int_equal(FIRST("p=tls-unique,,n=joe@example.com,r=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("p=tls-server-end-point,,n=joe@example.com,r=abc"),
                     SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("x,,n=joe@example.com,r=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,n=joe@example.com,r=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("nn,,n=joe@example.com,r=abc"), SASL_STATUS_MALFORMED);
    /* mandatory extension */
    assert_int_equal(FIRST("n,,m=ext,n=joe@example.com,r=abc"), SASL_STATUS_MALFORMED);
    /* user name */
    assert_int_equal(FIRST("n,,n=,r=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,joe@example.com,r=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=joe=2Xexample.com,r=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=joe=2cexample.com,r=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=joe=,r=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=joe=3,r=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=jo\te,r=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=joe@example.com"), SASL_STATUS_MALFORMED);
    /* nonce */
    assert_int_equal(FIRST("n,,n=joe@example.com,r="), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=joe@example.com,r=a b"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=joe@example.com,r=ab\x80"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=joe@example.com,x=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=joe@example.com,r=abc,"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=joe@example.com,r=abc,1=x"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,,n=joe@example.com,r=abc\0"), SASL_STATUS_MALFORMED);
    char longnonce[1100];
    int len = snprintf(longnonce, sizeof(longnonce), "n,,n=joe@example.com,r=");
    memset(longnonce + len, 'z', sizeof(longnonce) - (size_t)len);
    assert_int_equal(scram_first_only(longnonce, sizeof(longnonce)), SASL_STATUS_MALFORMED);
    /* authzid */
    assert_int_equal(FIRST("n,a=,n=joe@example.com,r=abc"), SASL_STATUS_MALFORMED);
    assert_int_equal(FIRST("n,a=other@example.com,n=joe@example.com,r=abc"), SASL_STATUS_FAIL);
    assert_int_equal(FIRST("n,a=JOE@example.com,n=joe@example.com,r=abc"), SASL_STATUS_CONTINUE);
}

static void test_scram_tempfail(void **state)
{
    store.tempfail = 1;
    assert_int_equal(FIRST("n,,n=joe@example.com,r=abc"), SASL_STATUS_TEMPFAIL);
    assert_int_equal(FIRST("n,,n=nobody@example.com,r=abc"), SASL_STATUS_TEMPFAIL);
}

static void test_scram_ack_must_be_empty(void **state)
{
    struct sbuf ch = SBUF_INIT(SBUF_NO_MAX);
    sasl_test_set_nonce(RFC_SNONCE);
    struct sasl_server *sasl = sasl_server_new(SASL_MECH_SCRAM_SHA_256, lookup, &store);
    /* initial response */
    assert_int_equal(step_str(sasl, "n,,n=user,r=" RFC_CNONCE, &ch), SASL_STATUS_CONTINUE);
    assert_int_equal(step_str(sasl,
                              "c=biws,r=" RFC_CNONCE RFC_SNONCE
                              ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                              &ch),
                     SASL_STATUS_CONTINUE);
    assert_int_equal(step_str(sasl, "v=ok", &ch), SASL_STATUS_MALFORMED);
    assert_int_equal(sasl_server_step(sasl, "", &ch), SASL_STATUS_MALFORMED);
    sasl_server_free(&sasl);

    /* bad base64 in the middle of an exchange */
    sasl = sasl_server_new(SASL_MECH_SCRAM_SHA_256, lookup, &store);
    assert_int_equal(step_str(sasl, "n,,n=user,r=" RFC_CNONCE, &ch), SASL_STATUS_CONTINUE);
    assert_int_equal(sasl_server_step(sasl, "Yz1iaXdz=", &ch), SASL_STATUS_MALFORMED);
    sasl_server_free(&sasl);

    /* freeing in the middle of an exchange leaks nothing */
    sasl = sasl_server_new(SASL_MECH_SCRAM_SHA_256, lookup, &store);
    assert_int_equal(step_str(sasl, "n,,n=user,r=" RFC_CNONCE, &ch), SASL_STATUS_CONTINUE);
    sasl_server_free(&sasl);
    sbuf_free(&ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_mech_names, test_setup),
        cmocka_unit_test_setup(test_plain_ok, test_setup),
        cmocka_unit_test_setup(test_plain_no_initial_response, test_setup),
        cmocka_unit_test_setup(test_plain_fail, test_setup),
        cmocka_unit_test_setup(test_plain_authzid_mismatch, test_setup),
        cmocka_unit_test_setup(test_plain_malformed, test_setup),
        cmocka_unit_test_setup(test_plain_bad_base64, test_setup),
        cmocka_unit_test_setup(test_plain_oversize, test_setup),
        cmocka_unit_test_setup(test_plain_tempfail, test_setup),
        cmocka_unit_test_setup(test_login_ok, test_setup),
        cmocka_unit_test_setup(test_login_initial_response, test_setup),
        cmocka_unit_test_setup(test_login_bad_input, test_setup),
        cmocka_unit_test_setup(test_scram_rfc7677, test_setup),
        cmocka_unit_test_setup(test_scram_exchange, test_setup),
        cmocka_unit_test_setup(test_scram_wrong_password, test_setup),
        cmocka_unit_test_setup(test_scram_unknown_user, test_setup),
        cmocka_unit_test_setup(test_scram_tampered_final, test_setup),
        cmocka_unit_test_setup(test_scram_first_malformed, test_setup),
        cmocka_unit_test_setup(test_scram_tempfail, test_setup),
        cmocka_unit_test_setup(test_scram_ack_must_be_empty, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

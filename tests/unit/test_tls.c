/* test_tls.c - unit tests for tls.c (the self-signed pair, server contexts) and the TLS
 * handshake of conn.c
 *
 * Each test works in a fresh directory (mkdtemp() under $ALKAID_TEST_TMP or /tmp).
 * Covered: tls_ensure_certificate() makes a pair when neither file exists (EC P-256,
 * 825 days, CN and SAN the host name, SAN also localhost, 127.0.0.1 and ::1, not a CA,
 * key mode 0600, key matching the certificate), creates missing directories, makes it
 * once and leaves it alone afterwards, never overwrites an existing pair (even one it
 * could not read), refuses when only one of the two files exists (and creates nothing),
 * and makes exactly one pair when several threads call it at once; tls_server_ctx_new()
 * names "[TLS] Certificate", "[TLS] Key" or "[TLS] Ciphers" for a missing, unreadable or
 * mismatched file or an unusable cipher list, and a good context has TLS 1.2 as its
 * minimum with compression and renegotiation off; over a socketpair, conn_starttls() on
 * one side and an OpenSSL client on the other: TLS 1.2 and 1.3 work (a line each way
 * over the encrypted channel), a client limited to TLS 1.1 or 1.0 and a TLS 1.2 client
 * offering only weak ciphers are refused by the server (the client sees the server's
 * alert, not a failure of its own).
 *
 * SECURITY: these are the protocol and cipher floors of every TLS port.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "fsutil.h"
#include "tls.h"
#include "testutil.h"
#include "xalloc.h"

#define HOST "mail.example.test"
/* config/default.ini's [TLS] Ciphers (Mozilla intermediate) */
#define CIPHERS                                                                                    \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-"            \
    "SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-"         \
    "POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

struct fixture {
    char *dir;
    char *cert;
    char *key;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    f->dir = make_tmpdir("tls");
    if (f->dir == NULL) {
        free(f);
        return -1;
    }
    f->cert = xasprintf("%s/tls/cert.pem", f->dir);
    f->key = xasprintf("%s/tls/key.pem", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rm_rf(f->dir);
    free(f->cert);
    free(f->key);
    free(f->dir);
    free(f);
    return 0;
}

static char *slurp(const char *path, size_t *len_r)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) return NULL;
    struct sbuf b = SBUF_INIT(SBUF_NO_MAX);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
        sbuf_append(&b, buf, n);
    fclose(fp);
    if (len_r) *len_r = b.len;
    char *s = xstrdup(sbuf_cstr(&b));
    sbuf_free(&b);
    return s;
}

static void write_text(const char *path, const char *text)
{
    char *dir = fs_dirname(path);
    assert_int_equal(fs_mkdirs(dir, 0700), 0);
    free(dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static X509 *load_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) return NULL;
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    return x;
}

static EVP_PKEY *load_key(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) return NULL;
    EVP_PKEY *k = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    return k;
}

static void make_pair(const char *cert, const char *key)
{
    const char *err = NULL;
    if (tls_ensure_certificate(cert, key, HOST, &err) < 0) fail_msg("%s", err);
}

/* ---- tls_ensure_certificate ----------------------------------------------------------- */

static void test_makes_pair(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(access(f->cert, F_OK), -1);
    make_pair(f->cert, f->key); /* also creates the missing tls/ directory */

    struct stat st;
    assert_int_equal(stat(f->key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(f->cert, &st), 0);
    assert_int_equal(st.st_mode & 0077 & ~0044, 0); /* at most readable by others */

    X509 *x = load_cert(f->cert);
    assert_non_null(x);
    EVP_PKEY *k = load_key(f->key);
    assert_non_null(k);
    assert_int_equal(X509_check_private_key(x, k), 1);
    assert_int_equal(X509_get_version(x), 2); /* v3 */

    /* EC P-256 */
    assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
    char group[64] = "";
    size_t glen = 0;
    assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof(group), &glen), 1);
    assert_string_equal(group, "prime256v1");

    /* CN */
    char cn[256] = "";
    assert_true(
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0);
    assert_string_equal(cn, HOST);

    /* SAN: the host name, localhost, 127.0.0.1, ::1 */
    GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(san);
    bool dns_host = false, dns_local = false, ip4 = false, ip6 = false;
    static const unsigned char lo4[4] = {127, 0, 0, 1};
    static const unsigned char lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    for (int i = 0; i < sk_GENERAL_NAME_num(san); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(san, i);
        if (gn->type == GEN_DNS) {
            const char *s = (const char *)ASN1_STRING_get0_data(gn->d.dNSName);
            int len = ASN1_STRING_length(gn->d.dNSName);
            if (len == (int)strlen(HOST) && memcmp(s, HOST, (size_t)len) == 0) dns_host = true;
            if (len == 9 && memcmp(s, "localhost", 9) == 0) dns_local = true;
        } else if (gn->type == GEN_IPADD) {
            const unsigned char *b = ASN1_STRING_get0_data(gn->d.iPAddress);
            int len = ASN1_STRING_length(gn->d.iPAddress);
            if (len == 4 && memcmp(b, lo4, 4) == 0) ip4 = true;
            if (len == 16 && memcmp(b, lo6, 16) == 0) ip6 = true;
        }
    }
    GENERAL_NAMES_free(san);
    assert_true(dns_host);
    assert_true(dns_local);
    assert_true(ip4);
    assert_true(ip6);

    /* not a CA */
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
    assert_non_null(bc);
    assert_false(bc->ca);
    BASIC_CONSTRAINTS_free(bc);

    /* 825 days (plus the hour of back-dating) */
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)),
                     1);
    assert_int_equal(days, 825);
    assert_int_equal(secs, 3600);
    /* valid now */
    assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);
    assert_true(X509_cmp_current_time(X509_get0_notAfter(x)) > 0);

    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_made_once(void **state)
{
    struct fixture *f = *state;
    make_pair(f->cert, f->key);
    size_t clen, klen;
    char *c1 = slurp(f->cert, &clen);
    char *k1 = slurp(f->key, &klen);
    struct stat s1, s2;
    assert_int_equal(stat(f->cert, &s1), 0);

    make_pair(f->cert, f->key);
    make_pair(f->cert, f->key);
    char *c2 = slurp(f->cert, NULL);
    char *k2 = slurp(f->key, NULL);
    assert_string_equal(c1, c2);
    assert_string_equal(k1, k2);
    assert_int_equal(stat(f->cert, &s2), 0);
    assert_int_equal(s1.st_ino, s2.st_ino);
    free(c1);
    free(c2);
    free(k1);
    free(k2);
}

static void test_existing_pair_untouched(void **state)
{
    struct fixture *f = *state;
    /* whatever is there is the administrator's: not even validated, never replaced */
    write_text(f->cert, "administrator's certificate\n");
    write_text(f->key, "administrator's key\n");
    const char *err = NULL;
    assert_int_equal(tls_ensure_certificate(f->cert, f->key, HOST, &err), 0);
    char *c = slurp(f->cert, NULL);
    char *k = slurp(f->key, NULL);
    assert_string_equal(c, "administrator's certificate\n");
    assert_string_equal(k, "administrator's key\n");
    free(c);
    free(k);
}

static void test_only_one_exists(void **state)
{
    struct fixture *f = *state;
    /* a certificate without its key */
    write_text(f->cert, "cert only\n");
    const char *err = NULL;
    assert_int_equal(tls_ensure_certificate(f->cert, f->key, HOST, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, f->cert));
    assert_non_null(strstr(err, f->key));
    assert_int_equal(access(f->key, F_OK), -1); /* nothing made */
    char *c = slurp(f->cert, NULL);
    assert_string_equal(c, "cert only\n"); /* nothing replaced */
    free(c);

    /* a key without its certificate */
    unlink(f->cert);
    write_text(f->key, "key only\n");
    err = NULL;
    assert_int_equal(tls_ensure_certificate(f->cert, f->key, HOST, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, f->cert));
    assert_int_equal(access(f->cert, F_OK), -1);
    char *k = slurp(f->key, NULL);
    assert_string_equal(k, "key only\n");
    free(k);
}

static void test_separate_directories(void **state)
{
    struct fixture *f = *state;
    char *cert = xasprintf("%s/certs/a/cert.pem", f->dir);
    char *key = xasprintf("%s/private/b/key.pem", f->dir);
    make_pair(cert, key);
    X509 *x = load_cert(cert);
    EVP_PKEY *k = load_key(key);
    assert_non_null(x);
    assert_non_null(k);
    assert_int_equal(X509_check_private_key(x, k), 1);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    X509_free(x);
    EVP_PKEY_free(k);
    free(cert);
    free(key);
}

#define NTHREADS 8

struct racer {
    struct fixture *f;
    pthread_barrier_t *barrier;
    int rc;
    const char *err;
    char errbuf[512];
    char *cert_seen;
    char *key_seen;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->barrier);
    r->rc = tls_ensure_certificate(r->f->cert, r->f->key, HOST, &r->err);
    if (r->rc < 0) snprintf(r->errbuf, sizeof(r->errbuf), "%s", r->err);
    /* what this caller would load right after its call returned */
    r->cert_seen = slurp(r->f->cert, NULL);
    r->key_seen = slurp(r->f->key, NULL);
    return NULL;
}

static void test_concurrent_one_pair(void **state)
{
    struct fixture *f = *state;
    for (int round = 0; round < 3; round++) {
        unlink(f->cert);
        unlink(f->key);
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, NTHREADS);
        struct racer r[NTHREADS];
        pthread_t t[NTHREADS];
        memset(r, 0, sizeof(r));
        for (int i = 0; i < NTHREADS; i++) {
            r[i].f = f;
            r[i].barrier = &barrier;
            assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
        }
        for (int i = 0; i < NTHREADS; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&barrier);

        char *final_cert = slurp(f->cert, NULL);
        char *final_key = slurp(f->key, NULL);
        assert_non_null(final_cert);
        assert_non_null(final_key);
        for (int i = 0; i < NTHREADS; i++) {
            if (r[i].rc != 0) fail_msg("thread %d: %s", i, r[i].errbuf);
            /* every caller saw the one pair that is there in the end */
            assert_non_null(r[i].cert_seen);
            assert_non_null(r[i].key_seen);
            assert_string_equal(r[i].cert_seen, final_cert);
            assert_string_equal(r[i].key_seen, final_key);
            free(r[i].cert_seen);
            free(r[i].key_seen);
        }
        X509 *x = load_cert(f->cert);
        EVP_PKEY *k = load_key(f->key);
        assert_non_null(x);
        assert_non_null(k);
        assert_int_equal(X509_check_private_key(x, k), 1);
        X509_free(x);
        EVP_PKEY_free(k);
        free(final_cert);
        free(final_key);
    }
}

/* ---- tls_server_ctx_new --------------------------------------------------------------- */

static void expect_ctx_error(const char *cert, const char *key, const char *ciphers,
                             const char *want1, const char *want2)
{
    const char *err = NULL;
    SSL_CTX *ctx = tls_server_ctx_new(cert, key, ciphers, &err);
    if (ctx != NULL) {
        SSL_CTX_free(ctx);
        fail_msg("a context was made for %s / %s / %s", cert, key, ciphers);
    }
    assert_non_null(err);
    if (strstr(err, want1) == NULL) fail_msg("'%s' does not mention '%s'", err, want1);
    if (want2 && strstr(err, want2) == NULL) fail_msg("'%s' does not mention '%s'", err, want2);
    assert_int_equal(ERR_peek_error(), 0); /* no stale OpenSSL errors left behind */
}

static void test_ctx_errors(void **state)
{
    struct fixture *f = *state;
    make_pair(f->cert, f->key);
    char *other_cert = xasprintf("%s/other/cert.pem", f->dir);
    char *other_key = xasprintf("%s/other/key.pem", f->dir);
    make_pair(other_cert, other_key);
    char *missing = xasprintf("%s/missing.pem", f->dir);
    char *garbage = xasprintf("%s/garbage.pem", f->dir);
    char *empty = xasprintf("%s/empty.pem", f->dir);
    write_text(garbage, "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n"
                        "-----END CERTIFICATE-----\n");
    write_text(empty, "");

    expect_ctx_error(missing, f->key, CIPHERS, "[TLS] Certificate", missing);
    expect_ctx_error(garbage, f->key, CIPHERS, "[TLS] Certificate", garbage);
    expect_ctx_error(empty, f->key, CIPHERS, "[TLS] Certificate", empty);
    expect_ctx_error(f->cert, missing, CIPHERS, "[TLS] Key", missing);
    expect_ctx_error(f->cert, garbage, CIPHERS, "[TLS] Key", garbage);
    expect_ctx_error(f->cert, empty, CIPHERS, "[TLS] Key", empty);
    /* a key that is not the certificate's */
    expect_ctx_error(f->cert, other_key, CIPHERS, "[TLS] Key", "match");
    expect_ctx_error(other_cert, f->key, CIPHERS, "[TLS] Key", "match");
    /* the key given as the certificate */
    expect_ctx_error(f->key, f->key, CIPHERS, "[TLS] Certificate", NULL);
    /* cipher lists with nothing usable */
    expect_ctx_error(f->cert, f->key, "NO-SUCH-CIPHER", "[TLS] Ciphers", "NO-SUCH-CIPHER");
    expect_ctx_error(f->cert, f->key, "", "[TLS] Ciphers", NULL);

    free(other_cert);
    free(other_key);
    free(missing);
    free(garbage);
    free(empty);
}

static void test_ctx_good(void **state)
{
    struct fixture *f = *state;
    make_pair(f->cert, f->key);
    const char *err = NULL;
    SSL_CTX *ctx = tls_server_ctx_new(f->cert, f->key, CIPHERS, &err);
    if (ctx == NULL) fail_msg("%s", err);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    uint64_t opts = SSL_CTX_get_options(ctx);
    assert_true(opts & SSL_OP_NO_COMPRESSION);
    assert_true(opts & SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_free(ctx);
}

/* ---- handshakes over a socketpair ----------------------------------------------------- */

struct client {
    int fd;
    int min_version, max_version;
    const char *ciphers; /* TLS 1.2 list, NULL: OpenSSL's */
    bool connected;
    bool echoed;
    unsigned long err; /* the first OpenSSL error of a failed handshake */
    char version[32];
    char cipher[64];
};

static void *client_thread(void *arg)
{
    struct client *c = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    /* the client itself must be willing to speak old protocols, so that a refusal is
     * the server's doing */
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, c->min_version);
    SSL_CTX_set_max_proto_version(ctx, c->max_version);
    SSL_CTX_set_cipher_list(ctx, c->ciphers ? c->ciphers : "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, c->fd);
    ERR_clear_error();
    if (SSL_connect(ssl) == 1) {
        c->connected = true;
        snprintf(c->version, sizeof(c->version), "%s", SSL_get_version(ssl));
        snprintf(c->cipher, sizeof(c->cipher), "%s", SSL_get_cipher_name(ssl));
        char buf[64] = "";
        if (SSL_write(ssl, "hello\r\n", 7) == 7) {
            size_t len = 0;
            while (len < 7) {
                int n = SSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len));
                if (n <= 0) break;
                len += (size_t)n;
            }
            buf[len] = '\0';
            c->echoed = strcmp(buf, "world\r\n") == 0;
        }
        SSL_shutdown(ssl);
    } else {
        c->err = ERR_peek_error();
    }
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(c->fd);
    return NULL;
}

/* Runs one handshake: conn_starttls() here, the client in a thread. Returns the server's
 * status; *err_r is its error text. */
static enum conn_status handshake(struct fixture *f, struct client *cl, const char **err_r)
{
    make_pair(f->cert, f->key);
    const char *err = NULL;
    SSL_CTX *ctx = tls_server_ctx_new(f->cert, f->key, CIPHERS, &err);
    if (ctx == NULL) fail_msg("%s", err);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct conn *c = conn_new(sv[0]);
    cl->fd = sv[1];
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_thread, cl), 0);
    *err_r = NULL;
    enum conn_status st = conn_starttls(c, ctx, conn_now_ms() + 5000, err_r);
    if (st == CONN_OK) {
        struct sbuf line = SBUF_INIT(0);
        enum conn_status rs = conn_read_line(c, &line, 512, conn_now_ms() + 5000);
        if (rs == CONN_OK && strcmp(sbuf_cstr(&line), "hello") == 0) {
            conn_puts(c, "world\r\n");
            conn_flush(c, conn_now_ms() + 5000);
        }
        sbuf_free(&line);
    }
    char info[sizeof(c->tls_info)];
    snprintf(info, sizeof(info), "%s", c->tls_info);
    conn_free(&c); /* closes our end: a client still waiting sees EOF */
    pthread_join(t, NULL);
    SSL_CTX_free(ctx);
    if (st == CONN_OK) {
        /* what the server logs agrees with what the client got */
        assert_non_null(strstr(info, cl->version));
        assert_non_null(strstr(info, cl->cipher));
    }
    return st;
}

static void test_handshake_tls12(void **state)
{
    struct client cl = {.min_version = TLS1_2_VERSION, .max_version = TLS1_2_VERSION};
    const char *err;
    enum conn_status st = handshake(*state, &cl, &err);
    if (st != CONN_OK) fail_msg("server: %s", err ? err : "?");
    assert_true(cl.connected);
    assert_true(cl.echoed);
    assert_string_equal(cl.version, "TLSv1.2");
    /* forward secret AEAD */
    assert_non_null(strstr(cl.cipher, "ECDHE"));
    assert_true(strstr(cl.cipher, "GCM") != NULL || strstr(cl.cipher, "CHACHA20") != NULL);
}

static void test_handshake_tls12_gcm(void **state)
{
    struct client cl = {.min_version = TLS1_2_VERSION,
                        .max_version = TLS1_2_VERSION,
                        .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"};
    const char *err;
    enum conn_status st = handshake(*state, &cl, &err);
    if (st != CONN_OK) fail_msg("server: %s", err ? err : "?");
    assert_true(cl.echoed);
    assert_string_equal(cl.cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");
}

static void test_handshake_tls13(void **state)
{
    struct client cl = {.min_version = TLS1_3_VERSION, .max_version = TLS1_3_VERSION};
    const char *err;
    enum conn_status st = handshake(*state, &cl, &err);
    if (st != CONN_OK) fail_msg("server: %s", err ? err : "?");
    assert_true(cl.connected);
    assert_true(cl.echoed);
    assert_string_equal(cl.version, "TLSv1.3");
}

static void test_handshake_tls11_refused(void **state)
{
    struct client cl = {.min_version = TLS1_VERSION, .max_version = TLS1_1_VERSION};
    const char *err;
    enum conn_status st = handshake(*state, &cl, &err);
    assert_int_not_equal(st, CONN_OK);
    assert_non_null(err);
    assert_false(cl.connected);
    /* the server said no: a protocol_version alert */
    assert_int_equal(ERR_GET_REASON(cl.err), SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
}

static void test_handshake_tls10_refused(void **state)
{
    struct client cl = {.min_version = TLS1_VERSION, .max_version = TLS1_VERSION};
    const char *err;
    enum conn_status st = handshake(*state, &cl, &err);
    assert_int_not_equal(st, CONN_OK);
    assert_false(cl.connected);
    assert_int_equal(ERR_GET_REASON(cl.err), SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
}

static void test_handshake_weak_cipher_refused(void **state)
{
    /* ciphers the EC certificate could serve, but outside the intermediate profile */
    const char *weak[] = {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384",
                          "ECDHE-ECDSA-AES128-SHA256"};
    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
        char list[128];
        snprintf(list, sizeof(list), "%s:@SECLEVEL=0", weak[i]);
        struct client cl = {
            .min_version = TLS1_2_VERSION, .max_version = TLS1_2_VERSION, .ciphers = list};
        const char *err;
        enum conn_status st = handshake(*state, &cl, &err);
        if (st == CONN_OK) fail_msg("%s was accepted", weak[i]);
        assert_false(cl.connected);
        assert_int_equal(ERR_GET_REASON(cl.err), SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_makes_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_made_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing_pair_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_one_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_separate_directories, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_one_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctx_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctx_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_tls12, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_tls12_gcm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_tls13, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_tls11_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_tls10_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_weak_cipher_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tls.c - TLS server contexts and the self-signed certificate made on first start
 *
 * SECURITY: see tls.h. Handshake parameters follow Mozilla's "intermediate" profile:
 * TLS 1.2+, ECDHE/DHE with AEAD ciphers, the client's cipher order respected.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "xalloc.h"

static __thread char tls_error[512];

static const char *openssl_reason(void)
{
    /* the first error that has words: a system error (a CA file that does not exist) has
     * none in ERR_reason_error_string, but has its errno */
    const char *r = NULL;
    unsigned long e;
    while (r == NULL && (e = ERR_get_error()) != 0) {
        if (ERR_SYSTEM_ERROR(e))
            r = strerror(ERR_GET_REASON(e));
        else
            r = ERR_reason_error_string(e);
    }
    ERR_clear_error();
    return r ? r : "unknown error";
}

static int add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ex == NULL) return -1;
    int r = X509_add_ext(cert, ex, -1);
    X509_EXTENSION_free(ex);
    return r == 1 ? 0 : -1;
}

/* Writes a PEM produced by fn into path atomically with mode. */
static int write_pem(const char *path, mode_t mode, int (*fn)(BIO *, void *), void *obj)
{
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem == NULL || fn(mem, obj) != 1) {
        BIO_free(mem);
        errno = EIO;
        return -1;
    }
    char *data;
    long len = BIO_get_mem_data(mem, &data);
    int r = fs_write_file_atomic(path, data, (size_t)len, mode);
    OPENSSL_cleanse(data, (size_t)len);
    BIO_free(mem);
    return r;
}

static int pem_key(BIO *b, void *k)
{
    return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static int pem_cert(BIO *b, void *c)
{
    return PEM_write_bio_X509(b, c);
}

static int make_pair(const char *cert_path, const char *key_path, const char *hostname)
{
    int ret = -1;
    X509 *cert = NULL;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL) goto out;
    cert = X509_new();
    if (cert == NULL) goto out;
    X509_set_version(cert, 2);
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof(serial)) != 1) goto out;
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL) goto out;
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 825L * 86400);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Alkaid Mail Server",
                               -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname, -1, -1,
                               0);
    X509_set_issuer_name(cert, name);
    char *san = xasprintf("DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1", hostname);
    int e = add_ext(cert, NID_subject_alt_name, san);
    free(san);
    if (e < 0 || add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(cert, NID_key_usage, "critical,digitalSignature") < 0 ||
        add_ext(cert, NID_ext_key_usage, "serverAuth") < 0)
        goto out;
    if (X509_sign(cert, key, EVP_sha256()) == 0) goto out;
    if (write_pem(key_path, 0600, pem_key, key) < 0) goto out;
    if (write_pem(cert_path, 0644, pem_cert, cert) < 0) goto out;
    ret = 0;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return ret;
}

int tls_ensure_certificate(const char *cert_path, const char *key_path, const char *hostname,
                           const char **error_r)
{
    if (access(cert_path, F_OK) == 0 && access(key_path, F_OK) == 0) return 0;
    char *dir = fs_dirname(cert_path);
    char *kdir = fs_dirname(key_path);
    char *lockpath = xasprintf("%s/.tls.lock", dir);
    int ret = -1, lockfd = -1;
    if (fs_mkdirs(dir, 0750) < 0 || fs_mkdirs(kdir, 0750) < 0) {
        snprintf(tls_error, sizeof(tls_error), "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX) < 0) {
        snprintf(tls_error, sizeof(tls_error), "cannot lock %s: %s", lockpath, strerror(errno));
        goto out;
    }
    /* another service may have made the pair while we waited */
    if (access(cert_path, F_OK) == 0 && access(key_path, F_OK) == 0) {
        ret = 0;
        goto out;
    }
    if (access(cert_path, F_OK) == 0 || access(key_path, F_OK) == 0) {
        snprintf(tls_error, sizeof(tls_error),
                 "only one of %s and %s exists; supply both or remove the other", cert_path,
                 key_path);
        goto out;
    }
    if (make_pair(cert_path, key_path, hostname) < 0) {
        snprintf(tls_error, sizeof(tls_error), "cannot make a self-signed certificate in %s: %s",
                 dir, errno ? strerror(errno) : openssl_reason());
        goto out;
    }
    ret = 0;
out:
    if (lockfd >= 0) close(lockfd);
    if (ret < 0 && error_r) *error_r = tls_error;
    free(lockpath);
    free(dir);
    free(kdir);
    return ret;
}

SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path, const char *ciphers,
                            const char **error_r)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(tls_error, sizeof(tls_error), "cannot create a TLS context: %s", openssl_reason());
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
    SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"alkaid", 6);
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        snprintf(tls_error, sizeof(tls_error), "[TLS] Ciphers: no usable cipher in '%s'", ciphers);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        snprintf(tls_error, sizeof(tls_error), "[TLS] Certificate: cannot load %s: %s", cert_path,
                 openssl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(tls_error, sizeof(tls_error),
                     "[TLS] Key: %s does not match the certificate %s", key_path, cert_path);
        else
            snprintf(tls_error, sizeof(tls_error), "[TLS] Key: cannot load %s: %s", key_path,
                     openssl_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(tls_error, sizeof(tls_error), "[TLS] Key: %s does not match the certificate %s",
                 key_path, cert_path);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    if (error_r) *error_r = tls_error;
    return NULL;
}

SSL_CTX *tls_client_ctx_new(const char *ca_file, const char **error_r)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(tls_error, sizeof(tls_error), "cannot create a TLS context: %s", openssl_reason());
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* the handshake goes on whatever the certificate; the policy decides afterwards */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (ca_file && *ca_file && access(ca_file, R_OK) == 0) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            snprintf(tls_error, sizeof(tls_error), "[Queue] CAFile: cannot load %s: %s", ca_file,
                     openssl_reason());
            goto fail;
        }
    } else {
        SSL_CTX_set_default_verify_paths(ctx);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    if (error_r) *error_r = tls_error;
    return NULL;
}

SSL_CTX *tls_admin_client_ctx_new(const char *ca_file, const char **error_r)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(tls_error, sizeof(tls_error), "cannot create a TLS context: %s", openssl_reason());
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* verified after the handshake (conn_tls_verified) so that the error can say why */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            snprintf(tls_error, sizeof(tls_error), "cannot load CA file %s: %s", ca_file,
                     openssl_reason());
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(tls_error, sizeof(tls_error), "cannot load the system's CAs: %s",
                 openssl_reason());
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    if (error_r) *error_r = tls_error;
    return NULL;
}

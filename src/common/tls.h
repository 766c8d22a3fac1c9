/* tls.h - TLS server contexts and the self-signed certificate made on first start
 *
 * TLS 1.2 and 1.3 only, the Mozilla "intermediate" cipher list for TLS 1.2 ([TLS]
 * Ciphers), no compression, no renegotiation, a server-side session cache.
 *
 * SECURITY: the private key is written with mode 0600 before the certificate, through
 * a temporary name, under a lock, so services starting together make one pair.
 */
#ifndef ALKAID_TLS_H
#define ALKAID_TLS_H

#include <openssl/ssl.h>

/* Makes a self-signed certificate and key (EC P-256, 825 days, CN and SAN = hostname,
 * SAN also localhost, 127.0.0.1 and ::1) at cert_path/key_path unless both exist.
 * 0, or -1 with a message in *error_r (thread-local storage). */
int tls_ensure_certificate(const char *cert_path, const char *key_path, const char *hostname,
                           const char **error_r);
/* A server context for the pair. NULL with *error_r set (naming the file) on failure. */
SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path, const char *ciphers,
                            const char **error_r);

/* A client context for outbound SMTP: TLS 1.2+, trusting the CAs in ca_file (or the
 * system's when it is empty or missing); certificates are checked by the caller
 * (conn_tls_verified) so that opportunistic TLS still works with self-signed peers. */
SSL_CTX *tls_client_ctx_new(const char *ca_file, const char **error_r);
/* A client context for the admin port: TLS 1.2+, trusting only ca_file when given (an
 * error if it cannot be loaded), else the system's CAs. The caller checks the result with
 * conn_tls_verified(). */
SSL_CTX *tls_admin_client_ctx_new(const char *ca_file, const char **error_r);

#endif

/* conn.h - one client connection: buffered, deadline-bound reads and writes, plain or TLS
 *
 * Every read has an absolute deadline (a whole command line must arrive in time, not
 * just each byte: that is what defeats slowloris). Writes are buffered until
 * conn_flush(); with PIPELINING a session flushes only when conn_pending() is 0.
 *
 * SECURITY: the read buffer is fixed-size; lines are bounded by the caller's maximum and
 * an over-long line is consumed and discarded, never stored. conn_starttls() throws
 * away anything the client sent after the STARTTLS command in plaintext.
 */
#ifndef ALKAID_CONN_H
#define ALKAID_CONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"

#define CONN_RBUF_SIZE 16384
#define CONN_WBUF_MAX  (1u << 20) /* buffered output before a forced flush */

enum conn_status {
    CONN_OK = 1,
    CONN_EOF = 0,      /* the client closed the connection */
    CONN_ERROR = -1,   /* I/O or TLS error (or the connection was shut down) */
    CONN_TIMEOUT = -2, /* the deadline passed */
    CONN_TOOLONG = -3, /* the line was longer than allowed; it has been skipped */
    CONN_STOPPED = -4, /* *interrupt was set while waiting for a new line */
};

struct conn {
    int fd;
    SSL *ssl;
    char ip[64];    /* the client's address as text */
    int port;       /* the client's port */
    int local_port; /* the port the client connected to */
    char *rbuf;
    size_t rpos, rlen; /* unread bytes are rbuf[rpos..rlen) */
    struct sbuf wbuf;
    uint64_t bytes_in, bytes_out;
    bool write_failed;
    const bool *interrupt; /* when set (the service is stopping), conn_read_line() gives up
                              waiting for a line that has not begun: CONN_STOPPED */
    bool interrupt_always; /* ... and every other wait too (outbound connections) */
    char tls_info[96];     /* "TLSv1.3 TLS_AES_256_GCM_SHA384" once TLS is up */
};

/* Milliseconds on the monotonic clock. */
int64_t conn_now_ms(void);

/* Takes ownership of fd (made non-blocking). */
struct conn *conn_new(int fd);
/* Closes the connection (TLS close_notify if up) and frees it. */
void conn_free(struct conn **conn);

/* Reads one line ending in LF into line (without the CRLF or LF). Lines longer than max
 * octets (including the line end) are skipped through their LF and CONN_TOOLONG is
 * returned. A line may contain NUL bytes: check line->len against strlen(). While no
 * octet of the line has arrived, *conn->interrupt is checked a few times a second. */
enum conn_status conn_read_line(struct conn *conn, struct sbuf *line, size_t max,
                                int64_t deadline_ms);
/* Makes sure at least one unread byte is buffered, reading if needed. */
enum conn_status conn_fill(struct conn *conn, int64_t deadline_ms);
/* The same for a session waiting for its next command: gives up with CONN_STOPPED when
 * *conn->interrupt is set (the service is stopping). */
enum conn_status conn_fill_idle(struct conn *conn, int64_t deadline_ms);
/* The unread buffered bytes; conn_consume() marks n of them read. */
static inline const char *conn_peek(const struct conn *conn, size_t *len_r)
{
    *len_r = conn->rlen - conn->rpos;
    return conn->rbuf + conn->rpos;
}
void conn_consume(struct conn *conn, size_t n);
/* Throws away the unread bytes already buffered (not those still in the kernel). */
void conn_discard_input(struct conn *conn);
/* Unread bytes already received (including decrypted TLS records not yet read). */
size_t conn_pending(const struct conn *conn);
/* Waits until the client sends something (true) or the deadline passes / the
 * connection fails (false). */
bool conn_wait_readable(struct conn *conn, int64_t deadline_ms);

/* Buffered output. On error the connection is marked failed and later writes are
 * dropped; conn_flush() reports it. */
void conn_write(struct conn *conn, const void *data, size_t len);
void conn_puts(struct conn *conn, const char *s);
void conn_printf(struct conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum conn_status conn_flush(struct conn *conn, int64_t deadline_ms);

/* Starts TLS as the server (after STARTTLS, or at once for implicit TLS). Discards
 * buffered plaintext first. On failure *error_r says why (static text). */
enum conn_status conn_starttls(struct conn *conn, SSL_CTX *ctx, int64_t deadline_ms,
                               const char **error_r);
static inline bool conn_is_tls(const struct conn *conn)
{
    return conn->ssl != NULL;
}
/* The client side. Connects to ip (IPv4 or IPv6 text) port by the deadline; NULL with a
 * reason in error on failure. When *interrupt (may be NULL) becomes true, the connect and
 * every later wait on the connection give up (CONN_STOPPED). */
struct conn *conn_connect(const char *ip, int port, int64_t deadline_ms, const bool *interrupt,
                          char *error, size_t error_size);
/* Starts TLS as the client (after the server said 220 to STARTTLS), sending server_name
 * as SNI and setting it as the name the certificate must match. The handshake does not
 * fail on a certificate that does not verify: conn_tls_verified() says whether it did. */
enum conn_status conn_starttls_client(struct conn *conn, SSL_CTX *ctx, const char *server_name,
                                      int64_t deadline_ms, const char **error_r);
/* Whether the peer's certificate chained to a trusted CA and matched the name given to
 * conn_starttls_client(); *why_r says why not. */
bool conn_tls_verified(const struct conn *conn, const char **why_r);

/* Wakes up a thread blocked on this connection (used when the service stops). */
void conn_shutdown(struct conn *conn);

#endif

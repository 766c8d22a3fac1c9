/* conn.c - one client connection: buffered, deadline-bound reads and writes, plain or TLS
 *
 * The socket is non-blocking; every wait is a poll() bounded by the caller's absolute
 * deadline, so a client that trickles bytes cannot hold a thread past it.
 *
 * SECURITY: the read buffer never grows; conn_read_line() enforces the caller's maximum
 * while it scans and drops the excess instead of storing it.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

#define CONN_WRITE_TIMEOUT_MS 60000

int64_t conn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct conn *conn_new(int fd)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->rbuf = xmalloc(CONN_RBUF_SIZE);
    sbuf_init(&c->wbuf, CONN_WBUF_MAX * 2);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return c;
}

void conn_free(struct conn **connp)
{
    struct conn *c = *connp;
    if (c == NULL) return;
    if (c->ssl) {
        if (!c->write_failed) SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) close(c->fd);
    free(c->rbuf);
    sbuf_free(&c->wbuf);
    free(c);
    *connp = NULL;
}

void conn_shutdown(struct conn *c)
{
    shutdown(c->fd, SHUT_RDWR);
}

#define CONN_INTERRUPT_POLL_MS 200

/* Waits for events on the socket until the deadline (or the interrupt, if idle). */
static enum conn_status wait_fd(struct conn *c, short events, int64_t deadline_ms, bool idle)
{
    idle = idle || c->interrupt_always;
    for (;;) {
        if (idle && c->interrupt && __atomic_load_n(c->interrupt, __ATOMIC_ACQUIRE))
            return CONN_STOPPED;
        int64_t left = deadline_ms - conn_now_ms();
        if (left <= 0) return CONN_TIMEOUT;
        int64_t slice = idle && c->interrupt ? CONN_INTERRUPT_POLL_MS : 60000;
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int r = poll(&pfd, 1, left > slice ? (int)slice : (int)left);
        if (r < 0) {
            if (errno == EINTR) continue;
            return CONN_ERROR;
        }
        if (r == 0) continue;
        if (pfd.revents & POLLNVAL) return CONN_ERROR;
        return CONN_OK; /* readable, writable, or HUP/ERR: the next I/O call tells */
    }
}

/* Handles an SSL_* result: CONN_OK to retry after waiting, else a final status. */
static enum conn_status ssl_wait(struct conn *c, int ret, int64_t deadline_ms, bool idle)
{
    int err = SSL_get_error(c->ssl, ret);
    switch (err) {
    case SSL_ERROR_WANT_READ: return wait_fd(c, POLLIN, deadline_ms, idle);
    case SSL_ERROR_WANT_WRITE: return wait_fd(c, POLLOUT, deadline_ms, idle);
    case SSL_ERROR_ZERO_RETURN: return CONN_EOF;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return (ret == 0 || errno == 0) ? CONN_EOF : CONN_ERROR;
    default: ERR_clear_error(); return CONN_ERROR;
    }
}

static enum conn_status read_some(struct conn *c, int64_t deadline_ms, bool idle)
{
    if (c->rpos == c->rlen) c->rpos = c->rlen = 0;
    if (c->rlen == CONN_RBUF_SIZE) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    char *dst = c->rbuf + c->rlen;
    size_t room = CONN_RBUF_SIZE - c->rlen;
    if (room == 0) return CONN_OK; /* full: the caller has data to work on */
    for (;;) {
        if (c->ssl) {
            int n = SSL_read(c->ssl, dst, (int)room);
            if (n > 0) {
                c->rlen += (size_t)n;
                __atomic_fetch_add(&c->bytes_in, (uint64_t)n, __ATOMIC_RELAXED);
                return CONN_OK;
            }
            enum conn_status st = ssl_wait(c, n, deadline_ms, idle);
            if (st != CONN_OK) return st;
        } else {
            ssize_t n = read(c->fd, dst, room);
            if (n > 0) {
                c->rlen += (size_t)n;
                __atomic_fetch_add(&c->bytes_in, (uint64_t)n, __ATOMIC_RELAXED);
                return CONN_OK;
            }
            if (n == 0) return CONN_EOF;
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return CONN_ERROR;
            enum conn_status st = wait_fd(c, POLLIN, deadline_ms, idle);
            if (st != CONN_OK) return st;
        }
    }
}

enum conn_status conn_fill(struct conn *c, int64_t deadline_ms)
{
    if (c->rpos < c->rlen) return CONN_OK;
    return read_some(c, deadline_ms, false);
}

enum conn_status conn_fill_idle(struct conn *c, int64_t deadline_ms)
{
    if (c->rpos < c->rlen) return CONN_OK;
    return read_some(c, deadline_ms, true);
}

void conn_consume(struct conn *c, size_t n)
{
    c->rpos += n;
    if (c->rpos >= c->rlen) c->rpos = c->rlen = 0;
}

void conn_discard_input(struct conn *c)
{
    c->rpos = c->rlen = 0;
}

size_t conn_pending(const struct conn *c)
{
    size_t n = c->rlen - c->rpos;
    if (c->ssl) n += (size_t)SSL_pending(c->ssl);
    return n;
}

bool conn_wait_readable(struct conn *c, int64_t deadline_ms)
{
    return conn_fill(c, deadline_ms) == CONN_OK;
}

enum conn_status conn_read_line(struct conn *c, struct sbuf *line, size_t max, int64_t deadline_ms)
{
    size_t total = 0;
    bool toolong = false;
    sbuf_reset(line);
    for (;;) {
        if (c->rpos == c->rlen) {
            enum conn_status st = read_some(c, deadline_ms, total == 0);
            if (st != CONN_OK) return st;
        }
        const char *p = c->rbuf + c->rpos;
        size_t n = c->rlen - c->rpos;
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        total += take;
        if (!toolong) {
            if (total > max || sbuf_append(line, p, take) < 0) {
                toolong = true;
                sbuf_reset(line);
            }
        }
        conn_consume(c, take);
        if (nl) break;
    }
    if (toolong) return CONN_TOOLONG;
    if (line->len && line->data[line->len - 1] == '\n') line->len--;
    if (line->len && line->data[line->len - 1] == '\r') line->len--;
    line->data[line->len] = '\0';
    return CONN_OK;
}

void conn_write(struct conn *c, const void *data, size_t len)
{
    if (c->write_failed) return;
    if (c->wbuf.len + len > CONN_WBUF_MAX) {
        if (conn_flush(c, conn_now_ms() + CONN_WRITE_TIMEOUT_MS) != CONN_OK) return;
    }
    if (sbuf_append(&c->wbuf, data, len) < 0) {
        /* larger than the buffer itself: write it straight through */
        if (conn_flush(c, conn_now_ms() + CONN_WRITE_TIMEOUT_MS) != CONN_OK) return;
        const char *p = data;
        while (len > 0 && !c->write_failed) {
            size_t chunk = len > CONN_WBUF_MAX ? CONN_WBUF_MAX : len;
            sbuf_append(&c->wbuf, p, chunk);
            conn_flush(c, conn_now_ms() + CONN_WRITE_TIMEOUT_MS);
            p += chunk;
            len -= chunk;
        }
    }
}

void conn_puts(struct conn *c, const char *s)
{
    conn_write(c, s, strlen(s));
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    conn_write(c, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

enum conn_status conn_flush(struct conn *c, int64_t deadline_ms)
{
    if (c->write_failed) return CONN_ERROR;
    size_t off = 0;
    while (off < c->wbuf.len) {
        const char *p = c->wbuf.data + off;
        size_t left = c->wbuf.len - off;
        if (c->ssl) {
            int n = SSL_write(c->ssl, p, left > INT32_MAX ? INT32_MAX : (int)left);
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            enum conn_status st = ssl_wait(c, n, deadline_ms, false);
            if (st != CONN_OK) goto fail;
        } else {
            ssize_t n = send(c->fd, p, left, MSG_NOSIGNAL);
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (wait_fd(c, POLLOUT, deadline_ms, false) != CONN_OK) goto fail;
                continue;
            }
            goto fail;
        }
    }
    __atomic_fetch_add(&c->bytes_out, (uint64_t)off, __ATOMIC_RELAXED);
    sbuf_reset(&c->wbuf);
    return CONN_OK;
fail:
    __atomic_fetch_add(&c->bytes_out, (uint64_t)off, __ATOMIC_RELAXED);
    c->write_failed = true;
    sbuf_reset(&c->wbuf);
    return CONN_ERROR;
}

enum conn_status conn_starttls(struct conn *c, SSL_CTX *ctx, int64_t deadline_ms,
                               const char **error_r)
{
    /* CVE-2011-0411 family: whatever the client pipelined in plaintext after the command
     * that started TLS must not be read as if it came over TLS. */
    c->rpos = c->rlen = 0;
    *error_r = NULL;
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        *error_r = "cannot create a TLS session";
        return CONN_ERROR;
    }
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    for (;;) {
        ERR_clear_error();
        int r = SSL_accept(c->ssl);
        if (r == 1) break;
        unsigned long e = ERR_peek_error();
        enum conn_status st = ssl_wait(c, r, deadline_ms, false);
        if (st != CONN_OK) {
            if (st == CONN_TIMEOUT)
                *error_r = "TLS handshake timed out";
            else if (e != 0)
                *error_r = ERR_reason_error_string(e);
            if (*error_r == NULL) *error_r = "TLS handshake failed";
            c->write_failed = true; /* no close_notify on a failed handshake */
            return st == CONN_EOF ? CONN_ERROR : st;
        }
    }
    snprintf(c->tls_info, sizeof(c->tls_info), "%s %s", SSL_get_version(c->ssl),
             SSL_get_cipher_name(c->ssl));
    return CONN_OK;
}

/* ---- the client side (outbound SMTP) ------------------------------------------------ */

struct conn *conn_connect(const char *ip, int port, int64_t deadline_ms, const bool *interrupt,
                          char *error, size_t error_size)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sslen = sizeof(*sin);
    } else if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sslen = sizeof(*sin6);
    } else {
        snprintf(error, error_size, "'%s' is not an address", ip);
        return NULL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(error, error_size, "socket: %s", strerror(errno));
        return NULL;
    }
    if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
        if (errno != EINPROGRESS) {
            snprintf(error, error_size, "connect to %s port %d: %s", ip, port, strerror(errno));
            close(fd);
            return NULL;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int64_t left;
        int r;
        for (;;) {
            if (interrupt && __atomic_load_n(interrupt, __ATOMIC_ACQUIRE)) {
                snprintf(error, error_size, "connect to %s port %d: interrupted", ip, port);
                close(fd);
                return NULL;
            }
            left = deadline_ms - conn_now_ms();
            if (left > CONN_INTERRUPT_POLL_MS) left = CONN_INTERRUPT_POLL_MS;
            r = left > 0 ? poll(&p, 1, (int)left) : 0;
            if (r < 0 && errno == EINTR) continue;
            if (r != 0 || deadline_ms <= conn_now_ms()) break;
        }
        if (r <= 0) {
            snprintf(error, error_size, "connect to %s port %d: timed out", ip, port);
            close(fd);
            return NULL;
        }
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
        if (soerr != 0) {
            snprintf(error, error_size, "connect to %s port %d: %s", ip, port, strerror(soerr));
            close(fd);
            return NULL;
        }
    }
    int one = 1; /* commands are written whole: do not let Nagle hold back the last one */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct conn *c = conn_new(fd);
    snprintf(c->ip, sizeof(c->ip), "%s", ip);
    c->port = port;
    c->interrupt = interrupt;
    c->interrupt_always = interrupt != NULL;
    return c;
}

enum conn_status conn_starttls_client(struct conn *c, SSL_CTX *ctx, const char *server_name,
                                      int64_t deadline_ms, const char **error_r)
{
    c->rpos = c->rlen = 0; /* nothing the server sent before TLS is kept */
    *error_r = NULL;
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        *error_r = "cannot create a TLS session";
        return CONN_ERROR;
    }
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (server_name && *server_name) {
        unsigned char a[16];
        bool literal =
            inet_pton(AF_INET, server_name, a) == 1 || inet_pton(AF_INET6, server_name, a) == 1;
        if (!literal) SSL_set_tlsext_host_name(c->ssl, server_name);
        SSL_set1_host(c->ssl, server_name); /* checked by the caller through verify_result */
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1) break;
        unsigned long e = ERR_peek_error();
        enum conn_status st = ssl_wait(c, r, deadline_ms, false);
        if (st != CONN_OK) {
            if (st == CONN_TIMEOUT)
                *error_r = "TLS handshake timed out";
            else if (e != 0)
                *error_r = ERR_reason_error_string(e);
            if (*error_r == NULL) *error_r = "TLS handshake failed";
            c->write_failed = true;
            return st == CONN_EOF ? CONN_ERROR : st;
        }
    }
    snprintf(c->tls_info, sizeof(c->tls_info), "%s %s", SSL_get_version(c->ssl),
             SSL_get_cipher_name(c->ssl));
    return CONN_OK;
}

bool conn_tls_verified(const struct conn *c, const char **why_r)
{
    *why_r = NULL;
    if (c->ssl == NULL) {
        *why_r = "no TLS";
        return false;
    }
    X509 *peer = SSL_get1_peer_certificate(c->ssl);
    if (peer == NULL) {
        *why_r = "no certificate";
        return false;
    }
    X509_free(peer);
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
        *why_r = X509_verify_cert_error_string(v);
        return false;
    }
    return true;
}

/* sbuf.h - growable byte strings that cannot overflow
 *
 * A struct sbuf holds data[0..len) followed by a NUL, so data is always a valid C
 * string (which may contain embedded NULs when binary). Each buffer has a hard maximum:
 * an append that would pass it fails with -1 and leaves the buffer unchanged, which is
 * how parsers bound what a client can make us allocate.
 *
 * SECURITY: lengths are checked for overflow before any growth.
 */
#ifndef ALKAID_SBUF_H
#define ALKAID_SBUF_H

#include <stdarg.h>
#include <stddef.h>

struct sbuf {
    char *data; /* NULL until the first append; use sbuf_cstr() for a safe "" */
    size_t len;
    size_t cap;
    size_t max; /* the largest len allowed */
};

#define SBUF_NO_MAX ((size_t)1 << 40)
#define SBUF_INIT(maxlen)                                                                          \
    {                                                                                              \
        NULL, 0, 0, (maxlen)                                                                       \
    }

void sbuf_init(struct sbuf *sb, size_t max);
void sbuf_free(struct sbuf *sb);
/* Empties the buffer, keeping its memory. */
void sbuf_reset(struct sbuf *sb);
/* Makes room for at least extra more bytes; -1 if that would pass max. */
int sbuf_reserve(struct sbuf *sb, size_t extra);
int sbuf_append(struct sbuf *sb, const void *data, size_t len);
int sbuf_appends(struct sbuf *sb, const char *s);
int sbuf_putc(struct sbuf *sb, char c);
int sbuf_printf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sbuf_vprintf(struct sbuf *sb, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Removes the first n bytes. */
void sbuf_consume(struct sbuf *sb, size_t n);
/* Shortens the buffer to len bytes (no-op if already shorter). */
void sbuf_truncate(struct sbuf *sb, size_t len);
/* The contents as a C string; "" for a buffer that never held anything. */
const char *sbuf_cstr(const struct sbuf *sb);
/* Hands the contents to the caller (xmalloc'ed, NUL-terminated) and empties the buffer. */
char *sbuf_steal(struct sbuf *sb);

#endif

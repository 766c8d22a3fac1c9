/* sbuf.c - growable byte strings that cannot overflow
 *
 * SECURITY: every growth goes through sbuf_reserve(), which checks both the buffer's own
 * maximum and size_t overflow before touching memory.
 */
#include "sbuf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

void sbuf_init(struct sbuf *sb, size_t max)
{
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->max = max && max < SBUF_NO_MAX ? max : SBUF_NO_MAX;
}

void sbuf_free(struct sbuf *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
}

void sbuf_reset(struct sbuf *sb)
{
    sb->len = 0;
    if (sb->data) sb->data[0] = '\0';
}

int sbuf_reserve(struct sbuf *sb, size_t extra)
{
    size_t max = sb->max && sb->max < SBUF_NO_MAX ? sb->max : SBUF_NO_MAX;
    if (extra > max || sb->len > max - extra) return -1;
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap) return 0;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need)
        cap = cap > SBUF_NO_MAX ? need : cap * 2;
    bool fresh = sb->data == NULL;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
    if (fresh) sb->data[0] = '\0';
    return 0;
}

int sbuf_append(struct sbuf *sb, const void *data, size_t len)
{
    if (sbuf_reserve(sb, len) < 0) return -1;
    if (len) memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
    return 0;
}

int sbuf_appends(struct sbuf *sb, const char *s)
{
    return sbuf_append(sb, s, strlen(s));
}

int sbuf_putc(struct sbuf *sb, char c)
{
    return sbuf_append(sb, &c, 1);
}

int sbuf_vprintf(struct sbuf *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0) return -1;
    if ((size_t)n < sizeof(small)) return sbuf_append(sb, small, (size_t)n);
    if (sbuf_reserve(sb, (size_t)n) < 0) return -1;
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
    return 0;
}

int sbuf_printf(struct sbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = sbuf_vprintf(sb, fmt, ap);
    va_end(ap);
    return r;
}

void sbuf_consume(struct sbuf *sb, size_t n)
{
    if (n >= sb->len) {
        sbuf_reset(sb);
        return;
    }
    memmove(sb->data, sb->data + n, sb->len - n);
    sb->len -= n;
    sb->data[sb->len] = '\0';
}

void sbuf_truncate(struct sbuf *sb, size_t len)
{
    if (len < sb->len) {
        sb->len = len;
        sb->data[len] = '\0';
    }
}

const char *sbuf_cstr(const struct sbuf *sb)
{
    return sb->data ? sb->data : "";
}

char *sbuf_steal(struct sbuf *sb)
{
    char *p = sb->data ? sb->data : xstrdup("");
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    return p;
}

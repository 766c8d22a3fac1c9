/* xalloc.c - allocation that never returns NULL
 *
 * Out-of-memory is not something a session can recover from in a useful way; we log to
 * stderr and abort so that a supervisor restarts the service. Nothing acknowledged is
 * lost because acknowledgement always follows a durable write.
 */
#include "xalloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(size_t size)
{
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "alkaid: out of memory allocating %zu bytes\n", size);
    if (n > 0) (void)!write(STDERR_FILENO, msg, (size_t)n);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) oom(size);
    return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL) oom(nmemb * size);
    return p;
}

void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL) oom(size);
    return p;
}

void *xreallocarray(void *ptr, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) oom(SIZE_MAX);
    return xrealloc(ptr, nmemb * size);
}

char *xstrdup(const char *s)
{
    return xmemdup(s, strlen(s) + 1);
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *xmemdup(const void *src, size_t n)
{
    void *p = xmalloc(n);
    if (n) memcpy(p, src, n);
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) oom(0);
    return s;
}

/* xalloc.h - allocation that never returns NULL
 *
 * xmalloc() and friends abort the process with a message on out-of-memory, so callers
 * never test for NULL. Sizes are checked for multiplication overflow.
 */
#ifndef ALKAID_XALLOC_H
#define ALKAID_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
/* xreallocarray: like reallocarray(3), aborting on overflow or out-of-memory. */
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
/* xasprintf: a newly allocated formatted string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Frees *p and sets it to NULL. */
#define xfree(p)                                                                                   \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

#endif

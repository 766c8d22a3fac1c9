/* mutf7.h - IMAP's modified UTF-7 mailbox names (RFC 3501 5.1.3)
 *
 * Printable ASCII stands for itself except '&', which is written "&-"; everything else
 * is UTF-16 in modified base64 (',' for '/') between '&' and '-'.
 *
 * SECURITY: decoding is strict (RFC 3501: a name must be in the one canonical encoding):
 * no "&" run encoding only printable ASCII, no adjacent encoded runs, no padding bits,
 * only complete UTF-16 units with valid surrogate pairs, no NUL, no unterminated run.
 */
#ifndef ALKAID_MUTF7_H
#define ALKAID_MUTF7_H

#include <stdbool.h>
#include <stddef.h>

#include "sbuf.h"

/* Whether s[0..len) is valid, canonical modified UTF-7. */
bool mutf7_valid(const char *s, size_t len);
/* Appends the UTF-8 form of modified UTF-7 s to out. 0, or -1 if s is not valid. */
int mutf7_to_utf8(const char *s, size_t len, struct sbuf *out);
/* Appends the modified UTF-7 form of UTF-8 s to out. 0, or -1 if s is not valid UTF-8
 * or holds NUL. */
int mutf7_from_utf8(const char *s, size_t len, struct sbuf *out);

#endif

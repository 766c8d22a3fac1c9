/* base64.h - RFC 4648 base64, strict decoding
 *
 * SECURITY: decoding rejects anything that is not canonical base64 (bad characters,
 * misplaced or missing padding, embedded whitespace), so SASL payloads are unambiguous.
 */
#ifndef ALKAID_BASE64_H
#define ALKAID_BASE64_H

#include <stddef.h>

#include "sbuf.h"

/* Appends the encoding of data to out. Returns 0, or -1 if out's maximum is reached. */
int base64_encode(const void *data, size_t len, struct sbuf *out);
/* Appends the decoded bytes of text[0..len) to out. Returns 0, or -1 if the text is not
 * valid padded base64 or out's maximum is reached. An empty text decodes to nothing. */
int base64_decode(const char *text, size_t len, struct sbuf *out);

#endif

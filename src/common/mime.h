/* mime.h - RFC 5322 / MIME structure of a message, for IMAP FETCH and SEARCH
 *
 * mime_parse() builds the tree of parts of a message held in memory (a mapped file):
 * for each part the offsets of its header and body, its Content-Type (type, subtype,
 * parameters), Content-Disposition, Content-ID, -Description, -Transfer-Encoding,
 * -Language, -Location, MD5, its size and line count, and for message/rfc822 parts the
 * encapsulated message. Offsets point into the caller's buffer; nothing is copied
 * except decoded parameter values.
 *
 * Rendering for IMAP (RFC 3501 7.4.2, with the RFC 2045/2231 rules):
 *   mime_envelope()       ENVELOPE of a message (or of a message/rfc822 part)
 *   mime_bodystructure()  BODYSTRUCTURE (extended) or BODY (basic)
 *   mime_find() and mime_header_fields() give the bytes of BODY[section] (HEADER,
 *                         HEADER.FIELDS (..), .NOT (..), TEXT, MIME, nested part numbers)
 * and for SEARCH: header field lookup with encoded-words decoded to UTF-8, and body
 * text decoded from base64 / quoted-printable and converted to UTF-8.
 *
 * Malformed input never fails: a missing boundary makes the rest of the body the last
 * part, a bad Content-Type is text/plain, an unterminated header ends at the end of the
 * data, 8-bit bytes are passed through. Lines may end in CRLF or a bare LF.
 *
 * SECURITY: the input is attacker-controlled (anyone can mail us). Nesting depth
 * (MIME_MAX_DEPTH), number of parts (MIME_MAX_PARTS), parameters per header and their
 * lengths are bounded; past a bound the rest is treated as opaque data. Work is linear
 * in the message size (the message is read once; each line that starts with "--" is
 * compared with the enclosing boundaries). Rendering
 * escapes every string it emits (quoted strings or literals), so a header value cannot
 * break an IMAP response.
 */
#ifndef ALKAID_MIME_H
#define ALKAID_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sbuf.h"

#define MIME_MAX_DEPTH  32
#define MIME_MAX_PARTS  2000
#define MIME_MAX_PARAMS 32

struct mime_param {
    char *name;  /* lower-cased */
    char *value; /* decoded (RFC 2231 continuations joined), as octets */
};

struct mime_part {
    /* offsets into the message buffer */
    size_t header_start, header_end; /* header_end: after the blank line (or = body_start) */
    size_t body_start, body_end;
    unsigned lines;            /* body lines, for BODYSTRUCTURE of text/ and message/ */
    char *type, *subtype;      /* lower-cased; "text"/"plain" by default */
    struct mime_param *params; /* Content-Type parameters */
    size_t nparams;
    char *id, *description, *encoding, *md5, *location; /* raw values or NULL */
    char *disposition;                                  /* lower-cased, or NULL */
    struct mime_param *disp_params;
    size_t ndisp_params;
    char **languages;
    size_t nlanguages;
    struct mime_part *children; /* multipart parts, or the one message/rfc822 part */
    size_t nchildren;
    bool is_message; /* message/rfc822 (or message/global): children[0] is
                        the encapsulated message */
};

struct mime_message {
    const char *data;
    size_t len;
    struct mime_part root;
    size_t nparts; /* parts created (bounded by MIME_MAX_PARTS) */
};

/* Parses data[0..len) (which must stay valid while msg is used). Never fails. */
void mime_parse(struct mime_message *msg, const char *data, size_t len);
void mime_free(struct mime_message *msg);

/* The part for an IMAP section part number ("1.2.3"; "" is the whole message), or NULL
 * if there is no such part. For a message/rfc822 part, "N" is the part itself and
 * "N.HEADER"/"N.TEXT" refer to its encapsulated message (the caller splits those). */
const struct mime_part *mime_find(const struct mime_message *msg, const char *part_number);

/* IMAP renderings, appended to out. */
void mime_envelope(const struct mime_message *msg, const struct mime_part *message_part,
                   struct sbuf *out);
void mime_bodystructure(const struct mime_message *msg, const struct mime_part *part, bool extended,
                        struct sbuf *out);

/* Appends to out the header of part with only (exclude false) or without (exclude true)
 * the fields named in names[0..n) (case-insensitive), followed by the blank line, as
 * BODY[HEADER.FIELDS (...)] defines. */
void mime_header_fields(const struct mime_message *msg, const struct mime_part *part,
                        const char *const *names, size_t n, bool exclude, struct sbuf *out);

/* The first header field of part named name, unfolded, with RFC 2047 encoded-words
 * decoded to UTF-8 (xmalloc'ed), or NULL. all: every occurrence, joined by "\n". */
char *mime_header_get(const struct mime_message *msg, const struct mime_part *part,
                      const char *name, bool all);
/* The raw (undecoded, still folded) value of the first field named name, or NULL. */
char *mime_header_raw(const struct mime_message *msg, const struct mime_part *part,
                      const char *name);

/* Calls fn with the decoded UTF-8 text of every text/ part of msg (transfer encoding
 * undone, charset converted; parts that cannot be converted are passed as they are),
 * in chunks; fn returns true to stop early. */
void mime_text_foreach(const struct mime_message *msg,
                       bool (*fn)(const char *text, size_t len, void *ctx), void *ctx);

/* RFC 2047 decoding of a header value to UTF-8 (xmalloc'ed). */
char *mime_decode_words(const char *value, size_t len);
/* Parses an RFC 5322 date-time ("Date:" field); 0 and -1 if it cannot be parsed. The
 * time is UTC seconds; *zone_r (optional) the zone offset in minutes. */
int mime_parse_date(const char *value, time_t *t_r, int *zone_r);

#endif

/* smtp_data.h - the DATA (and BDAT) message reader
 *
 * A byte-driven state machine: feed it whatever arrived from the network, in pieces of
 * any size, and it appends the message to an output buffer in canonical form (CRLF line
 * ends, dot-stuffing removed) and says when the end of data was seen.
 *
 * Rules (RFC 5321 4.1.1.4, 4.5.2, 4.5.3.1.6, and the SMTP smuggling lessons of
 * CVE-2023-51764/5/6):
 *   - DATA ends only at CRLF "." CRLF (the first CRLF may be the end of the DATA command
 *     itself, i.e. a "." as the very first line ends an empty message). "LF.LF",
 *     "CR.CR", "LF.CRLF", "CRLF.LF" and the like never end it.
 *   - A line is ended only by CRLF. A bare LF or bare CR inside the data is kept as a
 *     line break in the output (written as CRLF), so the stored message is always
 *     canonical; a '.' after a bare LF/CR is not a line start and is not unstuffed.
 *   - A line (counted on the wire, including its CRLF but not a dot added for
 *     transparency, RFC 5321 4.5.3.1.6; for this count only, a bare LF or CR also ends
 *     a line) longer than max_line octets sets line_too_long; content past
 *     max_size output octets sets too_big and stops writing output; a NUL byte sets
 *     has_nul. In all three cases reading continues to the end of data, so the session
 *     stays in step with the client.
 *   - In the header section (up to the first empty line) "Received:" fields are counted
 *     (case-insensitive, at the start of a line of the canonical output, optional SP/HTAB
 *     allowed before the ':'), for mail-loop detection.
 * In BDAT mode there is no dot-stuffing and no terminator: the caller feeds exactly the
 * chunk's bytes, and calls smtp_data_finish() after the LAST chunk.
 *
 * SECURITY: memory use is bounded by what the caller does with out; the reader itself
 * keeps a few bytes of state.
 */
#ifndef ALKAID_SMTP_DATA_H
#define ALKAID_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>

#include "sbuf.h"

#define SMTP_MAX_TEXT_LINE 1000 /* octets including CRLF, RFC 5321 4.5.3.1.6 */

struct smtp_data {
    /* results */
    bool done;               /* the terminator was seen (DATA) / smtp_data_finish() (BDAT) */
    bool too_big;            /* more than max_size octets of message */
    bool line_too_long;      /* a line longer than max_line octets */
    bool has_nul;            /* a NUL byte */
    bool bare_newline;       /* a bare LF or CR was seen (and normalised) */
    unsigned received;       /* "Received:" header fields counted */
    unsigned long long size; /* octets of canonical message written (or that would
                                have been, when too_big) */
    /* settings */
    unsigned long long max_size;
    size_t max_line;
    bool bdat;
    /* private state */
    int state;
    size_t line_len; /* octets of the current line on the wire */
    bool in_header;
    char hdr[10]; /* first octets of the current header line */
    size_t hdr_len;
};

/* Prepares d for one message. max_size 0 means no limit; max_line 0 means
 * SMTP_MAX_TEXT_LINE. */
void smtp_data_init(struct smtp_data *d, unsigned long long max_size, size_t max_line, bool bdat);
/* Consumes bytes from in[0..len) and appends message octets to out (unless too_big).
 * Returns how many bytes of in were consumed: all of them, except in DATA mode when the
 * terminator ends within in, in which case the bytes after it are not consumed (they are
 * the client's next pipelined command). Returns (size_t)-1 if out's own maximum was hit
 * (a caller bug: out should be flushed between calls). */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, struct sbuf *out);
/* BDAT only: the last chunk was fed. Flushes any pending state (a trailing bare CR) to
 * out and sets done. */
void smtp_data_finish(struct smtp_data *d, struct sbuf *out);

#endif

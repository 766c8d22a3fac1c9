/* smtp_data.c - the DATA (and BDAT) message reader
 *
 * Five states on the wire: at the start of a line (after a real CRLF, or right after
 * the DATA command), in a line, after a CR in a line, after a '.' at the start of a
 * line, and after ". CR" at the start of a line. Only "." CR LF from the start-of-line
 * state ends DATA; every other combination of '.', CR and LF is content. A CR is held
 * back until the next octet shows whether it was half of a CRLF, so a CRLF split
 * between two feeds is still one line end.
 *
 * What a "line" is depends on who is asking:
 *   - dot handling looks at wire lines: only a real CRLF starts a new one, so a '.'
 *     after a bare LF or bare CR is plain content;
 *   - line_too_long counts wire octets of each output line (the text between two line
 *     breaks, bare or not, plus the break itself: 2 for CRLF, 1 for bare LF or CR), so a
 *     client that sends bare LFs is flagged bare_newline but not line_too_long; the
 *     terminator line is not counted;
 *   - the header section and "Received:" counting look at the output, the canonical
 *     message as it will be stored: they see lines broken at bare LF/CR too, exactly
 *     as every later reader of the stored file will. A field is counted when an output
 *     line starts with "Received" (any case) followed by optional SP/HTAB and ':'.
 *     The header section ends at the first empty output line.
 *
 * SECURITY: this is where SMTP smuggling (CVE-2023-51764/5/6) is stopped: the message
 * ends only at CRLF "." CRLF and bare line ends are normalised, so the stored message
 * never holds a bare CR or LF that a later hop could read differently. The reader keeps
 * a few bytes of state and never buffers a line; output octets past max_size are
 * counted, not written; a CRLF is written whole or not at all.
 */
#include "smtp_data.h"

#include <string.h>

enum {
    ST_BOL = 0, /* start of a wire line (after CRLF) */
    ST_MID,     /* inside a line (also right after a bare LF/CR) */
    ST_CR,      /* inside a line, a CR held back */
    ST_DOT,     /* a '.' at the start of a line, held back */
    ST_DOT_CR,  /* "." CR at the start of a line, held back */
};

#define HDR_NAME_LEN 8  /* strlen("received") */
#define HDR_SKIP     10 /* hdr_len: nothing more to learn from this output line */

/* Result of writing: -1 only when out's own maximum is hit. */
static int write_out(struct smtp_data *d, struct sbuf *out, const char *p, size_t n, bool atomic)
{
    unsigned long long before = d->size;
    d->size += n;
    if (d->too_big) return 0;
    if (d->max_size != 0 && d->size > d->max_size) {
        d->too_big = true;
        /* before <= max_size here, or too_big would already be set */
        size_t room = atomic ? 0 : (size_t)(d->max_size - before);
        if (room > 0 && sbuf_append(out, p, room) < 0) return -1;
        return 0;
    }
    return sbuf_append(out, p, n);
}

/* Header tracking on the output stream, for octets that are not line breaks. */
static void hdr_octets(struct smtp_data *d, const unsigned char *p, size_t n)
{
    static const char name[] = "received";
    for (size_t i = 0; i < n && d->in_header && d->hdr_len != HDR_SKIP; i++) {
        unsigned char c = p[i];
        if (d->hdr_len < HDR_NAME_LEN) {
            unsigned char lc = (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
            if (lc == (unsigned char)name[d->hdr_len]) {
                d->hdr[d->hdr_len++] = (char)c;
            } else {
                d->hdr_len = HDR_SKIP;
            }
        } else if (c == ':') {
            d->received++;
            d->hdr_len = HDR_SKIP;
        } else if (c != ' ' && c != '\t') {
            d->hdr_len = HDR_SKIP;
        }
    }
}

/* Ordinary octets (no CR or LF) of the current line. */
static int emit(struct smtp_data *d, struct sbuf *out, const char *p, size_t n)
{
    hdr_octets(d, (const unsigned char *)p, n);
    return write_out(d, out, p, n, false);
}

/* A line break in the output, with wire_len octets of it on the wire. */
static int end_line(struct smtp_data *d, struct sbuf *out, size_t wire_len, bool bare)
{
    d->line_len += wire_len;
    if (d->line_len > d->max_line) d->line_too_long = true;
    d->line_len = 0;
    if (bare) d->bare_newline = true;
    if (d->in_header && d->hdr_len == 0) d->in_header = false; /* the empty line */
    d->hdr_len = 0;
    return write_out(d, out, "\r\n", 2, true);
}

static void add_line(struct smtp_data *d, size_t n)
{
    d->line_len += n;
    if (d->line_len > d->max_line) d->line_too_long = true;
}

void smtp_data_init(struct smtp_data *d, unsigned long long max_size, size_t max_line, bool bdat)
{
    memset(d, 0, sizeof(*d));
    d->max_size = max_size;
    d->max_line = max_line ? max_line : SMTP_MAX_TEXT_LINE;
    d->bdat = bdat;
    d->state = ST_BOL;
    d->in_header = true;
    d->hdr_len = 0;
}

size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, struct sbuf *out)
{
    size_t i = 0;

    if (d->done) return 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        switch (d->state) {
        case ST_BOL:
            if (c == '.' && !d->bdat) {
                /* not counted: RFC 5321 4.5.3.1.6 excludes the dot added for transparency */
                d->state = ST_DOT;
                i++;
                continue;
            }
            d->state = ST_MID;
            continue; /* the same octet, as content */
        case ST_DOT:
            if (c == '\r') {
                d->state = ST_DOT_CR;
                i++;
                continue;
            }
            d->state = ST_MID; /* dot-stuffing: the '.' is dropped */
            continue;
        case ST_DOT_CR:
            if (c == '\n') { /* CRLF "." CRLF */
                d->done = true;
                return i + 1;
            }
            /* "." and a bare CR: the '.' is dropped, the CR is a bare line end */
            if (end_line(d, out, 1, true) < 0) return (size_t)-1;
            d->state = ST_MID;
            continue;
        case ST_CR:
            if (c == '\n') {
                if (end_line(d, out, 2, false) < 0) return (size_t)-1;
                d->state = ST_BOL;
                i++;
                continue;
            }
            if (end_line(d, out, 1, true) < 0) return (size_t)-1;
            d->state = ST_MID;
            continue;
        case ST_MID:
        default: {
            if (c == '\r') {
                d->state = ST_CR;
                i++;
                continue;
            }
            if (c == '\n') {
                if (end_line(d, out, 1, true) < 0) return (size_t)-1;
                i++;
                continue;
            }
            /* a run of ordinary octets, written in one piece */
            size_t j = i;
            while (j < len && in[j] != '\r' && in[j] != '\n') {
                if (in[j] == '\0') d->has_nul = true;
                j++;
            }
            add_line(d, j - i);
            if (emit(d, out, in + i, j - i) < 0) return (size_t)-1;
            i = j;
            continue;
        }
        }
    }
    return len;
}

void smtp_data_finish(struct smtp_data *d, struct sbuf *out)
{
    if (!d->bdat || d->done) return;
    if (d->state == ST_CR) {
        /* A caller bug (out full) cannot be reported from here; the CRLF is then
         * missing from out, as if the message had been too big. */
        (void)end_line(d, out, 1, true);
        d->state = ST_MID;
    }
    d->done = true;
}

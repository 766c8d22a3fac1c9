/* pop3_dotstuff.c - a message as a POP3 multi-line response (RFC 1939 3)
 *
 * The state between calls is four flags and a counter, so a line end or a leading dot
 * split across two pieces is handled like one inside a piece. Ordinary text is passed
 * on in runs (up to the next CR or LF), not byte by byte.
 *
 * SECURITY: see pop3_dotstuff.h. No allocation; every line end we emit is CRLF.
 */
#include "pop3_dotstuff.h"

void pop3_dotstuff_init(struct pop3_dotstuff *d, long top_lines, pop3_dotstuff_out_fn *out,
                        void *ctx)
{
    d->out = out;
    d->ctx = ctx;
    d->line_start = true;
    d->pending_cr = false;
    d->in_body = false;
    d->limited = top_lines >= 0;
    d->body_left = top_lines >= 0 ? (unsigned long)top_lines : 0;
    d->done = false;
}

/* Emits a line end and counts the line for TOP. */
static void end_line(struct pop3_dotstuff *d)
{
    bool empty = d->line_start;
    d->out(d->ctx, "\r\n", 2);
    d->line_start = true;
    if (!d->in_body) {
        if (empty) {
            d->in_body = true; /* that was the blank line after the header */
            if (d->limited && d->body_left == 0) d->done = true;
        }
        return;
    }
    if (d->limited && --d->body_left == 0) d->done = true;
}

bool pop3_dotstuff_feed(struct pop3_dotstuff *d, const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && !d->done) {
        char c = data[i];
        if (d->pending_cr) {
            d->pending_cr = false;
            end_line(d); /* CRLF, or a bare CR taken as a line end */
            if (c == '\n') {
                i++;
                continue;
            }
            if (d->done) break;
        }
        if (c == '\r') {
            d->pending_cr = true;
            i++;
            continue;
        }
        if (c == '\n') {
            end_line(d); /* a bare LF */
            i++;
            continue;
        }
        if (d->line_start && c == '.') d->out(d->ctx, ".", 1);
        d->line_start = false;
        size_t j = i + 1;
        while (j < len && data[j] != '\r' && data[j] != '\n')
            j++;
        d->out(d->ctx, data + i, j - i);
        i = j;
    }
    return d->done;
}

void pop3_dotstuff_finish(struct pop3_dotstuff *d)
{
    if (!d->done) {
        if (d->pending_cr) {
            d->pending_cr = false;
            end_line(d);
        } else if (!d->line_start) {
            end_line(d);
        }
    }
    d->out(d->ctx, ".\r\n", 3);
}

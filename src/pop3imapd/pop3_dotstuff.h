/* pop3_dotstuff.h - a message as a POP3 multi-line response (RFC 1939 3)
 *
 * A streaming writer: feed it the message file in pieces of any size (one byte at a
 * time works) and it emits the response body through a callback: every line end as
 * CRLF (a bare LF or a bare CR becomes CRLF, so a bare CR or LF is never sent), a '.'
 * at the start of a line doubled, and at the end a line end if the message lacked one
 * plus the terminating ".\r\n". For TOP it stops after the header, the blank line and
 * the requested number of body lines.
 *
 * SECURITY: the message is data, not commands: whatever it holds, the client sees the
 * end of the response only where we put it. Memory use is constant.
 */
#ifndef ALKAID_POP3_DOTSTUFF_H
#define ALKAID_POP3_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>

/* Receives output; called with runs of the input and with short constant strings. */
typedef void pop3_dotstuff_out_fn(void *ctx, const char *data, size_t len);

struct pop3_dotstuff {
    pop3_dotstuff_out_fn *out;
    void *ctx;
    bool line_start; /* the next byte starts a line */
    bool pending_cr; /* a CR was read; its LF (if any) has not been seen yet */
    bool in_body;    /* the blank line after the header has been sent */
    bool limited;    /* TOP: body lines are counted */
    unsigned long body_left;
    bool done; /* TOP limit reached: the rest of the input is ignored */
};

/* top_lines < 0: the whole message (RETR); otherwise TOP's line count. */
void pop3_dotstuff_init(struct pop3_dotstuff *d, long top_lines, pop3_dotstuff_out_fn *out,
                        void *ctx);
/* Feeds data[0..len). Returns true when no more input is wanted (TOP limit reached). */
bool pop3_dotstuff_feed(struct pop3_dotstuff *d, const char *data, size_t len);
/* Ends the response: a line end if needed, then ".\r\n". */
void pop3_dotstuff_finish(struct pop3_dotstuff *d);

#endif

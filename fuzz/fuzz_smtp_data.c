/* fuzz_smtp_data.c - libFuzzer target for the DATA/BDAT reader (smtp_data.c)
 *
 * Input layout: byte 0 picks max_line (high bit set: the default, else 1..16), byte 1
 * max_size (0: no limit, else 1..255), bytes 2..7 the sizes of successive feeds (each
 * 0..22, cycled), the rest is what the client sent after "DATA\r\n" or as BDAT chunks.
 * Each mode is run twice, in one feed and in the chunks, and both runs must agree.
 * The result is then checked against a small, obviously-correct model written here from
 * the rules (not from smtp_data.c's state machine): the end is the first CRLF "." CRLF
 * of CRLF + input, lines are split at CRLF, a leading '.' is dropped, bare CR and LF
 * become CRLF, and flags and "Received:" counts follow from that.
 *
 * SECURITY: a failed check aborts, which libFuzzer reports with the input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"
#include "smtp_data.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define HEADER 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    struct smtp_data d;
    struct sbuf out;
    size_t consumed;
};

static void run(struct run *r, const char *in, size_t len, bool bdat, unsigned long long max_size,
                size_t max_line, const uint8_t *sizes)
{
    size_t pos = 0, k = 0;
    bool any = false;
    for (int i = 0; i < HEADER - 2; i++)
        if (sizes && sizes[i] % 23) any = true;
    if (!any) sizes = NULL;

    smtp_data_init(&r->d, max_size, max_line, bdat);
    sbuf_init(&r->out, 0);
    r->consumed = 0;
    do {
        size_t n = sizes ? sizes[k++ % (HEADER - 2)] % 23 : len;
        if (n > len - pos) n = len - pos;
        /* an exactly-sized copy, so ASan sees reads past the feed */
        char *chunk = malloc(n ? n : 1);
        CHECK(chunk != NULL);
        if (n) memcpy(chunk, in + pos, n);
        bool was_done = r->d.done;
        size_t c = smtp_data_feed(&r->d, chunk, n, &r->out);
        free(chunk);
        CHECK(c != (size_t)-1);
        CHECK(c <= n);
        if (was_done) CHECK(c == 0);
        if (bdat || !r->d.done) CHECK(c == n);
        r->consumed += c;
        pos += n;
    } while (pos < len);
    if (bdat) smtp_data_finish(&r->d, &r->out);
}

static void same(const struct run *a, const struct run *b)
{
    CHECK(a->consumed == b->consumed);
    CHECK(a->out.len == b->out.len);
    CHECK(a->out.len == 0 || memcmp(a->out.data, b->out.data, a->out.len) == 0);
    CHECK(a->d.done == b->d.done);
    CHECK(a->d.too_big == b->d.too_big);
    CHECK(a->d.line_too_long == b->d.line_too_long);
    CHECK(a->d.has_nul == b->d.has_nul);
    CHECK(a->d.bare_newline == b->d.bare_newline);
    CHECK(a->d.received == b->d.received);
    CHECK(a->d.size == b->d.size);
}

static void canonical(const struct run *r, unsigned long long max_size)
{
    const char *o = sbuf_cstr(&r->out);
    for (size_t i = 0; i < r->out.len; i++) {
        if (o[i] == '\r') CHECK(i + 1 < r->out.len && o[i + 1] == '\n');
        if (o[i] == '\n') CHECK(i > 0 && o[i - 1] == '\r');
    }
    if (r->d.too_big) {
        CHECK(max_size != 0);
        CHECK(r->out.len <= max_size);
        CHECK(r->d.size > max_size);
    } else {
        CHECK(r->d.size == r->out.len);
        CHECK(max_size == 0 || r->d.size <= max_size);
    }
}

/* The model. msg is the message on the wire (for DATA: up to, not including, the
 * terminator's ".\r\n"); the expected canonical output and flags are computed from it. */
struct model {
    struct sbuf out;
    bool line_too_long, has_nul, bare;
    unsigned received;
};

static void model(struct model *m, const char *msg, size_t len, bool bdat, size_t max_line)
{
    sbuf_init(&m->out, 0);
    m->line_too_long = m->has_nul = m->bare = false;
    m->received = 0;
    if (max_line == 0) max_line = SMTP_MAX_TEXT_LINE;

    /* wire lines: CRLF, bare CR or bare LF each end one, and count with their break;
     * in DATA mode a '.' that starts a CRLF line is transparency and is not counted
     * (RFC 5321 4.5.3.1.6) */
    size_t line = 0;
    bool crlf_start = true;
    for (size_t i = 0; i < len; i++) {
        bool stuffed = !bdat && crlf_start && msg[i] == '.';
        crlf_start = false;
        if (!stuffed) line++;
        if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n') {
            line++;
            i++;
            crlf_start = true;
        } else if (msg[i] != '\r' && msg[i] != '\n') {
            continue;
        }
        if (line > max_line) m->line_too_long = true;
        line = 0;
    }
    if (line > max_line) m->line_too_long = true;
    m->has_nul = len > 0 && memchr(msg, '\0', len) != NULL;

    /* split at CRLF; unstuff; normalise bare line ends */
    size_t start = 0;
    while (start <= len) {
        size_t end = start;
        while (end < len && !(msg[end] == '\r' && end + 1 < len && msg[end + 1] == '\n'))
            end++;
        size_t s = start;
        if (!bdat && s < end && msg[s] == '.') s++;
        for (size_t i = s; i < end; i++) {
            if (msg[i] == '\r' || msg[i] == '\n') {
                CHECK(sbuf_append(&m->out, "\r\n", 2) == 0);
                m->bare = true;
            } else {
                CHECK(sbuf_putc(&m->out, msg[i]) == 0);
            }
        }
        if (end >= len) break;
        CHECK(sbuf_append(&m->out, "\r\n", 2) == 0);
        start = end + 2;
    }

    /* Received: fields in the header section of the canonical output */
    const char *o = sbuf_cstr(&m->out);
    size_t n = m->out.len;
    for (size_t ls = 0; ls < n;) {
        const char *crlf = memmem(o + ls, n - ls, "\r\n", 2);
        size_t le = crlf ? (size_t)(crlf - o) : n;
        if (le == ls && crlf) break; /* the empty line */
        if (le - ls >= 8 && strncasecmp(o + ls, "received", 8) == 0) {
            size_t j = ls + 8;
            while (j < le && (o[j] == ' ' || o[j] == '\t'))
                j++;
            if (j < le && o[j] == ':') m->received++;
        }
        ls = le + 2;
    }
}

static void against_model(const struct run *r, const char *msg, size_t len, bool bdat,
                          size_t max_line)
{
    struct model m;
    model(&m, msg, len, bdat, max_line);
    CHECK(r->d.size == m.out.len);
    if (r->d.too_big) {
        CHECK(r->out.len <= m.out.len);
    } else {
        CHECK(r->out.len == m.out.len);
    }
    CHECK(r->out.len == 0 || memcmp(r->out.data, m.out.data, r->out.len) == 0);
    CHECK(r->d.line_too_long == m.line_too_long);
    CHECK(r->d.has_nul == m.has_nul);
    CHECK(r->d.bare_newline == m.bare);
    CHECK(r->d.received == m.received);
    sbuf_free(&m.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER) return 0;
    size_t max_line = (data[0] & 0x80) ? 0 : (size_t)(data[0] % 16) + 1;
    unsigned long long max_size = data[1];
    const uint8_t *sizes = data + 2;
    const char *in = (const char *)data + HEADER;
    size_t len = size - HEADER;
    struct run whole, chunked;

    /* DATA */
    run(&whole, in, len, false, max_size, max_line, NULL);
    run(&chunked, in, len, false, max_size, max_line, sizes);
    same(&whole, &chunked);
    canonical(&whole, max_size);
    CHECK(whole.consumed <= len);

    /* the end is the first CRLF "." CRLF of CRLF + input, and nothing else */
    char *framed = malloc(len + 2);
    CHECK(framed != NULL);
    memcpy(framed, "\r\n", 2);
    if (len) memcpy(framed + 2, in, len);
    const char *term = memmem(framed, len + 2, "\r\n.\r\n", 5);
    if (term) {
        size_t end = (size_t)(term - framed) + 5 - 2; /* in input coordinates */
        CHECK(whole.d.done);
        CHECK(whole.consumed == end);
        against_model(&whole, in, end - 3, false, max_line);
    } else {
        CHECK(!whole.d.done);
        CHECK(whole.consumed == len);
    }
    free(framed);
    sbuf_free(&whole.out);
    sbuf_free(&chunked.out);

    /* BDAT */
    run(&whole, in, len, true, max_size, max_line, NULL);
    run(&chunked, in, len, true, max_size, max_line, sizes);
    same(&whole, &chunked);
    canonical(&whole, max_size);
    CHECK(whole.d.done);
    CHECK(whole.consumed == len);
    against_model(&whole, in, len, true, max_line);
    sbuf_free(&whole.out);
    sbuf_free(&chunked.out);
    return 0;
}

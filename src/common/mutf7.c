/* mutf7.c - IMAP's modified UTF-7 mailbox names (RFC 3501 5.1.3)
 *
 * One strict decoder serves mutf7_valid() (no output) and mutf7_to_utf8(); the encoder
 * reads UTF-8 strictly (no overlong forms, no surrogates, nothing past U+10FFFF) and
 * writes the one canonical encoding, so that what it produces always decodes again.
 *
 * SECURITY: mailbox names come from the network. The decoder refuses every non-canonical
 * form (a base64 run holding printable ASCII, adjacent runs, an incomplete UTF-16 unit,
 * non-zero padding bits, a lone or reversed surrogate, U+0000, an unterminated run, any
 * octet outside printable ASCII), so one folder cannot be named two ways. On an error the
 * output buffer is cut back to its length on entry.
 */
#include "mutf7.h"

#include <stdint.h>

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* The value of a modified-base64 character, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == ',') return 63;
    return -1;
}

/* Appends code point cp as UTF-8 (if out is not NULL). */
static int put_utf8(struct sbuf *out, uint32_t cp)
{
    char b[4];
    size_t n;

    if (out == NULL) return 0;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | cp >> 12);
        b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | cp >> 18);
        b[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (char)(0x80 | (cp >> 6 & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return sbuf_append(out, b, n);
}

/* Decodes one base64 run s[*i..) (just after its '&') through its '-'. */
static int decode_run(const char *s, size_t len, size_t *i, struct sbuf *out)
{
    uint32_t bits = 0, high = 0;
    unsigned nbits = 0;
    size_t nchars = 0;

    for (;;) {
        if (*i >= len) return -1; /* unterminated */
        unsigned char c = (unsigned char)s[*i];
        (*i)++;
        if (c == '-') break;
        int v = b64_value(c);
        if (v < 0) return -1;
        nchars++;
        bits = bits << 6 | (uint32_t)v;
        nbits += 6;
        if (nbits < 16) continue;
        nbits -= 16;
        uint32_t u = bits >> nbits & 0xffff;
        bits &= (1u << nbits) - 1;
        if (high != 0) {
            if (u < 0xdc00 || u > 0xdfff) return -1; /* high surrogate not followed by low */
            if (put_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00)) < 0) return -1;
            high = 0;
        } else if (u >= 0xd800 && u <= 0xdbff) {
            high = u;
        } else if (u >= 0xdc00 && u <= 0xdfff) {
            return -1; /* lone low surrogate */
        } else if (u == 0 || (u >= 0x20 && u <= 0x7e)) {
            return -1; /* NUL, or printable ASCII that must stand for itself */
        } else if (put_utf8(out, u) < 0) {
            return -1;
        }
    }
    /* an empty run is "&-", handled by the caller; no dangling high surrogate; the
     * padding is fewer than 6 bits and all zero */
    if (nchars == 0 || high != 0 || nbits >= 6 || bits != 0) return -1;
    return 0;
}

static int decode(const char *s, size_t len, struct sbuf *out)
{
    bool after_run = false;
    size_t i = 0;

    while (i < len) {
        unsigned char c = (unsigned char)s[i++];
        if (c < 0x20 || c > 0x7e) return -1;
        if (c != '&') {
            if (out != NULL && sbuf_putc(out, (char)c) < 0) return -1;
            after_run = false;
            continue;
        }
        if (i < len && s[i] == '-') {
            i++;
            if (out != NULL && sbuf_putc(out, '&') < 0) return -1;
            after_run = false;
            continue;
        }
        if (after_run) return -1; /* "&AAA-&BBB-" must have been one run */
        if (decode_run(s, len, &i, out) < 0) return -1;
        after_run = true;
    }
    return 0;
}

bool mutf7_valid(const char *s, size_t len)
{
    return decode(s, len, NULL) == 0;
}

int mutf7_to_utf8(const char *s, size_t len, struct sbuf *out)
{
    size_t old = out->len;
    if (decode(s, len, out) == 0) return 0;
    sbuf_truncate(out, old);
    return -1;
}

/* Reads one code point of strict UTF-8 from s[*i..len); -1 if malformed. */
static int read_utf8(const char *s, size_t len, size_t *i, uint32_t *cp_r)
{
    unsigned char c = (unsigned char)s[*i];
    unsigned need;
    unsigned char lo = 0x80, hi = 0xbf;
    uint32_t cp;

    if (c < 0x80) {
        (*i)++;
        *cp_r = c;
        return 0;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        cp = c & 0x0f;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        cp = c & 0x07;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* past U+10FFFF */
    } else {
        return -1;
    }
    if (len - *i - 1 < need) return -1;
    for (unsigned k = 1; k <= need; k++) {
        unsigned char d = (unsigned char)s[*i + k];
        if (d < lo || d > hi) return -1;
        lo = 0x80;
        hi = 0xbf;
        cp = cp << 6 | (d & 0x3f);
    }
    *i += need + 1;
    *cp_r = cp;
    return 0;
}

/* Adds a 16-bit unit to the run being written. */
static int put_unit(struct sbuf *out, uint32_t *bits, unsigned *nbits, uint32_t u)
{
    *bits = *bits << 16 | u;
    *nbits += 16;
    while (*nbits >= 6) {
        *nbits -= 6;
        if (sbuf_putc(out, b64_chars[*bits >> *nbits & 0x3f]) < 0) return -1;
    }
    *bits &= (1u << *nbits) - 1;
    return 0;
}

/* Ends the run being written: the remaining bits padded with zeros, then '-'. */
static int end_run(struct sbuf *out, uint32_t bits, unsigned nbits)
{
    if (nbits > 0 && sbuf_putc(out, b64_chars[bits << (6 - nbits) & 0x3f]) < 0) return -1;
    return sbuf_putc(out, '-');
}

static int encode(const char *s, size_t len, struct sbuf *out)
{
    bool in_run = false;
    uint32_t bits = 0;
    unsigned nbits = 0;
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        if (read_utf8(s, len, &i, &cp) < 0 || cp == 0) return -1;
        if (cp >= 0x20 && cp <= 0x7e) {
            if (in_run && end_run(out, bits, nbits) < 0) return -1;
            in_run = false;
            if (sbuf_putc(out, (char)cp) < 0) return -1;
            if (cp == '&' && sbuf_putc(out, '-') < 0) return -1;
            continue;
        }
        if (!in_run) {
            if (sbuf_putc(out, '&') < 0) return -1;
            in_run = true;
            bits = 0;
            nbits = 0;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            if (put_unit(out, &bits, &nbits, 0xd800 + (cp >> 10)) < 0) return -1;
            if (put_unit(out, &bits, &nbits, 0xdc00 + (cp & 0x3ff)) < 0) return -1;
        } else if (put_unit(out, &bits, &nbits, cp) < 0) {
            return -1;
        }
    }
    if (in_run && end_run(out, bits, nbits) < 0) return -1;
    return 0;
}

int mutf7_from_utf8(const char *s, size_t len, struct sbuf *out)
{
    size_t old = out->len;
    if (encode(s, len, out) == 0) return 0;
    sbuf_truncate(out, old);
    return -1;
}

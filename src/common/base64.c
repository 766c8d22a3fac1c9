/* base64.c - RFC 4648 base64 (the standard alphabet, padded), strict decoding
 *
 * base64_encode() appends the padded encoding; base64_decode() appends the decoded bytes
 * of text that is exactly canonical base64: a length that is a multiple of four, only
 * characters of the alphabet, "=" only as one or two final padding characters, and zero
 * bits in the unused low bits of the last character before the padding.
 *
 * SECURITY: the input is client-controlled (SASL responses). The decoded size is computed
 * and reserved against the buffer's maximum before anything is written; on an error the
 * buffer is left as it was and the bytes already decoded into its spare room are wiped,
 * because they may be a password.
 */
#include "base64.h"

#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of c, or -1 if c is not in the alphabet ('=' included). */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int base64_encode(const void *data, size_t len, struct sbuf *out)
{
    const unsigned char *p = data;
    size_t groups = len / 3 + (len % 3 != 0);

    if (groups > SIZE_MAX / 4) return -1;
    if (sbuf_reserve(out, groups * 4) < 0) return -1;

    char *w = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *w++ = alphabet[v >> 18 & 0x3f];
        *w++ = alphabet[v >> 12 & 0x3f];
        *w++ = alphabet[v >> 6 & 0x3f];
        *w++ = alphabet[v & 0x3f];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *w++ = alphabet[v >> 18 & 0x3f];
        *w++ = alphabet[v >> 12 & 0x3f];
        *w++ = '=';
        *w++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *w++ = alphabet[v >> 18 & 0x3f];
        *w++ = alphabet[v >> 12 & 0x3f];
        *w++ = alphabet[v >> 6 & 0x3f];
        *w++ = '=';
    }
    out->len += groups * 4;
    out->data[out->len] = '\0';
    return 0;
}

int base64_decode(const char *text, size_t len, struct sbuf *out)
{
    if (len == 0) return 0;
    if (len % 4 != 0) return -1;

    size_t pad = 0;
    if (text[len - 1] == '=') pad = text[len - 2] == '=' ? 2 : 1;
    size_t outlen = len / 4 * 3 - pad;
    if (sbuf_reserve(out, outlen) < 0) return -1;

    unsigned char *w = (unsigned char *)out->data + out->len;
    size_t written = 0;
    for (size_t i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        int a = b64_value((unsigned char)text[i]);
        int b = b64_value((unsigned char)text[i + 1]);
        int c = b64_value((unsigned char)text[i + 2]);
        int d = b64_value((unsigned char)text[i + 3]);
        if (a < 0 || b < 0) goto bad;
        if (last && pad == 2) {
            /* "xx==": one byte; the low four bits of the second character unused */
            if (text[i + 2] != '=' || text[i + 3] != '=' || (b & 0x0f) != 0) goto bad;
            w[written++] = (unsigned char)(a << 2 | b >> 4);
        } else if (last && pad == 1) {
            /* "xxx=": two bytes; the low two bits of the third character unused */
            if (c < 0 || text[i + 3] != '=' || (c & 0x03) != 0) goto bad;
            w[written++] = (unsigned char)(a << 2 | b >> 4);
            w[written++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
        } else {
            if (c < 0 || d < 0) goto bad;
            w[written++] = (unsigned char)(a << 2 | b >> 4);
            w[written++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
            w[written++] = (unsigned char)((c & 0x03) << 6 | d);
        }
    }
    out->len += written;
    out->data[out->len] = '\0';
    return 0;

bad:
    OPENSSL_cleanse(w, written);
    out->data[out->len] = '\0';
    return -1;
}

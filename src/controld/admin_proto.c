/* admin_proto.c - the admin port's wire format: command words in, JSON out
 *
 * A command line is words separated by single spaces; a word is an atom (printable
 * ASCII except space, '"' and '\') or a quoted string in which only \" and \\ are
 * escapes. Quoted strings may hold TAB and UTF-8 (checked for well-formedness, so that
 * the JSON written back stays valid); nothing else below 0x20, nor DEL.
 *
 * SECURITY: the line is bounded by the caller; the parser allocates one buffer of the
 * line's length and at most ADMIN_MAX_ARGS pointers.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "xalloc.h"

/* The length of the well-formed UTF-8 sequence at s (avail octets there, s[0] >= 0x80),
 * or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned min, cp;
    if ((c & 0xe0) == 0xc0) {
        n = 1;
        min = 0x80;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 2;
        min = 0x800;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 3;
        min = 0x10000;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail <= n) return 0;
    for (size_t k = 1; k <= n; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n + 1;
}

bool admin_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

static bool atom_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
}

int admin_parse_args(const char *line, size_t len, struct admin_args *args_r, const char **error_r)
{
    memset(args_r, 0, sizeof(*args_r));
    if (len == 0) {
        *error_r = "empty command line";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            *error_r = "control characters are not allowed";
            return -1;
        }
    }
    if (!admin_utf8_valid(line, len)) {
        *error_r = "the line is not valid UTF-8";
        return -1;
    }
    char *buf = xmalloc(len + 1);
    char **argv = NULL;
    size_t argc = 0, o = 0, i = 0;
    const char *err = NULL;
    for (;;) {
        if (argc == ADMIN_MAX_ARGS) {
            err = "too many arguments";
            break;
        }
        char *word = buf + o;
        if (i < len && line[i] == '"') {
            i++;
            bool closed = false;
            while (i < len) {
                char c = line[i++];
                if (c == '"') {
                    closed = true;
                    break;
                }
                if (c == '\\') {
                    if (i >= len || (line[i] != '"' && line[i] != '\\')) {
                        err = "bad escape in a quoted string (only \\\" and \\\\)";
                        break;
                    }
                    c = line[i++];
                }
                buf[o++] = c;
            }
            if (err) break;
            if (!closed) {
                err = "unterminated quoted string";
                break;
            }
        } else {
            size_t start = i;
            while (i < len && line[i] != ' ') {
                if (!atom_char((unsigned char)line[i])) {
                    err = line[i] == '"' || line[i] == '\\'
                              ? "'\"' or '\\' inside an atom (quote the argument)"
                              : "non-printable or non-ASCII octet outside a quoted string";
                    break;
                }
                buf[o++] = line[i++];
            }
            if (err) break;
            if (i == start) {
                err = "empty argument (arguments are separated by single spaces)";
                break;
            }
        }
        buf[o++] = '\0';
        if (argc % 16 == 0) argv = xreallocarray(argv, argc + 16, sizeof(*argv));
        argv[argc++] = word;
        if (i == len) break;
        if (line[i] != ' ') {
            err = "a quoted string must be followed by a space or the end of the line";
            break;
        }
        i++;
        if (i == len) {
            err = "trailing space";
            break;
        }
    }
    if (err) {
        OPENSSL_cleanse(buf, len + 1);
        free(buf);
        free(argv);
        *error_r = err;
        return -1;
    }
    args_r->buf = buf;
    args_r->argv = argv;
    args_r->argc = argc;
    return 0;
}

void admin_args_free(struct admin_args *args)
{
    if (args->buf) {
        size_t n = 0;
        if (args->argc) {
            const char *last = args->argv[args->argc - 1];
            n = (size_t)(last - args->buf) + strlen(last);
        }
        OPENSSL_cleanse(args->buf, n);
    }
    free(args->buf);
    free(args->argv);
    memset(args, 0, sizeof(*args));
}

void admin_json_string_n(struct sbuf *json, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    sbuf_putc(json, '"');
    size_t run = 0; /* octets copied as they are, pending */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t n = utf8_seq((const unsigned char *)s + i, len - i);
            if (n > 0) {
                run += n;
                i += n - 1;
                continue;
            }
        } else if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
            run++;
            continue;
        }
        if (run) sbuf_append(json, s + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sbuf_append(json, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sbuf_append(json, e, 6);
        }
    }
    if (run) sbuf_append(json, s + len - run, run);
    sbuf_putc(json, '"');
}

void admin_json_string(struct sbuf *json, const char *s)
{
    admin_json_string_n(json, s ? s : "", s ? strlen(s) : 0);
}

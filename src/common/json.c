/* json.c - a small JSON parser (RFC 8259) into a tree of values
 *
 * A recursive-descent parser over a bounded buffer; see json.h.
 *
 * SECURITY: every read checks the end of the input; recursion is bounded by
 * JSON_MAX_DEPTH, checked before a nested value is allocated.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"
#include "xalloc.h"

struct parser {
    const char *p, *end, *start;
    const char *error;
    char errbuf[96];
};

static void *perr(struct parser *ps, const char *what)
{
    if (ps->error == NULL) {
        snprintf(ps->errbuf, sizeof(ps->errbuf), "%s at offset %zu", what,
                 (size_t)(ps->p - ps->start));
        ps->error = ps->errbuf;
    }
    return NULL;
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static bool literal(struct parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return false;
    ps->p += n;
    return true;
}

static int hex4(struct parser *ps, unsigned *out)
{
    if (ps->end - ps->p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = ps->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

static void put_utf8(struct sbuf *sb, unsigned cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    sbuf_append(sb, b, n);
}

/* A string starting at the opening quote; the decoded bytes into *out. */
static int parse_string(struct parser *ps, char **out, size_t *len_r)
{
    struct sbuf sb = SBUF_INIT(SBUF_NO_MAX);
    ps->p++; /* the quote */
    for (;;) {
        if (ps->p >= ps->end) {
            perr(ps, "unterminated string");
            goto fail;
        }
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            perr(ps, "control character in a string");
            goto fail;
        }
        if (c != '\\') {
            const char *q = ps->p;
            while (q < ps->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
                q++;
            sbuf_append(&sb, ps->p, (size_t)(q - ps->p));
            ps->p = q;
            continue;
        }
        if (ps->end - ps->p < 2) {
            perr(ps, "unterminated string");
            goto fail;
        }
        char e = ps->p[1];
        ps->p += 2;
        switch (e) {
        case '"': sbuf_putc(&sb, '"'); break;
        case '\\': sbuf_putc(&sb, '\\'); break;
        case '/': sbuf_putc(&sb, '/'); break;
        case 'b': sbuf_putc(&sb, '\b'); break;
        case 'f': sbuf_putc(&sb, '\f'); break;
        case 'n': sbuf_putc(&sb, '\n'); break;
        case 'r': sbuf_putc(&sb, '\r'); break;
        case 't': sbuf_putc(&sb, '\t'); break;
        case 'u': {
            unsigned cp;
            if (hex4(ps, &cp) < 0) {
                perr(ps, "bad \\u escape");
                goto fail;
            }
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                perr(ps, "lone low surrogate");
                goto fail;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    perr(ps, "lone high surrogate");
                    goto fail;
                }
                ps->p += 2;
                if (hex4(ps, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
                    perr(ps, "bad surrogate pair");
                    goto fail;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(&sb, cp);
            break;
        }
        default: perr(ps, "bad escape in a string"); goto fail;
        }
    }
    *len_r = sb.len;
    *out = sbuf_steal(&sb);
    return 0;
fail:
    sbuf_free(&sb);
    return -1;
}

static int parse_number(struct parser *ps, struct json *v)
{
    const char *s = ps->p, *q = ps->p;
    bool integral = true;
    if (q < ps->end && *q == '-') q++;
    if (q >= ps->end || *q < '0' || *q > '9') return -1;
    if (*q == '0')
        q++;
    else
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    if (q < ps->end && *q == '.') {
        integral = false;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9') return -1;
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || *q < '0' || *q > '9') return -1;
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    size_t n = (size_t)(q - s);
    if (n > 400) return -1;
    char buf[401];
    memcpy(buf, s, n);
    buf[n] = '\0';
    v->type = JSON_NUMBER;
    v->number = strtod(buf, NULL);
    if (integral) {
        errno = 0;
        long long ll = strtoll(buf, NULL, 10);
        if (errno == 0) {
            v->is_int = true;
            v->integer = ll;
        }
    }
    ps->p = q;
    return 0;
}

static struct json *parse_value(struct parser *ps, int depth);

static struct json *parse_container(struct parser *ps, struct json *v, int depth)
{
    bool object = *ps->p == '{';
    char close = object ? '}' : ']';
    v->type = object ? JSON_OBJECT : JSON_ARRAY;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return v;
    }
    size_t cap = 0;
    for (;;) {
        char *key = NULL;
        skip_ws(ps);
        if (object) {
            size_t klen;
            if (ps->p >= ps->end || *ps->p != '"') return perr(ps, "expected a member name");
            if (parse_string(ps, &key, &klen) < 0) return NULL;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                return perr(ps, "expected ':'");
            }
            ps->p++;
        }
        struct json *item = parse_value(ps, depth + 1);
        if (item == NULL) {
            free(key);
            return NULL;
        }
        if (v->n == cap) {
            cap = cap ? cap * 2 : 4;
            v->items = xreallocarray(v->items, cap, sizeof(*v->items));
            if (object) v->keys = xreallocarray(v->keys, cap, sizeof(*v->keys));
        }
        v->items[v->n] = item;
        if (object) v->keys[v->n] = key;
        v->n++;
        skip_ws(ps);
        if (ps->p >= ps->end)
            return perr(ps, object ? "unterminated object" : "unterminated array");
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            return v;
        }
        return perr(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static struct json *parse_value(struct parser *ps, int depth)
{
    skip_ws(ps);
    if (ps->p >= ps->end) return perr(ps, "unexpected end of input");
    if (depth > JSON_MAX_DEPTH) return perr(ps, "nested too deeply");
    struct json *v = xcalloc(1, sizeof(*v));
    bool ok = true;
    switch (*ps->p) {
    case '{':
    case '[': ok = parse_container(ps, v, depth) != NULL; break;
    case '"':
        v->type = JSON_STRING;
        ok = parse_string(ps, &v->str, &v->str_len) == 0;
        break;
    case 't':
        v->type = JSON_BOOL;
        v->boolean = true;
        ok = literal(ps, "true");
        break;
    case 'f':
        v->type = JSON_BOOL;
        ok = literal(ps, "false");
        break;
    case 'n':
        v->type = JSON_NULL;
        ok = literal(ps, "null");
        break;
    default: ok = parse_number(ps, v) == 0; break;
    }
    if (!ok) {
        perr(ps, "invalid value");
        json_free(&v);
    }
    return v;
}

struct json *json_parse(const char *text, size_t len, const char **error_r)
{
    struct parser ps = {.p = text, .end = text + len, .start = text};
    struct json *v = parse_value(&ps, 1);
    if (v != NULL) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            perr(&ps, "trailing characters");
            json_free(&v);
        }
    }
    if (v == NULL && error_r != NULL) {
        static __thread char err[96];
        snprintf(err, sizeof(err), "%s", ps.error ? ps.error : "invalid JSON");
        *error_r = err;
    }
    return v;
}

void json_free(struct json **vp)
{
    struct json *v = *vp;
    if (v == NULL) return;
    for (size_t i = 0; i < v->n; i++) {
        json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
    *vp = NULL;
}

const struct json *json_get(const struct json *obj, const char *key)
{
    if (obj == NULL || obj->type != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0) return obj->items[i];
    return NULL;
}

const struct json *json_path(const struct json *v, const char *path)
{
    char name[128];
    while (v != NULL && *path != '\0') {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof(name)) return NULL;
        memcpy(name, path, n);
        name[n] = '\0';
        v = json_get(v, name);
        path += n + (dot != NULL);
    }
    return v;
}

const char *json_str(const struct json *v, const char *def)
{
    return v != NULL && v->type == JSON_STRING ? v->str : def;
}

int64_t json_int(const struct json *v, int64_t def)
{
    if (v == NULL || v->type != JSON_NUMBER) return def;
    if (v->is_int) return v->integer;
    if (isnan(v->number) || v->number >= 9.2e18 || v->number <= -9.2e18) return def;
    return (int64_t)v->number;
}

bool json_bool(const struct json *v, bool def)
{
    return v != NULL && v->type == JSON_BOOL ? v->boolean : def;
}

static void write_string(struct sbuf *out, const char *s, size_t len)
{
    sbuf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            sbuf_putc(out, '\\');
            sbuf_putc(out, (char)ch);
        } else if (ch < 0x20 || ch == 0x7f) {
            sbuf_printf(out, "\\u%04x", ch);
        } else {
            sbuf_putc(out, (char)ch);
        }
    }
    sbuf_putc(out, '"');
}

void json_write(struct sbuf *out, const struct json *v)
{
    switch (v->type) {
    case JSON_NULL: sbuf_appends(out, "null"); break;
    case JSON_BOOL: sbuf_appends(out, v->boolean ? "true" : "false"); break;
    case JSON_NUMBER:
        if (v->is_int)
            sbuf_printf(out, "%lld", (long long)v->integer);
        else
            sbuf_printf(out, "%.17g", v->number);
        break;
    case JSON_STRING: write_string(out, v->str, v->str_len); break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        sbuf_putc(out, v->type == JSON_ARRAY ? '[' : '{');
        for (size_t i = 0; i < v->n; i++) {
            if (i) sbuf_putc(out, ',');
            if (v->type == JSON_OBJECT) {
                write_string(out, v->keys[i], strlen(v->keys[i]));
                sbuf_putc(out, ':');
            }
            json_write(out, v->items[i]);
        }
        sbuf_putc(out, v->type == JSON_ARRAY ? ']' : '}');
        break;
    }
}

/* mime.c - RFC 5322 / MIME structure of a message, for IMAP FETCH and SEARCH
 *
 * mime_parse() reads the message once, front to back. parse_entity() reads a part's
 * header up to the first empty line and its Content-* fields; the part then runs to the
 * first delimiter line of any enclosing multipart (their boundaries are on a stack), so
 * an inner part can never swallow an outer boundary. A multipart pushes its boundary and
 * parse_multipart() hands each delimited stretch to parse_entity(); a message/rfc822 (or
 * message/global) part has one child, the encapsulated message, which ends where the
 * part ends. Only lines that start with "--" are compared with the stack (memmem() finds
 * them), and line counts are summed from the children, so no byte is looked at twice.
 *
 * The renderers follow RFC 3501 7.4.2 and produce what Dovecot produces for the same
 * message (lower-cased types, "charset" "us-ascii" added to text/ parts, MISSING_DOMAIN
 * and MISSING_MAILBOX in addresses), except that sizes are raw octets of the stored
 * message, and decoded RFC 2231 values with 8-bit octets are sent re-encoded as
 * name*="utf-8''%XX" instead of as literals.
 *
 * SECURITY: everything parsed here comes from whoever sent the mail. Nesting, parts,
 * parameters, parameter lengths and languages are bounded before anything is allocated
 * for them; past MIME_MAX_DEPTH / MIME_MAX_PARTS a multipart or message part becomes an
 * opaque application/octet-stream leaf, and parts past MIME_MAX_PARTS are skipped like
 * an epilogue. Every scan moves forward and a "--" line is compared with at most
 * MIME_MAX_DEPTH boundaries, so work is linear in the message size. Strings are emitted
 * as quoted strings only when they hold nothing but printable ASCII and TAB, otherwise as
 * literals, and NULs are dropped, so no header can break an IMAP response. Charset
 * names are checked before they reach iconv_open(), and iconv only ever converts to
 * UTF-8.
 */
#include "mime.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define PARAM_NAME_MAX  128  /* attribute names, type/subtype, language tags */
#define PARAM_VALUE_MAX 8192 /* one parameter value, continuations joined */
#define PARAM_SEGMENTS  64   /* name=value pairs read from one field */
#define LANG_MAX        16   /* Content-Language tags kept */
#define CHARSET_MAX     64   /* longest charset name passed to iconv */
#define TEXT_CHUNK      65536
#define TEXT_PIECE      4096

/* ---- small helpers ------------------------------------------------------------------ */

static inline bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static inline bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static inline char lc(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static bool ci_eqn(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lc(a[i]) != lc(b[i])) return false;
    }
    return true;
}

/* a[0..alen) equals the C string b, ignoring ASCII case */
static bool ci_eq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && ci_eqn(a, b, alen);
}

static bool ci_streq(const char *a, const char *b)
{
    return ci_eq(a, strlen(a), b);
}

static char *lower_dup(const char *s, size_t n)
{
    char *r = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        r[i] = lc(s[i]);
    r[n] = '\0';
    return r;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Index of the '\n' ending the line that starts at p, or end. */
static size_t line_end(const char *d, size_t p, size_t end)
{
    const char *q = p < end ? memchr(d + p, '\n', end - p) : NULL;
    return q ? (size_t)(q - d) : end;
}

static unsigned count_lf(const char *d, size_t start, size_t end)
{
    unsigned n = 0;
    for (size_t i = start; i < end; i++)
        n += d[i] == '\n';
    return n;
}

/* Appends s[0..n) unfolded: without CR, LF and NUL, a TAB that starts a continuation
 * line made a space (as Dovecot does), and leading and trailing blanks cut. */
static void append_unfolded(struct sbuf *out, const char *s, size_t n)
{
    size_t a = 0, b = n;
    while (a < b && is_space(s[a]))
        a++;
    while (b > a && is_space(s[b - 1]))
        b--;
    for (size_t i = a; i < b; i++) {
        char c = s[i];
        if (c == '\r' || c == '\n' || c == '\0') continue;
        if (c == '\t' && i > 0 && s[i - 1] == '\n') c = ' ';
        sbuf_putc(out, c);
    }
}

static char *unfolded_dup(const char *s, size_t n)
{
    struct sbuf b = SBUF_INIT(SBUF_NO_MAX);
    append_unfolded(&b, s, n);
    return sbuf_steal(&b);
}

/* ---- header fields ------------------------------------------------------------------ */

struct field {
    size_t start, end;             /* the whole field with its line ending(s) */
    size_t name_end;               /* name is [start, name_end), blanks before ':' cut */
    bool has_name;                 /* false for a line without ':' */
    size_t value_start, value_end; /* after ':'; before the last line ending */
};

/* The end of part's header fields: header_end without the empty line, if it has one. */
static size_t fields_end(const char *d, const struct mime_part *p)
{
    size_t hs = p->header_start, he = p->header_end;
    if (he > hs && d[he - 1] == '\n') {
        if (he - 1 == hs || d[he - 2] == '\n') return he - 1;
        if (d[he - 2] == '\r' && (he - 2 == hs || d[he - 3] == '\n')) return he - 2;
    }
    return he;
}

static bool next_field(const char *d, size_t *pos, size_t end, struct field *f)
{
    size_t p = *pos;
    if (p >= end) return false;
    f->start = p;
    size_t first_le = line_end(d, p, end);
    size_t next = first_le < end ? first_le + 1 : end;
    while (next < end && is_wsp(d[next])) {
        size_t le = line_end(d, next, end);
        next = le < end ? le + 1 : end;
    }
    f->end = next;
    *pos = next;
    size_t ve = next;
    if (ve > p && d[ve - 1] == '\n') {
        ve--;
        if (ve > p && d[ve - 1] == '\r') ve--;
    }
    const char *colon = is_wsp(d[p]) ? NULL : memchr(d + p, ':', first_le - p);
    if (colon == NULL) {
        f->has_name = false;
        f->name_end = p;
        f->value_start = f->value_end = ve;
        return true;
    }
    size_t c = (size_t)(colon - d);
    f->has_name = true;
    f->name_end = c;
    while (f->name_end > p && is_wsp(d[f->name_end - 1]))
        f->name_end--;
    f->value_start = c + 1;
    f->value_end = ve > c + 1 ? ve : c + 1;
    return true;
}

static bool field_is(const char *d, const struct field *f, const char *name)
{
    return f->has_name && ci_eq(d + f->start, f->name_end - f->start, name);
}

/* ---- structured field lexer (RFC 2045 / RFC 5322) ----------------------------------- */

struct lex {
    const char *p, *end;
};

/* Skips blanks, line breaks and (nested) comments. The text of the last comment goes to
 * comment (if not NULL). An unterminated comment runs to the end. */
static void lex_cfws(struct lex *x, struct sbuf *comment)
{
    while (x->p < x->end) {
        char c = *x->p;
        if (is_space(c)) {
            x->p++;
            continue;
        }
        if (c != '(') return;
        if (comment) sbuf_reset(comment);
        size_t level = 0;
        while (x->p < x->end) {
            c = *x->p++;
            if (c == '\\' && x->p < x->end) {
                if (comment) sbuf_putc(comment, *x->p);
                x->p++;
                continue;
            }
            if (c == '(') {
                if (level++ == 0) continue;
            } else if (c == ')') {
                if (--level == 0) break;
            }
            if (comment && c != '\r' && c != '\n' && c != '\0') sbuf_putc(comment, c);
        }
    }
}

static bool is_tspecial(char c)
{
    return c != '\0' && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* An RFC 2045 token (8-bit octets allowed). */
static bool lex_token(struct lex *x, const char **s, size_t *n)
{
    const char *a = x->p;
    while (x->p < x->end) {
        unsigned char c = (unsigned char)*x->p;
        if (c <= ' ' || c == 0x7f || is_tspecial((char)c)) break;
        x->p++;
    }
    *s = a;
    *n = (size_t)(x->p - a);
    return *n > 0;
}

/* A quoted string at x->p (which is '"'), unescaped into out. Line breaks inside are
 * folding and dropped, NULs dropped; an unterminated string runs to the end. */
static void lex_quoted(struct lex *x, struct sbuf *out)
{
    x->p++;
    while (x->p < x->end) {
        char c = *x->p++;
        if (c == '"') return;
        if (c == '\\' && x->p < x->end)
            c = *x->p++;
        else if (c == '\r' || c == '\n')
            continue;
        if (c != '\0') sbuf_putc(out, c);
    }
}

/* ---- charsets ------------------------------------------------------------------------ */

static bool charset_is_utf8ish(const char *cs)
{
    return ci_streq(cs, "utf-8") || ci_streq(cs, "utf8") || ci_streq(cs, "us-ascii") ||
           ci_streq(cs, "ascii");
}

static bool charset_name_ok(const char *cs)
{
    size_t n = strlen(cs);
    if (n == 0 || n > CHARSET_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = cs[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':' || c == '+'))
            return false;
    }
    return true;
}

/* An iconv descriptor converting cs to UTF-8, or (iconv_t)-1 if cs is unknown, is
 * already UTF-8 / ASCII, or is not a plausible name. */
static iconv_t charset_open(const char *cs)
{
    if (cs == NULL || charset_is_utf8ish(cs) || !charset_name_ok(cs)) return (iconv_t)-1;
    return iconv_open("UTF-8", cs);
}

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Converts in[0..len) with cd into out. Returns how many trailing input bytes form an
 * incomplete sequence (not converted) when final is false; with final they become
 * U+FFFD. Invalid input becomes U+FFFD. */
static size_t convert_some(iconv_t cd, const char *in, size_t len, bool final, struct sbuf *out)
{
    char buf[4096];
    char *ip = (char *)in;
    size_t ileft = len;
    while (ileft > 0) {
        char *op = buf;
        size_t oleft = sizeof(buf);
        size_t r = iconv(cd, &ip, &ileft, &op, &oleft);
        int err = errno;
        sbuf_append(out, buf, sizeof(buf) - oleft);
        if (r != (size_t)-1) break;
        if (err == E2BIG) continue;
        if (err == EINVAL && !final) return ileft;
        sbuf_append(out, replacement, 3);
        if (err == EINVAL) break;
        ip++;
        ileft--;
    }
    if (final) {
        char *op = buf;
        size_t oleft = sizeof(buf);
        iconv(cd, NULL, NULL, &op, &oleft);
        sbuf_append(out, buf, sizeof(buf) - oleft);
    }
    return 0;
}

/* Appends in[0..len) converted from cs to UTF-8 (unknown charsets: as they are). */
static void append_converted(const char *cs, const char *in, size_t len, struct sbuf *out)
{
    iconv_t cd = charset_open(cs);
    if (cd == (iconv_t)-1) {
        sbuf_append(out, in, len);
        return;
    }
    convert_some(cd, in, len, true, out);
    iconv_close(cd);
}

/* ---- parameters (RFC 2045, RFC 2231) --------------------------------------------- */

struct rawparam {
    char *name; /* lower-cased, with any "*N" / "*" suffix */
    struct sbuf value;
};

static void pct_decode(const char *s, size_t n, struct sbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < n && (h = hexval(s[i + 1])) >= 0 &&
            (l = hexval(s[i + 2])) >= 0) {
            char c = (char)(h * 16 + l);
            if (c != '\0') sbuf_putc(out, c);
            i += 2;
        } else {
            sbuf_putc(out, s[i]);
        }
    }
}

/* Splits a raw name into base length, section (-1 if none) and extended flag. */
static void split_name(const char *n, size_t *base_r, long *section_r, bool *ext_r)
{
    const char *star = strchr(n, '*');
    *base_r = strlen(n);
    *section_r = -1;
    *ext_r = false;
    if (star == NULL || star == n) return;
    const char *s = star + 1;
    if (*s == '\0') {
        *base_r = (size_t)(star - n);
        *ext_r = true;
        return;
    }
    long sec = 0;
    const char *q = s;
    while (*q >= '0' && *q <= '9' && sec < 100000) {
        sec = sec * 10 + (*q - '0');
        q++;
    }
    if (q == s || (q - s > 1 && *s == '0')) return;
    if (*q == '*' && q[1] == '\0')
        *ext_r = true;
    else if (*q != '\0')
        return;
    *base_r = (size_t)(star - n);
    *section_r = sec;
}

/* Decodes an extended value: charset'language'pct-encoded (first segment) or
 * pct-encoded. */
static void decode_ext(const char *v, size_t n, bool first, char *cs, size_t cs_size,
                       struct sbuf *out)
{
    if (first) {
        const char *q1 = memchr(v, '\'', n);
        const char *q2 = q1 ? memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - v)) : NULL;
        if (q2 != NULL) {
            size_t cl = (size_t)(q1 - v);
            if (cl < cs_size) {
                memcpy(cs, v, cl);
                cs[cl] = '\0';
            }
            size_t skip = (size_t)(q2 + 1 - v);
            v += skip;
            n -= skip;
        }
    }
    pct_decode(v, n, out);
}

static void append_param(struct mime_param **params, size_t *n, const char *name, size_t nlen,
                         struct sbuf *value)
{
    *params = xreallocarray(*params, *n + 1, sizeof(**params));
    (*params)[*n].name = xstrndup(name, nlen);
    (*params)[*n].value = sbuf_steal(value);
    (*n)++;
}

/* Joins RFC 2231 segments into decoded parameters. */
static void merge_params(struct rawparam *raw, size_t nraw, struct mime_param **params_r,
                         size_t *n_r)
{
    bool *done = xcalloc(nraw ? nraw : 1, sizeof(bool));
    for (size_t i = 0; i < nraw && *n_r < MIME_MAX_PARAMS; i++) {
        if (done[i]) continue;
        size_t blen;
        long sec;
        bool ext;
        split_name(raw[i].name, &blen, &sec, &ext);
        const char *base = raw[i].name;
        /* the forms present for this base name */
        long plain = -1, extended = -1, sec0 = -1;
        for (size_t j = i; j < nraw; j++) {
            size_t bl;
            long s;
            bool e;
            if (done[j]) continue;
            split_name(raw[j].name, &bl, &s, &e);
            if (bl != blen || memcmp(raw[j].name, base, blen) != 0) continue;
            done[j] = true;
            if (s < 0 && !e && plain < 0) plain = (long)j;
            if (s < 0 && e && extended < 0) extended = (long)j;
            if (s == 0 && sec0 < 0) sec0 = (long)j;
        }
        struct sbuf val = SBUF_INIT(SBUF_NO_MAX); /* at most PARAM_SEGMENTS values */
        char cs[CHARSET_MAX + 1] = "";
        if (sec0 >= 0) {
            for (long want = 0;; want++) {
                long found = -1;
                bool fext = false;
                for (size_t j = i; j < nraw; j++) {
                    size_t bl;
                    long s;
                    bool e;
                    split_name(raw[j].name, &bl, &s, &e);
                    if (s == want && bl == blen && memcmp(raw[j].name, base, blen) == 0) {
                        found = (long)j;
                        fext = e;
                        break;
                    }
                }
                if (found < 0) break;
                struct sbuf *v = &raw[found].value;
                if (fext)
                    decode_ext(v->data ? v->data : "", v->len, want == 0, cs, sizeof(cs), &val);
                else
                    sbuf_append(&val, v->data ? v->data : "", v->len);
            }
        } else if (extended >= 0) {
            struct sbuf *v = &raw[extended].value;
            decode_ext(v->data ? v->data : "", v->len, true, cs, sizeof(cs), &val);
        } else if (plain >= 0) {
            struct sbuf *v = &raw[plain].value;
            sbuf_append(&val, v->data ? v->data : "", v->len);
        } else {
            continue;
        }
        if (val.len > PARAM_VALUE_MAX) {
            sbuf_free(&val);
            continue;
        }
        char *star = strchr(cs, '*'); /* charset*language (RFC 2231 section 5) */
        if (star) *star = '\0';
        if (cs[0] != '\0') {
            iconv_t cd = charset_open(cs);
            if (cd != (iconv_t)-1) {
                struct sbuf conv = SBUF_INIT(SBUF_NO_MAX);
                convert_some(cd, sbuf_cstr(&val), val.len, true, &conv);
                iconv_close(cd);
                sbuf_free(&val);
                val = conv;
            }
        }
        append_param(params_r, n_r, base, blen, &val);
        sbuf_free(&val);
    }
    free(done);
}

/* Reads ";" attribute "=" value pairs up to x->end into params. */
static void parse_params(struct lex *x, struct mime_param **params_r, size_t *n_r)
{
    struct rawparam raw[PARAM_SEGMENTS];
    size_t nraw = 0;
    while (x->p < x->end) {
        lex_cfws(x, NULL);
        if (x->p >= x->end) break;
        if (*x->p != ';') {
            x->p++; /* junk between parameters */
            continue;
        }
        x->p++;
        lex_cfws(x, NULL);
        const char *name;
        size_t nlen;
        if (!lex_token(x, &name, &nlen)) continue;
        lex_cfws(x, NULL);
        if (x->p >= x->end || *x->p != '=') continue;
        x->p++;
        lex_cfws(x, NULL);
        struct sbuf value = SBUF_INIT(PARAM_VALUE_MAX + 1);
        if (x->p < x->end && *x->p == '"') {
            lex_quoted(x, &value);
        } else {
            while (x->p < x->end) {
                char c = *x->p;
                if (c == ';' || is_space(c) || c == '(' || c == '"') break;
                if (c != '\0') sbuf_putc(&value, c);
                x->p++;
            }
        }
        if (nraw < PARAM_SEGMENTS && nlen <= PARAM_NAME_MAX && value.len <= PARAM_VALUE_MAX) {
            raw[nraw].name = lower_dup(name, nlen);
            raw[nraw].value = value;
            nraw++;
        } else {
            sbuf_free(&value);
        }
    }
    merge_params(raw, nraw, params_r, n_r);
    for (size_t i = 0; i < nraw; i++) {
        free(raw[i].name);
        sbuf_free(&raw[i].value);
    }
}

static const char *param_get(const struct mime_param *params, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(params[i].name, name) == 0) return params[i].value;
    }
    return NULL;
}

/* ---- Content-* fields ------------------------------------------------------------ */

static void parse_content_type(const char *v, size_t n, struct mime_part *p)
{
    struct lex x = {v, v + n};
    const char *t, *s;
    size_t tl, sl;
    lex_cfws(&x, NULL);
    if (!lex_token(&x, &t, &tl) || tl > PARAM_NAME_MAX) return;
    lex_cfws(&x, NULL);
    if (x.p >= x.end || *x.p != '/') return;
    x.p++;
    lex_cfws(&x, NULL);
    if (!lex_token(&x, &s, &sl) || sl > PARAM_NAME_MAX) return;
    p->type = lower_dup(t, tl);
    p->subtype = lower_dup(s, sl);
    parse_params(&x, &p->params, &p->nparams);
}

static void parse_disposition(const char *v, size_t n, struct mime_part *p)
{
    struct lex x = {v, v + n};
    const char *t;
    size_t tl;
    lex_cfws(&x, NULL);
    if (!lex_token(&x, &t, &tl) || tl > PARAM_NAME_MAX) return;
    p->disposition = lower_dup(t, tl);
    parse_params(&x, &p->disp_params, &p->ndisp_params);
}

static void parse_language(const char *v, size_t n, struct mime_part *p)
{
    struct lex x = {v, v + n};
    while (x.p < x.end) {
        lex_cfws(&x, NULL);
        const char *t;
        size_t tl;
        if (lex_token(&x, &t, &tl)) {
            if (tl <= PARAM_NAME_MAX && p->nlanguages < LANG_MAX) {
                p->languages = xreallocarray(p->languages, p->nlanguages + 1, sizeof(char *));
                p->languages[p->nlanguages++] = xstrndup(t, tl);
            }
        } else if (x.p < x.end) {
            x.p++; /* ',' or junk */
        }
    }
}

static void parse_encoding(const char *v, size_t n, struct mime_part *p)
{
    struct lex x = {v, v + n};
    const char *t;
    size_t tl;
    lex_cfws(&x, NULL);
    if (lex_token(&x, &t, &tl) && tl <= PARAM_NAME_MAX) p->encoding = xstrndup(t, tl);
}

static void parse_header(const char *d, struct mime_part *p)
{
    size_t pos = p->header_start, end = fields_end(d, p);
    struct field f;
    bool seen_type = false, seen_disp = false, seen_lang = false;
    while (next_field(d, &pos, end, &f)) {
        size_t nl = f.name_end - f.start;
        if (!f.has_name || nl < 9 || !ci_eqn(d + f.start, "content-", 8)) continue;
        const char *n = d + f.start + 8;
        nl -= 8;
        const char *v = d + f.value_start;
        size_t vl = f.value_end - f.value_start;
        if (ci_eq(n, nl, "type")) {
            if (!seen_type) parse_content_type(v, vl, p);
            seen_type = true;
        } else if (ci_eq(n, nl, "transfer-encoding")) {
            if (p->encoding == NULL) parse_encoding(v, vl, p);
        } else if (ci_eq(n, nl, "disposition")) {
            if (!seen_disp) parse_disposition(v, vl, p);
            seen_disp = true;
        } else if (ci_eq(n, nl, "language")) {
            if (!seen_lang) parse_language(v, vl, p);
            seen_lang = true;
        } else if (ci_eq(n, nl, "id")) {
            if (p->id == NULL) p->id = unfolded_dup(v, vl);
        } else if (ci_eq(n, nl, "description")) {
            if (p->description == NULL) p->description = unfolded_dup(v, vl);
        } else if (ci_eq(n, nl, "md5")) {
            if (p->md5 == NULL) p->md5 = unfolded_dup(v, vl);
        } else if (ci_eq(n, nl, "location")) {
            if (p->location == NULL) p->location = unfolded_dup(v, vl);
        }
    }
}

/* ---- the tree --------------------------------------------------------------------- */

struct pctx {
    const char *d;
    size_t len;
    size_t nparts;
};

/* The boundaries of the multiparts enclosing the entity being parsed, outermost first. */
struct bstack {
    const char *b[MIME_MAX_DEPTH + 1];
    size_t blen[MIME_MAX_DEPTH + 1];
};

/* Where an entity ended: at a delimiter line of one of the enclosing multiparts. */
struct hit {
    int kind;      /* 0: none before the end; 1: delimiter; 2: close delimiter */
    size_t level;  /* whose boundary (index in the stack) */
    size_t ls, le; /* the delimiter line: its start, its '\n' (or the end) */
    size_t dstart; /* where the content before it ends: the line break before it */
};

static void set_type(struct mime_part *p, const char *type, const char *subtype)
{
    free(p->type);
    free(p->subtype);
    p->type = xstrdup(type);
    p->subtype = xstrdup(subtype);
}

static bool is_multipart(const struct mime_part *p)
{
    return p->nchildren > 0 && !p->is_message;
}

/* A part that cannot be parsed further (limits) is an opaque leaf. */
static void make_opaque(struct mime_part *p)
{
    set_type(p, "application", "octet-stream");
}

/* 0, or the kind of delimiter the line at ls is for one of the first n boundaries of st:
 * "--" boundary, then blanks (transport padding) to the line end; or "--" boundary "--"
 * for the close. The innermost boundary is tried first, so that a nested multipart that
 * reuses its parent's boundary (Outlook Express for Mac did) parses as Dovecot parses
 * it; any other outer boundary ends an inner part all the same. */
static int line_kind(const char *d, size_t ls, size_t end, const struct bstack *st, size_t n,
                     size_t *level_r, size_t *le_r)
{
    if (end - ls < 2 || d[ls] != '-' || d[ls + 1] != '-') return 0;
    for (size_t i = n; i-- > 0;) {
        size_t bl = st->blen[i];
        if (end - ls - 2 < bl || memcmp(d + ls + 2, st->b[i], bl) != 0) continue;
        size_t q = ls + 2 + bl, le = line_end(d, q, end);
        int kind = 0;
        if (q + 2 <= le && d[q] == '-' && d[q + 1] == '-') {
            kind = 2;
        } else {
            while (q < le && is_wsp(d[q]))
                q++;
            if (q == le || (q + 1 == le && d[q] == '\r')) kind = 1;
        }
        if (kind != 0) {
            *level_r = i;
            *le_r = le;
            return kind;
        }
    }
    return 0;
}

/* The line break before ls belongs to the delimiter, unless it is before pos. */
static size_t dstart_of(const char *d, size_t pos, size_t ls)
{
    size_t r = ls;
    if (r > pos && d[r - 1] == '\n') {
        r--;
        if (r > pos && d[r - 1] == '\r') r--;
    }
    return r;
}

static bool line_hit(const char *d, size_t pos, size_t ls, size_t end, const struct bstack *st,
                     size_t n, struct hit *h)
{
    h->kind = line_kind(d, ls, end, st, n, &h->level, &h->le);
    if (h->kind == 0) return false;
    h->ls = ls;
    h->dstart = dstart_of(d, pos, ls);
    return true;
}

static void no_hit(struct hit *h, size_t end)
{
    h->kind = 0;
    h->level = 0;
    h->ls = h->le = h->dstart = end;
}

/* The first delimiter line of the first n boundaries of st in [pos, end), pos being a
 * line start. Only lines starting with "--" are looked at. */
static void find_delim(const char *d, size_t pos, size_t end, const struct bstack *st, size_t n,
                       struct hit *h)
{
    size_t ls = pos;
    while (n > 0 && ls < end) {
        if (line_hit(d, pos, ls, end, st, n, h)) return;
        const char *nx = memmem(d + ls, end - ls, "\n--", 3);
        if (nx == NULL) break;
        ls = (size_t)(nx - d) + 1;
    }
    no_hit(h, end);
}

static size_t add_child(struct pctx *c, struct mime_part *p, size_t *cap)
{
    if (p->nchildren == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        p->children = xreallocarray(p->children, *cap, sizeof(*p->children));
    }
    memset(&p->children[p->nchildren], 0, sizeof(*p->children));
    c->nparts++;
    return p->nchildren++;
}

static void parse_entity(struct pctx *c, struct mime_part *p, size_t start, size_t end,
                         struct bstack *st, size_t n, unsigned depth, bool digest_child,
                         struct hit *h);

/* The body of a multipart p from p->body_start: preamble, parts, epilogue, up to the first
 * delimiter of an enclosing multipart (returned in *h) or end. */
static void parse_multipart(struct pctx *c, struct mime_part *p, size_t end, struct bstack *st,
                            size_t n, unsigned depth, struct hit *h)
{
    const char *d = c->d;
    const char *b = param_get(p->params, p->nparams, "boundary");
    bool digest = strcmp(p->subtype, "digest") == 0;
    size_t cap = 0, own = n, levels = n;
    if (b != NULL && b[0] != '\0') {
        st->b[own] = b;
        st->blen[own] = strlen(b);
        levels = n + 1;
    }
    struct hit hh;
    find_delim(d, p->body_start, end, st, levels, &hh); /* the preamble */
    for (;;) {
        if (hh.kind == 0 || hh.level < own) { /* the end, or an enclosing boundary */
            p->body_end = hh.dstart;
            *h = hh;
            break;
        }
        size_t next = hh.le < end ? hh.le + 1 : end;
        if (hh.kind == 2 || c->nparts >= MIME_MAX_PARTS) {
            /* the epilogue (and any parts past the limit): up to an enclosing boundary */
            find_delim(d, next, end, st, n, h);
            p->body_end = h->dstart;
            break;
        }
        size_t i = add_child(c, p, &cap);
        parse_entity(c, &p->children[i], next, end, st, levels, depth + 1, digest, &hh);
    }
    if (p->nchildren == 0) {
        /* no boundary, or never found: one empty text/plain part, as Dovecot shows it */
        if (c->nparts >= MIME_MAX_PARTS) {
            make_opaque(p);
            return;
        }
        size_t i = add_child(c, p, &cap);
        struct hit none;
        parse_entity(c, &p->children[i], p->body_end, p->body_end, st, 0, depth + 1, false, &none);
    }
}

/* Parses the entity (a message or a body part) at start. It ends at the first delimiter
 * line of the first n boundaries of st (returned in *h), or at end. */
static void parse_entity(struct pctx *c, struct mime_part *p, size_t start, size_t end,
                         struct bstack *st, size_t n, unsigned depth, bool digest_child,
                         struct hit *h)
{
    const char *d = c->d;
    bool body = false; /* an empty line ends the header, and a body follows */
    p->header_start = start;
    p->header_end = end;
    no_hit(h, end);
    for (size_t ls = start; ls < end;) {
        size_t blank = d[ls] == '\n'                                        ? 1
                       : d[ls] == '\r' && ls + 1 < end && d[ls + 1] == '\n' ? 2
                                                                            : 0;
        if (blank > 0) {
            p->header_end = ls + blank;
            body = true;
            break;
        }
        if (line_hit(d, start, ls, end, st, n, h)) { /* a part with only (some) header */
            p->header_end = h->dstart;
            break;
        }
        size_t le = line_end(d, ls, end);
        ls = le < end ? le + 1 : end;
    }
    p->body_start = p->body_end = p->header_end;
    parse_header(d, p);
    if (p->type == NULL) {
        if (digest_child)
            set_type(p, "message", "rfc822");
        else
            set_type(p, "text", "plain");
    }
    bool multi = strcmp(p->type, "multipart") == 0;
    bool message = strcmp(p->type, "message") == 0 &&
                   (strcmp(p->subtype, "rfc822") == 0 || strcmp(p->subtype, "global") == 0);
    if ((multi || message) && (depth >= MIME_MAX_DEPTH || c->nparts >= MIME_MAX_PARTS)) {
        make_opaque(p);
        multi = message = false;
    }
    if (body && p->header_end < end) {
        /* an enclosing delimiter right after the empty line: that line break is the
         * delimiter's, and the part has no body (unless the line is our own boundary) */
        size_t levels = n;
        const char *b = multi ? param_get(p->params, p->nparams, "boundary") : NULL;
        if (b != NULL && b[0] != '\0') {
            st->b[n] = b;
            st->blen[n] = strlen(b);
            levels = n + 1;
        }
        struct hit lh;
        if (line_hit(d, p->header_end, p->header_end, end, st, levels, &lh) && lh.level < n) {
            p->header_end = p->body_start = p->body_end = fields_end(d, p);
            lh.dstart = p->header_end;
            *h = lh;
            body = false;
        }
    }
    /* without a body, the children are parsed in [body_start, body_start) */
    size_t bend = body ? end : p->body_start, bn = body ? n : 0;
    struct hit bh;
    if (multi) {
        parse_multipart(c, p, bend, st, bn, depth, &bh);
    } else if (message) {
        size_t cap = 0;
        add_child(c, p, &cap);
        p->is_message = true;
        parse_entity(c, &p->children[0], p->body_start, bend, st, bn, depth + 1, false, &bh);
        p->body_end = p->children[0].body_end;
    } else {
        find_delim(d, p->body_start, bend, st, bn, &bh);
        p->body_end = bh.dstart;
    }
    if (body) *h = bh;
    /* the line count from the children's, so that each line is counted once */
    size_t pos = p->body_start;
    p->lines = 0;
    for (size_t i = 0; i < p->nchildren; i++) {
        const struct mime_part *ch = &p->children[i];
        p->lines += count_lf(d, pos, ch->body_start) + ch->lines;
        pos = ch->body_end;
    }
    p->lines += count_lf(d, pos, p->body_end);
}

void mime_parse(struct mime_message *msg, const char *data, size_t len)
{
    memset(msg, 0, sizeof(*msg));
    if (data == NULL) {
        data = "";
        len = 0;
    }
    msg->data = data;
    msg->len = len;
    struct pctx c = {data, len, 1};
    struct bstack st;
    struct hit h;
    parse_entity(&c, &msg->root, 0, len, &st, 0, 0, false, &h);
    msg->nparts = c.nparts;
}

static void free_params(struct mime_param *params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(params[i].name);
        free(params[i].value);
    }
    free(params);
}

static void free_part(struct mime_part *p)
{
    for (size_t i = 0; i < p->nchildren; i++)
        free_part(&p->children[i]);
    free(p->children);
    free(p->type);
    free(p->subtype);
    free_params(p->params, p->nparams);
    free(p->id);
    free(p->description);
    free(p->encoding);
    free(p->md5);
    free(p->location);
    free(p->disposition);
    free_params(p->disp_params, p->ndisp_params);
    for (size_t i = 0; i < p->nlanguages; i++)
        free(p->languages[i]);
    free(p->languages);
    memset(p, 0, sizeof(*p));
}

void mime_free(struct mime_message *msg)
{
    if (msg == NULL) return;
    free_part(&msg->root);
    msg->nparts = 0;
}

const struct mime_part *mime_find(const struct mime_message *msg, const char *part_number)
{
    /* at_message: part is a message (the root or an encapsulated one), whose body is
     * "1" when it is not a multipart (RFC 3501 6.4.5) */
    const struct mime_part *part = &msg->root;
    bool at_message = true;
    const char *s = part_number;
    while (*s != '\0') {
        if (*s < '1' || *s > '9') return NULL;
        size_t num = 0;
        while (*s >= '0' && *s <= '9') {
            num = num * 10 + (size_t)(*s - '0');
            if (num > MIME_MAX_PARTS) return NULL;
            s++;
        }
        if (*s == '.') {
            s++;
            if (*s == '\0') return NULL;
        } else if (*s != '\0') {
            return NULL;
        }
        if (is_multipart(part)) {
            if (num > part->nchildren) return NULL;
            part = &part->children[num - 1];
        } else if (!at_message || num != 1) {
            return NULL;
        }
        at_message = false;
        if (*s != '\0' && part->is_message) {
            part = &part->children[0];
            at_message = true;
        }
    }
    return part;
}

/* ---- IMAP strings ----------------------------------------------------------------- */

/* Appends s[0..n) as an IMAP string: quoted if it is printable ASCII, a literal
 * otherwise. NULs are dropped; with nolf, so are CR and LF. */
static void put_string(struct sbuf *out, const char *s, size_t n, bool nolf)
{
    size_t len = 0;
    bool literal = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0 || (nolf && (c == '\r' || c == '\n'))) continue;
        len++;
        if (c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f) literal = true;
    }
    if (literal) {
        sbuf_printf(out, "{%zu}\r\n", len);
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            if (c == 0 || (nolf && (c == '\r' || c == '\n'))) continue;
            sbuf_putc(out, c);
        }
        return;
    }
    sbuf_putc(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"' || c == '\\' || c == 0 || (nolf && (c == '\r' || c == '\n'))) {
            sbuf_append(out, s + run, i - run);
            if (c == '"' || c == '\\') {
                sbuf_putc(out, '\\');
                sbuf_putc(out, c);
            }
            run = i + 1;
        }
    }
    sbuf_append(out, s + run, n - run);
    sbuf_putc(out, '"');
}

static void put_cstring(struct sbuf *out, const char *s)
{
    put_string(out, s, strlen(s), false);
}

static void put_nstring(struct sbuf *out, const char *s)
{
    if (s == NULL)
        sbuf_appends(out, "NIL");
    else
        put_string(out, s, strlen(s), false);
}

/* True if s is valid UTF-8 with at least one non-ASCII or control character. */
static bool wants_2231(const char *s)
{
    bool special = false;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) special = true;
            p++;
            continue;
        }
        special = true;
        size_t n = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 9;
        if (n == 9 || c == 0xc0 || c == 0xc1 || c > 0xf4) return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
        }
        p += n + 1;
    }
    return special;
}

static void put_params(struct sbuf *out, const struct mime_param *params, size_t n,
                       bool default_charset)
{
    bool seen_charset = false;
    if (n == 0 && !default_charset) {
        sbuf_appends(out, "NIL");
        return;
    }
    sbuf_putc(out, '(');
    for (size_t i = 0; i < n; i++) {
        if (i > 0) sbuf_putc(out, ' ');
        if (strcmp(params[i].name, "charset") == 0) seen_charset = true;
        if (wants_2231(params[i].value)) {
            /* name*=utf-8''%XX (RFC 2231): what Dovecot passes through */
            struct sbuf nm = SBUF_INIT(SBUF_NO_MAX), v = SBUF_INIT(SBUF_NO_MAX);
            sbuf_printf(&nm, "%s*", params[i].name);
            sbuf_appends(&v, "utf-8''");
            for (const unsigned char *p = (const unsigned char *)params[i].value; *p; p++) {
                if (*p >= 0x80 || *p <= 0x20 || *p == 0x7f || strchr("()<>@,;:\\\"/[]?=*'%", *p))
                    sbuf_printf(&v, "%%%02X", *p);
                else
                    sbuf_putc(&v, (char)*p);
            }
            put_cstring(out, sbuf_cstr(&nm));
            sbuf_putc(out, ' ');
            put_cstring(out, sbuf_cstr(&v));
            sbuf_free(&nm);
            sbuf_free(&v);
        } else {
            put_cstring(out, params[i].name);
            sbuf_putc(out, ' ');
            put_cstring(out, params[i].value);
        }
    }
    if (default_charset && !seen_charset) {
        if (n > 0) sbuf_putc(out, ' ');
        sbuf_appends(out, "\"charset\" \"us-ascii\"");
    }
    sbuf_putc(out, ')');
}

/* ---- ENVELOPE ----------------------------------------------------------------------- */

struct addr {
    char *name, *route, *mailbox, *host; /* NULL for NIL */
};

struct addrlist {
    struct addr *a;
    size_t n;
};

static void addr_add(struct addrlist *l, char *name, char *route, char *mailbox, char *host)
{
    l->a = xreallocarray(l->a, l->n + 1, sizeof(*l->a));
    l->a[l->n].name = name;
    l->a[l->n].route = route;
    l->a[l->n].mailbox = mailbox;
    l->a[l->n].host = host;
    l->n++;
}

static void addrlist_free(struct addrlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->a[i].name);
        free(l->a[i].route);
        free(l->a[i].mailbox);
        free(l->a[i].host);
    }
    free(l->a);
    l->a = NULL;
    l->n = 0;
}

static bool is_atext(char c)
{
    unsigned char u = (unsigned char)c;
    if (u >= 0x80) return true;
    if (u <= ' ' || u == 0x7f) return false;
    return strchr("()<>[]:;@\\,.\"", c) == NULL;
}

/* Words (atoms with dots, quoted strings) up to a special: into phrase joined by single
 * spaces, and into local (concatenated, as a local-part). */
static void lex_words(struct lex *x, struct sbuf *phrase, struct sbuf *local, struct sbuf *comment)
{
    bool first = true;
    for (;;) {
        lex_cfws(x, comment);
        if (x->p >= x->end) return;
        char c = *x->p;
        if (c != '"' && c != '.' && !is_atext(c)) return;
        if (!first) sbuf_putc(phrase, ' ');
        first = false;
        if (c == '"') {
            size_t pl = phrase->len;
            lex_quoted(x, phrase);
            sbuf_append(local, sbuf_cstr(phrase) + pl, phrase->len - pl);
            continue;
        }
        while (x->p < x->end && (*x->p == '.' || is_atext(*x->p))) {
            sbuf_putc(phrase, *x->p);
            sbuf_putc(local, *x->p);
            x->p++;
        }
    }
}

static void lex_domain(struct lex *x, struct sbuf *out, struct sbuf *comment)
{
    for (;;) {
        lex_cfws(x, comment);
        if (x->p >= x->end) return;
        char c = *x->p;
        if (c == '[') {
            while (x->p < x->end) {
                c = *x->p++;
                if (c == '\\' && x->p < x->end)
                    c = *x->p++;
                else if (c == '\r' || c == '\n')
                    continue;
                if (c != '\0') sbuf_putc(out, c);
                if (c == ']') break;
            }
            continue;
        }
        if (c != '.' && !is_atext(c)) return;
        while (x->p < x->end && (*x->p == '.' || is_atext(*x->p))) {
            sbuf_putc(out, *x->p);
            x->p++;
        }
    }
}

static char *take_or(struct sbuf *b, const char *dflt)
{
    if (b->len == 0) return dflt ? xstrdup(dflt) : NULL;
    return sbuf_steal(b);
}

/* One mailbox or group at x->p; adds its entries to l. */
static void parse_address(struct lex *x, struct addrlist *l, bool in_group)
{
    struct sbuf phrase = SBUF_INIT(SBUF_NO_MAX), local = SBUF_INIT(SBUF_NO_MAX);
    struct sbuf comment = SBUF_INIT(SBUF_NO_MAX), host = SBUF_INIT(SBUF_NO_MAX);
    struct sbuf route = SBUF_INIT(SBUF_NO_MAX);
    const char *start = x->p;
    lex_words(x, &phrase, &local, &comment);
    char c = x->p < x->end ? *x->p : '\0';
    if (c == ':' && !in_group) {
        x->p++;
        addr_add(l, NULL, NULL, xstrdup(sbuf_cstr(&phrase)), NULL);
        for (;;) {
            lex_cfws(x, NULL);
            if (x->p >= x->end) break;
            if (*x->p == ';') {
                x->p++;
                break;
            }
            if (*x->p == ',') {
                x->p++;
                continue;
            }
            const char *before = x->p;
            parse_address(x, l, true);
            if (x->p == before) x->p++;
        }
        addr_add(l, NULL, NULL, NULL, NULL);
    } else if (c == '<') {
        x->p++;
        sbuf_reset(&comment);
        lex_cfws(x, NULL);
        while (x->p < x->end && (*x->p == '@' || *x->p == ',')) {
            /* obs-route: @domain,@domain: */
            if (*x->p == '@') {
                if (route.len > 0) sbuf_putc(&route, ',');
                sbuf_putc(&route, '@');
                x->p++;
                lex_domain(x, &route, NULL);
            } else {
                x->p++;
            }
            lex_cfws(x, NULL);
            if (x->p < x->end && *x->p == ':') {
                x->p++;
                break;
            }
        }
        struct sbuf ignore = SBUF_INIT(SBUF_NO_MAX);
        sbuf_reset(&local);
        lex_words(x, &ignore, &local, NULL);
        sbuf_free(&ignore);
        if (x->p < x->end && *x->p == '@') {
            x->p++;
            lex_domain(x, &host, NULL);
        }
        lex_cfws(x, NULL);
        while (x->p < x->end && *x->p != '>' && *x->p != ',' && !(in_group && *x->p == ';'))
            x->p++;
        if (x->p < x->end && *x->p == '>') x->p++;
        lex_cfws(x, NULL);
        addr_add(l, take_or(&phrase, NULL), take_or(&route, NULL),
                 take_or(&local, "MISSING_MAILBOX"), take_or(&host, "MISSING_DOMAIN"));
    } else {
        /* addr-spec: the words were the local part */
        x->p = start;
        sbuf_reset(&phrase);
        sbuf_reset(&local);
        sbuf_reset(&comment);
        lex_words(x, &phrase, &local, &comment);
        bool at = x->p < x->end && *x->p == '@';
        if (at) {
            x->p++;
            lex_domain(x, &host, &comment);
        }
        lex_cfws(x, &comment);
        bool junk = x->p < x->end && *x->p != ',' && !(in_group && *x->p == ';');
        if (local.len > 0 || host.len > 0 || at || junk) /* junk: as Dovecot shows it */
            addr_add(l, take_or(&comment, NULL), NULL, take_or(&local, "MISSING_MAILBOX"),
                     take_or(&host, "MISSING_DOMAIN"));
    }
    sbuf_free(&phrase);
    sbuf_free(&local);
    sbuf_free(&comment);
    sbuf_free(&host);
    sbuf_free(&route);
}

static void parse_address_list(const char *v, size_t n, struct addrlist *l)
{
    struct lex x = {v, v + n};
    for (;;) {
        lex_cfws(&x, NULL);
        if (x.p >= x.end) break;
        if (*x.p == ',' || *x.p == ';' || *x.p == '>') {
            x.p++;
            continue;
        }
        const char *before = x.p;
        parse_address(&x, l, false);
        lex_cfws(&x, NULL);
        /* skip what is left of a malformed address */
        while (x.p < x.end && *x.p != ',') {
            const char *b2 = x.p;
            if (*x.p == '"') {
                struct sbuf ignore = SBUF_INIT(SBUF_NO_MAX);
                lex_quoted(&x, &ignore);
                sbuf_free(&ignore);
            } else {
                x.p++;
            }
            lex_cfws(&x, NULL);
            if (x.p == b2) x.p++;
        }
        if (x.p == before) x.p++;
    }
}

static void put_addrlist(struct sbuf *out, const struct addrlist *l)
{
    if (l->n == 0) {
        sbuf_appends(out, "NIL");
        return;
    }
    sbuf_putc(out, '(');
    for (size_t i = 0; i < l->n; i++) {
        sbuf_putc(out, '(');
        put_nstring(out, l->a[i].name);
        sbuf_putc(out, ' ');
        put_nstring(out, l->a[i].route);
        sbuf_putc(out, ' ');
        put_nstring(out, l->a[i].mailbox);
        sbuf_putc(out, ' ');
        put_nstring(out, l->a[i].host);
        sbuf_putc(out, ')');
    }
    sbuf_putc(out, ')');
}

enum {
    ENV_DATE,
    ENV_SUBJECT,
    ENV_FROM,
    ENV_SENDER,
    ENV_REPLY_TO,
    ENV_TO,
    ENV_CC,
    ENV_BCC,
    ENV_IN_REPLY_TO,
    ENV_MESSAGE_ID,
    ENV_COUNT
};

static const char *const env_names[ENV_COUNT] = {"date",        "subject",   "from", "sender",
                                                 "reply-to",    "to",        "cc",   "bcc",
                                                 "in-reply-to", "message-id"};

static void render_envelope(const char *d, const struct mime_part *m, struct sbuf *out)
{
    struct field found[ENV_COUNT];
    bool have[ENV_COUNT] = {false};
    struct addrlist lists[ENV_COUNT];
    memset(lists, 0, sizeof(lists));
    size_t pos = m->header_start, end = fields_end(d, m);
    struct field f;
    while (next_field(d, &pos, end, &f)) {
        for (size_t i = 0; i < ENV_COUNT; i++) {
            if (!field_is(d, &f, env_names[i])) continue;
            if (i >= ENV_FROM && i <= ENV_BCC) /* every To: (etc.) counts, as in Dovecot */
                parse_address_list(d + f.value_start, f.value_end - f.value_start, &lists[i]);
            else if (!have[i])
                found[i] = f;
            have[i] = true;
            break;
        }
    }
    sbuf_putc(out, '(');
    for (size_t i = 0; i < ENV_COUNT; i++) {
        if (i > 0) sbuf_putc(out, ' ');
        if (i >= ENV_FROM && i <= ENV_BCC) {
            const struct addrlist *l = &lists[i];
            if ((i == ENV_SENDER || i == ENV_REPLY_TO) && l->n == 0) l = &lists[ENV_FROM];
            put_addrlist(out, l);
        } else if (!have[i]) {
            sbuf_appends(out, "NIL");
        } else {
            struct sbuf v = SBUF_INIT(SBUF_NO_MAX);
            append_unfolded(&v, d + found[i].value_start,
                            found[i].value_end - found[i].value_start);
            put_string(out, sbuf_cstr(&v), v.len, true);
            sbuf_free(&v);
        }
    }
    sbuf_putc(out, ')');
    for (size_t i = 0; i < ENV_COUNT; i++)
        addrlist_free(&lists[i]);
}

static bool is_encapsulated(const struct mime_part *p, const struct mime_part *target)
{
    if (p->is_message && &p->children[0] == target) return true;
    for (size_t i = 0; i < p->nchildren; i++) {
        if (is_encapsulated(&p->children[i], target)) return true;
    }
    return false;
}

void mime_envelope(const struct mime_message *msg, const struct mime_part *message_part,
                   struct sbuf *out)
{
    const struct mime_part *m = message_part;
    if (m != &msg->root && m->is_message && !is_encapsulated(&msg->root, m)) m = &m->children[0];
    render_envelope(msg->data, m, out);
}

/* ---- BODYSTRUCTURE ------------------------------------------------------------------ */

static void put_extension(struct sbuf *out, const struct mime_part *p)
{
    sbuf_putc(out, ' ');
    if (p->disposition == NULL) {
        sbuf_appends(out, "NIL");
    } else {
        sbuf_putc(out, '(');
        put_cstring(out, p->disposition);
        sbuf_putc(out, ' ');
        put_params(out, p->disp_params, p->ndisp_params, false);
        sbuf_putc(out, ')');
    }
    sbuf_putc(out, ' ');
    if (p->nlanguages == 0) {
        sbuf_appends(out, "NIL");
    } else {
        sbuf_putc(out, '(');
        for (size_t i = 0; i < p->nlanguages; i++) {
            if (i > 0) sbuf_putc(out, ' ');
            put_cstring(out, p->languages[i]);
        }
        sbuf_putc(out, ')');
    }
    sbuf_putc(out, ' ');
    put_nstring(out, p->location);
}

static void render_body(const char *d, const struct mime_part *p, bool ext, struct sbuf *out)
{
    sbuf_putc(out, '(');
    if (is_multipart(p)) {
        for (size_t i = 0; i < p->nchildren; i++)
            render_body(d, &p->children[i], ext, out);
        sbuf_putc(out, ' ');
        put_cstring(out, p->subtype);
        if (ext) {
            sbuf_putc(out, ' ');
            put_params(out, p->params, p->nparams, false);
            put_extension(out, p);
        }
        sbuf_putc(out, ')');
        return;
    }
    bool text = strcmp(p->type, "text") == 0;
    put_cstring(out, p->type);
    sbuf_putc(out, ' ');
    put_cstring(out, p->subtype);
    sbuf_putc(out, ' ');
    put_params(out, p->params, p->nparams, text);
    sbuf_putc(out, ' ');
    put_nstring(out, p->id);
    sbuf_putc(out, ' ');
    put_nstring(out, p->description);
    sbuf_putc(out, ' ');
    put_cstring(out, p->encoding ? p->encoding : "7bit");
    sbuf_printf(out, " %zu", p->body_end - p->body_start);
    if (p->is_message) {
        sbuf_putc(out, ' ');
        render_envelope(d, &p->children[0], out);
        sbuf_putc(out, ' ');
        render_body(d, &p->children[0], ext, out);
        sbuf_printf(out, " %u", p->lines);
    } else if (text) {
        sbuf_printf(out, " %u", p->lines);
    }
    if (ext) {
        sbuf_putc(out, ' ');
        put_nstring(out, p->md5);
        put_extension(out, p);
    }
    sbuf_putc(out, ')');
}

void mime_bodystructure(const struct mime_message *msg, const struct mime_part *part, bool extended,
                        struct sbuf *out)
{
    render_body(msg->data, part, extended, out);
}

/* ---- header access ----------------------------------------------------------------- */

/* Appends the field with its line endings made CRLF (and one added if it has none). */
static void append_field_crlf(struct sbuf *out, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) {
            sbuf_append(out, s + run, i - run);
            sbuf_putc(out, '\r');
            run = i;
        }
    }
    sbuf_append(out, s + run, n - run);
    if (n == 0 || s[n - 1] != '\n') sbuf_appends(out, "\r\n");
}

void mime_header_fields(const struct mime_message *msg, const struct mime_part *part,
                        const char *const *names, size_t n, bool exclude, struct sbuf *out)
{
    const char *d = msg->data;
    size_t pos = part->header_start, end = fields_end(d, part);
    struct field f;
    while (next_field(d, &pos, end, &f)) {
        bool match = false;
        for (size_t i = 0; i < n && !match; i++)
            match = field_is(d, &f, names[i]);
        if (match != exclude) append_field_crlf(out, d + f.start, f.end - f.start);
    }
    sbuf_appends(out, "\r\n");
}

char *mime_header_raw(const struct mime_message *msg, const struct mime_part *part,
                      const char *name)
{
    const char *d = msg->data;
    size_t pos = part->header_start, end = fields_end(d, part);
    struct field f;
    while (next_field(d, &pos, end, &f)) {
        if (!field_is(d, &f, name)) continue;
        size_t a = f.value_start;
        while (a < f.value_end && is_wsp(d[a]))
            a++;
        return xstrndup(d + a, f.value_end - a);
    }
    return NULL;
}

static void decode_words_into(const char *s, size_t len, struct sbuf *out);

char *mime_header_get(const struct mime_message *msg, const struct mime_part *part,
                      const char *name, bool all)
{
    const char *d = msg->data;
    size_t pos = part->header_start, end = fields_end(d, part);
    struct field f;
    struct sbuf res = SBUF_INIT(SBUF_NO_MAX);
    bool found = false;
    while (next_field(d, &pos, end, &f)) {
        if (!field_is(d, &f, name)) continue;
        struct sbuf v = SBUF_INIT(SBUF_NO_MAX);
        append_unfolded(&v, d + f.value_start, f.value_end - f.value_start);
        if (found) sbuf_putc(&res, '\n');
        decode_words_into(sbuf_cstr(&v), v.len, &res);
        sbuf_free(&v);
        found = true;
        if (!all) break;
    }
    if (!found) return NULL;
    return sbuf_steal(&res);
}

/* ---- RFC 2047 ------------------------------------------------------------------------- */

struct eword {
    char charset[CHARSET_MAX + 1];
    char enc;              /* 'b' or 'q' */
    size_t text, text_len; /* offsets into the value */
    size_t end;            /* after "?=" */
};

/* An encoded-word =?charset?B|Q?text?= at s[i]. Scans only up to the fourth '?', so
 * trying every "=?" of a value stays linear. */
static bool parse_eword(const char *s, size_t len, size_t i, struct eword *w)
{
    if (i + 1 >= len || s[i] != '=' || s[i + 1] != '?') return false;
    size_t p = i + 2, cs = p;
    while (p < len && s[p] != '?' && !is_space(s[p]) && p - cs <= CHARSET_MAX)
        p++;
    if (p >= len || s[p] != '?' || p == cs || p - cs > CHARSET_MAX) return false;
    memcpy(w->charset, s + cs, p - cs);
    w->charset[p - cs] = '\0';
    char *star = strchr(w->charset, '*');
    if (star) *star = '\0';
    p++;
    if (p + 1 >= len || s[p + 1] != '?') return false;
    w->enc = lc(s[p]);
    if (w->enc != 'b' && w->enc != 'q') return false;
    p += 2;
    w->text = p;
    while (p < len && s[p] != '?' && !is_space(s[p]))
        p++;
    if (p + 1 >= len || s[p] != '?' || s[p + 1] != '=') return false;
    w->text_len = p - w->text;
    w->end = p + 2;
    return true;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

struct b64state {
    unsigned bits;
    unsigned nbits;
    bool done;
};

/* Lenient base64: characters outside the alphabet are skipped, '=' ends the data. */
static void b64_feed(struct b64state *st, const char *s, size_t n, struct sbuf *out)
{
    for (size_t i = 0; i < n && !st->done; i++) {
        if (s[i] == '=') {
            st->done = true;
            break;
        }
        int v = b64val(s[i]);
        if (v < 0) continue;
        st->bits = (st->bits << 6) | (unsigned)v;
        st->nbits += 6;
        if (st->nbits >= 8) {
            st->nbits -= 8;
            sbuf_putc(out, (char)((st->bits >> st->nbits) & 0xff));
        }
    }
}

static void eword_decode(const char *s, const struct eword *w, struct sbuf *out)
{
    const char *t = s + w->text;
    if (w->enc == 'b') {
        struct b64state st = {0, 0, false};
        b64_feed(&st, t, w->text_len, out);
        return;
    }
    for (size_t i = 0; i < w->text_len; i++) {
        int h, l;
        if (t[i] == '_') {
            sbuf_putc(out, ' ');
        } else if (t[i] == '=' && i + 2 < w->text_len && (h = hexval(t[i + 1])) >= 0 &&
                   (l = hexval(t[i + 2])) >= 0) {
            sbuf_putc(out, (char)(h * 16 + l));
            i += 2;
        } else {
            sbuf_putc(out, t[i]);
        }
    }
}

static void flush_words(struct sbuf *pend, const char *cs, struct sbuf *out)
{
    if (pend->len == 0) return;
    struct sbuf conv = SBUF_INIT(SBUF_NO_MAX);
    append_converted(cs, pend->data, pend->len, &conv);
    for (size_t i = 0; i < conv.len; i++) { /* the result is a C string */
        if (conv.data[i] != '\0') sbuf_putc(out, conv.data[i]);
    }
    sbuf_free(&conv);
    sbuf_reset(pend);
}

static void decode_words_into(const char *s, size_t len, struct sbuf *out)
{
    struct sbuf pend = SBUF_INIT(SBUF_NO_MAX); /* decoded words of one charset */
    char pend_cs[CHARSET_MAX + 1] = "";
    bool after_word = false;
    size_t i = 0;
    while (i < len) {
        struct eword w;
        if (s[i] == '=' && parse_eword(s, len, i, &w)) {
            if (pend.len > 0 && !ci_streq(pend_cs, w.charset)) flush_words(&pend, pend_cs, out);
            memcpy(pend_cs, w.charset, sizeof(pend_cs));
            eword_decode(s, &w, &pend);
            i = w.end;
            after_word = true;
            continue;
        }
        if (after_word && is_space(s[i])) {
            size_t j = i;
            while (j < len && is_space(s[j]))
                j++;
            if (j < len && s[j] == '=' && parse_eword(s, len, j, &w)) {
                i = j; /* whitespace between encoded-words is dropped */
                continue;
            }
            flush_words(&pend, pend_cs, out);
            sbuf_append(out, s + i, j - i);
            i = j;
            after_word = false;
            continue;
        }
        flush_words(&pend, pend_cs, out);
        after_word = false;
        sbuf_putc(out, s[i]);
        i++;
    }
    flush_words(&pend, pend_cs, out);
    sbuf_free(&pend);
}

char *mime_decode_words(const char *value, size_t len)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    decode_words_into(value ? value : "", value ? len : 0, &out);
    return sbuf_steal(&out);
}

/* ---- body text for SEARCH ----------------------------------------------------------- */

struct textout {
    bool (*fn)(const char *text, size_t len, void *ctx);
    void *ctx;
    bool stopped;
    iconv_t cd;        /* (iconv_t)-1: pass through */
    struct sbuf carry; /* an incomplete multibyte sequence */
    struct sbuf buf;   /* UTF-8 waiting to be handed to fn */
};

static void text_emit(struct textout *t, size_t n)
{
    if (n == 0 || t->stopped) return;
    if (t->fn(t->buf.data, n, t->ctx)) t->stopped = true;
    sbuf_consume(&t->buf, n);
}

/* Hands full chunks to fn, cut after a line end where possible, never inside a UTF-8
 * sequence; with all, everything. */
static void text_flush(struct textout *t, bool all)
{
    while (!t->stopped && (t->buf.len > TEXT_CHUNK || (all && t->buf.len > 0))) {
        const unsigned char *b = (const unsigned char *)t->buf.data;
        size_t n = t->buf.len;
        if (n > TEXT_CHUNK) {
            n = TEXT_CHUNK;
            size_t i = n;
            while (i > n / 2 && b[i - 1] != '\n')
                i--;
            if (i > n / 2)
                n = i;
            else {
                while (n > TEXT_CHUNK - 3 && (b[n] & 0xc0) == 0x80)
                    n--;
            }
        }
        text_emit(t, n);
    }
}

static void text_push(struct textout *t, const char *s, size_t n, bool final)
{
    if (t->stopped) return;
    if (t->cd == (iconv_t)-1) {
        sbuf_append(&t->buf, s, n);
    } else {
        if (t->carry.len > 0) {
            sbuf_append(&t->carry, s, n);
            struct sbuf in = t->carry;
            sbuf_init(&t->carry, SBUF_NO_MAX);
            size_t left = convert_some(t->cd, in.data, in.len, final, &t->buf);
            if (left > 64) { /* not a character, just bad input */
                sbuf_append(&t->buf, replacement, 3);
                left = 0;
            }
            sbuf_append(&t->carry, in.data + in.len - left, left);
            sbuf_free(&in);
        } else {
            size_t left = convert_some(t->cd, s, n, final, &t->buf);
            if (left > 64) {
                sbuf_append(&t->buf, replacement, 3);
                left = 0;
            }
            sbuf_append(&t->carry, s + n - left, left);
        }
    }
    text_flush(t, false);
}

static void qp_decode_body(struct textout *t, const char *d, size_t i, size_t be)
{
    struct sbuf dec = SBUF_INIT(SBUF_NO_MAX);
    while (i < be && !t->stopped) {
        char c = d[i];
        int h, l;
        if (c == '=') {
            if (i + 2 < be && (h = hexval(d[i + 1])) >= 0 && (l = hexval(d[i + 2])) >= 0) {
                sbuf_putc(&dec, (char)(h * 16 + l));
                i += 3;
            } else {
                size_t j = i + 1;
                while (j < be && is_wsp(d[j]))
                    j++;
                if (j >= be)
                    i = be; /* soft line break */
                else if (d[j] == '\n')
                    i = j + 1;
                else if (d[j] == '\r' && j + 1 < be && d[j + 1] == '\n')
                    i = j + 2;
                else {
                    sbuf_putc(&dec, '=');
                    i++;
                }
            }
        } else if (is_wsp(c)) {
            size_t j = i;
            while (j < be && is_wsp(d[j]))
                j++;
            if (!(j >= be || d[j] == '\n' || (d[j] == '\r' && j + 1 < be && d[j + 1] == '\n')))
                sbuf_append(&dec, d + i, j - i); /* trailing blanks are dropped */
            i = j;
        } else {
            sbuf_putc(&dec, c);
            i++;
        }
        if (dec.len >= TEXT_PIECE) {
            text_push(t, dec.data, dec.len, false);
            sbuf_reset(&dec);
        }
    }
    text_push(t, sbuf_cstr(&dec), dec.len, true);
    sbuf_free(&dec);
}

static void text_part(const char *d, const struct mime_part *p, struct textout *t)
{
    const char *cs = param_get(p->params, p->nparams, "charset");
    t->cd = charset_open(cs);
    size_t bs = p->body_start, be = p->body_end;
    const char *enc = p->encoding ? p->encoding : "7bit";
    if (ci_streq(enc, "base64")) {
        struct b64state st = {0, 0, false};
        struct sbuf dec = SBUF_INIT(SBUF_NO_MAX);
        for (size_t i = bs; i < be && !t->stopped && !st.done; i += TEXT_PIECE) {
            size_t n = be - i < TEXT_PIECE ? be - i : TEXT_PIECE;
            b64_feed(&st, d + i, n, &dec);
            text_push(t, sbuf_cstr(&dec), dec.len, false);
            sbuf_reset(&dec);
        }
        text_push(t, "", 0, true);
        sbuf_free(&dec);
    } else if (ci_streq(enc, "quoted-printable")) {
        qp_decode_body(t, d, bs, be);
    } else {
        for (size_t i = bs; i < be && !t->stopped; i += TEXT_PIECE) {
            size_t n = be - i < TEXT_PIECE ? be - i : TEXT_PIECE;
            text_push(t, d + i, n, false);
        }
        text_push(t, "", 0, true);
    }
    if (t->carry.len > 0) sbuf_append(&t->buf, replacement, 3);
    sbuf_reset(&t->carry);
    text_flush(t, true);
    if (t->cd != (iconv_t)-1) iconv_close(t->cd);
    t->cd = (iconv_t)-1;
}

static void text_walk(const char *d, const struct mime_part *p, struct textout *t)
{
    if (t->stopped) return;
    if (p->nchildren > 0) {
        for (size_t i = 0; i < p->nchildren && !t->stopped; i++)
            text_walk(d, &p->children[i], t);
        return;
    }
    if (strcmp(p->type, "text") == 0 && p->body_end > p->body_start) text_part(d, p, t);
}

void mime_text_foreach(const struct mime_message *msg,
                       bool (*fn)(const char *text, size_t len, void *ctx), void *ctx)
{
    struct textout t;
    memset(&t, 0, sizeof(t));
    t.fn = fn;
    t.ctx = ctx;
    t.cd = (iconv_t)-1;
    sbuf_init(&t.carry, SBUF_NO_MAX);
    sbuf_init(&t.buf, SBUF_NO_MAX);
    text_walk(msg->data, &msg->root, &t);
    sbuf_free(&t.carry);
    sbuf_free(&t.buf);
}

/* ---- dates (RFC 5322 3.3 and 4.3) ---------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool read_num(struct lex *x, unsigned maxdigits, unsigned *v, unsigned *ndigits)
{
    unsigned n = 0, val = 0;
    while (x->p < x->end && *x->p >= '0' && *x->p <= '9' && n < maxdigits) {
        val = val * 10 + (unsigned)(*x->p - '0');
        x->p++;
        n++;
    }
    if (ndigits) *ndigits = n;
    *v = val;
    return n > 0;
}

static size_t read_alpha(struct lex *x, char *buf, size_t size)
{
    size_t n = 0;
    while (x->p < x->end && ((*x->p >= 'a' && *x->p <= 'z') || (*x->p >= 'A' && *x->p <= 'Z'))) {
        if (n + 1 < size) buf[n] = lc(*x->p);
        n++;
        x->p++;
    }
    buf[n < size ? n : size - 1] = '\0';
    return n;
}

static int zone_by_name(const char *z)
{
    static const struct {
        const char *name;
        int minutes;
    } zones[] = {{"ut", 0},        {"gmt", 0},       {"z", 0},         {"utc", 0},
                 {"est", -5 * 60}, {"edt", -4 * 60}, {"cst", -6 * 60}, {"cdt", -5 * 60},
                 {"mst", -7 * 60}, {"mdt", -6 * 60}, {"pst", -8 * 60}, {"pdt", -7 * 60}};
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
        if (strcmp(z, zones[i].name) == 0) return zones[i].minutes;
    }
    return 0; /* military and unknown zones: -0000 (RFC 5322 4.3) */
}

int mime_parse_date(const char *value, time_t *t_r, int *zone_r)
{
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    static const char days[] = "sunmontuewedthufrisat";
    *t_r = 0;
    if (zone_r) *zone_r = 0;
    if (value == NULL) return -1;
    struct lex x = {value, value + strlen(value)};
    char word[16];
    lex_cfws(&x, NULL);
    if (x.p < x.end && !(*x.p >= '0' && *x.p <= '9')) {
        size_t n = read_alpha(&x, word, sizeof(word));
        if (n < 3) return -1;
        word[3] = '\0';
        const char *f = strstr(days, word);
        if (f == NULL || (f - days) % 3 != 0) return -1;
        lex_cfws(&x, NULL);
        if (x.p < x.end && *x.p == ',') x.p++;
        lex_cfws(&x, NULL);
    }
    unsigned day, year, ydigits, hour, min, sec = 0;
    if (!read_num(&x, 2, &day, NULL)) return -1;
    lex_cfws(&x, NULL);
    if (x.p < x.end && *x.p == '-') x.p++;
    lex_cfws(&x, NULL);
    if (read_alpha(&x, word, sizeof(word)) < 3) return -1;
    word[3] = '\0';
    const char *f = strstr(months, word);
    if (f == NULL || (f - months) % 3 != 0) return -1;
    unsigned month = (unsigned)(f - months) / 3 + 1;
    lex_cfws(&x, NULL);
    if (x.p < x.end && *x.p == '-') x.p++;
    lex_cfws(&x, NULL);
    if (!read_num(&x, 4, &year, &ydigits) || ydigits == 1) return -1;
    if (ydigits == 2)
        year += year < 50 ? 2000 : 1900;
    else if (ydigits == 3)
        year += 1900;
    lex_cfws(&x, NULL);
    if (!read_num(&x, 2, &hour, NULL)) return -1;
    lex_cfws(&x, NULL);
    if (x.p >= x.end || *x.p != ':') return -1;
    x.p++;
    lex_cfws(&x, NULL);
    if (!read_num(&x, 2, &min, NULL)) return -1;
    lex_cfws(&x, NULL);
    if (x.p < x.end && *x.p == ':') {
        x.p++;
        lex_cfws(&x, NULL);
        if (!read_num(&x, 2, &sec, NULL)) return -1;
        lex_cfws(&x, NULL);
    }
    int zone = 0;
    if (x.p < x.end && (*x.p == '+' || *x.p == '-')) {
        int sign = *x.p == '-' ? -1 : 1;
        x.p++;
        unsigned z, zd;
        if (!read_num(&x, 4, &z, &zd) || zd != 4 || z % 100 >= 60) return -1;
        zone = sign * (int)(z / 100 * 60 + z % 100);
    } else if (x.p < x.end) {
        if (read_alpha(&x, word, sizeof(word)) > 0) zone = zone_by_name(word);
    }
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day < 1 || day > mdays[month - 1] || (month == 2 && day == 29 && !leap) || hour > 23 ||
        min > 59 || sec > 60)
        return -1;
    int64_t t = days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec;
    *t_r = (time_t)(t - (int64_t)zone * 60);
    if (zone_r) *zone_r = zone;
    return 0;
}

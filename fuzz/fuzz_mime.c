/* fuzz_mime.c - libFuzzer harness for the MIME parser and its IMAP renderings (mime.c)
 *
 * Each input is a message: mime_parse() on an exactly sized copy, the tree's invariants
 * (offsets inside their parent, in order, line counts, limits), then everything FETCH and
 * SEARCH do with it: ENVELOPE and BODYSTRUCTURE / BODY of the message and of every part,
 * every part number reached through mime_find() (which must give back that part),
 * HEADER.FIELDS and .NOT, header lookups with RFC 2047 decoding, mime_text_foreach(), and
 * mime_parse_date() and mime_decode_words() on the raw input. Every rendering must be
 * well-formed IMAP: parentheses balanced outside strings, quoted strings free of CR, LF,
 * NUL and 8-bit octets, every literal's length right.
 *
 * Run: cmake -DALKAID_FUZZ=ON -DCMAKE_C_COMPILER=clang ...; build/fuzz/fuzz_mime
 *      -max_len=65536 -timeout=10 fuzz/corpus/mime
 *
 * SECURITY: ASan (with -fsanitize=fuzzer,address) sees any read past the input; the
 * timeout catches work that is not linear.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"
#include "sbuf.h"

static void check_imap(const struct sbuf *out)
{
    const char *s = out->data ? out->data : "";
    size_t n = out->len;
    long depth = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '(') {
            depth++;
            i++;
        } else if (c == ')') {
            if (--depth < 0) abort();
            i++;
        } else if (c == '"') {
            i++;
            while (i < n && s[i] != '"') {
                unsigned char q = (unsigned char)s[i];
                if (q == '\r' || q == '\n' || q == 0 || q >= 0x80) abort();
                if (q == '\\') {
                    if (i + 1 >= n || (s[i + 1] != '"' && s[i + 1] != '\\')) abort();
                    i++;
                }
                i++;
            }
            if (i >= n) abort();
            i++;
        } else if (c == '{') {
            size_t len = 0, j = i + 1;
            while (j < n && s[j] >= '0' && s[j] <= '9')
                len = len * 10 + (size_t)(s[j++] - '0');
            if (j + 3 > n || s[j] != '}' || s[j + 1] != '\r' || s[j + 2] != '\n') abort();
            j += 3;
            if (n - j < len || memchr(s + j, '\0', len) != NULL) abort();
            i = j + len;
        } else if (c == '\r' || c == '\n' || c == 0 || c >= 0x80) {
            abort();
        } else {
            i++;
        }
    }
    if (depth != 0) abort();
}

static bool is_multipart(const struct mime_part *p)
{
    return p->nchildren > 0 && !p->is_message;
}

static size_t check_tree(const struct mime_message *m, const struct mime_part *p, size_t lo,
                         size_t hi, unsigned depth)
{
    if (depth > MIME_MAX_DEPTH) abort();
    if (p->header_start < lo || p->header_start > p->header_end || p->header_end != p->body_start ||
        p->body_start > p->body_end || p->body_end > hi)
        abort();
    unsigned lines = 0;
    for (size_t i = p->body_start; i < p->body_end; i++)
        lines += m->data[i] == '\n';
    if (lines != p->lines) abort();
    if (p->type == NULL || p->subtype == NULL) abort();
    if (strcmp(p->type, "multipart") == 0 && p->nchildren == 0) abort();
    if (p->is_message && (p->nchildren != 1 || p->children[0].header_start != p->body_start ||
                          p->children[0].body_end != p->body_end))
        abort();
    if (p->nparams > MIME_MAX_PARAMS || p->ndisp_params > MIME_MAX_PARAMS) abort();
    size_t count = 1, prev = p->body_start;
    for (size_t i = 0; i < p->nchildren; i++) {
        if (p->children[i].header_start < prev) abort();
        prev = p->children[i].body_end;
        count += check_tree(m, &p->children[i], p->body_start, p->body_end, depth + 1);
    }
    return count;
}

static bool text_cb(const char *text, size_t len, void *ctx)
{
    size_t *total = ctx;
    if (len > 0 && text == NULL) abort();
    *total += len;
    return *total > (1u << 24);
}

static void visit(const struct mime_message *m, const struct mime_part *p)
{
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    mime_bodystructure(m, p, true, &out);
    check_imap(&out);
    sbuf_reset(&out);
    mime_bodystructure(m, p, false, &out);
    check_imap(&out);
    if (p->is_message) {
        sbuf_reset(&out);
        mime_envelope(m, p, &out);
        check_imap(&out);
    }
    static const char *const names[] = {"content-type", "SUBJECT", "x"};
    sbuf_reset(&out);
    mime_header_fields(m, p, names, 3, false, &out);
    if (out.len < 2 || memcmp(out.data + out.len - 2, "\r\n", 2) != 0) abort();
    sbuf_reset(&out);
    mime_header_fields(m, p, names, 3, true, &out);
    if (out.len < 2 || memcmp(out.data + out.len - 2, "\r\n", 2) != 0) abort();
    sbuf_free(&out);
    free(mime_header_get(m, p, "content-type", true));
    free(mime_header_raw(m, p, "content-type"));
}

/* Every part number under p (RFC 3501 6.4.5) must lead back to its part. */
static void walk(const struct mime_message *m, const struct mime_part *p, const char *num,
                 bool at_message)
{
    char sub[512];
    if (is_multipart(p)) {
        for (size_t i = 0; i < p->nchildren; i++) {
            const struct mime_part *c = &p->children[i];
            snprintf(sub, sizeof(sub), "%s%s%zu", num, num[0] ? "." : "", i + 1);
            if (mime_find(m, sub) != c) abort();
            visit(m, c);
            if (c->is_message)
                walk(m, &c->children[0], sub, true);
            else if (is_multipart(c))
                walk(m, c, sub, false);
        }
    } else if (at_message) {
        snprintf(sub, sizeof(sub), "%s%s1", num, num[0] ? "." : "");
        if (mime_find(m, sub) != p) abort();
        snprintf(sub + strlen(sub), sizeof(sub) - strlen(sub), ".%zu", (size_t)2);
        if (!p->is_message && mime_find(m, sub) != NULL) abort();
        sub[strlen(sub) - 2] = '\0';
        if (p->is_message) walk(m, &p->children[0], sub, true);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    if (copy == NULL) return 0;
    memcpy(copy, data, size);

    struct mime_message m;
    mime_parse(&m, copy, size);
    if (m.nparts > MIME_MAX_PARTS) abort();
    if (check_tree(&m, &m.root, 0, size, 0) != m.nparts) abort();
    if (mime_find(&m, "") != &m.root) abort();
    if (mime_find(&m, "0") != NULL || mime_find(&m, "1.") != NULL) abort();

    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    mime_envelope(&m, &m.root, &out);
    check_imap(&out);
    sbuf_free(&out);
    visit(&m, &m.root);
    walk(&m, &m.root, "", true);

    size_t total = 0;
    mime_text_foreach(&m, text_cb, &total);
    free(mime_header_get(&m, &m.root, "subject", false));
    mime_free(&m);

    char *words = mime_decode_words(copy, size);
    free(words);
    char *str = malloc(size + 1);
    if (str != NULL) {
        memcpy(str, data, size);
        str[size] = '\0';
        time_t t;
        int zone;
        if (mime_parse_date(str, &t, &zone) == 0 && (zone < -5999 || zone > 5999)) abort();
        free(str);
    }
    free(copy);
    return 0;
}

/* fuzz_imap_parser.c - libFuzzer target for the IMAP command parser (imap_parser.c)
 *
 * The first three octets choose the limits, the sink's behaviour and the chunking; the
 * rest is fed in chunks whose sizes come from a generator seeded by the first octet.
 * Checked: a feed never consumes more than it was given and consumes all of it unless it
 * stops with a status; a CONTINUE leaves the parser busy; a DONE command has a valid tag
 * and an upper-case name and keeps every limit (arguments, depth, text, in-memory
 * literals, sink literal size) with arguments of the right shape (atoms without
 * controls or 8-bit, quoted strings UTF-8 without CR/LF/NUL, literals without NUL unless
 * literal8, NUL-terminated text); an ERROR has a "BAD "/"NO " text. The sink sees begin()
 * only after wants() said yes, and never more octets than announced. Astrings are run
 * through mutf7 (a valid name must round-trip) and atoms through the sequence-set parser.
 *
 * SECURITY: a failed check aborts, which libFuzzer reports with the input. Each chunk is
 * copied into an exactly-sized buffer so that ASan sees a read past its end; run with
 * -malloc_limit_mb to catch an allocation the limits should have prevented.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parser.h"
#include "mutf7.h"
#include "sbuf.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fctx {
    struct imap_limits limits;
    bool refuse, write_fails, wants_all;
    bool wanted; /* wants() just said yes */
    bool begun;
    uint64_t size, written;
};

struct totals {
    size_t args, text;
    uint64_t literal;
    unsigned sunk;
};

static bool sink_wants(void *vctx, const struct imap_command *cmd, size_t nargs, uint64_t size)
{
    struct fctx *c = vctx;
    CHECK(cmd != NULL && nargs == cmd->nargs);
    CHECK(cmd->tag[0] != '\0' && cmd->name[0] != '\0');
    c->wanted = c->wants_all || (strcmp(cmd->name, "APPEND") == 0 && nargs >= 1);
    return c->wanted;
}

static int sink_begin(void *vctx, uint64_t size)
{
    struct fctx *c = vctx;
    CHECK(c->wanted);
    CHECK(size <= c->limits.max_sink_literal);
    if (c->begun) CHECK(c->written == c->size); /* the previous sunk literal was complete */
    c->wanted = false;
    if (c->refuse) return -1;
    c->begun = true;
    c->size = size;
    c->written = 0;
    return 0;
}

static int sink_write(void *vctx, const char *d, size_t len)
{
    struct fctx *c = vctx;
    CHECK(c->begun);
    CHECK(len > 0 && c->written + len <= c->size);
    c->written += len;
    for (size_t i = 0; i < len; i++)
        (void)*(volatile const char *)(d + i); /* ASan checks the piece is readable */
    return c->write_fails ? -1 : 0;
}

/* UTF-8 without NUL: what mutf7_from_utf8() accepts. */
static bool valid_utf8(const char *s, size_t len)
{
    struct sbuf m = SBUF_INIT(SBUF_NO_MAX);
    bool ok = mutf7_from_utf8(s, len, &m) == 0;
    sbuf_free(&m);
    return ok;
}

static void check_astring(const char *s, size_t len)
{
    struct sbuf u = SBUF_INIT(SBUF_NO_MAX), m = SBUF_INIT(SBUF_NO_MAX);
    bool valid = mutf7_valid(s, len);
    CHECK((mutf7_to_utf8(s, len, &u) == 0) == valid);
    if (valid) {
        CHECK(mutf7_from_utf8(sbuf_cstr(&u), u.len, &m) == 0);
        CHECK(m.len == len && memcmp(sbuf_cstr(&m), s, len) == 0);
    }
    sbuf_free(&u);
    sbuf_free(&m);
}

static void check_seqset(const char *s)
{
    struct imap_seqset set;
    if (imap_seqset_parse(s, &set) < 0) {
        CHECK(set.ranges == NULL && set.nranges == 0);
        return;
    }
    CHECK(set.nranges > 0 && set.nranges <= IMAP_SEQSET_MAX_RANGES);
    for (size_t i = 0; i < set.nranges; i++) {
        uint32_t lo = set.ranges[i].lo, hi = set.ranges[i].hi;
        bool star = lo == IMAP_SEQ_STAR || hi == IMAP_SEQ_STAR;
        CHECK(star || lo <= hi);
        /* with '*' as the largest possible value every range contains its ends */
        CHECK(imap_seqset_contains(&set, lo == IMAP_SEQ_STAR ? UINT32_MAX : lo, UINT32_MAX));
    }
    imap_seqset_free(&set);
}

static void check_arg(const struct imap_arg *a, unsigned depth, const struct fctx *c,
                      struct totals *t)
{
    t->args++;
    switch (a->type) {
    case IMAP_ARG_ATOM:
    case IMAP_ARG_NIL:
        CHECK(!a->literal && !a->sunk && !a->literal8);
        CHECK(a->str != NULL && a->len > 0 && strlen(a->str) == a->len);
        for (size_t i = 0; i < a->len; i++) {
            unsigned char ch = (unsigned char)a->str[i];
            CHECK(ch >= 0x20 && ch < 0x7f);
        }
        CHECK(a->str[0] != ' ' && a->str[0] != '(' && a->str[0] != ')' && a->str[0] != '"' &&
              a->str[0] != '{');
        if (a->type == IMAP_ARG_NIL) CHECK(a->len == 3);
        t->text += a->len;
        if (a->type == IMAP_ARG_ATOM) {
            CHECK(imap_arg_astring(a) == a->str);
            CHECK(imap_arg_is_atom(a, a->str));
            check_astring(a->str, a->len);
            check_seqset(a->str);
        } else {
            CHECK(imap_arg_astring(a) == NULL);
        }
        break;
    case IMAP_ARG_STRING:
        if (a->sunk) {
            CHECK(a->literal && a->str == NULL && depth == 0);
            CHECK(a->len <= c->limits.max_sink_literal);
            CHECK(imap_arg_astring(a) == NULL);
            t->sunk++;
            break;
        }
        CHECK(a->str != NULL && a->str[a->len] == '\0');
        if (a->literal) {
            t->literal += a->len;
            if (!a->literal8) CHECK(strlen(a->str) == a->len);
        } else {
            CHECK(!a->literal8);
            CHECK(strlen(a->str) == a->len);
            CHECK(memchr(a->str, '\r', a->len) == NULL && memchr(a->str, '\n', a->len) == NULL);
            CHECK(valid_utf8(a->str, a->len));
            t->text += a->len;
        }
        if (a->literal8) {
            CHECK(imap_arg_astring(a) == NULL);
        } else {
            CHECK(imap_arg_astring(a) == a->str);
            check_astring(a->str, a->len);
        }
        break;
    case IMAP_ARG_LIST:
        CHECK(depth < c->limits.max_depth);
        CHECK(a->str == NULL && (a->nitems == 0 || a->items != NULL));
        CHECK(imap_arg_astring(a) == NULL);
        for (size_t i = 0; i < a->nitems; i++)
            check_arg(&a->items[i], depth + 1, c, t);
        break;
    default: CHECK(0);
    }
}

static bool tag_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && !strchr("(){%*\"\\+", ch);
}

static void check_command(const struct imap_command *cmd, const struct fctx *c)
{
    struct totals t = {0, 0, 0, 0};
    size_t tl = strlen(cmd->tag), nl = strlen(cmd->name);
    CHECK(tl > 0 && tl <= IMAP_TAG_MAX);
    for (size_t i = 0; i < tl; i++)
        CHECK(tag_char((unsigned char)cmd->tag[i]));
    CHECK(nl > 0 && nl < sizeof(cmd->name));
    for (size_t i = 0; i < nl; i++)
        CHECK(cmd->name[i] >= 'A' && cmd->name[i] <= 'Z');
    CHECK(cmd->nargs == 0 || cmd->args != NULL);
    for (size_t i = 0; i < cmd->nargs; i++)
        check_arg(&cmd->args[i], 0, c, &t);
    CHECK(t.args <= c->limits.max_args);
    CHECK(t.text + tl + nl <= c->limits.max_line);
    CHECK(t.literal <= c->limits.max_literal);
    CHECK(t.sunk == 0 || c->limits.max_sink_literal > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t lines[] = {8, 40, 300, 65536};
    static const uint64_t literals[] = {0, 5, 100, 65536};
    static const uint64_t sinks[] = {0, 10, 1000, 1 << 20};
    static const unsigned depths[] = {0, 1, 3, 16};
    static const unsigned nargs[] = {0, 2, 10, 10000};

    if (size < 3) return 0;
    uint8_t seed = data[0], sel = data[1], flags = data[2];
    data += 3;
    size -= 3;

    struct fctx c = {{lines[sel & 3], literals[sel >> 2 & 3], sinks[sel >> 4 & 3],
                      depths[sel >> 6 & 3], nargs[flags & 3]},
                     flags & 4,
                     flags & 8,
                     flags & 16,
                     false,
                     false,
                     0,
                     0};
    bool reset = flags & 32, with_sink = !(flags & 64), small = flags & 128;
    struct imap_literal_sink sink = {sink_wants, sink_begin, sink_write, &c};
    struct imap_parser *p = imap_parser_new(&c.limits);
    if (with_sink) imap_parser_set_sink(p, &sink);

    uint32_t rng = seed * 2654435761u + 1;
    size_t pos = 0, consumed = 0;
    while (pos < size) {
        rng = rng * 1103515245u + 12345u;
        size_t n = 1 + (rng >> 16) % (small ? 4 : 97);
        if (n > size - pos) n = size - pos;
        char *chunk = malloc(n);
        CHECK(chunk != NULL);
        memcpy(chunk, data + pos, n);
        size_t off = 0;
        while (off < n) {
            size_t used = (size_t)-1;
            enum imap_parse_status st = imap_parser_feed(p, chunk + off, n - off, &used);
            CHECK(used <= n - off);
            off += used;
            consumed += used;
            switch (st) {
            case IMAP_PARSE_MORE: CHECK(off == n); break;
            case IMAP_PARSE_CONTINUE:
                CHECK(used > 0);
                CHECK(imap_parser_busy(p));
                CHECK(imap_parser_command(p) == NULL);
                break;
            case IMAP_PARSE_DONE: {
                CHECK(used > 0);
                CHECK(!imap_parser_busy(p));
                const struct imap_command *cmd = imap_parser_command(p);
                CHECK(cmd != NULL);
                CHECK(strcmp(imap_parser_error(p), "") == 0);
                CHECK(strcmp(imap_parser_tag(p), cmd->tag) == 0);
                check_command(cmd, &c);
                if (c.begun) CHECK(c.written == c.size);
                c.begun = false;
                if (reset) imap_parser_reset(p);
                break;
            }
            case IMAP_PARSE_ERROR: {
                CHECK(used > 0);
                CHECK(!imap_parser_busy(p));
                CHECK(imap_parser_command(p) == NULL);
                const char *e = imap_parser_error(p), *tag = imap_parser_tag(p);
                CHECK(strncmp(e, "BAD ", 4) == 0 || strncmp(e, "NO ", 3) == 0);
                CHECK(strlen(tag) <= IMAP_TAG_MAX);
                for (const char *q = tag; *q; q++)
                    CHECK(tag_char((unsigned char)*q));
                c.begun = false;
                c.wanted = false;
                break;
            }
            default: CHECK(0);
            }
        }
        free(chunk);
        pos += n;
    }
    CHECK(consumed == size);
    imap_parser_free(&p);
    CHECK(p == NULL);
    return 0;
}

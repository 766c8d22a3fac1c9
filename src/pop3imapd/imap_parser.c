/* imap_parser.c - IMAP command syntax (RFC 3501 9, LITERAL+ RFC 7888), byte-driven
 *
 * A state machine over single octets of command text; literal octets are taken in
 * whole pieces (copied into their buffer, handed to the sink, or discarded). The parts:
 *
 *   tag       1*<ASTRING-CHAR except "+">, at most IMAP_TAG_MAX octets
 *   name      letters, upper-cased; "UID" before the real name sets uid
 *   arguments separated by spaces (runs of spaces are accepted, and spaces before the
 *             line end): atoms (ATOM-CHAR plus the list wildcards "%" "*", "]" and "\"
 *             for flags; "[" runs to the matching "]" across spaces, parentheses and
 *             quoted strings), "NIL" (any case), quoted strings (escapes \" and \\ only,
 *             UTF-8, no CR, LF or NUL), literals {n} {n+} ~{n} ~{n+} (no NUL unless ~),
 *             lists ( ... ) on an explicit stack
 *   line end  CRLF, or a bare LF
 *
 * Every memory block of a command is recorded in one array (allocs) and freed from it,
 * so nothing walks the argument tree recursively. An error frees the partial command at
 * once (keeping the tag) and switches to skipping: the rest of the command is read up to
 * its line end; a line that ends in "{n+}" announces a literal the client sends anyway,
 * and its n octets are discarded before skipping on. That "{n+}" tracking runs over all
 * command text, so it holds whatever state the error happened in.
 *
 * SECURITY: every byte is from the network. Limits are checked before allocation: the
 * text of a command (counted octet by octet, literals excluded) against max_line, each
 * argument against max_args, each "(" against max_depth, a literal's announced size
 * (saturating at UINT64_MAX while its digits are read) against max_sink_literal or what
 * is left of max_literal, which bounds all of a command's in-memory literals together.
 * A refused synchronizing literal gets no continuation; a refused non-synchronizing one
 * is read and discarded, so its octets are never taken for commands.
 */
#include "imap_parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sbuf.h"
#include "xalloc.h"

enum state {
    ST_TAG,        /* reading the tag (nothing read yet: a new command) */
    ST_NAME_START, /* after the tag (or "UID"): spaces, then the name */
    ST_NAME,       /* reading the command name */
    ST_ARGS,       /* expecting an argument, a space, ')' or the line end */
    ST_AFTER,      /* after a string, literal or list: a space, ')' or the line end */
    ST_ATOM,       /* reading an atom (bracket says whether inside "[...]") */
    ST_TILDE,      /* '~' at an argument's start: literal8 or an atom */
    ST_QUOTED,     /* inside a quoted string */
    ST_QUOTED_ESC, /* after '\' in a quoted string */
    ST_LIT_NUM,    /* after '{': digits */
    ST_LIT_PLUS,   /* after "{n+" */
    ST_LIT_CLOSE,  /* after "{n}" or "{n+}" */
    ST_LIT_CR,     /* after "{n}\r" */
    ST_LIT_MEM,    /* literal octets into memory */
    ST_LIT_SINK,   /* literal octets to the sink */
    ST_CR,         /* CR at the line end */
    ST_DISCARD,    /* a refused literal's octets, then ST_SKIP */
    ST_SKIP,       /* skipping the rest of a failed command */
    ST_DONE,
    ST_ERROR,
};

/* Where the text just read stands in a "{n}" / "{n+}" literal announcement. */
enum lit_track { LT_NONE, LT_NUM, LT_PLUS, LT_CLOSE, LT_CR };

enum step {
    STEP_NEXT,  /* octet consumed */
    STEP_AGAIN, /* state changed: look at the same octet again */
    STEP_CONTINUE,
    STEP_DONE,
    STEP_ERROR,
};

struct level {
    struct imap_arg *items;
    size_t n, cap;
};

struct imap_parser {
    struct imap_limits limits, next_limits;
    bool have_sink;
    struct imap_literal_sink sink;

    enum state state;
    bool started; /* an octet of this command was consumed */
    struct imap_command cmd;
    size_t tag_len, name_len;
    const char *error;

    struct level *levels; /* levels[0] is cmd.args */
    size_t levels_cap;
    unsigned depth;
    void **allocs; /* every block of the command but the level arrays in use */
    size_t nallocs, allocs_cap;

    size_t line_len;      /* command text so far */
    size_t total_args;    /* arguments started, all levels */
    uint64_t mem_literal; /* octets of in-memory literals so far */

    struct sbuf tok; /* the atom or quoted string being read */
    bool bracket, bracket_quote, bracket_esc;
    unsigned u8_need; /* UTF-8 continuation octets still due in a quoted string */
    unsigned char u8_lo, u8_hi;

    uint64_t lit_size, lit_left;
    bool lit_digits, lit_plus, lit8, lit_sunk;
    char *lit_buf;

    enum lit_track lt; /* over all command text, for skipping */
    uint64_t lt_num;
    bool lt_digits, lt_plus;
};

/* ---- memory of a command ---- */

static void *keep(struct imap_parser *p, void *block)
{
    if (p->nallocs == p->allocs_cap) {
        p->allocs_cap = p->allocs_cap ? p->allocs_cap * 2 : 16;
        p->allocs = xreallocarray(p->allocs, p->allocs_cap, sizeof(*p->allocs));
    }
    p->allocs[p->nallocs++] = block;
    return block;
}

static void free_args(struct imap_parser *p)
{
    for (size_t i = 0; i < p->nallocs; i++)
        free(p->allocs[i]);
    xfree(p->allocs);
    p->nallocs = p->allocs_cap = 0;
    for (size_t i = 0; i < p->levels_cap; i++) {
        xfree(p->levels[i].items);
        p->levels[i].n = p->levels[i].cap = 0;
    }
    p->depth = 0;
    p->cmd.args = NULL;
    p->cmd.nargs = 0;
    p->lit_buf = NULL;
    sbuf_free(&p->tok);
}

/* A new zeroed argument at the current level. */
static struct imap_arg *new_arg(struct imap_parser *p)
{
    struct level *l = &p->levels[p->depth];
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->items = xreallocarray(l->items, l->cap, sizeof(*l->items));
    }
    struct imap_arg *a = &l->items[l->n++];
    memset(a, 0, sizeof(*a));
    if (p->depth == 0) {
        p->cmd.args = l->items;
        p->cmd.nargs = l->n;
    }
    return a;
}

static void push_level(struct imap_parser *p)
{
    if (p->depth + 1 >= p->levels_cap) {
        size_t cap = p->levels_cap * 2;
        p->levels = xreallocarray(p->levels, cap, sizeof(*p->levels));
        memset(p->levels + p->levels_cap, 0, (cap - p->levels_cap) * sizeof(*p->levels));
        p->levels_cap = cap;
    }
    p->depth++;
}

static void pop_level(struct imap_parser *p)
{
    struct level child = p->levels[p->depth];
    memset(&p->levels[p->depth], 0, sizeof(child));
    p->depth--;
    if (child.items != NULL) keep(p, child.items);
    struct imap_arg *a = new_arg(p);
    a->type = IMAP_ARG_LIST;
    a->items = child.items;
    a->nitems = child.n;
}

/* ---- outcomes ---- */

/* Records the first error, drops the partial command and skips the rest of it; the
 * current octet is looked at again in ST_SKIP. */
static enum step fail(struct imap_parser *p, const char *msg)
{
    if (p->error == NULL) p->error = msg;
    if (p->state == ST_TAG) {
        p->tag_len = 0;
        p->cmd.tag[0] = '\0';
    }
    free_args(p);
    p->state = ST_SKIP;
    return STEP_AGAIN;
}

/* An error found at the command's line end: the command is over. */
static enum step fail_end(struct imap_parser *p, const char *msg)
{
    fail(p, msg);
    p->state = ST_ERROR;
    return STEP_ERROR;
}

/* A refused literal, at the LF of its announcement. */
static enum step refuse_literal(struct imap_parser *p, const char *msg)
{
    if (!p->lit_plus) return fail_end(p, msg); /* no continuation: nothing follows */
    fail(p, msg);
    p->state = ST_DISCARD;
    p->lit_left = p->lit_size;
    return STEP_NEXT;
}

static const char *bad_octet(unsigned char c, const char *otherwise)
{
    if (c == 0) return "BAD NUL octet in command";
    if (c >= 0x80) return "BAD 8-bit octet outside a quoted string";
    if (c < 0x20 || c == 0x7f) return "BAD Control character in command";
    return otherwise;
}

static enum step finish_line(struct imap_parser *p)
{
    if (p->tag_len == 0) return fail_end(p, "BAD Empty command line");
    if (p->name_len == 0)
        return fail_end(p, p->cmd.uid ? "BAD Missing command after UID" : "BAD Missing command");
    if (p->depth > 0) return fail_end(p, "BAD Missing ')'");
    p->state = ST_DONE;
    return STEP_DONE;
}

/* ---- arguments ---- */

static int count_arg(struct imap_parser *p)
{
    if (p->total_args >= p->limits.max_args) return -1;
    p->total_args++;
    return 0;
}

static enum step tok_put(struct imap_parser *p, unsigned char c)
{
    if (sbuf_putc(&p->tok, (char)c) < 0) return fail(p, "BAD Command line too long");
    return STEP_NEXT;
}

static void finish_text(struct imap_parser *p, enum imap_arg_type type)
{
    struct imap_arg *a = new_arg(p);
    a->type = type;
    a->len = p->tok.len;
    a->str = keep(p, xmemdup(sbuf_cstr(&p->tok), p->tok.len + 1));
    sbuf_reset(&p->tok);
}

static void finish_atom(struct imap_parser *p)
{
    bool nil = p->tok.len == 3 && strcasecmp(p->tok.data, "NIL") == 0;
    finish_text(p, nil ? IMAP_ARG_NIL : IMAP_ARG_ATOM);
}

static void finish_literal(struct imap_parser *p)
{
    struct imap_arg *a = new_arg(p);
    a->type = IMAP_ARG_STRING;
    a->literal = true;
    a->literal8 = p->lit8;
    a->sunk = p->lit_sunk;
    a->len = (size_t)p->lit_size;
    if (!p->lit_sunk) {
        p->lit_buf[p->lit_size] = '\0';
        a->str = p->lit_buf;
    }
    p->lit_buf = NULL;
    p->state = ST_AFTER;
}

static void start_literal(struct imap_parser *p, bool lit8)
{
    p->lit8 = lit8;
    p->lit_size = 0;
    p->lit_digits = false;
    p->lit_plus = false;
    p->state = ST_LIT_NUM;
}

/* The LF of "{n}\r\n": decides where the literal goes. */
static enum step literal_announced(struct imap_parser *p)
{
    uint64_t size = p->lit_size;

    if (p->depth == 0 && p->have_sink && p->limits.max_sink_literal > 0 &&
        p->sink.wants(p->sink.ctx, &p->cmd, p->cmd.nargs, size)) {
        if (size > p->limits.max_sink_literal || size > SIZE_MAX)
            return refuse_literal(p, "NO [TOOBIG] Message too large");
        if (p->sink.begin(p->sink.ctx, size) < 0)
            return refuse_literal(p, "NO [TOOBIG] Message too large");
        p->lit_sunk = true;
        p->state = ST_LIT_SINK;
    } else {
        uint64_t room =
            p->limits.max_literal > p->mem_literal ? p->limits.max_literal - p->mem_literal : 0;
        if (size > room || size >= SIZE_MAX) return refuse_literal(p, "BAD Literal too large");
        p->mem_literal += size;
        p->lit_buf = keep(p, xmalloc((size_t)size + 1));
        p->lit_sunk = false;
        p->state = ST_LIT_MEM;
    }
    p->lit_left = size;
    if (size == 0) finish_literal(p);
    return p->lit_plus ? STEP_NEXT : STEP_CONTINUE;
}

/* ---- character classes ---- */

/* RFC 3501 ATOM-CHAR plus list-wildcards, "]" and "\"; '[' is handled by the caller. */
static bool is_atom_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
}

/* RFC 3501 tag: ASTRING-CHAR except "+". */
static bool is_tag_char(unsigned char c)
{
    return is_atom_char(c) && c != '%' && c != '*' && c != '\\' && c != '+';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* ---- the octet-by-octet part ---- */

static enum step step_quoted(struct imap_parser *p, unsigned char c)
{
    if (p->u8_need > 0) {
        if (c < p->u8_lo || c > p->u8_hi) return fail(p, "BAD Invalid UTF-8 in quoted string");
        p->u8_need--;
        p->u8_lo = 0x80;
        p->u8_hi = 0xbf;
        return tok_put(p, c);
    }
    if (c >= 0x80) {
        p->u8_lo = 0x80;
        p->u8_hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            p->u8_need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            p->u8_need = 2;
            if (c == 0xe0) p->u8_lo = 0xa0; /* overlong */
            if (c == 0xed) p->u8_hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            p->u8_need = 3;
            if (c == 0xf0) p->u8_lo = 0x90; /* overlong */
            if (c == 0xf4) p->u8_hi = 0x8f; /* past U+10FFFF */
        } else {
            return fail(p, "BAD Invalid UTF-8 in quoted string");
        }
        return tok_put(p, c);
    }
    switch (c) {
    case '"':
        finish_text(p, IMAP_ARG_STRING);
        p->state = ST_AFTER;
        return STEP_NEXT;
    case '\\': p->state = ST_QUOTED_ESC; return STEP_NEXT;
    case '\r':
    case '\n': return fail(p, "BAD Unterminated quoted string");
    case '\0': return fail(p, "BAD NUL octet in command");
    default: return tok_put(p, c);
    }
}

static enum step step_atom(struct imap_parser *p, unsigned char c)
{
    if (p->bracket_quote) {
        if (p->bracket_esc) {
            if (c != '"' && c != '\\') return fail(p, "BAD Invalid escape in quoted string");
            p->bracket_esc = false;
        } else if (c == '\\') {
            p->bracket_esc = true;
        } else if (c == '"') {
            p->bracket_quote = false;
        } else if (c == '\r' || c == '\n') {
            return fail(p, "BAD Unterminated quoted string");
        } else if (c < 0x20 || c >= 0x7f) {
            return fail(p, bad_octet(c, ""));
        }
        return tok_put(p, c);
    }
    if (p->bracket) {
        if (c == ']')
            p->bracket = false;
        else if (c == '"')
            p->bracket_quote = true;
        else if (c == '[')
            return fail(p, "BAD Invalid characters in atom");
        else if (c == '\r' || c == '\n')
            return fail(p, "BAD Missing ']'");
        else if (c < 0x20 || c >= 0x7f)
            return fail(p, bad_octet(c, ""));
        return tok_put(p, c);
    }
    if (c == ' ' || c == ')' || c == '\r' || c == '\n') {
        finish_atom(p);
        p->state = ST_ARGS;
        return STEP_AGAIN;
    }
    if (c == '[')
        p->bracket = true;
    else if (!is_atom_char(c))
        return fail(p, bad_octet(c, "BAD Invalid characters in atom"));
    return tok_put(p, c);
}

static enum step step_args(struct imap_parser *p, unsigned char c)
{
    switch (c) {
    case ' ': return STEP_NEXT;
    case '\r': p->state = ST_CR; return STEP_NEXT;
    case '\n': return finish_line(p);
    case ')':
        if (p->depth == 0) return fail(p, "BAD Unexpected ')'");
        pop_level(p);
        p->state = ST_AFTER;
        return STEP_NEXT;
    default: break;
    }
    if (c != '(' && c != '"' && c != '{' && c != '[' && !is_atom_char(c))
        return fail(p, bad_octet(c, "BAD Invalid characters in atom"));
    if (count_arg(p) < 0) return fail(p, "BAD Too many arguments");
    switch (c) {
    case '(':
        if (p->depth >= p->limits.max_depth) return fail(p, "BAD Lists nested too deeply");
        push_level(p);
        return STEP_NEXT;
    case '"':
        sbuf_reset(&p->tok);
        p->u8_need = 0;
        p->state = ST_QUOTED;
        return STEP_NEXT;
    case '{': start_literal(p, false); return STEP_NEXT;
    case '~': p->state = ST_TILDE; return STEP_NEXT;
    default:
        sbuf_reset(&p->tok);
        p->bracket = p->bracket_quote = p->bracket_esc = false;
        p->state = ST_ATOM;
        return STEP_AGAIN;
    }
}

static enum step step(struct imap_parser *p, unsigned char c)
{
    switch (p->state) {
    case ST_TAG:
        if (is_tag_char(c)) {
            if (p->tag_len >= IMAP_TAG_MAX) return fail(p, "BAD Tag too long");
            p->cmd.tag[p->tag_len++] = (char)c;
            p->cmd.tag[p->tag_len] = '\0';
            return STEP_NEXT;
        }
        if (c == ' ' && p->tag_len == 0) return fail(p, "BAD Missing tag");
        if (c == ' ' || c == '\r' || c == '\n') {
            p->state = ST_NAME_START;
            return STEP_AGAIN;
        }
        return fail(p, bad_octet(c, "BAD Invalid characters in tag"));

    case ST_NAME_START:
        if (c == ' ') return STEP_NEXT;
        if (c == '\r') {
            p->state = ST_CR;
            return STEP_NEXT;
        }
        if (c == '\n') return finish_line(p);
        if (!is_alpha(c)) return fail(p, bad_octet(c, "BAD Invalid command name"));
        p->state = ST_NAME;
        return STEP_AGAIN;

    case ST_NAME:
        if (is_alpha(c)) {
            if (p->name_len + 1 >= sizeof(p->cmd.name)) return fail(p, "BAD Command name too long");
            p->cmd.name[p->name_len++] = (char)(c >= 'a' ? c - 'a' + 'A' : c);
            p->cmd.name[p->name_len] = '\0';
            return STEP_NEXT;
        }
        if (c != ' ' && c != '\r' && c != '\n')
            return fail(p, bad_octet(c, "BAD Invalid command name"));
        if (!p->cmd.uid && strcmp(p->cmd.name, "UID") == 0) {
            p->cmd.uid = true;
            p->name_len = 0;
            p->cmd.name[0] = '\0';
            p->state = ST_NAME_START;
        } else {
            p->state = ST_ARGS;
        }
        return STEP_AGAIN;

    case ST_ARGS: return step_args(p, c);

    case ST_AFTER:
        if (c == ' ') {
            p->state = ST_ARGS;
            return STEP_NEXT;
        }
        if (c == ')' || c == '\r' || c == '\n') {
            p->state = ST_ARGS;
            return STEP_AGAIN;
        }
        return fail(p, bad_octet(c, "BAD Missing space after argument"));

    case ST_ATOM: return step_atom(p, c);

    case ST_TILDE:
        if (c == '{') {
            start_literal(p, true);
            return STEP_NEXT;
        }
        sbuf_reset(&p->tok);
        p->bracket = p->bracket_quote = p->bracket_esc = false;
        p->state = ST_ATOM;
        tok_put(p, '~'); /* on failure the state is ST_SKIP */
        return STEP_AGAIN;

    case ST_QUOTED: return step_quoted(p, c);

    case ST_QUOTED_ESC:
        if (c != '"' && c != '\\') return fail(p, "BAD Invalid escape in quoted string");
        p->state = ST_QUOTED;
        return tok_put(p, c);

    case ST_LIT_NUM:
        if (c >= '0' && c <= '9') {
            unsigned d = (unsigned)(c - '0');
            if (p->lit_size > (UINT64_MAX - d) / 10)
                p->lit_size = UINT64_MAX; /* refused as too large */
            else
                p->lit_size = p->lit_size * 10 + d;
            p->lit_digits = true;
            return STEP_NEXT;
        }
        if (p->lit_digits && c == '+') {
            p->state = ST_LIT_PLUS;
            return STEP_NEXT;
        }
        if (p->lit_digits && c == '}') {
            p->state = ST_LIT_CLOSE;
            return STEP_NEXT;
        }
        return fail(p, "BAD Invalid literal");

    case ST_LIT_PLUS:
        if (c != '}') return fail(p, "BAD Invalid literal");
        p->lit_plus = true;
        p->state = ST_LIT_CLOSE;
        return STEP_NEXT;

    case ST_LIT_CLOSE:
        if (c == '\r') {
            p->state = ST_LIT_CR;
            return STEP_NEXT;
        }
        if (c == '\n') return literal_announced(p);
        return fail(p, bad_octet(c, "BAD Missing CRLF after literal"));

    case ST_LIT_CR:
        if (c == '\n') return literal_announced(p);
        return fail(p, bad_octet(c, "BAD Missing CRLF after literal"));

    case ST_CR:
        if (c == '\n') return finish_line(p);
        return fail(p, "BAD CR without LF");

    case ST_SKIP:
        if (c != '\n') return STEP_NEXT;
        if ((p->lt == LT_CLOSE || p->lt == LT_CR) && p->lt_plus) {
            p->state = ST_DISCARD; /* "{n+}": the client sends it whatever we say */
            p->lit_left = p->lt_num;
            return STEP_NEXT;
        }
        p->state = ST_ERROR;
        return STEP_ERROR;

    default: /* literal octets, ST_DONE, ST_ERROR: not reached */
        return fail(p, "BAD Internal parser error");
    }
}

/* Follows "{digits[+]}[CR]" over the command text, whatever the parser's state. */
static void track_literal(struct imap_parser *p, unsigned char c)
{
    if (c == '{') {
        p->lt = LT_NUM;
        p->lt_num = 0;
        p->lt_digits = false;
    } else if (c >= '0' && c <= '9' && p->lt == LT_NUM) {
        unsigned d = (unsigned)(c - '0');
        p->lt_num = p->lt_num > (UINT64_MAX - d) / 10 ? UINT64_MAX : p->lt_num * 10 + d;
        p->lt_digits = true;
    } else if (c == '+' && p->lt == LT_NUM && p->lt_digits) {
        p->lt = LT_PLUS;
    } else if (c == '}' && ((p->lt == LT_NUM && p->lt_digits) || p->lt == LT_PLUS)) {
        p->lt_plus = p->lt == LT_PLUS;
        p->lt = LT_CLOSE;
    } else if (c == '\r' && p->lt == LT_CLOSE) {
        p->lt = LT_CR;
    } else {
        p->lt = LT_NONE;
    }
}

/* Takes up to len octets of a literal's body from in; returns how many. */
static size_t literal_octets(struct imap_parser *p, const char *in, size_t len)
{
    size_t n = p->lit_left < len ? (size_t)p->lit_left : len;

    if (p->state == ST_DISCARD) {
        p->lit_left -= n;
        if (p->lit_left == 0) {
            p->state = ST_SKIP;
            p->lt = LT_NONE;
        }
        return n;
    }
    if (!p->lit8 && memchr(in, '\0', n) != NULL) {
        fail(p, "BAD NUL octet in literal");
        p->state = ST_DISCARD;
        return 0;
    }
    if (p->state == ST_LIT_MEM) {
        memcpy(p->lit_buf + (p->lit_size - p->lit_left), in, n);
    } else if (p->sink.write(p->sink.ctx, in, n) < 0) {
        p->lit_left -= n;
        fail(p, "NO Cannot store the message");
        p->state = ST_DISCARD;
        return n;
    }
    p->lit_left -= n;
    if (p->lit_left == 0) finish_literal(p);
    return n;
}

static void reset_command(struct imap_parser *p)
{
    free_args(p);
    p->limits = p->next_limits;
    sbuf_init(&p->tok, p->limits.max_line ? p->limits.max_line : 1);
    p->state = ST_TAG;
    p->started = false;
    memset(p->cmd.tag, 0, sizeof(p->cmd.tag));
    memset(p->cmd.name, 0, sizeof(p->cmd.name));
    p->cmd.uid = false;
    p->tag_len = p->name_len = 0;
    p->error = NULL;
    p->line_len = 0;
    p->total_args = 0;
    p->mem_literal = 0;
    p->bracket = p->bracket_quote = p->bracket_esc = false;
    p->u8_need = 0;
    p->lit_left = 0;
    p->lt = LT_NONE;
}

enum imap_parse_status imap_parser_feed(struct imap_parser *p, const char *in, size_t len,
                                        size_t *used_r)
{
    size_t i = 0;

    if (len > 0 && (p->state == ST_DONE || p->state == ST_ERROR)) reset_command(p);
    while (i < len) {
        if (p->state == ST_LIT_MEM || p->state == ST_LIT_SINK || p->state == ST_DISCARD) {
            i += literal_octets(p, in + i, len - i);
            continue;
        }
        unsigned char c = (unsigned char)in[i];
        enum step r = STEP_AGAIN;
        p->started = true;
        if (p->state != ST_SKIP && ++p->line_len > p->limits.max_line)
            fail(p, "BAD Command line too long");
        while (r == STEP_AGAIN)
            r = step(p, c);
        track_literal(p, c);
        i++;
        if (r == STEP_NEXT) continue;
        *used_r = i;
        switch (r) {
        case STEP_CONTINUE: return IMAP_PARSE_CONTINUE;
        case STEP_DONE: return IMAP_PARSE_DONE;
        default: return IMAP_PARSE_ERROR;
        }
    }
    *used_r = i;
    return IMAP_PARSE_MORE;
}

/* ---- the rest of the API ---- */

struct imap_parser *imap_parser_new(const struct imap_limits *limits)
{
    struct imap_parser *p = xcalloc(1, sizeof(*p));
    p->limits = p->next_limits = *limits;
    p->levels_cap = 4;
    p->levels = xcalloc(p->levels_cap, sizeof(*p->levels));
    reset_command(p);
    return p;
}

void imap_parser_free(struct imap_parser **pp)
{
    struct imap_parser *p = *pp;
    if (p == NULL) return;
    free_args(p);
    free(p->levels);
    free(p);
    *pp = NULL;
}

void imap_parser_set_limits(struct imap_parser *p, const struct imap_limits *limits)
{
    p->next_limits = *limits;
    if (p->state == ST_TAG && !p->started) reset_command(p);
}

void imap_parser_set_sink(struct imap_parser *p, const struct imap_literal_sink *sink)
{
    p->have_sink = sink != NULL;
    if (sink != NULL) p->sink = *sink;
}

bool imap_parser_busy(const struct imap_parser *p)
{
    return p->started && p->state != ST_DONE && p->state != ST_ERROR;
}

const struct imap_command *imap_parser_command(const struct imap_parser *p)
{
    return p->state == ST_DONE ? &p->cmd : NULL;
}

const char *imap_parser_tag(const struct imap_parser *p)
{
    return p->cmd.tag;
}

const char *imap_parser_error(const struct imap_parser *p)
{
    return p->error != NULL ? p->error : "";
}

void imap_parser_reset(struct imap_parser *p)
{
    reset_command(p);
}

/* ---- argument helpers ---- */

const char *imap_arg_astring(const struct imap_arg *arg)
{
    if (arg == NULL) return NULL;
    if (arg->type == IMAP_ARG_ATOM) return arg->str;
    if (arg->type == IMAP_ARG_STRING && !arg->sunk && !arg->literal8) return arg->str;
    return NULL;
}

bool imap_arg_is_atom(const struct imap_arg *arg, const char *word)
{
    if (arg == NULL || (arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_NIL)) return false;
    return strcasecmp(arg->str, word) == 0;
}

/* ---- sequence sets ---- */

/* Reads a seq-number at s: nz-number (no leading zero, at most 2^32-1) or '*'. */
static const char *seq_number(const char *s, uint32_t *n_r)
{
    if (*s == '*') {
        *n_r = IMAP_SEQ_STAR;
        return s + 1;
    }
    if (*s < '1' || *s > '9') return NULL;
    uint64_t n = 0;
    while (*s >= '0' && *s <= '9') {
        n = n * 10 + (uint64_t)(*s - '0');
        if (n > UINT32_MAX) return NULL;
        s++;
    }
    *n_r = (uint32_t)n;
    return s;
}

/* Walks the set; counts its ranges into *n_r, and stores them if ranges is not NULL. */
static int seq_walk(const char *s, struct imap_range *ranges, size_t *n_r)
{
    size_t n = 0;
    for (;;) {
        uint32_t lo, hi;
        if ((s = seq_number(s, &lo)) == NULL) return -1;
        hi = lo;
        if (*s == ':' && (s = seq_number(s + 1, &hi)) == NULL) return -1;
        if (n == IMAP_SEQSET_MAX_RANGES) return -1;
        if (ranges != NULL) {
            /* '*' is ordered only once its value is known (imap_seqset_contains) */
            bool swap = lo != IMAP_SEQ_STAR && hi != IMAP_SEQ_STAR && lo > hi;
            ranges[n].lo = swap ? hi : lo;
            ranges[n].hi = swap ? lo : hi;
        }
        n++;
        if (*s == '\0') break;
        if (*s++ != ',') return -1;
    }
    *n_r = n;
    return 0;
}

int imap_seqset_parse(const char *s, struct imap_seqset *set_r)
{
    size_t n;

    set_r->ranges = NULL;
    set_r->nranges = 0;
    if (seq_walk(s, NULL, &n) < 0) return -1;
    set_r->ranges = xcalloc(n, sizeof(*set_r->ranges));
    seq_walk(s, set_r->ranges, &set_r->nranges);
    return 0;
}

void imap_seqset_free(struct imap_seqset *set)
{
    xfree(set->ranges);
    set->nranges = 0;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t max)
{
    for (size_t i = 0; i < set->nranges; i++) {
        uint32_t lo = set->ranges[i].lo == IMAP_SEQ_STAR ? max : set->ranges[i].lo;
        uint32_t hi = set->ranges[i].hi == IMAP_SEQ_STAR ? max : set->ranges[i].hi;
        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        if (n >= lo && n <= hi) return true;
    }
    return false;
}

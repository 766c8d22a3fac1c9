/* imap_fetch.c - FETCH attributes (RFC 3501 6.4.5, 7.4.2; RFC 7162 3.1.4): plan, render
 *
 * Parsing: each attribute atom is matched by name; BODY[...] / BODY.PEEK[...] have
 * their section parsed here (the command parser hands "BODY[HEADER.FIELDS (From To)]<0.
 * 100>" over as one atom): part numbers, the section text, the field list (atoms or
 * quoted strings), the partial range. The response label is built once, at parse time.
 *
 * Rendering: one response per message, written through the caller's writer; the small
 * items go through a buffer that is flushed before each literal, and a literal's data
 * is written straight from the caller's (mapped) message text.
 *
 * SECURITY: see imap_fetch.h. Every index into the section text is checked against its
 * length; numbers are parsed with overflow checks; partial ranges are clipped to the
 * data; a section that does not exist is NIL, never an out-of-range read.
 */
#include "imap_fetch.h"

#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "sbuf.h"
#include "xalloc.h"

/* ---- parsing ---------------------------------------------------------------------- */

struct cursor {
    const char *s;
    size_t len, pos;
};

static bool at_end(const struct cursor *c)
{
    return c->pos >= c->len;
}

static char peek_ch(const struct cursor *c)
{
    return c->pos < c->len ? c->s[c->pos] : '\0';
}

/* a number of at most 32 bits; nz: no zero, no leading zero */
static int read_u32(struct cursor *c, bool nz, uint32_t *n_r)
{
    size_t start = c->pos;
    uint64_t n = 0;
    while (c->pos < c->len && c->s[c->pos] >= '0' && c->s[c->pos] <= '9') {
        n = n * 10 + (uint64_t)(c->s[c->pos] - '0');
        if (n > UINT32_MAX) return -1;
        c->pos++;
    }
    if (c->pos == start) return -1;
    if (nz && (c->s[start] == '0')) return -1;
    *n_r = (uint32_t)n;
    return 0;
}

static bool word_is(const struct cursor *c, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(c->s + c->pos, word, len) == 0;
}

static bool field_char(unsigned char ch)
{
    /* ftext (RFC 5322): printable US-ASCII except ':' */
    return ch > 0x20 && ch < 0x7f && ch != ':';
}

static bool label_atom_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && strchr("(){%*\"\\]", ch) == NULL;
}

/* Reads " (name name ...)" after HEADER.FIELDS[.NOT]. */
static int read_fields(struct cursor *c, struct imap_fetch_item *it, const char **error_r)
{
    if (peek_ch(c) != ' ') goto bad;
    c->pos++;
    if (peek_ch(c) != '(') goto bad;
    c->pos++;
    it->fields = xcalloc(IMAP_FETCH_MAX_FIELDS, sizeof(char *));
    for (;;) {
        while (peek_ch(c) == ' ')
            c->pos++;
        if (peek_ch(c) == ')') {
            c->pos++;
            break;
        }
        if (at_end(c)) goto bad;
        if (it->nfields >= IMAP_FETCH_MAX_FIELDS) {
            *error_r = "Too many header field names";
            return -1;
        }
        char name[IMAP_FETCH_MAX_FIELD_LEN + 1];
        size_t n = 0;
        if (peek_ch(c) == '"') {
            c->pos++;
            for (;;) {
                if (at_end(c)) goto bad;
                char ch = c->s[c->pos++];
                if (ch == '"') break;
                if (ch == '\\') {
                    if (at_end(c)) goto bad;
                    ch = c->s[c->pos++];
                    if (ch != '"' && ch != '\\') goto bad;
                }
                if (!field_char((unsigned char)ch)) goto bad;
                if (n >= IMAP_FETCH_MAX_FIELD_LEN) goto toolong;
                name[n++] = ch;
            }
        } else {
            while (!at_end(c) && peek_ch(c) != ' ' && peek_ch(c) != ')') {
                char ch = c->s[c->pos++];
                if (!field_char((unsigned char)ch) || !label_atom_char((unsigned char)ch)) goto bad;
                if (n >= IMAP_FETCH_MAX_FIELD_LEN) goto toolong;
                name[n++] = ch;
            }
        }
        if (n == 0) goto bad;
        for (size_t i = 0; i < n; i++)
            if (name[i] >= 'a' && name[i] <= 'z') name[i] = (char)(name[i] - 32);
        it->fields[it->nfields++] = xstrndup(name, n);
    }
    if (it->nfields == 0) goto bad;
    return 0;
toolong:
    *error_r = "Header field name too long";
    return -1;
bad:
    *error_r = "Invalid header field list";
    return -1;
}

/* Parses the section text between '[' and ']' (c covers exactly that). */
static int parse_section(struct cursor *c, struct imap_fetch_item *it, const char **error_r)
{
    char part[IMAP_FETCH_MAX_PART_DEPTH * 11] = "";
    size_t plen = 0;
    unsigned depth = 0;
    it->text = IMAP_SECTION_NONE;
    while (peek_ch(c) >= '0' && peek_ch(c) <= '9') {
        uint32_t n;
        if (read_u32(c, true, &n) < 0 || ++depth > IMAP_FETCH_MAX_PART_DEPTH) goto bad;
        plen += (size_t)snprintf(part + plen, sizeof(part) - plen, "%s%u", plen ? "." : "", n);
        if (at_end(c)) break;
        if (peek_ch(c) != '.') goto bad;
        c->pos++;
        if (!(peek_ch(c) >= '0' && peek_ch(c) <= '9')) break; /* section-text follows */
    }
    it->part = xstrndup(part, plen);
    if (at_end(c)) {
        if (plen > 0 && c->len > 0 && c->s[c->len - 1] == '.') goto bad; /* "1." */
        return 0;
    }
    size_t w = 0;
    while (c->pos + w < c->len && c->s[c->pos + w] != ' ')
        w++;
    if (word_is(c, w, "HEADER")) {
        it->text = IMAP_SECTION_HEADER;
    } else if (word_is(c, w, "TEXT")) {
        it->text = IMAP_SECTION_TEXT;
    } else if (word_is(c, w, "MIME") && plen > 0) {
        it->text = IMAP_SECTION_MIME;
    } else if (word_is(c, w, "HEADER.FIELDS")) {
        it->text = IMAP_SECTION_FIELDS;
    } else if (word_is(c, w, "HEADER.FIELDS.NOT")) {
        it->text = IMAP_SECTION_FIELDS_NOT;
    } else {
        goto bad;
    }
    c->pos += w;
    if (it->text == IMAP_SECTION_FIELDS || it->text == IMAP_SECTION_FIELDS_NOT) {
        if (read_fields(c, it, error_r) < 0) return -1;
    }
    if (!at_end(c)) goto bad;
    return 0;
bad:
    *error_r = "Invalid section in FETCH";
    return -1;
}

static const char *const section_names[] = {"",     "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
                                            "TEXT", "MIME"};

static void make_label(struct imap_fetch_item *it)
{
    struct sbuf b = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&b, "BODY[");
    sbuf_appends(&b, it->part);
    if (it->text != IMAP_SECTION_NONE) {
        if (it->part[0]) sbuf_putc(&b, '.');
        sbuf_appends(&b, section_names[it->text]);
    }
    if (it->nfields > 0) {
        sbuf_appends(&b, " (");
        for (size_t i = 0; i < it->nfields; i++) {
            if (i > 0) sbuf_putc(&b, ' ');
            const char *f = it->fields[i];
            bool atom = true;
            for (const char *p = f; *p; p++)
                if (!label_atom_char((unsigned char)*p)) atom = false;
            if (atom) {
                sbuf_appends(&b, f);
            } else {
                sbuf_putc(&b, '"');
                for (const char *p = f; *p; p++) {
                    if (*p == '"' || *p == '\\') sbuf_putc(&b, '\\');
                    sbuf_putc(&b, *p);
                }
                sbuf_putc(&b, '"');
            }
        }
        sbuf_putc(&b, ')');
    }
    sbuf_putc(&b, ']');
    if (it->partial) sbuf_printf(&b, "<%u>", it->origin);
    it->label = sbuf_steal(&b);
}

static void item_free(struct imap_fetch_item *it)
{
    for (size_t i = 0; i < it->nfields; i++)
        free(it->fields[i]);
    free(it->fields);
    free(it->part);
    free(it->label);
    memset(it, 0, sizeof(*it));
}

/* BODY[...]<..> or BODY.PEEK[...]<..>: c is past the '['. */
static int parse_body(struct cursor *c, struct imap_fetch_item *it, const char **error_r)
{
    /* the section ends at the first ']' outside a quoted string */
    size_t start = c->pos, end = c->pos;
    bool quoted = false;
    while (end < c->len) {
        char ch = c->s[end];
        if (quoted && ch == '\\' && end + 1 < c->len) {
            end += 2;
            continue;
        }
        if (ch == '"')
            quoted = !quoted;
        else if (ch == ']' && !quoted)
            break;
        end++;
    }
    if (end >= c->len) {
        *error_r = "Missing ] in FETCH section";
        return -1;
    }
    struct cursor sec = {c->s + start, end - start, 0};
    if (parse_section(&sec, it, error_r) < 0) return -1;
    c->pos = end + 1;
    if (peek_ch(c) == '<') {
        c->pos++;
        if (read_u32(c, false, &it->origin) < 0 || peek_ch(c) != '.') goto badpartial;
        c->pos++;
        if (read_u32(c, true, &it->count) < 0 || peek_ch(c) != '>') goto badpartial;
        c->pos++;
        it->partial = true;
    }
    if (!at_end(c)) {
        *error_r = "Invalid FETCH attribute";
        return -1;
    }
    make_label(it);
    return 0;
badpartial:
    *error_r = "Invalid partial range in FETCH";
    return -1;
}

static int need_of(const struct imap_fetch_item *it)
{
    switch (it->kind) {
    case IMAP_FETCH_ENVELOPE: return 2;
    case IMAP_FETCH_BODYSTRUCTURE:
    case IMAP_FETCH_BODY: return 3;
    case IMAP_FETCH_SECTION:
        if (it->part[0] != '\0') return 3;
        if (it->text == IMAP_SECTION_FIELDS || it->text == IMAP_SECTION_FIELDS_NOT) return 2;
        return 1;
    default: return 0;
    }
}

static void add_item(struct imap_fetch_plan *plan, struct imap_fetch_item *it)
{
    /* the same attribute twice is answered once */
    for (size_t i = 0; i < plan->nitems; i++) {
        const struct imap_fetch_item *o = &plan->items[i];
        if (o->kind != it->kind) continue;
        if (it->kind != IMAP_FETCH_SECTION || strcmp(o->label, it->label) == 0) {
            if (it->kind == IMAP_FETCH_SECTION && !it->peek) plan->items[i].peek = false;
            if (!it->peek && it->kind == IMAP_FETCH_SECTION) plan->sets_seen = true;
            item_free(it);
            return;
        }
    }
    switch (it->kind) {
    case IMAP_FETCH_UID: plan->want_uid = true; break;
    case IMAP_FETCH_FLAGS: plan->want_flags = true; break;
    case IMAP_FETCH_MODSEQ: plan->want_modseq = true; break;
    case IMAP_FETCH_SECTION:
        if (!it->peek) plan->sets_seen = true;
        break;
    default: break;
    }
    int n = need_of(it);
    if (n > plan->need) plan->need = n;
    plan->items[plan->nitems++] = *it;
    memset(it, 0, sizeof(*it));
}

struct simple_attr {
    const char *name;
    enum imap_fetch_kind kind;
};

static const struct simple_attr simple_attrs[] = {
    {"FLAGS", IMAP_FETCH_FLAGS},
    {"INTERNALDATE", IMAP_FETCH_INTERNALDATE},
    {"RFC822.SIZE", IMAP_FETCH_RFC822_SIZE},
    {"ENVELOPE", IMAP_FETCH_ENVELOPE},
    {"BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE},
    {"BODY", IMAP_FETCH_BODY},
    {"UID", IMAP_FETCH_UID},
    {"MODSEQ", IMAP_FETCH_MODSEQ},
};

static int parse_attr(const struct imap_arg *a, struct imap_fetch_plan *plan, const char **error_r)
{
    if (a->type != IMAP_ARG_ATOM || a->str == NULL || a->len == 0) {
        *error_r = "Invalid FETCH attribute";
        return -1;
    }
    if (plan->nitems >= IMAP_FETCH_MAX_ITEMS) {
        *error_r = "Too many FETCH attributes";
        return -1;
    }
    struct imap_fetch_item it;
    memset(&it, 0, sizeof(it));
    struct cursor c = {a->str, a->len, 0};
    for (size_t i = 0; i < sizeof(simple_attrs) / sizeof(simple_attrs[0]); i++) {
        if (word_is(&c, a->len, simple_attrs[i].name)) {
            it.kind = simple_attrs[i].kind;
            add_item(plan, &it);
            return 0;
        }
    }
    static const struct {
        const char *name;
        enum imap_section_text text;
        bool peek;
    } rfc822[] = {{"RFC822", IMAP_SECTION_NONE, false},
                  {"RFC822.HEADER", IMAP_SECTION_HEADER, true},
                  {"RFC822.TEXT", IMAP_SECTION_TEXT, false}};
    for (size_t i = 0; i < 3; i++) {
        if (word_is(&c, a->len, rfc822[i].name)) {
            it.kind = IMAP_FETCH_SECTION;
            it.part = xstrdup("");
            it.text = rfc822[i].text;
            it.peek = rfc822[i].peek;
            it.label = xstrdup(rfc822[i].name);
            add_item(plan, &it);
            return 0;
        }
    }
    if (a->len > 5 && strncasecmp(a->str, "BODY[", 5) == 0) {
        c.pos = 5;
    } else if (a->len > 10 && strncasecmp(a->str, "BODY.PEEK[", 10) == 0) {
        c.pos = 10;
        it.peek = true;
    } else {
        *error_r = "Unknown FETCH attribute";
        return -1;
    }
    it.kind = IMAP_FETCH_SECTION;
    if (parse_body(&c, &it, error_r) < 0) {
        item_free(&it);
        return -1;
    }
    add_item(plan, &it);
    return 0;
}

static int parse_modifiers(const struct imap_arg *m, struct imap_fetch_plan *plan,
                           const char **error_r)
{
    if (m->type != IMAP_ARG_LIST || m->nitems == 0) goto bad;
    for (size_t i = 0; i < m->nitems; i++) {
        const struct imap_arg *a = &m->items[i];
        if (a->type != IMAP_ARG_ATOM || strcasecmp(a->str, "CHANGEDSINCE") != 0 ||
            plan->changedsince || i + 1 >= m->nitems)
            goto bad;
        const struct imap_arg *v = &m->items[++i];
        if (v->type != IMAP_ARG_ATOM || v->len == 0 || v->len > 19) goto bad;
        uint64_t n = 0;
        for (size_t k = 0; k < v->len; k++) {
            if (v->str[k] < '0' || v->str[k] > '9') goto bad;
            n = n * 10 + (uint64_t)(v->str[k] - '0');
        }
        if (n > INT64_MAX) goto bad;
        plan->changedsince = true;
        plan->changedsince_modseq = n;
    }
    if (plan->changedsince && !plan->want_modseq && plan->nitems < IMAP_FETCH_MAX_ITEMS) {
        /* RFC 7162 3.1.4.1: CHANGEDSINCE implies MODSEQ */
        struct imap_fetch_item it;
        memset(&it, 0, sizeof(it));
        it.kind = IMAP_FETCH_MODSEQ;
        add_item(plan, &it);
    }
    return 0;
bad:
    *error_r = "Invalid FETCH modifier (only CHANGEDSINCE is supported)";
    return -1;
}

int imap_fetch_parse(const struct imap_arg *attrs, const struct imap_arg *modifiers,
                     struct imap_fetch_plan *plan_r, const char **error_r)
{
    memset(plan_r, 0, sizeof(*plan_r));
    *error_r = NULL;
    plan_r->items = xcalloc(IMAP_FETCH_MAX_ITEMS, sizeof(*plan_r->items));
    static const char *const all[] = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"};
    size_t macro = 0;
    if (attrs->type == IMAP_ARG_ATOM && attrs->str != NULL) {
        if (strcasecmp(attrs->str, "FAST") == 0)
            macro = 3;
        else if (strcasecmp(attrs->str, "ALL") == 0)
            macro = 4;
        else if (strcasecmp(attrs->str, "FULL") == 0)
            macro = 5;
    }
    int r = 0;
    if (macro > 0) {
        for (size_t i = 0; i < macro && r == 0; i++) {
            struct imap_arg a = {IMAP_ARG_ATOM,  false,          false, false,
                                 (char *)all[i], strlen(all[i]), NULL,  0};
            r = parse_attr(&a, plan_r, error_r);
        }
    } else if (attrs->type == IMAP_ARG_LIST) {
        if (attrs->nitems == 0) {
            *error_r = "Empty FETCH attribute list";
            r = -1;
        }
        for (size_t i = 0; i < attrs->nitems && r == 0; i++)
            r = parse_attr(&attrs->items[i], plan_r, error_r);
    } else {
        r = parse_attr(attrs, plan_r, error_r);
    }
    if (r == 0 && modifiers != NULL) r = parse_modifiers(modifiers, plan_r, error_r);
    if (r < 0) {
        imap_fetch_plan_free(plan_r);
        if (*error_r == NULL) *error_r = "Invalid FETCH attributes";
        return -1;
    }
    return 0;
}

void imap_fetch_plan_free(struct imap_fetch_plan *plan)
{
    for (size_t i = 0; i < plan->nitems; i++)
        item_free(&plan->items[i]);
    free(plan->items);
    memset(plan, 0, sizeof(*plan));
}

/* ---- rendering -------------------------------------------------------------------- */

size_t imap_header_length(const char *data, size_t len)
{
    if (len >= 1 && data[0] == '\n') return 1;
    if (len >= 2 && data[0] == '\r' && data[1] == '\n') return 2;
    for (size_t i = 0; i + 1 < len; i++) {
        if (data[i] != '\n') continue;
        if (data[i + 1] == '\n') return i + 2;
        if (data[i + 1] == '\r' && i + 2 < len && data[i + 2] == '\n') return i + 3;
    }
    return len;
}

void imap_fetch_date(time_t t, char *buf, size_t size)
{
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL) {
        memset(&tm, 0, sizeof(tm));
        tm.tm_mday = 1;
        tm.tm_year = 70;
    }
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    snprintf(buf, size, "%2d-%s-%04d %02d:%02d:%02d %c%02ld%02ld", tm.tm_mday, mon[tm.tm_mon % 12],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign, (off / 60) % 100, off % 60);
}

struct out {
    const struct imap_fetch_writer *w;
    struct sbuf buf;
};

static void out_flush(struct out *o)
{
    if (o->buf.len > 0) o->w->write(o->w->ctx, o->buf.data, o->buf.len);
    sbuf_reset(&o->buf);
}

/* A literal with data[0..len), NULs sent as 0x80. */
static void out_literal(struct out *o, const char *data, size_t len)
{
    sbuf_printf(&o->buf, "{%zu}\r\n", len);
    out_flush(o);
    while (len > 0) {
        const char *nul = memchr(data, '\0', len);
        size_t n = nul ? (size_t)(nul - data) : len;
        if (n > 0) o->w->write(o->w->ctx, data, n);
        if (nul == NULL) break;
        o->w->write(o->w->ctx, "\x80", 1);
        data += n + 1;
        len -= n + 1;
    }
}

struct message {
    const char *data;
    size_t len;
    size_t hlen; /* header length by scanning (need 1 and 2) */
    int parsed;  /* 0, 2 header only, 3 whole */
    struct mime_message mime;
};

static void message_parse(struct message *msg, int need)
{
    if (msg->parsed >= need || need < 2) return;
    if (msg->parsed) mime_free(&msg->mime);
    memset(&msg->mime, 0, sizeof(msg->mime));
    mime_parse(&msg->mime, msg->data, need == 2 ? msg->hlen : msg->len);
    msg->parsed = need;
}

static void clip(size_t *start, size_t *end, size_t len)
{
    if (*end > len) *end = len;
    if (*start > *end) *start = *end;
}

/* Writes the data of one section item (a literal, or NIL). */
static void render_section(struct out *o, const struct imap_fetch_item *it, struct message *msg)
{
    size_t start = 0, end = 0;
    struct sbuf tmp = SBUF_INIT(SBUF_NO_MAX);
    bool use_tmp = false;
    const struct mime_part *part = NULL;

    if (it->part[0] == '\0' && msg->parsed < 3) {
        switch (it->text) {
        case IMAP_SECTION_NONE: end = msg->len; break;
        case IMAP_SECTION_HEADER: end = msg->hlen; break;
        case IMAP_SECTION_TEXT:
            start = msg->hlen;
            end = msg->len;
            break;
        default:
            mime_header_fields(&msg->mime, &msg->mime.root, (const char *const *)it->fields,
                               it->nfields, it->text == IMAP_SECTION_FIELDS_NOT, &tmp);
            use_tmp = true;
            break;
        }
    } else {
        part = it->part[0] ? mime_find(&msg->mime, it->part) : &msg->mime.root;
        if (part == NULL) goto nil;
        const struct mime_part *m = part;
        if (it->text == IMAP_SECTION_HEADER || it->text == IMAP_SECTION_TEXT ||
            it->text == IMAP_SECTION_FIELDS || it->text == IMAP_SECTION_FIELDS_NOT) {
            /* of a message: the top level, or a message/rfc822 part's message */
            if (it->part[0]) {
                if (!part->is_message || part->nchildren < 1) goto nil;
                m = &part->children[0];
            }
        }
        switch (it->text) {
        case IMAP_SECTION_NONE:
            if (it->part[0] == '\0') {
                end = msg->len;
            } else {
                start = part->body_start;
                end = part->body_end;
            }
            break;
        case IMAP_SECTION_MIME:
            start = part->header_start;
            end = part->header_end;
            break;
        case IMAP_SECTION_HEADER:
            start = m->header_start;
            end = m->header_end;
            break;
        case IMAP_SECTION_TEXT:
            start = m->body_start;
            end = m->body_end;
            break;
        default:
            mime_header_fields(&msg->mime, m, (const char *const *)it->fields, it->nfields,
                               it->text == IMAP_SECTION_FIELDS_NOT, &tmp);
            use_tmp = true;
            break;
        }
    }
    const char *base = msg->data;
    if (use_tmp) {
        base = tmp.data;
        start = 0;
        end = tmp.len;
    } else {
        clip(&start, &end, msg->len);
    }
    if (it->partial) {
        size_t len = end - start;
        size_t from = it->origin < len ? it->origin : len;
        size_t n = len - from < it->count ? len - from : it->count;
        start += from;
        end = start + n;
    }
    out_literal(o, base ? base + start : "", end - start);
    sbuf_free(&tmp);
    return;
nil:
    sbuf_appends(&o->buf, "NIL");
    sbuf_free(&tmp);
}

void imap_fetch_render(const struct imap_fetch_plan *plan, const struct imap_fetch_msg *m,
                       const struct imap_fetch_writer *w)
{
    struct out o = {w, SBUF_INIT(SBUF_NO_MAX)};
    struct message msg;
    memset(&msg, 0, sizeof(msg));
    msg.data = m->data;
    msg.len = m->data ? m->len : 0;
    if (plan->need >= 1 && msg.data == NULL) msg.data = "";
    if (plan->need >= 1) msg.hlen = imap_header_length(msg.data, msg.len);
    message_parse(&msg, plan->need);

    const struct folder_msg *fm = m->msg;
    sbuf_printf(&o.buf, "* %u FETCH (", m->seq);
    bool first = true;
#define SEP()                                                                                      \
    do {                                                                                           \
        if (!first) sbuf_putc(&o.buf, ' ');                                                        \
        first = false;                                                                             \
    } while (0)
    if (m->uid || plan->want_uid) {
        SEP();
        sbuf_printf(&o.buf, "UID %u", fm->uid);
    }
    for (size_t i = 0; i < plan->nitems; i++) {
        const struct imap_fetch_item *it = &plan->items[i];
        char date[40];
        switch (it->kind) {
        case IMAP_FETCH_UID: continue;
        case IMAP_FETCH_FLAGS:
            if (m->flags == NULL) continue;
            SEP();
            sbuf_appends(&o.buf, m->flags);
            break;
        case IMAP_FETCH_INTERNALDATE:
            SEP();
            imap_fetch_date(fm->internaldate, date, sizeof(date));
            sbuf_printf(&o.buf, "INTERNALDATE \"%s\"", date);
            break;
        case IMAP_FETCH_RFC822_SIZE:
            SEP();
            sbuf_printf(&o.buf, "RFC822.SIZE %llu", (unsigned long long)fm->size);
            break;
        case IMAP_FETCH_MODSEQ:
            SEP();
            sbuf_printf(&o.buf, "MODSEQ (%llu)", (unsigned long long)fm->modseq);
            break;
        case IMAP_FETCH_ENVELOPE:
            SEP();
            sbuf_appends(&o.buf, "ENVELOPE ");
            mime_envelope(&msg.mime, &msg.mime.root, &o.buf);
            break;
        case IMAP_FETCH_BODYSTRUCTURE:
        case IMAP_FETCH_BODY:
            SEP();
            sbuf_appends(&o.buf, it->kind == IMAP_FETCH_BODY ? "BODY " : "BODYSTRUCTURE ");
            mime_bodystructure(&msg.mime, &msg.mime.root, it->kind == IMAP_FETCH_BODYSTRUCTURE,
                               &o.buf);
            break;
        case IMAP_FETCH_SECTION:
            SEP();
            sbuf_appends(&o.buf, it->label);
            sbuf_putc(&o.buf, ' ');
            render_section(&o, it, &msg);
            break;
        }
    }
    if (m->flags != NULL && !plan->want_flags) {
        SEP();
        sbuf_appends(&o.buf, m->flags);
    }
    if (m->modseq && !plan->want_modseq) {
        SEP();
        sbuf_printf(&o.buf, "MODSEQ (%llu)", (unsigned long long)fm->modseq);
    }
#undef SEP
    sbuf_appends(&o.buf, ")\r\n");
    out_flush(&o);
    sbuf_free(&o.buf);
    if (msg.parsed) mime_free(&msg.mime);
}

/* ---- helpers for the message commands ------------------------------------------- */

void imap_sbuf_set(struct sbuf *out, const uint32_t *numbers, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && numbers[j + 1] == numbers[j] + 1)
            j++;
        if (i > 0) sbuf_putc(out, ',');
        if (j > i)
            sbuf_printf(out, "%u:%u", numbers[i], numbers[j]);
        else
            sbuf_printf(out, "%u", numbers[i]);
        i = j + 1;
    }
}

int imap_message_map(struct folder *f, const struct folder_msg *msg, struct imap_mapped *m_r)
{
    memset(m_r, 0, sizeof(*m_r));
    m_r->data = "";
    int fd = folder_open_message(f, msg);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return -1;
        }
        m_r->map = p;
        m_r->maplen = (size_t)st.st_size;
        m_r->data = p;
        m_r->len = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

void imap_message_unmap(struct imap_mapped *m)
{
    if (m->map != NULL) munmap(m->map, m->maplen);
    memset(m, 0, sizeof(*m));
    m->data = "";
}

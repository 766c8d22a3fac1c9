/* imap_search.c - IMAP SEARCH programs (RFC 3501 6.4.4, RFC 7162 3.1.5): parse, match
 *
 * Parsing walks the argument list once, building each key as it is read; OR, NOT and
 * parenthesised groups recurse, one level each. AND/OR nodes are flattened (a group
 * inside an AND joins it) and their children ordered cheap-first: index-only keys, then
 * header keys, then body keys. Matching loads and MIME-parses a message lazily: the
 * header alone for header keys, the whole message only for BODY/TEXT.
 *
 * SECURITY: the arguments come from the network (already bounded by imap_parser.c).
 * Recursion is bounded by IMAP_SEARCH_MAX_DEPTH and the key count by
 * IMAP_SEARCH_MAX_KEYS, both checked before the next key is allocated; numbers are
 * parsed with overflow checks; strings may hold NULs and are handled with lengths.
 */
#include "imap_search.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_fetch.h"
#include "sbuf.h"
#include "xalloc.h"

/* ---- small helpers --------------------------------------------------------------- */

static const char *arg_text(const struct imap_arg *a, size_t *len_r)
{
    /* an astring: "NIL" as an atom is the string NIL */
    if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING && a->type != IMAP_ARG_NIL)
        return NULL;
    if (a->sunk || a->literal8 || a->str == NULL) return NULL;
    *len_r = a->len;
    return a->str;
}

static bool arg_is_word(const struct imap_arg *a, const char *word)
{
    return a->type == IMAP_ARG_ATOM && a->str != NULL && strcasecmp(a->str, word) == 0;
}

static int parse_u64(const char *s, size_t len, uint64_t max, uint64_t *n_r)
{
    if (len == 0 || len > 20) return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (n > (max - d) / 10) return -1;
        n = n * 10 + d;
    }
    *n_r = n;
    return 0;
}

static long days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int imap_parse_day(const char *s, size_t len, long *day_r)
{
    /* date-text = date-day "-" date-month "-" date-year; date-day = 1*2DIGIT */
    size_t i = 0;
    unsigned d = 0;
    while (i < len && i < 2 && s[i] >= '0' && s[i] <= '9')
        d = d * 10 + (unsigned)(s[i++] - '0');
    if (i == 0 || i + 9 != len || s[i] != '-' || s[i + 4] != '-') return -1;
    unsigned m = 0;
    for (; m < 12; m++)
        if (strncasecmp(s + i + 1, months[m], 3) == 0) break;
    if (m == 12) return -1;
    unsigned y = 0;
    for (size_t k = i + 5; k < len; k++) {
        if (s[k] < '0' || s[k] > '9') return -1;
        y = y * 10 + (unsigned)(s[k] - '0');
    }
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (d < 1 || d > mdays[m]) return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 1 && d == 29 && !leap) return -1;
    *day_r = days_from_civil((long)y, m + 1, d);
    return 0;
}

int imap_parse_datetime(const char *s, size_t len, time_t *t_r)
{
    /* date-day-fixed "-" date-month "-" date-year SP time SP zone */
    if (len > 0 && s[0] == ' ') {
        s++;
        len--;
    }
    size_t dlen = 0;
    while (dlen < len && s[dlen] != ' ')
        dlen++;
    long day;
    if (imap_parse_day(s, dlen, &day) < 0) return -1;
    const char *t = s + dlen;
    size_t tlen = len - dlen;
    /* " hh:mm:ss +zzzz" */
    if (tlen != 15 || t[0] != ' ' || t[3] != ':' || t[6] != ':' || t[9] != ' ' ||
        (t[10] != '+' && t[10] != '-'))
        return -1;
    static const int digits[] = {1, 2, 4, 5, 7, 8, 11, 12, 13, 14};
    for (size_t i = 0; i < sizeof(digits) / sizeof(digits[0]); i++)
        if (t[digits[i]] < '0' || t[digits[i]] > '9') return -1;
    int hh = (t[1] - '0') * 10 + (t[2] - '0');
    int mm = (t[4] - '0') * 10 + (t[5] - '0');
    int ss = (t[7] - '0') * 10 + (t[8] - '0');
    int zh = (t[11] - '0') * 10 + (t[12] - '0');
    int zm = (t[13] - '0') * 10 + (t[14] - '0');
    if (hh > 23 || mm > 59 || ss > 60 || zm > 59) return -1;
    long zone = (long)(zh * 60 + zm) * (t[10] == '-' ? -1 : 1);
    *t_r = (time_t)day * 86400 + hh * 3600 + mm * 60 + ss - zone * 60;
    return 0;
}

static long day_of(time_t t)
{
    return (long)(t >= 0 ? t / 86400 : (t - 86399) / 86400);
}

static long local_day(time_t t)
{
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL) return day_of(t);
    return days_from_civil((long)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday);
}

/* cp -> its small letter for the two-octet UTF-8 range, or cp */
static unsigned fold_cp(unsigned cp)
{
    if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 0x20;
    if (cp >= 0x100 && cp <= 0x17F) {
        if ((cp <= 0x12F || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177)) &&
            cp % 2 == 0)
            return cp + 1;
        if (((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) && cp % 2 == 1)
            return cp + 1;
        if (cp == 0x178) return 0xFF;
        return cp;
    }
    if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 0x20;
    if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;
    if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;
    return cp;
}

void imap_search_fold(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z') {
            s[i] = (char)(c + 32);
        } else if (c >= 0xC2 && c <= 0xDF && i + 1 < len &&
                   ((unsigned char)s[i + 1] & 0xC0) == 0x80) {
            unsigned cp = ((unsigned)(c & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);
            unsigned f = fold_cp(cp);
            s[i] = (char)(0xC0 | (f >> 6));
            s[i + 1] = (char)(0x80 | (f & 0x3F));
            i++;
        }
    }
}

/* ---- parsing ---------------------------------------------------------------------- */

struct parser {
    const struct imap_arg *args;
    size_t n, i;
    size_t *nkeys;
    bool *has_modseq;
    const char *error;
};

static void key_free(struct imap_search_key *k)
{
    for (size_t i = 0; i < k->nchildren; i++)
        key_free(&k->children[i]);
    free(k->children);
    free(k->name);
    free(k->value);
    imap_seqset_free(&k->set);
    memset(k, 0, sizeof(*k));
}

static int fail(struct parser *p, const char *error)
{
    if (p->error == NULL) p->error = error;
    return -1;
}

static const struct imap_arg *next_arg(struct parser *p)
{
    if (p->i >= p->n) return NULL;
    return &p->args[p->i++];
}

static int take_string(struct parser *p, struct imap_search_key *k)
{
    const struct imap_arg *a = next_arg(p);
    size_t len;
    const char *s = a != NULL ? arg_text(a, &len) : NULL;
    if (s == NULL) return fail(p, "Missing or invalid search string");
    k->value = xmemdup(s, len + 1);
    k->value[len] = '\0';
    k->value_len = len;
    imap_search_fold(k->value, len);
    return 0;
}

static int take_number(struct parser *p, uint64_t max, uint64_t *n_r)
{
    const struct imap_arg *a = next_arg(p);
    if (a == NULL || a->type != IMAP_ARG_ATOM || a->str == NULL ||
        parse_u64(a->str, a->len, max, n_r) < 0)
        return fail(p, "Invalid number in search");
    return 0;
}

static int take_date(struct parser *p, long *day_r)
{
    const struct imap_arg *a = next_arg(p);
    size_t len;
    const char *s = a != NULL ? arg_text(a, &len) : NULL;
    if (s == NULL || imap_parse_day(s, len, day_r) < 0) return fail(p, "Invalid search date");
    return 0;
}

static bool is_atom_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' && c != '*' &&
           c != '"' && c != '\\' && c != ']';
}

static int take_keyword(struct parser *p, struct imap_search_key *k)
{
    const struct imap_arg *a = next_arg(p);
    if (a == NULL || a->type != IMAP_ARG_ATOM || a->str == NULL || a->len == 0 ||
        a->len > FOLDER_MAX_KEYWORD_LEN)
        return fail(p, "Invalid keyword");
    for (size_t i = 0; i < a->len; i++)
        if (!is_atom_char((unsigned char)a->str[i])) return fail(p, "Invalid keyword");
    k->name = xstrndup(a->str, a->len);
    k->keyword_bit = -1;
    return 0;
}

static int parse_keys(struct parser *p, struct imap_search_key *and, unsigned depth);
static void order_children(struct imap_search_key *k);

struct flag_key {
    const char *name;
    uint32_t flag;
    bool want;
};

static const struct flag_key flag_keys[] = {
    {"ANSWERED", FOLDER_ANSWERED, true},  {"DELETED", FOLDER_DELETED, true},
    {"DRAFT", FOLDER_DRAFT, true},        {"FLAGGED", FOLDER_FLAGGED, true},
    {"SEEN", FOLDER_SEEN, true},          {"UNANSWERED", FOLDER_ANSWERED, false},
    {"UNDELETED", FOLDER_DELETED, false}, {"UNDRAFT", FOLDER_DRAFT, false},
    {"UNFLAGGED", FOLDER_FLAGGED, false}, {"UNSEEN", FOLDER_SEEN, false},
};

struct string_key {
    const char *name;
    const char *field; /* NULL: BODY/TEXT */
    enum imap_search_op op;
};

static const struct string_key string_keys[] = {
    {"BCC", "bcc", IMAP_SK_HEADER},   {"CC", "cc", IMAP_SK_HEADER},
    {"FROM", "from", IMAP_SK_HEADER}, {"SUBJECT", "subject", IMAP_SK_HEADER},
    {"TO", "to", IMAP_SK_HEADER},     {"BODY", NULL, IMAP_SK_BODY},
    {"TEXT", NULL, IMAP_SK_TEXT},
};

struct date_key {
    const char *name;
    enum imap_search_op op;
};

static const struct date_key date_keys[] = {
    {"BEFORE", IMAP_SK_BEFORE}, {"ON", IMAP_SK_ON},
    {"SINCE", IMAP_SK_SINCE},   {"SENTBEFORE", IMAP_SK_SENTBEFORE},
    {"SENTON", IMAP_SK_SENTON}, {"SENTSINCE", IMAP_SK_SENTSINCE},
};

static bool is_seqset_start(const struct imap_arg *a)
{
    return a->type == IMAP_ARG_ATOM && a->str != NULL &&
           ((a->str[0] >= '0' && a->str[0] <= '9') || a->str[0] == '*');
}

/* Reads one key at p->i into *k (zeroed by the caller). */
static int parse_key(struct parser *p, struct imap_search_key *k, unsigned depth)
{
    const struct imap_arg *a = next_arg(p);
    if (a == NULL) return fail(p, "Missing search key");
    if (*p->nkeys >= IMAP_SEARCH_MAX_KEYS) return fail(p, "Too many search keys");
    (*p->nkeys)++;

    if (a->type == IMAP_ARG_LIST) {
        if (depth >= IMAP_SEARCH_MAX_DEPTH) return fail(p, "Search program nested too deeply");
        if (a->nitems == 0) return fail(p, "Empty search key list");
        struct parser sub = *p;
        sub.args = a->items;
        sub.n = a->nitems;
        sub.i = 0;
        k->op = IMAP_SK_AND;
        int r = parse_keys(&sub, k, depth + 1);
        if (r < 0) return fail(p, sub.error);
        return 0;
    }
    if (is_seqset_start(a)) {
        k->op = IMAP_SK_SEQSET;
        if (imap_seqset_parse(a->str, &k->set) < 0) return fail(p, "Invalid sequence set");
        return 0;
    }
    if (a->type != IMAP_ARG_ATOM || a->str == NULL) return fail(p, "Invalid search key");
    const char *w = a->str;

    for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++) {
        if (strcasecmp(w, flag_keys[i].name) == 0) {
            k->op = IMAP_SK_FLAG;
            k->flags = flag_keys[i].flag;
            k->want = flag_keys[i].want;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(string_keys) / sizeof(string_keys[0]); i++) {
        if (strcasecmp(w, string_keys[i].name) == 0) {
            k->op = string_keys[i].op;
            k->cost = k->op == IMAP_SK_HEADER ? 1 : 2;
            if (string_keys[i].field != NULL) k->name = xstrdup(string_keys[i].field);
            return take_string(p, k);
        }
    }
    for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++) {
        if (strcasecmp(w, date_keys[i].name) == 0) {
            k->op = date_keys[i].op;
            k->cost = k->op >= IMAP_SK_SENTBEFORE ? 1 : 0;
            return take_date(p, &k->day);
        }
    }
    if (strcasecmp(w, "ALL") == 0) {
        k->op = IMAP_SK_ALL;
    } else if (strcasecmp(w, "RECENT") == 0 || strcasecmp(w, "OLD") == 0) {
        k->op = IMAP_SK_RECENT;
        k->want = strcasecmp(w, "RECENT") == 0;
    } else if (strcasecmp(w, "NEW") == 0) {
        /* RECENT UNSEEN */
        k->op = IMAP_SK_AND;
        k->children = xcalloc(2, sizeof(*k->children));
        k->nchildren = 2;
        k->children[0].op = IMAP_SK_RECENT;
        k->children[0].want = true;
        k->children[1].op = IMAP_SK_FLAG;
        k->children[1].flags = FOLDER_SEEN;
        k->children[1].want = false;
    } else if (strcasecmp(w, "KEYWORD") == 0 || strcasecmp(w, "UNKEYWORD") == 0) {
        k->op = IMAP_SK_KEYWORD;
        k->want = strcasecmp(w, "KEYWORD") == 0;
        return take_keyword(p, k);
    } else if (strcasecmp(w, "LARGER") == 0 || strcasecmp(w, "SMALLER") == 0) {
        k->op = strcasecmp(w, "LARGER") == 0 ? IMAP_SK_LARGER : IMAP_SK_SMALLER;
        return take_number(p, UINT32_MAX, &k->num);
    } else if (strcasecmp(w, "HEADER") == 0) {
        k->op = IMAP_SK_HEADER;
        k->cost = 1;
        const struct imap_arg *f = next_arg(p);
        size_t flen;
        const char *field = f != NULL ? arg_text(f, &flen) : NULL;
        if (field == NULL || flen == 0 || memchr(field, '\0', flen) != NULL)
            return fail(p, "Invalid header field name");
        for (size_t i = 0; i < flen; i++) {
            unsigned char c = (unsigned char)field[i];
            if (c <= 0x20 || c >= 0x7f || c == ':') return fail(p, "Invalid header field name");
        }
        k->name = xstrndup(field, flen);
        for (char *c = k->name; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
        return take_string(p, k);
    } else if (strcasecmp(w, "UID") == 0) {
        k->op = IMAP_SK_UIDSET;
        const struct imap_arg *s = next_arg(p);
        if (s == NULL || s->type != IMAP_ARG_ATOM || s->str == NULL ||
            imap_seqset_parse(s->str, &k->set) < 0)
            return fail(p, "Invalid UID set");
    } else if (strcasecmp(w, "MODSEQ") == 0) {
        k->op = IMAP_SK_MODSEQ;
        *p->has_modseq = true;
        /* [entry-name SP entry-type-req] SP mod-sequence-valzer */
        if (p->i < p->n && p->args[p->i].type == IMAP_ARG_STRING) {
            p->i++;
            const struct imap_arg *t = next_arg(p);
            if (t == NULL ||
                !(arg_is_word(t, "priv") || arg_is_word(t, "shared") || arg_is_word(t, "all")))
                return fail(p, "Invalid MODSEQ entry type");
        }
        return take_number(p, INT64_MAX, &k->num);
    } else if (strcasecmp(w, "NOT") == 0) {
        if (depth >= IMAP_SEARCH_MAX_DEPTH) return fail(p, "Search program nested too deeply");
        k->op = IMAP_SK_NOT;
        k->children = xcalloc(1, sizeof(*k->children));
        k->nchildren = 1;
        if (parse_key(p, &k->children[0], depth + 1) < 0) return -1;
        k->cost = k->children[0].cost;
    } else if (strcasecmp(w, "OR") == 0) {
        if (depth >= IMAP_SEARCH_MAX_DEPTH) return fail(p, "Search program nested too deeply");
        k->op = IMAP_SK_OR;
        struct imap_search_key two[2];
        memset(two, 0, sizeof(two));
        int r = parse_key(p, &two[0], depth + 1);
        if (r == 0) r = parse_key(p, &two[1], depth + 1);
        if (r < 0) {
            key_free(&two[0]);
            key_free(&two[1]);
            return -1;
        }
        /* flatten OR (OR a b) c into one OR */
        size_t n = 0;
        for (int i = 0; i < 2; i++)
            n += two[i].op == IMAP_SK_OR ? two[i].nchildren : 1;
        k->children = xcalloc(n, sizeof(*k->children));
        for (int i = 0; i < 2; i++) {
            if (two[i].op == IMAP_SK_OR) {
                memcpy(&k->children[k->nchildren], two[i].children,
                       two[i].nchildren * sizeof(*k->children));
                k->nchildren += two[i].nchildren;
                free(two[i].children);
            } else {
                k->children[k->nchildren++] = two[i];
            }
        }
        order_children(k);
    } else {
        return fail(p, "Unknown search key");
    }
    return 0;
}

/* Orders children cheap first (stable), and sets the node's cost. */
static void order_children(struct imap_search_key *k)
{
    if (k->nchildren > 1) {
        struct imap_search_key *tmp = xcalloc(k->nchildren, sizeof(*tmp));
        size_t j = 0;
        for (unsigned c = 0; c <= 2; c++)
            for (size_t i = 0; i < k->nchildren; i++)
                if (k->children[i].cost == c) tmp[j++] = k->children[i];
        free(k->children);
        k->children = tmp;
    }
    k->cost = 0;
    for (size_t i = 0; i < k->nchildren; i++)
        if (k->children[i].cost > k->cost) k->cost = k->children[i].cost;
}

/* Reads keys until the end of p's arguments into the AND node *and. */
static int parse_keys(struct parser *p, struct imap_search_key *and, unsigned depth)
{
    size_t cap = p->n - p->i;
    and->op = IMAP_SK_AND;
    and->children = xcalloc(cap ? cap : 1, sizeof(*and->children));
    size_t count = 0;
    while (p->i < p->n) {
        struct imap_search_key k;
        memset(&k, 0, sizeof(k));
        if (parse_key(p, &k, depth) < 0) {
            key_free(&k);
            and->nchildren = count;
            return -1;
        }
        if (k.op == IMAP_SK_AND) {
            /* a group (or NEW) joins the enclosing AND */
            size_t need = count + k.nchildren + (p->n - p->i);
            if (need > cap) {
                and->children = xreallocarray(and->children, need, sizeof(*and->children));
                cap = need;
            }
            memcpy(&and->children[count], k.children, k.nchildren * sizeof(*k.children));
            count += k.nchildren;
            free(k.children);
        } else {
            and->children[count++] = k;
        }
    }
    and->nchildren = count;
    if (count == 0) return fail(p, "Missing search key");
    order_children(and);
    return 0;
}

enum imap_search_result imap_search_parse(const struct imap_arg *args, size_t nargs,
                                          struct imap_search_program **prog_r, const char **error_r)
{
    *prog_r = NULL;
    *error_r = NULL;
    if (nargs == 0) {
        *error_r = "Missing search key";
        return IMAP_SEARCH_BAD;
    }
    size_t start = 0;
    if (nargs > 0 && arg_is_word(&args[0], "CHARSET")) {
        size_t len;
        const char *cs = nargs > 1 ? arg_text(&args[1], &len) : NULL;
        if (cs == NULL) {
            *error_r = "Missing charset";
            return IMAP_SEARCH_BAD;
        }
        if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
            *error_r = "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset";
            return IMAP_SEARCH_BADCHARSET;
        }
        start = 2;
    }
    struct imap_search_program *prog = xcalloc(1, sizeof(*prog));
    struct parser p = {args + start, nargs - start, 0, &prog->nkeys, &prog->has_modseq, NULL};
    if (parse_keys(&p, &prog->root, 0) < 0) {
        *error_r = p.error != NULL ? p.error : "Invalid search program";
        imap_search_free(&prog);
        return IMAP_SEARCH_BAD;
    }
    prog->cost = prog->root.cost;
    *prog_r = prog;
    return IMAP_SEARCH_OK;
}

void imap_search_free(struct imap_search_program **prog)
{
    if (*prog == NULL) return;
    key_free(&(*prog)->root);
    xfree(*prog);
}

static int bind_key(struct imap_search_key *k, const char *const *keywords, size_t nkeywords,
                    uint32_t count)
{
    if (k->op == IMAP_SK_KEYWORD) {
        k->keyword_bit = -1;
        for (size_t i = 0; i < nkeywords && i < 64; i++) {
            if (keywords[i] != NULL && strcasecmp(keywords[i], k->name) == 0) {
                k->keyword_bit = (int)i;
                break;
            }
        }
    } else if (k->op == IMAP_SK_SEQSET) {
        for (size_t i = 0; i < k->set.nranges; i++) {
            const struct imap_range *r = &k->set.ranges[i];
            if (count == 0) return -1;
            if (r->lo != IMAP_SEQ_STAR && r->lo > count) return -1;
            if (r->hi != IMAP_SEQ_STAR && r->hi > count) return -1;
        }
    }
    for (size_t i = 0; i < k->nchildren; i++)
        if (bind_key(&k->children[i], keywords, nkeywords, count) < 0) return -1;
    return 0;
}

int imap_search_bind(struct imap_search_program *prog, const char *const *keywords,
                     size_t nkeywords, uint32_t count)
{
    return bind_key(&prog->root, keywords, nkeywords, count);
}

/* ---- matching --------------------------------------------------------------------- */

/* Makes the message available at level 1 (header parsed) or 2 (all parsed). */
static bool need(struct imap_search_msg *m, int level)
{
    if (m->state < 0) return false;
    if (m->state >= level) return true;
    if (m->state == 0) {
        if (m->load == NULL || m->load(m->load_ctx, &m->data, &m->len) < 0) {
            m->state = -1;
            return false;
        }
    } else {
        mime_free(&m->mime);
    }
    memset(&m->mime, 0, sizeof(m->mime));
    mime_parse(&m->mime, m->data, level == 1 ? imap_header_length(m->data, m->len) : m->len);
    m->state = level;
    return true;
}

static bool contains(char *hay, size_t hlen, const struct imap_search_key *k)
{
    imap_search_fold(hay, hlen);
    if (k->value_len == 0) return true;
    return memmem(hay, hlen, k->value, k->value_len) != NULL;
}

static bool match_header(const struct imap_search_key *k, struct imap_search_msg *m)
{
    if (!need(m, 1)) return false;
    char *v = mime_header_get(&m->mime, &m->mime.root, k->name, true);
    if (v == NULL) return false;
    bool r = contains(v, strlen(v), k);
    free(v);
    return r;
}

static bool match_sent(const struct imap_search_key *k, struct imap_search_msg *m)
{
    if (!need(m, 1)) return false;
    char *v = mime_header_get(&m->mime, &m->mime.root, "date", false);
    if (v == NULL) return false;
    time_t t;
    int zone = 0;
    int r = mime_parse_date(v, &t, &zone);
    free(v);
    if (r < 0) return false;
    long day = day_of(t + (time_t)zone * 60);
    switch (k->op) {
    case IMAP_SK_SENTBEFORE: return day < k->day;
    case IMAP_SK_SENTON: return day == k->day;
    default: return day >= k->day;
    }
}

struct body_match {
    const struct imap_search_key *key;
    struct sbuf win; /* the last value_len-1 folded octets, then the new chunk */
    char carry;      /* a lead octet left from the previous chunk */
    bool has_carry;
    bool found;
};

static bool body_chunk(const char *text, size_t len, void *ctx)
{
    struct body_match *b = ctx;
    size_t keep = b->win.len;
    if (b->has_carry) {
        if (sbuf_putc(&b->win, b->carry) < 0) return true;
        b->has_carry = false;
    }
    if (len > 0 && sbuf_append(&b->win, text, len) < 0) return true;
    /* a two-octet sequence cut at the chunk's end is folded with the next chunk */
    size_t n = b->win.len;
    if (n > keep) {
        unsigned char last = (unsigned char)b->win.data[n - 1];
        if (last >= 0xC2 && last <= 0xDF) {
            b->carry = (char)last;
            b->has_carry = true;
            n--;
            sbuf_truncate(&b->win, n);
        }
        imap_search_fold(b->win.data + keep, n - keep);
    }
    if (b->win.len >= b->key->value_len &&
        memmem(b->win.data, b->win.len, b->key->value, b->key->value_len) != NULL) {
        b->found = true;
        return true;
    }
    size_t tail = b->key->value_len > 0 ? b->key->value_len - 1 : 0;
    if (b->win.len > tail) sbuf_consume(&b->win, b->win.len - tail);
    return false;
}

static bool match_body(const struct imap_search_key *k, struct imap_search_msg *m)
{
    if (!need(m, 2)) return false;
    if (k->value_len == 0) return true;
    if (k->op == IMAP_SK_TEXT) {
        const struct mime_part *root = &m->mime.root;
        size_t hs = root->header_start, he = root->header_end;
        if (he > m->len) he = m->len;
        if (hs < he) {
            char *h = mime_decode_words(m->data + hs, he - hs);
            bool r = contains(h, strlen(h), k);
            free(h);
            if (r) return true;
        }
    }
    struct body_match b;
    memset(&b, 0, sizeof(b));
    b.key = k;
    sbuf_init(&b.win, SBUF_NO_MAX);
    mime_text_foreach(&m->mime, body_chunk, &b);
    if (!b.found && b.has_carry) {
        b.has_carry = false;
        if (sbuf_putc(&b.win, b.carry) == 0)
            b.found = memmem(b.win.data, b.win.len, k->value, k->value_len) != NULL;
    }
    sbuf_free(&b.win);
    return b.found;
}

static bool match_key(const struct imap_search_key *k, struct imap_search_msg *m)
{
    const struct folder_msg *msg = m->msg;
    switch (k->op) {
    case IMAP_SK_ALL: return true;
    case IMAP_SK_AND:
        for (size_t i = 0; i < k->nchildren; i++)
            if (!match_key(&k->children[i], m)) return false;
        return true;
    case IMAP_SK_OR:
        for (size_t i = 0; i < k->nchildren; i++)
            if (match_key(&k->children[i], m)) return true;
        return false;
    case IMAP_SK_NOT: return !match_key(&k->children[0], m);
    case IMAP_SK_SEQSET: return imap_seqset_contains(&k->set, m->seq, m->max_seq);
    case IMAP_SK_UIDSET: return imap_seqset_contains(&k->set, msg->uid, m->max_uid);
    case IMAP_SK_FLAG:
        return k->want ? (msg->flags & k->flags) == k->flags : (msg->flags & k->flags) == 0;
    case IMAP_SK_KEYWORD:
        if (k->keyword_bit < 0 || k->keyword_bit > 63) return !k->want;
        return ((msg->keywords >> k->keyword_bit) & 1) == (uint64_t)k->want;
    case IMAP_SK_RECENT: return m->recent == k->want;
    case IMAP_SK_LARGER: return msg->size > k->num;
    case IMAP_SK_SMALLER: return msg->size < k->num;
    case IMAP_SK_BEFORE: return local_day(msg->internaldate) < k->day;
    case IMAP_SK_ON: return local_day(msg->internaldate) == k->day;
    case IMAP_SK_SINCE: return local_day(msg->internaldate) >= k->day;
    case IMAP_SK_SENTBEFORE:
    case IMAP_SK_SENTON:
    case IMAP_SK_SENTSINCE: return match_sent(k, m);
    case IMAP_SK_MODSEQ: return msg->modseq >= k->num;
    case IMAP_SK_HEADER: return match_header(k, m);
    case IMAP_SK_BODY:
    case IMAP_SK_TEXT: return match_body(k, m);
    }
    return false;
}

bool imap_search_match(const struct imap_search_program *prog, struct imap_search_msg *m)
{
    return match_key(&prog->root, m);
}

void imap_search_msg_done(struct imap_search_msg *m)
{
    if (m->state > 0) mime_free(&m->mime);
    m->state = 0;
    m->data = NULL;
    m->len = 0;
}

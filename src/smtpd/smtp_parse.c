/* smtp_parse.c - SMTP command lines, paths and parameters (RFC 5321 4.1, 4.1.2)
 *
 * smtp_parse_command() splits a line into verb and argument; smtp_parse_mail() and
 * smtp_parse_rcpt() read "FROM:<path> params" / "TO:<path> params" with the RFC 5321
 * grammar (Dot-string or Quoted-string local parts, domains, IPv4 and IPv6 address
 * literals, source routes, esmtp-params); smtp_parse_bdat() and smtp_helo_valid() cover
 * the remaining arguments that need more than a string compare.
 *
 * Lenient only where real clients deviate harmlessly: the keyword's case, spaces after
 * "FROM:"/"TO:", several spaces between parameters, trailing spaces. Everything else
 * follows the grammar: no control characters, no unbalanced brackets or quotes, no
 * 8-bit bytes (we do not offer SMTPUTF8, so those get 553 5.6.7).
 *
 * SECURITY: the argument comes straight from the network. Parsing is one forward pass
 * that stops at the terminating NUL; every part is bounded (local part 64, domain 255,
 * address 256, keyword 64, value 512, SMTP_MAX_PARAMS parameters) while it is scanned,
 * into fixed stack buffers, and nothing is allocated until the whole argument has been
 * accepted, so a refused argument leaves nothing behind. The results are syntax only:
 * a quoted local part may hold '@', spaces, quotes or backslashes, so policy must check
 * localpart (address_localpart_valid()) before it is used as an account or a file name.
 */
#include "smtp_parse.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define MAX_LOCALPART 64                    /* octets as sent, RFC 5321 4.5.3.1.1 */
#define MAX_DOMAIN    255                   /* RFC 5321 4.5.3.1.2 */
#define MAX_LABEL     63                    /* RFC 1035 2.3.4 */
#define MAX_ADDRESS   256                   /* RFC 5321 4.5.3.1.3 */
#define MAX_LITERAL   64                    /* "[IPv6:" + 45 + "]" fits with room */
#define MAX_KEYWORD   64                    /* esmtp-keyword */
#define MAX_VALUE     SMTP_MAX_COMMAND_LINE /* esmtp-value, e.g. ORCPT (RFC 3461: 500) */
#define MAX_BDAT_SIZE (1ULL << 53)

/* What went wrong, mapped to a reply line by error_line(). */
enum perr {
    E_OK = 0,
    E_SYNTAX, /* no "FROM:"/"TO:", no '<', junk right after '>' */
    E_ADDR,   /* inside <...>: bad character, bad structure, unbalanced */
    E_LONG,   /* local part, domain or address over its limit */
    E_8BIT,   /* a byte >= 0x80 inside <...> */
    E_PARAM,  /* malformed esmtp-param */
    E_MANY,   /* more than SMTP_MAX_PARAMS */
    E_DUP,    /* the same keyword twice */
};

static const struct {
    const char *name;
    enum smtp_verb verb;
} verbs[] = {
    {"HELO", SMTP_CMD_HELO},         {"EHLO", SMTP_CMD_EHLO}, {"MAIL", SMTP_CMD_MAIL},
    {"RCPT", SMTP_CMD_RCPT},         {"DATA", SMTP_CMD_DATA}, {"BDAT", SMTP_CMD_BDAT},
    {"RSET", SMTP_CMD_RSET},         {"NOOP", SMTP_CMD_NOOP}, {"QUIT", SMTP_CMD_QUIT},
    {"VRFY", SMTP_CMD_VRFY},         {"EXPN", SMTP_CMD_EXPN}, {"HELP", SMTP_CMD_HELP},
    {"STARTTLS", SMTP_CMD_STARTTLS}, {"AUTH", SMTP_CMD_AUTH}, {"ETRN", SMTP_CMD_ETRN},
};

/* ASCII-only character classes: the C library's depend on the locale. */
static bool is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(unsigned char c)
{
    return is_alpha(c) || is_digit(c);
}

static bool is_xdigit(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static unsigned char to_upper(unsigned char c)
{
    return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
}

/* atext, RFC 5322 3.2.3 */
static bool is_atext(unsigned char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Case-insensitive compare of n octets (ASCII). */
static bool ascii_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i])) return false;
    return true;
}

/* The error for an unexpected octet inside <...>. */
static enum perr bad_char(unsigned char c)
{
    return (c & 0x80) ? E_8BIT : E_ADDR;
}

int smtp_parse_command(const char *line, size_t len, struct smtp_command *cmd_r)
{
    cmd_r->verb = SMTP_CMD_UNKNOWN;
    cmd_r->arg = line + len;
    cmd_r->arg_len = 0;

    size_t w = 0;
    while (w < len && line[w] != ' ')
        w++;
    if (w == 0) return -1;

    enum smtp_verb verb = SMTP_CMD_UNKNOWN;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strlen(verbs[i].name) == w && ascii_ieq(line, verbs[i].name, w)) {
            verb = verbs[i].verb;
            break;
        }
    }
    if (verb == SMTP_CMD_UNKNOWN) return -1;

    size_t a = w;
    while (a < len && line[a] == ' ')
        a++;
    cmd_r->verb = verb;
    cmd_r->arg = line + a;
    cmd_r->arg_len = len - a;
    return 0;
}

/* Snum "." Snum "." Snum "." Snum, exactly n octets. Leading zeros are refused: some
 * resolvers read "010" as octal. */
static bool ipv4_valid(const char *s, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.') return false;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < n && is_digit((unsigned char)s[i]) && i - start < 3) {
            v = v * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        size_t digits = i - start;
        if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0')) return false;
    }
    return i == n;
}

/* RFC 5321 IPv6-addr (full, compressed, with an IPv4 tail), exactly n octets. "::" may
 * stand for one group or more (RFC 4291; 5321 says two or more, nobody relies on it). */
static bool ipv6_valid(const char *s, size_t n)
{
    size_t i = 0, groups = 0;
    bool dcolon = false;

    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        dcolon = true;
        i = 2;
    } else if (n >= 1 && s[0] == ':') {
        return false;
    }
    while (i < n) {
        size_t j = i;
        while (j < n && is_xdigit((unsigned char)s[j]) && j - i < 5)
            j++;
        if (j < n && s[j] == '.') {
            if (!ipv4_valid(s + i, n - i)) return false;
            groups += 2;
            break;
        }
        if (j == i || j - i > 4) return false;
        groups++;
        i = j;
        if (i == n) break;
        if (s[i] != ':') return false;
        i++;
        if (i < n && s[i] == ':') {
            if (dcolon) return false;
            dcolon = true;
            i++;
        } else if (i == n) {
            return false; /* a single trailing ':' */
        }
    }
    return dcolon ? groups <= 7 : groups == 8;
}

/* The inside of an address literal, without the brackets. */
static bool literal_valid(const char *s, size_t n)
{
    if (n >= 5 && ascii_ieq(s, "IPv6:", 5)) return ipv6_valid(s + 5, n - 5);
    return ipv4_valid(s, n);
}

/* Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str]. Scans from s
 * and stops at the first octet that cannot continue it; *len_r is the domain's length. */
static enum perr scan_domain(const char *s, size_t *len_r)
{
    size_t i = 0;
    for (;;) {
        size_t start = i;
        if (!is_alnum((unsigned char)s[i])) return bad_char((unsigned char)s[i]);
        while (is_alnum((unsigned char)s[i]) || s[i] == '-') {
            i++;
            if (i > MAX_DOMAIN) return E_LONG;
            if (i - start > MAX_LABEL) return E_ADDR;
        }
        if (s[i - 1] == '-') return E_ADDR;
        if (s[i] != '.') break;
        i++;
    }
    *len_r = i;
    return E_OK;
}

/* Dot-string = Atom *("." Atom) */
static bool dotstring_valid(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.') return false;
        } else if (!is_atext((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

/* Where the parts of an accepted path are, before anything is allocated. */
struct parsed {
    bool null_path;  /* <> */
    bool postmaster; /* <Postmaster> */
    char local[MAX_LOCALPART + 2];
    size_t local_len;
    const char *domain; /* into the argument, "[...]" for a literal */
    size_t domain_len;
    const char *postmaster_text;
    struct {
        const char *kw, *val;
        size_t kw_len, val_len;
    } params[SMTP_MAX_PARAMS];
    size_t nparams;
};

/* Local-part "@" ( Domain / address-literal ), from s[*ip]. */
static enum perr parse_mailbox(const char *s, size_t *ip, struct parsed *p)
{
    size_t i = *ip;
    size_t start = i;
    size_t n = 0;
    enum perr e;

    if (s[i] == '"') {
        i++;
        for (;;) {
            unsigned char c = (unsigned char)s[i];
            if (c == '"') {
                i++;
                break;
            }
            if (c == '\\') {
                unsigned char q = (unsigned char)s[i + 1];
                if (q < 32 || q > 126) return bad_char(q);
                p->local[n++] = (char)q;
                i += 2;
            } else if (c >= 32 && c <= 126) {
                p->local[n++] = (char)c;
                i++;
            } else {
                return bad_char(c); /* control, 8-bit, or the end: unbalanced quote */
            }
            if (i - start > MAX_LOCALPART) return E_LONG;
        }
        if (i - start > MAX_LOCALPART) return E_LONG;
        if (n == 0) return E_ADDR;
    } else {
        while (is_atext((unsigned char)s[i]) || s[i] == '.') {
            p->local[n++] = s[i++];
            if (n > MAX_LOCALPART) return E_LONG;
        }
        if (n == 0) return bad_char((unsigned char)s[i]);
        if (s[i] != '@') return bad_char((unsigned char)s[i]);
        if (!dotstring_valid(p->local, n)) return E_ADDR;
    }
    p->local[n] = '\0';
    p->local_len = n;
    if (s[i] != '@') return bad_char((unsigned char)s[i]);
    i++;

    if (s[i] == '[') {
        size_t lstart = i;
        i++;
        while (s[i] != ']') {
            unsigned char c = (unsigned char)s[i];
            /* dcontent = %d33-90 / %d94-126 */
            if (c < 33 || c > 126 || c == '[' || c == '\\') return bad_char(c);
            i++;
            if (i - lstart > MAX_LITERAL) return E_ADDR;
        }
        if (!literal_valid(s + lstart + 1, i - lstart - 1)) return E_ADDR;
        i++;
        p->domain = s + lstart;
        p->domain_len = i - lstart;
    } else {
        size_t dlen;
        if ((e = scan_domain(s + i, &dlen)) != E_OK) return e;
        p->domain = s + i;
        p->domain_len = dlen;
        i += dlen;
    }
    *ip = i;
    return E_OK;
}

/* "<" ... ">" from s[*ip], which is at the '<'. */
static enum perr parse_path(const char *s, size_t *ip, bool mail, struct parsed *p)
{
    size_t i = *ip + 1;
    enum perr e;

    if (s[i] == '>') {
        if (!mail) return E_ADDR;
        p->null_path = true;
        *ip = i + 1;
        return E_OK;
    }
    if (!mail && ascii_ieq(s + i, "Postmaster>", 11)) {
        p->postmaster = true;
        p->postmaster_text = s + i;
        *ip = i + 11;
        return E_OK;
    }
    if (s[i] == '@') { /* A-d-l ":" - syntax checked, then ignored (RFC 5321 C) */
        for (;;) {
            size_t dlen;
            if (s[i] != '@') return bad_char((unsigned char)s[i]);
            i++;
            if ((e = scan_domain(s + i, &dlen)) != E_OK) return e;
            i += dlen;
            if (s[i] == ',') {
                i++;
                continue;
            }
            if (s[i] == ':') {
                i++;
                break;
            }
            return bad_char((unsigned char)s[i]);
        }
    }
    if ((e = parse_mailbox(s, &i, p)) != E_OK) return e;
    if (s[i] != '>') return bad_char((unsigned char)s[i]);
    *ip = i + 1;
    return E_OK;
}

/* esmtp-param *(SP esmtp-param), from s[i] which is ' ' or the end. */
static enum perr parse_params(const char *s, size_t i, struct parsed *p)
{
    for (;;) {
        while (s[i] == ' ')
            i++;
        if (s[i] == '\0') return E_OK;
        if (p->nparams == SMTP_MAX_PARAMS) return E_MANY;

        /* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
        size_t kw = i;
        if (!is_alnum((unsigned char)s[i])) return E_PARAM;
        while (is_alnum((unsigned char)s[i]) || s[i] == '-') {
            i++;
            if (i - kw > MAX_KEYWORD) return E_PARAM;
        }
        size_t kw_len = i - kw;
        const char *val = NULL;
        size_t val_len = 0;
        if (s[i] == '=') {
            /* esmtp-value = 1*(%d33-60 / %d62-126) */
            i++;
            size_t v = i;
            while ((unsigned char)s[i] >= 33 && (unsigned char)s[i] <= 126 && s[i] != '=') {
                i++;
                if (i - v > MAX_VALUE) return E_PARAM;
            }
            if (i == v) return E_PARAM;
            val = s + v;
            val_len = i - v;
        }
        if (s[i] != ' ' && s[i] != '\0') return E_PARAM;
        for (size_t k = 0; k < p->nparams; k++)
            if (p->params[k].kw_len == kw_len && ascii_ieq(p->params[k].kw, s + kw, kw_len))
                return E_DUP;
        p->params[p->nparams].kw = s + kw;
        p->params[p->nparams].kw_len = kw_len;
        p->params[p->nparams].val = val;
        p->params[p->nparams].val_len = val_len;
        p->nparams++;
    }
}

static const char *error_line(enum perr e, bool mail)
{
    switch (e) {
    case E_SYNTAX:
        return mail ? "501 5.5.4 Syntax: MAIL FROM:<address>"
                    : "501 5.5.4 Syntax: RCPT TO:<address>";
    case E_LONG:
        return mail ? "501 5.1.7 Sender address too long" : "501 5.1.3 Recipient address too long";
    case E_8BIT: return "553 5.6.7 Non-ASCII addresses are not permitted (no SMTPUTF8)";
    case E_PARAM: return "501 5.5.4 Malformed parameter";
    case E_MANY: return "501 5.5.4 Too many parameters";
    case E_DUP: return "501 5.5.4 Duplicate parameter";
    case E_ADDR:
    case E_OK:
    default:
        return mail ? "501 5.1.7 Bad sender address syntax"
                    : "501 5.1.3 Bad recipient address syntax";
    }
}

/* Builds the results from an accepted parse; E_LONG if the address is over its limit. */
static enum perr fill_path(const struct parsed *p, struct smtp_path *path)
{
    if (p->null_path) {
        path->address = xstrdup("");
        path->localpart = xstrdup("");
        path->domain = xstrdup("");
    } else if (p->postmaster) {
        path->address = xstrndup(p->postmaster_text, 10);
        path->localpart = xstrndup(p->postmaster_text, 10);
        path->domain = xstrdup("");
    } else {
        /* at most 2 + 2 * 64 + 1 + 255 octets: quotes, escapes, '@', domain */
        char addr[2 + 2 * MAX_LOCALPART + 1 + MAX_DOMAIN + 1];
        size_t n = 0;
        if (dotstring_valid(p->local, p->local_len)) {
            memcpy(addr, p->local, p->local_len);
            n = p->local_len;
        } else {
            addr[n++] = '"';
            for (size_t i = 0; i < p->local_len; i++) {
                if (p->local[i] == '"' || p->local[i] == '\\') addr[n++] = '\\';
                addr[n++] = p->local[i];
            }
            addr[n++] = '"';
        }
        addr[n++] = '@';
        size_t dstart = n;
        for (size_t i = 0; i < p->domain_len; i++)
            addr[n++] = (char)to_lower((unsigned char)p->domain[i]);
        addr[n] = '\0';
        if (n > MAX_ADDRESS) return E_LONG;
        path->address = xstrndup(addr, n);
        path->localpart = xstrndup(p->local, p->local_len);
        path->domain = xstrndup(addr + dstart, n - dstart);
    }
    for (size_t k = 0; k < p->nparams; k++) {
        char *kw = xstrndup(p->params[k].kw, p->params[k].kw_len);
        for (char *c = kw; *c; c++)
            *c = (char)to_upper((unsigned char)*c);
        path->params[k].keyword = kw;
        path->params[k].value =
            p->params[k].val ? xstrndup(p->params[k].val, p->params[k].val_len) : NULL;
    }
    path->nparams = p->nparams;
    return E_OK;
}

static int parse_mail_rcpt(const char *arg, bool mail, struct smtp_path *path_r,
                           const char **error_r)
{
    const char *kw = mail ? "FROM:" : "TO:";
    size_t kw_len = strlen(kw);
    struct parsed p;
    enum perr e;
    size_t i;

    memset(path_r, 0, sizeof(*path_r));
    memset(&p, 0, sizeof(p));
    *error_r = NULL;

    for (i = 0; i < kw_len; i++)
        if (arg[i] == '\0' || to_upper((unsigned char)arg[i]) != (unsigned char)kw[i]) break;
    if (i < kw_len) {
        e = E_SYNTAX;
        goto fail;
    }
    while (arg[i] == ' ')
        i++;
    if (arg[i] != '<') {
        e = E_SYNTAX;
        goto fail;
    }
    if ((e = parse_path(arg, &i, mail, &p)) != E_OK) goto fail;
    if (arg[i] != ' ' && arg[i] != '\0') {
        e = E_SYNTAX;
        goto fail;
    }
    if ((e = parse_params(arg, i, &p)) != E_OK) goto fail;
    if ((e = fill_path(&p, path_r)) != E_OK) goto fail;
    return 0;
fail:
    *error_r = error_line(e, mail);
    return -1;
}

int smtp_parse_mail(const char *arg, struct smtp_path *path_r, const char **error_r)
{
    return parse_mail_rcpt(arg, true, path_r, error_r);
}

int smtp_parse_rcpt(const char *arg, struct smtp_path *path_r, const char **error_r)
{
    return parse_mail_rcpt(arg, false, path_r, error_r);
}

const char *smtp_path_param(const struct smtp_path *path, const char *keyword, bool *present_r)
{
    size_t kl = strlen(keyword);
    if (present_r) *present_r = false;
    for (size_t k = 0; k < path->nparams; k++) {
        const char *kw = path->params[k].keyword;
        if (strlen(kw) == kl && ascii_ieq(kw, keyword, kl)) {
            if (present_r) *present_r = true;
            return path->params[k].value ? path->params[k].value : "";
        }
    }
    return NULL;
}

void smtp_path_clear(struct smtp_path *path)
{
    free(path->address);
    free(path->localpart);
    free(path->domain);
    for (size_t k = 0; k < path->nparams && k < SMTP_MAX_PARAMS; k++) {
        free(path->params[k].keyword);
        free(path->params[k].value);
    }
    memset(path, 0, sizeof(*path));
}

int smtp_parse_bdat(const char *arg, unsigned long long *size_r, bool *last_r)
{
    unsigned long long v = 0;
    bool last = false;
    size_t i = 0;

    *size_r = 0;
    *last_r = false;
    if (!is_digit((unsigned char)arg[0])) return -1;
    while (is_digit((unsigned char)arg[i])) {
        v = v * 10 + (unsigned long long)(arg[i] - '0');
        if (v > MAX_BDAT_SIZE) return -1; /* checked every digit: no overflow */
        i++;
    }
    if (arg[i] == ' ') {
        while (arg[i] == ' ')
            i++;
        if (ascii_ieq(arg + i, "LAST", 4) && (arg[i + 4] == ' ' || arg[i + 4] == '\0')) {
            last = true;
            i += 4;
            while (arg[i] == ' ')
                i++;
        }
    }
    if (arg[i] != '\0') return -1;
    *size_r = v;
    *last_r = last;
    return 0;
}

bool smtp_helo_valid(const char *arg)
{
    size_t n = strlen(arg);
    while (n > 0 && arg[n - 1] == ' ')
        n--;
    if (n == 0 || n > MAX_DOMAIN + 2) return false;
    if (arg[0] == '[') return n >= 2 && arg[n - 1] == ']' && literal_valid(arg + 1, n - 2);

    /* A plausible host name: labels of letters, digits, '-' and '_' (seen in the wild
     * from Windows machine names), optionally one trailing dot. */
    if (arg[n - 1] == '.') n--;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)arg[i];
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
        } else if (is_alnum(c) || c == '-' || c == '_') {
            if (++label > MAX_LABEL) return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

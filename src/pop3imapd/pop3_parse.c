/* pop3_parse.c - POP3 command lines and their arguments (RFC 1939 3, RFC 2449 4)
 *
 * One forward pass over the line: refuse NUL and control characters, read the keyword
 * (letters only, upper-cased), keep the text after its single space as "rest", then
 * split a copy of that text at runs of spaces into arguments. Keywords that are letters
 * but unknown are the command table's business, not ours.
 *
 * SECURITY: the line comes straight from the network. Its length is checked before
 * anything is copied; the copy is into the fixed buffer of struct pop3_command; no
 * allocation, no locale-dependent character classes.
 */
#include "pop3_parse.h"

#include <string.h>

static bool is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

enum pop3_parse_result pop3_parse_command(const char *line, size_t len, struct pop3_command *cmd_r)
{
    memset(cmd_r->keyword, 0, sizeof(cmd_r->keyword));
    cmd_r->rest = "";
    cmd_r->nargs = 0;
    cmd_r->buf[0] = '\0';

    if (len > POP3_MAX_LINE) return POP3_PARSE_TOOLONG;
    if (memchr(line, '\0', len) != NULL) return POP3_PARSE_NUL;
    bool blank = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f) return POP3_PARSE_CONTROL;
        if (c != ' ') blank = false;
    }
    if (blank) return POP3_PARSE_EMPTY;

    size_t k = 0;
    while (k < len && k <= POP3_MAX_KEYWORD && is_alpha((unsigned char)line[k]))
        k++;
    if (k == 0 || k > POP3_MAX_KEYWORD || (k < len && line[k] != ' ')) return POP3_PARSE_KEYWORD;
    for (size_t i = 0; i < k; i++) {
        char c = line[i];
        cmd_r->keyword[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }

    /* rest: everything after the keyword's space, as sent */
    size_t rest_len = k < len ? len - k - 1 : 0;
    memcpy(cmd_r->buf, line + len - rest_len, rest_len);
    cmd_r->buf[rest_len] = '\0';
    cmd_r->rest = cmd_r->buf;
    /* the arguments are split in a second copy behind the first */
    char *args = cmd_r->buf + rest_len + 1;
    memcpy(args, cmd_r->buf, rest_len + 1);

    char *p = args, *end = args + rest_len;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        if (p == end) break;
        if (cmd_r->nargs < POP3_MAX_ARGS) cmd_r->args[cmd_r->nargs] = p;
        cmd_r->nargs++;
        while (p < end && *p != ' ')
            p++;
        if (p < end) *p++ = '\0';
    }
    return POP3_PARSE_OK;
}

const char *pop3_parse_error(enum pop3_parse_result result)
{
    switch (result) {
    case POP3_PARSE_OK: return "+OK";
    case POP3_PARSE_EMPTY: return "-ERR Empty command";
    case POP3_PARSE_TOOLONG: return "-ERR Line too long";
    case POP3_PARSE_NUL: return "-ERR NUL character in command";
    case POP3_PARSE_CONTROL: return "-ERR Control character in command";
    case POP3_PARSE_KEYWORD: return "-ERR Unknown command";
    }
    return "-ERR Syntax error";
}

int pop3_parse_number(const char *s, unsigned long *n_r)
{
    unsigned long n = 0;
    size_t i = 0;
    for (; s[i] != '\0'; i++) {
        if (i == 9 || s[i] < '0' || s[i] > '9') return -1;
        n = n * 10 + (unsigned long)(s[i] - '0');
    }
    if (i == 0) return -1;
    *n_r = n;
    return 0;
}

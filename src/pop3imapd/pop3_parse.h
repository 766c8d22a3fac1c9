/* pop3_parse.h - POP3 command lines and their arguments (RFC 1939 3, RFC 2449 4)
 *
 * Pure functions on one command line (without its CRLF), so they can be unit tested one
 * byte at a time and fuzzed. A command is a keyword of up to four letters, optionally
 * followed by one space and arguments separated by spaces. Nothing here does I/O, knows
 * the session state, or decides which keywords exist: the session's command table does.
 *
 * SECURITY: the line comes straight from the network. It is bounded here again
 * (POP3_MAX_LINE), NUL and other control characters are refused, and the parsed command
 * is a fixed-size copy: nothing is allocated, nothing is read past len.
 */
#ifndef ALKAID_POP3_PARSE_H
#define ALKAID_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 2449 4: a command line is at most 255 octets including its CRLF. We accept a
 * little more, because real clients overshoot (long user names, AUTH initial responses). */
#define POP3_MAX_COMMAND_LINE 255
#define POP3_LINE_SLACK       45
#define POP3_MAX_LINE         (POP3_MAX_COMMAND_LINE + POP3_LINE_SLACK) /* with CRLF */
#define POP3_MAX_KEYWORD      4 /* RFC 2449 4: keywords are three or four characters */
#define POP3_MAX_ARGS         4 /* arguments kept; no POP3 command takes more than two */

/* Why a line was refused; pop3_parse_error() gives the reply text. */
enum pop3_parse_result {
    POP3_PARSE_OK = 0,
    POP3_PARSE_EMPTY,   /* nothing but spaces */
    POP3_PARSE_TOOLONG, /* over POP3_MAX_LINE */
    POP3_PARSE_NUL,     /* a NUL byte */
    POP3_PARSE_CONTROL, /* another control character */
    POP3_PARSE_KEYWORD, /* keyword not 1-4 letters followed by a space or the end */
};

struct pop3_command {
    char keyword[POP3_MAX_KEYWORD + 1]; /* upper-cased */
    const char *rest;                   /* the whole text after the keyword and its space
                                           (PASS takes spaces literally); "" if none */
    size_t nargs;                       /* how many arguments the line has (may exceed
                                           POP3_MAX_ARGS: only the first ones are kept) */
    const char *args[POP3_MAX_ARGS];    /* split at runs of spaces, into buf */
    char buf[2 * (POP3_MAX_LINE + 1)];  /* rest, then a copy split into args */
};

/* Parses line[0..len) (the caller's buffer need not be NUL-terminated). On POP3_PARSE_OK
 * every pointer in *cmd_r points into cmd_r itself. */
enum pop3_parse_result pop3_parse_command(const char *line, size_t len, struct pop3_command *cmd_r);
/* The reply for a refused line, "-ERR ..." without CRLF. */
const char *pop3_parse_error(enum pop3_parse_result result);

/* A decimal number of 1 to 9 digits, nothing else (no sign, no spaces). 0, or -1. */
int pop3_parse_number(const char *s, unsigned long *n_r);

#endif

/* smtp_parse.h - SMTP command lines, paths and parameters (RFC 5321 4.1, 4.1.2)
 *
 * Pure functions on one command line (without its CRLF), so they can be unit tested one
 * byte at a time and fuzzed. Nothing here does I/O or policy.
 *
 * SECURITY: the line comes straight from the network. The caller has already bounded it
 * (SMTP_MAX_COMMAND_LINE) and refused NUL bytes; these functions still never read past
 * len, never trust a length inside the line, and bound every output.
 */
#ifndef ALKAID_SMTP_PARSE_H
#define ALKAID_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_MAX_COMMAND_LINE 512 /* octets including CRLF, RFC 5321 4.5.3.1.4 */
/* MAIL may be longer by what SIZE (RFC 1870 2: 26) and AUTH= (RFC 4954 3: 500) add */
#define SMTP_MAX_MAIL_LINE (SMTP_MAX_COMMAND_LINE + 26 + 500)
#define SMTP_MAX_PARAMS    16

enum smtp_verb {
    SMTP_CMD_UNKNOWN = 0,
    SMTP_CMD_HELO,
    SMTP_CMD_EHLO,
    SMTP_CMD_MAIL,
    SMTP_CMD_RCPT,
    SMTP_CMD_DATA,
    SMTP_CMD_BDAT,
    SMTP_CMD_RSET,
    SMTP_CMD_NOOP,
    SMTP_CMD_QUIT,
    SMTP_CMD_VRFY,
    SMTP_CMD_EXPN,
    SMTP_CMD_HELP,
    SMTP_CMD_STARTTLS,
    SMTP_CMD_AUTH,
    SMTP_CMD_ETRN,
};

struct smtp_command {
    enum smtp_verb verb;
    const char *arg; /* points into the line: the text after the verb and its separating
                        space(s), NUL-terminated by the caller's buffer; "" if none */
    size_t arg_len;
};

/* Splits a command line into verb (case-insensitive) and argument. The line must be
 * NUL-terminated at line[len]. Returns 0, or -1 if the line is empty or the verb is not
 * followed by a space or the end (e.g. "MAILX"): then verb is SMTP_CMD_UNKNOWN. An
 * unknown first word ("FOO bar") and a leading space are -1 as well; on -1 arg is "". */
int smtp_parse_command(const char *line, size_t len, struct smtp_command *cmd_r);

struct smtp_param {
    char *keyword; /* upper-cased */
    char *value;   /* NULL if the parameter had no "=value" */
};

struct smtp_path {
    char *address;   /* "local@domain" with the local part as sent (quotes kept only where
                        needed), domain lower-cased; "" for the null reverse-path <> */
    char *localpart; /* unquoted local part, as sent; "" for <> */
    char *domain;    /* lower-cased; "" for <> and for <postmaster> */
    struct smtp_param params[SMTP_MAX_PARAMS];
    size_t nparams;
};

/* Parses the argument of MAIL ("FROM:<path> [params]") or RCPT ("TO:<path> [params]").
 * Accepts what real clients send: optional space after the colon, a source route
 * "<@a,@b:x@y>" (ignored), quoted local parts, address literals "[192.0.2.1]" /
 * "[IPv6:...]", and for RCPT the special "<Postmaster>". Refuses a path without angle
 * brackets, an address over 256 octets, a local part over 64, a domain over 255, bad
 * characters, more than SMTP_MAX_PARAMS parameters, or a malformed parameter.
 * Returns 0, or -1 with *error_r set to a complete reply line such as
 * "501 5.1.7 Bad sender address syntax" (no CRLF); an 8-bit octet in the path gets
 * "553 5.6.7 ..." (no SMTPUTF8). *path_r is overwritten, not freed: after 0 release it
 * with smtp_path_clear(); after -1 it holds nothing (smtp_path_clear() is still safe). */
int smtp_parse_mail(const char *arg, struct smtp_path *path_r, const char **error_r);
int smtp_parse_rcpt(const char *arg, struct smtp_path *path_r, const char **error_r);
/* The value of a parameter by keyword (case-insensitive): NULL if absent; for a
 * parameter present without a value, *present_r (optional) is set to true and "" is
 * returned. */
const char *smtp_path_param(const struct smtp_path *path, const char *keyword, bool *present_r);
void smtp_path_clear(struct smtp_path *path);

/* BDAT argument: "<size> [LAST]". 0, or -1 on syntax error or a size over 2^53. */
int smtp_parse_bdat(const char *arg, unsigned long long *size_r, bool *last_r);

/* A domain or address literal as given to HELO/EHLO: a plausible domain or [literal].
 * Used only to give a helpful 501 for obviously broken greetings. */
bool smtp_helo_valid(const char *arg);

#endif

/* imap_parser.h - IMAP command syntax (RFC 3501 9, LITERAL+ RFC 7888), byte-driven
 *
 * The session feeds whatever arrived from the client; the parser assembles one command:
 * tag, name, arguments (atoms, quoted strings, literals, parenthesised lists, NIL). It
 * tells the session when a synchronizing literal was announced (the session then sends
 * "+ ..." and keeps feeding), and it can hand a literal's octets to a sink instead of
 * keeping them in memory (APPEND's message), so memory stays bounded whatever the client
 * sends.
 *
 * Atoms: an atom that contains '[' runs through the matching ']' including spaces,
 * parentheses and quoted strings inside (BODY[HEADER.FIELDS (From To)]<0.100>), so FETCH
 * attributes arrive as one atom each.
 *
 * Limits (struct imap_limits) are enforced while parsing, before anything is allocated:
 * the command text outside literals, each literal's size, the nesting depth of lists,
 * the number of arguments. A command past a limit, or malformed, is skipped to its end
 * (including any literal already announced, which is read and discarded - a
 * non-synchronizing one must be) and reported, so the session answers BAD (or NO
 * [TOOBIG]) and carries on with the next command.
 *
 * SECURITY: every byte is from the network. No recursion (lists are parsed with an
 * explicit stack bounded by max_depth); sizes are checked for overflow before use; a
 * literal's announced size is checked against the limit before a continuation is sent.
 */
#ifndef ALKAID_IMAP_PARSER_H
#define ALKAID_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_TAG_MAX 64

struct imap_limits {
    size_t max_line;           /* octets of command text outside literals (e.g. 65536) */
    uint64_t max_literal;      /* octets of literals kept in memory, all of one command's
                                  together (e.g. 8192 before login, 65536 after) */
    uint64_t max_sink_literal; /* octets of a literal handed to the sink (APPEND's
                                  message: [SMTP] MaxMessageSize); 0: no sink literals */
    unsigned max_depth;        /* list nesting (e.g. 16) */
    unsigned max_args;         /* arguments counted over all levels (e.g. 10000) */
};

enum imap_arg_type {
    IMAP_ARG_ATOM,   /* includes numbers, sequence sets, \Flags, BODY[...]<..> */
    IMAP_ARG_STRING, /* quoted string or literal */
    IMAP_ARG_LIST,   /* ( ... ) */
    IMAP_ARG_NIL,
};

struct imap_arg {
    enum imap_arg_type type;
    bool literal;  /* a STRING that came as a literal */
    bool sunk;     /* a literal whose octets went to the sink: str is NULL, len is its
                      size */
    bool literal8; /* "~{n}" (BINARY); accepted only where the session allows */
    char *str;     /* NUL-terminated (a literal may hold NULs: use len) */
    size_t len;
    struct imap_arg *items; /* LIST members */
    size_t nitems;
};

struct imap_command {
    char tag[IMAP_TAG_MAX + 1];
    char name[32]; /* upper-cased; for "UID FETCH" name is "FETCH" and uid is true */
    bool uid;
    struct imap_arg *args;
    size_t nargs;
};

/* Where a literal's octets go instead of memory. begin() is called with the literal's
 * size once it is known to be acceptable (it may refuse: return -1, and the command
 * fails with IMAP_PARSE_ERROR "[TOOBIG]"...), then write() with each piece. */
struct imap_literal_sink {
    /* Asked for every literal outside a list: return true to send this one to the sink.
     * The parser has parsed cmd's tag and name and nargs arguments so far. */
    bool (*wants)(void *ctx, const struct imap_command *cmd, size_t nargs, uint64_t size);
    int (*begin)(void *ctx, uint64_t size);
    int (*write)(void *ctx, const char *data, size_t len);
    void *ctx;
};

enum imap_parse_status {
    IMAP_PARSE_MORE,     /* everything fed was consumed; feed more */
    IMAP_PARSE_CONTINUE, /* a synchronizing literal was accepted: send the client a
                            continuation ("+ ...") and feed more */
    IMAP_PARSE_DONE,     /* a whole command: imap_parser_command() */
    IMAP_PARSE_ERROR,    /* the command was malformed or past a limit; it has been
                            skipped (its tag, if read, is in imap_parser_tag()); the
                            reason is imap_parser_error() */
};

struct imap_parser;

struct imap_parser *imap_parser_new(const struct imap_limits *limits);
void imap_parser_free(struct imap_parser **p);
/* Changes the limits (after login); takes effect with the next command. */
void imap_parser_set_limits(struct imap_parser *p, const struct imap_limits *limits);
void imap_parser_set_sink(struct imap_parser *p, const struct imap_literal_sink *sink);

/* Consumes octets of in[0..len), stopping after a status other than IMAP_PARSE_MORE;
 * *used_r tells how many were consumed. After DONE or ERROR the next call starts a new
 * command (call imap_parser_reset() first if the command was DONE and used). */
enum imap_parse_status imap_parser_feed(struct imap_parser *p, const char *in, size_t len,
                                        size_t *used_r);
/* True while the parser is inside a literal's octets or has a command partly read
 * (the session uses it to tell an idle client from one in the middle of a command). */
bool imap_parser_busy(const struct imap_parser *p);
/* The command after IMAP_PARSE_DONE (valid until imap_parser_reset()). */
const struct imap_command *imap_parser_command(const struct imap_parser *p);
/* The tag of the command being reported by IMAP_PARSE_ERROR ("" if none was read), and
 * the reason: a complete response text such as "BAD Unterminated quoted string" or
 * "NO [TOOBIG] Literal too large". */
const char *imap_parser_tag(const struct imap_parser *p);
const char *imap_parser_error(const struct imap_parser *p);
/* Frees the current command and gets ready for the next. */
void imap_parser_reset(struct imap_parser *p);

/* ---- argument helpers ---- */

/* astring (RFC 3501 9): the text of an ATOM or STRING argument; NULL for anything else
 * (a LIST, NIL, a sunk literal, a literal8). */
const char *imap_arg_astring(const struct imap_arg *arg);
/* Whether arg is the atom word (compared case-insensitively). */
bool imap_arg_is_atom(const struct imap_arg *arg, const char *word);

/* ---- sequence sets (RFC 3501 9 sequence-set, with '*' and "$" not supported) ---- */

#define IMAP_SEQSET_MAX_RANGES 10000
#define IMAP_SEQ_STAR          0 /* '*' in a parsed range (0 is never a sequence number or UID) */

struct imap_range {
    uint32_t lo, hi; /* IMAP_SEQ_STAR (0) stands for '*'; without '*', lo <= hi */
};

struct imap_seqset {
    struct imap_range *ranges;
    size_t nranges;
};

/* Parses "1:5,7,9:*". Ranges are normalised (lo <= hi) but not merged. 0, or -1 if the
 * syntax is wrong, a number is 0 or over 2^32-1, or there are more than
 * IMAP_SEQSET_MAX_RANGES ranges (nothing is allocated for an over-long set). */
int imap_seqset_parse(const char *s, struct imap_seqset *set_r);
void imap_seqset_free(struct imap_seqset *set);
/* Whether n is in the set, with '*' meaning max. */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t max);

#endif

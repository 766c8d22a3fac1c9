/* imap_search.h - IMAP SEARCH programs (RFC 3501 6.4.4, RFC 7162 3.1.5): parse, match
 *
 * imap_search_parse() turns the arguments of SEARCH (after the optional CHARSET) into a
 * tree of keys: an AND of the top-level keys, with OR, NOT and parenthesised groups as
 * inner nodes. AND and OR nodes are flattened and their children ordered by cost, so a
 * message is only read and MIME-parsed when a cheap key has not decided the answer.
 *
 * imap_search_bind() fixes what depends on the selected folder (keyword names to bits,
 * the sequence numbers past the end that make the command BAD); imap_search_match()
 * then decides one message, given its index record and a loader for its text.
 *
 * String keys (BCC BODY CC FROM HEADER SUBJECT TEXT TO) match case-insensitive
 * substrings of UTF-8 text (ASCII, Latin-1, Greek and Cyrillic letters fold); headers
 * are matched with RFC 2047 encoded-words decoded, bodies with transfer encodings and
 * charsets undone (mime.h). Dates: BEFORE/ON/SINCE compare the day of the internal date
 * in the server's time zone, SENTBEFORE/SENTON/SENTSINCE the day of the Date: field in
 * that field's own zone.
 *
 * SECURITY: the program comes from the network. Parsing is recursive but bounded by
 * IMAP_SEARCH_MAX_DEPTH levels of OR/NOT/parentheses and IMAP_SEARCH_MAX_KEYS keys, both
 * checked before anything is allocated for the next key; matching recurses no deeper
 * than the tree. Message text is only read through the caller's loader and mime.h.
 */
#ifndef ALKAID_IMAP_SEARCH_H
#define ALKAID_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "folder.h"
#include "imap_parser.h"
#include "mime.h"

#define IMAP_SEARCH_MAX_DEPTH 64    /* nesting of OR / NOT / ( ) */
#define IMAP_SEARCH_MAX_KEYS  10000 /* keys of one program, all levels */

enum imap_search_op {
    IMAP_SK_ALL,
    IMAP_SK_AND,
    IMAP_SK_OR,
    IMAP_SK_NOT,
    IMAP_SK_SEQSET, /* message sequence numbers */
    IMAP_SK_UIDSET,
    IMAP_SK_FLAG,    /* flag bits set (want true) or clear (want false) */
    IMAP_SK_KEYWORD, /* keyword set (want true) or clear */
    IMAP_SK_RECENT,  /* \Recent (want) or not */
    IMAP_SK_LARGER,
    IMAP_SK_SMALLER,
    IMAP_SK_BEFORE, /* internal date */
    IMAP_SK_ON,
    IMAP_SK_SINCE,
    IMAP_SK_SENTBEFORE, /* Date: field */
    IMAP_SK_SENTON,
    IMAP_SK_SENTSINCE,
    IMAP_SK_MODSEQ,
    IMAP_SK_HEADER, /* field (lower-cased) contains value */
    IMAP_SK_BODY,
    IMAP_SK_TEXT,
};

struct imap_search_key {
    enum imap_search_op op;
    bool want;      /* FLAG, KEYWORD, RECENT: set or clear */
    unsigned cost;  /* 0 index only, 1 header, 2 body */
    uint32_t flags; /* FLAG: FOLDER_* bits */
    uint64_t num;   /* LARGER, SMALLER, MODSEQ */
    long day;       /* dates: days since 1970-01-01 */
    char *name;     /* KEYWORD: the name; HEADER: the field name */
    char *value;    /* string keys: the folded needle */
    size_t value_len;
    int keyword_bit;        /* KEYWORD after imap_search_bind(): -1 if not in the folder */
    struct imap_seqset set; /* SEQSET, UIDSET */
    struct imap_search_key *children; /* AND, OR, NOT */
    size_t nchildren;
};

struct imap_search_program {
    struct imap_search_key root; /* an AND */
    size_t nkeys;
    bool has_modseq; /* a MODSEQ key: the result carries (MODSEQ n) */
    unsigned cost;   /* the costliest key */
};

enum imap_search_result {
    IMAP_SEARCH_OK = 0,
    IMAP_SEARCH_BAD = -1,        /* syntax error or a limit: reply BAD error */
    IMAP_SEARCH_BADCHARSET = -2, /* reply NO [BADCHARSET (UTF-8 US-ASCII)] */
};

/* Parses args[0..nargs) (everything after SEARCH, CHARSET included). On error, *error_r
 * is a static text for the response. */
enum imap_search_result imap_search_parse(const struct imap_arg *args, size_t nargs,
                                          struct imap_search_program **prog_r,
                                          const char **error_r);
void imap_search_free(struct imap_search_program **prog);

/* Resolves KEYWORD/UNKEYWORD names against the folder's keywords[0..nkeywords) (bit i =
 * keywords[i]) and checks the sequence-number sets against count messages: -1 (BAD, RFC
 * 3501 9) if a number other than '*' is past the end or '*' is used in an empty view. */
int imap_search_bind(struct imap_search_program *prog, const char *const *keywords,
                     size_t nkeywords, uint32_t count);

/* One message to decide. The caller fills the first fields; load() is called at most
 * once, when a key needs the message text, and returns 0 with the text (which must stay
 * valid until imap_search_msg_done()) or -1 if the message is gone. */
struct imap_search_msg {
    const struct folder_msg *msg;
    uint32_t seq;
    bool recent;
    uint32_t max_seq, max_uid; /* what '*' stands for */
    int (*load)(void *ctx, const char **data_r, size_t *len_r);
    void *load_ctx;
    /* private */
    const char *data;
    size_t len;
    int state; /* 0 not loaded, 1 header parsed, 2 all parsed, -1 gone */
    struct mime_message mime;
};

bool imap_search_match(const struct imap_search_program *prog, struct imap_search_msg *m);
/* Frees what matching parsed (the caller unmaps the text after this). */
void imap_search_msg_done(struct imap_search_msg *m);

/* ---- helpers shared with FETCH/APPEND and the tests ---- */

/* Parses an IMAP date "d-Mon-yyyy" / "dd-Mon-yyyy" into days since 1970-01-01. 0, or -1. */
int imap_parse_day(const char *s, size_t len, long *day_r);
/* Parses an IMAP date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (the day may be " d" or "d")
 * into UTC seconds. 0, or -1. */
int imap_parse_datetime(const char *s, size_t len, time_t *t_r);
/* Folds UTF-8 text for case-insensitive matching (same length): ASCII, Latin-1, Greek
 * and Cyrillic capitals to small letters. */
void imap_search_fold(char *s, size_t len);

#endif

/* imap_fetch.h - FETCH attributes (RFC 3501 6.4.5, 7.4.2; RFC 7162 3.1.4): plan, render
 *
 * imap_fetch_parse() turns FETCH's attribute argument (an atom, a macro ALL/FAST/FULL,
 * or a list) and its optional modifier list ((CHANGEDSINCE n)) into a fetch plan: the
 * items in the order asked, each BODY[section]<partial> with its section parsed, and
 * what the plan needs from a message (its text, the header only, the whole MIME tree)
 * and whether it sets \Seen.
 *
 * imap_fetch_render() writes one message's "* n FETCH (...)" response through a writer
 * callback: the small items built in a buffer, body data streamed from the caller's
 * mapped file in chunks as literals, so a 50 MB message never sits in a response
 * buffer. MIME is parsed only when the plan needs it, and only the header when that is
 * enough.
 *
 * SECURITY: the attributes come from the network: section part numbers, field lists
 * and partial ranges are bounded (IMAP_FETCH_MAX_*) and checked for overflow while they
 * are parsed. Message data goes out only as literals with exact lengths (NULs replaced
 * by 0x80, as IMAP4rev1 text may not hold them); header values only through mime.h's
 * escaping renderers.
 */
#ifndef ALKAID_IMAP_FETCH_H
#define ALKAID_IMAP_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "folder.h"
#include "imap_parser.h"
#include "sbuf.h"

#define IMAP_FETCH_MAX_ITEMS      200 /* attributes in one FETCH */
#define IMAP_FETCH_MAX_FIELDS     200 /* names in one HEADER.FIELDS list */
#define IMAP_FETCH_MAX_FIELD_LEN  200 /* octets of one field name */
#define IMAP_FETCH_MAX_PART_DEPTH 32  /* numbers in a section part "1.2.3" */

enum imap_fetch_kind {
    IMAP_FETCH_FLAGS,
    IMAP_FETCH_INTERNALDATE,
    IMAP_FETCH_RFC822_SIZE,
    IMAP_FETCH_ENVELOPE,
    IMAP_FETCH_BODYSTRUCTURE,
    IMAP_FETCH_BODY, /* BODY without a section: the non-extensible BODYSTRUCTURE */
    IMAP_FETCH_UID,
    IMAP_FETCH_MODSEQ,
    IMAP_FETCH_SECTION, /* BODY[..], BODY.PEEK[..], RFC822, RFC822.HEADER, RFC822.TEXT */
};

enum imap_section_text {
    IMAP_SECTION_NONE, /* the whole message or part */
    IMAP_SECTION_HEADER,
    IMAP_SECTION_FIELDS,     /* HEADER.FIELDS (..) */
    IMAP_SECTION_FIELDS_NOT, /* HEADER.FIELDS.NOT (..) */
    IMAP_SECTION_TEXT,
    IMAP_SECTION_MIME,
};

struct imap_fetch_item {
    enum imap_fetch_kind kind;
    /* SECTION only */
    char *part; /* "" or "1.2.3" */
    enum imap_section_text text;
    char **fields; /* upper-cased field names */
    size_t nfields;
    bool peek; /* BODY.PEEK / RFC822.HEADER: does not set \Seen */
    bool partial;
    uint32_t origin, count;
    char *label; /* the response's name: "BODY[1.TEXT]<0>", "RFC822.HEADER" */
};

struct imap_fetch_plan {
    struct imap_fetch_item *items;
    size_t nitems;
    bool want_uid, want_flags, want_modseq;
    bool sets_seen;    /* a section fetched without PEEK */
    int need;          /* the message text: 0 not needed, 1 raw, 2 with its header
                          parsed, 3 with the whole MIME tree parsed */
    bool changedsince; /* the CHANGEDSINCE modifier */
    uint64_t changedsince_modseq;
};

/* Parses attrs (FETCH's second argument) and modifiers (the third, or NULL). 0, or -1
 * with *error_r a static text for a BAD response. */
int imap_fetch_parse(const struct imap_arg *attrs, const struct imap_arg *modifiers,
                     struct imap_fetch_plan *plan_r, const char **error_r);
void imap_fetch_plan_free(struct imap_fetch_plan *plan);

struct imap_fetch_writer {
    void (*write)(void *ctx, const void *data, size_t len);
    void *ctx;
};

/* One message to render. */
struct imap_fetch_msg {
    uint32_t seq;
    const struct folder_msg *msg;
    const char *flags; /* "FLAGS (...)" to send (the plan asks, or \Seen was just
                          set), or NULL */
    bool uid;          /* send UID even if the plan does not ask (UID FETCH,
                          CONDSTORE) */
    bool modseq;       /* send MODSEQ even if the plan does not ask (CONDSTORE) */
    const char *data;  /* the message text when plan->need, else NULL */
    size_t len;
};

/* Writes "* seq FETCH (...)\r\n". */
void imap_fetch_render(const struct imap_fetch_plan *plan, const struct imap_fetch_msg *m,
                       const struct imap_fetch_writer *w);

/* The length of the header of data[0..len) including the blank line after it (len if
 * there is no blank line). */
size_t imap_header_length(const char *data, size_t len);

/* INTERNALDATE as RFC 3501 date-time in the server's zone: "dd-Mon-yyyy hh:mm:ss +zzzz"
 * (day space-padded), written to buf (at least 27 octets). */
void imap_fetch_date(time_t t, char *buf, size_t size);

/* Appends numbers[0..n) as a sequence set, runs of consecutive ascending numbers as
 * ranges, in the order given ("1:3,7,5"): COPYUID, MODIFIED. */
void imap_sbuf_set(struct sbuf *out, const uint32_t *numbers, size_t n);

/* A message file mapped for reading (an empty file has data "" and len 0). */
struct imap_mapped {
    const char *data;
    size_t len;
    void *map;
    size_t maplen;
};
/* Opens and maps msg's file. 0, or -1 if it is gone (expunged meanwhile). */
int imap_message_map(struct folder *f, const struct folder_msg *msg, struct imap_mapped *m_r);
void imap_message_unmap(struct imap_mapped *m);

struct imap_session;
/* Turns CONDSTORE on for the session (a CONDSTORE-enabling command, RFC 7162 3.1),
 * announcing the HIGHESTMODSEQ of the selected folder the first time. */
void imap_condstore_enable(struct imap_session *s);

#endif

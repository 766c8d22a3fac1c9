/* folder.h - an IMAP folder on disk: messages with stable UIDs, flags, keywords, modseqs
 *
 * A folder is a directory of message files: the INBOX is the mailbox directory itself
 * (mail/<domain>/<user>/), other folders are subdirectories ("Sent" is
 * mail/<domain>/<user>/Sent/, "Work/2026" is .../Work/2026/). Messages are files
 * "<id>.eml" as delivered by smtpd (mailbox.h). Next to them, the folder's index
 * ".alkaid-index" is an append-only text log (format in docs/storage.md):
 *
 *   ALKAID-INDEX 1 <uidvalidity> <uidnext> <highestmodseq>
 *   + <uid> <modseq> <internaldate> <size> <file> <flags> [keyword ...]   (message added)
 *   = <uid> <modseq> <flags> [keyword ...]                                (flags replaced)
 *   - <uid> <modseq>                                                      (expunged)
 *
 * where <flags> is a string of letters for the system flags ("S" \Seen, "A" \Answered,
 * "F" \Flagged, "D" \Deleted, "T" \Draft) or "-" for none. Replaying the log gives the
 * folder's state; it is compacted (rewritten through a temporary name and rename) when
 * it has grown well past its live content.
 *
 * Who writes what:
 *   - smtpd (and POP3 deletions) only add and remove message files; they never touch the
 *     index and never wait for anyone. A folder notices new and vanished files when it
 *     syncs (the directory's mtime changed) and assigns UIDs / logs expunges then.
 *   - Every change to the index is made under an flock on ".alkaid-lock" in the folder,
 *     after catching up with what other processes appended, so several pop3imapd
 *     processes (a cluster sharing mail/) agree. Within a process, one struct folder per
 *     directory is shared by all sessions (reference counted, with its own mutex).
 *   - UIDs are assigned in file-name order (= arrival order) and the log is fdatasynced
 *     before any session may see them, so a UID is never given to two messages.
 *   - An expunge unlinks the files first and logs "-" after: a crash in between leaves
 *     an index entry without a file, which the next sync turns into an expunge; an
 *     expunged message never comes back.
 *   - A missing index is rebuilt from the files (a new UIDVALIDITY, UIDs in name order);
 *     a damaged line is skipped and reported, so every UID that can be kept is kept; an
 *     unreadable header moves the file aside to ".alkaid-index.damaged" first.
 *
 * Sessions: each session holds a struct folder_view, its own picture of the folder (the
 * message sequence numbers it has been told about and the highest modseq it has seen).
 * folder_view_update() brings the view up to date and reports what changed (new
 * messages, expunges, flag changes) so the session can send EXISTS / EXPUNGE / FETCH at
 * the moments RFC 3501 allows.
 *
 * SECURITY: folder names are checked by folder_name_valid() before they become paths;
 * file names read from the index or the directory are checked (no '/', no leading '.',
 * must end in ".eml") before use; nothing follows a symbolic link.
 */
#ifndef ALKAID_FOLDER_H
#define ALKAID_FOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sbuf.h"

#define FOLDER_INDEX            ".alkaid-index"
#define FOLDER_LOCK             ".alkaid-lock"
#define FOLDER_SUBSCRIPTIONS    ".alkaid-subscriptions" /* in the mailbox root */
#define FOLDER_NOSELECT         ".alkaid-noselect"      /* in a \Noselect folder's directory */
#define FOLDER_UIDVALIDITY_MARK ".alkaid-uidvalidity"   /* the highest UIDVALIDITY it had */

#define FOLDER_MAX_KEYWORDS    64 /* per folder (the keyword bit mask is 64 bits) */
#define FOLDER_MAX_KEYWORD_LEN 64
#define FOLDER_MAX_NAME        1000 /* octets of a full folder name */
#define FOLDER_MAX_DEPTH       16   /* hierarchy levels */

/* System flags (bits of folder_msg.flags). \Recent is per session, not stored. */
enum {
    FOLDER_SEEN = 1 << 0,
    FOLDER_ANSWERED = 1 << 1,
    FOLDER_FLAGGED = 1 << 2,
    FOLDER_DELETED = 1 << 3,
    FOLDER_DRAFT = 1 << 4,
};

struct folder_msg {
    uint32_t uid;
    uint32_t flags;    /* FOLDER_* */
    uint64_t keywords; /* bit i: keyword i of folder_keyword() */
    uint64_t modseq;
    uint64_t size; /* octets of the file = RFC822.SIZE */
    time_t internaldate;
    char *file; /* "<id>.eml" */
};

struct folder;

enum folder_result {
    FOLDER_OK = 0,
    FOLDER_NOTFOUND = 1, /* no such folder */
    FOLDER_EXISTS = 2,   /* create/rename onto an existing one */
    FOLDER_INVALID = 3,  /* a name or argument refused (see error_r) */
    FOLDER_NOSELECTABLE = 4,
    FOLDER_ERROR = -1, /* I/O error: a temporary failure (see error_r) */
};

/* ---- names ------------------------------------------------------------------------ */

/* Whether name (modified UTF-7, '/' as the hierarchy delimiter, "INBOX" case-insensitive)
 * may name a folder: valid modified UTF-7, no empty, "." or ".." component, no component
 * starting with '.' or '~', no '\\', NUL, CR, LF or other control characters, none of
 * : * ? " < > | (not portable as file names), at most FOLDER_MAX_NAME octets and
 * FOLDER_MAX_DEPTH levels. *why_r (optional) says what is wrong. */
bool folder_name_valid(const char *name, const char **why_r);
/* The directory of folder name under mailbox_dir (xmalloc'ed); NULL if the name is not
 * valid. "INBOX" (any case) is mailbox_dir itself; "INBOX/x" is mailbox_dir/INBOX/x. */
char *folder_path(const char *mailbox_dir, const char *name);

/* ---- the folders of a mailbox ------------------------------------------------------ */

struct folder_info {
    char *name;    /* e.g. "INBOX", "Sent", "Work/2026" (modified UTF-7) */
    bool noselect; /* \Noselect: a deleted folder kept for its children */
    bool children; /* has subfolders */
    bool subscribed;
    const char *special; /* "\\Sent", "\\Drafts", "\\Trash", "\\Junk" or NULL */
};

/* Creates the special-use folders Sent, Drafts, Trash, Junk (and the INBOX directory)
 * if missing. */
enum folder_result folder_mailbox_init(const char *mailbox_dir, const char **error_r);
/* Every folder of the mailbox, INBOX first, then in name order. */
enum folder_result folder_list(const char *mailbox_dir, struct folder_info **list_r,
                               size_t *count_r, const char **error_r);
void folder_list_free(struct folder_info **list, size_t count);
enum folder_result folder_create(const char *mailbox_dir, const char *name, const char **error_r);
/* RFC 3501 DELETE: a folder with subfolders keeps its directory as \Noselect (its
 * messages are removed); INBOX cannot be deleted. */
enum folder_result folder_delete(const char *mailbox_dir, const char *name, const char **error_r);
/* RFC 3501 RENAME, including subfolders; renaming INBOX moves its messages to a new
 * folder and leaves INBOX empty. */
enum folder_result folder_rename(const char *mailbox_dir, const char *from, const char *to,
                                 const char **error_r);
enum folder_result folder_subscribe(const char *mailbox_dir, const char *name, bool subscribe,
                                    const char **error_r);
/* The subscribed names, whether or not those folders exist (RFC 3501 6.3.6: a name
 * stays subscribed until it is unsubscribed). *names_r: xmalloc'ed array of xmalloc'ed
 * strings (free each, then the array). */
enum folder_result folder_subscriptions(const char *mailbox_dir, char ***names_r, size_t *count_r,
                                        const char **error_r);

/* ---- one folder ------------------------------------------------------------------- */

/* Opens (shares) the folder name of mailbox_dir and syncs it with the disk. */
enum folder_result folder_open(const char *mailbox_dir, const char *name, struct folder **f_r,
                               const char **error_r);
void folder_close(struct folder **f);
/* Brings the shared state up to date: what other processes logged, and files that
 * appeared or vanished (only when the directory's mtime changed, so cheap to call
 * often). */
enum folder_result folder_sync(struct folder *f, const char **error_r);

struct folder_status {
    uint32_t messages, recent, unseen, uidvalidity, uidnext;
    uint64_t highestmodseq, size;
};
/* STATUS figures (recent: messages no session has claimed as \Recent yet). */
enum folder_result folder_status(const char *mailbox_dir, const char *name,
                                 struct folder_status *st_r, const char **error_r);

uint32_t folder_uidvalidity(const struct folder *f);
/* The folder's keyword names (index i = bit i). */
size_t folder_keyword_count(const struct folder *f);
const char *folder_keyword(const struct folder *f, size_t i);
/* The bit of keyword name (case-insensitive), adding it to the folder if new; -1 if
 * the folder already has FOLDER_MAX_KEYWORDS keywords or the name is not an atom. */
int folder_keyword_bit(struct folder *f, const char *name);

/* Adds a message file to the folder: the data of src_fd (read from offset 0) is written
 * to "<new id>.eml" (through a hidden temporary name, fsynced, renamed), its mtime set
 * to internaldate, and it gets the next UID with flags/keywords. *uid_r: the UID. */
enum folder_result folder_append(struct folder *f, int src_fd, time_t internaldate, uint32_t flags,
                                 uint64_t keywords, uint32_t *uid_r, const char **error_r);
/* Like folder_append() with the message in memory. */
enum folder_result folder_append_data(struct folder *f, const void *data, size_t len,
                                      time_t internaldate, uint32_t flags, const char **keywords,
                                      size_t nkeywords, uint32_t *uid_r, const char **error_r);
/* Copies the messages uids[0..n) of src into dst (hard links where possible), keeping
 * flags, keywords and internal dates; new_uids_r (n entries) receives their UIDs in dst.
 * UIDs that no longer exist in src are skipped (their new_uids entry is 0). */
enum folder_result folder_copy(struct folder *src, const uint32_t *uids, size_t n,
                               struct folder *dst, uint32_t *new_uids_r, const char **error_r);

enum folder_store_mode { FOLDER_STORE_SET, FOLDER_STORE_ADD, FOLDER_STORE_REMOVE };
/* Changes the flags of the messages uids[0..n): each changed message gets a new modseq.
 * With unchangedsince != 0 (CONDSTORE), a message whose modseq is above it is not
 * changed and its UID is put in failed_r (caller-provided, n entries; *nfailed_r). */
enum folder_result folder_store(struct folder *f, const uint32_t *uids, size_t n,
                                enum folder_store_mode mode, uint32_t flags, uint64_t keywords,
                                uint64_t unchangedsince, uint32_t *failed_r, size_t *nfailed_r,
                                const char **error_r);
/* Removes the messages uids[0..n) (for EXPUNGE: those with \Deleted; the caller picks). */
enum folder_result folder_expunge(struct folder *f, const uint32_t *uids, size_t n,
                                  const char **error_r);

/* Reads (copies) the current message record of uid into *msg_r (msg_r->file is owned by
 * the caller: free it). FOLDER_NOTFOUND if it was expunged. */
enum folder_result folder_get(struct folder *f, uint32_t uid, struct folder_msg *msg_r);
/* Opens a message file for reading (O_RDONLY, no symlinks). -1 if it is gone. */
int folder_open_message(struct folder *f, const struct folder_msg *msg);

/* ---- a session's view ------------------------------------------------------------- */

struct folder_view {
    struct folder *folder;
    uint32_t *uids; /* sequence number i+1 is uids[i] */
    size_t count;
    uint64_t modseq;  /* highest modseq this view has reported */
    uint32_t *recent; /* \Recent UIDs claimed by this view (sorted) */
    size_t nrecent;
    bool readonly;        /* EXAMINE: claims no \Recent and changes nothing */
    uint32_t uidvalidity; /* the folder's at folder_view_init() */
};

struct folder_changes {
    uint32_t *expunged_seqs; /* sequence numbers to report as EXPUNGE, in the order to
                                send them (each relative to the view after the previous) */
    size_t nexpunged;
    uint32_t *expunged_uids; /* the same messages' UIDs (for VANISHED, logs) */
    uint32_t *changed_uids;  /* messages (still in the view) whose flags/modseq changed */
    size_t nchanged;
    size_t exists; /* the view's new message count, if it grew (else 0) */
    size_t recent; /* the view's \Recent count (meaningful with exists) */
};

/* Starts a view of f (SELECT/EXAMINE): all current messages; claims \Recent ones unless
 * readonly (a read-only view sees the unclaimed ones as \Recent without claiming them).
 * The view holds its own reference to f, released by folder_view_free(). */
void folder_view_init(struct folder_view *v, struct folder *f, bool readonly);
void folder_view_free(struct folder_view *v);
/* Syncs the folder and brings the view up to date. With allow_expunge false (during
 * FETCH, STORE, SEARCH - RFC 3501 7.4.1) expunges are held back and the view keeps the
 * expunged messages' sequence numbers; new messages and flag changes are reported
 * (changes made through this process's own folder_store() too). FOLDER_NOTFOUND: the
 * folder was deleted; FOLDER_NOSELECTABLE: it became \Noselect or its index was rebuilt
 * with a new UIDVALIDITY - either way the view is over (the session ends with BYE). */
enum folder_result folder_view_update(struct folder_view *v, bool allow_expunge,
                                      struct folder_changes *ch_r, const char **error_r);
void folder_changes_free(struct folder_changes *ch);
/* Sequence number (1-based) of uid in the view, 0 if absent. */
uint32_t folder_view_seq(const struct folder_view *v, uint32_t uid);
bool folder_view_is_recent(const struct folder_view *v, uint32_t uid);

#endif

/* pop3_maildrop.h - the locked snapshot of an INBOX that a POP3 session works on
 *
 * pop3_maildrop_open() takes the POP3 lock of a mailbox (flock on the hidden file
 * POP3_LOCK_NAME inside it, so a second POP3 session for the same mailbox is refused
 * while delivery, which never locks, goes on) and lists the INBOX once. Message numbers
 * (1..count) index that snapshot for the whole session: messages delivered later are
 * seen by the next session. DELE only marks; pop3_maildrop_commit() (QUIT in the UPDATE
 * state) unlinks the marked files and fsyncs the directory. Closing without a commit
 * deletes nothing.
 *
 * UIDs (UIDL) are derived from the file name alone, so they are stable across
 * sessions: the name without ".eml" when it is 1 to 70 printable characters, else the
 * first POP3_UIDL_HASH_HEX hex digits of the SHA-256 of the whole name.
 *
 * SECURITY: names come from readdir() of the mailbox and are opened with openat() and
 * O_NOFOLLOW relative to the directory opened at lock time; a message that vanished
 * (removed by another reader) is reported, never fatal.
 */
#ifndef ALKAID_POP3_MAILDROP_H
#define ALKAID_POP3_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POP3_LOCK_NAME     ".pop3.lock"
#define POP3_UIDL_MAX      70 /* RFC 1939 7: 1 to 70 characters 0x21..0x7E */
#define POP3_UIDL_HASH_HEX 40

struct pop3_msg {
    char *name; /* file name in the mailbox */
    uint64_t size;
    bool deleted;
    char uidl[POP3_UIDL_MAX + 1];
};

struct pop3_maildrop {
    char *dir;
    int dir_fd;
    int lock_fd;
    struct pop3_msg *msgs;
    size_t count;
    size_t ndeleted;
    uint64_t size;         /* all messages */
    uint64_t deleted_size; /* marked ones */
};

enum pop3_maildrop_result {
    POP3_MAILDROP_OK = 0,
    POP3_MAILDROP_INUSE, /* another POP3 session holds the lock */
    POP3_MAILDROP_ERROR, /* cannot create, lock or list the mailbox (errno) */
};

/* Locks and lists dir (creating an empty mailbox if there is none). */
enum pop3_maildrop_result pop3_maildrop_open(const char *dir, struct pop3_maildrop **drop_r);
/* Releases the lock and frees the snapshot; deletes nothing. */
void pop3_maildrop_close(struct pop3_maildrop **drop);

/* The message with number n (1-based), or NULL if there is none or it is marked. */
struct pop3_msg *pop3_maildrop_get(struct pop3_maildrop *drop, unsigned long n);
void pop3_maildrop_delete(struct pop3_maildrop *drop, struct pop3_msg *msg);
/* Unmarks every message. */
void pop3_maildrop_reset(struct pop3_maildrop *drop);
/* Opens a message for reading: fd, or -1 with errno (ENOENT: removed meanwhile). */
int pop3_maildrop_open_msg(struct pop3_maildrop *drop, const struct pop3_msg *msg);
/* Unlinks the marked messages (one already gone counts as removed) and fsyncs the
 * directory. 0, or -1 with errno if any could not be removed or the fsync failed;
 * *removed_r counts the files gone. */
int pop3_maildrop_commit(struct pop3_maildrop *drop, size_t *removed_r);

/* The UIDL of a message file name into uidl[POP3_UIDL_MAX + 1]. */
void pop3_uidl(const char *name, char *uidl);

#endif

/* mailbox.h - a user's mailbox directory: delivering into it, listing it, its size
 *
 * mail/<domain dir>/<local part>/ holds the INBOX, one file per message named
 * "<spool id>.eml" (RFC 5322 text with CRLF line ends); folders are subdirectories.
 * Files whose names start with '.' are ours (work files, indexes) and never messages.
 * A message appears only by link() or rename() of a complete, fsynced file, so a
 * reader sees a whole message or none. See docs/storage.md.
 *
 * SECURITY: directory names come from the store, which only accepts safe names
 * (address.h); names found on disk are still checked before use.
 */
#ifndef ALKAID_MAILBOX_H
#define ALKAID_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define MAILBOX_SUFFIX ".eml"

struct mailbox_msg {
    char *name; /* file name, with MAILBOX_SUFFIX */
    uint64_t size;
    time_t mtime;
};

/* mail_dir/domain_dir/local, xmalloc'ed. */
char *mailbox_path(const char *mail_dir, const char *domain_dir, const char *local);
/* Creates the mailbox directory (and its domain directory) if missing, making the new
 * entries durable. 0, or -1 with errno. */
int mailbox_create(const char *dir);
/* Puts the complete, fsynced file src_path (open as src_fd) into dir as
 * <id>MAILBOX_SUFFIX: a hard link where the file system allows it, else a copy through
 * a hidden temporary name, fsynced, then renamed. The directory itself is not fsynced:
 * the caller does that (once per directory) before acknowledging. 0, or -1 with errno. */
int mailbox_deliver(const char *dir, const char *id, const char *src_path, int src_fd);
/* Removes a message delivered by mailbox_deliver() (rollback). */
void mailbox_undeliver(const char *dir, const char *id);
/* The INBOX messages, oldest first. 0, or -1 with errno (a missing directory is an empty
 * mailbox). */
int mailbox_list(const char *dir, struct mailbox_msg **msgs_r, size_t *count_r);
void mailbox_list_free(struct mailbox_msg **msgs, size_t count);
/* Bytes used by all messages in the mailbox and its folders (what quotas count); 0 for a
 * missing one. *messages_r (optional) is set to the number of messages. */
uint64_t mailbox_usage(const char *dir, uint64_t *messages_r);
/* Removes hidden work files (".*.part") whose last change (ctime) is more than 36 hours
 * old: left by a crash during a copy or an APPEND. */
void mailbox_clean(const char *dir);
/* The same, judged as if the time were now (tests). */
void mailbox_clean_at(const char *dir, time_t now);

/* Removes mail_dir/domain_dir/local and everything under it (alkaid-user del --purge,
 * the admin port's USER DEL PURGE): with openat/unlinkat and O_NOFOLLOW, so a symbolic
 * link is removed, never followed. 1 removed, 0 there was none, -1 error (errno). */
int mailbox_purge(const char *mail_dir, const char *domain_dir, const char *local);

#endif

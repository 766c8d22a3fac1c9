/* spool.h - TEMP and FORWARD: unique names, the message being received, queue files
 *
 * Names: "<seconds>.M<microseconds>P<pid>Q<counter>.<host>" - ascending in time, unique
 * across the processes of one host and across hosts sharing mail/ (the host name is
 * part of it).
 *
 * A queue file in mail/FORWARD/ (format in docs/storage.md):
 *   ALKAID-QUEUE 1\n  <envelope lines "KEY value\n">  \n  <message, SIZE octets>
 *   ALKAID-END\n
 * It is written as "<id>.new", fsynced and renamed to "<id>.tmp"; a file without the
 * end marker (or whose size does not add up) is never sent: at start-up it is moved to
 * mail/FORWARD/damaged/ and reported.
 *
 * SECURITY: envelope values are checked to hold no CR, LF or NUL before they are
 * written, so a client cannot inject envelope lines.
 */
#ifndef ALKAID_SPOOL_H
#define ALKAID_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sbuf.h"

#define SPOOL_ID_MAX           160
#define SPOOL_QUEUE_MAGIC      "ALKAID-QUEUE 1\n"
#define SPOOL_QUEUE_END        "ALKAID-END\n"
#define SPOOL_QUEUE_MAX_HEADER (1u << 20)

/* Sets the host part of names (once, at start-up; dots and slashes are kept safe). */
void spool_set_hostname(const char *hostname);
/* A new unique name into buf (SPOOL_ID_MAX bytes). */
void spool_make_id(char *buf, size_t size);

/* The message being received: temp/<id>.tmp, written through a buffer. */
struct spool_file {
    int fd;
    char id[SPOOL_ID_MAX];
    char *path;
    struct sbuf buf;
    uint64_t size;  /* octets written so far (buffered included) */
    int error;      /* errno of the first failed write, 0 if none */
    bool synced;    /* fsynced since the last write */
    bool reusable;  /* a TEMP file: kept for the next message after discard if unlinked */
    bool committed; /* a queue file written in place and renamed: discard only closes */
};

int spool_file_create(struct spool_file *f, const char *dir, const char *suffix);
/* The same with a given id (dir/<id><suffix>, O_EXCL). */
int spool_file_create_id(struct spool_file *f, const char *dir, const char *id, const char *suffix);
void spool_file_write(struct spool_file *f, const void *data, size_t len);
/* Writes out the buffer and fsyncs. 0, or -1 with errno (also for an earlier failure). */
int spool_file_sync(struct spool_file *f);
/* Writes out the buffer without fsync (the file's content is complete for readers). */
int spool_file_flush(struct spool_file *f);
/* Closes and removes the file. A TEMP file (suffix ".tmp") that no mailbox links to is
 * emptied and kept instead, for a later spool_file_create() in the same directory: its
 * name then no longer matches its id (only f->path names it). */
void spool_file_discard(struct spool_file *f);
/* Removes the TEMP files kept for reuse (at stop; tests). */
void spool_pool_drain(void);

/* At start-up: removes the message files left in temp/ (none of them was acknowledged):
 * only names of the TEMP shape; anything else in the directory is left alone. */
void spool_clean_temp(const char *temp_dir);

struct queue_envelope {
    char *id;
    long long created;
    char *sender; /* "" for the null reverse-path */
    char *auth;   /* authenticated submitter, or NULL */
    char *client; /* client address, or NULL */
    char **rcpts;
    size_t nrcpts;
    char **errors; /* NULL, or per recipient the last temporary error or NULL:
                      "<status> <remote host or -> <reply text>" */
    unsigned attempts;
    long long next_try;
    bool delay_notified; /* the sender has been told the message is delayed */
    uint64_t size;       /* octets of message */
};

/* Writes a queue file for env with the message taken from msg_fd[offset..offset+size)
 * into dir as <env->id>.tmp (through <id>.new, fsynced). The directory is not fsynced:
 * the caller does that once for everything it wrote. *path_r (optional) gets the final
 * path. 0, or -1 with errno. */
int spool_queue_write(const char *dir, const struct queue_envelope *env, int msg_fd,
                      uint64_t offset, char **path_r);
/* Reads and checks a queue file's envelope; *msg_offset_r is where the message starts.
 * 0, or -1 if the file is damaged or incomplete (errno EINVAL) or unreadable. */
int spool_queue_read(const char *path, struct queue_envelope *env_r, uint64_t *msg_offset_r);
int spool_queue_read_fd(int fd, struct queue_envelope *env_r, uint64_t *msg_offset_r);
void spool_queue_envelope_clear(struct queue_envelope *env);

/* A message only for remote recipients is received straight into its queue file:
 * spool_queue_begin() creates dir/<env->id>.new and writes the envelope with a SIZE to be
 * filled in; the caller writes the message with spool_file_write(); spool_queue_commit()
 * adds the end marker, fills in SIZE, fsyncs and renames it to dir/<id>.tmp (the caller
 * fsyncs dir). Until the commit, spool_file_discard() removes it; after, only closes it. */
struct spool_queue_inplace {
    uint64_t header_len; /* where the message starts */
    size_t size_off;     /* where the SIZE digits are */
};
int spool_queue_begin(struct spool_file *f, const char *dir, const struct queue_envelope *env,
                      struct spool_queue_inplace *ip);
int spool_queue_commit(struct spool_file *f, const char *dir, const struct spool_queue_inplace *ip,
                       char **path_r);
/* Writes a new version of a queue file (the message copied from old_fd at msg_offset)
 * as dir/<id>.new, fsynced, locked, then renamed to dir/<id><suffix> (atomically
 * replacing a file of that name). The new file stays open and locked: *fd_r. */
int spool_queue_rewrite(const char *dir, const struct queue_envelope *env, int old_fd,
                        uint64_t msg_offset, const char *suffix, int *fd_r);
/* The claim lock on an open queue file (an OFD lock, so it holds across threads and
 * shows on NFS): 0, or -1 (EAGAIN) if another open file holds it. Released by close. */
int spool_queue_lock(int fd);
/* At start-up: "<id>.tm$" left by a crash (not locked by a live process) go back to "<id>.tmp";
 * "<id>.new" of this host are removed; damaged "<id>.tmp" move to damaged/. Returns how many were
 * reclaimed, and reports each damaged file through report (may be NULL). */
int spool_queue_recover(const char *dir, void (*report)(const char *name, const char *why));

#endif

/* folder_private.h - the shared state of an open folder, for folder*.c only
 *
 * Not an API (folder.h is): folder_index.c keeps the index log, the directory and the
 * in-memory state in step; folder.c shares folders between sessions and does the
 * message operations and views; folder_names.c checks names and manages the tree.
 *
 * Locking: the process-wide cache lock (folder.c) is never held while a folder's
 * mutex is taken; a folder's mutex is held around every use of its state and around
 * its flock on FOLDER_LOCK; no code holds two folders' mutexes at once.
 *
 * SECURITY: see folder.h; file names from the index or the directory go through
 * findex_file_ok() before they are used.
 */
#ifndef ALKAID_FOLDER_PRIVATE_H
#define ALKAID_FOLDER_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "folder.h"
#include "sbuf.h"

#define FOLDER_INDEX_MAGIC        "ALKAID-INDEX 1"
#define FOLDER_INDEX_DAMAGED      ".alkaid-index.damaged"
#define FOLDER_INDEX_TMP          ".alkaid-index.new"
#define FOLDER_SUBSCRIPTIONS_LOCK ".alkaid-subscriptions.lock"
#define FOLDER_INDEX_MAX_LINE     16384 /* longer lines are damaged */
#define FOLDER_FILE_MAX           255

/* One message as the folder knows it. */
struct fmsg {
    uint32_t uid;
    uint32_t flags;
    uint64_t keywords;
    uint64_t modseq;
    uint64_t size;
    int64_t internaldate;
    char *file;
    uint32_t mark; /* directory scan generation that saw the file */
    bool gone;     /* expunged; removed from the array by the next tidy */
};

/* File name -> UID (open addressing; file points into the fmsg). */
struct fname_slot {
    const char *file; /* NULL: empty; findex_tomb: removed */
    uint32_t uid;
};

struct folder {
    struct folder *next; /* in the process cache */
    pthread_mutex_t mutex;
    unsigned refs; /* under the cache lock */
    time_t idle_since;

    dev_t dev; /* of the directory, which dir_fd holds open */
    ino_t ino;
    int dir_fd;
    char *path; /* for messages in logs only: the directory may have been renamed */

    /* the index file as replayed so far */
    int index_fd;
    dev_t index_dev;
    ino_t index_ino;
    uint64_t index_off;     /* replayed up to here (always just after a newline) */
    uint64_t index_seen;    /* file size when last looked at */
    uint64_t compact_check; /* log size at which compaction is considered next */
    uint64_t add_bytes;     /* of the "+" lines replayed from this file: their average */
    uint64_t add_lines;     /* length estimates the live content */

    uint32_t uidvalidity, uidnext;
    uint64_t highestmodseq;
    uint32_t max_uid_seen; /* highest UID of a "+" line replayed: no UID comes back */

    struct fmsg *msgs; /* ascending UIDs */
    size_t count, cap;
    size_t ngone;
    struct fname_slot *names;
    size_t names_cap, names_used, names_tomb;

    char *keywords[FOLDER_MAX_KEYWORDS]; /* only ever grows, so bits stay valid */
    size_t nkeywords;
    bool keywords_full_reported;

    struct timespec dir_mtime;  /* of the last scan */
    struct timespec scan_start; /* the coarse clock when it started */
    bool dir_clean;             /* the scan at dir_mtime is known complete */
    uint32_t scan_gen;

    uint32_t recent_floor; /* UIDs from here on are not yet claimed as \Recent */
};

/* Frees the cached folders nobody holds (tests; a clean exit). */
void folder_cache_flush(void);

/* A folder-module error message in a per-thread buffer; returns FOLDER_ERROR (or r). */
enum folder_result folder_fail(const char **error_r, enum folder_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

bool findex_file_ok(const char *name);
bool findex_keyword_ok(const char *name);
/* The bit of keyword name in f (case-insensitive), added when add is set and there is
 * room; -1 otherwise. Mutex held. */
int findex_keyword(struct folder *f, const char *name, bool add);

/* The message with uid (not expunged), or NULL; O(log n). Mutex held. */
struct fmsg *findex_find(struct folder *f, uint32_t uid);
/* How many messages have a UID <= uid. */
size_t findex_upper(const struct folder *f, uint32_t uid);
/* The UID of file name, 0 if the index has none. */
uint32_t findex_name_uid(const struct folder *f, const char *name);

/* Opens FOLDER_LOCK in f and flock()s it with op (LOCK_SH / LOCK_EX); the fd, or -1
 * (an error) or -2 (the folder was deleted): see findex_lock_fail(). */
int findex_lock(struct folder *f, int op, const char **error_r);
void findex_unlock(int fd);
static inline enum folder_result findex_lock_fail(int lk)
{
    return lk == -2 ? FOLDER_NOTFOUND : FOLDER_ERROR;
}

/* Catches up with the index file (reloading it if it was replaced, rebuilding it if it
 * is missing or its header is damaged). held: the flock the caller holds (0, LOCK_SH,
 * LOCK_EX). */
enum folder_result findex_refresh(struct folder *f, int held, const char **error_r);
/* Appends lines (LOCK_EX held, refreshed), fdatasyncs, then replays them into memory;
 * compacts the log when it has grown well past its live content. */
enum folder_result findex_write(struct folder *f, const struct sbuf *lines, const char **error_r);
/* Finds files added or removed behind our back (only when the directory's mtime
 * changed) and logs them: UIDs for new files in name order, expunges for vanished ones. */
enum folder_result findex_sync_dir(struct folder *f, const char **error_r);
/* Frees the in-memory state (not the keywords). */
void findex_clear(struct folder *f);

/* Line builders. keywords: bits of f. */
void findex_put_add(struct sbuf *sb, const struct folder *f, uint32_t uid, uint64_t modseq,
                    int64_t internaldate, uint64_t size, const char *file, uint32_t flags,
                    uint64_t keywords);
void findex_put_flags(struct sbuf *sb, const struct folder *f, uint32_t uid, uint64_t modseq,
                      uint32_t flags, uint64_t keywords);
void findex_put_expunge(struct sbuf *sb, uint32_t uid, uint64_t modseq);

/* folder.c: a new message file of f (already named "<id>.eml") gets its UID. */
struct fassign {
    const char *file;
    uint32_t flags;
    uint64_t keywords; /* bits of the target folder */
};
enum folder_result folder_assign(struct folder *f, const struct fassign *a, size_t n,
                                 uint32_t *uids_r, const char **error_r);

#endif

/* folder.c - IMAP folders: one shared state per directory, messages, sessions' views
 *
 * A process keeps one struct folder per folder directory (found by device and inode,
 * so "INBOX", "inbox" and a renamed folder all reach the same one), shared by every
 * session through a reference count, with a mutex around its state. Unreferenced
 * folders stay cached for a while (CACHE_IDLE_SECONDS, at most CACHE_MAX_IDLE of them),
 * so a SELECT that follows a STATUS or an earlier session does not read the index again.
 *
 * Adding a message: write it to a hidden ".<id>.part", fsync, set its mtime to the
 * internal date, rename to "<id>.eml", fsync the directory; then, under the folder's
 * lock, give it its UID (folder_assign()). A sync by another process may have given it
 * a UID in between: the file name tells, and the flags are then set with "=".
 *
 * Views: a session's folder_view holds the UIDs it has told the client about. Updating
 * compares them with the folder: messages in the folder with a UID above the view's last
 * are new; expunges are found only when the folder holds fewer messages up to that UID
 * than the view (one binary search when there are none); flag changes are the messages
 * whose modseq passed the view's.
 *
 * SECURITY: message files are opened relative to the folder's directory descriptor with
 * O_NOFOLLOW, after their names passed findex_file_ok().
 */
#include "folder_private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "mailbox.h"
#include "spool.h"
#include "xalloc.h"

#define CACHE_IDLE_SECONDS 30
#define CACHE_MAX_IDLE     32
#define FLAGS_ALL          (FOLDER_SEEN | FOLDER_ANSWERED | FOLDER_FLAGGED | FOLDER_DELETED | FOLDER_DRAFT)
#define FILE_NAME_MAX      (SPOOL_ID_MAX + 8)

/* ---- the process cache -------------------------------------------------------------- */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct folder *cache; /* most recently opened first */

static void folder_free(struct folder *f)
{
    findex_clear(f);
    for (size_t i = 0; i < f->nkeywords; i++)
        free(f->keywords[i]);
    if (f->index_fd >= 0) close(f->index_fd);
    if (f->dir_fd >= 0) close(f->dir_fd);
    pthread_mutex_destroy(&f->mutex);
    free(f->path);
    free(f);
}

/* Frees unreferenced folders idle too long or beyond the cache size. Cache lock held. */
static void evict(time_t now)
{
    size_t idle = 0;
    for (struct folder **pp = &cache; *pp;) {
        struct folder *f = *pp;
        if (f->refs == 0 &&
            (++idle > CACHE_MAX_IDLE || now - f->idle_since >= CACHE_IDLE_SECONDS)) {
            *pp = f->next;
            folder_free(f);
            continue;
        }
        pp = &f->next;
    }
}

/* The shared folder of the directory open as dir_fd (which it takes over). */
static struct folder *cache_get(int dir_fd, const struct stat *st, const char *path)
{
    pthread_mutex_lock(&cache_lock);
    struct folder *f = NULL;
    for (struct folder **pp = &cache; *pp; pp = &(*pp)->next) {
        if ((*pp)->dev == st->st_dev && (*pp)->ino == st->st_ino) {
            f = *pp;
            *pp = f->next; /* moved to the front below */
            close(dir_fd);
            break;
        }
    }
    if (f == NULL) {
        f = xcalloc(1, sizeof(*f));
        pthread_mutex_init(&f->mutex, NULL);
        f->dev = st->st_dev;
        f->ino = st->st_ino;
        f->dir_fd = dir_fd;
        f->index_fd = -1;
        f->path = xstrdup(path);
    }
    f->next = cache;
    cache = f;
    f->refs++;
    evict(time(NULL));
    pthread_mutex_unlock(&cache_lock);
    return f;
}

static void folder_ref(struct folder *f)
{
    pthread_mutex_lock(&cache_lock);
    f->refs++;
    pthread_mutex_unlock(&cache_lock);
}

void folder_close(struct folder **fp)
{
    struct folder *f = *fp;
    if (f == NULL) return;
    *fp = NULL;
    pthread_mutex_lock(&cache_lock);
    time_t now = time(NULL);
    if (--f->refs == 0) f->idle_since = now;
    evict(now);
    pthread_mutex_unlock(&cache_lock);
}

void folder_cache_flush(void)
{
    pthread_mutex_lock(&cache_lock);
    for (struct folder **pp = &cache; *pp;) {
        struct folder *f = *pp;
        if (f->refs == 0) {
            *pp = f->next;
            folder_free(f);
            continue;
        }
        pp = &f->next;
    }
    pthread_mutex_unlock(&cache_lock);
}

/* ---- opening and syncing ------------------------------------------------------------ */

/* Catches up with the index and the directory. Mutex held. */
static enum folder_result sync_locked(struct folder *f, const char **error_r)
{
    enum folder_result r = findex_refresh(f, 0, error_r);
    if (r == FOLDER_OK) r = findex_sync_dir(f, error_r);
    return r;
}

enum folder_result folder_open(const char *mailbox_dir, const char *name, struct folder **f_r,
                               const char **error_r)
{
    *f_r = NULL;
    char *path = folder_path(mailbox_dir, name);
    if (path == NULL) return folder_fail(error_r, FOLDER_INVALID, "invalid folder name");
    bool inbox = strcasecmp(name, "INBOX") == 0;
    if (inbox && mailbox_create(path) < 0) {
        enum folder_result r =
            folder_fail(error_r, FOLDER_ERROR, "cannot create %s: %s", path, strerror(errno));
        free(path);
        return r;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        bool gone = errno == ENOENT || errno == ENOTDIR || errno == ELOOP;
        enum folder_result r =
            folder_fail(error_r, gone ? FOLDER_NOTFOUND : FOLDER_ERROR,
                        gone ? "no such folder" : "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        free(path);
        return r;
    }
    if (!inbox && faccessat(fd, FOLDER_NOSELECT, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
        close(fd);
        free(path);
        return folder_fail(error_r, FOLDER_NOSELECTABLE, "the folder is \\Noselect");
    }
    struct folder *f = cache_get(fd, &st, path);
    free(path);
    pthread_mutex_lock(&f->mutex);
    enum folder_result r = sync_locked(f, error_r);
    pthread_mutex_unlock(&f->mutex);
    if (r != FOLDER_OK) {
        folder_close(&f);
        return r;
    }
    *f_r = f;
    return FOLDER_OK;
}

enum folder_result folder_sync(struct folder *f, const char **error_r)
{
    pthread_mutex_lock(&f->mutex);
    enum folder_result r = sync_locked(f, error_r);
    pthread_mutex_unlock(&f->mutex);
    return r;
}

enum folder_result folder_status(const char *mailbox_dir, const char *name,
                                 struct folder_status *st_r, const char **error_r)
{
    struct folder *f;
    memset(st_r, 0, sizeof(*st_r));
    enum folder_result r = folder_open(mailbox_dir, name, &f, error_r);
    if (r != FOLDER_OK) return r;
    pthread_mutex_lock(&f->mutex);
    st_r->messages = (uint32_t)f->count;
    st_r->uidvalidity = f->uidvalidity;
    st_r->uidnext = f->uidnext;
    st_r->highestmodseq = f->highestmodseq;
    for (size_t i = 0; i < f->count; i++) {
        const struct fmsg *m = &f->msgs[i];
        if (!(m->flags & FOLDER_SEEN)) st_r->unseen++;
        if (m->uid >= f->recent_floor) st_r->recent++;
        st_r->size += m->size;
    }
    pthread_mutex_unlock(&f->mutex);
    folder_close(&f);
    return FOLDER_OK;
}

uint32_t folder_uidvalidity(const struct folder *cf)
{
    struct folder *f = (struct folder *)cf; /* the mutex is not part of the value */
    pthread_mutex_lock(&f->mutex);
    uint32_t v = f->uidvalidity;
    pthread_mutex_unlock(&f->mutex);
    return v;
}

size_t folder_keyword_count(const struct folder *cf)
{
    struct folder *f = (struct folder *)cf;
    pthread_mutex_lock(&f->mutex);
    size_t n = f->nkeywords;
    pthread_mutex_unlock(&f->mutex);
    return n;
}

const char *folder_keyword(const struct folder *cf, size_t i)
{
    struct folder *f = (struct folder *)cf;
    pthread_mutex_lock(&f->mutex);
    const char *k = i < f->nkeywords ? f->keywords[i] : NULL; /* never freed while f lives */
    pthread_mutex_unlock(&f->mutex);
    return k;
}

int folder_keyword_bit(struct folder *f, const char *name)
{
    if (!findex_keyword_ok(name)) return -1;
    pthread_mutex_lock(&f->mutex);
    int bit = findex_keyword(f, name, true);
    pthread_mutex_unlock(&f->mutex);
    return bit;
}

/* ---- adding messages ---------------------------------------------------------------- */

enum folder_result folder_assign(struct folder *f, const struct fassign *a, size_t n,
                                 uint32_t *uids_r, const char **error_r)
{
    for (size_t i = 0; i < n; i++)
        uids_r[i] = 0;
    pthread_mutex_lock(&f->mutex);
    int lk = findex_lock(f, LOCK_EX, error_r);
    enum folder_result r = lk < 0 ? findex_lock_fail(lk) : findex_refresh(f, LOCK_EX, error_r);
    if (r == FOLDER_OK) {
        struct sbuf lines = SBUF_INIT(SBUF_NO_MAX);
        uint32_t uid = f->uidnext, *pending = xcalloc(n ? n : 1, sizeof(*pending));
        uint64_t modseq = f->highestmodseq;
        for (size_t i = 0; i < n; i++) {
            struct stat st;
            uint32_t flags = a[i].flags & FLAGS_ALL;
            uint32_t have = findex_name_uid(f, a[i].file);
            if (have != 0) { /* a sync elsewhere gave it a UID already */
                struct fmsg *m = findex_find(f, have);
                if (m && (m->flags != flags || m->keywords != a[i].keywords))
                    findex_put_flags(&lines, f, have, ++modseq, flags, a[i].keywords);
                pending[i] = have;
                continue;
            }
            if (fstatat(f->dir_fd, a[i].file, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                continue; /* removed already (POP3) */
            findex_put_add(&lines, f, uid, ++modseq, (int64_t)st.st_mtime, (uint64_t)st.st_size,
                           a[i].file, flags, a[i].keywords);
            pending[i] = uid++;
        }
        r = findex_write(f, &lines, error_r);
        if (r == FOLDER_OK) memcpy(uids_r, pending, n * sizeof(*uids_r));
        free(pending);
        sbuf_free(&lines);
    }
    findex_unlock(lk);
    pthread_mutex_unlock(&f->mutex);
    return r;
}

/* Writes a message (src_fd from offset 0, or data[0..len)) into f as a new "<id>.eml"
 * with mtime internaldate; its name into file (FILE_NAME_MAX). The directory is fsynced. */
static enum folder_result write_message(struct folder *f, int src_fd, const void *data, size_t len,
                                        time_t internaldate, char *file, const char **error_r)
{
    char id[SPOOL_ID_MAX], part[SPOOL_ID_MAX + 16];
    int fd = -1;
    for (int attempt = 0; attempt < 5 && fd < 0; attempt++) {
        spool_make_id(id, sizeof(id));
        snprintf(part, sizeof(part), ".%s.part", id);
        fd = openat(f->dir_fd, part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0)
        return folder_fail(error_r, FOLDER_ERROR, "cannot create a message in %s: %s", f->path,
                           strerror(errno));
    snprintf(file, FILE_NAME_MAX, "%s" MAILBOX_SUFFIX, id);
    struct timespec times[2] = {{0, UTIME_OMIT}, {internaldate, 0}};
    int rc = src_fd >= 0 ? fs_copy_fd(src_fd, fd) : fs_write_all(fd, data, len);
    if (rc < 0 || futimens(fd, times) < 0 || fsync(fd) < 0) {
        enum folder_result r = folder_fail(
            error_r, FOLDER_ERROR, "cannot write a message in %s: %s", f->path, strerror(errno));
        close(fd);
        unlinkat(f->dir_fd, part, 0);
        return r;
    }
    if (close(fd) < 0 || renameat(f->dir_fd, part, f->dir_fd, file) < 0 || fsync(f->dir_fd) < 0) {
        enum folder_result r = folder_fail(error_r, FOLDER_ERROR, "cannot add a message to %s: %s",
                                           f->path, strerror(errno));
        unlinkat(f->dir_fd, part, 0);
        unlinkat(f->dir_fd, file, 0);
        return r;
    }
    return FOLDER_OK;
}

static enum folder_result append_common(struct folder *f, int src_fd, const void *data, size_t len,
                                        time_t internaldate, uint32_t flags, uint64_t keywords,
                                        uint32_t *uid_r, const char **error_r)
{
    char file[FILE_NAME_MAX];
    *uid_r = 0;
    enum folder_result r = write_message(f, src_fd, data, len, internaldate, file, error_r);
    if (r != FOLDER_OK) return r;
    struct fassign a = {file, flags, keywords};
    r = folder_assign(f, &a, 1, uid_r, error_r);
    if (r == FOLDER_OK && *uid_r == 0)
        r = folder_fail(error_r, FOLDER_ERROR, "the new message in %s was removed at once",
                        f->path);
    if (r != FOLDER_OK && *uid_r == 0) {
        /* never announced: take it back (a sync that numbered it meanwhile expunges it) */
        unlinkat(f->dir_fd, file, 0);
        fsync(f->dir_fd);
    }
    return r;
}

enum folder_result folder_append(struct folder *f, int src_fd, time_t internaldate, uint32_t flags,
                                 uint64_t keywords, uint32_t *uid_r, const char **error_r)
{
    if (src_fd < 0) return folder_fail(error_r, FOLDER_INVALID, "no message");
    return append_common(f, src_fd, NULL, 0, internaldate, flags, keywords, uid_r, error_r);
}

enum folder_result folder_append_data(struct folder *f, const void *data, size_t len,
                                      time_t internaldate, uint32_t flags, const char **keywords,
                                      size_t nkeywords, uint32_t *uid_r, const char **error_r)
{
    uint64_t kw = 0;
    *uid_r = 0;
    for (size_t i = 0; i < nkeywords; i++) {
        int bit = folder_keyword_bit(f, keywords[i]);
        if (bit < 0)
            return folder_fail(error_r, FOLDER_INVALID,
                               "keyword \"%.64s\" refused (not an atom, or "
                               "too many keywords in the folder)",
                               keywords[i]);
        kw |= UINT64_C(1) << bit;
    }
    return append_common(f, -1, data, len, internaldate, flags, kw, uid_r, error_r);
}

/* Keyword bits of src (in use: used) as bits of dst; keywords dst has no room for drop. */
static void map_keywords(struct folder *src, uint64_t used, struct folder *dst,
                         uint64_t map_r[FOLDER_MAX_KEYWORDS])
{
    const char *names[FOLDER_MAX_KEYWORDS] = {0};
    pthread_mutex_lock(&src->mutex);
    for (size_t i = 0; i < src->nkeywords; i++)
        if (used & (UINT64_C(1) << i)) names[i] = src->keywords[i];
    pthread_mutex_unlock(&src->mutex);
    pthread_mutex_lock(&dst->mutex);
    for (size_t i = 0; i < FOLDER_MAX_KEYWORDS; i++) {
        map_r[i] = 0;
        if (names[i] == NULL) continue;
        int bit = findex_keyword(dst, names[i], true);
        if (bit >= 0) map_r[i] = UINT64_C(1) << bit;
    }
    pthread_mutex_unlock(&dst->mutex);
}

static uint64_t apply_map(uint64_t kw, const uint64_t map[FOLDER_MAX_KEYWORDS])
{
    uint64_t out = 0;
    for (size_t i = 0; i < FOLDER_MAX_KEYWORDS; i++)
        if (kw & (UINT64_C(1) << i)) out |= map[i];
    return out;
}

struct copy_item {
    char *src_file;
    char new_file[FILE_NAME_MAX];
    uint32_t flags;
    uint64_t keywords;
    time_t internaldate;
    bool made;
};

/* Puts a copy of it->src_file of src into dst: a hard link when on the same file
 * system, else a copy. 1 done, 0 the source is gone, -1 error. */
static int copy_file(struct folder *src, struct folder *dst, struct copy_item *it, bool same_fs,
                     const char **error_r)
{
    if (same_fs) {
        for (int attempt = 0; attempt < 5; attempt++) {
            char id[SPOOL_ID_MAX];
            spool_make_id(id, sizeof(id));
            snprintf(it->new_file, sizeof(it->new_file), "%s" MAILBOX_SUFFIX, id);
            if (linkat(src->dir_fd, it->src_file, dst->dir_fd, it->new_file, 0) == 0) return 1;
            if (errno == ENOENT) return 0;
            if (errno != EEXIST) break;
        }
        if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOTSUP) {
            folder_fail(error_r, FOLDER_ERROR, "cannot link a message into %s: %s", dst->path,
                        strerror(errno));
            return -1;
        }
    }
    int fd = openat(src->dir_fd, it->src_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        folder_fail(error_r, FOLDER_ERROR, "cannot read a message of %s: %s", src->path,
                    strerror(errno));
        return -1;
    }
    enum folder_result r = write_message(dst, fd, NULL, 0, it->internaldate, it->new_file, error_r);
    close(fd);
    return r == FOLDER_OK ? 1 : -1;
}

enum folder_result folder_copy(struct folder *src, const uint32_t *uids, size_t n,
                               struct folder *dst, uint32_t *new_uids_r, const char **error_r)
{
    struct copy_item *items = xcalloc(n ? n : 1, sizeof(*items));
    uint64_t used = 0;
    for (size_t i = 0; i < n; i++)
        new_uids_r[i] = 0;
    pthread_mutex_lock(&src->mutex);
    for (size_t i = 0; i < n; i++) {
        const struct fmsg *m = findex_find(src, uids[i]);
        if (m == NULL) continue;
        items[i].src_file = xstrdup(m->file);
        items[i].flags = m->flags;
        items[i].keywords = m->keywords;
        items[i].internaldate = (time_t)m->internaldate;
        used |= m->keywords;
    }
    pthread_mutex_unlock(&src->mutex);
    uint64_t map[FOLDER_MAX_KEYWORDS];
    map_keywords(src, used, dst, map);

    bool same_fs = src->dev == dst->dev;
    enum folder_result r = FOLDER_OK;
    struct fassign *a = xcalloc(n ? n : 1, sizeof(*a));
    size_t *where = xcalloc(n ? n : 1, sizeof(*where));
    size_t na = 0;
    for (size_t i = 0; i < n && r == FOLDER_OK; i++) {
        if (items[i].src_file == NULL) continue;
        int c = copy_file(src, dst, &items[i], same_fs, error_r);
        if (c < 0) r = FOLDER_ERROR;
        if (c <= 0) continue;
        items[i].made = true;
        a[na].file = items[i].new_file;
        a[na].flags = items[i].flags;
        a[na].keywords = apply_map(items[i].keywords, map);
        where[na++] = i;
    }
    if (r == FOLDER_OK && na > 0 && fsync(dst->dir_fd) < 0)
        r = folder_fail(error_r, FOLDER_ERROR, "cannot sync %s: %s", dst->path, strerror(errno));
    uint32_t *got = xcalloc(na ? na : 1, sizeof(*got));
    if (r == FOLDER_OK && na > 0) r = folder_assign(dst, a, na, got, error_r);
    if (r == FOLDER_OK) {
        for (size_t k = 0; k < na; k++)
            new_uids_r[where[k]] = got[k];
    } else {
        /* COPY is all or nothing: take back what was made */
        bool removed = false;
        for (size_t i = 0; i < n; i++)
            if (items[i].made) removed |= unlinkat(dst->dir_fd, items[i].new_file, 0) == 0;
        if (removed) fsync(dst->dir_fd);
    }
    for (size_t i = 0; i < n; i++)
        free(items[i].src_file);
    free(items);
    free(a);
    free(where);
    free(got);
    return r;
}

/* ---- changing messages -------------------------------------------------------------- */

enum folder_result folder_store(struct folder *f, const uint32_t *uids, size_t n,
                                enum folder_store_mode mode, uint32_t flags, uint64_t keywords,
                                uint64_t unchangedsince, uint32_t *failed_r, size_t *nfailed_r,
                                const char **error_r)
{
    size_t nfailed = 0;
    flags &= FLAGS_ALL;
    pthread_mutex_lock(&f->mutex);
    int lk = findex_lock(f, LOCK_EX, error_r);
    enum folder_result r = lk < 0 ? findex_lock_fail(lk) : findex_refresh(f, LOCK_EX, error_r);
    if (r == FOLDER_OK) {
        struct sbuf lines = SBUF_INIT(SBUF_NO_MAX);
        uint64_t modseq = f->highestmodseq;
        for (size_t i = 0; i < n; i++) {
            const struct fmsg *m = findex_find(f, uids[i]);
            if (m == NULL) continue;
            if (unchangedsince != 0 && m->modseq > unchangedsince) {
                if (failed_r) failed_r[nfailed] = m->uid;
                nfailed++;
                continue;
            }
            uint32_t nf = m->flags;
            uint64_t nk = m->keywords;
            switch (mode) {
            case FOLDER_STORE_SET:
                nf = flags;
                nk = keywords;
                break;
            case FOLDER_STORE_ADD:
                nf |= flags;
                nk |= keywords;
                break;
            case FOLDER_STORE_REMOVE:
                nf &= ~flags;
                nk &= ~keywords;
                break;
            }
            if (nf == m->flags && nk == m->keywords) continue;
            findex_put_flags(&lines, f, m->uid, ++modseq, nf, nk);
        }
        r = findex_write(f, &lines, error_r);
        sbuf_free(&lines);
    }
    findex_unlock(lk);
    pthread_mutex_unlock(&f->mutex);
    if (nfailed_r) *nfailed_r = r == FOLDER_OK ? nfailed : 0;
    return r;
}

enum folder_result folder_expunge(struct folder *f, const uint32_t *uids, size_t n,
                                  const char **error_r)
{
    uint32_t *done = xcalloc(n ? n : 1, sizeof(*done));
    size_t ndone = 0;
    int err = 0;
    pthread_mutex_lock(&f->mutex);
    /* the files first: a crash before the log is written leaves entries without files,
     * which the next sync expunges; never a message that comes back */
    for (size_t i = 0; i < n; i++) {
        const struct fmsg *m = findex_find(f, uids[i]);
        if (m == NULL) continue;
        if (unlinkat(f->dir_fd, m->file, 0) == 0 || errno == ENOENT)
            done[ndone++] = m->uid;
        else
            err = errno;
    }
    if (ndone > 0 && fsync(f->dir_fd) < 0) err = errno;
    enum folder_result r = FOLDER_OK;
    if (ndone > 0) {
        int lk = findex_lock(f, LOCK_EX, error_r);
        r = lk < 0 ? findex_lock_fail(lk) : findex_refresh(f, LOCK_EX, error_r);
        if (r == FOLDER_OK) {
            struct sbuf lines = SBUF_INIT(SBUF_NO_MAX);
            uint64_t modseq = f->highestmodseq;
            for (size_t i = 0; i < ndone; i++)
                if (findex_find(f, done[i])) findex_put_expunge(&lines, done[i], ++modseq);
            r = findex_write(f, &lines, error_r);
            sbuf_free(&lines);
        }
        findex_unlock(lk);
    }
    pthread_mutex_unlock(&f->mutex);
    free(done);
    if (r == FOLDER_OK && err != 0)
        r = folder_fail(error_r, FOLDER_ERROR, "cannot remove messages of %s: %s", f->path,
                        strerror(err));
    return r;
}

enum folder_result folder_get(struct folder *f, uint32_t uid, struct folder_msg *msg_r)
{
    memset(msg_r, 0, sizeof(*msg_r));
    pthread_mutex_lock(&f->mutex);
    const struct fmsg *m = findex_find(f, uid);
    if (m) {
        msg_r->uid = m->uid;
        msg_r->flags = m->flags;
        msg_r->keywords = m->keywords;
        msg_r->modseq = m->modseq;
        msg_r->size = m->size;
        msg_r->internaldate = (time_t)m->internaldate;
        msg_r->file = xstrdup(m->file);
    }
    pthread_mutex_unlock(&f->mutex);
    return m ? FOLDER_OK : FOLDER_NOTFOUND;
}

int folder_open_message(struct folder *f, const struct folder_msg *msg)
{
    if (msg->file == NULL || !findex_file_ok(msg->file)) {
        errno = EINVAL;
        return -1;
    }
    int fd = openat(f->dir_fd, msg->file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    return fd;
}

/* ---- views -------------------------------------------------------------------------- */

/* Gives v the \Recent messages among f->msgs[from..]: claimed (the folder's floor moves
 * past them) unless v is read-only. Mutex held. */
static void take_recent(struct folder_view *v, struct folder *f, size_t from)
{
    size_t start = findex_upper(f, f->recent_floor ? f->recent_floor - 1 : 0);
    if (start < from) start = from;
    if (start >= f->count) return;
    v->recent = xreallocarray(v->recent, v->nrecent + (f->count - start), sizeof(*v->recent));
    for (size_t i = start; i < f->count; i++)
        v->recent[v->nrecent++] = f->msgs[i].uid;
    if (!v->readonly && f->recent_floor < f->uidnext) f->recent_floor = f->uidnext;
}

void folder_view_init(struct folder_view *v, struct folder *f, bool readonly)
{
    memset(v, 0, sizeof(*v));
    folder_ref(f);
    v->folder = f;
    v->readonly = readonly;
    pthread_mutex_lock(&f->mutex);
    (void)sync_locked(f, NULL); /* on an error: the state as last known */
    v->uidvalidity = f->uidvalidity;
    v->count = f->count;
    v->uids = xcalloc(f->count ? f->count : 1, sizeof(*v->uids));
    for (size_t i = 0; i < f->count; i++)
        v->uids[i] = f->msgs[i].uid;
    v->modseq = f->highestmodseq;
    take_recent(v, f, 0);
    pthread_mutex_unlock(&f->mutex);
}

void folder_view_free(struct folder_view *v)
{
    free(v->uids);
    free(v->recent);
    folder_close(&v->folder);
    memset(v, 0, sizeof(*v));
}

void folder_changes_free(struct folder_changes *ch)
{
    free(ch->expunged_seqs);
    free(ch->expunged_uids);
    free(ch->changed_uids);
    memset(ch, 0, sizeof(*ch));
}

static size_t uid_search(const uint32_t *a, size_t n, uint32_t uid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

enum folder_result folder_view_update(struct folder_view *v, bool allow_expunge,
                                      struct folder_changes *ch, const char **error_r)
{
    struct folder *f = v->folder;
    memset(ch, 0, sizeof(*ch));
    pthread_mutex_lock(&f->mutex);
    enum folder_result r = sync_locked(f, error_r);
    if (r == FOLDER_OK && f->uidvalidity != v->uidvalidity)
        r = folder_fail(error_r, FOLDER_NOSELECTABLE,
                        "the folder's index was rebuilt with a new UIDVALIDITY");
    if (r != FOLDER_OK) {
        pthread_mutex_unlock(&f->mutex);
        return r;
    }
    uint32_t vmax = v->count ? v->uids[v->count - 1] : 0;
    /* the folder's messages up to vmax are all in the view (UIDs only grow), so fewer of
     * them than the view holds means expunges */
    size_t known = findex_upper(f, vmax);
    if (allow_expunge && known != v->count) {
        size_t j = 0, w = 0, cap = v->count - known;
        ch->expunged_seqs = xcalloc(cap ? cap : 1, sizeof(uint32_t));
        ch->expunged_uids = xcalloc(cap ? cap : 1, sizeof(uint32_t));
        for (size_t i = 0; i < v->count; i++) {
            uint32_t u = v->uids[i];
            while (j < known && f->msgs[j].uid < u)
                j++;
            if (j < known && f->msgs[j].uid == u) {
                v->uids[w++] = u;
                j++;
                continue;
            }
            if (ch->nexpunged == cap) { /* cannot happen; stay safe */
                cap *= 2;
                ch->expunged_seqs = xreallocarray(ch->expunged_seqs, cap, sizeof(uint32_t));
                ch->expunged_uids = xreallocarray(ch->expunged_uids, cap, sizeof(uint32_t));
            }
            /* ascending, each as numbered after the EXPUNGEs sent before it */
            ch->expunged_seqs[ch->nexpunged] = (uint32_t)(i + 1 - ch->nexpunged);
            ch->expunged_uids[ch->nexpunged++] = u;
        }
        v->count = w;
        size_t rw = 0;
        for (size_t i = 0; i < v->nrecent; i++) {
            size_t k = uid_search(v->uids, v->count, v->recent[i]);
            if (k < v->count && v->uids[k] == v->recent[i]) v->recent[rw++] = v->recent[i];
        }
        v->nrecent = rw;
    }
    if (known < f->count) {
        size_t add = f->count - known;
        v->uids = xreallocarray(v->uids, v->count + add, sizeof(*v->uids));
        for (size_t i = known; i < f->count; i++)
            v->uids[v->count++] = f->msgs[i].uid;
        take_recent(v, f, known);
        ch->exists = v->count;
    }
    if (f->highestmodseq > v->modseq) {
        size_t cap = 0;
        for (size_t i = 0; i < known; i++) {
            if (f->msgs[i].modseq <= v->modseq) continue;
            if (ch->nchanged == cap) {
                cap = cap ? cap * 2 : 16;
                ch->changed_uids = xreallocarray(ch->changed_uids, cap, sizeof(uint32_t));
            }
            ch->changed_uids[ch->nchanged++] = f->msgs[i].uid;
        }
        v->modseq = f->highestmodseq;
    }
    ch->recent = v->nrecent;
    pthread_mutex_unlock(&f->mutex);
    return FOLDER_OK;
}

uint32_t folder_view_seq(const struct folder_view *v, uint32_t uid)
{
    size_t i = uid_search(v->uids, v->count, uid);
    return i < v->count && v->uids[i] == uid ? (uint32_t)(i + 1) : 0;
}

bool folder_view_is_recent(const struct folder_view *v, uint32_t uid)
{
    size_t i = uid_search(v->recent, v->nrecent, uid);
    return i < v->nrecent && v->recent[i] == uid;
}

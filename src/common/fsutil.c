/* fsutil.c - file system primitives with the durability rule built in
 *
 * SECURITY: temporary names are made with O_EXCL and a random suffix, so a concurrent
 * writer (another service, another server on a shared spool) cannot collide with us.
 */
#include "fsutil.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "xalloc.h"

int fs_mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
    struct stat st;
    if (stat(buf, &st) < 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int fs_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return r;
}

/* One entry per directory that has callers waiting on it; removed when the last leaves. */
struct dirsync {
    struct dirsync *next;
    char *path;
    uint64_t seq;  /* requests so far */
    uint64_t done; /* requests covered by a completed fsync */
    bool busy;     /* an fsync is running */
    unsigned users;
    pthread_cond_t cond;
};

#define DIRSYNC_BUCKETS 64
static pthread_mutex_t dirsync_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dirsync *dirsync_table[DIRSYNC_BUCKETS];

static struct dirsync **dirsync_slot(const char *path)
{
    size_t h = 5381;
    for (const char *p = path; *p; p++)
        h = h * 33 + (unsigned char)*p;
    struct dirsync **pp = &dirsync_table[h % DIRSYNC_BUCKETS];
    while (*pp && strcmp((*pp)->path, path) != 0)
        pp = &(*pp)->next;
    return pp;
}

int fs_fsync_dir_shared(const char *path)
{
    pthread_mutex_lock(&dirsync_lock);
    struct dirsync **pp = dirsync_slot(path);
    struct dirsync *e = *pp;
    if (e == NULL) {
        e = xcalloc(1, sizeof(*e));
        e->path = xstrdup(path);
        pthread_cond_init(&e->cond, NULL);
        *pp = e;
    }
    e->users++;
    uint64_t mine = ++e->seq;
    int rc = 0, err = 0;
    while (e->done < mine) {
        if (e->busy) {
            pthread_cond_wait(&e->cond, &dirsync_lock);
            continue;
        }
        /* our change is older than this fsync: it covers everything up to target */
        e->busy = true;
        uint64_t target = e->seq;
        pthread_mutex_unlock(&dirsync_lock);
        int r = fs_fsync_dir(path);
        err = errno;
        pthread_mutex_lock(&dirsync_lock);
        e->busy = false;
        if (r == 0 && target > e->done) e->done = target;
        pthread_cond_broadcast(&e->cond);
        if (r < 0) {
            rc = -1;
            break;
        }
    }
    if (--e->users == 0) {
        *dirsync_slot(path) = e->next;
        pthread_cond_destroy(&e->cond);
        free(e->path);
        free(e);
    }
    pthread_mutex_unlock(&dirsync_lock);
    errno = err;
    return rc;
}

int fs_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fs_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char *tmp = xasprintf("%s.%ld.%lx.new", path, (long)getpid(), (unsigned long)random());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        free(tmp);
        return -1;
    }
    int saved;
    if (fs_write_all(fd, data, len) < 0 || fsync(fd) < 0) goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) goto fail;
    free(tmp);
    char *dir = fs_dirname(path);
    int r = fs_fsync_dir(dir);
    free(dir);
    return r;
fail:
    saved = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    errno = saved;
    return -1;
}

int fs_copy_fd(int src_fd, int dst_fd)
{
    off_t off = 0;
    for (;;) {
        ssize_t n = sendfile(dst_fd, src_fd, &off, 1 << 20);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EINVAL || errno == ENOSYS) break; /* fall back to read/write */
            return -1;
        }
        if (n == 0) return 0;
    }
    char buf[65536];
    for (;;) {
        ssize_t n = pread(src_fd, buf, sizeof(buf), off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) return 0;
        if (fs_write_all(dst_fd, buf, (size_t)n) < 0) return -1;
        off += n;
    }
}

uint64_t fs_free_space(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) < 0) return UINT64_MAX;
    return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
}

char *fs_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

char *fs_read_file(const char *path, size_t max, size_t *len_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    /* one byte more than max is read so that a file over max can be told apart */
    size_t cap = max < 4096 ? max + 1 : 4096, len = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap > max) {
                free(buf);
                close(fd);
                errno = EFBIG;
                return NULL;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            free(buf);
            close(fd);
            errno = saved;
            return NULL;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    if (len > max) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    buf[len] = '\0';
    if (len_r) *len_r = len;
    return buf;
}

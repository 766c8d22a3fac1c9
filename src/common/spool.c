/* spool.c - TEMP and FORWARD: unique names, the message being received, queue files
 *
 * The commit path of a queue file, in the qmail spirit: write, flush, fsync, rename.
 * The end marker lets a reader tell a complete file from one cut short by a crash or a
 * full disk on a file system that does not order rename after data.
 *
 * SECURITY: see spool.h; envelope values with CR/LF/NUL are refused (EINVAL).
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "fsutil.h"
#include "xalloc.h"

#define SPOOL_WBUF 65536

static char spool_host[80] = "localhost";
static unsigned long spool_counter;

void spool_set_hostname(const char *hostname)
{
    size_t j = 0;
    for (size_t i = 0; hostname[i] && j + 1 < sizeof(spool_host); i++) {
        char c = hostname[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.';
        spool_host[j++] = ok ? c : '_';
    }
    spool_host[j] = '\0';
    if (j == 0) snprintf(spool_host, sizeof(spool_host), "localhost");
}

void spool_make_id(char *buf, size_t size)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long n = __atomic_add_fetch(&spool_counter, 1, __ATOMIC_RELAXED);
    snprintf(buf, size, "%010lld.M%06ldP%ldQ%lu.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
             (long)getpid(), n, spool_host);
}

/* Spent TEMP files kept for the next message: creating an inode costs more than the
 * whole rest of receiving a small message on some file systems (ext4 without a journal
 * scans for recently deleted inodes), and a relayed message needs a new queue file
 * anyway. Only files no mailbox links to (st_nlink 1) are kept; they are emptied. */
#define SPOOL_POOL_MAX 64
static struct {
    pthread_mutex_t lock;
    int fd[SPOOL_POOL_MAX];
    char *path[SPOOL_POOL_MAX];
    char *dir[SPOOL_POOL_MAX];
    size_t n;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool pool_get(struct spool_file *f, const char *dir)
{
    for (;;) {
        int fd = -1;
        char *path = NULL;
        pthread_mutex_lock(&pool.lock);
        for (size_t i = pool.n; i-- > 0;) {
            if (strcmp(pool.dir[i], dir) != 0) continue;
            fd = pool.fd[i];
            path = pool.path[i];
            free(pool.dir[i]);
            pool.n--;
            pool.fd[i] = pool.fd[pool.n];
            pool.path[i] = pool.path[pool.n];
            pool.dir[i] = pool.dir[pool.n];
            break;
        }
        pthread_mutex_unlock(&pool.lock);
        if (fd < 0) return false;
        struct stat st;
        struct stat byname;
        /* still the only name of the file, and still there (temp/ may have been removed) */
        if (fstat(fd, &st) == 0 && st.st_nlink == 1 && lstat(path, &byname) == 0 &&
            byname.st_ino == st.st_ino && lseek(fd, 0, SEEK_SET) == 0) {
            f->fd = fd;
            f->path = path;
            return true;
        }
        close(fd);
        free(path);
    }
}

static bool pool_put(struct spool_file *f)
{
    struct stat st;
    if (fstat(f->fd, &st) < 0 || st.st_nlink != 1 || !S_ISREG(st.st_mode) ||
        ftruncate(f->fd, 0) < 0)
        return false;
    char *dir = fs_dirname(f->path);
    pthread_mutex_lock(&pool.lock);
    bool kept = pool.n < SPOOL_POOL_MAX;
    if (kept) {
        pool.fd[pool.n] = f->fd;
        pool.path[pool.n] = f->path;
        pool.dir[pool.n] = dir;
        pool.n++;
    }
    pthread_mutex_unlock(&pool.lock);
    if (!kept) free(dir);
    return kept;
}

void spool_pool_drain(void)
{
    pthread_mutex_lock(&pool.lock);
    for (size_t i = 0; i < pool.n; i++) {
        close(pool.fd[i]);
        unlink(pool.path[i]);
        free(pool.path[i]);
        free(pool.dir[i]);
    }
    pool.n = 0;
    pthread_mutex_unlock(&pool.lock);
}

int spool_file_create_id(struct spool_file *f, const char *dir, const char *id, const char *suffix)
{
    memset(f, 0, sizeof(*f));
    sbuf_init(&f->buf, SPOOL_WBUF * 2);
    snprintf(f->id, sizeof(f->id), "%s", id);
    f->path = xasprintf("%s/%s%s", dir, f->id, suffix);
    f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (f->fd < 0 && errno == ENOENT && fs_mkdirs(dir, 0750) == 0)
        f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (f->fd >= 0) return 0;
    int saved = errno;
    xfree(f->path);
    sbuf_free(&f->buf);
    errno = saved;
    return -1;
}

int spool_file_create(struct spool_file *f, const char *dir, const char *suffix)
{
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    sbuf_init(&f->buf, SPOOL_WBUF * 2);
    if (strcmp(suffix, ".tmp") == 0 && pool_get(f, dir)) {
        spool_make_id(f->id, sizeof(f->id));
        f->reusable = true;
        return 0;
    }
    f->reusable = strcmp(suffix, ".tmp") == 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        spool_make_id(f->id, sizeof(f->id));
        free(f->path);
        f->path = xasprintf("%s/%s%s", dir, f->id, suffix);
        f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (f->fd >= 0) return 0;
        /* the directory was removed under us: make it again */
        if (errno == ENOENT && attempt == 0 && fs_mkdirs(dir, 0750) == 0) continue;
        if (errno != EEXIST) break;
    }
    int saved = errno;
    xfree(f->path);
    sbuf_free(&f->buf);
    errno = saved;
    return -1;
}

static void flush_buf(struct spool_file *f)
{
    if (f->buf.len == 0) return;
    if (f->error == 0 && fs_write_all(f->fd, f->buf.data, f->buf.len) < 0) f->error = errno;
    sbuf_reset(&f->buf);
}

void spool_file_write(struct spool_file *f, const void *data, size_t len)
{
    f->size += len;
    f->synced = false;
    if (f->error) return;
    if (f->buf.len + len > SPOOL_WBUF) flush_buf(f);
    if (len >= SPOOL_WBUF) {
        if (f->error == 0 && fs_write_all(f->fd, data, len) < 0) f->error = errno;
        return;
    }
    sbuf_append(&f->buf, data, len);
}

int spool_file_sync(struct spool_file *f)
{
    flush_buf(f);
    if (f->error == 0 && !f->synced && fsync(f->fd) < 0) f->error = errno;
    if (f->error) {
        errno = f->error;
        return -1;
    }
    f->synced = true;
    return 0;
}

int spool_file_flush(struct spool_file *f)
{
    flush_buf(f);
    if (f->error) {
        errno = f->error;
        return -1;
    }
    return 0;
}

void spool_file_discard(struct spool_file *f)
{
    sbuf_free(&f->buf);
    if (f->committed) {
        if (f->fd >= 0) close(f->fd);
        f->fd = -1;
        xfree(f->path);
        f->committed = false;
        return;
    }
    if (f->fd >= 0 && f->path && f->reusable && pool_put(f)) {
        f->fd = -1;
        f->path = NULL;
        return;
    }
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    if (f->path) unlink(f->path);
    xfree(f->path);
}

static bool skip_digits(const char **p)
{
    size_t n = strspn(*p, "0123456789");
    *p += n;
    return n > 0;
}

/* Whether name has the shape of a TEMP file, "<digits>.M<digits>P<digits>Q<digits>.<host>.tmp"
 * (any host: temp/ belongs to one server, whose name may have changed). */
static bool temp_name(const char *name)
{
    const char *p = name;
    if (!skip_digits(&p) || strncmp(p, ".M", 2) != 0) return false;
    p += 2;
    if (!skip_digits(&p) || *p++ != 'P') return false;
    if (!skip_digits(&p) || *p++ != 'Q') return false;
    if (!skip_digits(&p) || *p++ != '.') return false;
    size_t n = strlen(p);
    return n > 4 && strcmp(p + n - 4, ".tmp") == 0;
}

void spool_clean_temp(const char *temp_dir)
{
    DIR *d = opendir(temp_dir);
    if (d == NULL) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!temp_name(de->d_name)) continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

/* ---- queue files ---------------------------------------------------------------- */

static bool clean_value(const char *s)
{
    return s == NULL || strpbrk(s, "\r\n") == NULL;
}

#define SIZE_DIGITS 20 /* a SIZE filled in after the message: zero-padded */

static bool envelope_clean(const struct queue_envelope *env)
{
    if (!clean_value(env->id) || strchr(env->id, '/') || !clean_value(env->sender) ||
        !clean_value(env->auth) || !clean_value(env->client) || env->nrcpts == 0)
        return false;
    for (size_t i = 0; i < env->nrcpts; i++)
        if (!clean_value(env->rcpts[i]) || (env->errors && !clean_value(env->errors[i])))
            return false;
    return true;
}

/* The envelope and the empty line after it. With size_off_r, SIZE is written as
 * SIZE_DIGITS zeros (the size is not known yet: spool_queue_commit() fills them in) and
 * their offset goes to *size_off_r. 0, or -1 if it does not fit. */
static int envelope_text(const struct queue_envelope *env, struct sbuf *hdr, size_t *size_off_r)
{
    sbuf_appends(hdr, SPOOL_QUEUE_MAGIC);
    sbuf_printf(hdr, "ID %s\n", env->id);
    sbuf_printf(hdr, "CREATED %lld\n", env->created);
    sbuf_printf(hdr, "FROM <%s>\n", env->sender ? env->sender : "");
    if (env->auth) sbuf_printf(hdr, "AUTH %s\n", env->auth);
    if (env->client) sbuf_printf(hdr, "CLIENT %s\n", env->client);
    for (size_t i = 0; i < env->nrcpts; i++)
        sbuf_printf(hdr, "RCPT <%s>\n", env->rcpts[i]);
    for (size_t i = 0; env->errors && i < env->nrcpts; i++)
        if (env->errors[i]) sbuf_printf(hdr, "LAST-ERROR <%s> %s\n", env->rcpts[i], env->errors[i]);
    sbuf_printf(hdr, "ATTEMPTS %u\n", env->attempts);
    sbuf_printf(hdr, "NEXT-TRY %lld\n", env->next_try);
    if (env->delay_notified) sbuf_appends(hdr, "DELAY-NOTIFIED 1\n");
    if (size_off_r != NULL) {
        sbuf_appends(hdr, "SIZE ");
        *size_off_r = hdr->len;
        return sbuf_printf(hdr, "%0*d\n\n", SIZE_DIGITS, 0) < 0 ? -1 : 0;
    }
    return sbuf_printf(hdr, "SIZE %" PRIu64 "\n\n", env->size) < 0 ? -1 : 0;
}

int spool_queue_begin(struct spool_file *f, const char *dir, const struct queue_envelope *env,
                      struct spool_queue_inplace *ip)
{
    memset(ip, 0, sizeof(*ip));
    f->fd = -1;
    if (!envelope_clean(env)) {
        errno = EINVAL;
        return -1;
    }
    struct sbuf hdr = SBUF_INIT(SPOOL_QUEUE_MAX_HEADER);
    size_t off = 0;
    if (envelope_text(env, &hdr, &off) < 0) {
        sbuf_free(&hdr);
        errno = E2BIG;
        return -1;
    }
    if (spool_file_create_id(f, dir, env->id, ".new") < 0) {
        sbuf_free(&hdr);
        return -1;
    }
    spool_file_write(f, hdr.data, hdr.len);
    ip->header_len = hdr.len;
    ip->size_off = off;
    sbuf_free(&hdr);
    return 0;
}

int spool_queue_commit(struct spool_file *f, const char *dir, const struct spool_queue_inplace *ip,
                       char **path_r)
{
    uint64_t size = f->size - ip->header_len;
    spool_file_write(f, SPOOL_QUEUE_END, strlen(SPOOL_QUEUE_END));
    if (spool_file_flush(f) < 0) return -1;
    char digits[SIZE_DIGITS + 1];
    snprintf(digits, sizeof(digits), "%0*" PRIu64, SIZE_DIGITS, size);
    errno = 0;
    if (pwrite(f->fd, digits, SIZE_DIGITS, (off_t)ip->size_off) != SIZE_DIGITS) {
        if (errno == 0) errno = EIO;
        return -1;
    }
    f->synced = false;
    if (spool_file_sync(f) < 0) return -1;
    char *final = xasprintf("%s/%s.tmp", dir, f->id);
    if (rename(f->path, final) < 0) {
        int e = errno;
        free(final);
        errno = e;
        return -1;
    }
    free(f->path);
    f->path = final; /* the queue's file now: discarding it only closes it */
    f->committed = true;
    if (path_r) *path_r = xstrdup(final);
    return 0;
}

/* Writes the queue file to dir/<id>.new, fsyncs it and renames it to dir/<id><suffix>.
 * With keep_fd_r, the file stays open (read-write) and locked, its fd in *keep_fd_r. */
static int queue_write(const char *dir, const struct queue_envelope *env, int msg_fd,
                       uint64_t offset, const char *suffix, char **path_r, int *keep_fd_r)
{
    if (!envelope_clean(env)) {
        errno = EINVAL;
        return -1;
    }
    struct sbuf hdr = SBUF_INIT(SPOOL_QUEUE_MAX_HEADER);
    if (envelope_text(env, &hdr, NULL) < 0) {
        sbuf_free(&hdr);
        errno = E2BIG;
        return -1;
    }

    char *tmp = xasprintf("%s/%s.new", dir, env->id);
    char *final = xasprintf("%s/%s%s", dir, env->id, suffix);
    int saved = 0;
    if (keep_fd_r) unlink(tmp); /* a rewrite by the claim holder: a stale .new is ours */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == ENOENT && fs_mkdirs(dir, 0750) == 0)
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) goto fail;
    if (keep_fd_r && spool_queue_lock(fd) < 0) goto fail;
    if (fs_write_all(fd, hdr.data, hdr.len) < 0) goto fail;
    /* the message: straight from the TEMP file */
    char buf[65536];
    uint64_t left = env->size, off = offset;
    while (left > 0) {
        size_t want = left > sizeof(buf) ? sizeof(buf) : (size_t)left;
        ssize_t n = pread(msg_fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = EIO;
            goto fail;
        }
        if (fs_write_all(fd, buf, (size_t)n) < 0) goto fail;
        left -= (uint64_t)n;
        off += (uint64_t)n;
    }
    if (fs_write_all(fd, SPOOL_QUEUE_END, strlen(SPOOL_QUEUE_END)) < 0) goto fail;
    if (fsync(fd) < 0) goto fail;
    if (keep_fd_r == NULL) {
        if (close(fd) < 0) {
            fd = -1;
            goto fail;
        }
        fd = -1;
    }
    if (rename(tmp, final) < 0) goto fail;
    sbuf_free(&hdr);
    free(tmp);
    if (keep_fd_r) *keep_fd_r = fd;
    if (path_r)
        *path_r = final;
    else
        free(final);
    return 0;
fail:
    saved = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    free(final);
    sbuf_free(&hdr);
    errno = saved;
    return -1;
}

int spool_queue_write(const char *dir, const struct queue_envelope *env, int msg_fd,
                      uint64_t offset, char **path_r)
{
    return queue_write(dir, env, msg_fd, offset, ".tmp", path_r, NULL);
}

int spool_queue_rewrite(const char *dir, const struct queue_envelope *env, int old_fd,
                        uint64_t msg_offset, const char *suffix, int *fd_r)
{
    return queue_write(dir, env, old_fd, msg_offset, suffix, NULL, fd_r);
}

int spool_queue_lock(int fd)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    return fcntl(fd, F_OFD_SETLK, &fl);
}

void spool_queue_envelope_clear(struct queue_envelope *env)
{
    free(env->id);
    free(env->sender);
    free(env->auth);
    free(env->client);
    for (size_t i = 0; i < env->nrcpts; i++) {
        free(env->rcpts[i]);
        if (env->errors) free(env->errors[i]);
    }
    free(env->rcpts);
    free(env->errors);
    memset(env, 0, sizeof(*env));
}

static char *unbracket(const char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '<' && v[n - 1] == '>') return xstrndup(v + 1, n - 2);
    return NULL;
}

static int parse_num(const char *v, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end) return -1;
    *out = x;
    return 0;
}

int spool_queue_read(const char *path, struct queue_envelope *env, uint64_t *msg_offset_r)
{
    memset(env, 0, sizeof(*env));
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -1;
    int r = spool_queue_read_fd(fd, env, msg_offset_r);
    int saved = errno;
    close(fd);
    errno = saved;
    return r;
}

int spool_queue_read_fd(int fd, struct queue_envelope *env, uint64_t *msg_offset_r)
{
    memset(env, 0, sizeof(*env));
    struct stat st;
    if (fstat(fd, &st) < 0) return -1;
    char **errs_by_addr = NULL; /* "addr\0text" pairs, matched to RCPTs at the end */
    size_t nerrs = 0;
    /* read the envelope: up to the first empty line */
    struct sbuf hdr = SBUF_INIT(SPOOL_QUEUE_MAX_HEADER);
    size_t hdr_end = 0;
    char buf[8192];
    off_t off = 0;
    while (hdr_end == 0) {
        ssize_t n = pread(fd, buf, sizeof(buf), off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || sbuf_append(&hdr, buf, (size_t)n) < 0) goto bad;
        off += n;
        char *sep = memmem(hdr.data, hdr.len, "\n\n", 2);
        if (sep) hdr_end = (size_t)(sep - hdr.data) + 2;
    }
    if (hdr.len < strlen(SPOOL_QUEUE_MAGIC) ||
        memcmp(hdr.data, SPOOL_QUEUE_MAGIC, strlen(SPOOL_QUEUE_MAGIC)) != 0)
        goto bad;
    hdr.data[hdr_end - 1] = '\0';
    bool have_size = false;
    size_t cap = 0;
    char *save = NULL;
    for (char *line = strtok_r(hdr.data + strlen(SPOOL_QUEUE_MAGIC), "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *sp = strchr(line, ' ');
        if (sp == NULL) goto bad;
        *sp = '\0';
        const char *key = line, *val = sp + 1;
        long long num;
        if (strcmp(key, "ID") == 0) {
            free(env->id);
            env->id = xstrdup(val);
        } else if (strcmp(key, "CREATED") == 0) {
            if (parse_num(val, &env->created) < 0) goto bad;
        } else if (strcmp(key, "FROM") == 0) {
            free(env->sender);
            if ((env->sender = unbracket(val)) == NULL) goto bad;
        } else if (strcmp(key, "AUTH") == 0) {
            free(env->auth);
            env->auth = xstrdup(val);
        } else if (strcmp(key, "CLIENT") == 0) {
            free(env->client);
            env->client = xstrdup(val);
        } else if (strcmp(key, "RCPT") == 0) {
            char *r = unbracket(val);
            if (r == NULL) goto bad;
            if (env->nrcpts == cap) {
                cap = cap ? cap * 2 : 8;
                env->rcpts = xreallocarray(env->rcpts, cap, sizeof(char *));
            }
            env->rcpts[env->nrcpts++] = r;
        } else if (strcmp(key, "ATTEMPTS") == 0) {
            if (parse_num(val, &num) < 0 || num < 0) goto bad;
            env->attempts = (unsigned)num;
        } else if (strcmp(key, "NEXT-TRY") == 0) {
            if (parse_num(val, &env->next_try) < 0) goto bad;
        } else if (strcmp(key, "LAST-ERROR") == 0) {
            const char *close_br = strchr(val, '>');
            if (val[0] != '<' || close_br == NULL || close_br[1] != ' ') goto bad;
            errs_by_addr = xreallocarray(errs_by_addr, nerrs + 1, sizeof(char *));
            errs_by_addr[nerrs++] = xstrdup(val);
        } else if (strcmp(key, "DELAY-NOTIFIED") == 0) {
            env->delay_notified = strcmp(val, "0") != 0;
        } else if (strcmp(key, "SIZE") == 0) {
            if (parse_num(val, &num) < 0 || num < 0) goto bad;
            env->size = (uint64_t)num;
            have_size = true;
        }
        /* unknown keys are kept for forward compatibility: ignored */
    }
    if (!have_size || env->id == NULL || env->sender == NULL || env->nrcpts == 0) goto bad;
    uint64_t endlen = strlen(SPOOL_QUEUE_END);
    if ((uint64_t)st.st_size != hdr_end + env->size + endlen) goto bad;
    char tail[32];
    if (pread(fd, tail, endlen, st.st_size - (off_t)endlen) != (ssize_t)endlen ||
        memcmp(tail, SPOOL_QUEUE_END, endlen) != 0)
        goto bad;
    if (nerrs) {
        env->errors = xcalloc(env->nrcpts, sizeof(char *));
        for (size_t e = 0; e < nerrs; e++) {
            const char *v = errs_by_addr[e];
            size_t alen = (size_t)(strchr(v, '>') - v - 1);
            for (size_t i = 0; i < env->nrcpts; i++) {
                if (strlen(env->rcpts[i]) == alen && memcmp(env->rcpts[i], v + 1, alen) == 0) {
                    free(env->errors[i]);
                    env->errors[i] = xstrdup(v + alen + 3);
                }
            }
        }
    }
    for (size_t e = 0; e < nerrs; e++)
        free(errs_by_addr[e]);
    free(errs_by_addr);
    sbuf_free(&hdr);
    if (msg_offset_r) *msg_offset_r = hdr_end;
    return 0;
bad:
    for (size_t e = 0; e < nerrs; e++)
        free(errs_by_addr[e]);
    free(errs_by_addr);
    sbuf_free(&hdr);
    spool_queue_envelope_clear(env);
    errno = EINVAL;
    return -1;
}

static bool has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n > s && strcmp(name + n - s, suffix) == 0;
}

int spool_queue_recover(const char *dir, void (*report)(const char *name, const char *why))
{
    DIR *d = opendir(dir);
    if (d == NULL) return errno == ENOENT ? 0 : -1;
    int reclaimed = 0;
    bool changed = false;
    char *damaged = xasprintf("%s/damaged", dir);
    char hostpart[96];
    snprintf(hostpart, sizeof(hostpart), ".%s.new", spool_host);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.') continue;
        if (has_suffix(name, hostpart)) {
            /* an unfinished write of ours: never acknowledged */
            unlinkat(dirfd(d), name, 0);
            changed = true;
            continue;
        }
        bool inflight = has_suffix(name, ".tm$");
        if (!inflight && !has_suffix(name, ".tmp")) continue;
        char *path = xasprintf("%s/%s", dir, name);
        struct queue_envelope env;
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0 && spool_queue_lock(fd) < 0) {
            /* being sent right now by a live process (another server sharing mail/) */
            close(fd);
            free(path);
            continue;
        }
        int r = fd >= 0 ? spool_queue_read_fd(fd, &env, NULL) : -1;
        if (fd >= 0) close(fd);
        if (r < 0) {
            if (errno == EINVAL) {
                fs_mkdirs(damaged, 0700);
                char *to = xasprintf("%s/%s", damaged, name);
                if (rename(path, to) == 0 && report)
                    report(name, "incomplete or damaged (no end marker); moved to damaged/");
                free(to);
                changed = true;
            }
            free(path);
            continue;
        }
        spool_queue_envelope_clear(&env);
        if (inflight) {
            char *to = xasprintf("%s/%.*s.tmp", dir, (int)(strlen(name) - 4), name);
            if (rename(path, to) == 0) {
                reclaimed++;
                changed = true;
            }
            free(to);
        }
        free(path);
    }
    closedir(d);
    if (changed) fs_fsync_dir(dir);
    free(damaged);
    return reclaimed;
}

/* queue_admin.c - looking at and changing the FORWARD queue from outside smtpd
 *
 * Each change: open the file, take its lock (spool_queue_lock), make sure the name
 * still refers to the file we locked, then rename or rewrite it. The runner does the
 * same before it renames <id>.tmp to <id>.tm$, so whoever locks first wins and the
 * other sees the file gone or changed.
 *
 * SECURITY: see queue_admin.h: ids are checked before they are used in a path; files
 * are opened with O_NOFOLLOW.
 */
#include "queue_admin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xalloc.h"

#define SHOW_MAX_HEADERS (64 * 1024)

const char *queue_state_name(enum queue_state s)
{
    switch (s) {
    case QUEUE_WAITING: return "waiting";
    case QUEUE_SENDING: return "sending";
    case QUEUE_HELD: return "held";
    }
    return "?";
}

bool queue_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= SPOOL_ID_MAX || id[0] == '.') return false;
    for (const char *p = id; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static const char *const suffixes[] = {".tmp", ".tm$", ".hold"};
static const enum queue_state states[] = {QUEUE_WAITING, QUEUE_SENDING, QUEUE_HELD};

static int item_cmp(const void *a, const void *b)
{
    const struct queue_item *x = a, *y = b;
    if (x->env.created != y->env.created) return x->env.created < y->env.created ? -1 : 1;
    return strcmp(x->env.id, y->env.id);
}

int queue_admin_list(const char *dir, struct queue_item **items_r, size_t *n_r)
{
    *items_r = NULL;
    *n_r = 0;
    DIR *d = opendir(dir);
    if (d == NULL) return errno == ENOENT ? 0 : -1;
    struct queue_item *items = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        for (size_t s = 0; s < 3; s++) {
            size_t sl = strlen(suffixes[s]);
            if (len <= sl || de->d_name[0] == '.' || strcmp(de->d_name + len - sl, suffixes[s]))
                continue;
            char *path = xasprintf("%s/%s", dir, de->d_name);
            struct queue_envelope env;
            int r = spool_queue_read(path, &env, NULL);
            free(path);
            if (r < 0) break;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                items = xreallocarray(items, cap, sizeof(*items));
            }
            items[n].state = states[s];
            items[n].env = env;
            n++;
            break;
        }
    }
    closedir(d);
    if (n > 1) qsort(items, n, sizeof(*items), item_cmp);
    *items_r = items;
    *n_r = n;
    return 0;
}

void queue_items_free(struct queue_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        spool_queue_envelope_clear(&items[i].env);
    free(items);
}

/* Opens and locks dir/<id><suffix>, checking the name still refers to it. */
static enum queue_admin_result lock_file(const char *dir, const char *id, const char *suffix,
                                         int *fd_r, char **path_r)
{
    char *path = xasprintf("%s/%s%s", dir, id, suffix);
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        free(path);
        errno = e;
        return e == ENOENT ? QUEUE_ADMIN_NOTFOUND : QUEUE_ADMIN_ERROR;
    }
    struct stat a, b;
    if (spool_queue_lock(fd) < 0 || fstat(fd, &a) < 0 || stat(path, &b) < 0 ||
        a.st_ino != b.st_ino) {
        close(fd);
        free(path);
        return QUEUE_ADMIN_BUSY;
    }
    *fd_r = fd;
    *path_r = path;
    return QUEUE_ADMIN_OK;
}

static bool exists(const char *dir, const char *id, const char *suffix)
{
    char *path = xasprintf("%s/%s%s", dir, id, suffix);
    bool e = access(path, F_OK) == 0;
    free(path);
    return e;
}

enum queue_admin_result queue_admin_show(const char *dir, const char *id, struct queue_item *item,
                                         struct sbuf *headers)
{
    if (!queue_id_valid(id)) return QUEUE_ADMIN_INVALID;
    for (size_t s = 0; s < 3; s++) {
        char *path = xasprintf("%s/%s%s", dir, id, suffixes[s]);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        free(path);
        if (fd < 0) continue;
        uint64_t off;
        if (spool_queue_read_fd(fd, &item->env, &off) < 0) {
            close(fd);
            return QUEUE_ADMIN_ERROR;
        }
        item->state = states[s];
        if (headers) {
            size_t want =
                item->env.size < SHOW_MAX_HEADERS ? (size_t)item->env.size : SHOW_MAX_HEADERS;
            char *buf = xmalloc(want + 1);
            ssize_t n = pread(fd, buf, want, (off_t)off);
            if (n > 0) {
                char *end = memmem(buf, (size_t)n, "\r\n\r\n", 4);
                sbuf_append(headers, buf, end ? (size_t)(end - buf) + 2 : (size_t)n);
            }
            free(buf);
        }
        close(fd);
        return QUEUE_ADMIN_OK;
    }
    return QUEUE_ADMIN_NOTFOUND;
}

enum queue_admin_result queue_admin_delete(const char *dir, const char *id)
{
    if (!queue_id_valid(id)) return QUEUE_ADMIN_INVALID;
    static const char *const deletable[] = {".tmp", ".hold"};
    for (size_t s = 0; s < 2; s++) {
        int fd;
        char *path;
        enum queue_admin_result r = lock_file(dir, id, deletable[s], &fd, &path);
        if (r == QUEUE_ADMIN_NOTFOUND) continue;
        if (r != QUEUE_ADMIN_OK) return r;
        int u = unlink(path);
        int e = errno;
        close(fd);
        free(path);
        errno = e;
        return u == 0 ? QUEUE_ADMIN_OK : QUEUE_ADMIN_ERROR;
    }
    return exists(dir, id, ".tm$") ? QUEUE_ADMIN_BUSY : QUEUE_ADMIN_NOTFOUND;
}

static enum queue_admin_result move(const char *dir, const char *id, const char *from,
                                    const char *to)
{
    if (!queue_id_valid(id)) return QUEUE_ADMIN_INVALID;
    int fd;
    char *path;
    enum queue_admin_result r = lock_file(dir, id, from, &fd, &path);
    if (r == QUEUE_ADMIN_NOTFOUND && exists(dir, id, ".tm$")) return QUEUE_ADMIN_BUSY;
    if (r != QUEUE_ADMIN_OK) return r;
    char *dest = xasprintf("%s/%s%s", dir, id, to);
    int m = rename(path, dest);
    int e = errno;
    close(fd);
    free(path);
    free(dest);
    errno = e;
    return m == 0 ? QUEUE_ADMIN_OK : QUEUE_ADMIN_ERROR;
}

enum queue_admin_result queue_admin_hold(const char *dir, const char *id)
{
    return move(dir, id, ".tmp", ".hold");
}

enum queue_admin_result queue_admin_release(const char *dir, const char *id)
{
    return move(dir, id, ".hold", ".tmp");
}

enum queue_admin_result queue_admin_retry(const char *dir, const char *id)
{
    if (!queue_id_valid(id)) return QUEUE_ADMIN_INVALID;
    int fd;
    char *path;
    enum queue_admin_result r = lock_file(dir, id, ".tmp", &fd, &path);
    if (r == QUEUE_ADMIN_NOTFOUND && exists(dir, id, ".tm$")) return QUEUE_ADMIN_BUSY;
    if (r != QUEUE_ADMIN_OK) return r;
    struct queue_envelope env;
    uint64_t off;
    r = QUEUE_ADMIN_OK;
    if (spool_queue_read_fd(fd, &env, &off) < 0) {
        r = QUEUE_ADMIN_ERROR;
    } else {
        if (env.next_try != 0) {
            env.next_try = 0;
            int nfd;
            if (spool_queue_rewrite(dir, &env, fd, off, ".tmp", &nfd) < 0)
                r = QUEUE_ADMIN_ERROR;
            else
                close(nfd);
        }
        spool_queue_envelope_clear(&env);
    }
    int e = errno;
    close(fd);
    free(path);
    errno = e;
    return r;
}

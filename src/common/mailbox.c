/* mailbox.c - a user's mailbox directory: delivering into it, listing it, its size
 *
 * Delivery never takes a lock: it only adds a name to the directory, atomically.
 * Readers (POP3, IMAP) take a snapshot of the names and cope with files that vanish.
 *
 * SECURITY: nothing here follows a symbolic link found in a mailbox (O_NOFOLLOW,
 * lstat-style checks through fstatat(AT_SYMLINK_NOFOLLOW)).
 */
#include "mailbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "xalloc.h"

#define MAILBOX_MAX_DEPTH 16

char *mailbox_path(const char *mail_dir, const char *domain_dir, const char *local)
{
    return xasprintf("%s/%s/%s", mail_dir, domain_dir, local);
}

int mailbox_create(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return 0;
        errno = ENOTDIR;
        return -1;
    }
    char *parent = fs_dirname(dir);
    char *grand = fs_dirname(parent);
    int r = -1;
    bool made_parent = stat(parent, &st) < 0;
    if (fs_mkdirs(dir, 0700) < 0) goto out;
    if (fs_fsync_dir(parent) < 0) goto out;
    if (made_parent && fs_fsync_dir(grand) < 0) goto out;
    r = 0;
out:
    free(parent);
    free(grand);
    return r;
}

int mailbox_deliver(const char *dir, const char *id, const char *src_path, int src_fd)
{
    char *final = xasprintf("%s/%s" MAILBOX_SUFFIX, dir, id);
    int r = link(src_path, final);
    if (r < 0 && errno == ENOENT) {
        if (mailbox_create(dir) == 0) r = link(src_path, final);
    }
    if (r == 0 || (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOTSUP)) {
        free(final);
        return r;
    }
    /* another file system (or no hard links): copy, fsync, rename */
    char *tmp = xasprintf("%s/.%s.part", dir, id);
    int saved = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) goto fail;
    if (fs_copy_fd(src_fd, fd) < 0 || fsync(fd) < 0) goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, final) < 0) goto fail;
    free(tmp);
    free(final);
    return 0;
fail:
    saved = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    free(final);
    errno = saved;
    return -1;
}

void mailbox_undeliver(const char *dir, const char *id)
{
    char *path = xasprintf("%s/%s" MAILBOX_SUFFIX, dir, id);
    unlink(path);
    free(path);
}

static bool is_message_name(const char *name)
{
    size_t n = strlen(name), s = strlen(MAILBOX_SUFFIX);
    return name[0] != '.' && n > s && strcmp(name + n - s, MAILBOX_SUFFIX) == 0;
}

static int cmp_msg(const void *a, const void *b)
{
    const struct mailbox_msg *x = a, *y = b;
    return strcmp(x->name, y->name);
}

int mailbox_list(const char *dir, struct mailbox_msg **msgs_r, size_t *count_r)
{
    *msgs_r = NULL;
    *count_r = 0;
    DIR *d = opendir(dir);
    if (d == NULL) return errno == ENOENT ? 0 : -1;
    size_t n = 0, cap = 0;
    struct mailbox_msg *msgs = NULL;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_message_name(de->d_name)) continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        if (!S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            msgs = xreallocarray(msgs, cap, sizeof(*msgs));
        }
        msgs[n].name = xstrdup(de->d_name);
        msgs[n].size = (uint64_t)st.st_size;
        msgs[n].mtime = st.st_mtime;
        n++;
    }
    closedir(d);
    if (n > 1) qsort(msgs, n, sizeof(*msgs), cmp_msg);
    *msgs_r = msgs;
    *count_r = n;
    return 0;
}

void mailbox_list_free(struct mailbox_msg **msgs, size_t count)
{
    if (*msgs == NULL) return;
    for (size_t i = 0; i < count; i++)
        free((*msgs)[i].name);
    free(*msgs);
    *msgs = NULL;
}

static uint64_t usage_at(int dfd, int depth, uint64_t *messages)
{
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return 0;
    }
    uint64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        if (S_ISREG(st.st_mode) && is_message_name(de->d_name)) {
            total += (uint64_t)st.st_size;
            (*messages)++;
        } else if (S_ISDIR(st.st_mode) && depth < MAILBOX_MAX_DEPTH) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) total += usage_at(sub, depth + 1, messages);
        }
    }
    closedir(d);
    return total;
}

uint64_t mailbox_usage(const char *dir, uint64_t *messages_r)
{
    uint64_t ignored = 0, *messages = messages_r ? messages_r : &ignored;
    *messages = 0;
    /* the mailbox itself may be a link the administrator made (moved to another disk);
     * nothing below it is followed */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return 0;
    return usage_at(fd, 0, messages);
}

void mailbox_clean(const char *dir)
{
    mailbox_clean_at(dir, time(NULL));
}

void mailbox_clean_at(const char *dir, time_t now)
{
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] != '.' || n < 6 || strcmp(de->d_name + n - 5, ".part") != 0) continue;
        struct stat st;
        /* ctime, not mtime: an IMAP APPEND sets a work file's mtime to the message's
         * internal date, which may be long ago */
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            now - st.st_ctime > 36 * 3600)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

/* ---- removing a mailbox --------------------------------------------------------- */

#define PURGE_MAX_DEPTH 32 /* directory levels below a mailbox that are removed */

static int remove_tree_at(int parent_fd, const char *name, int depth)
{
    struct stat sb;
    if (fstatat(parent_fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) return -1;
    if (!S_ISDIR(sb.st_mode)) return unlinkat(parent_fd, name, 0);
    if (depth > PURGE_MAX_DEPTH) {
        errno = ELOOP;
        return -1;
    }
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -1;
    }
    int ret = 0;
    struct dirent *de;
    while (ret == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        ret = remove_tree_at(dirfd(d), de->d_name, depth + 1);
    }
    int saved = errno;
    closedir(d);
    if (ret < 0) {
        errno = saved;
        return -1;
    }
    return unlinkat(parent_fd, name, AT_REMOVEDIR);
}

int mailbox_purge(const char *mail_dir, const char *domain_dir, const char *local)
{
    char *ddir = xasprintf("%s/%s", mail_dir, domain_dir);
    int dfd = open(ddir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(ddir);
    if (dfd < 0) return errno == ENOENT ? 0 : -1;
    struct stat sb;
    int ret;
    if (fstatat(dfd, local, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        ret = errno == ENOENT ? 0 : -1;
    else
        ret = remove_tree_at(dfd, local, 0) == 0 ? 1 : -1;
    int saved = errno;
    if (ret == 1) fsync(dfd);
    close(dfd);
    errno = saved;
    return ret;
}

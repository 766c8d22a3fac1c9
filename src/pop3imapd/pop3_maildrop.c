/* pop3_maildrop.c - the locked snapshot of an INBOX that a POP3 session works on
 *
 * Lock, then list: once the lock is held no other POP3 session can delete from the
 * mailbox, so the snapshot stays valid except for messages another kind of reader
 * (IMAP) removes, which pop3_maildrop_open_msg() reports as ENOENT. The lock is an
 * flock() on a hidden file, held through its descriptor: it goes away with the session
 * (or the process) however that ends, and delivery never looks at it.
 *
 * SECURITY: see pop3_maildrop.h. The lock file is opened with O_NOFOLLOW, messages
 * with openat(O_NOFOLLOW) relative to the mailbox directory, and both must be regular
 * files.
 */
#include "pop3_maildrop.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailbox.h"
#include "xalloc.h"

void pop3_uidl(const char *name, char *uidl)
{
    size_t len = strlen(name), sfx = strlen(MAILBOX_SUFFIX);
    if (len > sfx && strcmp(name + len - sfx, MAILBOX_SUFFIX) == 0) len -= sfx;
    bool ok = len >= 1 && len <= POP3_UIDL_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x21 || c > 0x7e) ok = false;
    }
    if (ok) {
        memcpy(uidl, name, len);
        uidl[len] = '\0';
        return;
    }
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)name, strlen(name), md);
    for (size_t i = 0; i < POP3_UIDL_HASH_HEX / 2; i++) {
        uidl[2 * i] = hex[md[i] >> 4];
        uidl[2 * i + 1] = hex[md[i] & 15];
    }
    uidl[POP3_UIDL_HASH_HEX] = '\0';
}

enum pop3_maildrop_result pop3_maildrop_open(const char *dir, struct pop3_maildrop **drop_r)
{
    *drop_r = NULL;
    if (mailbox_create(dir) < 0) return POP3_MAILDROP_ERROR;
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return POP3_MAILDROP_ERROR;
    int lock_fd = openat(dir_fd, POP3_LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    struct stat st;
    if (lock_fd < 0 || fstat(lock_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int saved = lock_fd < 0 ? errno : EINVAL;
        if (lock_fd >= 0) close(lock_fd);
        close(dir_fd);
        errno = saved;
        return POP3_MAILDROP_ERROR;
    }
    while (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EINTR) continue;
        int saved = errno;
        close(lock_fd);
        close(dir_fd);
        errno = saved;
        return saved == EWOULDBLOCK ? POP3_MAILDROP_INUSE : POP3_MAILDROP_ERROR;
    }

    struct mailbox_msg *list;
    size_t n;
    mailbox_clean(dir); /* work files a crash left behind (older than 36 hours) */
    if (mailbox_list(dir, &list, &n) < 0) {
        int saved = errno;
        close(lock_fd);
        close(dir_fd);
        errno = saved;
        return POP3_MAILDROP_ERROR;
    }
    struct pop3_maildrop *drop = xcalloc(1, sizeof(*drop));
    drop->dir = xstrdup(dir);
    drop->dir_fd = dir_fd;
    drop->lock_fd = lock_fd;
    drop->msgs = n ? xcalloc(n, sizeof(*drop->msgs)) : NULL;
    drop->count = n;
    for (size_t i = 0; i < n; i++) {
        drop->msgs[i].name = list[i].name; /* taken over */
        list[i].name = NULL;
        drop->msgs[i].size = list[i].size;
        drop->size += list[i].size;
        pop3_uidl(drop->msgs[i].name, drop->msgs[i].uidl);
    }
    mailbox_list_free(&list, n);
    *drop_r = drop;
    return POP3_MAILDROP_OK;
}

void pop3_maildrop_close(struct pop3_maildrop **dropp)
{
    struct pop3_maildrop *drop = *dropp;
    if (drop == NULL) return;
    for (size_t i = 0; i < drop->count; i++)
        free(drop->msgs[i].name);
    free(drop->msgs);
    close(drop->lock_fd); /* releases the flock */
    close(drop->dir_fd);
    free(drop->dir);
    free(drop);
    *dropp = NULL;
}

struct pop3_msg *pop3_maildrop_get(struct pop3_maildrop *drop, unsigned long n)
{
    if (n == 0 || n > drop->count) return NULL;
    struct pop3_msg *msg = &drop->msgs[n - 1];
    return msg->deleted ? NULL : msg;
}

void pop3_maildrop_delete(struct pop3_maildrop *drop, struct pop3_msg *msg)
{
    if (msg->deleted) return;
    msg->deleted = true;
    drop->ndeleted++;
    drop->deleted_size += msg->size;
}

void pop3_maildrop_reset(struct pop3_maildrop *drop)
{
    for (size_t i = 0; i < drop->count; i++)
        drop->msgs[i].deleted = false;
    drop->ndeleted = 0;
    drop->deleted_size = 0;
}

int pop3_maildrop_open_msg(struct pop3_maildrop *drop, const struct pop3_msg *msg)
{
    int fd = openat(drop->dir_fd, msg->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    return fd;
}

int pop3_maildrop_commit(struct pop3_maildrop *drop, size_t *removed_r)
{
    int ret = 0, saved = 0;
    size_t removed = 0;
    for (size_t i = 0; i < drop->count; i++) {
        if (!drop->msgs[i].deleted) continue;
        if (unlinkat(drop->dir_fd, drop->msgs[i].name, 0) == 0 || errno == ENOENT) {
            removed++;
        } else {
            saved = errno;
            ret = -1;
        }
    }
    if (removed > 0 && fsync(drop->dir_fd) < 0) {
        saved = errno;
        ret = -1;
    }
    *removed_r = removed;
    if (ret < 0) errno = saved;
    return ret;
}

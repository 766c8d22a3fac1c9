/* folder_names.c - folder names and the folder tree of a mailbox (RFC 3501 6.3)
 *
 * The INBOX is the mailbox directory; a folder "a/b" is the directory a/b under it,
 * except that INBOX's own children ("INBOX/x") live under the directory "INBOX"
 * (mailbox/INBOX/x), which is not a folder itself. A directory without an index is an
 * empty folder (the index is made when it is first opened); one holding FOLDER_NOSELECT
 * is \Noselect (a folder deleted while it had children, or a hierarchy level made by
 * CREATE "name/"). Subscriptions are the lines of FOLDER_SUBSCRIPTIONS in the mailbox,
 * changed under an flock on FOLDER_SUBSCRIPTIONS_LOCK.
 *
 * SECURITY: a name becomes a path only after folder_name_valid(): no "..", no leading
 * '.', no absolute path, nothing a file system could read differently. Directories are
 * opened with O_NOFOLLOW and walked with AT_SYMLINK_NOFOLLOW: a symbolic link in a
 * mailbox is never a folder.
 */
#include "folder_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "mailbox.h"
#include "mutf7.h"
#include "xalloc.h"

#define SUBSCRIPTIONS_MAX (1u << 20)
#define DELETE_ATTEMPTS   5

static const char *const special_names[][2] = {
    {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"}, {"Trash", "\\Trash"}, {"Junk", "\\Junk"}};
#define NSPECIAL (sizeof(special_names) / sizeof(special_names[0]))

/* ---- names -------------------------------------------------------------------------- */

bool folder_name_valid(const char *name, const char **why_r)
{
    const char *why = NULL;
    size_t len = name ? strlen(name) : 0, depth = 0;
    if (len == 0) {
        why = "empty name";
    } else if (len > FOLDER_MAX_NAME) {
        why = "name too long";
    } else {
        for (const char *p = name; why == NULL;) {
            const char *end = strchr(p, '/');
            size_t cl = end ? (size_t)(end - p) : strlen(p);
            depth++;
            if (cl == 0)
                why = "empty hierarchy level (leading, trailing or doubled '/')";
            else if (cl > FOLDER_FILE_MAX)
                why = "hierarchy level too long";
            else if (p[0] == '.')
                why = "a hierarchy level may not start with '.'";
            else if (p[0] == '~')
                why = "a hierarchy level may not start with '~'";
            for (size_t i = 0; i < cl && why == NULL; i++) {
                unsigned char c = (unsigned char)p[i];
                if (c < 0x20 || c >= 0x7f)
                    why = "control or 8-bit character (names are modified UTF-7)";
                else if (strchr("\\:*?\"<>|", c))
                    why = "one of \\ : * ? \" < > | in the name";
            }
            if (end == NULL) break;
            p = end + 1;
        }
        if (why == NULL && depth > FOLDER_MAX_DEPTH) why = "too many hierarchy levels";
        if (why == NULL && !mutf7_valid(name, len)) why = "not valid modified UTF-7";
    }
    if (why_r) *why_r = why;
    return why == NULL;
}

static bool is_inbox(const char *name)
{
    return strcasecmp(name, "INBOX") == 0;
}

/* name with a first level "inbox" in any case written "INBOX" (xmalloc'ed). */
static char *normal_name(const char *name)
{
    if (is_inbox(name)) return xstrdup("INBOX");
    if (strncasecmp(name, "INBOX/", 6) == 0) return xasprintf("INBOX/%s", name + 6);
    return xstrdup(name);
}

char *folder_path(const char *mailbox_dir, const char *name)
{
    if (!folder_name_valid(name, NULL)) return NULL;
    if (is_inbox(name)) return xstrdup(mailbox_dir);
    if (strncasecmp(name, "INBOX/", 6) == 0) return xasprintf("%s/INBOX/%s", mailbox_dir, name + 6);
    return xasprintf("%s/%s", mailbox_dir, name);
}

static const char *special_use(const char *name)
{
    for (size_t i = 0; i < NSPECIAL; i++)
        if (strcmp(name, special_names[i][0]) == 0) return special_names[i][1];
    return NULL;
}

/* ---- subscriptions ------------------------------------------------------------------ */

static int subs_lock(const char *mailbox_dir)
{
    char *path = xasprintf("%s/" FOLDER_SUBSCRIPTIONS_LOCK, mailbox_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    free(path);
    if (fd < 0) return -1;
    while (flock(fd, LOCK_EX) < 0) {
        if (errno == EINTR) continue;
        close(fd);
        return -1;
    }
    return fd;
}

/* The subscribed names: the file's text (lines), NULL with errno ENOENT if none. */
static char *subs_read(const char *mailbox_dir)
{
    char *path = xasprintf("%s/" FOLDER_SUBSCRIPTIONS, mailbox_dir);
    char *text = fs_read_file(path, SUBSCRIPTIONS_MAX, NULL);
    free(path);
    return text;
}

static bool subs_has(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        if (ll == n && memcmp(p, name, n) == 0) return true;
        p = nl ? nl + 1 : NULL;
    }
    return false;
}

static int subs_write(const char *mailbox_dir, const struct sbuf *text)
{
    char *path = xasprintf("%s/" FOLDER_SUBSCRIPTIONS, mailbox_dir);
    int r = fs_write_file_atomic(path, text->data ? text->data : "", text->len, 0600);
    free(path);
    return r;
}

enum folder_result folder_subscribe(const char *mailbox_dir, const char *name, bool subscribe,
                                    const char **error_r)
{
    const char *why;
    if (!folder_name_valid(name, &why)) return folder_fail(error_r, FOLDER_INVALID, "%s", why);
    if (mailbox_create(mailbox_dir) < 0)
        return folder_fail(error_r, FOLDER_ERROR, "cannot create the mailbox: %s", strerror(errno));
    int lk = subs_lock(mailbox_dir);
    if (lk < 0)
        return folder_fail(error_r, FOLDER_ERROR, "cannot lock the subscriptions: %s",
                           strerror(errno));
    char *norm = normal_name(name);
    char *text = subs_read(mailbox_dir);
    enum folder_result r = FOLDER_OK;
    if (text == NULL && errno != ENOENT) {
        r = folder_fail(error_r, FOLDER_ERROR, "cannot read the subscriptions: %s",
                        strerror(errno));
    } else if (subscribe ? !subs_has(text, norm) : subs_has(text, norm)) {
        struct sbuf out = SBUF_INIT(SUBSCRIPTIONS_MAX);
        for (const char *p = text; p && *p;) {
            const char *nl = strchr(p, '\n');
            size_t ll = nl ? (size_t)(nl - p) : strlen(p);
            if (ll > 0 && !(ll == strlen(norm) && memcmp(p, norm, ll) == 0)) {
                sbuf_append(&out, p, ll);
                sbuf_putc(&out, '\n');
            }
            p = nl ? nl + 1 : NULL;
        }
        if (subscribe && (sbuf_appends(&out, norm) < 0 || sbuf_putc(&out, '\n') < 0))
            r = folder_fail(error_r, FOLDER_INVALID, "too many subscriptions");
        else if (subs_write(mailbox_dir, &out) < 0)
            r = folder_fail(error_r, FOLDER_ERROR, "cannot write the subscriptions: %s",
                            strerror(errno));
        sbuf_free(&out);
    } else if (!subscribe) {
        r = folder_fail(error_r, FOLDER_NOTFOUND, "not subscribed");
    }
    free(text);
    free(norm);
    close(lk);
    return r;
}

enum folder_result folder_subscriptions(const char *mailbox_dir, char ***names_r, size_t *count_r,
                                        const char **error_r)
{
    *names_r = NULL;
    *count_r = 0;
    char *text = subs_read(mailbox_dir);
    if (text == NULL)
        return errno == ENOENT ? FOLDER_OK
                               : folder_fail(error_r, FOLDER_ERROR,
                                             "cannot read the subscriptions: %s", strerror(errno));
    size_t n = 0, cap = 0;
    char **names = NULL;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        if (ll > 0) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                names = xreallocarray(names, cap, sizeof(char *));
            }
            names[n++] = xstrndup(p, ll);
        }
        p = nl ? nl + 1 : p + ll;
    }
    free(text);
    *names_r = names;
    *count_r = n;
    return FOLDER_OK;
}

/* ---- the tree ----------------------------------------------------------------------- */

/* Whether directory fd has a subdirectory (a subfolder, or INBOX's children). */
static bool has_subdirs(int fd)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        if (dfd >= 0) close(dfd);
        return false;
    }
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.') continue;
        if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) continue;
        found = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    closedir(d);
    return found;
}

struct list_acc {
    struct folder_info *v;
    size_t n, cap;
    const char *subs;
};

static size_t list_add(struct list_acc *acc, char *name, bool noselect)
{
    if (acc->n == acc->cap) {
        acc->cap = acc->cap ? acc->cap * 2 : 16;
        acc->v = xreallocarray(acc->v, acc->cap, sizeof(*acc->v));
    }
    struct folder_info *fi = &acc->v[acc->n];
    memset(fi, 0, sizeof(*fi));
    fi->name = name;
    fi->noselect = noselect;
    fi->subscribed = subs_has(acc->subs, name);
    fi->special = special_use(name);
    return acc->n++;
}

/* Adds the folders under directory dfd (taken over), named prefix + entry. Returns
 * whether there was any. level: the hierarchy level of the entries. */
static bool walk(int dfd, const char *prefix, size_t level, struct list_acc *acc, bool *inbox_kids)
{
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return false;
    }
    bool any = false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *e = de->d_name;
        struct stat st;
        if (e[0] == '.' || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)) continue;
        if (fstatat(dirfd(d), e, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) continue;
        int sub = openat(dirfd(d), e, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) continue;
        if (level == 1 && is_inbox(e)) {
            /* INBOX's children; another spelling of it is not reachable: ignored */
            if (strcmp(e, "INBOX") == 0)
                *inbox_kids = walk(sub, "INBOX/", 2, acc, inbox_kids) || *inbox_kids;
            else
                close(sub);
            continue;
        }
        char *name = xasprintf("%s%s", prefix, e);
        if (!folder_name_valid(name, NULL)) {
            free(name);
            close(sub);
            continue;
        }
        any = true;
        bool noselect = faccessat(sub, FOLDER_NOSELECT, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
        size_t idx = list_add(acc, name, noselect);
        bool kids = false;
        if (level < FOLDER_MAX_DEPTH) {
            char *sub_prefix = xasprintf("%s/", name);
            kids = walk(sub, sub_prefix, level + 1, acc, inbox_kids);
            free(sub_prefix);
        } else {
            close(sub);
        }
        acc->v[idx].children = kids;
    }
    closedir(d);
    return any;
}

static int cmp_info(const void *a, const void *b)
{
    const struct folder_info *x = a, *y = b;
    bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
    if (xi || yi) return yi - xi;
    return strcmp(x->name, y->name);
}

enum folder_result folder_list(const char *mailbox_dir, struct folder_info **list_r,
                               size_t *count_r, const char **error_r)
{
    *list_r = NULL;
    *count_r = 0;
    int fd = open(mailbox_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT)
        return folder_fail(error_r, FOLDER_ERROR, "cannot read the mailbox: %s", strerror(errno));
    char *subs = subs_read(mailbox_dir);
    struct list_acc acc = {NULL, 0, 0, subs};
    size_t inbox = list_add(&acc, xstrdup("INBOX"), false);
    bool inbox_kids = false;
    if (fd >= 0) walk(fd, "", 1, &acc, &inbox_kids);
    acc.v[inbox].children = inbox_kids;
    qsort(acc.v, acc.n, sizeof(*acc.v), cmp_info);
    free(subs);
    *list_r = acc.v;
    *count_r = acc.n;
    return FOLDER_OK;
}

void folder_list_free(struct folder_info **list, size_t count)
{
    if (*list == NULL) return;
    for (size_t i = 0; i < count; i++)
        free((*list)[i].name);
    free(*list);
    *list = NULL;
}

/* Makes the missing directories of path (under mailbox_dir), fsyncing each parent. */
static int make_dirs(const char *mailbox_dir, const char *path)
{
    size_t base = strlen(mailbox_dir);
    if (strlen(path) <= base) return 0; /* the mailbox directory itself: nothing to make */
    char *buf = xstrdup(path);
    int r = 0;
    for (char *p = buf + base + 1; r == 0; p++) {
        bool last = *p == '\0';
        if (!last && *p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0700) == 0) {
            char *parent = fs_dirname(buf);
            if (fs_fsync_dir(parent) < 0) r = -1;
            free(parent);
        } else if (errno != EEXIST) {
            r = -1;
        }
        if (last) break;
        *p = '/';
    }
    free(buf);
    return r;
}

enum folder_result folder_create(const char *mailbox_dir, const char *name, const char **error_r)
{
    size_t len = name ? strlen(name) : 0;
    bool level_only = len > 1 && name[len - 1] == '/'; /* "name/": a hierarchy level */
    char *base = level_only ? xstrndup(name, len - 1) : xstrdup(name ? name : "");
    const char *why;
    enum folder_result r = FOLDER_OK;
    char *path = NULL;
    if (!folder_name_valid(base, &why)) {
        r = folder_fail(error_r, FOLDER_INVALID, "%s", why);
    } else if (is_inbox(base)) {
        r = folder_fail(error_r, FOLDER_EXISTS, "INBOX always exists");
    } else if (mailbox_create(mailbox_dir) < 0) {
        r = folder_fail(error_r, FOLDER_ERROR, "cannot create the mailbox: %s", strerror(errno));
    } else {
        path = folder_path(mailbox_dir, base);
        struct stat st;
        char *marker = xasprintf("%s/" FOLDER_NOSELECT, path);
        if (lstat(path, &st) == 0) {
            /* CREATE of a \Noselect name makes it a folder again */
            if (!level_only && S_ISDIR(st.st_mode) && unlink(marker) == 0)
                fs_fsync_dir(path);
            else
                r = folder_fail(error_r, FOLDER_EXISTS, "the folder exists");
        } else if (make_dirs(mailbox_dir, path) < 0) {
            r = folder_fail(error_r, FOLDER_ERROR, "cannot create the folder: %s", strerror(errno));
        } else if (level_only) {
            int fd = open(marker, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0 || close(fd) < 0 || fs_fsync_dir(path) < 0)
                r = folder_fail(error_r, FOLDER_ERROR, "cannot create the folder: %s",
                                strerror(errno));
        }
        free(marker);
    }
    free(path);
    free(base);
    return r;
}

/* Removes the files (not directories) in directory fd, except keep (may be NULL). */
static int remove_files(int fd, const char *keep)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        if (dfd >= 0) close(dfd);
        return -1;
    }
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        const char *e = de->d_name;
        if (strcmp(e, ".") == 0 || strcmp(e, "..") == 0 || (keep && strcmp(e, keep) == 0)) continue;
        if (fstatat(dirfd(d), e, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode)) continue;
        if (unlinkat(dirfd(d), e, 0) < 0 && errno != ENOENT) r = -1;
    }
    closedir(d);
    return r;
}

enum folder_result folder_delete(const char *mailbox_dir, const char *name, const char **error_r)
{
    const char *why;
    if (!folder_name_valid(name, &why)) return folder_fail(error_r, FOLDER_INVALID, "%s", why);
    if (is_inbox(name)) return folder_fail(error_r, FOLDER_INVALID, "INBOX cannot be deleted");
    char *path = folder_path(mailbox_dir, name);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        bool gone = errno == ENOENT || errno == ENOTDIR || errno == ELOOP;
        enum folder_result r =
            folder_fail(error_r, gone ? FOLDER_NOTFOUND : FOLDER_ERROR,
                        gone ? "no such folder" : "cannot open the folder: %s", strerror(errno));
        free(path);
        return r;
    }
    bool noselect = faccessat(fd, FOLDER_NOSELECT, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
    bool children = has_subdirs(fd);
    enum folder_result r = FOLDER_OK;
    if (children && noselect) {
        r = folder_fail(error_r, FOLDER_INVALID, "the folder has subfolders and is \\Noselect");
        goto out;
    }
    /* the marker first: from now on nobody rebuilds an index here */
    int mfd = openat(fd, FOLDER_NOSELECT, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (mfd < 0 || close(mfd) < 0 || fsync(fd) < 0) {
        r = folder_fail(error_r, FOLDER_ERROR, "cannot delete the folder: %s", strerror(errno));
        goto out;
    }
    if (children) {
        /* RFC 3501 6.3.4: the name stays, as \Noselect, for its children */
        if (remove_files(fd, FOLDER_NOSELECT) < 0 || fsync(fd) < 0)
            r = folder_fail(error_r, FOLDER_ERROR, "cannot delete the messages: %s",
                            strerror(errno));
        goto out;
    }
    int rc = -1;
    for (int attempt = 0; attempt < DELETE_ATTEMPTS && rc < 0; attempt++) {
        remove_files(fd, NULL);
        rc = rmdir(path);
        if (rc < 0 && errno != ENOTEMPTY && errno != EEXIST) break; /* else: a file came in */
    }
    if (rc < 0) {
        r = folder_fail(error_r, FOLDER_ERROR, "cannot delete the folder: %s", strerror(errno));
        goto out;
    }
    char *parent = fs_dirname(path);
    fs_fsync_dir(parent);
    free(parent);
out:
    close(fd);
    free(path);
    return r;
}

/* RENAME INBOX: its messages (with their flags) move to the new folder to, which gets
 * an index of its own; INBOX stays, empty. */
static enum folder_result rename_inbox(const char *mailbox_dir, const char *to,
                                       const char **error_r)
{
    enum folder_result r = folder_create(mailbox_dir, to, error_r);
    if (r != FOLDER_OK) return r;
    struct folder *in = NULL, *dst = NULL;
    if ((r = folder_open(mailbox_dir, "INBOX", &in, error_r)) != FOLDER_OK) return r;
    if ((r = folder_open(mailbox_dir, to, &dst, error_r)) != FOLDER_OK) {
        folder_close(&in);
        return r;
    }
    /* the move, under INBOX's lock: files into to, then expunges in INBOX */
    struct fassign *a = NULL;
    const char *kwname[FOLDER_MAX_KEYWORDS] = {0};
    size_t na = 0;
    pthread_mutex_lock(&in->mutex);
    int lk = findex_lock(in, LOCK_EX, error_r);
    r = lk < 0 ? findex_lock_fail(lk) : findex_refresh(in, LOCK_EX, error_r);
    if (r == FOLDER_OK) {
        struct sbuf lines = SBUF_INIT(SBUF_NO_MAX);
        uint64_t modseq = in->highestmodseq;
        a = xcalloc(in->count ? in->count : 1, sizeof(*a));
        for (size_t i = 0; i < in->nkeywords; i++)
            kwname[i] = in->keywords[i];
        for (size_t i = 0; i < in->count; i++) {
            const struct fmsg *m = &in->msgs[i];
            if (renameat(in->dir_fd, m->file, dst->dir_fd, m->file) < 0) {
                if (errno == ENOENT) continue;
                r = folder_fail(error_r, FOLDER_ERROR, "cannot move a message: %s",
                                strerror(errno));
                break;
            }
            a[na].file = xstrdup(m->file);
            a[na].flags = m->flags;
            a[na++].keywords = m->keywords;
            findex_put_expunge(&lines, m->uid, ++modseq);
        }
        if (na > 0 && (fsync(dst->dir_fd) < 0 || fsync(in->dir_fd) < 0) && r == FOLDER_OK)
            r = folder_fail(error_r, FOLDER_ERROR, "cannot sync: %s", strerror(errno));
        enum folder_result w = findex_write(in, &lines, error_r);
        if (r == FOLDER_OK) r = w;
        sbuf_free(&lines);
    }
    findex_unlock(lk);
    pthread_mutex_unlock(&in->mutex);

    /* the new folder numbers them in INBOX's order, with INBOX's flags */
    if (na > 0) {
        uint64_t map[FOLDER_MAX_KEYWORDS] = {0};
        pthread_mutex_lock(&dst->mutex);
        for (size_t i = 0; i < FOLDER_MAX_KEYWORDS; i++) {
            int bit = kwname[i] ? findex_keyword(dst, kwname[i], true) : -1;
            if (bit >= 0) map[i] = UINT64_C(1) << bit;
        }
        pthread_mutex_unlock(&dst->mutex);
        for (size_t k = 0; k < na; k++) {
            uint64_t kw = 0;
            for (size_t i = 0; i < FOLDER_MAX_KEYWORDS; i++)
                if (a[k].keywords & (UINT64_C(1) << i)) kw |= map[i];
            a[k].keywords = kw;
        }
        uint32_t *uids = xcalloc(na, sizeof(*uids));
        const char *err2 = NULL;
        enum folder_result w = folder_assign(dst, a, na, uids, &err2);
        if (r == FOLDER_OK && w != FOLDER_OK) r = folder_fail(error_r, w, "%s", err2);
        free(uids);
        for (size_t k = 0; k < na; k++)
            free((char *)a[k].file);
    }
    free(a);
    folder_close(&in);
    folder_close(&dst);
    return r;
}

enum folder_result folder_rename(const char *mailbox_dir, const char *from, const char *to,
                                 const char **error_r)
{
    const char *why;
    if (!folder_name_valid(from, &why) || !folder_name_valid(to, &why))
        return folder_fail(error_r, FOLDER_INVALID, "%s", why);
    if (is_inbox(to)) return folder_fail(error_r, FOLDER_EXISTS, "INBOX always exists");
    if (is_inbox(from)) return rename_inbox(mailbox_dir, to, error_r);
    char *src = folder_path(mailbox_dir, from), *dst = folder_path(mailbox_dir, to);
    size_t sl = strlen(src);
    struct stat st;
    enum folder_result r = FOLDER_OK;
    if (strncmp(dst, src, sl) == 0 && (dst[sl] == '/' || dst[sl] == '\0')) {
        r = folder_fail(error_r, FOLDER_INVALID, "a folder cannot move under itself");
    } else if (lstat(src, &st) < 0 || !S_ISDIR(st.st_mode)) {
        r = folder_fail(error_r, FOLDER_NOTFOUND, "no such folder");
    } else if (lstat(dst, &st) == 0) {
        r = folder_fail(error_r, FOLDER_EXISTS, "the target folder exists");
    } else {
        char *dst_parent = fs_dirname(dst), *src_parent = fs_dirname(src);
        int rc = make_dirs(mailbox_dir, dst_parent);
        if (rc == 0) {
            rc = renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE);
            if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) {
                rc = lstat(dst, &st) == 0 ? (errno = EEXIST, -1) : rename(src, dst);
            }
        }
        if (rc < 0)
            r = folder_fail(error_r,
                            errno == EEXIST || errno == ENOTEMPTY ? FOLDER_EXISTS
                            : errno == ENOENT                     ? FOLDER_NOTFOUND
                                                                  : FOLDER_ERROR,
                            "cannot rename the folder: %s", strerror(errno));
        else if (fs_fsync_dir(src_parent) < 0 || fs_fsync_dir(dst_parent) < 0)
            r = folder_fail(error_r, FOLDER_ERROR, "cannot sync: %s", strerror(errno));
        free(dst_parent);
        free(src_parent);
    }
    free(src);
    free(dst);
    return r;
}

enum folder_result folder_mailbox_init(const char *mailbox_dir, const char **error_r)
{
    if (mailbox_create(mailbox_dir) < 0)
        return folder_fail(error_r, FOLDER_ERROR, "cannot create the mailbox: %s", strerror(errno));
    char *path = xasprintf("%s/" FOLDER_SUBSCRIPTIONS, mailbox_dir);
    struct stat st;
    bool done = lstat(path, &st) == 0;
    free(path);
    if (done) return FOLDER_OK; /* set up before: a special folder deleted since stays deleted */
    int lk = subs_lock(mailbox_dir);
    if (lk < 0)
        return folder_fail(error_r, FOLDER_ERROR, "cannot lock the subscriptions: %s",
                           strerror(errno));
    enum folder_result r = FOLDER_OK;
    char *text = subs_read(mailbox_dir);
    if (text == NULL && errno == ENOENT) {
        struct sbuf out = SBUF_INIT(SUBSCRIPTIONS_MAX);
        sbuf_appends(&out, "INBOX\n");
        for (size_t i = 0; i < NSPECIAL && r == FOLDER_OK; i++) {
            const char *err = NULL;
            enum folder_result c = folder_create(mailbox_dir, special_names[i][0], &err);
            if (c != FOLDER_OK && c != FOLDER_EXISTS) r = folder_fail(error_r, c, "%s", err);
            sbuf_printf(&out, "%s\n", special_names[i][0]);
        }
        if (r == FOLDER_OK && subs_write(mailbox_dir, &out) < 0)
            r = folder_fail(error_r, FOLDER_ERROR, "cannot write the subscriptions: %s",
                            strerror(errno));
        sbuf_free(&out);
    }
    free(text);
    close(lk);
    return r;
}

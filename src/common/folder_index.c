/* folder_index.c - a folder's index log and its directory, kept in step with memory
 *
 * The log ".alkaid-index" (format in folder.h and docs/storage.md) is followed by
 * (inode, offset): a process remembers which file it has replayed and how far, so
 * catching up costs one fstatat() when nothing changed and a read of the new lines when
 * something did; a new inode (compaction or rebuild by someone) is read from the start.
 * Every change is written under LOCK_EX on ".alkaid-lock" after catching up, in one
 * write(), fdatasynced, and only then replayed into memory, so memory always holds what
 * a replay of the file gives. Readers take LOCK_SH to read new lines: they never see a
 * line before it is durable. A last line without its newline is a write cut short by a
 * crash: readers leave it alone and the next writer cuts it off.
 *
 * The directory is scanned only when its mtime changed (and again while that mtime is
 * under two seconds old, since a change within the same clock tick would not move it).
 *
 * SECURITY: the index is data: every line is parsed strictly (numbers, flag letters,
 * keyword atoms, file names without '/' or a leading '.') and a line that does not
 * parse is skipped and reported. Files are opened relative to the folder's directory
 * descriptor with O_NOFOLLOW.
 */
#include "folder_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "mailbox.h"
#include "xalloc.h"

#define COMPACT_MIN  (64 * 1024)
#define PART_MAX_AGE (36 * 3600)
#define MAX_TOKENS   (7 + FOLDER_MAX_KEYWORDS)

static __thread char folder_error[512];

enum folder_result folder_fail(const char **error_r, enum folder_result r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(folder_error, sizeof(folder_error), fmt, ap);
    va_end(ap);
    if (error_r) *error_r = folder_error;
    return r;
}

static enum folder_result io_fail(const char **error_r, const struct folder *f, const char *what)
{
    return folder_fail(error_r, FOLDER_ERROR, "%s in %s: %s", what, f->path, strerror(errno));
}

/* ---- names, flags, keywords -------------------------------------------------------- */

bool findex_file_ok(const char *name)
{
    size_t n = strlen(name), s = strlen(MAILBOX_SUFFIX);
    if (n <= s || n > FOLDER_FILE_MAX || name[0] == '.' ||
        strcmp(name + n - s, MAILBOX_SUFFIX) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f || c == '/') return false;
    }
    return true;
}

bool findex_keyword_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > FOLDER_MAX_KEYWORD_LEN) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c)) return false;
    }
    return true;
}

int findex_keyword(struct folder *f, const char *name, bool add)
{
    for (size_t i = 0; i < f->nkeywords; i++)
        if (strcasecmp(f->keywords[i], name) == 0) return (int)i;
    if (!add || f->nkeywords == FOLDER_MAX_KEYWORDS || !findex_keyword_ok(name)) return -1;
    f->keywords[f->nkeywords] = xstrdup(name);
    return (int)f->nkeywords++;
}

static const char flag_letters[] = "SAFDT"; /* bit i of the FOLDER_* flags */

static int parse_flags(const char *s, uint32_t *flags_r)
{
    *flags_r = 0;
    if (strcmp(s, "-") == 0) return 0;
    if (*s == '\0') return -1;
    for (; *s; s++) {
        const char *p = strchr(flag_letters, *s);
        if (p == NULL) return -1;
        *flags_r |= 1u << (p - flag_letters);
    }
    return 0;
}

static void put_flags_keywords(struct sbuf *sb, const struct folder *f, uint32_t flags,
                               uint64_t keywords)
{
    sbuf_putc(sb, ' ');
    if ((flags & 31) == 0) sbuf_putc(sb, '-');
    for (int i = 0; i < 5; i++)
        if (flags & (1u << i)) sbuf_putc(sb, flag_letters[i]);
    for (size_t i = 0; i < f->nkeywords; i++) {
        if (!(keywords & (UINT64_C(1) << i))) continue;
        sbuf_putc(sb, ' ');
        sbuf_appends(sb, f->keywords[i]);
    }
    sbuf_putc(sb, '\n');
}

void findex_put_add(struct sbuf *sb, const struct folder *f, uint32_t uid, uint64_t modseq,
                    int64_t internaldate, uint64_t size, const char *file, uint32_t flags,
                    uint64_t keywords)
{
    sbuf_printf(sb, "+ %" PRIu32 " %" PRIu64 " %" PRId64 " %" PRIu64 " %s", uid, modseq,
                internaldate, size, file);
    put_flags_keywords(sb, f, flags, keywords);
}

void findex_put_flags(struct sbuf *sb, const struct folder *f, uint32_t uid, uint64_t modseq,
                      uint32_t flags, uint64_t keywords)
{
    sbuf_printf(sb, "= %" PRIu32 " %" PRIu64, uid, modseq);
    put_flags_keywords(sb, f, flags, keywords);
}

void findex_put_expunge(struct sbuf *sb, uint32_t uid, uint64_t modseq)
{
    sbuf_printf(sb, "- %" PRIu32 " %" PRIu64 "\n", uid, modseq);
}

/* ---- file name -> UID --------------------------------------------------------------- */

static const char tomb_mark[1];
#define TOMB tomb_mark

static size_t hash_name(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return (size_t)(h ^ (h >> 29));
}

static void names_insert(struct folder *f, const char *file, uint32_t uid)
{
    size_t mask = f->names_cap - 1, i = hash_name(file) & mask;
    while (f->names[i].file != NULL && f->names[i].file != TOMB)
        i = (i + 1) & mask;
    if (f->names[i].file == TOMB) f->names_tomb--;
    f->names[i].file = file;
    f->names[i].uid = uid;
    f->names_used++;
}

static void names_add(struct folder *f, const char *file, uint32_t uid)
{
    if ((f->names_used + f->names_tomb + 1) * 2 > f->names_cap) {
        struct fname_slot *old = f->names;
        size_t oldcap = f->names_cap, cap = 64;
        while (cap < (f->names_used + 1) * 4)
            cap *= 2;
        f->names = xcalloc(cap, sizeof(*f->names));
        f->names_cap = cap;
        f->names_used = f->names_tomb = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].file != NULL && old[i].file != TOMB)
                names_insert(f, old[i].file, old[i].uid);
        free(old);
    }
    names_insert(f, file, uid);
}

static struct fname_slot *names_slot(const struct folder *f, const char *name)
{
    if (f->names_cap == 0) return NULL;
    size_t mask = f->names_cap - 1, i = hash_name(name) & mask;
    while (f->names[i].file != NULL) {
        if (f->names[i].file != TOMB && strcmp(f->names[i].file, name) == 0) return &f->names[i];
        i = (i + 1) & mask;
    }
    return NULL;
}

uint32_t findex_name_uid(const struct folder *f, const char *name)
{
    struct fname_slot *s = names_slot(f, name);
    return s ? s->uid : 0;
}

/* ---- messages ----------------------------------------------------------------------- */

static size_t lower_bound(const struct folder *f, uint32_t uid)
{
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->msgs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct fmsg *findex_find(struct folder *f, uint32_t uid)
{
    size_t i = lower_bound(f, uid);
    if (i < f->count && f->msgs[i].uid == uid && !f->msgs[i].gone) return &f->msgs[i];
    return NULL;
}

size_t findex_upper(const struct folder *f, uint32_t uid)
{
    return uid == UINT32_MAX ? f->count : lower_bound(f, uid + 1);
}

/* Removes expunged messages from the array. */
static void tidy(struct folder *f)
{
    if (f->ngone == 0) return;
    size_t w = 0;
    for (size_t i = 0; i < f->count; i++) {
        if (f->msgs[i].gone) {
            free(f->msgs[i].file);
            continue;
        }
        f->msgs[w++] = f->msgs[i];
    }
    f->count = w;
    f->ngone = 0;
}

void findex_clear(struct folder *f)
{
    for (size_t i = 0; i < f->count; i++)
        free(f->msgs[i].file);
    xfree(f->msgs);
    f->count = f->cap = f->ngone = 0;
    xfree(f->names);
    f->names_cap = f->names_used = f->names_tomb = 0;
}

/* ---- replaying lines ---------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *r)
{
    uint64_t v = 0;
    if (*s == '\0' || strlen(s) > 20) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *r = v;
    return 0;
}

static int parse_i64(const char *s, int64_t *r)
{
    bool neg = *s == '-';
    uint64_t v;
    if (parse_u64(s + neg, &v) < 0 || v > (uint64_t)INT64_MAX) return -1;
    *r = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

/* Splits s on single spaces; the number of tokens, or max + 1 if there are more. */
static size_t split(char *s, char **tok, size_t max)
{
    size_t n = 0;
    for (;;) {
        if (n == max) return max + 1;
        tok[n++] = s;
        char *sp = strchr(s, ' ');
        if (sp == NULL) return n;
        *sp = '\0';
        s = sp + 1;
    }
}

static int parse_keywords(struct folder *f, char **tok, size_t n, uint64_t *kw_r)
{
    *kw_r = 0;
    for (size_t i = 0; i < n; i++) {
        if (!findex_keyword_ok(tok[i])) return -1;
        int bit = findex_keyword(f, tok[i], true);
        if (bit >= 0) {
            *kw_r |= UINT64_C(1) << bit;
        } else if (!f->keywords_full_reported) {
            f->keywords_full_reported = true;
            log_error(LOG_IMAP, NULL,
                      "folder %s: more than %d keywords; \"%s\" and later ones ignored", f->path,
                      FOLDER_MAX_KEYWORDS, tok[i]);
        }
    }
    return 0;
}

/* Applies one line (NUL-terminated, modified). false if it is damaged. */
static bool apply_line(struct folder *f, char *line)
{
    char *tok[MAX_TOKENS];
    size_t n = split(line, tok, MAX_TOKENS);
    uint64_t uid, modseq, size, kw;
    int64_t date;
    uint32_t flags;
    if (n > MAX_TOKENS || n < 3 || strlen(tok[0]) != 1) return false;
    if (parse_u64(tok[1], &uid) < 0 || uid == 0 || uid >= UINT32_MAX ||
        parse_u64(tok[2], &modseq) < 0)
        return false;
    switch (tok[0][0]) {
    case '+': {
        if (n < 7 || parse_i64(tok[3], &date) < 0 || parse_u64(tok[4], &size) < 0 ||
            !findex_file_ok(tok[5]) || parse_flags(tok[6], &flags) < 0)
            return false;
        /* a UID never comes back, and a file has one UID */
        if (uid <= f->max_uid_seen || findex_name_uid(f, tok[5]) != 0) return false;
        if (parse_keywords(f, tok + 7, n - 7, &kw) < 0) return false;
        if (f->count == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 64;
            f->msgs = xreallocarray(f->msgs, f->cap, sizeof(*f->msgs));
        }
        struct fmsg *m = &f->msgs[f->count++];
        memset(m, 0, sizeof(*m));
        m->uid = (uint32_t)uid;
        m->flags = flags;
        m->keywords = kw;
        m->modseq = modseq;
        m->size = size;
        m->internaldate = date;
        m->file = xstrdup(tok[5]);
        m->mark = f->scan_gen;
        names_add(f, m->file, m->uid);
        f->max_uid_seen = (uint32_t)uid;
        if (uid + 1 > f->uidnext) f->uidnext = (uint32_t)(uid + 1);
        break;
    }
    case '=': {
        if (n < 4 || parse_flags(tok[3], &flags) < 0) return false;
        if (parse_keywords(f, tok + 4, n - 4, &kw) < 0) return false;
        struct fmsg *m = findex_find(f, (uint32_t)uid);
        if (m) { /* else: expunged already */
            m->flags = flags;
            m->keywords = kw;
            m->modseq = modseq;
        }
        break;
    }
    case '-': {
        if (n != 3) return false;
        struct fmsg *m = findex_find(f, (uint32_t)uid);
        if (m) {
            struct fname_slot *s = names_slot(f, m->file);
            if (s) {
                s->file = TOMB;
                f->names_used--;
                f->names_tomb++;
            }
            m->gone = true;
            f->ngone++;
        }
        break;
    }
    default: return false;
    }
    if (modseq > f->highestmodseq) f->highestmodseq = modseq;
    return true;
}

/* Replays the current index file from index_off to its end. A last line without its
 * newline is left where it is (a write cut short; the next writer removes it). */
static enum folder_result replay(struct folder *f, const char **error_r)
{
    struct stat st;
    if (fstat(f->index_fd, &st) < 0) return io_fail(error_r, f, "cannot stat the index");
    uint64_t size = (uint64_t)st.st_size;
    f->index_seen = size;
    if (size <= f->index_off) return FOLDER_OK;
    if (size - f->index_off > (uint64_t)SIZE_MAX / 2)
        return folder_fail(error_r, FOLDER_ERROR, "index of %s too large", f->path);
    size_t len = (size_t)(size - f->index_off), got = 0;
    char *buf = xmalloc(len + 1);
    while (got < len) {
        ssize_t r = pread(f->index_fd, buf + got, len - got, (off_t)(f->index_off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            free(buf);
            return io_fail(error_r, f, "cannot read the index");
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    size_t pos = 0;
    for (;;) {
        char *line = buf + pos;
        char *nl = memchr(line, '\n', got - pos);
        if (nl == NULL) break;
        size_t ll = (size_t)(nl - line);
        *nl = '\0';
        if (line[0] == '+') {
            f->add_bytes += ll + 1;
            f->add_lines++;
        }
        if (ll > FOLDER_INDEX_MAX_LINE || strlen(line) != ll || !apply_line(f, line))
            log_error(LOG_IMAP, NULL, "folder %s: damaged index line at offset %" PRIu64 " skipped",
                      f->path, f->index_off + pos);
        pos += ll + 1;
    }
    f->index_off += pos;
    free(buf);
    tidy(f);
    return FOLDER_OK;
}

/* ---- loading, rebuilding, compacting ------------------------------------------------ */

static pthread_mutex_t uidvalidity_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t uidvalidity_last;

/* A new UIDVALIDITY: the time, but always above old and above any this process gave. */
static uint32_t new_uidvalidity(uint32_t old)
{
    pthread_mutex_lock(&uidvalidity_lock);
    uint64_t v = (uint64_t)time(NULL);
    if (v <= old) v = (uint64_t)old + 1;
    if (v <= uidvalidity_last) v = (uint64_t)uidvalidity_last + 1;
    if (v >= UINT32_MAX) v = 1;
    uidvalidity_last = (uint32_t)v;
    pthread_mutex_unlock(&uidvalidity_lock);
    return (uint32_t)v;
}

/* Reads the index open as fd from its start into f (taking fd over on success).
 * 0 done, 1 the header is damaged (*hint_r: a UIDVALIDITY read from it, or 0), -1 error. */
static int load_file(struct folder *f, int fd, uint32_t *hint_r, const char **error_r)
{
    struct stat st;
    *hint_r = 0;
    if (fstat(fd, &st) < 0) {
        io_fail(error_r, f, "cannot stat the index");
        return -1;
    }
    if (!S_ISREG(st.st_mode)) return 1;
    char head[256];
    ssize_t n;
    do {
        n = pread(fd, head, sizeof(head) - 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        io_fail(error_r, f, "cannot read the index");
        return -1;
    }
    head[n] = '\0';
    char *nl = strchr(head, '\n');
    if (nl == NULL) return 1;
    *nl = '\0';
    char *tok[6];
    uint64_t uv = 0, un = 0, hms = 0;
    size_t nt = split(head, tok, 6);
    if (nt >= 3 && strcmp(tok[0], "ALKAID-INDEX") == 0 && parse_u64(tok[2], &uv) == 0 &&
        uv < UINT32_MAX)
        *hint_r = (uint32_t)uv;
    if (nt != 5 || strcmp(tok[0], "ALKAID-INDEX") != 0 || strcmp(tok[1], "1") != 0 || uv == 0 ||
        uv >= UINT32_MAX || parse_u64(tok[3], &un) < 0 || un >= UINT32_MAX ||
        parse_u64(tok[4], &hms) < 0)
        return 1;
    bool same = f->uidvalidity == (uint32_t)uv;
    findex_clear(f);
    if (f->index_fd >= 0) close(f->index_fd);
    f->index_fd = fd;
    f->index_dev = st.st_dev;
    f->index_ino = st.st_ino;
    f->index_off = (uint64_t)(nl - head) + 1;
    f->index_seen = 0;
    f->compact_check = 0;
    f->add_bytes = f->add_lines = 0;
    f->uidvalidity = (uint32_t)uv;
    f->uidnext = un ? (uint32_t)un : 1;
    f->highestmodseq = hms;
    f->max_uid_seen = 0;
    f->dir_clean = false; /* scan the directory again against this index */
    f->dir_mtime = (struct timespec){0, 0};
    if (replay(f, error_r) != FOLDER_OK) {
        /* keep fd (now ours) but make the next refresh read the file again */
        f->index_ino = 0;
        return -1;
    }
    /* first load or a new UIDVALIDITY: what is there now is not \Recent to anyone, and
     * messages that get UIDs from here on are */
    if (!same) f->recent_floor = f->uidnext;
    return 0;
}

/* Writes content as the new index (through FOLDER_INDEX_TMP, fsync, rename, fsync of the
 * directory); the new file's fd, or -1. LOCK_EX held. */
static int write_index_file(struct folder *f, const struct sbuf *content, const char **error_r)
{
    unlinkat(f->dir_fd, FOLDER_INDEX_TMP, 0); /* a leftover of a crash: we hold the lock */
    int fd = openat(f->dir_fd, FOLDER_INDEX_TMP,
                    O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        io_fail(error_r, f, "cannot create the index");
        return -1;
    }
    if (fs_write_all(fd, content->data, content->len) < 0 || fsync(fd) < 0 ||
        renameat(f->dir_fd, FOLDER_INDEX_TMP, f->dir_fd, FOLDER_INDEX) < 0 ||
        fsync(f->dir_fd) < 0) {
        io_fail(error_r, f, "cannot write the index");
        close(fd);
        unlinkat(f->dir_fd, FOLDER_INDEX_TMP, 0);
        return -1;
    }
    return fd;
}

struct found_file {
    char *name;
    uint64_t size;
    int64_t mtime;
};

static int cmp_found(const void *a, const void *b)
{
    return strcmp(((const struct found_file *)a)->name, ((const struct found_file *)b)->name);
}

/* A new index from the message files: a new UIDVALIDITY, UIDs in name order, no flags.
 * why: NULL for a new folder (nothing to report). LOCK_EX held. */
static enum folder_result rebuild(struct folder *f, const char *why, uint32_t old_uidvalidity,
                                  const char **error_r)
{
    int dfd = openat(f->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        if (dfd >= 0) close(dfd);
        return io_fail(error_r, f, "cannot read the folder");
    }
    struct found_file *files = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (!findex_file_ok(de->d_name)) continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            files = xreallocarray(files, cap, sizeof(*files));
        }
        files[n].name = xstrdup(de->d_name);
        files[n].size = (uint64_t)st.st_size;
        files[n].mtime = (int64_t)st.st_mtime;
        n++;
    }
    closedir(d);
    if (n > 1) qsort(files, n, sizeof(*files), cmp_found);
    if (old_uidvalidity < f->uidvalidity) old_uidvalidity = f->uidvalidity;
    /* the highest UIDVALIDITY this folder ever had survives the loss of its index, so a
     * rebuilt one is always greater (RFC 3501 2.3.1.1), even within the same second */
    char *mark = xasprintf("%s/" FOLDER_UIDVALIDITY_MARK, f->path);
    char *text = fs_read_file(mark, 64, NULL);
    if (text) {
        unsigned long prev = strtoul(text, NULL, 10);
        if (prev > old_uidvalidity && prev < UINT32_MAX) old_uidvalidity = (uint32_t)prev;
        free(text);
    }
    uint32_t uv = new_uidvalidity(old_uidvalidity);
    char num[16];
    int numlen = snprintf(num, sizeof(num), "%" PRIu32 "\n", uv);
    if (fs_write_file_atomic(mark, num, (size_t)numlen, 0600) < 0)
        log_error(LOG_IMAP, NULL, "folder %s: cannot record UIDVALIDITY in %s: %s", f->path,
                  FOLDER_UIDVALIDITY_MARK, strerror(errno));
    free(mark);
    struct sbuf content = SBUF_INIT(SBUF_NO_MAX);
    sbuf_printf(&content, FOLDER_INDEX_MAGIC " %" PRIu32 " %zu 1\n", uv, n + 1);
    for (size_t i = 0; i < n; i++)
        findex_put_add(&content, f, (uint32_t)(i + 1), 1, files[i].mtime, files[i].size,
                       files[i].name, 0, 0);
    for (size_t i = 0; i < n; i++)
        free(files[i].name);
    free(files);
    int fd = write_index_file(f, &content, error_r);
    sbuf_free(&content);
    if (fd < 0) return FOLDER_ERROR;
    if (why != NULL)
        log_error(LOG_IMAP, NULL,
                  "folder %s: index %s; rebuilt from %zu message files with UIDVALIDITY %" PRIu32,
                  f->path, why, n, uv);
    uint32_t hint;
    f->uidvalidity = 0; /* a new UIDVALIDITY: the recent floor is set again */
    int r = load_file(f, fd, &hint, error_r);
    /* a new index: nobody has seen these messages; a repair: the UIDs changed, but not
     * what the user has seen */
    if (r == 0 && why == NULL) f->recent_floor = 1;
    if (r != 0) {
        if (f->index_fd != fd) close(fd);
        return r > 0 ? folder_fail(error_r, FOLDER_ERROR, "rebuilt index of %s unreadable", f->path)
                     : FOLDER_ERROR;
    }
    return FOLDER_OK;
}

/* Rewrites the log as its live content when it has grown past twice that (and past
 * COMPACT_MIN). LOCK_EX held, caught up. A failure only postpones it. */
static void maybe_compact(struct folder *f)
{
    if (f->index_off < COMPACT_MIN || f->index_off < f->compact_check) return;
    /* the live content is about one "+" line per message */
    uint64_t avg = f->add_lines ? f->add_bytes / f->add_lines : 64;
    uint64_t live = 64 + (uint64_t)f->count * avg;
    if (f->index_off <= 2 * live) {
        uint64_t step = f->index_off / 8 > 16384 ? f->index_off / 8 : 16384;
        f->compact_check = f->index_off + step;
        return;
    }
    struct sbuf content = SBUF_INIT(SBUF_NO_MAX);
    sbuf_printf(&content, FOLDER_INDEX_MAGIC " %" PRIu32 " %" PRIu32 " %" PRIu64 "\n",
                f->uidvalidity, f->uidnext, f->highestmodseq);
    for (size_t i = 0; i < f->count; i++) {
        const struct fmsg *m = &f->msgs[i];
        findex_put_add(&content, f, m->uid, m->modseq, m->internaldate, m->size, m->file, m->flags,
                       m->keywords);
    }
    const char *error = NULL;
    int fd = write_index_file(f, &content, &error);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        log_error(LOG_IMAP, NULL, "folder %s: index compaction failed: %s", f->path,
                  error ? error : strerror(errno));
        if (fd >= 0) close(fd);
        f->compact_check = f->index_off + f->index_off / 4;
        sbuf_free(&content);
        return;
    }
    close(f->index_fd);
    f->index_fd = fd;
    f->index_dev = st.st_dev;
    f->index_ino = st.st_ino;
    f->index_off = f->index_seen = content.len;
    f->compact_check = 2 * content.len;
    f->add_bytes = content.len;
    f->add_lines = f->count + 1;
    sbuf_free(&content);
}

/* ---- locking and catching up -------------------------------------------------------- */

int findex_lock(struct folder *f, int op, const char **error_r)
{
    int fd = openat(f->dir_fd, FOLDER_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        struct stat ds;
        if (errno == ENOENT && fstat(f->dir_fd, &ds) == 0 && ds.st_nlink == 0) {
            folder_fail(error_r, FOLDER_NOTFOUND, "the folder was deleted");
            return -2;
        }
        io_fail(error_r, f, "cannot open the lock file");
        return -1;
    }
    while (flock(fd, op) < 0) {
        if (errno == EINTR) continue;
        io_fail(error_r, f, "cannot lock the folder");
        close(fd);
        return -1;
    }
    return fd;
}

void findex_unlock(int fd)
{
    if (fd >= 0) close(fd); /* releases the flock */
}

/* Reads the index from its start, handling a missing or damaged one. held: the lock
 * held (LOCK_SH or LOCK_EX); *need_ex_r set when the fix needs LOCK_EX. */
static enum folder_result reload_locked(struct folder *f, int held, bool *need_ex_r,
                                        const char **error_r)
{
    int fd = openat(f->dir_fd, FOLDER_INDEX, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT && errno != ELOOP)
        return io_fail(error_r, f, "cannot open the index");
    if (fd < 0 && errno == ENOENT) {
        struct stat ds;
        if (faccessat(f->dir_fd, FOLDER_NOSELECT, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            return folder_fail(error_r, FOLDER_NOSELECTABLE, "the folder is \\Noselect");
        if (fstat(f->dir_fd, &ds) == 0 && ds.st_nlink == 0)
            return folder_fail(error_r, FOLDER_NOTFOUND, "the folder was deleted");
        if (held != LOCK_EX) {
            *need_ex_r = true;
            return FOLDER_OK;
        }
        return rebuild(f, f->uidvalidity ? "missing" : NULL, 0, error_r);
    }
    uint32_t hint = 0;
    int r = fd >= 0 ? load_file(f, fd, &hint, error_r) : 1;
    if (r == 0) return FOLDER_OK;
    if (fd >= 0 && (r > 0 || f->index_fd != fd)) close(fd);
    if (r < 0) return FOLDER_ERROR;
    if (held != LOCK_EX) {
        *need_ex_r = true;
        return FOLDER_OK;
    }
    /* the header is damaged (or the index is not a file): keep it for a look, rebuild */
    if (renameat(f->dir_fd, FOLDER_INDEX, f->dir_fd, FOLDER_INDEX_DAMAGED) < 0)
        return io_fail(error_r, f, "cannot move the damaged index aside");
    log_error(LOG_IMAP, NULL, "folder %s: index header damaged; moved to " FOLDER_INDEX_DAMAGED,
              f->path);
    return rebuild(f, "damaged", hint, error_r);
}

enum folder_result findex_refresh(struct folder *f, int held, const char **error_r)
{
    struct stat st;
    if (f->index_fd >= 0 && fstatat(f->dir_fd, FOLDER_INDEX, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_ino == f->index_ino && st.st_dev == f->index_dev) {
        /* (an unfinished last line is read again each time: a writer may have replaced
         * it with as many octets) */
        if ((uint64_t)st.st_size == f->index_seen && f->index_seen == f->index_off)
            return FOLDER_OK;
        if ((uint64_t)st.st_size >= f->index_off) {
            int lk = -1;
            if (held == 0 && (lk = findex_lock(f, LOCK_SH, error_r)) < 0)
                return findex_lock_fail(lk);
            enum folder_result r = replay(f, error_r);
            findex_unlock(lk);
            return r;
        }
        /* shorter than what was replayed: not ours to understand; read it again */
    }
    bool need_ex = false;
    enum folder_result r;
    if (held != 0) {
        r = reload_locked(f, held, &need_ex, error_r);
        if (need_ex) r = folder_fail(error_r, FOLDER_ERROR, "index of %s needs repair", f->path);
        return r;
    }
    int lk = findex_lock(f, LOCK_SH, error_r);
    if (lk < 0) return findex_lock_fail(lk);
    r = reload_locked(f, LOCK_SH, &need_ex, error_r);
    findex_unlock(lk);
    if (r != FOLDER_OK || !need_ex) return r;
    if ((lk = findex_lock(f, LOCK_EX, error_r)) < 0) return findex_lock_fail(lk);
    r = findex_refresh(f, LOCK_EX, error_r);
    findex_unlock(lk);
    return r;
}

enum folder_result findex_write(struct folder *f, const struct sbuf *lines, const char **error_r)
{
    if (lines->len == 0) return FOLDER_OK;
    struct stat st;
    if (fstat(f->index_fd, &st) < 0) return io_fail(error_r, f, "cannot stat the index");
    if ((uint64_t)st.st_size > f->index_off) {
        /* an incomplete last line: a writer died in the middle (we hold LOCK_EX) */
        log_error(LOG_IMAP, NULL,
                  "folder %s: incomplete last index line (%" PRIu64 " octets) removed", f->path,
                  (uint64_t)st.st_size - f->index_off);
        if (ftruncate(f->index_fd, (off_t)f->index_off) < 0)
            return io_fail(error_r, f, "cannot repair the index");
    }
    if (fs_write_all(f->index_fd, lines->data, lines->len) < 0 || fdatasync(f->index_fd) < 0) {
        enum folder_result r = io_fail(error_r, f, "cannot write the index");
        if (ftruncate(f->index_fd, (off_t)f->index_off) < 0) { /* the next writer cuts it */
        }
        return r;
    }
    enum folder_result r = replay(f, error_r);
    if (r == FOLDER_OK) maybe_compact(f);
    return r;
}

/* ---- the directory ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Logs UIDs for fresh files and expunges for the UIDs in gone, as far as they still hold
 * once the lock is taken. */
static enum folder_result log_dir_changes(struct folder *f, char **fresh, size_t nfresh,
                                          const uint32_t *gone, size_t ngone, const char **error_r)
{
    int lk = findex_lock(f, LOCK_EX, error_r);
    if (lk < 0) return findex_lock_fail(lk);
    enum folder_result r = findex_refresh(f, LOCK_EX, error_r);
    if (r != FOLDER_OK) {
        findex_unlock(lk);
        return r;
    }
    struct sbuf lines = SBUF_INIT(SBUF_NO_MAX);
    uint32_t uid = f->uidnext;
    uint64_t modseq = f->highestmodseq;
    if (nfresh > 1) qsort(fresh, nfresh, sizeof(*fresh), cmp_str);
    for (size_t i = 0; i < nfresh; i++) {
        struct stat st;
        if (findex_name_uid(f, fresh[i]) != 0) continue; /* someone else was quicker */
        if (fstatat(f->dir_fd, fresh[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        findex_put_add(&lines, f, uid++, ++modseq, (int64_t)st.st_mtime, (uint64_t)st.st_size,
                       fresh[i], 0, 0);
    }
    for (size_t i = 0; i < ngone; i++) {
        struct stat st;
        struct fmsg *m = findex_find(f, gone[i]);
        if (m == NULL || fstatat(f->dir_fd, m->file, &st, AT_SYMLINK_NOFOLLOW) == 0) continue;
        if (errno != ENOENT) continue;
        findex_put_expunge(&lines, m->uid, ++modseq);
    }
    r = findex_write(f, &lines, error_r);
    sbuf_free(&lines);
    findex_unlock(lk);
    return r;
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The clock file systems stamp times with; {0, 0} if there is no such thing to read. */
static struct timespec coarse_now(void)
{
    struct timespec ts = {0, 0};
#ifdef CLOCK_REALTIME_COARSE
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
#endif
    return ts;
}

enum folder_result findex_sync_dir(struct folder *f, const char **error_r)
{
    struct stat ds;
    if (fstat(f->dir_fd, &ds) < 0) return io_fail(error_r, f, "cannot stat the folder");
    if (ds.st_nlink == 0) return folder_fail(error_r, FOLDER_NOTFOUND, "the folder was deleted");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (ds.st_mtim.tv_sec == f->dir_mtime.tv_sec && ds.st_mtim.tv_nsec == f->dir_mtime.tv_nsec) {
        if (f->dir_clean) return FOLDER_OK;
        /* The mtime was recent at the last scan, so a change in the same clock tick after
         * that scan would not have moved it. Local file systems stamp with the kernel's
         * coarse clock: if that clock had passed the mtime when the scan began, every
         * later change moves the mtime, and only the final scan below is left to do (for
         * file systems whose stamps come from elsewhere). */
        if (ts_before(&f->dir_mtime, &f->scan_start) && now.tv_sec <= f->dir_mtime.tv_sec + 1)
            return FOLDER_OK;
    }
    f->scan_start = coarse_now();
    int dfd = openat(f->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        if (dfd >= 0) close(dfd);
        return io_fail(error_r, f, "cannot read the folder");
    }
    if (++f->scan_gen == 0) f->scan_gen = 1;
    uint32_t gen = f->scan_gen;
    char **fresh = NULL;
    size_t nfresh = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        struct stat st;
        if (name[0] == '.') {
            /* a copy cut short by a crash long ago; by ctime, as the mtime of a message
             * being appended is already its internal date */
            size_t len = strlen(name);
            if (len > 6 && strcmp(name + len - 5, ".part") == 0 &&
                fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
                now.tv_sec - st.st_ctime > PART_MAX_AGE)
                unlinkat(dirfd(d), name, 0);
            continue;
        }
        if (!findex_file_ok(name) || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)) continue;
        if (de->d_type == DT_UNKNOWN &&
            (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)))
            continue;
        uint32_t uid = findex_name_uid(f, name);
        struct fmsg *m = uid ? findex_find(f, uid) : NULL;
        if (m) {
            m->mark = gen;
            continue;
        }
        if (nfresh == cap) {
            cap = cap ? cap * 2 : 16;
            fresh = xreallocarray(fresh, cap, sizeof(*fresh));
        }
        fresh[nfresh++] = xstrdup(name);
    }
    closedir(d);
    uint32_t *gone = NULL;
    size_t ngone = 0, gcap = 0;
    for (size_t i = 0; i < f->count; i++) {
        struct stat st;
        if (f->msgs[i].mark == gen) continue;
        if (fstatat(f->dir_fd, f->msgs[i].file, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
            continue; /* readdir missed it, or we cannot tell */
        if (ngone == gcap) {
            gcap = gcap ? gcap * 2 : 16;
            gone = xreallocarray(gone, gcap, sizeof(*gone));
        }
        gone[ngone++] = f->msgs[i].uid;
    }
    enum folder_result r = FOLDER_OK;
    if (nfresh > 0 || ngone > 0) r = log_dir_changes(f, fresh, nfresh, gone, ngone, error_r);
    for (size_t i = 0; i < nfresh; i++)
        free(fresh[i]);
    free(fresh);
    free(gone);
    if (r == FOLDER_OK) {
        /* a change within the same clock tick as the scan would not move the mtime */
        f->dir_clean = ds.st_mtim.tv_sec < now.tv_sec - 1;
        f->dir_mtime = ds.st_mtim;
    }
    return r;
}

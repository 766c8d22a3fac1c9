/* log.c - the "[IP] [Thread] [Date] [Action]" logs an administrator reads
 *
 * Each channel keeps one O_APPEND descriptor for the current day and reopens when the
 * date changes or the directory moves on reload. Lines are formatted in full and
 * gathered in the channel's buffer, which is written with one write(2) when it fills, at
 * the latest LOG_FLUSH_MS later (a flusher thread), at once after an error line, and at
 * exit - so lines from many threads (and processes) never interleave, and a busy server
 * makes a few writes a second instead of one per line (a quarter of the cost of relaying
 * a message went into log writes). A crash loses at most the last LOG_FLUSH_MS of lines;
 * the error log is never buffered.
 *
 * SECURITY: every byte of client-supplied text passes through sanitise() first.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "sbuf.h"
#include "xalloc.h"

static const char *const channel_names[LOG_NCHANNELS] = {"smtp", "pop3", "imap", "control",
                                                         "error"};

#define LOG_FLUSH_MS  100
#define LOG_BUF_FLUSH (32 * 1024) /* write at once past this */

struct channel {
    pthread_mutex_t lock;
    bool enabled;
    int fd;
    int day;         /* yyyymmdd of the open file */
    struct sbuf buf; /* lines not written yet (for the file of `day`) */
};

static struct channel channels[LOG_NCHANNELS] = {
    {PTHREAD_MUTEX_INITIALIZER, true, -1, 0, SBUF_INIT(SBUF_NO_MAX)},
    {PTHREAD_MUTEX_INITIALIZER, true, -1, 0, SBUF_INIT(SBUF_NO_MAX)},
    {PTHREAD_MUTEX_INITIALIZER, true, -1, 0, SBUF_INIT(SBUF_NO_MAX)},
    {PTHREAD_MUTEX_INITIALIZER, true, -1, 0, SBUF_INIT(SBUF_NO_MAX)},
    {PTHREAD_MUTEX_INITIALIZER, true, -1, 0, SBUF_INIT(SBUF_NO_MAX)},
};
static pthread_mutex_t flusher_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t flusher_pid; /* the process whose flusher thread runs (0: none) */

static void flush_locked(struct channel *c)
{
    if (c->buf.len == 0) return;
    if (c->fd >= 0) (void)fs_write_all(c->fd, c->buf.data, c->buf.len);
    sbuf_reset(&c->buf);
}

void log_flush(void)
{
    for (int i = 0; i < LOG_NCHANNELS; i++) {
        pthread_mutex_lock(&channels[i].lock);
        flush_locked(&channels[i]);
        pthread_mutex_unlock(&channels[i].lock);
    }
}

static void *flusher_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts = {0, LOG_FLUSH_MS * 1000000L};
        nanosleep(&ts, NULL);
        log_flush();
    }
    return NULL;
}

/* Starts batching with a flusher thread in this process. Until then (and in programs
 * that never call it) every line is written at once - no thread is started before a
 * service has gone to the background (a thread made before fork() would be missing in
 * the child, and the sanitizers' view of the threads with it). */
void log_start_batching(void)
{
    pid_t me = getpid();
    pthread_mutex_lock(&flusher_lock);
    if (flusher_pid != me) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, flusher_main, NULL) == 0) {
            if (flusher_pid == 0) atexit(log_flush);
            __atomic_store_n(&flusher_pid, me, __ATOMIC_RELEASE);
        }
        pthread_attr_destroy(&attr);
    }
    pthread_mutex_unlock(&flusher_lock);
}
static pthread_mutex_t dir_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_dir;
static unsigned dir_generation;
static bool to_stderr;

int log_init(const char *dir)
{
    for (int i = 0; i < LOG_NCHANNELS; i++) {
        char *sub = xasprintf("%s/%s", dir, channel_names[i]);
        int r = fs_mkdirs(sub, 0750);
        free(sub);
        if (r < 0) return -1;
    }
    pthread_mutex_lock(&dir_lock);
    if (log_dir == NULL || strcmp(log_dir, dir) != 0) {
        free(log_dir);
        log_dir = xstrdup(dir);
        dir_generation++;
    }
    pthread_mutex_unlock(&dir_lock);
    /* force a reopen in the (possibly new) directory */
    for (int i = 0; i < LOG_NCHANNELS; i++) {
        pthread_mutex_lock(&channels[i].lock);
        flush_locked(&channels[i]);
        channels[i].day = 0;
        pthread_mutex_unlock(&channels[i].lock);
    }
    return 0;
}

void log_set_enabled(enum log_channel ch, bool enabled)
{
    if (ch != LOG_ERROR) channels[ch].enabled = enabled;
}

bool log_enabled(enum log_channel ch)
{
    return channels[ch].enabled;
}

void log_set_stderr(bool on)
{
    to_stderr = on;
}

void log_shutdown(void)
{
    for (int i = 0; i < LOG_NCHANNELS; i++) {
        pthread_mutex_lock(&channels[i].lock);
        flush_locked(&channels[i]);
        if (channels[i].fd >= 0) close(channels[i].fd);
        channels[i].fd = -1;
        channels[i].day = 0;
        pthread_mutex_unlock(&channels[i].lock);
    }
    pthread_mutex_lock(&dir_lock);
    xfree(log_dir);
    pthread_mutex_unlock(&dir_lock);
}

void log_format_date(char *buf, size_t size, long long unix_time)
{
    time_t t = (time_t)unix_time;
    struct tm tm;
    localtime_r(&t, &tm);
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
             tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
             sign, off / 60, off % 60);
}

/* Appends text to out with control characters, non-ASCII and a backslash before 'x'
 * escaped as \xNN, cut at max. */
static void sanitise(struct sbuf *out, const char *text, size_t len, size_t max)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t start = out->len;
    for (size_t i = 0; i < len; i++) {
        if (out->len - start >= max) {
            sbuf_appends(out, "...");
            return;
        }
        unsigned char c = (unsigned char)text[i];
        /* a backslash is escaped only before an 'x', so "\x.." in a log is always one
         * of our escapes while IMAP's \Seen stays readable */
        bool escape_backslash = c == '\\' && i + 1 < len && text[i + 1] == 'x';
        if (c >= 0x20 && c < 0x7f && !escape_backslash) {
            sbuf_putc(out, (char)c);
        } else {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            sbuf_append(out, esc, 4);
        }
    }
}

static void write_line(enum log_channel ch, const char *line, size_t len, int today)
{
    struct channel *c = &channels[ch];
    bool buffered = ch != LOG_ERROR && __atomic_load_n(&flusher_pid, __ATOMIC_ACQUIRE) != 0;
    pthread_mutex_lock(&c->lock);
    if (c->fd < 0 || c->day != today) {
        flush_locked(c); /* the lines of the old day go to the old file */
        if (c->fd >= 0) close(c->fd);
        c->fd = -1;
        pthread_mutex_lock(&dir_lock);
        char *path =
            log_dir ? xasprintf("%s/%s/%08d.log", log_dir, channel_names[ch], today) : NULL;
        pthread_mutex_unlock(&dir_lock);
        if (path) {
            c->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
            free(path);
        }
        c->day = today;
    }
    if (buffered && c->fd >= 0) {
        sbuf_append(&c->buf, line, len);
        if (c->buf.len >= LOG_BUF_FLUSH) flush_locked(c);
    } else if (c->fd >= 0) {
        (void)fs_write_all(c->fd, line, len);
    }
    pthread_mutex_unlock(&c->lock);
}

static void emit(enum log_channel ch, bool also_error, const char *ip, const char *action,
                 size_t action_len)
{
    if (!channels[ch].enabled && !also_error) return;
    /* the date text changes once a second: each thread keeps its last one */
    static __thread time_t cached_sec = -1;
    static __thread int cached_today;
    static __thread char date[48];
    static __thread unsigned cached_tid;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        localtime_r(&ts.tv_sec, &tm);
        cached_today = (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
        log_format_date(date, sizeof(date), ts.tv_sec);
        cached_sec = ts.tv_sec;
    }
    int today = cached_today;
    if (ip && cached_tid == 0) cached_tid = (unsigned)syscall(SYS_gettid);
    unsigned tid = ip ? cached_tid : 0;

    struct sbuf heap = SBUF_INIT(LOG_MAX_ACTION * 4 + 512);
    sbuf_printf(&heap, "%s [%08X] %s ", ip ? ip : "SYSTEM", tid, date);
    sanitise(&heap, action, action_len, LOG_MAX_ACTION);
    sbuf_putc(&heap, '\n');
    if (channels[ch].enabled) write_line(ch, heap.data, heap.len, today);
    if (ip == NULL && !also_error && ch != LOG_ERROR) {
        /* the service's own events (start, reload, stop) are rare: written at once */
        pthread_mutex_lock(&channels[ch].lock);
        flush_locked(&channels[ch]);
        pthread_mutex_unlock(&channels[ch].lock);
    }
    if (also_error && ch != LOG_ERROR) {
        write_line(LOG_ERROR, heap.data, heap.len, today);
        /* an error is worth seeing at once, with what led to it */
        pthread_mutex_lock(&channels[ch].lock);
        flush_locked(&channels[ch]);
        pthread_mutex_unlock(&channels[ch].lock);
    }
    if (also_error && to_stderr) (void)fs_write_all(STDERR_FILENO, heap.data, heap.len);
    sbuf_free(&heap);
}

void log_line(enum log_channel ch, const char *ip, const char *fmt, ...)
{
    if (!channels[ch].enabled) return;
    char buf[LOG_MAX_ACTION + 2]; /* one more than kept, so sanitise() sees the cut */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    emit(ch, ch == LOG_ERROR, ip, buf, len);
}

void log_error(enum log_channel ch, const char *ip, const char *fmt, ...)
{
    char buf[LOG_MAX_ACTION + 2]; /* one more than kept, so sanitise() sees the cut */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    emit(ch, true, ip, buf, len);
}

void log_proto_unrecognized(enum log_channel ch, const char *ip, const char *line, size_t len)
{
    if (!channels[ch].enabled) return;
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "<<< [unrecognized, %zu octets] %.*s%s", len,
                     (int)(len < 4 ? len : 4), line, len > 4 ? "..." : "");
    if (n > 0) emit(ch, false, ip, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void log_proto(enum log_channel ch, const char *ip, const char *dir, const char *text, size_t len)
{
    if (!channels[ch].enabled) return;
    size_t dirlen = strlen(dir);
    while (len > 0) {
        size_t n = 0;
        while (n < len && text[n] != '\n')
            n++;
        size_t linelen = n;
        if (linelen && text[linelen - 1] == '\r') linelen--;
        char buf[LOG_MAX_ACTION + 16];
        size_t keep = linelen > LOG_MAX_ACTION + 1 ? LOG_MAX_ACTION + 1 : linelen;
        memcpy(buf, dir, dirlen);
        buf[dirlen] = ' ';
        memcpy(buf + dirlen + 1, text, keep);
        emit(ch, false, ip, buf, dirlen + 1 + keep);
        if (n < len) n++; /* the LF */
        text += n;
        len -= n;
    }
}

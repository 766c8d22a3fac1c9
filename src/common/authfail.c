/* authfail.c - slowing down and then refusing password guessing, per client address
 *
 * A table of AUTHFAIL_TABLE_SIZE entries, in this process's memory or in a file mapped
 * by every service of the root (authfail_attach()). Threads take a mutex, processes an
 * flock on the file. An entry counts an address's attempts in a fixed window of
 * lock_seconds that starts at its first attempt; once the count passes delay_after,
 * authfail_failure() asks for 500 ms, doubling per attempt up to AUTHFAIL_MAX_DELAY_MS;
 * once it reaches lock_after the address is locked for lock_seconds, after which it
 * starts again from nothing. Time is CLOCK_MONOTONIC, which is the same for every
 * process of the machine; the file records the boot time and is wiped after a reboot.
 *
 * Addresses are keyed in canonical form: IPv4 as dotted quad, IPv4-mapped IPv6 as its
 * IPv4, other IPv6 by its /64 prefix (one subscriber usually owns a whole /64, so
 * rotating through it would otherwise dodge the count); anything else verbatim, cut to
 * KEY_MAX - 1 bytes.
 *
 * SECURITY: the table never grows. When it is full the least recently touched entry
 * that is not locked is reused (the least recently touched of all if every entry is
 * locked). Lookups scan the table linearly, a bounded cost per call. The shared file
 * is mode 0600 under run/, and its contents are validated (sizes, NUL-terminated keys)
 * before use.
 */
#include "authfail.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define DEFAULT_DELAY_AFTER  3
#define DEFAULT_LOCK_AFTER   10
#define DEFAULT_LOCK_SECONDS 900
#define FIRST_DELAY_MS       500
#define KEY_MAX              48 /* canonical keys are at most INET6_ADDRSTRLEN + "/64" */

struct entry {
    bool used;
    char key[KEY_MAX];
    unsigned failures;
    uint64_t window_start;                    /* ms, first failure of the current window */
    uint64_t last;                            /* ms, last time this entry was touched */
    uint64_t locked_until;                    /* ms, 0 if not locked */
    uint64_t inflight[AUTHFAIL_MAX_INFLIGHT]; /* expiry (ms) of each slot in use, 0 free */
};

#define SHARED_MAGIC 0x414b4147u /* "AKAG": entries with in-flight slots */

static void authfail_detach_locked(void);

struct shared_header {
    uint32_t magic;
    uint32_t entries;
    uint32_t entry_size;
    uint32_t pad;
    int64_t boot_time; /* seconds: CLOCK_REALTIME - CLOCK_MONOTONIC when written */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry local_table[AUTHFAIL_TABLE_SIZE];
static struct entry *table = local_table;
static int shared_fd = -1;
static void *shared_map;
static size_t shared_len;
static unsigned cfg_delay_after = DEFAULT_DELAY_AFTER;
static unsigned cfg_lock_after = DEFAULT_LOCK_AFTER;
static unsigned cfg_lock_seconds = DEFAULT_LOCK_SECONDS;
static unsigned long long test_clock;

static uint64_t now_ms(void)
{
    if (test_clock) return test_clock;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void table_lock(void)
{
    pthread_mutex_lock(&lock);
    if (shared_fd >= 0)
        while (flock(shared_fd, LOCK_EX) < 0 && errno == EINTR) {
        }
}

static void table_unlock(void)
{
    if (shared_fd >= 0) flock(shared_fd, LOCK_UN);
    pthread_mutex_unlock(&lock);
}

static int64_t boot_time(void)
{
    struct timespec rt, mono;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    return (int64_t)rt.tv_sec - (int64_t)mono.tv_sec;
}

int authfail_attach(const char *path)
{
    shared_len = sizeof(struct shared_header) + sizeof(struct entry) * AUTHFAIL_TABLE_SIZE;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return -1;
    struct stat st;
    if (flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0) goto fail;
    if ((size_t)st.st_size != shared_len && ftruncate(fd, (off_t)shared_len) < 0) goto fail;
    void *map = mmap(NULL, shared_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) goto fail;
    struct shared_header *h = map;
    int64_t boot = boot_time();
    if (h->magic != SHARED_MAGIC || h->entries != AUTHFAIL_TABLE_SIZE ||
        h->entry_size != sizeof(struct entry) || h->boot_time < boot - 10 ||
        h->boot_time > boot + 10) {
        /* new, from another version, or from before a reboot: start empty */
        memset(map, 0, shared_len);
        h->magic = SHARED_MAGIC;
        h->entries = AUTHFAIL_TABLE_SIZE;
        h->entry_size = sizeof(struct entry);
        h->boot_time = boot;
    }
    struct entry *entries = (struct entry *)(h + 1);
    for (size_t i = 0; i < AUTHFAIL_TABLE_SIZE; i++)
        entries[i].key[KEY_MAX - 1] = '\0';
    flock(fd, LOCK_UN);
    pthread_mutex_lock(&lock);
    authfail_detach_locked();
    shared_fd = fd;
    shared_map = map;
    table = entries;
    pthread_mutex_unlock(&lock);
    return 0;
fail : {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}
}

static bool lockout_enabled(void)
{
    return cfg_lock_after > 0 && cfg_lock_seconds > 0;
}

static uint64_t window_ms(void)
{
    return (uint64_t)(cfg_lock_seconds ? cfg_lock_seconds : DEFAULT_LOCK_SECONDS) * 1000;
}

static void make_key(const char *ip, char key[KEY_MAX])
{
    unsigned char a[sizeof(struct in6_addr)];

    if (inet_pton(AF_INET, ip, a) == 1 && inet_ntop(AF_INET, a, key, KEY_MAX) != NULL) return;
    if (inet_pton(AF_INET6, ip, a) == 1) {
        struct in6_addr *a6 = (struct in6_addr *)a;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            if (inet_ntop(AF_INET, a + 12, key, KEY_MAX) != NULL) return;
        } else {
            memset(a + 8, 0, 8);
            if (inet_ntop(AF_INET6, a, key, KEY_MAX - 3) != NULL) {
                size_t len = strlen(key); /* < KEY_MAX - 3: room for "/64" and the NUL */
                memcpy(key + len, "/64", 4);
                return;
            }
        }
    }
    size_t len = strnlen(ip, KEY_MAX - 1);
    memcpy(key, ip, len);
    key[len] = '\0';
}

static unsigned live_slots(const struct entry *e, uint64_t now)
{
    unsigned n = 0;
    for (size_t i = 0; i < AUTHFAIL_MAX_INFLIGHT; i++)
        n += e->inflight[i] > now;
    return n;
}

/* True if e holds nothing worth keeping at now: its lock-out or its window is over and
 * no attempt is in flight. */
static bool expired(const struct entry *e, uint64_t now)
{
    if (live_slots(e, now)) return false;
    if (e->locked_until) return now >= e->locked_until;
    return now - e->window_start >= window_ms();
}

static struct entry *find(const char *key, uint64_t now)
{
    for (size_t i = 0; i < AUTHFAIL_TABLE_SIZE; i++) {
        struct entry *e = &table[i];
        if (e->used && strcmp(e->key, key) == 0) {
            if (!expired(e, now)) return e;
            e->used = false;
            return NULL;
        }
    }
    return NULL;
}

/* A slot for a new entry: a free or expired one, else the oldest unlocked, else the oldest. */
static struct entry *take_slot(uint64_t now)
{
    struct entry *oldest = NULL, *oldest_unlocked = NULL;
    for (size_t i = 0; i < AUTHFAIL_TABLE_SIZE; i++) {
        struct entry *e = &table[i];
        if (!e->used || expired(e, now)) return e;
        if (oldest == NULL || e->last < oldest->last) oldest = e;
        if (!e->locked_until && (oldest_unlocked == NULL || e->last < oldest_unlocked->last))
            oldest_unlocked = e;
    }
    return oldest_unlocked ? oldest_unlocked : oldest;
}

static unsigned delay_for(unsigned failures)
{
    if (failures <= cfg_delay_after) return 0;
    unsigned n = failures - cfg_delay_after - 1;
    unsigned delay = FIRST_DELAY_MS;
    while (n-- > 0 && delay < AUTHFAIL_MAX_DELAY_MS)
        delay *= 2;
    return delay < AUTHFAIL_MAX_DELAY_MS ? delay : AUTHFAIL_MAX_DELAY_MS;
}

void authfail_configure(unsigned delay_after, unsigned lock_after, unsigned lock_seconds)
{
    pthread_mutex_lock(&lock);
    cfg_delay_after = delay_after;
    cfg_lock_after = lock_after;
    cfg_lock_seconds = lock_seconds;
    pthread_mutex_unlock(&lock);
}

static void authfail_detach_locked(void)
{
    if (shared_map) munmap(shared_map, shared_len);
    if (shared_fd >= 0) close(shared_fd);
    shared_map = NULL;
    shared_fd = -1;
    table = local_table;
}

void authfail_detach(void)
{
    pthread_mutex_lock(&lock);
    authfail_detach_locked();
    pthread_mutex_unlock(&lock);
}

unsigned authfail_locked(const char *ip)
{
    char key[KEY_MAX];
    unsigned left = 0;

    make_key(ip, key);
    table_lock();
    uint64_t now = now_ms();
    struct entry *e = find(key, now);
    if (e && e->locked_until > now) left = (unsigned)((e->locked_until - now + 999) / 1000);
    table_unlock();
    return left;
}

/* The entry for key, made if missing. Called with the table locked. */
static struct entry *get_entry(const char *key, uint64_t now)
{
    struct entry *e = find(key, now);
    if (e == NULL) {
        e = take_slot(now);
        memset(e, 0, sizeof(*e));
        e->used = true;
        memcpy(e->key, key, KEY_MAX);
        e->window_start = now;
    }
    e->last = now;
    return e;
}

/* Tries to take an in-flight slot: 0 done, -1 none free now, else seconds locked. */
static long try_begin(const char *key, struct authfail_attempt *a)
{
    uint64_t now = now_ms();
    struct entry *e = get_entry(key, now);
    if (e->locked_until > now) return (long)((e->locked_until - now + 999) / 1000);
    if (e->locked_until) { /* the lock-out is over: start again from nothing */
        memset(e->inflight, 0, sizeof(e->inflight));
        e->failures = 0;
        e->locked_until = 0;
        e->window_start = now;
    }
    unsigned allowed = AUTHFAIL_MAX_INFLIGHT;
    if (lockout_enabled())
        allowed = cfg_lock_after > e->failures ? cfg_lock_after - e->failures : 0;
    if (allowed > AUTHFAIL_MAX_INFLIGHT) allowed = AUTHFAIL_MAX_INFLIGHT;
    if (live_slots(e, now) >= allowed) return -1;
    for (int i = 0; i < AUTHFAIL_MAX_INFLIGHT; i++) {
        if (e->inflight[i] > now) continue;
        e->inflight[i] = now + AUTHFAIL_SLOT_MS;
        a->slot = i;
        a->expires = e->inflight[i];
        return 0;
    }
    return -1;
}

unsigned authfail_begin(const char *ip, struct authfail_attempt *a)
{
    make_key(ip, a->key);
    a->slot = -1;
    a->expires = 0;
    for (int waited = 0;; waited += 20) {
        table_lock();
        long r = try_begin(a->key, a);
        table_unlock();
        if (r >= 0) return (unsigned)r;
        /* every slot is taken by attempts still being judged: wait for one */
        if (waited >= AUTHFAIL_WAIT_MS || test_clock) return 1;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Gives a's slot back. Called with the table locked; returns the entry (or NULL). */
static struct entry *release(struct authfail_attempt *a, uint64_t now)
{
    struct entry *e = find(a->key, now);
    if (e && a->slot >= 0 && a->slot < AUTHFAIL_MAX_INFLIGHT && e->inflight[a->slot] == a->expires)
        e->inflight[a->slot] = 0;
    a->slot = -1;
    return e;
}

unsigned authfail_failure(struct authfail_attempt *a)
{
    table_lock();
    uint64_t now = now_ms();
    struct entry *e = release(a, now);
    if (e == NULL) e = get_entry(a->key, now);
    if (e->failures < UINT32_MAX) e->failures++;
    e->last = now;
    if (lockout_enabled() && !e->locked_until && e->failures >= cfg_lock_after)
        e->locked_until = now + (uint64_t)cfg_lock_seconds * 1000;
    unsigned delay = delay_for(e->failures);
    table_unlock();
    return delay;
}

void authfail_done(struct authfail_attempt *a)
{
    table_lock();
    release(a, now_ms());
    table_unlock();
}

void authfail_reset(void)
{
    table_lock();
    memset(table, 0, sizeof(struct entry) * AUTHFAIL_TABLE_SIZE);
    table_unlock();
}

void authfail_test_set_clock(unsigned long long now_ms_value)
{
    pthread_mutex_lock(&lock);
    test_clock = now_ms_value;
    pthread_mutex_unlock(&lock);
}

unsigned authfail_test_entries(void)
{
    unsigned n = 0;
    table_lock();
    for (size_t i = 0; i < AUTHFAIL_TABLE_SIZE; i++)
        n += table[i].used;
    table_unlock();
    return n;
}

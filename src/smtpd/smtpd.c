/* smtpd.c - the state alkaid-smtpd's parts share, the disk-space monitor, and the
 * counters of the current day that ctl STATUS reports
 *
 * SECURITY: nothing here is client-controlled.
 */
#include "smtpd.h"

#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "fsutil.h"

struct smtpd smtpd;

bool smtpd_disk_space_low(const struct alkaid_config *cfg)
{
    if (cfg->min_free_space == 0) return false;
    int64_t now = conn_now_ms();
    int64_t last = __atomic_load_n(&smtpd.space_checked_ms, __ATOMIC_RELAXED);
    if (last != 0 && now - last < 1000) return __atomic_load_n(&smtpd.space_low, __ATOMIC_RELAXED);
    bool low = fs_free_space(cfg->temp_dir) < cfg->min_free_space ||
               fs_free_space(cfg->mail_dir) < cfg->min_free_space;
    __atomic_store_n(&smtpd.space_low, low, __ATOMIC_RELAXED);
    __atomic_store_n(&smtpd.space_checked_ms, now, __ATOMIC_RELAXED);
    return low;
}

/* ---- today's counters -------------------------------------------------------------- */

static pthread_mutex_t today_lock = PTHREAD_MUTEX_INITIALIZER;
static int today_date; /* yyyymmdd the counts are for */
static uint64_t today_counts[TODAY_N];

static int local_date(void)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

/* Called with today_lock held: a new day starts the counts again. */
static void roll(void)
{
    int d = local_date();
    if (d != today_date) {
        today_date = d;
        memset(today_counts, 0, sizeof(today_counts));
    }
}

void smtpd_today_add(enum smtpd_today which, uint64_t n)
{
    if (n == 0) return;
    pthread_mutex_lock(&today_lock);
    roll();
    today_counts[which] += n;
    pthread_mutex_unlock(&today_lock);
}

void smtpd_today_status(struct sbuf *json)
{
    pthread_mutex_lock(&today_lock);
    roll();
    sbuf_printf(json,
                ",\"today\":{\"date\":\"%04d-%02d-%02d\",\"messages_in\":%" PRIu64
                ",\"messages_out\":%" PRIu64 ",\"local_deliveries\":%" PRIu64 "}",
                today_date / 10000, today_date / 100 % 100, today_date % 100,
                today_counts[TODAY_MESSAGES_IN], today_counts[TODAY_MESSAGES_OUT],
                today_counts[TODAY_LOCAL_DELIVERIES]);
    pthread_mutex_unlock(&today_lock);
}

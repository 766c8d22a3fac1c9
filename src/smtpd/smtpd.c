/* smtpd.c - the state alkaid-smtpd's parts share, and the disk-space monitor
 *
 * SECURITY: nothing here is client-controlled.
 */
#include "smtpd.h"

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

/* config.c - alkaid.ini: load, validate, typed access
 *
 * The table below is the whole configuration surface: every key every service reads,
 * its type, default and range, and where it lands in struct alkaid_config. docs/config.md
 * documents the same table (a unit test checks that every key is documented).
 *
 * SECURITY: values are parsed with explicit range checks (no atoi); a malformed file is
 * reported with its name, section and key, never silently half-applied.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <iniparser.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "address.h"
#include "fsutil.h"
#include "xalloc.h"

extern const unsigned char alkaid_default_ini[];
extern const unsigned long alkaid_default_ini_len;

enum cfg_type {
    CFG_STR,  /* free text */
    CFG_PATH, /* a path, resolved against the root */
    CFG_INT,  /* a whole number in [min, max] */
    CFG_PORT, /* 0 (off) .. 65535 */
    CFG_BOOL, /* 0/1, yes/no, true/false, on/off */
    CFG_SIZE, /* bytes, with an optional K/M/G/T suffix, in [min, max] */
    CFG_TIME, /* seconds, with an optional s/m/h/d suffix, in [min, max] */
};

typedef int cfg_check_fn(const char *value, struct sbuf *why);

struct cfg_key {
    const char *section;
    const char *key;
    enum cfg_type type;
    const char *def;
    long long min, max;
    size_t offset;
    cfg_check_fn *check;
};

static int check_bind(const char *value, struct sbuf *why);
static int check_hostname(const char *value, struct sbuf *why);
static int check_ip_patterns(const char *value, struct sbuf *why);
static int check_hostport(const char *value, struct sbuf *why);
static int check_hostport_list(const char *value, struct sbuf *why);
static int check_backend(const char *value, struct sbuf *why);
static int check_user(const char *value, struct sbuf *why);
static int check_banner(const char *value, struct sbuf *why);
static int check_time_list(const char *value, struct sbuf *why);
static int check_tls_mode(const char *value, struct sbuf *why);
static int check_tls_policy(const char *value, struct sbuf *why);
static int check_address(const char *value, struct sbuf *why);
static int check_line(const char *value, struct sbuf *why);
static int check_schedule(const char *value, struct sbuf *why);
static int check_command(const char *value, struct sbuf *why);
static int check_domain_list(const char *value, struct sbuf *why);

#define OFF(field) offsetof(struct alkaid_config, field)
#define GB(n)      ((long long)(n) << 30)

#define LISTEN_KEYS(sect, field, d_port, d_tls, d_sessions, d_perip, d_timeout, d_tmax)            \
    {sect, "Bind", CFG_STR, "0.0.0.0", 0, 0, OFF(field.bind), check_bind},                         \
        {sect, "Port", CFG_PORT, d_port, 0, 65535, OFF(field.port), NULL},                         \
        {sect, "TLSPort", CFG_PORT, d_tls, 0, 65535, OFF(field.tls_port), NULL},                   \
        {sect, "AllowPlaintextAuth", CFG_BOOL, "0", 0, 1, OFF(field.allow_plaintext_auth), NULL},  \
        {sect, "MaxSessions", CFG_INT, d_sessions, 1, 100000, OFF(field.max_sessions), NULL},      \
        {sect, "MaxSessionsPerIP", CFG_INT, d_perip, 1, 100000, OFF(field.max_sessions_per_ip),    \
         NULL},                                                                                    \
    {                                                                                              \
        sect, "Timeout", CFG_INT, d_timeout, 10, d_tmax, OFF(field.timeout), NULL                  \
    }

static const struct cfg_key keys[] = {
    {"System", "Hostname", CFG_STR, "", 0, 0, OFF(hostname), check_hostname},
    {"System", "User", CFG_STR, "", 0, 0, OFF(user), check_user},

    {"Directories", "Mail", CFG_PATH, "mail", 0, 0, OFF(mail_dir), NULL},
    {"Directories", "Temp", CFG_PATH, "temp", 0, 0, OFF(temp_dir), NULL},
    {"Directories", "Log", CFG_PATH, "log", 0, 0, OFF(log_dir), NULL},
    {"Directories", "Run", CFG_PATH, "run", 0, 0, OFF(run_dir), NULL},

    {"Store", "Backend", CFG_STR, "sqlite", 0, 0, OFF(store_backend), check_backend},
    {"Store", "Database", CFG_PATH, "config/accounts.db", 0, 0, OFF(store_path), NULL},

    LISTEN_KEYS("SMTP", smtp, "25", "465", "500", "20", "300", 3600),
    {"SMTP", "SubmissionPort", CFG_PORT, "587", 0, 65535, OFF(smtp.submission_port), NULL},
    {"SMTP", "RelayIPs", CFG_STR, "", 0, 0, OFF(relay_ips), check_ip_patterns},
    {"SMTP", "Smarthost", CFG_STR, "", 0, 0, OFF(smarthost), check_hostport},
    {"SMTP", "MaxMessageSize", CFG_SIZE, "50M", 1024, GB(4), OFF(max_message_size), NULL},
    {"SMTP", "MaxRecipients", CFG_INT, "100", 100, 100000, OFF(max_recipients), NULL},
    {"SMTP", "MaxHops", CFG_INT, "30", 5, 500, OFF(max_hops), NULL},
    {"SMTP", "MinFreeSpace", CFG_SIZE, "100M", 0, GB(1) << 10, OFF(min_free_space), NULL},
    {"SMTP", "DataTimeout", CFG_INT, "600", 10, 3600, OFF(data_timeout), NULL},
    {"SMTP", "Banner", CFG_STR, "", 0, 0, OFF(banner), check_banner},
    {"SMTP", "SmarthostUser", CFG_STR, "", 0, 0, OFF(smarthost_user), check_line},
    {"SMTP", "SmarthostPassword", CFG_STR, "", 0, 0, OFF(smarthost_password), check_line},
    {"SMTP", "SmarthostTLS", CFG_STR, "", 0, 0, OFF(smarthost_tls), check_tls_mode},
    {"SMTP", "RelayFrom", CFG_STR, "", 0, 0, OFF(relay_from), check_address},

    {"Queue", "DeliveryThreads", CFG_INT, "20", 1, 1000, OFF(queue.threads), NULL},
    {"Queue", "Hold", CFG_BOOL, "0", 0, 1, OFF(queue.hold), NULL},
    {"Queue", "RetrySchedule", CFG_STR, "15m,30m,1h", 0, 0, OFF(queue.retry_schedule),
     check_time_list},
    {"Queue", "GiveUpAfter", CFG_TIME, "2d", 60, 86400 * 30, OFF(queue.give_up), NULL},
    {"Queue", "DelayWarning", CFG_TIME, "4h", 0, 86400 * 30, OFF(queue.delay_warning), NULL},
    {"Queue", "ConnectTimeout", CFG_TIME, "30", 1, 600, OFF(queue.connect_timeout), NULL},
    {"Queue", "CommandTimeout", CFG_TIME, "300", 1, 3600, OFF(queue.command_timeout), NULL},
    {"Queue", "DataTimeout", CFG_TIME, "600", 1, 3600, OFF(queue.data_timeout), NULL},
    {"Queue", "ScanInterval", CFG_TIME, "60", 1, 86400, OFF(queue.scan_interval), NULL},
    {"Queue", "MaxMessagesPerConnection", CFG_INT, "100", 1, 100000, OFF(queue.max_per_conn), NULL},
    {"Queue", "ConnectionsPerDomain", CFG_INT, "20", 1, 1000, OFF(queue.per_domain), NULL},
    {"Queue", "TLS", CFG_STR, "may", 0, 0, OFF(queue.tls), check_tls_mode},
    {"Queue", "TLSPolicy", CFG_STR, "", 0, 0, OFF(queue.tls_policy), check_tls_policy},
    {"Queue", "CAFile", CFG_PATH, "/etc/ssl/certs/ca-certificates.crt", 0, 0, OFF(queue.ca_file),
     NULL},
    {"Queue", "HeloName", CFG_STR, "", 0, 0, OFF(queue.helo_name), check_hostname},

    {"DialUp", "Enabled", CFG_BOOL, "0", 0, 1, OFF(dialup.enabled), NULL},
    {"DialUp", "Connect", CFG_STR, "", 0, 0, OFF(dialup.connect), check_command},
    {"DialUp", "Disconnect", CFG_STR, "", 0, 0, OFF(dialup.disconnect), check_command},
    {"DialUp", "Schedule", CFG_STR, "", 0, 0, OFF(dialup.schedule), check_schedule},
    {"DialUp", "Interval", CFG_TIME, "0", 0, 86400 * 7, OFF(dialup.interval), NULL},
    {"DialUp", "IdleHangup", CFG_TIME, "2m", 1, 86400, OFF(dialup.idle_hangup), NULL},
    {"DialUp", "ETRNServer", CFG_STR, "", 0, 0, OFF(dialup.etrn_server), check_hostport},
    {"DialUp", "ETRNDomains", CFG_STR, "", 0, 0, OFF(dialup.etrn_domains), check_domain_list},
    {"DialUp", "ConnectTimeout", CFG_TIME, "60", 1, 3600, OFF(dialup.connect_timeout), NULL},

    LISTEN_KEYS("POP3", pop3, "110", "995", "500", "20", "600", 3600),
    LISTEN_KEYS("IMAP", imap, "143", "993", "2000", "50", "1800", 7200),
    {"IMAP", "MaxSessionsPerUser", CFG_INT, "20", 1, 10000, OFF(imap_max_sessions_per_user), NULL},

    {"Control", "Bind", CFG_STR, "127.0.0.1", 0, 0, OFF(control_bind), check_bind},
    {"Control", "AdminPort", CFG_PORT, "32000", 0, 65535, OFF(admin_port), NULL},
    {"Control", "WebPort", CFG_PORT, "32080", 0, 65535, OFF(web_port), NULL},
    {"Control", "Watchdog", CFG_BOOL, "1", 0, 1, OFF(watchdog), NULL},
    {"Control", "WatchdogInterval", CFG_TIME, "10", 1, 3600, OFF(watchdog_interval), NULL},
    {"Control", "WatchdogRestart", CFG_STR, "", 0, 0, OFF(watchdog_restart), check_line},

    {"TLS", "Certificate", CFG_PATH, "config/tls/cert.pem", 0, 0, OFF(tls_cert), NULL},
    {"TLS", "Key", CFG_PATH, "config/tls/key.pem", 0, 0, OFF(tls_key), NULL},
    {"TLS", "Ciphers", CFG_STR,
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
     "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
     "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305",
     0, 0, OFF(tls_ciphers), NULL},

    {"Logging", "SMTP", CFG_BOOL, "1", 0, 1, OFF(log_smtp), NULL},
    {"Logging", "POP3", CFG_BOOL, "1", 0, 1, OFF(log_pop3), NULL},
    {"Logging", "IMAP", CFG_BOOL, "1", 0, 1, OFF(log_imap), NULL},
    {"Logging", "Control", CFG_BOOL, "1", 0, 1, OFF(log_control), NULL},

    {"DNS", "Servers", CFG_STR, "", 0, 0, OFF(dns_servers), check_hostport_list},
    {"DNS", "Timeout", CFG_TIME, "5", 1, 60, OFF(dns_timeout), NULL},
    {"DNS", "Tries", CFG_INT, "2", 1, 10, OFF(dns_tries), NULL},

    {"Security", "PasswordIterations", CFG_INT, "10000", 4096, 10000000, OFF(password_iterations),
     NULL},
    {"Security", "AuthCacheTTL", CFG_INT, "3600", 0, 86400, OFF(auth_cache_ttl), NULL},
    {"Security", "AuthFailDelayAfter", CFG_INT, "3", 1, 1000, OFF(auth_delay_after), NULL},
    {"Security", "AuthFailLockAfter", CFG_INT, "10", 1, 100000, OFF(auth_lock_after), NULL},
    {"Security", "AuthFailLockTime", CFG_INT, "900", 0, 86400 * 7, OFF(auth_lock_time), NULL},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* ---- value parsers -------------------------------------------------------------- */

static int parse_ll(const char *s, long long *v_r)
{
    if (*s == '\0') return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s) return -1;
    *v_r = v;
    return 0;
}

static int parse_bool(const char *s, bool *v_r)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *v_r = true, 0;
        if (strcasecmp(s, no[i]) == 0) return *v_r = false, 0;
    }
    return -1;
}

static int parse_size(const char *s, unsigned long long *v_r)
{
    const char *p = s;
    unsigned long long v = 0;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (ULLONG_MAX - 9) / 10) return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    unsigned shift = 0;
    switch (*p) {
    case 'k':
    case 'K':
        shift = 10;
        p++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        p++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        p++;
        break;
    case 't':
    case 'T':
        shift = 40;
        p++;
        break;
    default: break;
    }
    if (*p == 'b' || *p == 'B') p++;
    if (*p != '\0') return -1;
    if (shift && v > (ULLONG_MAX >> shift)) return -1;
    *v_r = v << shift;
    return 0;
}

int config_parse_time(const char *s, long long *v_r)
{
    const char *p = s;
    long long v = 0;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > 100000000000LL) return -1;
        v = v * 10 + (*p - '0');
    }
    long long unit = 1;
    switch (*p) {
    case 's': unit = 1, p++; break;
    case 'm': unit = 60, p++; break;
    case 'h': unit = 3600, p++; break;
    case 'd': unit = 86400, p++; break;
    default: break;
    }
    if (*p != '\0') return -1;
    *v_r = v * unit;
    return 0;
}

/* Parses value for key k and, if cfg is not NULL, stores it. Appends the reason to why
 * and returns -1 when the value is bad. */
static int apply_value(const struct cfg_key *k, const char *value, struct alkaid_config *cfg,
                       struct sbuf *why)
{
    void *field = cfg ? (char *)cfg + k->offset : NULL;
    long long v;
    unsigned long long size;
    bool b;

    switch (k->type) {
    case CFG_STR:
    case CFG_PATH:
        if (strchr(value, '\n') || strchr(value, '\r')) {
            sbuf_appends(why, "must be on one line");
            return -1;
        }
        if (k->check && k->check(value, why) < 0) return -1;
        if (k->type == CFG_PATH && *value == '\0') {
            sbuf_appends(why, "must not be empty");
            return -1;
        }
        if (field) {
            char **s = field;
            free(*s);
            *s = k->type == CFG_PATH ? config_path(cfg->root, value) : xstrdup(value);
        }
        return 0;
    case CFG_INT:
    case CFG_PORT:
        if (parse_ll(value, &v) < 0) {
            sbuf_printf(why, "'%s' is not a whole number", value);
            return -1;
        }
        if (v < k->min || v > k->max) {
            sbuf_printf(why, "%lld is out of range (%lld to %lld)", v, k->min, k->max);
            return -1;
        }
        if (field) *(int *)field = (int)v;
        return 0;
    case CFG_BOOL:
        if (parse_bool(value, &b) < 0) {
            sbuf_printf(why, "'%s' is not a boolean (use 0 or 1)", value);
            return -1;
        }
        if (field) *(bool *)field = b;
        return 0;
    case CFG_SIZE:
        if (parse_size(value, &size) < 0) {
            sbuf_printf(why, "'%s' is not a size (a number with an optional K, M, G suffix)",
                        value);
            return -1;
        }
        if (size < (unsigned long long)k->min || size > (unsigned long long)k->max) {
            sbuf_printf(why, "%s is out of range (%lld to %lld bytes)", value, k->min, k->max);
            return -1;
        }
        if (field) *(uint64_t *)field = size;
        return 0;
    case CFG_TIME:
        if (config_parse_time(value, &v) < 0) {
            sbuf_printf(why, "'%s' is not a time (seconds, or a number with s, m, h or d)", value);
            return -1;
        }
        if (v < k->min || v > k->max) {
            sbuf_printf(why, "%s is out of range (%lld to %lld seconds)", value, k->min, k->max);
            return -1;
        }
        if (field) *(int *)field = (int)v;
        return 0;
    }
    return -1;
}

/* ---- checks for string values ---------------------------------------------------- */

static int check_bind(const char *value, struct sbuf *why)
{
    unsigned char addr[16];
    if (inet_pton(AF_INET, value, addr) == 1 || inet_pton(AF_INET6, value, addr) == 1) return 0;
    sbuf_printf(why, "'%s' is not an IPv4 or IPv6 address (use 0.0.0.0 or :: for all)", value);
    return -1;
}

static bool hostname_chars(const char *s)
{
    if (*s == '\0' || strlen(s) > 253) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return false;
    }
    return true;
}

static int check_hostname(const char *value, struct sbuf *why)
{
    if (*value == '\0' || hostname_chars(value)) return 0;
    sbuf_printf(why, "'%s' is not a host name", value);
    return -1;
}

static int check_backend(const char *value, struct sbuf *why)
{
    if (strcasecmp(value, "sqlite") == 0) return 0;
    sbuf_printf(why, "'%s' is not a store backend this build has (sqlite)", value);
    return -1;
}

static int check_user(const char *value, struct sbuf *why)
{
    for (const char *p = value; *p; p++) {
        if (*p == ':' || *p == '/' || (unsigned char)*p <= ' ') {
            sbuf_printf(why, "'%s' is not a user name", value);
            return -1;
        }
    }
    return 0;
}

static int check_banner(const char *value, struct sbuf *why)
{
    for (const char *p = value; *p; p++) {
        if ((unsigned char)*p < ' ' || (unsigned char)*p > '~') {
            sbuf_appends(why, "must be printable ASCII");
            return -1;
        }
    }
    if (strlen(value) > 200) {
        sbuf_appends(why, "is longer than 200 characters");
        return -1;
    }
    return 0;
}

static int check_ip_patterns(const char *value, struct sbuf *why)
{
    for (const char *p = value; *p; p++) {
        char c = *p;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == '.' || c == ':' || c == '*' || c == '/' || c == ' ' || c == ',' || c == '\t')) {
            sbuf_printf(why,
                        "'%s' is not a list of addresses (with * wildcards) or networks (CIDR)",
                        value);
            return -1;
        }
    }
    return 0;
}

static int check_one_hostport(const char *s, size_t len, struct sbuf *why)
{
    char buf[300];
    if (len == 0 || len >= sizeof(buf)) goto bad;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *host = buf, *port = NULL;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close) goto bad;
        *close = '\0';
        host = buf + 1;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            goto bad;
        unsigned char a[16];
        if (inet_pton(AF_INET6, host, a) != 1) goto bad;
    } else {
        char *colon = strchr(buf, ':');
        if (colon && strchr(colon + 1, ':')) {
            /* a bare IPv6 address without a port */
            unsigned char a[16];
            if (inet_pton(AF_INET6, buf, a) != 1) goto bad;
            return 0;
        }
        if (colon) {
            *colon = '\0';
            port = colon + 1;
        }
        if (!hostname_chars(host)) goto bad;
    }
    if (port) {
        long long v;
        if (parse_ll(port, &v) < 0 || v < 1 || v > 65535) goto bad;
    }
    return 0;
bad:
    sbuf_printf(why, "'%.*s' is not host[:port]", (int)len, s);
    return -1;
}

static int check_time_list(const char *value, struct sbuf *why)
{
    long long times[CONFIG_MAX_RETRIES];
    int n = config_parse_time_list(value, times, CONFIG_MAX_RETRIES);
    if (n < 0) {
        sbuf_printf(why,
                    "'%s' is not a list of times (e.g. 15m,30m,1h; each 1 s to 7 d, at most %d)",
                    value, CONFIG_MAX_RETRIES);
        return -1;
    }
    if (n == 0) {
        sbuf_appends(why, "must list at least one time");
        return -1;
    }
    return 0;
}

int config_parse_time_list(const char *value, long long *times, int max)
{
    int n = 0;
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, " ,");
        if (len == 0) break;
        char buf[32];
        long long v;
        if (len >= sizeof(buf) || n >= max) return -1;
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (config_parse_time(buf, &v) < 0 || v < 1 || v > 86400 * 7) return -1;
        times[n++] = v;
        p += len;
    }
    return n;
}

static int check_tls_mode(const char *value, struct sbuf *why)
{
    if (*value == '\0' || config_tls_mode(value) >= 0) return 0;
    sbuf_printf(why, "'%s' is not one of none, may, require, verify", value);
    return -1;
}

int config_tls_mode(const char *value)
{
    static const char *const names[] = {"none", "may", "require", "verify"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(value, names[i]) == 0) return i;
    return -1;
}

static int check_tls_policy(const char *value, struct sbuf *why)
{
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, " ,");
        if (len == 0) break;
        const char *eq = memchr(p, '=', len);
        char dom[256], mode[16];
        if (eq == NULL || eq == p || (size_t)(eq - p) >= sizeof(dom) ||
            len - (size_t)(eq - p) - 1 >= sizeof(mode))
            goto bad;
        memcpy(dom, p, (size_t)(eq - p));
        dom[eq - p] = '\0';
        memcpy(mode, eq + 1, len - (size_t)(eq - p) - 1);
        mode[len - (size_t)(eq - p) - 1] = '\0';
        if (!hostname_chars(dom + (dom[0] == '.')) || config_tls_mode(mode) < 0) goto bad;
        p += len;
        continue;
    bad:
        sbuf_printf(why, "'%.*s' is not domain=none|may|require|verify", (int)len, p);
        return -1;
    }
    return 0;
}

static int check_address(const char *value, struct sbuf *why)
{
    if (*value == '\0') return 0;
    const char *at = strrchr(value, '@');
    if (at == NULL || at == value || !hostname_chars(at + 1) || strlen(value) > 254 ||
        strpbrk(value, " <>\t\"\\") != NULL) {
        sbuf_printf(why, "'%s' is not a mail address (local@domain)", value);
        return -1;
    }
    return 0;
}

static int check_line(const char *value, struct sbuf *why)
{
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20) {
            sbuf_appends(why, "must not contain control characters");
            return -1;
        }
    return 0;
}

int config_parse_schedule(const char *value, int *minutes, int max)
{
    int n = 0;
    const char *p = value;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0') break;
        /* H:MM or HH:MM */
        int h = 0, m = 0, digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 2)
            h = h * 10 + (*p++ - '0'), digits++;
        if (digits == 0 || *p++ != ':') return -1;
        if (!(p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9')) return -1;
        m = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
        if (*p != '\0' && *p != ' ' && *p != ',') return -1;
        if (h > 23 || m > 59 || n >= max) return -1;
        minutes[n++] = h * 60 + m;
    }
    return n;
}

static int check_schedule(const char *value, struct sbuf *why)
{
    int mins[CONFIG_MAX_SCHEDULE];
    if (config_parse_schedule(value, mins, CONFIG_MAX_SCHEDULE) < 0) {
        sbuf_printf(why, "'%s' is not a list of times of day (e.g. 08:00 12:30 18:00; at most %d)",
                    value, CONFIG_MAX_SCHEDULE);
        return -1;
    }
    return 0;
}

/* A command run without a shell: printable, no control characters. */
static int check_command(const char *value, struct sbuf *why)
{
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            sbuf_appends(why, "control characters are not allowed in a command");
            return -1;
        }
    }
    if (*value && *value != '/') {
        sbuf_printf(why, "'%s': give the program's absolute path (it is run without a shell)",
                    value);
        return -1;
    }
    return 0;
}

static int check_domain_list(const char *value, struct sbuf *why)
{
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, " ,");
        if (n == 0) break;
        char buf[256];
        if (n >= sizeof(buf)) goto bad;
        memcpy(buf, p, n);
        buf[n] = '\0';
        if (!address_domain_valid(buf, false)) goto bad; /* what ETRN accepts */
        p += n;
        continue;
    bad:
        sbuf_printf(why, "'%.*s' is not a domain name", (int)(n > 255 ? 255 : n), p);
        return -1;
    }
    return 0;
}

static int check_hostport(const char *value, struct sbuf *why)
{
    if (*value == '\0') return 0;
    return check_one_hostport(value, strlen(value), why);
}

static int check_hostport_list(const char *value, struct sbuf *why)
{
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, " ,");
        if (n && check_one_hostport(p, n, why) < 0) return -1;
        p += n;
    }
    return 0;
}

/* ---- the root and the file ------------------------------------------------------- */

/* Removes "." and ".." components and repeated slashes, without looking at the disk
 * (the directories need not exist yet). ".." above the top of an absolute path stays
 * at "/"; in a relative path it is kept. In place. */
static void normalize(char *path)
{
    bool absolute = path[0] == '/';
    size_t len = strlen(path);
    char **parts = xcalloc(len / 2 + 2, sizeof(char *));
    size_t n = 0;
    for (char *save = NULL, *c = strtok_r(path, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0) continue;
        if (strcmp(c, "..") == 0) {
            if (n > 0 && strcmp(parts[n - 1], "..") != 0) {
                n--;
                continue;
            }
            if (absolute) continue;
        }
        parts[n++] = c;
    }
    /* the parts point into path; write them back in order (never longer than before) */
    struct sbuf out = SBUF_INIT(0);
    if (absolute) sbuf_putc(&out, '/');
    for (size_t i = 0; i < n; i++) {
        if (i) sbuf_putc(&out, '/');
        sbuf_appends(&out, parts[i]);
    }
    if (out.len == 0) sbuf_putc(&out, '.');
    memcpy(path, out.data, out.len + 1);
    sbuf_free(&out);
    free(parts);
}

char *config_path(const char *root, const char *path)
{
    char *p;
    if (path[0] == '/') {
        p = xstrdup(path);
    } else {
        size_t rl = strlen(root);
        while (rl > 1 && root[rl - 1] == '/')
            rl--;
        p = xasprintf("%.*s/%s", (int)rl, root, path);
    }
    normalize(p);
    return p;
}

static __thread char prepare_error[512];

int config_root_prepare(const char *root, const char **error_r)
{
    char *confdir = config_path(root, "config");
    char *ini = config_path(root, "config/alkaid.ini");
    int ret = -1;
    struct stat st;

    if (fs_mkdirs(root, 0755) < 0 || fs_mkdirs(confdir, 0750) < 0) {
        snprintf(prepare_error, sizeof(prepare_error), "cannot create %s: %s", confdir,
                 strerror(errno));
        goto out;
    }
    if (stat(ini, &st) == 0 && !S_ISREG(st.st_mode)) {
        snprintf(prepare_error, sizeof(prepare_error), "%s: cannot be read: not a regular file",
                 ini);
        goto out;
    }
    if (stat(ini, &st) == 0 && st.st_size > 0) {
        ret = 0;
        goto out;
    }
    if (fs_write_file_atomic(ini, alkaid_default_ini, alkaid_default_ini_len, 0640) < 0) {
        snprintf(prepare_error, sizeof(prepare_error), "cannot write %s: %s", ini, strerror(errno));
        goto out;
    }
    ret = 0;
out:
    if (ret < 0 && error_r) *error_r = prepare_error;
    free(confdir);
    free(ini);
    return ret;
}

static pthread_mutex_t ini_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sbuf *ini_errors;

__attribute__((format(printf, 1, 2))) static int ini_error_cb(const char *fmt, ...)
{
    if (ini_errors == NULL) return 0;
    va_list ap;
    va_start(ap, fmt);
    struct sbuf tmp = SBUF_INIT(4096);
    sbuf_vprintf(&tmp, fmt, ap);
    va_end(ap);
    /* iniparser's messages span lines; fold them into one */
    for (size_t i = 0; i < tmp.len; i++)
        if (tmp.data[i] == '\n') tmp.data[i] = ' ';
    while (tmp.len && tmp.data[tmp.len - 1] == ' ')
        tmp.len--;
    sbuf_append(ini_errors, tmp.data ? tmp.data : "", tmp.len);
    sbuf_putc(ini_errors, '\n');
    sbuf_free(&tmp);
    return 0;
}

/* The spelling of a section (key NULL) or key as written in the file: iniparser hands
 * them over lower-cased. xmalloc'ed; the given name if it cannot be found. */
static char *spelled(const char *path, const char *section, const char *key)
{
    char *text = fs_read_file(path, 1 << 24, NULL);
    char *found = NULL;
    bool in_section = false;
    for (char *line = text, *next; line && *line && found == NULL; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line += strspn(line, " \t");
        if (*line == '[') {
            char *close = strchr(line, ']');
            if (close == NULL) continue;
            *close = '\0';
            in_section = strcasecmp(line + 1, section) == 0;
            if (in_section && key == NULL) found = xstrdup(line + 1);
        } else if (in_section && key) {
            size_t n = strcspn(line, "=:");
            while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
                n--;
            if (n == strlen(key) && strncasecmp(line, key, n) == 0) found = xstrndup(line, n);
        }
    }
    free(text);
    return found ? found : xstrdup(key ? key : section);
}

/* Warns about a key set twice in one section: iniparser keeps the last value silently,
 * which can hide a bad earlier one. */
static void warn_duplicates(const char *path, struct sbuf *messages)
{
    char *text = fs_read_file(path, 1 << 24, NULL);
    if (text == NULL) return;
    char section[128] = "";
    struct sbuf seen = SBUF_INIT(0); /* "section\tkey\n" per key, lower-cased */
    sbuf_putc(&seen, '\n');
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line += strspn(line, " \t");
        if (*line == '[') {
            char *close = strchr(line, ']');
            if (close)
                snprintf(section, sizeof(section), "%.*s", (int)(close - line - 1), line + 1);
            continue;
        }
        if (*line == ';' || *line == '#' || *line == '\0') continue;
        size_t n = strcspn(line, "=:");
        if (line[n] == '\0') continue;
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        char entry[320];
        snprintf(entry, sizeof(entry), "\n%s\t%.*s\n", section, (int)n, line);
        for (char *c = entry; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (strstr(sbuf_cstr(&seen), entry))
            sbuf_printf(messages,
                        "%s: [%s] %.*s: warning: set more than once; the last value "
                        "is used\n",
                        path, section, (int)n, line);
        else
            sbuf_appends(&seen, entry + 1); /* the leading "\n" is already there */
    }
    sbuf_free(&seen);
    free(text);
}

static const struct cfg_key *find_key(const char *section, const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcasecmp(keys[i].section, section) == 0 && strcasecmp(keys[i].key, key) == 0)
            return &keys[i];
    return NULL;
}

static bool known_section(const char *section)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcasecmp(keys[i].section, section) == 0) return true;
    return false;
}

int config_check_value(const char *section, const char *key, const char *value,
                       struct sbuf *message)
{
    const struct cfg_key *k = find_key(section, key);
    if (k == NULL) {
        sbuf_printf(message, "[%s] %s: no such setting", section, key);
        return -1;
    }
    struct sbuf why = SBUF_INIT(1024);
    int r = apply_value(k, value, NULL, &why);
    if (r < 0) sbuf_printf(message, "[%s] %s: %s", k->section, k->key, sbuf_cstr(&why));
    sbuf_free(&why);
    return r;
}

static void default_hostname(struct alkaid_config *cfg)
{
    if (cfg->hostname && *cfg->hostname) return;
    char name[256];
    if (gethostname(name, sizeof(name)) < 0 || name[0] == '\0')
        snprintf(name, sizeof(name), "%s", "localhost");
    name[sizeof(name) - 1] = '\0';
    free(cfg->hostname);
    cfg->hostname = xstrdup(name);
}

/* True if path is dir or inside it. */
static bool path_within(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* [Directories] must be four separate trees, none of them the root or config/: smtpd
 * empties Temp of its work files, and mail must never land among the configuration. */
static int check_directories(const struct alkaid_config *cfg, struct sbuf *messages)
{
    const char *names[] = {"Mail", "Temp", "Log", "Run"};
    const char *dirs[] = {cfg->mail_dir, cfg->temp_dir, cfg->log_dir, cfg->run_dir};
    char *confdir = config_path(cfg->root, "config");
    int ret = 0;
    for (size_t i = 0; i < 4 && ret == 0; i++) {
        if (strcmp(dirs[i], cfg->root) == 0 || path_within(dirs[i], confdir) ||
            path_within(confdir, dirs[i])) {
            sbuf_printf(messages,
                        "%s: [Directories] %s: %s must not be the root or hold, or be "
                        "inside, its config directory\n",
                        cfg->ini_path, names[i], dirs[i]);
            ret = -1;
        }
        for (size_t j = 0; j < 4 && ret == 0; j++) {
            if (i != j && path_within(dirs[i], dirs[j])) {
                sbuf_printf(messages, "%s: [Directories] %s: %s is %s [Directories] %s (%s)\n",
                            cfg->ini_path, names[i], dirs[i],
                            strcmp(dirs[i], dirs[j]) == 0 ? "the same as" : "inside", names[j],
                            dirs[j]);
                ret = -1;
            }
        }
    }
    free(confdir);
    return ret;
}

struct alkaid_config *config_load(const char *root, struct sbuf *messages)
{
    const char *err;
    char absroot[PATH_MAX];

    if (config_root_prepare(root, &err) < 0) {
        sbuf_printf(messages, "%s\n", err);
        return NULL;
    }
    if (realpath(root, absroot) == NULL) {
        sbuf_printf(messages, "%s: %s\n", root, strerror(errno));
        return NULL;
    }

    struct alkaid_config *cfg = xcalloc(1, sizeof(*cfg));
    cfg->root = xstrdup(absroot);
    cfg->ini_path = config_path(absroot, "config/alkaid.ini");
    bool failed = false;
    struct sbuf why = SBUF_INIT(4096);

    /* defaults first, so every field is set even for keys missing from the file */
    for (size_t i = 0; i < NKEYS; i++) {
        sbuf_reset(&why);
        if (apply_value(&keys[i], keys[i].def, cfg, &why) < 0) abort(); /* table bug */
    }

    pthread_mutex_lock(&ini_lock);
    struct sbuf parse_errors = SBUF_INIT(16384);
    ini_errors = &parse_errors;
    iniparser_set_error_callback(ini_error_cb);
    dictionary *d = iniparser_load(cfg->ini_path);
    ini_errors = NULL;
    pthread_mutex_unlock(&ini_lock);

    if (d == NULL || parse_errors.len) {
        sbuf_printf(messages, "%s: cannot be read%s%s", cfg->ini_path, parse_errors.len ? ": " : "",
                    parse_errors.len ? sbuf_cstr(&parse_errors) : "\n");
        if (parse_errors.len == 0 && errno) sbuf_printf(messages, "%s\n", strerror(errno));
        sbuf_free(&parse_errors);
        sbuf_free(&why);
        if (d) iniparser_freedict(d);
        config_free(&cfg);
        return NULL;
    }
    sbuf_free(&parse_errors);

    warn_duplicates(cfg->ini_path, messages);
    int nsec = iniparser_getnsec(d);
    for (int s = 0; s < nsec; s++) {
        const char *sec = iniparser_getsecname(d, s);
        if (sec == NULL) continue;
        if (!known_section(sec)) {
            char *name = spelled(cfg->ini_path, sec, NULL);
            sbuf_printf(messages, "%s: [%s]: warning: unknown section, ignored\n", cfg->ini_path,
                        name);
            free(name);
            continue;
        }
        int nk = iniparser_getsecnkeys(d, sec);
        if (nk <= 0) continue;
        const char **names = xcalloc((size_t)nk, sizeof(*names));
        iniparser_getseckeys(d, sec, names);
        for (int k = 0; k < nk; k++) {
            /* names are "section:key" */
            const char *full = names[k];
            const char *colon = strchr(full, ':');
            const char *keyname = colon ? colon + 1 : full;
            const struct cfg_key *ck = find_key(sec, keyname);
            if (ck == NULL) {
                char *sname = spelled(cfg->ini_path, sec, NULL);
                char *kname = spelled(cfg->ini_path, sec, keyname);
                sbuf_printf(messages, "%s: [%s] %s: warning: unknown key, ignored\n", cfg->ini_path,
                            sname, kname);
                free(sname);
                free(kname);
                continue;
            }
            const char *value = iniparser_getstring(d, full, "");
            sbuf_reset(&why);
            if (apply_value(ck, value, cfg, &why) < 0) {
                sbuf_printf(messages, "%s: [%s] %s: %s\n", cfg->ini_path, ck->section, ck->key,
                            sbuf_cstr(&why));
                failed = true;
            }
        }
        free(names);
    }
    iniparser_freedict(d);
    sbuf_free(&why);

    if (!failed && check_directories(cfg, messages) < 0) failed = true;
    if (!failed && cfg->auth_lock_after < cfg->auth_delay_after) {
        sbuf_printf(messages,
                    "%s: [Security] AuthFailLockAfter: must not be below AuthFailDelayAfter\n",
                    cfg->ini_path);
        failed = true;
    }
    if (failed) {
        config_free(&cfg);
        return NULL;
    }
    default_hostname(cfg);
    return cfg;
}

void config_free(struct alkaid_config **cfgp)
{
    struct alkaid_config *cfg = *cfgp;
    if (cfg == NULL) return;
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == CFG_STR || keys[i].type == CFG_PATH) {
            char **s = (char **)((char *)cfg + keys[i].offset);
            free(*s);
        }
    }
    free(cfg->root);
    free(cfg->ini_path);
    free(cfg);
    *cfgp = NULL;
}

char *config_run_dir(const char *root)
{
    char *ini = config_path(root, "config/alkaid.ini");
    char *run = NULL;
    pthread_mutex_lock(&ini_lock);
    struct sbuf ignored = SBUF_INIT(16384);
    ini_errors = &ignored;
    iniparser_set_error_callback(ini_error_cb);
    dictionary *d = iniparser_load(ini);
    ini_errors = NULL;
    pthread_mutex_unlock(&ini_lock);
    sbuf_free(&ignored);
    if (d) {
        const char *v = iniparser_getstring(d, "directories:run", NULL);
        if (v && *v && strpbrk(v, "\r\n") == NULL) run = config_path(root, v);
        iniparser_freedict(d);
    }
    free(ini);
    return run ? run : config_path(root, "run");
}

size_t config_key_count(void)
{
    return NKEYS;
}

bool config_key_is_path(const char *section, const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcasecmp(keys[i].section, section) == 0 && strcasecmp(keys[i].key, key) == 0)
            return keys[i].type == CFG_PATH;
    return false;
}

int config_key_at(size_t i, const char **section_r, const char **key_r, const char **default_r)
{
    if (i >= NKEYS) return -1;
    *section_r = keys[i].section;
    *key_r = keys[i].key;
    *default_r = keys[i].def;
    return 0;
}

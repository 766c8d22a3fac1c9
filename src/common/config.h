/* config.h - alkaid.ini: load, validate, typed access
 *
 * One table of keys ({section, key, type, default, min, max, field}) describes every
 * setting of every service, grouped by the section each service owns; config.c reads
 * config/alkaid.ini through libiniparser into struct alkaid_config. A key no service
 * knows is reported as a warning; a value of the wrong type or out of range is an error,
 * and the service refuses to start (or, on reload, keeps its old configuration). Both
 * name the file, the section and the key.
 *
 * A root that does not have config/alkaid.ini yet (missing or empty directory) is set up
 * from the copy of config/default.ini compiled into every program.
 *
 * SECURITY: the INI is trusted (written by the administrator), but still parsed with
 * bounds: every number is range-checked, every path is resolved against the root.
 */
#ifndef ALKAID_CONFIG_H
#define ALKAID_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "sbuf.h"

struct listen_config {
    char *bind; /* "0.0.0.0", "::", "127.0.0.1", ... */
    int port;
    int tls_port;
    int submission_port; /* SMTP only */
    bool allow_plaintext_auth;
    int max_sessions;
    int max_sessions_per_ip;
    int timeout; /* seconds: per command line (SMTP/POP3), autologout (IMAP) */
};

struct alkaid_config {
    char *root;     /* absolute */
    char *ini_path; /* absolute path of config/alkaid.ini */

    /* [System] */
    char *hostname;
    char *user; /* service user to switch to when started as root; "" = stay */

    /* [Directories], resolved to absolute paths */
    char *mail_dir;
    char *temp_dir;
    char *log_dir;
    char *run_dir; /* pid files and ctl sockets */

    /* [Store] */
    char *store_backend; /* "sqlite" */
    char *store_path;    /* absolute path of the SQLite database */

    /* [SMTP] */
    struct listen_config smtp;
    char *relay_ips; /* space/comma separated patterns with '*' */
    char *smarthost;
    uint64_t max_message_size;
    int max_recipients;
    int max_hops;
    uint64_t min_free_space;
    int data_timeout;
    char *banner;
    char *smarthost_user; /* AUTH to the smarthost; "" = none */
    char *smarthost_password;
    char *smarthost_tls; /* "" = require when SmarthostUser is set, else may */
    char *relay_from;    /* MAIL FROM used with the smarthost; "" = the sender */

    /* [Queue] */
    struct queue_config {
        int threads;
        bool hold;            /* start with outbound delivery held */
        char *retry_schedule; /* "15m,30m,1h": waits after the 1st, 2nd, ... failure */
        int give_up;          /* seconds after arrival */
        int delay_warning;    /* seconds after arrival; 0 = never */
        int connect_timeout, command_timeout, data_timeout;
        int scan_interval;
        int max_per_conn;
        int per_domain;
        char *tls;        /* none | may | require | verify */
        char *tls_policy; /* "domain=mode ..." */
        char *ca_file;
        char *helo_name;
    } queue;

    /* [DialUp] (docs/dialup.md) */
    struct dialup_config {
        bool enabled;
        char *connect; /* command line, split on spaces, run without a shell */
        char *disconnect;
        char *schedule;    /* "08:00 12:30 18:00" */
        int interval;      /* seconds; 0 = none */
        int idle_hangup;   /* seconds */
        char *etrn_server; /* host[:port]; "" = no ETRN */
        char *etrn_domains;
        int connect_timeout; /* seconds the Connect command may take */
    } dialup;

    /* [POP3], [IMAP] */
    struct listen_config pop3;
    struct listen_config imap;
    int imap_max_sessions_per_user;

    /* [Control] */
    char *control_bind;
    int admin_port;
    int web_port;
    bool watchdog;          /* ping the services over ctl and restart a hung one */
    int watchdog_interval;  /* seconds between pings */
    char *watchdog_restart; /* command template without --supervise ("" = only log) */

    /* [TLS] (absolute paths) */
    char *tls_cert;
    char *tls_key;
    char *tls_ciphers;

    /* [Logging] */
    bool log_smtp, log_pop3, log_imap, log_control;

    /* [DNS] */
    char *dns_servers;
    int dns_timeout; /* seconds per try */
    int dns_tries;

    /* [Security] */
    int password_iterations;
    int auth_cache_ttl;
    int auth_delay_after;
    int auth_lock_after;
    int auth_lock_time;
};

/* Makes root usable: creates it and config/ if missing and writes config/alkaid.ini from
 * the embedded default when there is none. 0, or -1 with a message in *error_r (static
 * or thread-local storage; valid until the next call). */
int config_root_prepare(const char *root, const char **error_r);

/* Loads root/config/alkaid.ini (preparing the root first). Problems are appended to
 * messages, one per line, each naming file, section and key; unknown keys are only
 * warnings. Returns NULL if any error (not warning) was found. */
struct alkaid_config *config_load(const char *root, struct sbuf *messages);
void config_free(struct alkaid_config **cfg);

/* Checks a single value as config_load() would: 0, or -1 with a reason appended to
 * message. Used by tools that change settings. */
int config_check_value(const char *section, const char *key, const char *value,
                       struct sbuf *message);

/* The key table, for documentation checks and tools: 0, or -1 past the end. */
size_t config_key_count(void);
int config_key_at(size_t i, const char **section_r, const char **key_r, const char **default_r);
/* Whether [section] key names a file or directory (resolved against the root). */
bool config_key_is_path(const char *section, const char *key);

/* The run directory ([Directories] Run) read from root's INI as leniently as possible,
 * so that a service can still be reached over ctl while the file has errors elsewhere;
 * root/run when it cannot be read. xmalloc'ed. */
char *config_run_dir(const char *root);

#define CONFIG_MAX_RETRIES 32
enum config_tls_mode { TLS_MODE_NONE = 0, TLS_MODE_MAY, TLS_MODE_REQUIRE, TLS_MODE_VERIFY };
/* "90", "90s", "15m", "1h", "2d" -> seconds. 0 or -1. */
int config_parse_time(const char *s, long long *v_r);
/* "15m,30m,1h" -> up to max times; the count, or -1 if malformed. */
int config_parse_time_list(const char *value, long long *times, int max);
#define CONFIG_MAX_SCHEDULE 48
/* "08:00 12:30 18:00" -> minutes after midnight, up to max; the count, or -1 if
 * malformed (each H:MM or HH:MM, 00:00 to 23:59). */
int config_parse_schedule(const char *value, int *minutes, int max);
/* "none" | "may" | "require" | "verify" (any case) -> enum config_tls_mode, or -1. */
int config_tls_mode(const char *value);

/* Makes path absolute against root (unchanged if already absolute). xmalloc'ed. */
char *config_path(const char *root, const char *path);

#endif

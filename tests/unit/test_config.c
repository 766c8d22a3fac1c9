/* test_config.c - unit tests for config.c (alkaid.ini: load, validate, typed access)
 *
 * Each test works in a fresh root made by mkdtemp() under $ALKAID_TEST_TMP (or /tmp).
 * Covered: a missing root is created with config/alkaid.ini equal to config/default.ini;
 * every key's default lands in struct alkaid_config (from the default file and from a
 * file that sets nothing, which must agree); good values of each type (int, port, the
 * bool spellings, sizes with K/M/G/T, paths made absolute against the root); bad values
 * (not a number, out of range, bad size, bad bind address, bad Smarthost, a value split
 * by a carriage return, AuthFailLockAfter below AuthFailDelayAfter) make config_load()
 * fail with a message naming the file and "[Section] Key"; unknown keys and sections
 * are warnings only; an INI syntax error is reported; config_check_value(),
 * config_key_at() and config_path().
 *
 * SECURITY: the INI is trusted, but a bad value must stop the service, never be
 * half-applied.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "fsutil.h"
#include "sbuf.h"
#include "testutil.h"
#include "xalloc.h"

extern const unsigned char alkaid_default_ini[];
extern const unsigned long alkaid_default_ini_len;

/* ---- helpers ---------------------------------------------------------------------- */

static int setup(void **state)
{
    /* the root as config_load() will see it: no symbolic link in the path */
    char *tmp = make_tmpdir("config");
    if (tmp == NULL) return -1;
    char real[PATH_MAX];
    char *dir = realpath(tmp, real) != NULL ? xstrdup(real) : NULL;
    free(tmp);
    if (dir == NULL) return -1;
    *state = dir;
    return 0;
}

static char *source_file(const char *rel)
{
    /* __FILE__ is <source>/tests/unit/test_config.c */
    char *here = xstrdup(__FILE__);
    char *p = strstr(here, "tests/unit/test_config.c");
    if (p == NULL) {
        free(here);
        return NULL;
    }
    *p = '\0';
    char *path = xasprintf("%s%s", here, rel);
    free(here);
    return path;
}

static void write_ini(const char *root, const char *text)
{
    char *confdir = xasprintf("%s/config", root);
    assert_int_equal(fs_mkdirs(confdir, 0755), 0);
    char *ini = xasprintf("%s/alkaid.ini", confdir);
    write_file_mode(ini, text, strlen(text), 0644);
    free(ini);
    free(confdir);
}

static char *ini_path(const char *root)
{
    return xasprintf("%s/config/alkaid.ini", root);
}

/* Loads text as the root's INI; returns the config (or NULL) and the messages. */
static struct alkaid_config *load_text(const char *root, const char *text, struct sbuf *msgs)
{
    write_ini(root, text);
    sbuf_init(msgs, 0);
    return config_load(root, msgs);
}

/* Expects config_load() to refuse text with a message naming the file, "[sect] key"
 * and (if given) a word of the reason. */
static void expect_bad(const char *root, const char *text, const char *sect_key, const char *reason)
{
    struct sbuf msgs;
    struct alkaid_config *cfg = load_text(root, text, &msgs);
    if (cfg != NULL) {
        print_error("config_load accepted:\n%s\nmessages: %s\n", text, sbuf_cstr(&msgs));
        config_free(&cfg);
        fail();
    }
    char *ini = ini_path(root);
    const char *m = sbuf_cstr(&msgs);
    if (strstr(m, ini) == NULL || strstr(m, sect_key) == NULL ||
        (reason && strstr(m, reason) == NULL)) {
        print_error("for:\n%s\nexpected '%s' / '%s' / '%s' in: %s\n", text, ini, sect_key,
                    reason ? reason : "", m);
        free(ini);
        sbuf_free(&msgs);
        fail();
    }
    /* an error is not a warning */
    assert_null(strstr(m, "warning"));
    free(ini);
    sbuf_free(&msgs);
}

/* Expects config_load() to accept text and returns the config. */
static struct alkaid_config *expect_good(const char *root, const char *text)
{
    struct sbuf msgs;
    struct alkaid_config *cfg = load_text(root, text, &msgs);
    if (cfg == NULL) {
        print_error("config_load refused:\n%s\nmessages: %s\n", text, sbuf_cstr(&msgs));
        sbuf_free(&msgs);
        fail();
    }
    if (msgs.len != 0) {
        print_error("unexpected messages for:\n%s\n%s\n", text, sbuf_cstr(&msgs));
        sbuf_free(&msgs);
        config_free(&cfg);
        fail();
    }
    sbuf_free(&msgs);
    return cfg;
}

static char *joined(const char *root, const char *rel)
{
    return xasprintf("%s/%s", root, rel);
}

static void assert_path(const char *got, const char *root, const char *rel)
{
    char *want = joined(root, rel);
    assert_string_equal(got, want);
    free(want);
}

static void check_listen(const struct listen_config *l, const char *bind, int port, int tls,
                         int sessions, int perip, int timeout)
{
    assert_string_equal(l->bind, bind);
    assert_int_equal(l->port, port);
    assert_int_equal(l->tls_port, tls);
    assert_false(l->allow_plaintext_auth);
    assert_int_equal(l->max_sessions, sessions);
    assert_int_equal(l->max_sessions_per_ip, perip);
    assert_int_equal(l->timeout, timeout);
}

/* Every field as the defaults say (DESIGN.md's contract and config.c's table). */
static void check_defaults(const struct alkaid_config *cfg, const char *root)
{
    char host[256];
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    assert_string_equal(cfg->root, root);
    assert_path(cfg->ini_path, root, "config/alkaid.ini");
    assert_string_equal(cfg->hostname, host);
    assert_string_equal(cfg->user, "");
    assert_path(cfg->mail_dir, root, "mail");
    assert_path(cfg->temp_dir, root, "temp");
    assert_path(cfg->log_dir, root, "log");
    assert_path(cfg->run_dir, root, "run");
    assert_string_equal(cfg->store_backend, "sqlite");
    assert_path(cfg->store_path, root, "config/accounts.db");

    check_listen(&cfg->smtp, "0.0.0.0", 25, 465, 500, 20, 300);
    assert_int_equal(cfg->smtp.submission_port, 587);
    assert_string_equal(cfg->relay_ips, "");
    assert_string_equal(cfg->smarthost, "");
    assert_int_equal(cfg->max_message_size, 50ull << 20);
    assert_int_equal(cfg->max_recipients, 100);
    assert_int_equal(cfg->max_hops, 30);
    assert_int_equal(cfg->min_free_space, 100ull << 20);
    assert_int_equal(cfg->data_timeout, 600);
    assert_string_equal(cfg->banner, "");

    check_listen(&cfg->pop3, "0.0.0.0", 110, 995, 500, 20, 600);
    check_listen(&cfg->imap, "0.0.0.0", 143, 993, 2000, 50, 1800);

    assert_string_equal(cfg->control_bind, "127.0.0.1");
    assert_int_equal(cfg->admin_port, 32000);
    assert_int_equal(cfg->web_port, 32080);

    assert_path(cfg->tls_cert, root, "config/tls/cert.pem");
    assert_path(cfg->tls_key, root, "config/tls/key.pem");
    assert_non_null(strstr(cfg->tls_ciphers, "ECDHE-RSA-AES128-GCM-SHA256"));

    assert_true(cfg->log_smtp);
    assert_true(cfg->log_pop3);
    assert_true(cfg->log_imap);
    assert_true(cfg->log_control);
    assert_string_equal(cfg->dns_servers, "");

    assert_int_equal(cfg->password_iterations, 10000);
    assert_int_equal(cfg->auth_delay_after, 3);
    assert_int_equal(cfg->auth_lock_after, 10);
    assert_int_equal(cfg->auth_lock_time, 900);
}

/* ---- the root --------------------------------------------------------------------- */

static void test_missing_root_created(void **state)
{
    const char *dir = *state;
    char *root = xasprintf("%s/new/root", dir); /* neither level exists */
    struct sbuf msgs = SBUF_INIT(0);
    struct alkaid_config *cfg = config_load(root, &msgs);
    if (cfg == NULL) print_error("%s\n", sbuf_cstr(&msgs));
    assert_non_null(cfg);
    assert_int_equal(msgs.len, 0);

    char *ini = ini_path(root);
    size_t len = 0;
    char *text = fs_read_file(ini, 1 << 20, &len);
    assert_non_null(text);
    /* the embedded default ... */
    assert_int_equal(len, alkaid_default_ini_len);
    assert_memory_equal(text, alkaid_default_ini, len);
    /* ... is config/default.ini of the source tree */
    char *src = source_file("config/default.ini");
    assert_non_null(src);
    size_t slen = 0;
    char *stext = fs_read_file(src, 1 << 20, &slen);
    assert_non_null(stext);
    assert_int_equal(slen, len);
    assert_memory_equal(stext, text, len);

    struct stat st;
    assert_int_equal(stat(ini, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0007, 0); /* not world-readable */
    check_defaults(cfg, root);

    /* no temporary file is left next to it */
    char *confdir = xasprintf("%s/config", root);
    char *cmd = xasprintf("ls -A '%s'", confdir);
    FILE *ls = popen(cmd, "r");
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), ls)) {
        n++;
        assert_string_equal(line, "alkaid.ini\n");
    }
    pclose(ls);
    assert_int_equal(n, 1);

    /* a second load leaves an existing file alone */
    const char *custom = "[SMTP]\nPort=2525\n";
    write_ini(root, custom);
    config_free(&cfg);
    cfg = config_load(root, &msgs);
    assert_non_null(cfg);
    assert_int_equal(cfg->smtp.port, 2525);
    free(text);
    text = fs_read_file(ini, 1 << 20, &len);
    assert_string_equal(text, custom);

    config_free(&cfg);
    assert_null(cfg);
    free(cmd);
    free(confdir);
    free(stext);
    free(src);
    free(text);
    free(ini);
    free(root);
    sbuf_free(&msgs);
}

static void test_empty_ini_replaced(void **state)
{
    const char *root = *state;
    write_ini(root, "");
    const char *err = NULL;
    assert_int_equal(config_root_prepare(root, &err), 0);
    char *ini = ini_path(root);
    size_t len;
    char *text = fs_read_file(ini, 1 << 20, &len);
    assert_int_equal(len, alkaid_default_ini_len);
    assert_memory_equal(text, alkaid_default_ini, len);
    free(text);
    free(ini);
}

static void test_root_prepare_fails(void **state)
{
    const char *dir = *state;
    /* a file where the root's config/ directory should be */
    char *root = xasprintf("%s/r", dir);
    assert_int_equal(fs_mkdirs(root, 0755), 0);
    char *config = xasprintf("%s/config", root);
    assert_int_equal(fs_write_file_atomic(config, "x", 1, 0644), 0);
    const char *err = NULL;
    assert_int_equal(config_root_prepare(root, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, config));
    struct sbuf msgs = SBUF_INIT(0);
    assert_null(config_load(root, &msgs));
    assert_non_null(strstr(sbuf_cstr(&msgs), config));
    sbuf_free(&msgs);
    free(config);
    free(root);
}

static void test_defaults(void **state)
{
    const char *root = *state;
    /* the shipped default file */
    write_ini(root, (const char *)alkaid_default_ini);
    struct alkaid_config *cfg = expect_good(root, (const char *)alkaid_default_ini);
    check_defaults(cfg, root);
    config_free(&cfg);
    /* a file that sets nothing: the table's defaults must be the same */
    cfg = expect_good(root, "; nothing here\n");
    check_defaults(cfg, root);
    config_free(&cfg);
    /* sections present but empty */
    cfg = expect_good(root, "[System]\n[SMTP]\n[Security]\n");
    check_defaults(cfg, root);
    config_free(&cfg);
}

static void test_root_made_absolute(void **state)
{
    const char *root = *state;
    write_ini(root, "[SMTP]\nPort=26\n");
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    char *parent = fs_dirname(root);
    assert_int_equal(chdir(parent), 0);
    const char *base = strrchr(root, '/') + 1;
    struct sbuf msgs = SBUF_INIT(0);
    struct alkaid_config *cfg = config_load(base, &msgs); /* relative root */
    assert_int_equal(chdir(cwd), 0);
    assert_non_null(cfg);
    assert_string_equal(cfg->root, root);
    assert_path(cfg->mail_dir, root, "mail");
    assert_int_equal(cfg->smtp.port, 26);
    config_free(&cfg);
    /* trailing slashes on the root */
    char *slashed = xasprintf("%s//", root);
    cfg = config_load(slashed, &msgs);
    assert_non_null(cfg);
    assert_string_equal(cfg->root, root);
    assert_path(cfg->temp_dir, root, "temp");
    config_free(&cfg);
    free(slashed);
    free(parent);
    sbuf_free(&msgs);
}

/* ---- good values ------------------------------------------------------------------ */

static void test_good_ints_and_ports(void **state)
{
    const char *root = *state;
    struct alkaid_config *cfg = expect_good(root, "[SMTP]\n"
                                                  "Port=2525\n"
                                                  "SubmissionPort=0\n"
                                                  "TLSPort=65535\n"
                                                  "MaxRecipients=100000\n"
                                                  "MaxHops=5\n"
                                                  "Timeout=10\n"
                                                  "DataTimeout=3600\n"
                                                  "MaxSessions=1\n"
                                                  "MaxSessionsPerIP=100000\n"
                                                  "[POP3]\n"
                                                  "Port=0\n"
                                                  "[IMAP]\n"
                                                  "Timeout=7200\n"
                                                  "[Control]\n"
                                                  "AdminPort=1\n"
                                                  "WebPort=0\n"
                                                  "[Security]\n"
                                                  "PasswordIterations=4096\n"
                                                  "AuthFailDelayAfter=1\n"
                                                  "AuthFailLockAfter=1\n"
                                                  "AuthFailLockTime=0\n");
    assert_int_equal(cfg->smtp.port, 2525);
    assert_int_equal(cfg->smtp.submission_port, 0);
    assert_int_equal(cfg->smtp.tls_port, 65535);
    assert_int_equal(cfg->max_recipients, 100000);
    assert_int_equal(cfg->max_hops, 5);
    assert_int_equal(cfg->smtp.timeout, 10);
    assert_int_equal(cfg->data_timeout, 3600);
    assert_int_equal(cfg->smtp.max_sessions, 1);
    assert_int_equal(cfg->smtp.max_sessions_per_ip, 100000);
    assert_int_equal(cfg->pop3.port, 0);
    assert_int_equal(cfg->pop3.tls_port, 995); /* untouched */
    assert_int_equal(cfg->imap.timeout, 7200);
    assert_int_equal(cfg->admin_port, 1);
    assert_int_equal(cfg->web_port, 0);
    assert_int_equal(cfg->password_iterations, 4096);
    assert_int_equal(cfg->auth_delay_after, 1);
    assert_int_equal(cfg->auth_lock_after, 1);
    assert_int_equal(cfg->auth_lock_time, 0);
    config_free(&cfg);

    /* section and key names are not case-sensitive; spaces around '=' are fine */
    cfg = expect_good(root, "[smtp]\nport = 26\n[SECURITY]\nauthfaillocktime=604800\n");
    assert_int_equal(cfg->smtp.port, 26);
    assert_int_equal(cfg->auth_lock_time, 604800);
    config_free(&cfg);
}

static void test_good_bools(void **state)
{
    const char *root = *state;
    static const char *const yes[] = {"1", "yes", "true", "on", "YES", "True", "On"};
    static const char *const no[] = {"0", "no", "false", "off", "NO", "False", "OFF"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        char *text = xasprintf("[SMTP]\nAllowPlaintextAuth=%s\n[Logging]\nSMTP=%s\nPOP3=%s\n",
                               yes[i], no[i], no[i]);
        struct alkaid_config *cfg = expect_good(root, text);
        assert_true(cfg->smtp.allow_plaintext_auth);
        assert_false(cfg->log_smtp);
        assert_false(cfg->log_pop3);
        assert_true(cfg->log_imap);
        assert_false(cfg->pop3.allow_plaintext_auth);
        config_free(&cfg);
        free(text);
    }
}

static void test_good_sizes(void **state)
{
    const char *root = *state;
    static const struct {
        const char *text;
        uint64_t value;
    } cases[] = {
        {"1024", 1024},
        {"10K", 10240},
        {"10k", 10240},
        {"10KB", 10240},
        {"2M", 2u << 20},
        {"2m", 2u << 20},
        {"2MB", 2u << 20},
        {"1G", 1ull << 30},
        {"4G", 4ull << 30}, /* the maximum */
        {"4294967296", 4ull << 30},
        {"1025", 1025},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = xasprintf("[SMTP]\nMaxMessageSize=%s\n", cases[i].text);
        struct alkaid_config *cfg = expect_good(root, text);
        if (cfg->max_message_size != cases[i].value)
            print_error("MaxMessageSize=%s gave %llu\n", cases[i].text,
                        (unsigned long long)cfg->max_message_size);
        assert_int_equal(cfg->max_message_size, cases[i].value);
        config_free(&cfg);
        free(text);
    }
    struct alkaid_config *cfg = expect_good(root, "[SMTP]\nMinFreeSpace=0\n");
    assert_int_equal(cfg->min_free_space, 0);
    config_free(&cfg);
    cfg = expect_good(root, "[SMTP]\nMinFreeSpace=1T\n");
    assert_int_equal(cfg->min_free_space, 1ull << 40);
    config_free(&cfg);
}

static void test_good_paths(void **state)
{
    const char *root = *state;
    struct alkaid_config *cfg = expect_good(root, "[Directories]\n"
                                                  "Mail=spool/mail\n"
                                                  "Temp=/var/tmp/alkaid-temp\n"
                                                  "Log=logs\n"
                                                  "[Store]\n"
                                                  "Database=/srv/db/accounts.db\n"
                                                  "[TLS]\n"
                                                  "Certificate=certs/c.pem\n"
                                                  "Key=/etc/k.pem\n");
    assert_path(cfg->mail_dir, root, "spool/mail");
    assert_string_equal(cfg->temp_dir, "/var/tmp/alkaid-temp");
    assert_path(cfg->log_dir, root, "logs");
    assert_path(cfg->run_dir, root, "run");
    assert_string_equal(cfg->store_path, "/srv/db/accounts.db");
    assert_path(cfg->tls_cert, root, "certs/c.pem");
    assert_string_equal(cfg->tls_key, "/etc/k.pem");
    config_free(&cfg);
}

static void test_good_strings(void **state)
{
    const char *root = *state;
    struct alkaid_config *cfg = expect_good(root, "[System]\n"
                                                  "Hostname=mx1.example.com\n"
                                                  "User=alkaid\n"
                                                  "[SMTP]\n"
                                                  "Bind=::\n"
                                                  "RelayIPs=127.0.0.1, 192.168.1.* 10.0.0.0/8\n"
                                                  "Smarthost=relay.example.net:2525\n"
                                                  "Banner=Welcome to Example\n"
                                                  "[POP3]\n"
                                                  "Bind=::1\n"
                                                  "[IMAP]\n"
                                                  "Bind=192.0.2.1\n"
                                                  "[Control]\n"
                                                  "Bind=0.0.0.0\n"
                                                  "[DNS]\n"
                                                  "Servers=192.0.2.53, 192.0.2.54:5353 "
                                                  "[2001:db8::53]:53\n"
                                                  "[Store]\n"
                                                  "Backend=SQLite\n");
    assert_string_equal(cfg->hostname, "mx1.example.com");
    assert_string_equal(cfg->user, "alkaid");
    assert_string_equal(cfg->smtp.bind, "::");
    assert_string_equal(cfg->relay_ips, "127.0.0.1, 192.168.1.* 10.0.0.0/8");
    assert_string_equal(cfg->smarthost, "relay.example.net:2525");
    assert_string_equal(cfg->banner, "Welcome to Example");
    assert_string_equal(cfg->pop3.bind, "::1");
    assert_string_equal(cfg->imap.bind, "192.0.2.1");
    assert_string_equal(cfg->control_bind, "0.0.0.0");
    assert_string_equal(cfg->dns_servers, "192.0.2.53, 192.0.2.54:5353 [2001:db8::53]:53");
    config_free(&cfg);

    static const char *const smarthosts[] = {
        "relay.example.net", "192.0.2.1",   "192.0.2.1:25",          "[2001:db8::1]:587",
        "[2001:db8::1]",     "2001:db8::1", "smart_host.local:65535"};
    for (size_t i = 0; i < sizeof(smarthosts) / sizeof(smarthosts[0]); i++) {
        char *text = xasprintf("[SMTP]\nSmarthost=%s\n", smarthosts[i]);
        cfg = expect_good(root, text);
        assert_string_equal(cfg->smarthost, smarthosts[i]);
        config_free(&cfg);
        free(text);
    }
}

/* ---- bad values ------------------------------------------------------------------- */

static void test_bad_numbers(void **state)
{
    const char *root = *state;
    expect_bad(root, "[SMTP]\nPort=abc\n", "[SMTP] Port", "abc");
    expect_bad(root, "[SMTP]\nPort=25x\n", "[SMTP] Port", "25x");
    expect_bad(root, "[SMTP]\nPort=2.5\n", "[SMTP] Port", NULL);
    expect_bad(root, "[SMTP]\nPort=\n", "[SMTP] Port", NULL);
    expect_bad(root, "[SMTP]\nPort=65536\n", "[SMTP] Port", "range");
    expect_bad(root, "[SMTP]\nPort=-1\n", "[SMTP] Port", "range");
    expect_bad(root, "[SMTP]\nPort=99999999999999999999999\n", "[SMTP] Port", NULL);
    expect_bad(root, "[POP3]\nTLSPort=70000\n", "[POP3] TLSPort", "range");
    expect_bad(root, "[SMTP]\nMaxRecipients=99\n", "[SMTP] MaxRecipients", "range");
    expect_bad(root, "[SMTP]\nMaxRecipients=100001\n", "[SMTP] MaxRecipients", "range");
    expect_bad(root, "[SMTP]\nTimeout=9\n", "[SMTP] Timeout", "range");
    expect_bad(root, "[SMTP]\nTimeout=3601\n", "[SMTP] Timeout", "range");
    expect_bad(root, "[IMAP]\nTimeout=7201\n", "[IMAP] Timeout", "range");
    expect_bad(root, "[IMAP]\nMaxSessions=0\n", "[IMAP] MaxSessions", "range");
    expect_bad(root, "[Control]\nAdminPort=http\n", "[Control] AdminPort", NULL);
    expect_bad(root, "[Security]\nPasswordIterations=4095\n", "[Security] PasswordIterations",
               "range");
    expect_bad(root, "[Security]\nAuthFailLockTime=604801\n", "[Security] AuthFailLockTime",
               "range");
    /* section and key in the message are spelled as in the table, whatever the file says */
    expect_bad(root, "[smtp]\nmaxhops=1\n", "[SMTP] MaxHops", "range");
}

static void test_bad_bools(void **state)
{
    const char *root = *state;
    expect_bad(root, "[Logging]\nSMTP=maybe\n", "[Logging] SMTP", "maybe");
    expect_bad(root, "[Logging]\nIMAP=2\n", "[Logging] IMAP", NULL);
    expect_bad(root, "[POP3]\nAllowPlaintextAuth=yess\n", "[POP3] AllowPlaintextAuth", NULL);
    expect_bad(root, "[Logging]\nControl=\n", "[Logging] Control", NULL);
}

static void test_bad_sizes(void **state)
{
    const char *root = *state;
    static const char *const bad[] = {"10X",  "M",    "",     "-1",    "1.5M",
                                      "10 M", "0x10", "10MM", "10KBB", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *text = xasprintf("[SMTP]\nMaxMessageSize=%s\n", bad[i]);
        expect_bad(root, text, "[SMTP] MaxMessageSize", NULL);
        free(text);
    }
    /* well-formed but out of range */
    expect_bad(root, "[SMTP]\nMaxMessageSize=5G\n", "[SMTP] MaxMessageSize", "range");
    expect_bad(root, "[SMTP]\nMaxMessageSize=1023\n", "[SMTP] MaxMessageSize", "range");
    expect_bad(root, "[SMTP]\nMaxMessageSize=16777216T\n", "[SMTP] MaxMessageSize", NULL);
    expect_bad(root, "[SMTP]\nMinFreeSpace=2T\n", "[SMTP] MinFreeSpace", "range");
}

static void test_bad_strings(void **state)
{
    const char *root = *state;
    expect_bad(root, "[SMTP]\nBind=999.1.1.1\n", "[SMTP] Bind", "999.1.1.1");
    expect_bad(root, "[SMTP]\nBind=localhost\n", "[SMTP] Bind", NULL);
    expect_bad(root, "[IMAP]\nBind=\n", "[IMAP] Bind", NULL);
    expect_bad(root, "[Control]\nBind=127.0.0.1:32000\n", "[Control] Bind", NULL);

    static const char *const smarthosts[] = {
        "bad host", "host:0", "host:65536", "host:", "host:x",
        "[::1",     "[::1]x", "[nothex]",   "ho/st", "relay.example:25:25"};
    for (size_t i = 0; i < sizeof(smarthosts) / sizeof(smarthosts[0]); i++) {
        char *text = xasprintf("[SMTP]\nSmarthost=%s\n", smarthosts[i]);
        expect_bad(root, text, "[SMTP] Smarthost", NULL);
        free(text);
    }
    expect_bad(root, "[DNS]\nServers=192.0.2.1, bad!host\n", "[DNS] Servers", NULL);
    expect_bad(root, "[System]\nHostname=bad host\n", "[System] Hostname", NULL);
    expect_bad(root, "[System]\nUser=a:b\n", "[System] User", NULL);
    expect_bad(root, "[Store]\nBackend=mysql\n", "[Store] Backend", "mysql");
    expect_bad(root, "[SMTP]\nRelayIPs=127.0.0.1 evil.example\n", "[SMTP] RelayIPs", NULL);
    expect_bad(root, "[Directories]\nMail=\n", "[Directories] Mail", NULL);
    char *banner = xmalloc(260);
    memset(banner, 'b', 250);
    banner[250] = '\0';
    char *text = xasprintf("[SMTP]\nBanner=%s\n", banner);
    expect_bad(root, text, "[SMTP] Banner", NULL);
    free(text);
    free(banner);
}

static void test_bad_line_breaks(void **state)
{
    const char *root = *state;
    /* a carriage return inside a value (the only line break iniparser leaves in one) */
    expect_bad(root, "[System]\nHostname=mx\r.example.com\n", "[System] Hostname", "one line");
    expect_bad(root, "[Directories]\nMail=ma\ril\n", "[Directories] Mail", "one line");
    expect_bad(root, "[SMTP]\nBanner=Hello\rMAIL FROM:<x>\n", "[SMTP] Banner", NULL);
}

static void test_lock_below_delay(void **state)
{
    const char *root = *state;
    expect_bad(root, "[Security]\nAuthFailDelayAfter=5\nAuthFailLockAfter=4\n",
               "[Security] AuthFailLockAfter", "AuthFailDelayAfter");
    /* default delay (3) with a lock below it */
    expect_bad(root, "[Security]\nAuthFailLockAfter=2\n", "[Security] AuthFailLockAfter", NULL);
    /* equal is fine */
    struct alkaid_config *cfg =
        expect_good(root, "[Security]\nAuthFailDelayAfter=5\nAuthFailLockAfter=5\n");
    config_free(&cfg);
}

static void test_several_errors_all_reported(void **state)
{
    const char *root = *state;
    struct sbuf msgs;
    struct alkaid_config *cfg =
        load_text(root, "[SMTP]\nPort=x\nMaxHops=1\n[POP3]\nPort=y\n", &msgs);
    assert_null(cfg);
    const char *m = sbuf_cstr(&msgs);
    assert_non_null(strstr(m, "[SMTP] Port"));
    assert_non_null(strstr(m, "[SMTP] MaxHops"));
    assert_non_null(strstr(m, "[POP3] Port"));
    /* one message per line */
    int lines = 0;
    for (const char *p = m; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 3);
    sbuf_free(&msgs);
}

/* ---- warnings and syntax ---------------------------------------------------------- */

static void test_unknown_key_and_section(void **state)
{
    const char *root = *state;
    struct sbuf msgs;
    struct alkaid_config *cfg = load_text(
        root, "[SMTP]\nPort=2526\nNoSuchKey=1\n[NoSuchSection]\nFoo=bar\n[POP3]\nPort=1110\n",
        &msgs);
    if (cfg == NULL) print_error("%s\n", sbuf_cstr(&msgs));
    assert_non_null(cfg);
    /* the known values around them still apply */
    assert_int_equal(cfg->smtp.port, 2526);
    assert_int_equal(cfg->pop3.port, 1110);
    const char *m = sbuf_cstr(&msgs);
    char *ini = ini_path(root);
    assert_non_null(strstr(m, ini));
    assert_non_null(strcasestr(m, "NoSuchKey"));
    assert_non_null(strcasestr(m, "[smtp]"));
    assert_non_null(strcasestr(m, "NoSuchSection"));
    assert_non_null(strstr(m, "warning"));
    int lines = 0;
    for (const char *p = m; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    free(ini);
    config_free(&cfg);
    sbuf_free(&msgs);
}

static void test_syntax_error(void **state)
{
    const char *root = *state;
    struct sbuf msgs;
    struct alkaid_config *cfg =
        load_text(root, "[SMTP]\nPort=25\nthis line is not ini\n[POP3]\nPort=110\n", &msgs);
    assert_null(cfg);
    const char *m = sbuf_cstr(&msgs);
    char *ini = ini_path(root);
    if (strstr(m, ini) == NULL || strstr(m, "syntax") == NULL ||
        strstr(m, "this line is not ini") == NULL)
        print_error("messages: %s\n", m);
    assert_non_null(strstr(m, ini));
    assert_non_null(strstr(m, "syntax"));
    assert_non_null(strstr(m, "this line is not ini"));
    /* folded into lines that each name the file */
    assert_true(msgs.len > 0 && m[msgs.len - 1] == '\n');
    free(ini);
    sbuf_free(&msgs);

    /* an unterminated section header */
    cfg = load_text(root, "[SMTP\nPort=25\n", &msgs);
    assert_null(cfg);
    assert_true(msgs.len > 0);
    sbuf_free(&msgs);
}

static void test_unreadable_ini(void **state)
{
    const char *root = *state;
    if (geteuid() == 0) skip(); /* root reads everything */
    write_ini(root, "[SMTP]\nPort=25\n");
    char *ini = ini_path(root);
    assert_int_equal(chmod(ini, 0), 0);
    struct sbuf msgs = SBUF_INIT(0);
    struct alkaid_config *cfg = config_load(root, &msgs);
    assert_null(cfg);
    assert_non_null(strstr(sbuf_cstr(&msgs), ini));
    chmod(ini, 0644);
    sbuf_free(&msgs);
    free(ini);
}

/* ---- single values and the table -------------------------------------------------- */

static void check_one(const char *sect, const char *key, const char *value, int want,
                      const char *in_msg)
{
    struct sbuf m = SBUF_INIT(0);
    int r = config_check_value(sect, key, value, &m);
    if (r != want || (want == 0 && m.len != 0) || (in_msg && !strstr(sbuf_cstr(&m), in_msg))) {
        print_error("config_check_value(%s, %s, '%s') = %d, message '%s'\n", sect, key, value, r,
                    sbuf_cstr(&m));
        sbuf_free(&m);
        fail();
    }
    sbuf_free(&m);
}

static void test_check_value(void **state)
{
    check_one("SMTP", "Port", "25", 0, NULL);
    check_one("smtp", "port", "0", 0, NULL);
    check_one("SMTP", "Port", "65536", -1, "[SMTP] Port");
    check_one("smtp", "port", "x", -1, "[SMTP] Port: 'x'");
    check_one("SMTP", "MaxMessageSize", "10M", 0, NULL);
    check_one("SMTP", "MaxMessageSize", "10Q", -1, "[SMTP] MaxMessageSize");
    check_one("Logging", "SMTP", "on", 0, NULL);
    check_one("Logging", "SMTP", "sometimes", -1, "[Logging] SMTP");
    check_one("SMTP", "Bind", "::", 0, NULL);
    check_one("SMTP", "Bind", "example.com", -1, "[SMTP] Bind");
    check_one("SMTP", "Smarthost", "", 0, NULL);
    check_one("SMTP", "Smarthost", "host:99999", -1, "[SMTP] Smarthost");
    check_one("SMTP", "Banner", "line one\nline two", -1, "one line");
    check_one("System", "Hostname", "a\r\nb", -1, "one line");
    check_one("Directories", "Mail", "x\ny", -1, "one line");
    check_one("Directories", "Mail", "/abs/path", 0, NULL);
    check_one("SMTP", "NoSuchKey", "1", -1, "no such setting");
    check_one("NoSuchSection", "Port", "1", -1, "no such setting");

    /* the message is appended, not replaced */
    struct sbuf m = SBUF_INIT(0);
    sbuf_appends(&m, "before; ");
    assert_int_equal(config_check_value("SMTP", "Port", "x", &m), -1);
    assert_int_equal(strncmp(sbuf_cstr(&m), "before; [SMTP] Port", 19), 0);
    sbuf_free(&m);
}

static void test_key_table(void **state)
{
    size_t n = config_key_count();
    assert_true(n >= 40);
    const char *sect, *key, *def;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(config_key_at(i, &sect, &key, &def), 0);
        assert_non_null(sect);
        assert_non_null(key);
        assert_non_null(def);
        /* every default is a valid value */
        struct sbuf m = SBUF_INIT(0);
        int r = config_check_value(sect, key, def, &m);
        if (r != 0) print_error("[%s] %s default '%s': %s\n", sect, key, def, sbuf_cstr(&m));
        assert_int_equal(r, 0);
        sbuf_free(&m);
        /* no key appears twice */
        for (size_t j = 0; j < i; j++) {
            const char *s2, *k2, *d2;
            config_key_at(j, &s2, &k2, &d2);
            assert_false(strcasecmp(s2, sect) == 0 && strcasecmp(k2, key) == 0);
        }
    }
    assert_int_equal(config_key_at(n, &sect, &key, &def), -1);
    assert_int_equal(config_key_at((size_t)-1, &sect, &key, &def), -1);

    /* DESIGN.md's contract keys are all in the table */
    static const char *const contract[][2] = {
        {"System", "Hostname"},     {"Directories", "Mail"}, {"Directories", "Temp"},
        {"Directories", "Log"},     {"SMTP", "Bind"},        {"SMTP", "Port"},
        {"SMTP", "SubmissionPort"}, {"SMTP", "TLSPort"},     {"SMTP", "RelayIPs"},
        {"SMTP", "Smarthost"},      {"POP3", "Bind"},        {"POP3", "Port"},
        {"POP3", "TLSPort"},        {"IMAP", "Bind"},        {"IMAP", "Port"},
        {"IMAP", "TLSPort"},        {"Control", "Bind"},     {"Control", "AdminPort"},
        {"Control", "WebPort"},     {"TLS", "Certificate"},  {"TLS", "Key"},
        {"Logging", "SMTP"},        {"Logging", "POP3"},     {"Logging", "IMAP"},
        {"Logging", "Control"},     {"DNS", "Servers"},
    };
    for (size_t c = 0; c < sizeof(contract) / sizeof(contract[0]); c++) {
        bool found = false;
        for (size_t i = 0; i < n && !found; i++) {
            config_key_at(i, &sect, &key, &def);
            found = strcmp(sect, contract[c][0]) == 0 && strcmp(key, contract[c][1]) == 0;
        }
        if (!found) print_error("[%s] %s missing\n", contract[c][0], contract[c][1]);
        assert_true(found);
    }
}

/* Every key of the table appears in the shipped default.ini with its default value. */
static void test_default_ini_matches_table(void **state)
{
    const char *root = *state;
    write_ini(root, (const char *)alkaid_default_ini);
    struct sbuf msgs = SBUF_INIT(0);
    struct alkaid_config *cfg = config_load(root, &msgs);
    assert_non_null(cfg);
    assert_int_equal(msgs.len, 0); /* no unknown keys in the default file */
    config_free(&cfg);
    sbuf_free(&msgs);

    char *text = xstrndup((const char *)alkaid_default_ini, alkaid_default_ini_len);
    size_t n = config_key_count();
    int missing = 0;
    for (size_t i = 0; i < n; i++) {
        const char *sect, *key, *def;
        config_key_at(i, &sect, &key, &def);
        char *hdr = xasprintf("[%s]\n", sect);
        char *line = xasprintf("\n%s=%s\n", key, def);
        const char *s = strstr(text, hdr);
        const char *next = s ? strstr(s + 1, "\n[") : NULL;
        const char *l = s ? strstr(s, line) : NULL;
        if (s == NULL || l == NULL || (next && l > next)) {
            print_error("default.ini lacks [%s] %s=%s\n", sect, key, def);
            missing++;
        }
        free(hdr);
        free(line);
    }
    free(text);
    assert_int_equal(missing, 0);
}

static void test_config_path(void **state)
{
    char *p = config_path("/root", "mail");
    assert_string_equal(p, "/root/mail");
    free(p);
    p = config_path("/root/", "mail/x");
    assert_string_equal(p, "/root/mail/x");
    free(p);
    p = config_path("/root///", "mail");
    assert_string_equal(p, "/root/mail");
    free(p);
    p = config_path("/root", "/abs/mail");
    assert_string_equal(p, "/abs/mail");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_root_created, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_empty_ini_replaced, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_root_prepare_fails, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_root_made_absolute, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_good_ints_and_ports, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_good_bools, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_good_sizes, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_good_paths, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_good_strings, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_bad_numbers, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_bad_bools, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_bad_sizes, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_bad_strings, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_bad_line_breaks, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_lock_below_delay, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_several_errors_all_reported, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_unknown_key_and_section, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_unreadable_ini, setup, teardown_tmpdir),
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_key_table),
        cmocka_unit_test_setup_teardown(test_default_ini_matches_table, setup, teardown_tmpdir),
        cmocka_unit_test(test_config_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
